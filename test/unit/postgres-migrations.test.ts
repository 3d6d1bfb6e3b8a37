/**
 * Migrations on PostgreSQL: versioned, run by every process at start-up, applied once however
 * many processes start at the same moment; a database newer than the code is refused.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { migrate, openPool } from '../../stores/postgres/database.js';
import { AUDIT_MIGRATIONS } from '../../stores/postgres/audit-store.js';
import { KEY_MIGRATIONS } from '../../stores/postgres/key-store.js';
import { VAULT_MIGRATIONS } from '../../stores/postgres/vault.js';
import { createTestDatabase } from '../support/postgres.js';

const MASTER_KEY = Buffer.from('migrations-TEST-ONLY-master-key!').toString('base64');

async function appliedMigrations(url: string) {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query('SELECT store, version FROM warden_migrations ORDER BY store, version')).rows;
  } finally {
    await client.end();
  }
}

const EVERY_MIGRATION = [
  ...AUDIT_MIGRATIONS.map((m) => ({ store: 'audit', version: m.version })),
  ...KEY_MIGRATIONS.map((m) => ({ store: 'keys', version: m.version })),
  ...VAULT_MIGRATIONS.map((m) => ({ store: 'vault', version: m.version })),
].sort((a, b) => a.store.localeCompare(b.store) || a.version - b.version);

it('four processes starting at once against an empty database apply each migration once, and all open their stores', async () => {
  const url = await createTestDatabase(inject('postgresAdminUrl'));
  const openStoresUrl = JSON.stringify(pathToFileURL(join(PROJECT_ROOT, 'stores/open-stores.ts')).href);
  const keyringUrl = JSON.stringify(pathToFileURL(join(PROJECT_ROOT, 'domain/keyring.ts')).href);
  // Each process opens every store, as the API does, and writes to the audit log.
  const script = (name: string) => `
    const { openStores } = await import(${openStoresUrl});
    const { Keyring } = await import(${keyringUrl});
    const keyring = Keyring.load({ masterKey: ${JSON.stringify(MASTER_KEY)}, dataDir: '.' });
    const stores = await openStores({ dataDir: '.', databaseUrl: ${JSON.stringify(url)} }, keyring, { keys: true, audit: true, vault: true });
    await stores.audit.append({ key: 'started:${name}', kind: 'system.started', actor: 'system', details: { name: '${name}' } });
    await stores.close();`;
  const run = (name: string) =>
    promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(name)], { cwd: PROJECT_ROOT });
  await Promise.all(['api', 'control', 'sandbox-a', 'sandbox-b'].map(run));
  expect(await appliedMigrations(url)).toEqual(EVERY_MIGRATION);

  // Started again: nothing left to apply.
  const pool = openPool(url);
  try {
    expect(await migrate(pool, 'audit', AUDIT_MIGRATIONS)).toEqual([]);
    const entries = await pool.query('SELECT seq, key FROM audit.entries ORDER BY seq');
    expect(entries.rows.map((r) => r.seq)).toEqual([1, 2, 3, 4]);
    expect(new Set(entries.rows.map((r) => r.key))).toEqual(
      new Set(['started:api', 'started:control', 'started:sandbox-a', 'started:sandbox-b']),
    );
  } finally {
    await pool.end();
  }
});

it('migrations raced by several pools in one process apply once too', async () => {
  const url = await createTestDatabase(inject('postgresAdminUrl'));
  const pools = [1, 2, 3, 4, 5].map(() => openPool(url, { max: 1 }));
  try {
    const applied = await Promise.all(pools.map((pool) => migrate(pool, 'vault', VAULT_MIGRATIONS)));
    // Exactly one pool applied version 1; the others found it done.
    expect(applied.flat()).toEqual(VAULT_MIGRATIONS.map((m) => m.version));
    expect(await appliedMigrations(url)).toEqual(VAULT_MIGRATIONS.map((m) => ({ store: 'vault', version: m.version })));
  } finally {
    await Promise.all(pools.map((pool) => pool.end()));
  }
});

it('refuses a database whose schema is newer than this Warden knows, and changes nothing', async () => {
  const url = await createTestDatabase(inject('postgresAdminUrl'));
  const pool = openPool(url);
  try {
    await migrate(pool, 'keys', KEY_MIGRATIONS);
    await pool.query("INSERT INTO warden_migrations (store, version, description) VALUES ('keys', 99, 'from the future')");
    await expect(migrate(pool, 'keys', KEY_MIGRATIONS)).rejects.toThrow(/schema version 99, newer than this Warden knows/);
  } finally {
    await pool.end();
  }
});
