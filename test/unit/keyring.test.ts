import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { Keyring, keyId } from '../../domain/keyring.js';

const dir = () => mkdtempSync(join(tmpdir(), 'warden-keyring-'));

describe('Keyring', () => {
  it('creates a 0600 key file on first start, says where, and reads the same key back', () => {
    const dataDir = dir();
    const created: string[] = [];
    const a = Keyring.load({ dataDir, onKeyFileCreated: (p) => created.push(p) });
    expect(created).toEqual([join(dataDir, 'master-keys.json')]);
    expect(statSync(created[0]!).mode & 0o777).toBe(0o600);
    const b = Keyring.load({ dataDir, onKeyFileCreated: (p) => created.push(p) });
    expect(created).toHaveLength(1);
    expect(b.currentId).toBe(a.currentId);
    expect(b.derive('vault')).toEqual(a.derive('vault'));
  });

  it('derives different keys per purpose, and never the master key itself', () => {
    const master = randomBytes(32);
    const ring = Keyring.load({ masterKey: master.toString('base64'), dataDir: dir() });
    expect(ring.currentId).toBe(keyId(master));
    expect(ring.derive('vault')).not.toEqual(ring.derive('payload'));
    expect(ring.derive('vault')).not.toEqual(master);
  });

  it('keeps previous keys for decryption and refuses unknown ids and malformed keys', () => {
    const [oldKey, newKey] = [randomBytes(32), randomBytes(32)];
    const ring = Keyring.load({ masterKey: newKey.toString('base64'), previousMasterKeys: oldKey.toString('base64'), dataDir: dir() });
    expect(ring.ids().sort()).toEqual([keyId(oldKey), keyId(newKey)].sort());
    expect(() => ring.derive('vault', 'feedfacefeedface')).toThrow(/no master key with id feedfacefeedface/);
    expect(() => ring.rotate()).toThrow(/WARDEN_MASTER_KEY_PREVIOUS/);
    expect(() => Keyring.load({ masterKey: 'c2hvcnQ=', dataDir: dir() })).toThrow(/WARDEN_MASTER_KEY must be 32 random bytes/);
  });

  it('rotation in key-file mode adds a new current key that other processes pick up', () => {
    const dataDir = dir();
    const api = Keyring.load({ dataDir });
    const worker = Keyring.load({ dataDir });
    const oldId = api.currentId;
    const newId = api.rotate();
    expect(newId).not.toBe(oldId);
    expect(Object.keys(JSON.parse(readFileSync(join(dataDir, 'master-keys.json'), 'utf8')).keys)).toHaveLength(2);
    // The worker has never seen the new key: it re-reads the file instead of failing.
    expect(worker.derive('payload', newId)).toEqual(api.derive('payload', newId));
    expect(worker.derive('payload', oldId)).toEqual(api.derive('payload', oldId));
  });
});
