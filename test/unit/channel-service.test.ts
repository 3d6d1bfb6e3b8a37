/**
 * The channel service with in-memory channels and actions: what a poll reads, where a click stops,
 * and what a click hands the API's decideAction (the workflow checks the grant and the hash).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { ButtonClick, ChannelAdapter } from '../../channels/adapter.js';
import { buttonData, type ApprovalCard } from '../../channels/card.js';
import { createChannelService, type ChannelService } from '../../channels/service.js';
import type { ActionRecord } from '../../domain/action.js';
import { WardenError } from '../../domain/errors.js';
import type { Identity } from '../../domain/roles.js';
import { ChannelStore } from '../../stores/channel-store.js';

const HASH = 'c'.repeat(64);

async function waitFor(what: string, ok: () => Promise<boolean>, timeoutMs = 5_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const action = (id: string): ActionRecord => ({
  id,
  action_type: 'skill_execution',
  skill_id: 'shell',
  operation: 'exec',
  agent_id: 'agt-0123456789ab',
  parameters: { command: `echo ${id}` },
  params_hash: HASH,
  requester: { key_id: 'key_000000000001', name: 'rita', role: 'operator' },
  status: 'pending',
  security_level: 'high',
  rule: 'skill-default',
  reasons: [],
  approvals_required: 1,
  approvals: [],
  result: null,
  error: null,
  created_at: '2026-12-07T11:59:00Z',
  expires_at: new Date(Date.now() + 3_600_000).toISOString(),
  completed_at: null,
});

/** A channel kept in memory: its posted cards, and a switch that makes posting fail. */
function fakeChannel(name: string, rooms: string[]) {
  let onClick: ((click: ButtonClick) => Promise<void>) | undefined;
  const posted: Array<{ room: string; card: ApprovalCard }> = [];
  const state = { failPosts: false, postAttempts: 0 };
  const adapter: ChannelAdapter = {
    name,
    rooms,
    async connect(click) {
      onClick = click;
    },
    async disconnect() {},
    isConnected: () => onClick !== undefined,
    async postCard(room, card) {
      state.postAttempts++;
      if (state.failPosts) throw new Error(`${name} is down`);
      posted.push({ room, card });
      return `${name}-${posted.length}`;
    },
    async editCard() {},
  };
  /** A click by this platform user; resolves with what the clicker was told ('' when ignored). */
  const click = async (user: string, data: string) => {
    let heard: string | undefined;
    await onClick!({
      platform_user: `${name}:${user}`,
      data,
      ignore: async () => void (heard = ''),
      defer: async () => undefined,
      answer: async (text) => void (heard = text),
    });
    return heard;
  };
  return { adapter, posted, state, click };
}

function fakeActions(pending: ActionRecord[]) {
  const calls = { pendingActions: 0, getAction: 0, decideAction: [] as Array<{ id: string; params_hash: string }> };
  const temporal = { reachable: true };
  return {
    calls,
    temporal,
    actions: {
      temporalReachable: async () => temporal.reachable,
      pendingActions: async () => (calls.pendingActions++, pending.map((a) => ({ id: a.id }))),
      getAction: async (id: string) => {
        calls.getAction++;
        const found = pending.find((a) => a.id === id);
        if (!found) throw new WardenError('not_found', `action ${id} not found`, 404);
        return found;
      },
      decideAction: async (id: string, _approver: Identity, body: { approved: boolean; params_hash: string }) => {
        calls.decideAction.push({ id, params_hash: body.params_hash });
        return { action_id: id, status: 'approved' as const };
      },
    },
  };
}

let service: ChannelService | undefined;
afterEach(async () => {
  await service?.stop();
  service = undefined;
});

function start(opts: { channels: Array<ReturnType<typeof fakeChannel>>; pending: ActionRecord[]; pollMs: number; store?: ChannelStore }) {
  const store = opts.store ?? ChannelStore.open(':memory:');
  const { actions, calls, temporal } = fakeActions(opts.pending);
  const warnings: string[] = [];
  const alice: Identity = { key_id: 'key_00000000000a', name: 'alice', role: 'approver' };
  service = createChannelService({
    adapters: opts.channels.map((c) => ({ adapter: c.adapter, limits: { parameters: 500, output: 100, hashDigits: 32 } })),
    store,
    identityOf: async (keyId) => (keyId === alice.key_id ? alice : null),
    actions: actions as never,
    // These channels have no rooms that talk to agents.
    conversations: {} as never,
    logger: { info: () => undefined, warn: (obj: unknown) => void warnings.push((obj as { channel: string }).channel) },
    pollMs: opts.pollMs,
  });
  service.start();
  return { store, calls, warnings, alice, temporal };
}

