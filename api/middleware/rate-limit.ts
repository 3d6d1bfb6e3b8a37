/**
 * Rate limiting with token buckets (limits from domain/rate-limits.ts): `rateLimit` charges each
 * /api request to its route group's bucket for the client address and for the API key;
 * `authFailureLimit` counts failed authentications per address and refuses further failures
 * once its bucket is empty, never a valid key. Headers follow draft-ietf-httpapi-ratelimit-headers-06:
 * RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset (seconds until the bucket is full again)
 * and RateLimit-Policy (`<capacity>;w=<seconds to refill it>`); a 429 adds Retry-After.
 */
import type { Context, MiddlewareHandler } from 'hono';
import { getConnInfo } from '@hono/node-server/conninfo';
import type { BucketRule, RateLimitGroup, RateLimits, RateLimitScope } from '../../domain/rate-limits.js';
import type { AuthEnv } from './auth.js';

export interface BucketState {
  allowed: boolean;
  /** Whole tokens left after this request. */
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds until the next token, when refused. */
  retryAfterSeconds: number;
}

/** Where buckets live: in memory by default; a shared store (Redis, SQL) implements the same call. */
export interface RateLimitStore {
  /** Refills the bucket for the time since it was last used, then takes a token if `consume` and it holds one. */
  take(key: string, rule: BucketRule, nowMs: number, consume?: boolean): BucketState | Promise<BucketState>;
}

interface Bucket {
  tokens: number;
  at: number;
  fullAt: number;
}

/** Buckets in a Map, bounded: past maxBuckets, refilled buckets go first (a full bucket is the same as none), then the least recently used. */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly buckets = new Map<string, Bucket>();

  constructor(private readonly maxBuckets = 100_000) {}

  get size() {
    return this.buckets.size;
  }

  take(key: string, rule: BucketRule, nowMs: number, consume = true): BucketState {
    const bucket = this.buckets.get(key);
    const elapsed = bucket ? Math.max(0, nowMs - bucket.at) / 1000 : 0;
    const tokens = bucket ? Math.min(rule.capacity, bucket.tokens + elapsed * rule.perSecond) : rule.capacity;
    const allowed = tokens >= 1;
    const left = allowed && consume ? tokens - 1 : tokens;
    if (bucket || left < rule.capacity) {
      // Delete and set again: the Map's order is then least recently used first.
      this.buckets.delete(key);
      this.buckets.set(key, { tokens: left, at: nowMs, fullAt: nowMs + ((rule.capacity - left) / rule.perSecond) * 1000 });
      if (this.buckets.size > this.maxBuckets) this.evict(nowMs);
    }
    return {
      allowed,
      remaining: Math.floor(left),
      resetSeconds: Math.ceil((rule.capacity - left) / rule.perSecond),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - left) / rule.perSecond)),
    };
  }

  private evict(nowMs: number) {
    for (const [key, bucket] of this.buckets) if (bucket.fullAt <= nowMs) this.buckets.delete(key);
    for (const key of this.buckets.keys()) {
      if (this.buckets.size <= this.maxBuckets * 0.9) break;
      this.buckets.delete(key);
    }
  }
}

export interface RateLimitOptions {
  limits: RateLimits;
  store: RateLimitStore;
  /** Milliseconds; tests pass a fake clock. Default Date.now. */
  clock?: () => number;
  /** Reverse proxies whose X-Forwarded-For entry is believed (WARDEN_TRUST_PROXY); default 0: the socket address. */
  trustProxy?: number;
}

/**
 * The client's address: the socket's peer (from @hono/node-server), or with `trustProxy` n, the
 * address n hops back along X-Forwarded-For (each trusted proxy appended the peer it saw).
 */
export function clientAddress(c: Context, trustProxy = 0): string {
  let peer = 'unknown';
  try {
    peer = getConnInfo(c).remote.address ?? peer;
  } catch {
    // Not served by @hono/node-server (app.request in tests): every such request shares one address.
  }
  if (trustProxy === 0) return peer;
  const forwarded = (c.req.header('x-forwarded-for') ?? '')
    .split(',')
    .map((a) => a.trim())
    .filter(Boolean);
  const chain = [...forwarded, peer];
  return chain[Math.max(0, chain.length - 1 - trustProxy)]!;
}

/** read: GET and HEAD; approve: POST …/approve (the console's …/decision); write: every other method. */
export function routeGroup(c: Context): Exclude<RateLimitGroup, 'auth_failure'> {
  if (c.req.method === 'GET' || c.req.method === 'HEAD') return 'read';
  return /\/(approve|decision)\/?$/.test(c.req.path) ? 'approve' : 'write';
}

function setHeaders(c: Context, rule: BucketRule, state: BucketState) {
  c.header('RateLimit-Limit', String(rule.capacity));
  c.header('RateLimit-Remaining', String(state.remaining));
  c.header('RateLimit-Reset', String(state.resetSeconds));
  c.header('RateLimit-Policy', `${rule.capacity};w=${Math.round(rule.capacity / rule.perSecond)}`);
}

function tooMany(c: Context, rule: BucketRule, state: BucketState, what: string) {
  setHeaders(c, rule, state);
  c.header('Retry-After', String(state.retryAfterSeconds));
  return c.json({ error: { code: 'rate_limited', message: `${what}; retry in ${state.retryAfterSeconds} s` } }, 429);
}

const scopeName: Record<RateLimitScope, string> = { address: 'address', key: 'API key' };

/** Charges the request to its group's bucket for the address, then for the API key (mount after apiKeyAuth). */
export function rateLimit<E extends AuthEnv = AuthEnv>(options: RateLimitOptions): MiddlewareHandler<E> {
  const clock = options.clock ?? Date.now;
  return async function rateLimitHandler(c, next) {
    const group = routeGroup(c);
    const now = clock();
    const buckets: Array<[RateLimitScope, string]> = [
      ['address', `address:${clientAddress(c, options.trustProxy)}:${group}`],
      ['key', `key:${c.get('identity').key_id}:${group}`],
    ];
    let tightest: { rule: BucketRule; state: BucketState } | undefined;
    for (const [scope, key] of buckets) {
      const rule = options.limits[scope][group];
      const state = await options.store.take(key, rule, now);
      if (!state.allowed) return tooMany(c, rule, state, `too many ${group} requests from this ${scopeName[scope]}`);
      if (!tightest || state.remaining < tightest.state.remaining) tightest = { rule, state };
    }
    await next();
    setHeaders(c, tightest!.rule, tightest!.state);
  };
}

/**
 * Counts failed authentications (401s) per address, and once an address has spent its bucket,
 * answers its further failures 429 instead of 401. Mount before whatever authenticates (apiKeyAuth,
 * the codec routes): the bucket is only charged after authentication failed, so a request with a
 * valid key is never counted nor refused because of others' failures from the same address (a NAT,
 * a proxy without WARDEN_TRUST_PROXY), while a guesser still gets no more than the bucket allows.
 */
export function authFailureLimit(options: RateLimitOptions): MiddlewareHandler {
  const clock = options.clock ?? Date.now;
  const rule = options.limits.address.auth_failure;
  return async function authFailureLimitHandler(c, next) {
    await next();
    if (c.res.status !== 401) return;
    const state = await options.store.take(`address:${clientAddress(c, options.trustProxy)}:auth_failure`, rule, clock());
    if (state.allowed) return;
    // Headers set on the way (security, CORS) carry over to the 429; the 401's challenge does not.
    c.res = tooMany(c, rule, state, 'too many failed authentications from this address');
    c.res.headers.delete('WWW-Authenticate');
  };
}
