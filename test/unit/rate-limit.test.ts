/**
 * Rate limiting with a fake clock: a bucket of capacity B at rate R admits B + R·t (±1) requests
 * over t seconds; the RateLimit headers, Retry-After and the 429 body; API keys, addresses and
 * route groups have buckets of their own; failed authentications from an address are limited
 * without ever refusing a valid key; the in-memory store stays bounded; the configuration is
 * parsed and bad entries are named.
 */
import fc from 'fast-check';
import { Hono } from 'hono';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KeyStore } from '../../stores/key-store.js';
import { apiKeyAuth, type AuthEnv } from '../../api/middleware/auth.js';
import { authFailureLimit, clientAddress, MemoryRateLimitStore, rateLimit } from '../../api/middleware/rate-limit.js';
import { loadConfig } from '../../domain/config.js';
import { parseRateLimits, type RateLimits } from '../../domain/rate-limits.js';

describe('MemoryRateLimitStore', () => {
  it('a bucket of capacity B at rate R admits B + R·t requests (±1) over t seconds', async () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 50 }),
        fc.double({ min: 0.1, max: 20, noNaN: true }),
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 250 }),
        (capacity, perSecond, seconds, stepMs) => {
          // Asked this often, the drained bucket never overflows: every token that arrives is taken.
          fc.pre(capacity >= 1 + (perSecond * stepMs) / 1000);
          const store = new MemoryRateLimitStore();
          let admitted = 0;
          // Every stepMs from t = 0 to t = seconds, the client asks until it is refused.
          for (let now = 0; now <= seconds * 1000; now += stepMs) {
            while (store.take('k', { capacity, perSecond }, now).allowed) admitted++;
          }
          const lastAsk = Math.floor((seconds * 1000) / stepMs) * stepMs;
          const expected = capacity + (perSecond * lastAsk) / 1000;
          // ±1, plus floating-point dust from adding fractions of tokens.
          expect(Math.abs(admitted - expected)).toBeLessThanOrEqual(1 + 1e-6);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('admits exactly B + R·t when asked every millisecond (B 10, R 2/s, t 30 s: 70)', async () => {
    const store = new MemoryRateLimitStore();
    let admitted = 0;
    for (let now = 0; now <= 30_000; now++) if (store.take('k', { capacity: 10, perSecond: 2 }, now).allowed) admitted++;
    expect(admitted).toBe(70);
  });

  it('reports remaining tokens, the seconds until full, and the seconds until the next token', async () => {
    const store = new MemoryRateLimitStore();
    const rule = { capacity: 3, perSecond: 0.5 };
    expect(store.take('k', rule, 0)).toEqual({ allowed: true, remaining: 2, resetSeconds: 2, retryAfterSeconds: 0 });
    store.take('k', rule, 0);
    expect(store.take('k', rule, 0)).toEqual({ allowed: true, remaining: 0, resetSeconds: 6, retryAfterSeconds: 0 });
    expect(store.take('k', rule, 0)).toEqual({ allowed: false, remaining: 0, resetSeconds: 6, retryAfterSeconds: 2 });
    expect(store.take('k', rule, 1000)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    expect(store.take('k', rule, 2000)).toMatchObject({ allowed: true, remaining: 0 });
    // A clock that goes backwards adds no tokens.
    expect(store.take('k', rule, 0).allowed).toBe(false);
  });

  it('looking without consuming takes nothing and stores nothing for an unknown key', async () => {
    const store = new MemoryRateLimitStore();
    const rule = { capacity: 1, perSecond: 1 };
    expect(store.take('k', rule, 0, false).allowed).toBe(true);
    expect(store.size).toBe(0);
    store.take('k', rule, 0);
    expect(store.take('k', rule, 0, false)).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
  });

  it('stays bounded: refilled buckets are dropped first, then the least recently used', async () => {
    const store = new MemoryRateLimitStore(100);
    const rule = { capacity: 5, perSecond: 1 };
    for (let i = 0; i < 10_000; i++) store.take(`addr-${i}`, rule, 0);
    expect(store.size).toBeLessThanOrEqual(100);
    // A recently used, nearly empty bucket survives a flood of new keys.
    for (let i = 0; i < 5; i++) store.take('victim', rule, 0);
    for (let i = 0; i < 50; i++) store.take(`new-${i}`, rule, 0);
    expect(store.take('victim', rule, 0).allowed).toBe(false);
    // Refilled buckets are the same as none: they go first.
    for (let i = 0; i < 200; i++) store.take(`later-${i}`, rule, 10_000);
    expect(store.size).toBeLessThanOrEqual(100);
  });
});

