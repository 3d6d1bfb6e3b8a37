/** KeyIdDirectory: the worker's read-only view of which API key ids exist, for checking audit actors. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { KeyIdDirectory, KeyStore } from '../../stores/key-store.js';

it('knows no id before the key store exists, then every key made, revoked ones too, without writing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-key-ids-'));
  const file = join(dir, 'warden.db');
  const directory = new KeyIdDirectory(file);
  try {
    expect(await directory.has('key_0123456789ab')).toBe(false);
    const keys = KeyStore.open(file);
    const kept = await keys.create('ops', 'operator', null);
    const revoked = await keys.create('old', 'viewer', null);
    await keys.revoke(revoked.id);
    expect(await directory.has(kept.id)).toBe(true);
    expect(await directory.has(revoked.id)).toBe(true);
    expect(await directory.has('key_0123456789ab')).toBe(false);
    expect(await directory.has("' OR 1=1 --")).toBe(false);
    await keys.close();
  } finally {
    await directory.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
