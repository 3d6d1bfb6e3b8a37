/**
 * The stores' back ends, for contract tests: each test suite of a store runs once per back end
 * (`describe.each(STORE_BACKENDS)`). A place is a fresh, empty home for the stores: a data dir for
 * SQLite, a database of the throw-away PostgreSQL server (test/support/postgres.ts) for PostgreSQL.
 * Each open is a new connection, as another process's would be.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import pg from 'pg';
import { inject } from 'vitest';
import type { Keyring } from '../../domain/keyring.js';
import { AuditStore, type AuditStoreOptions } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { Vault } from '../../stores/vault.js';
import { openPool } from '../../stores/postgres/database.js';
import { PostgresAuditStore } from '../../stores/postgres/audit-store.js';
import { PostgresKeyStore } from '../../stores/postgres/key-store.js';
import { PostgresVault } from '../../stores/postgres/vault.js';
import { ModelCallLedger } from '../../stores/model-call-ledger.js';
import { PostgresModelCallLedger } from '../../stores/postgres/model-call-ledger.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { createTestDatabase, superuserUrl } from './postgres.js';

export type StoreName = 'audit' | 'vault' | 'keys';

export interface StorePlace {
  /** The data dir (SQLite's files; the master key file with either back end). */
  dataDir: string;
  /** WARDEN_DATABASE_URL for this place, or undefined for SQLite. */
  databaseUrl: string | undefined;
  openAudit(opts: AuditStoreOptions): Promise<AuditStore>;
  openVault(keyring: Keyring): Promise<Vault>;
  openKeys(): Promise<KeyStore>;
  openModelCalls(): Promise<ModelCallLedger>;
  /**
   * Plain SQL on a store's tables as whoever holds the whole database (the file; PostgreSQL's
   * superuser), with the audit log's guards lifted first: an attacker past every guard. `?`
   * placeholders; statements separated by ';'. Returns the last statement's rows.
   */
  tamper(store: StoreName, sql: string, ...params: unknown[]): Promise<Array<Record<string, unknown>>>;
  /**
   * Runs one statement through each plain SQL connection an attacker may hold without lifting
   * any guard (SQLite: the file; PostgreSQL: Warden's own role, and the superuser); returns each
   * one's error message, or 'done' when it went through.
   */
  attempt(store: StoreName, sql: string): Promise<string[]>;
  /** Code for a separate Node process (an ES module body) that sets `store` to this place's audit log. */
  auditInProcess(masterKey: string): string;
  close(): Promise<void>;
}

const FILES: Record<StoreName, string> = { audit: 'audit.db', vault: 'vault.db', keys: 'warden.db' };
const SCHEMAS: Record<StoreName, string> = { audit: 'audit', vault: 'vault', keys: 'keys' };
const moduleUrl = (path: string) => JSON.stringify(pathToFileURL(join(PROJECT_ROOT, path)).href);

function sqlitePlace(): StorePlace {
  const dataDir = mkdtempSync(join(tmpdir(), 'warden-stores-'));
  const onFile = <T>(store: StoreName, fn: (db: Database.Database) => T): T => {
    const db = new Database(join(dataDir, FILES[store]), { timeout: 10_000 });
    try {
      return fn(db);
    } finally {
      db.close();
    }
  };
  return {
    dataDir,
    databaseUrl: undefined,
    openAudit: async (opts) => AuditStore.open(join(dataDir, FILES.audit), opts),
    openVault: async (keyring) => Vault.open(join(dataDir, FILES.vault), keyring),
    openKeys: async () => KeyStore.open(join(dataDir, FILES.keys)),
    openModelCalls: async () => ModelCallLedger.open(join(dataDir, 'model-calls.db')),
    tamper: async (store, sql, ...params) =>
      onFile(store, (db) => {
        if (store === 'audit') db.exec('DROP TRIGGER IF EXISTS entries_no_update; DROP TRIGGER IF EXISTS entries_no_delete;');
        let rows: Array<Record<string, unknown>> = [];
        for (const statement of sql.split(';').filter((s) => s.trim())) {
          const prepared = db.prepare(statement);
          const bound = params.slice(0, (statement.match(/\?/g) ?? []).length);
          params = params.slice(bound.length);
          if (prepared.reader) rows = prepared.all(...bound) as Array<Record<string, unknown>>;
          else prepared.run(...bound);
        }
        return rows;
      }),
    attempt: async (store, sql) => [
      onFile(store, (db) => {
        try {
          db.prepare(sql).run();
          return 'done';
        } catch (err) {
          return (err as Error).message;
        }
      }),
    ],
    auditInProcess: (masterKey) => `
      const { AuditStore } = await import(${moduleUrl('stores/audit-store.ts')});
      const { Keyring } = await import(${moduleUrl('domain/keyring.ts')});
      const keyring = Keyring.load({ masterKey: ${JSON.stringify(masterKey)}, dataDir: '.' });
      const store = AuditStore.open(${JSON.stringify(join(dataDir, FILES.audit))}, { keyring, isKnownKeyId: () => false });`,
    close: async () => rmSync(dataDir, { recursive: true, force: true }),
  };
}