describe('rateLimit and authFailureLimit middleware', () => {
  let keys: KeyStore;
  let now: number;
  let alice: string;
  let bob: string;

  beforeEach(async () => {
    keys = KeyStore.open(':memory:');
    alice = (await keys.create('alice', 'operator', null)).key;
    bob = (await keys.create('bob', 'operator', null)).key;
    now = 1_000_000;
  });
  afterEach(async () => await keys.close());

  function appWith(limitsText: string, trustProxy = 0) {
    const limiter = { limits: parseRateLimits(limitsText)!, store: new MemoryRateLimitStore(), clock: () => now, trustProxy };
    const app = new Hono<AuthEnv>();
    app.use('/api/*', authFailureLimit(limiter));
    app.use('/api/*', apiKeyAuth({ keys }));
    app.use('/api/*', rateLimit(limiter));
    app.get('/api/things', (c) => c.json({ ok: true }));
    app.post('/api/things', (c) => c.json({ ok: true }, 201));
    app.post('/api/actions/:id/approve', (c) => c.json({ ok: true }));
    return app;
  }
  const call = (app: Hono<AuthEnv>, key: string | null, method = 'GET', path = '/api/things', from?: string) =>
    app.request(path, {
      method,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), ...(from ? { 'x-forwarded-for': from } : {}) },
    });

  it('sets the RateLimit headers, then answers 429 with Retry-After and a JSON error', async () => {
    const app = appWith('read=3/6s');
    const first = await call(app, alice);
    expect(first.status).toBe(200);
    expect(Object.fromEntries([...first.headers].filter(([h]) => h.startsWith('ratelimit')))).toEqual({
      'ratelimit-limit': '3',
      'ratelimit-remaining': '2',
      'ratelimit-reset': '2',
      'ratelimit-policy': '3;w=6',
    });
    await call(app, alice);
    expect((await call(app, alice)).headers.get('ratelimit-remaining')).toBe('0');
    const refused = await call(app, alice);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('2');
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    expect(refused.headers.get('ratelimit-reset')).toBe('6');
    expect(await refused.json()).toEqual({
      error: { code: 'rate_limited', message: 'too many read requests from this address; retry in 2 s' },
    });
    now += 2000;
    expect((await call(app, alice)).status).toBe(200);
    expect((await call(app, alice)).status).toBe(429);
  });

  it('API keys have buckets of their own', async () => {
    const app = appWith('key.read=2/min,address.read=100/min');
    expect((await call(app, alice)).status).toBe(200);
    expect((await call(app, alice)).status).toBe(200);
    const refused = await call(app, alice);
    expect(refused.status).toBe(429);
    expect((await refused.json()).error.message).toMatch(/from this API key; retry in 30 s/);
    expect((await call(app, bob)).status).toBe(200);
  });

  it('addresses have buckets of their own (X-Forwarded-For believed only with trustProxy)', async () => {
    const app = appWith('key.read=100/min,address.read=2/min', 1);
    expect((await call(app, alice, 'GET', '/api/things', '203.0.113.7')).status).toBe(200);
    expect((await call(app, alice, 'GET', '/api/things', '203.0.113.7')).status).toBe(200);
    expect((await call(app, alice, 'GET', '/api/things', '203.0.113.7')).status).toBe(429);
    expect((await call(app, alice, 'GET', '/api/things', '198.51.100.1')).status).toBe(200);

    // Without a trusted proxy the header is the client's own claim: every request here is one address.
    const untrusting = appWith('key.read=100/min,address.read=2/min');
    expect((await call(untrusting, alice, 'GET', '/api/things', '203.0.113.7')).status).toBe(200);
    expect((await call(untrusting, alice, 'GET', '/api/things', '198.51.100.1')).status).toBe(200);
    expect((await call(untrusting, alice, 'GET', '/api/things', '192.0.2.9')).status).toBe(429);
  });

  it('read, write and approve are separate groups', async () => {
    const app = appWith('read=1/min,write=1/min,approve=1/min');
    expect((await call(app, alice, 'GET')).status).toBe(200);
    expect((await call(app, alice, 'GET')).status).toBe(429);
    expect((await call(app, alice, 'POST')).status).toBe(201);
    expect((await call(app, alice, 'POST')).status).toBe(429);
    expect((await call(app, alice, 'POST', '/api/actions/act-1/approve')).status).toBe(200);
    expect((await call(app, alice, 'POST', '/api/actions/act-1/approve')).status).toBe(429);
  });

  it('failed authentications from an address are limited: past the bucket they answer 429, and refill', async () => {
    const app = appWith('auth_failure=3/min', 1);
    for (let i = 0; i < 3; i++) expect((await call(app, 'wk_guess', 'GET', '/api/things', '203.0.113.7')).status).toBe(401);
    const refused = await call(app, 'wk_guess', 'GET', '/api/things', '203.0.113.7');
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('20');
    expect(refused.headers.get('www-authenticate')).toBeNull();
    expect((await refused.json()).error.message).toBe('too many failed authentications from this address; retry in 20 s');
    expect((await call(app, null, 'GET', '/api/things', '203.0.113.7')).status).toBe(429);
    // Other addresses have buckets of their own.
    expect((await call(app, 'wk_guess', 'GET', '/api/things', '198.51.100.1')).status).toBe(401);
    now += 20_000;
    expect((await call(app, 'wk_guess', 'GET', '/api/things', '203.0.113.7')).status).toBe(401);
    expect((await call(app, 'wk_guess', 'GET', '/api/things', '203.0.113.7')).status).toBe(429);
  });

  it("a valid key is never refused for others' failed authentications from its address", async () => {
    // The attack: twenty bogus keys from a shared address, then one more every 3 s to keep the bucket empty.
    const app = appWith('auth_failure=20/min');
    for (let i = 0; i < 20; i++) expect((await call(app, `wk_bogus${i}`)).status).toBe(401);
    expect((await call(app, 'wk_bogus')).status).toBe(429);
    for (let round = 0; round < 5; round++) {
      now += 3000;
      expect((await call(app, 'wk_bogus')).status).toBe(401);
      expect((await call(app, alice)).status).toBe(200);
      expect((await call(app, bob, 'POST')).status).toBe(201);
      expect((await call(app, 'wk_bogus')).status).toBe(429);
    }
  });

  it('requests with a valid key cost the failure bucket nothing', async () => {
    const app = appWith('auth_failure=2/min');
    for (let i = 0; i < 50; i++) expect((await call(app, alice)).status).toBe(200);
    expect((await call(app, 'wk_guess')).status).toBe(401);
    expect((await call(app, 'wk_guess')).status).toBe(401);
    expect((await call(app, 'wk_guess')).status).toBe(429);
  });

  it('the client address: the peer, or n hops back along X-Forwarded-For with n trusted proxies', async () => {
    const app = new Hono();
    app.get('/:n', (c) => c.text(clientAddress(c, Number(c.req.param('n')))));
    const at = async (n: number, xff?: string) => (await app.request(`/${n}`, { headers: xff ? { 'x-forwarded-for': xff } : {} })).text();
    // app.request has no socket: its peer is "unknown".
    expect(await at(0, '1.1.1.1')).toBe('unknown');
    expect(await at(1, '1.1.1.1, 2.2.2.2')).toBe('2.2.2.2');
    expect(await at(2, '1.1.1.1, 2.2.2.2')).toBe('1.1.1.1');
    expect(await at(3, '1.1.1.1, 2.2.2.2')).toBe('1.1.1.1');
    expect(await at(1)).toBe('unknown');
  });
});

