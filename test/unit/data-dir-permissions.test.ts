/**
 * The data dir and what Warden writes there, checked with stat on real files: the dir 0700; the
 * key store, the vault and the audit log (with their -wal and -shm files) 0600, also when an older
 * Warden left them wider; the dev server's log as `make up` prepares it.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import { Vault } from '../../stores/vault.js';
import { KeyStore } from '../../stores/key-store.js';
import { Keyring } from '../../domain/keyring.js';
import { ensurePrivateFile } from '../../domain/private-files.js';

const MASTER_KEY = Buffer.from('data-dir-TEST-ONLY-master-key-01').toString('base64');
const mode = (path: string) => statSync(path).mode & 0o777;

let root: string;
let dataDir: string;
beforeEach(async () => {
  root = mkdtempSync(join(tmpdir(), 'warden-perms-'));
  dataDir = join(root, 'data');
});
afterEach(async () => rmSync(root, { recursive: true, force: true }));

/** Opens the three stores in the data dir and writes to each, as the API and the worker do. */
async function openStores() {
  const keyring = Keyring.load({ masterKey: MASTER_KEY, dataDir });
  const keys = KeyStore.open(join(dataDir, 'warden.db'));
  const vault = Vault.open(join(dataDir, 'vault.db'), keyring);
  const audit = AuditStore.open(join(dataDir, 'audit.db'), { keyring, isKnownKeyId: (id) => keys.has(id) });
  const created = await keys.create('ops', 'operator', null);
  await vault.put('DB_PASSWORD', 'hunter2');
  await audit.append({ key: 'k1', kind: 'key.created', actor: created.id, details: {} });
  return async () => (await keys.close(), await vault.close(), await audit.close());
}

const databases = () => ['warden.db', 'vault.db', 'audit.db'].flatMap((db) => [db, `${db}-wal`, `${db}-shm`]).map((f) => join(dataDir, f));

it('makes the data dir 0700 and every database, with its -wal and -shm files, 0600', async () => {
  const close = await openStores();
  try {
    expect(mode(dataDir)).toBe(0o700);
    // While open, in WAL mode, each database has its -wal and -shm files.
    for (const file of databases()) {
      expect(existsSync(file), file).toBe(true);
      expect(mode(file), file).toBe(0o600);
    }
  } finally {
    await close();
  }
});

it('narrows a data dir and databases an older Warden left readable to everyone', async () => {
  await (
    await openStores()
  )();
  chmodSync(dataDir, 0o755);
  // Companion files as a crash leaves them, world-readable.
  for (const file of databases()) {
    if (!existsSync(file)) closeSync(openSync(file, 'a'));
    chmodSync(file, 0o644);
  }
  const close = await openStores();
  try {
    expect(mode(dataDir)).toBe(0o700);
    for (const file of databases()) expect(mode(file), file).toBe(0o600);
  } finally {
    await close();
  }
});

it("prepares the dev server's log as `make up` does: 0600 in a 0700 dir, also when it existed wider", async () => {
  const log = join(root, '.warden', 'log', 'temporal.log');
  ensurePrivateFile(log);
  expect(mode(log)).toBe(0o600);
  expect(mode(join(root, '.warden', 'log'))).toBe(0o700);
  chmodSync(log, 0o644);
  mkdirSync(join(root, '.warden', 'log'), { recursive: true });
  ensurePrivateFile(log);
  expect(mode(log)).toBe(0o600);
});
