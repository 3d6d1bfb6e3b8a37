/**
 * Rate limits as configured: a token bucket per route group, for each API key and for each client
 * address. WARDEN_RATE_LIMITS is a compact list, e.g. `read=600/min,write=120/min,approve=30/min`:
 * `<group>=<count>/<period>` refills `count` tokens per period into a bucket holding `count`
 * (`:<burst>` after it sets another capacity); a `key.` or `address.` prefix sets one scope only;
 * groups not listed keep their defaults; `off` turns limiting off.
 */

/** read: GET/HEAD on /api; write: other methods on /api; approve: approvals; auth_failure: failed authentications (per address). */
export const RATE_LIMIT_GROUPS = ['read', 'write', 'approve', 'auth_failure'] as const;
export type RateLimitGroup = (typeof RATE_LIMIT_GROUPS)[number];
export type RateLimitScope = 'key' | 'address';

/** A token bucket: it holds up to `capacity` tokens and gains `perSecond` tokens a second. */
export interface BucketRule {
  capacity: number;
  perSecond: number;
}

export type RateLimits = Record<RateLimitScope, Record<RateLimitGroup, BucketRule>>;

export const DEFAULT_RATE_LIMITS = 'read=600/min,write=120/min,approve=30/min,auth_failure=20/min';

const PERIOD_SECONDS: Record<string, number> = { s: 1, sec: 1, min: 60, h: 3600 };
const ENTRY = /^(?:(key|address)\.)?([a-z_]+)=(\d+)\/([1-9]\d*)?(s|sec|min|h)(?::(\d+))?$/;

/** The limits this text asks for on top of the defaults; null when limiting is off. Throws on a bad entry, naming it. */
export function parseRateLimits(text: string): RateLimits | null {
  if (text.trim() === 'off') return null;
  const limits = { key: {}, address: {} } as RateLimits;
  for (const { scopes, group, rule } of [...parseEntries(DEFAULT_RATE_LIMITS), ...parseEntries(text)]) {
    for (const scope of scopes) limits[scope][group] = rule;
  }
  return limits;
}

function parseEntries(text: string) {
  return text
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
    .map((entry) => {
      const match = ENTRY.exec(entry);
      if (!match) throw new Error(`"${entry}": expected <group>=<count>/<period>[:<burst>], e.g. read=600/min or write=5/s:20`);
      const [, scope, group, count, multiple, unit, burst] = match;
      if (!(RATE_LIMIT_GROUPS as readonly string[]).includes(group!)) {
        throw new Error(`"${entry}": unknown group ${group}; groups: ${RATE_LIMIT_GROUPS.join(', ')}`);
      }
      if (group === 'auth_failure' && scope === 'key') throw new Error(`"${entry}": auth_failure is counted per address only`);
      const rule = { capacity: Number(burst ?? count), perSecond: Number(count) / (Number(multiple || 1) * PERIOD_SECONDS[unit!]!) };
      if (rule.capacity < 1 || rule.perSecond <= 0) throw new Error(`"${entry}": count and burst must be at least 1`);
      const scopes: RateLimitScope[] = scope ? [scope as RateLimitScope] : ['key', 'address'];
      return { scopes, group: group as RateLimitGroup, rule };
    });
}
