/** The memory of requests a platform delivered: each taken once, forgotten when it expires, bounded. */
import { describe, expect, it } from 'vitest';
import { deliveredRequests } from '../../channels/delivered-requests.js';

describe('deliveredRequests', () => {
  it('takes a request id once until it expires, then again', () => {
    const delivered = deliveredRequests('Telegram');
    expect(delivered.firstDelivery('7', 1_000, 0)).toBe(true);
    expect(delivered.firstDelivery('7', 1_000, 999)).toBe(false);
    expect(delivered.firstDelivery('8', 1_000, 999)).toBe(true);
    expect(delivered.firstDelivery('7', 2_000, 1_000)).toBe(true);
    expect(delivered.firstDelivery('7', 2_000, 1_500)).toBe(false);
  });

  it('forgets expired ids to make room, and refuses with 503 when every remembered id is live', () => {
    const delivered = deliveredRequests('Telegram', 3);
    // Out of expiry order: the sweep when full finds the expired one behind a live one.
    delivered.firstDelivery('a', 10_000, 0);
    delivered.firstDelivery('b', 100, 0);
    delivered.firstDelivery('c', 10_000, 0);
    expect(delivered.firstDelivery('d', 10_000, 200)).toBe(true);
    expect(delivered.size).toBe(3);
    expect(() => delivered.firstDelivery('e', 10_000, 300)).toThrow(
      expect.objectContaining({ code: 'channel_busy', status: 503, message: expect.stringMatching(/Telegram retries/) }),
    );
    // A refused id was not remembered; once room is made, it is taken.
    expect(delivered.firstDelivery('e', 20_000, 10_000)).toBe(true);
    expect(delivered.firstDelivery('a', 20_000, 10_000)).toBe(true);
  });
});
