/**
 * The ledger of spent model-call grants, on each back end (SQLite and PostgreSQL): the first
 * scheduled call that shows a grant spends it, Temporal's retries of that call may show it again,
 * and no other call may, however many model workers (connections) race for it.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ModelCallLedger } from '../../stores/model-call-ledger.js';
import { STORE_BACKENDS, type StorePlace } from '../support/store-backends.js';

describe.each(STORE_BACKENDS)('on $backend', ({ place: makePlace }) => {
  let place: StorePlace;
  let ledgers: ModelCallLedger[];

  beforeEach(async () => {
    place = await makePlace();
    ledgers = await Promise.all([1, 2, 3, 4].map(() => place.openModelCalls()));
  });

  afterEach(async () => {
    for (const ledger of ledgers) await ledger.close();
    await place.close();
  });

  const call = (activity: string, scheduled = 1_765_000_000_000) => ({ run_id: 'run-1', activity_id: activity, scheduled_ms: scheduled });

  it('lets one of several calls racing for a grant spend it, and that call again on retry', async () => {
    const spent = await Promise.all(ledgers.map((ledger, i) => ledger.spend('cnv-1:1:1', call(String(i)))));
    expect(spent.filter(Boolean)).toHaveLength(1);
    const winner = call(String(spent.indexOf(true)));
    for (const ledger of ledgers) expect(await ledger.spend('cnv-1:1:1', winner)).toBe(true);
    // The same activity id scheduled anew, or in another run, is another call.
    expect(await ledgers[0]!.spend('cnv-1:1:1', { ...winner, scheduled_ms: winner.scheduled_ms + 1 })).toBe(false);
    expect(await ledgers[1]!.spend('cnv-1:1:1', { ...winner, run_id: 'run-2' })).toBe(false);
  });

  it('keeps what was spent for the next process', async () => {
    expect(await ledgers[0]!.spend('cnv-1:2:1', call('5'))).toBe(true);
    await ledgers[0]!.close();
    ledgers[0] = await place.openModelCalls();
    expect(await ledgers[0]!.spend('cnv-1:2:1', call('6'))).toBe(false);
    expect(await ledgers[0]!.spend('cnv-1:2:2', call('6'))).toBe(true);
  });
});