describe('the channel service', () => {
  it('reads each pending action once per poll, however many channels show it', async () => {
    const discord = fakeChannel('discord', ['d1', 'd2']);
    const slack = fakeChannel('slack', ['s1']);
    const { calls } = start({ channels: [discord, slack], pending: [action('act-00000000000000a1')], pollMs: 20 });
    await waitFor('a card in every room', async () => discord.posted.length === 2 && slack.posted.length === 1);
    calls.getAction = 0;
    calls.pendingActions = 0;
    await waitFor('three polls', async () => calls.pendingActions >= 3);
    // Stopping waits for the poll under way: every poll counted has read what it reads.
    await service!.stop();
    expect(calls.getAction).toBe(calls.pendingActions);
    // Nothing changed: no card posted again.
    expect(discord.posted).toHaveLength(2);
    expect(slack.posted).toHaveLength(1);
  });

  it('leaves a failing channel until the next poll, with one warning, and still serves the others', async () => {
    const discord = fakeChannel('discord', ['d1']);
    const slack = fakeChannel('slack', ['s1']);
    slack.state.failPosts = true;
    const { warnings } = start({
      channels: [discord, slack],
      pending: [action('act-00000000000000b1'), action('act-00000000000000b2')],
      pollMs: 60_000,
    });
    await waitFor('the cards on the channel that works', async () => discord.posted.length === 2);
    await waitFor('the failure to be reported', async () => warnings.includes('slack'));
    await service!.stop();
    expect(slack.state.postAttempts).toBe(1);
    expect(warnings.filter((w) => w === 'slack')).toHaveLength(1);
  });

  it('closes the cards of an action whose workflow is gone, instead of asking about it at every poll', async () => {
    const store = ChannelStore.open(':memory:');
    const card = { channel: 'discord', room: 'd1', message_id: 'm1', shown: 'x', closed: false };
    store.saveCard({ action_id: 'act-00000000000000e1', ...card });
    store.saveCard({ action_id: 'act-00000000000000e2', ...card });
    const discord = fakeChannel('discord', ['d1']);
    const { calls } = start({ channels: [discord], pending: [action('act-00000000000000e2')], pollMs: 20, store });
    await waitFor('three polls', async () => calls.pendingActions >= 3);
    await service!.stop();
    expect(store.openCards('discord').map((c) => c.action_id)).toEqual(['act-00000000000000e2']);
    // Read once, by the sync on connecting; the action still pending is read at every poll.
    expect(calls.getAction).toBe(1 + calls.pendingActions);
  });

  it('ignores a click from a user without a confirmed pairing before reading or deciding anything', async () => {
    const telegram = fakeChannel('telegram', ['t1']);
    const { store, calls, alice } = start({ channels: [telegram], pending: [action('act-00000000000000c1')], pollMs: 60_000 });
    await waitFor('the card', async () => telegram.posted.length === 1);
    const data = buttonData('act-00000000000000c1', true, HASH, 32);
    store.pair('telegram:42', alice.key_id, 'key_admin');
    calls.getAction = 0;
    // Paired, not yet confirmed by the key: the same as a stranger.
    expect(await telegram.click('42', data)).toBe('');
    expect(await telegram.click('99', data)).toBe('');
    expect(calls).toMatchObject({ getAction: 0, decideAction: [] });
  });

  it('hands decideAction the whole params hash only when the button carries its start, else what it carries', async () => {
    const telegram = fakeChannel('telegram', ['t1']);
    const { store, calls, alice } = start({ channels: [telegram], pending: [action('act-00000000000000d1')], pollMs: 60_000 });
    await waitFor('the card', async () => telegram.posted.length === 1);
    store.pair('telegram:42', alice.key_id, 'key_admin');
    store.confirm('telegram:42', alice.key_id);
    const forged = 'd'.repeat(32);
    await telegram.click('42', buttonData('act-00000000000000d1', true, forged, 32));
    expect(await telegram.click('42', telegram.posted[0]!.card.buttons!.approve)).toMatch(/^Approved: act-00000000000000d1/);
    expect(calls.decideAction).toEqual([
      { id: 'act-00000000000000d1', params_hash: forged },
      { id: 'act-00000000000000d1', params_hash: HASH },
    ]);
  });

  it('tells a paired clicker at once when Temporal cannot be reached, and reads or decides nothing', async () => {
    const telegram = fakeChannel('telegram', ['t1']);
    const { store, calls, alice, temporal } = start({ channels: [telegram], pending: [action('act-00000000000000f1')], pollMs: 60_000 });
    await waitFor('the card', async () => telegram.posted.length === 1);
    store.pair('telegram:42', alice.key_id, 'key_admin');
    store.confirm('telegram:42', alice.key_id);
    calls.getAction = 0;
    temporal.reachable = false;
    const { approve, reject } = telegram.posted[0]!.card.buttons!;
    expect(await telegram.click('42', approve)).toMatch(
      /^Not delivered: .*your approval of act-00000000000000f1 was not recorded.*Try the button again/,
    );
    expect(await telegram.click('42', reject)).toMatch(/your rejection of act-00000000000000f1 was not recorded/);
    expect(calls).toMatchObject({ getAction: 0, decideAction: [] });
    temporal.reachable = true;
    expect(await telegram.click('42', approve)).toMatch(/^Approved: act-00000000000000f1/);
  });
});
