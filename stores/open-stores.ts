/**
 * Where a process's stores live: with WARDEN_DATABASE_URL, in that PostgreSQL database, shared by
 * the API and every worker on every host; without it, in SQLite files in the data dir (the
 * embedded default: every process must then share the data dir). Adding a host is then a matter
 * of configuration: the same URL and master key.
 */
import { join, resolve } from 'node:path';
import type { Config } from '../domain/config.js';
import type { Keyring } from '../domain/keyring.js';
import { AuditStore } from './audit-store.js';
import { KeyIdDirectory, KeyStore, type KeyIds } from './key-store.js';
import { Vault } from './vault.js';
import { openPool } from './postgres/database.js';
import { PostgresAuditStore } from './postgres/audit-store.js';
import { PostgresKeyStore } from './postgres/key-store.js';
import { PostgresVault } from './postgres/vault.js';
import { ModelCallLedger } from './model-call-ledger.js';
import { PostgresModelCallLedger } from './postgres/model-call-ledger.js';

export interface OpenStores {
  /** The API keys, for the process that owns them (the API). */
  keys?: KeyStore;
  audit?: AuditStore;
  vault?: Vault;
  /** Which key ids exist and which are revoked, for a process that does not own the keys (a worker). */
  keyIds?: KeyIds;
  /** Which model calls spent their single-use grants (the model worker's). */
  modelCalls?: ModelCallLedger;
  /** Closes every store, and the database connections. */
  close(): Promise<void>;
}

/** Which stores the process needs: the API owns the keys; a worker's audit store only asks which key ids exist. */
export interface StoreNeeds {
  keys?: boolean;
  audit?: boolean;
  vault?: boolean;
  keyIds?: boolean;
  modelCalls?: boolean;
}

export async function openStores(
  config: Pick<Config, 'dataDir' | 'databaseUrl'>,
  keyring: Keyring,
  needs: StoreNeeds,
): Promise<OpenStores> {
  return config.databaseUrl ? openPostgres(config.databaseUrl, keyring, needs) : openSqlite(resolve(config.dataDir), keyring, needs);
}

async function openPostgres(url: string, keyring: Keyring, needs: StoreNeeds): Promise<OpenStores> {
  const pool = openPool(url);
  try {
    // The audit store checks actors against the keys, so it needs them even where nothing else does.
    const keys = needs.keys || needs.audit || needs.keyIds ? await PostgresKeyStore.connect(pool) : undefined;
    const audit = needs.audit ? await PostgresAuditStore.connect(pool, { keyring, isKnownKeyId: (id) => keys!.has(id) }) : undefined;
    const vault = needs.vault ? await PostgresVault.connect(pool, keyring) : undefined;
    const modelCalls = needs.modelCalls ? await PostgresModelCallLedger.connect(pool) : undefined;
    return {
      keys: needs.keys ? keys : undefined,
      audit,
      vault,
      keyIds: needs.keyIds ? keys!.ids : undefined,
      modelCalls,
      close: () => pool.end(),
    };
  } catch (err) {
    await pool.end();
    throw err;
  }
}

async function openSqlite(dataDir: string, keyring: Keyring, needs: StoreNeeds): Promise<OpenStores> {
  const keysFile = join(dataDir, 'warden.db');
  const keys = needs.keys ? KeyStore.open(keysFile) : undefined;
  // A worker does not own the key file: it reads which ids exist, once the API has made it.
  const directory = !keys && (needs.audit || needs.keyIds) ? new KeyIdDirectory(keysFile) : undefined;
  const keyIds = keys?.ids ?? directory;
  const audit = needs.audit ? AuditStore.open(join(dataDir, 'audit.db'), { keyring, isKnownKeyId: (id) => keyIds!.has(id) }) : undefined;
  const vault = needs.vault ? Vault.open(join(dataDir, 'vault.db'), keyring) : undefined;
  const modelCalls = needs.modelCalls ? ModelCallLedger.open(join(dataDir, 'model-calls.db')) : undefined;
  return {
    keys,
    audit,
    vault,
    keyIds: needs.keyIds ? keyIds : undefined,
    modelCalls,
    async close() {
      await audit?.close();
      await vault?.close();
      await modelCalls?.close();
      await (keys ?? directory)?.close();
    },
  };
}
