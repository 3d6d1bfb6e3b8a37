/**
 * The API keys' contract, on each back end (SQLite and PostgreSQL): a key is shown once and kept
 * as a hash, authenticates until revoked, and counts as the right person; a worker, which does not
 * own the keys, is told which ids exist and which are revoked, failing closed.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Keyring } from '../../domain/keyring.js';
import type { KeyStore } from '../../stores/key-store.js';
import { openStores } from '../../stores/open-stores.js';
import { STORE_BACKENDS, type StorePlace } from '../support/store-backends.js';

describe.each(STORE_BACKENDS)('API keys on $backend', ({ place: makePlace }) => {
  let place: StorePlace;
  let keys: KeyStore;
  beforeEach(async () => {
    place = await makePlace();
    keys = await place.openKeys();
  });
  afterEach(async () => {
    await keys.close();
    await place.close();
  });

  it('creates, authenticates, lists and revokes; only the hash is stored', async () => {
    expect(await keys.hasActiveAdmin()).toBe(false);
    const admin = await keys.create('root', 'admin', null);
    const viewer = await keys.create('dash', 'viewer', admin.id, { person: 'dana' });
    expect(await keys.hasActiveAdmin()).toBe(true);
    expect(await keys.authenticate(viewer.key)).toEqual({ key_id: viewer.id, name: 'dash', role: 'viewer', person: 'root' });
    expect(await keys.authenticate(`${viewer.key}x`)).toBeNull();
    // Listed by creation time; two keys made in the same millisecond may come in either order.
    expect((await keys.list()).map((k) => k.id).sort()).toEqual([admin.id, viewer.id].sort());
    // Listed, each key counts as the person it authenticates as: the viewer an admin made counts as that admin.
    expect(Object.fromEntries((await keys.list()).map((k) => [k.id, k.counts_as]))).toEqual({ [admin.id]: 'root', [viewer.id]: 'root' });
    expect(JSON.stringify(await place.tamper('keys', 'SELECT * FROM api_keys'))).not.toContain(viewer.key);
    // Another connection (another process) sees the same keys.
    const elsewhere = await place.openKeys();
    expect(await elsewhere.has(viewer.id)).toBe(true);
    expect(await keys.revoke(viewer.id)).toMatchObject({ id: viewer.id, revoked_at: expect.any(String) });
    const revokedAt = (await keys.get(viewer.id))!.revoked_at;
    expect((await keys.revoke(viewer.id))!.revoked_at).toBe(revokedAt);
    expect(await elsewhere.authenticate(viewer.key)).toBeNull();
    expect(await elsewhere.isRevoked(viewer.id)).toBe(true);
    expect(await elsewhere.has(viewer.id)).toBe(true);
    expect(await keys.revoke('key_000000000000')).toBeNull();
    await elsewhere.close();
  });

  it('ensures a configured admin key once; a key confirmed by another admin counts as its holder', async () => {
    expect(await keys.ensure('admin (env)', 'admin', 'wk_configured-admin-key-0123456789')).toBe(true);
    expect(await keys.ensure('admin (env)', 'admin', 'wk_configured-admin-key-0123456789')).toBe(false);
    const root = (await keys.authenticate('wk_configured-admin-key-0123456789'))!;
    const made = await keys.create('erin', 'approver', root.key_id);
    expect(made.counts_as).toBe('admin (env)');
    const other = await keys.create('olga', 'admin', null);
    expect(await keys.confirm(made.id, { key_id: other.id, name: 'olga', role: 'admin', person: 'olga' })).toBeNull();
    expect(await keys.countsAs(made.id)).toBe('erin');
    expect((await keys.list()).find((k) => k.id === made.id)).toMatchObject({ person: 'erin', counts_as: 'erin' });
    expect(await keys.confirm(made.id, 'host')).toMatch(/already its holder's own/);
  });

  it('tells a worker which key ids exist and which are revoked; an id the store does not know counts as revoked', async () => {
    const kept = await keys.create('ops', 'operator', null);
    const revoked = await keys.create('old', 'viewer', null);
    await keys.revoke(revoked.id);
    // As the worker opens its stores: its own process, the key store owned by the API.
    const keyring = Keyring.load({ dataDir: place.dataDir });
    const worker = await openStores({ dataDir: place.dataDir, databaseUrl: place.databaseUrl }, keyring, { keyIds: true });
    try {
      const keyIds = worker.keyIds!;
      expect(await keyIds.has(kept.id)).toBe(true);
      expect(await keyIds.has(revoked.id)).toBe(true);
      expect(await keyIds.has('key_0123456789ab')).toBe(false);
      expect(await keyIds.isRevoked(kept.id)).toBe(false);
      expect(await keyIds.isRevoked(revoked.id)).toBe(true);
      // A grant naming a key this store never made (another installation's, say) acts for no one.
      expect(await keyIds.isRevoked('key_0123456789ab')).toBe(true);
    } finally {
      await worker.close();
    }
  });
});
