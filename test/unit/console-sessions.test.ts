/** Console sessions alone, on a clock the test moves: expiry, sign-out, revocation, and ids that carry nothing. */
import { describe, expect, it } from 'vitest';
import { ConsoleSessions, SESSION_SECONDS } from '../../api/console/sessions.js';
import type { Identity } from '../../domain/roles.js';

const alice: Identity = { key_id: 'key_000000000001', name: 'alice', role: 'approver' };

function sessions() {
  let now = Date.parse('2026-01-01T00:00:00Z');
  const revoked = new Set<string>();
  const store = new ConsoleSessions({ isRevoked: async (id) => revoked.has(id) }, () => now);
  return { store, revoked, advance: (seconds: number) => (now += seconds * 1000) };
}

describe('console sessions', () => {
  it('last SESSION_SECONDS from sign-in, then are gone', async () => {
    const { store, advance } = sessions();
    const session = store.start(alice);
    advance(SESSION_SECONDS - 1);
    expect((await store.find(session.id))?.identity).toEqual(alice);
    advance(1);
    expect(await store.find(session.id)).toBeNull();
  });

  it('end on sign-out and, at once, when their key is revoked', async () => {
    const { store, revoked } = sessions();
    const [a, b] = [store.start(alice), store.start(alice)];
    store.end(a.id);
    expect(await store.find(a.id)).toBeNull();
    expect(await store.find(b.id)).not.toBeNull();
    revoked.add(alice.key_id);
    expect(await store.find(b.id)).toBeNull();
    revoked.clear();
    expect(await store.find(b.id)).toBeNull();
  });

  it('have random ids and CSRF tokens of 256 bits that say nothing of the key', async () => {
    const { store } = sessions();
    const ids = new Set<string>();
    for (let i = 0; i < 100; i++) {
      const s = store.start(alice);
      expect(s.id).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(s.csrfToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(s.csrfToken).not.toBe(s.id);
      expect(s.id).not.toContain(alice.key_id);
      ids.add(s.id);
    }
    expect(ids.size).toBe(100);
    expect(await store.find(undefined)).toBeNull();
    expect(await store.find('made-up')).toBeNull();
  });
});
