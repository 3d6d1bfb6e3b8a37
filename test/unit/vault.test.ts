import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { Keyring } from '../../domain/keyring.js';
import { openVault, Vault, VaultError } from '../../stores/vault.js';

const dir = () => mkdtempSync(join(tmpdir(), 'warden-vault-'));
const masterKey = () => randomBytes(32).toString('base64');

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof VaultError) return err.code;
    throw err;
  }
  return undefined;
}

describe('Vault', () => {
  it('round trip: put, list (no values), reveal, replace, delete', () => {
    const vault = openVault({ dataDir: dir() });
    expect(vault.put('DB_PASSWORD', 'correct horse')).toMatchObject({ name: 'DB_PASSWORD', created: true });
    expect(vault.put('API_TOKEN', 'tok\nen with newline ✓')).toMatchObject({ created: true });
    const replaced = vault.put('DB_PASSWORD', 'battery staple');
    expect(replaced.created).toBe(false);
    expect(vault.list().map((s) => s.name)).toEqual(['API_TOKEN', 'DB_PASSWORD']);
    expect(JSON.stringify(vault.list())).not.toContain('staple');
    expect(vault.reveal(['DB_PASSWORD', 'API_TOKEN'])).toEqual(
      new Map([
        ['DB_PASSWORD', 'battery staple'],
        ['API_TOKEN', 'tok\nen with newline ✓'],
      ]),
    );
    expect(vault.delete('DB_PASSWORD')).toBe(true);
    expect(vault.delete('DB_PASSWORD')).toBe(false);
    expect(() => vault.reveal(['DB_PASSWORD', 'NOPE'])).toThrow('no secret named DB_PASSWORD, NOPE in the vault');
  });

  it('stores no plaintext in the database file', () => {
    const dataDir = dir();
    const vault = openVault({ dataDir });
    const canary = `canary-${randomBytes(8).toString('hex')}`;
    vault.put('CANARY', canary);
    // Open, so the new row is still in the write-ahead log; then closed, so it is in the main file.
    const files = () =>
      ['vault.db', 'vault.db-wal']
        .map((f) => join(dataDir, f))
        .filter(existsSync)
        .map((f) => readFileSync(f));
    const open = Buffer.concat(files());
    vault.close();
    const bytes = Buffer.concat([open, ...files()]);
    expect(bytes.includes(canary)).toBe(false);
    expect(bytes.includes('CANARY')).toBe(true);
  });

  it('refuses bad names and values with invalid_secret', () => {
    const vault = openVault({ dataDir: dir() });
    expect(codeOf(() => vault.put('lower', 'x'))).toBe('invalid_secret');
    expect(codeOf(() => vault.put('1ABC', 'x'))).toBe('invalid_secret');
    expect(codeOf(() => vault.put('WARDEN_EXEC_ID', 'x'))).toBe('invalid_secret');
    expect(codeOf(() => vault.put('EMPTY', ''))).toBe('invalid_secret');
    expect(codeOf(() => vault.put('NUL', 'a\0b'))).toBe('invalid_secret');
    expect(codeOf(() => vault.put('BIG', 'x'.repeat(64 * 1024 + 1)))).toBe('invalid_secret');
    expect(vault.list()).toEqual([]);
  });

  it('a wrong master key fails with key_unavailable or decryption_failed, never garbage', () => {
    const dataDir = dir();
    const key = masterKey();
    openVault({ dataDir, masterKey: key }).put('DB_PASSWORD', 'correct horse');
    // Another key: the stored key id is unknown to this keyring.
    expect(codeOf(() => openVault({ dataDir, masterKey: masterKey() }).reveal(['DB_PASSWORD']))).toBe('key_unavailable');
    // Another key under the stored key id: authentication fails.
    const db = new Database(join(dataDir, 'vault.db'));
    const other = Keyring.load({ dataDir, masterKey: masterKey() });
    db.prepare('UPDATE secrets SET key_id = ?').run(other.currentId);
    db.close();
    expect(codeOf(() => Vault.open(join(dataDir, 'vault.db'), other).reveal(['DB_PASSWORD']))).toBe('decryption_failed');
  });

  it('a changed ciphertext, nonce or swapped name fails with decryption_failed', () => {
    const dataDir = dir();
    const key = masterKey();
    const vault = openVault({ dataDir, masterKey: key });
    vault.put('A', 'value of a');
    vault.put('B', 'value of b');
    const db = new Database(join(dataDir, 'vault.db'));
    const row = db.prepare("SELECT ciphertext, nonce FROM secrets WHERE name = 'A'").get() as { ciphertext: Buffer; nonce: Buffer };
    const flipped = Buffer.from(row.ciphertext);
    flipped[0]! ^= 1;
    db.prepare("UPDATE secrets SET ciphertext = ? WHERE name = 'A'").run(flipped);
    expect(codeOf(() => vault.reveal(['A']))).toBe('decryption_failed');
    db.prepare("UPDATE secrets SET ciphertext = ?, nonce = ? WHERE name = 'B'").run(row.ciphertext, row.nonce);
    expect(codeOf(() => vault.reveal(['B']))).toBe('decryption_failed');
    db.close();
  });

  it('key-file rotation makes a new master key and re-encrypts N of N; values read back', () => {
    const dataDir = dir();
    const vault = openVault({ dataDir });
    for (let i = 0; i < 5; i++) vault.put(`S${i}`, `value ${i}`);
    const before = vault.list()[0]!.key_id;
    const result = vault.rotate();
    expect(result).toMatchObject({ reencrypted: 5, total: 5, new_master_key: true });
    expect(result.key_id).not.toBe(before);
    expect(new Set(vault.list().map((s) => s.key_id))).toEqual(new Set([result.key_id]));
    // A fresh process reads the rotated key file and every value.
    const again = openVault({ dataDir });
    expect([...again.reveal(['S0', 'S1', 'S2', 'S3', 'S4']).values()]).toEqual([0, 1, 2, 3, 4].map((i) => `value ${i}`));
  });

  it('env rotation: re-encrypts under the new WARDEN_MASTER_KEY; the old key is then not needed', () => {
    const dataDir = dir();
    const oldKey = masterKey();
    const newKey = masterKey();
    openVault({ dataDir, masterKey: oldKey }).put('DB_PASSWORD', 'correct horse');
    const rotating = openVault({ dataDir, masterKey: newKey, previousMasterKeys: oldKey });
    expect(rotating.rotate()).toMatchObject({ reencrypted: 1, total: 1, new_master_key: false });
    expect(openVault({ dataDir, masterKey: newKey }).reveal(['DB_PASSWORD']).get('DB_PASSWORD')).toBe('correct horse');
  });

  it('rotation is all or nothing: one undecryptable secret changes nothing', () => {
    const dataDir = dir();
    const oldKey = masterKey();
    openVault({ dataDir, masterKey: oldKey }).put('A', 'a');
    const newKey = masterKey();
    openVault({ dataDir, masterKey: newKey, previousMasterKeys: oldKey }).put('B', 'b');
    // Without the old key, A cannot be re-encrypted: B must stay as it was too.
    const vault = openVault({ dataDir, masterKey: masterKey(), previousMasterKeys: newKey });
    const before = vault.list();
    expect(codeOf(() => vault.rotate())).toBe('key_unavailable');
    expect(vault.list()).toEqual(before);
  });
});
