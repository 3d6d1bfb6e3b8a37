/** The vault in PostgreSQL: the shared back end. Sealing and every check are the contract's (stores/vault.ts). */
import type pg from 'pg';
import type { Keyring } from '../../domain/keyring.js';
import { Vault, type SecretInfo, type SecretRow } from '../vault.js';
import { inTransaction, migrate, type Migration } from './database.js';

export const VAULT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'secrets, each sealed on its own under a master key',
    sql: `
      CREATE SCHEMA IF NOT EXISTS vault;
      CREATE TABLE vault.secrets (
        name TEXT PRIMARY KEY,
        key_id TEXT NOT NULL,
        nonce BYTEA NOT NULL,
        ciphertext BYTEA NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
      );
      REVOKE ALL ON vault.secrets FROM PUBLIC;
    `,
  },
];

export class PostgresVault extends Vault {
  private constructor(pool: pg.Pool, keyring: Keyring) {
    super(
      {
        row: async (name) => (await pool.query<SecretRow>('SELECT * FROM vault.secrets WHERE name = $1', [name])).rows[0],
        upsert: async (name, sealed, now) => {
          // xmax is 0 on a row this statement inserted, and set on one it updated.
          const { rows } = await pool.query<{ created_at: string; created: boolean }>(
            `INSERT INTO vault.secrets (name, key_id, nonce, ciphertext, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $5)
             ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at
             RETURNING created_at, (xmax = 0) AS created`,
            [name, sealed.key_id, sealed.nonce, sealed.ciphertext, now],
          );
          return rows[0]!;
        },
        list: async () =>
          (await pool.query<SecretInfo>('SELECT name, key_id, created_at, updated_at FROM vault.secrets ORDER BY name')).rows,
        delete: async (name) => ((await pool.query('DELETE FROM vault.secrets WHERE name = $1', [name])).rowCount ?? 0) > 0,
        resealAll: (reseal) =>
          inTransaction(pool, async (client) => {
            // Locked until COMMIT: a secret stored meanwhile waits, and is not overwritten with its old value.
            const { rows } = await client.query<SecretRow>('SELECT * FROM vault.secrets ORDER BY name FOR UPDATE');
            let reencrypted = 0;
            for (const row of rows) {
              const sealed = reseal(row);
              const updated = await client.query('UPDATE vault.secrets SET key_id = $1, nonce = $2, ciphertext = $3 WHERE name = $4', [
                sealed.key_id,
                sealed.nonce,
                sealed.ciphertext,
                row.name,
              ]);
              reencrypted += updated.rowCount ?? 0;
            }
            return { reencrypted, total: rows.length };
          }),
      },
      keyring,
    );
  }

  /** Opens the vault in the pool's database, migrating it first. */
  static async connect(pool: pg.Pool, keyring: Keyring): Promise<PostgresVault> {
    await migrate(pool, 'vault', VAULT_MIGRATIONS);
    return new PostgresVault(pool, keyring);
  }

  /** The pool is the caller's, shared by the process's stores. */
  async close(): Promise<void> {}
}
