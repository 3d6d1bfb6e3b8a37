/**
 * Console sessions in the key store, on each back end (SQLite and PostgreSQL), on a clock the
 * test moves: expiry from sign-in, sign-out, revocation, a role read fresh, sessions another
 * connection (another API process) made, API processes starting at once on a fresh store, and a
 * database that holds nothing a reader could present.
 */
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConsoleSessions, SESSION_SECONDS } from '../../api/console/sessions.js';
import type { Identity } from '../../domain/roles.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import type { KeyStore } from '../../stores/key-store.js';
import { STORE_BACKENDS, type StorePlace } from '../support/store-backends.js';

describe.each(STORE_BACKENDS)('console sessions on $backend', ({ place: makePlace }) => {
  let place: StorePlace;
  let keys: KeyStore;
  let now: number;
  let sessions: ConsoleSessions;
  let alice: Identity;
  const advance = (seconds: number) => (now += seconds * 1000);
  const rows = () => place.tamper('keys', 'SELECT id_hash, key_id, expires_at FROM console_sessions');

  beforeEach(async () => {
    place = await makePlace();
    keys = await place.openKeys();
    now = Date.parse('2026-01-01T00:00:00Z');
    sessions = new ConsoleSessions(keys, () => now);
    const key = await keys.create('alice', 'approver', null);
    alice = (await keys.authenticate(key.key))!;
  });
  afterEach(async () => {
    await keys.close();
    await place.close();
  });

  it('last SESSION_SECONDS from sign-in, however active, then are gone and their rows swept', async () => {
    const session = await sessions.start(alice);
    const later = (advance(SESSION_SECONDS / 2), await sessions.start(alice));
    advance(SESSION_SECONDS / 2 - 1);
    expect((await sessions.find(session.id))?.identity).toEqual(alice);
    advance(1);
    expect(await sessions.find(session.id)).toBeNull();
    expect(await rows()).toHaveLength(1);
    expect(await sessions.find(later.id)).not.toBeNull();
    // Expired sessions nobody presents again are swept by the next sign-in.
    advance(SESSION_SECONDS);
    const last = await sessions.start(alice);
    expect((await rows()).map((r) => Buffer.from(r.id_hash as Buffer).toString('hex'))).toEqual([
      createHash('sha256').update(last.id).digest('hex'),
    ]);
  });

  it('end on sign-out, and every one of a key at once when it is revoked, even when a row is left behind', async () => {
    const [a, b] = [await sessions.start(alice), await sessions.start(alice)];
    await sessions.end(a.id);
    expect(await sessions.find(a.id)).toBeNull();
    expect(await sessions.find(b.id)).not.toBeNull();
    expect(await rows()).toHaveLength(1);
    await keys.revoke(alice.key_id);
    expect(await rows()).toEqual([]);
    expect(await sessions.find(b.id)).toBeNull();
    // A row of a revoked key (restored from a backup, say) stands for nobody, and is deleted when presented.
    const hash = createHash('sha256').update(b.id).digest();
    await place.tamper(
      'keys',
      'INSERT INTO console_sessions (id_hash, key_id, expires_at) VALUES (?, ?, ?)',
      hash,
      alice.key_id,
      now + 1000,
    );
    expect(await sessions.find(b.id)).toBeNull();
    expect(await rows()).toEqual([]);
  });

  it('read the identity fresh on every request: a role changed in the store applies at once', async () => {
    const session = await sessions.start(alice);
    await place.tamper('keys', "UPDATE api_keys SET role = 'viewer' WHERE id = ?", alice.key_id);
    expect((await sessions.find(session.id))?.identity.role).toBe('viewer');
  });

  it('made by one connection are honoured and ended by another, as by another API process', async () => {
    const elsewhere = await place.openKeys();
    try {
      const other = new ConsoleSessions(elsewhere, () => now);
      const session = await sessions.start(alice);
      expect(await other.find(session.id)).toEqual(session);
      await other.end(session.id);
      expect(await sessions.find(session.id)).toBeNull();
    } finally {
      await elsewhere.close();
    }
  });

  it('of four API processes starting at once on a fresh store are each honoured by the others', async () => {
    const fresh = await makePlace();
    const moduleUrl = (path: string) => JSON.stringify(pathToFileURL(join(PROJECT_ROOT, path)).href);
    // Each process opens the key store as api/main.ts does (making its tables), and signs someone in.
    const script = (name: string) => `
      const { openStores } = await import(${moduleUrl('stores/open-stores.ts')});
      const { Keyring } = await import(${moduleUrl('domain/keyring.ts')});
      const { ConsoleSessions } = await import(${moduleUrl('api/console/sessions.ts')});
      const keyring = Keyring.load({ masterKey: Buffer.alloc(32, 7).toString('base64'), dataDir: '.' });
      const stores = await openStores(${JSON.stringify({ dataDir: fresh.dataDir, databaseUrl: fresh.databaseUrl })}, keyring, { keys: true });
      const key = await stores.keys.create('${name}', 'viewer', null);
      const session = await new ConsoleSessions(stores.keys).start(await stores.keys.authenticate(key.key));
      console.log(JSON.stringify({ id: session.id, csrfToken: session.csrfToken, name: '${name}' }));
      await stores.close();`;
    const run = async (name: string) => {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script(name)], {
        cwd: PROJECT_ROOT,
      });
      return JSON.parse(stdout) as { id: string; csrfToken: string; name: string };
    };
    const started = await Promise.all(['api-1', 'api-2', 'api-3', 'api-4'].map(run));
    const freshKeys = await fresh.openKeys();
    try {
      const here = new ConsoleSessions(freshKeys);
      for (const session of started)
        expect(await here.find(session.id)).toMatchObject({ csrfToken: session.csrfToken, identity: { name: session.name } });
    } finally {
      await freshKeys.close();
      await fresh.close();
    }
  });

  it('store only the hash of the id: neither the id nor the CSRF token can be read back from the database', async () => {
    const session = await sessions.start(alice);
    const cells = (await place.tamper('keys', 'SELECT * FROM console_sessions')).flatMap((row) => Object.values(row));
    const dump = cells.map((v) => (Buffer.isBuffer(v) ? `${v.toString('base64url')} ${v.toString('hex')}` : String(v))).join(' ');
    expect(dump).not.toContain(session.id);
    expect(dump).not.toContain(session.csrfToken);
    const [row] = await rows();
    const hash = Buffer.from(row!.id_hash as Buffer);
    // The hash, presented as an id (in any spelling), is no session.
    expect(await sessions.find(hash.toString('base64url'))).toBeNull();
    expect(await sessions.find(hash.toString('hex'))).toBeNull();
    expect(await sessions.find(hash.toString('latin1'))).toBeNull();
    expect(await rows()).toHaveLength(1);
  });

  it('have random ids and CSRF tokens of 256 bits that say nothing of the key', async () => {
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const s = await sessions.start(alice);
      expect(s.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(s.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(s.csrfToken).not.toBe(s.id);
      expect(s.id).not.toContain(alice.key_id);
      expect((await sessions.find(s.id))?.csrfToken).toBe(s.csrfToken);
      ids.add(s.id);
    }
    expect(ids.size).toBe(50);
    expect(await sessions.find(undefined)).toBeNull();
    expect(await sessions.find('made-up')).toBeNull();
    expect(await sessions.find(randomBytes(32).toString('base64url'))).toBeNull();
  });
});
