/**
 * The vault's contract, on each back end (SQLite and PostgreSQL): round trips, bad input, a wrong
 * key or a changed ciphertext never giving garbage, rotation all or nothing; and, for the SQLite
 * file, no plaintext on disk.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Keyring } from '../../domain/keyring.js';
import { VaultError, type Vault } from '../../stores/vault.js';
import { STORE_BACKENDS, type StorePlace } from '../support/store-backends.js';

const masterKey = () => randomBytes(32).toString('base64');

async function codeOf(fn: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await fn();
  } catch (err) {
    if (err instanceof VaultError) return err.code;
    throw err;
  }
  return undefined;
}

describe.each(STORE_BACKENDS)('the vault on $backend', ({ backend, place: makePlace }) => {
  let place: StorePlace;
  beforeEach(async () => {
    place = await makePlace();
  });
  afterEach(async () => place.close());

  /** The vault here, as a process with these master keys opens it (the key file in the data dir without them). */
  const openVault = (keys: { masterKey?: string; previousMasterKeys?: string } = {}): Promise<Vault> =>
    place.openVault(Keyring.load({ dataDir: place.dataDir, ...keys }));

  it('round trip: put, list (no values), reveal, replace, delete', async () => {
    const vault = await openVault();
    expect(await vault.put('DB_PASSWORD', 'correct horse')).toMatchObject({ name: 'DB_PASSWORD', created: true });
    expect(await vault.put('API_TOKEN', 'tok\nen with newline ✓')).toMatchObject({ created: true });
    const replaced = await vault.put('DB_PASSWORD', 'battery staple');
    expect(replaced.created).toBe(false);
    expect((await vault.list()).map((s) => s.name)).toEqual(['API_TOKEN', 'DB_PASSWORD']);
    expect(JSON.stringify(await vault.list())).not.toContain('staple');
    expect(await vault.reveal(['DB_PASSWORD', 'API_TOKEN'])).toEqual(
      new Map([
        ['DB_PASSWORD', 'battery staple'],
        ['API_TOKEN', 'tok\nen with newline ✓'],
      ]),
    );
    expect(await vault.has('API_TOKEN')).toBe(true);
    expect(await vault.delete('DB_PASSWORD')).toBe(true);
    expect(await vault.delete('DB_PASSWORD')).toBe(false);
    expect(await vault.has('DB_PASSWORD')).toBe(false);
    await expect(vault.reveal(['DB_PASSWORD', 'NOPE'])).rejects.toThrow('no secret named DB_PASSWORD, NOPE in the vault');
  });

  it('keeps no plaintext where the secrets are stored', async () => {
    const vault = await openVault();
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    await vault.put('CANARY', canary);
    const rows = await place.tamper('vault', 'SELECT * FROM secrets');
    expect(JSON.stringify(rows)).not.toContain(canary);
    expect(Buffer.concat(rows.map((r) => r.ciphertext as Buffer)).includes(canary)).toBe(false);
    if (backend !== 'SQLite') return;
    // Open, so the new row is still in the write-ahead log; then closed, so it is in the main file.
    const files = () =>
      ['vault.db', 'vault.db-wal']
        .map((f) => join(place.dataDir, f))
        .filter(existsSync)
        .map((f) => readFileSync(f));
    const open = Buffer.concat(files());
    await vault.close();
    const bytes = Buffer.concat([open, ...files()]);
    expect(bytes.includes(canary)).toBe(false);
    expect(bytes.includes('CANARY')).toBe(true);
  });

  it('refuses bad names and values with invalid_secret', async () => {
    const vault = await openVault();
    expect(await codeOf(() => vault.put('lower', 'x'))).toBe('invalid_secret');
    expect(await codeOf(() => vault.put('1ABC', 'x'))).toBe('invalid_secret');
    expect(await codeOf(() => vault.put('WARDEN_EXEC_ID', 'x'))).toBe('invalid_secret');
    expect(await codeOf(() => vault.put('EMPTY', ''))).toBe('invalid_secret');
    expect(await codeOf(() => vault.put('NUL', 'a\0b'))).toBe('invalid_secret');
    expect(await codeOf(() => vault.put('BIG', 'x'.repeat(64 * 1024 + 1)))).toBe('invalid_secret');
    expect(await vault.list()).toEqual([]);
  });

  it('a wrong master key fails with key_unavailable or decryption_failed, never garbage', async () => {
    const key = masterKey();
    await (await openVault({ masterKey: key })).put('DB_PASSWORD', 'correct horse');
    // Another key: the stored key id is unknown to this keyring.
    const stranger = await openVault({ masterKey: masterKey() });
    expect(await codeOf(() => stranger.reveal(['DB_PASSWORD']))).toBe('key_unavailable');
    // Another key under the stored key id: authentication fails.
    const other = Keyring.load({ dataDir: place.dataDir, masterKey: masterKey() });
    await place.tamper('vault', 'UPDATE secrets SET key_id = ?', other.currentId);
    const impostor = await place.openVault(other);
    expect(await codeOf(() => impostor.reveal(['DB_PASSWORD']))).toBe('decryption_failed');
  });

  it('a changed ciphertext, nonce or swapped name fails with decryption_failed', async () => {
    const vault = await openVault({ masterKey: masterKey() });
    await vault.put('A', 'value of a');
    await vault.put('B', 'value of b');
    const [row] = (await place.tamper('vault', "SELECT ciphertext, nonce FROM secrets WHERE name = 'A'")) as Array<{
      ciphertext: Buffer;
      nonce: Buffer;
    }>;
    const flipped = Buffer.from(row!.ciphertext);
    flipped[0]! ^= 1;
    await place.tamper('vault', "UPDATE secrets SET ciphertext = ? WHERE name = 'A'", flipped);
    expect(await codeOf(() => vault.reveal(['A']))).toBe('decryption_failed');
    await place.tamper('vault', "UPDATE secrets SET ciphertext = ?, nonce = ? WHERE name = 'B'", row!.ciphertext, row!.nonce);
    expect(await codeOf(() => vault.reveal(['B']))).toBe('decryption_failed');
  });

  it('key-file rotation makes a new master key and re-encrypts N of N; values read back', async () => {
    const vault = await openVault();
    for (let i = 0; i < 5; i++) await vault.put(`S${i}`, `value ${i}`);
    const before = (await vault.list())[0]!.key_id;
    const result = await vault.rotate();
    expect(result).toMatchObject({ reencrypted: 5, total: 5, new_master_key: true });
    expect(result.key_id).not.toBe(before);
    expect(new Set((await vault.list()).map((s) => s.key_id))).toEqual(new Set([result.key_id]));
    // A fresh process reads the rotated key file and every value.
    const again = await openVault();
    expect([...(await again.reveal(['S0', 'S1', 'S2', 'S3', 'S4'])).values()]).toEqual([0, 1, 2, 3, 4].map((i) => `value ${i}`));
  });

  it('env rotation: re-encrypts under the new WARDEN_MASTER_KEY; the old key is then not needed', async () => {
    const oldKey = masterKey();
    const newKey = masterKey();
    await (await openVault({ masterKey: oldKey })).put('DB_PASSWORD', 'correct horse');
    const rotating = await openVault({ masterKey: newKey, previousMasterKeys: oldKey });
    expect(await rotating.rotate()).toMatchObject({ reencrypted: 1, total: 1, new_master_key: false });
    expect((await (await openVault({ masterKey: newKey })).reveal(['DB_PASSWORD'])).get('DB_PASSWORD')).toBe('correct horse');
  });

  it('rotation is all or nothing: one undecryptable secret changes nothing', async () => {
    const oldKey = masterKey();
    await (await openVault({ masterKey: oldKey })).put('A', 'a');
    const newKey = masterKey();
    await (await openVault({ masterKey: newKey, previousMasterKeys: oldKey })).put('B', 'b');
    // Without the old key, A cannot be re-encrypted: B must stay as it was too.
    const vault = await openVault({ masterKey: masterKey(), previousMasterKeys: newKey });
    const before = await vault.list();
    expect(await codeOf(() => vault.rotate())).toBe('key_unavailable');
    expect(await vault.list()).toEqual(before);
  });
});
