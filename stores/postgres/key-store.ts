/** API keys in PostgreSQL: the shared back end. The rules are the contract's (stores/key-store.ts). */
import type pg from 'pg';
import { KEY_COLUMNS, KeyStore, type ConsoleSessionRow, type KeyRow } from '../key-store.js';
import { inTransaction, migrate, type Migration } from './database.js';

export const KEY_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'API keys, stored as the SHA-256 of their secret',
    sql: `
      CREATE SCHEMA IF NOT EXISTS keys;
      CREATE TABLE keys.api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        person TEXT,
        hash BYTEA NOT NULL UNIQUE,
        created_at TEXT NOT NULL,
        created_by TEXT,
        confirmed_by TEXT,
        revoked_at TEXT
      );
      CREATE INDEX api_keys_active_admins ON keys.api_keys (role) WHERE revoked_at IS NULL;
      REVOKE ALL ON keys.api_keys FROM PUBLIC;
    `,
  },
  {
    version: 2,
    description: 'console sessions, stored as the SHA-256 of their id',
    sql: `
      CREATE TABLE keys.console_sessions (
        id_hash BYTEA PRIMARY KEY,
        key_id TEXT NOT NULL,
        expires_at BIGINT NOT NULL
      );
      CREATE INDEX console_sessions_by_key ON keys.console_sessions (key_id);
      CREATE INDEX console_sessions_by_expiry ON keys.console_sessions (expires_at);
      REVOKE ALL ON keys.console_sessions FROM PUBLIC;
    `,
  },
];

const COLUMNS = KEY_COLUMNS.join(', ');

export class PostgresKeyStore extends KeyStore {
  private constructor(pool: pg.Pool) {
    const one = async <R extends pg.QueryResultRow>(sql: string, params: unknown[]) => (await pool.query<R>(sql, params)).rows[0];
    super(
      {
        row: (id) => one<KeyRow>(`SELECT ${COLUMNS} FROM keys.api_keys WHERE id = $1`, [id]),
        byHash: (hash) => one<KeyRow & { hash: Buffer }>(`SELECT ${COLUMNS}, hash FROM keys.api_keys WHERE hash = $1`, [hash]),
        insert: async (row) => {
          await pool.query(
            `INSERT INTO keys.api_keys (${COLUMNS}, hash) VALUES (${[...KEY_COLUMNS, 'hash'].map((_, i) => `$${i + 1}`).join(', ')})`,
            [...KEY_COLUMNS.map((c) => row[c]), row.hash],
          );
        },
        setConfirmedBy: async (id, by) => {
          await pool.query('UPDATE keys.api_keys SET confirmed_by = $1 WHERE id = $2', [by, id]);
        },
        revoke: (id, at) =>
          inTransaction(pool, async (client) => {
            await client.query('UPDATE keys.api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL', [at, id]);
            await client.query('DELETE FROM keys.console_sessions WHERE key_id = $1', [id]);
          }),
        all: async () => (await pool.query<KeyRow>(`SELECT ${COLUMNS} FROM keys.api_keys ORDER BY created_at, id`)).rows,
        hasActiveAdmin: async () =>
          (await pool.query("SELECT 1 FROM keys.api_keys WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1")).rowCount! > 0,
      },
      {
        insert: async (row) => {
          await pool.query('INSERT INTO keys.console_sessions (id_hash, key_id, expires_at) VALUES ($1, $2, $3)', [
            row.id_hash,
            row.key_id,
            row.expires_at,
          ]);
        },
        byHash: (idHash) =>
          one<ConsoleSessionRow>('SELECT id_hash, key_id, expires_at FROM keys.console_sessions WHERE id_hash = $1', [idHash]),
        delete: async (idHash) => {
          await pool.query('DELETE FROM keys.console_sessions WHERE id_hash = $1', [idHash]);
        },
        deleteExpired: async (now) => {
          await pool.query('DELETE FROM keys.console_sessions WHERE expires_at <= $1', [now]);
        },
      },
    );
  }

  /** Opens the keys in the pool's database, migrating it first. */
  static async connect(pool: pg.Pool): Promise<PostgresKeyStore> {
    await migrate(pool, 'keys', KEY_MIGRATIONS);
    return new PostgresKeyStore(pool);
  }

  /** The pool is the caller's, shared by the process's stores. */
  async close(): Promise<void> {}
}