async function postgresPlace(): Promise<StorePlace> {
  const adminUrl = inject('postgresAdminUrl');
  const databaseUrl = await createTestDatabase(adminUrl);
  const dataDir = mkdtempSync(join(tmpdir(), 'warden-stores-'));
  const pools: pg.Pool[] = [];
  const pool = () => {
    const opened = openPool(databaseUrl, { max: 4 });
    pools.push(opened);
    return opened;
  };
  const onConnection = async <T>(url: string, store: StoreName, fn: (client: pg.Client) => Promise<T>): Promise<T> => {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${SCHEMAS[store]}`);
      return await fn(client);
    } finally {
      await client.end();
    }
  };
  const asSuperuser = superuserUrl(adminUrl, databaseUrl);
  const numbered = (statement: string) => {
    let n = 0;
    return statement.replace(/\?/g, () => `$${++n}`);
  };
  return {
    dataDir,
    databaseUrl,
    openAudit: (opts) => PostgresAuditStore.connect(pool(), opts),
    openVault: (keyring) => PostgresVault.connect(pool(), keyring),
    openKeys: () => PostgresKeyStore.connect(pool()),
    openModelCalls: () => PostgresModelCallLedger.connect(pool()),
    tamper: (store, sql, ...params) =>
      onConnection(asSuperuser, store, async (client) => {
        let rows: Array<Record<string, unknown>> = [];
        // Only whoever owns the table (or the superuser) can lift its guards.
        if (store === 'audit') await client.query('ALTER TABLE entries DISABLE TRIGGER USER; ALTER TABLE head DISABLE TRIGGER USER');
        try {
          for (const statement of sql.split(';').filter((s) => s.trim())) {
            const count = (statement.match(/\?/g) ?? []).length;
            rows = (await client.query(numbered(statement), params.slice(0, count))).rows;
            params = params.slice(count);
          }
        } finally {
          if (store === 'audit') await client.query('ALTER TABLE entries ENABLE TRIGGER USER; ALTER TABLE head ENABLE TRIGGER USER');
        }
        return rows;
      }),
    attempt: async (store, sql) =>
      Promise.all(
        [databaseUrl, asSuperuser].map((url) =>
          onConnection(url, store, async (client) => {
            try {
              await client.query(sql);
              return 'done';
            } catch (err) {
              return (err as Error).message;
            }
          }),
        ),
      ),
    auditInProcess: (masterKey) => `
      const { PostgresAuditStore } = await import(${moduleUrl('stores/postgres/audit-store.ts')});
      const { openPool } = await import(${moduleUrl('stores/postgres/database.ts')});
      const { Keyring } = await import(${moduleUrl('domain/keyring.ts')});
      const keyring = Keyring.load({ masterKey: ${JSON.stringify(masterKey)}, dataDir: '.' });
      const pool = openPool(${JSON.stringify(databaseUrl)});
      const store = await PostgresAuditStore.connect(pool, { keyring, isKnownKeyId: () => false });
      store.close = () => pool.end();`,
    async close() {
      await Promise.all(pools.splice(0).map((p) => p.end()));
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const STORE_BACKENDS = [
  { backend: 'SQLite', place: async () => sqlitePlace() },
  { backend: 'PostgreSQL', place: postgresPlace },
] as const;