describe('WARDEN_RATE_LIMITS', () => {
  const rule = (limits: RateLimits | null, scope: 'key' | 'address', group: keyof RateLimits['key']) => limits![scope][group];

  it('has defaults for every group and scope', async () => {
    const limits = parseRateLimits(loadConfig({}).rateLimits);
    expect(rule(limits, 'key', 'read')).toEqual({ capacity: 600, perSecond: 10 });
    expect(rule(limits, 'address', 'write')).toEqual({ capacity: 120, perSecond: 2 });
    expect(rule(limits, 'key', 'approve')).toEqual({ capacity: 30, perSecond: 0.5 });
    expect(rule(limits, 'address', 'auth_failure')).toEqual({ capacity: 20, perSecond: 20 / 60 });
  });

  it('overrides groups and scopes, with periods, multiples and bursts; off turns limiting off', async () => {
    const limits = parseRateLimits('write=5/s:20, address.read=1000/10min');
    expect(rule(limits, 'key', 'write')).toEqual({ capacity: 20, perSecond: 5 });
    expect(rule(limits, 'address', 'write')).toEqual({ capacity: 20, perSecond: 5 });
    expect(rule(limits, 'address', 'read')).toEqual({ capacity: 1000, perSecond: 1000 / 600 });
    expect(rule(limits, 'key', 'read')).toEqual({ capacity: 600, perSecond: 10 });
    expect(parseRateLimits('off')).toBeNull();
  });

  it('names a bad entry and the variable', async () => {
    expect(() => loadConfig({ WARDEN_RATE_LIMITS: 'read=ten/min' })).toThrow(
      /WARDEN_RATE_LIMITS: "read=ten\/min": expected <group>=<count>\/<period>/,
    );
    expect(() => parseRateLimits('reads=1/s')).toThrow(/unknown group reads/);
    expect(() => parseRateLimits('key.auth_failure=1/s')).toThrow(/per address only/);
    expect(() => parseRateLimits('read=0/s')).toThrow(/at least 1/);
    expect(() => parseRateLimits('read=5/0min')).toThrow(/expected <group>/);
    expect(() => loadConfig({ WARDEN_TRUST_PROXY: 'yes' })).toThrow(/WARDEN_TRUST_PROXY/);
  });
});
