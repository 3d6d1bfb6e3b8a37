/**
 * The requests a platform already delivered to a channel's route, each remembered until it could
 * not be taken anyway (a Slack request's 5-minute window), so that one delivered twice (replayed by
 * whoever captured it, or retried by the platform) is taken once.
 *
 * Bounded: with no room left and every remembered request still live, a new one is refused (the
 * platform retries) rather than a live one forgotten, which could then be replayed. Only requests
 * the platform signed are remembered, so only the platform's own traffic can fill it.
 */
import { WardenError } from '../domain/errors.js';

/** How many requests a channel remembers: far more than an approvals room sees in its window. */
const CAPACITY = 20_000;

export function deliveredRequests(platform: string, capacity = CAPACITY) {
  /** Request id → when it may be forgotten (ms); in the order first seen. */
  const remembered = new Map<string, number>();

  function forgetExpired(nowMs: number, all: boolean) {
    for (const [id, expiresAtMs] of remembered) {
      if (expiresAtMs <= nowMs) remembered.delete(id);
      // Ids come in roughly the order they expire: the oldest are checked, the rest only when full.
      else if (!all) break;
    }
  }

  return {
    get size() {
      return remembered.size;
    },
    /**
     * True the first time a request id is seen before it expires, false for a repeat. Throws a 503
     * WardenError when it cannot remember one more.
     */
    firstDelivery(id: string, expiresAtMs: number, nowMs = Date.now()): boolean {
      forgetExpired(nowMs, false);
      const known = remembered.get(id);
      if (known !== undefined && known > nowMs) return false;
      if (remembered.size >= capacity) forgetExpired(nowMs, true);
      if (remembered.size >= capacity) {
        throw new WardenError(
          'channel_busy',
          `${platform} delivered more requests than Warden can tell apart from replays right now; ${platform} retries`,
          503,
        );
      }
      // Set anew, not updated: the map's order stays the order ids were first seen in.
      remembered.delete(id);
      remembered.set(id, expiresAtMs);
      return true;
    },
  };
}

export type DeliveredRequests = ReturnType<typeof deliveredRequests>;
