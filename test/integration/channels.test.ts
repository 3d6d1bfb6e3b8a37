/**
 * Approvals in Discord, end to end: real Temporal, real Docker, and real discord.js talking to a
 * local fake Discord (REST and gateway). Cards appear in every configured channel; a paired
 * approver's click decides through the API's own path; strangers, viewers, requesters, revoked
 * pairings and forged buttons change nothing; cards survive a restart of the API process.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buttonData } from '../../channels/card.js';
import type { ActionRecord } from '../../domain/action.js';
import { ChannelStore } from '../../stores/channel-store.js';
import { openVault } from '../../stores/vault.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage } from '../support/fake-discord.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
type App = Stack['realApp'];
let stack: Stack;
let fake: FakeDiscord;
let channelStore: ChannelStore;
let agentId: string;
/** The API process's app: replaced by a new one when the test restarts it. */
let app: App;

const TOKEN_SECRET = 'DISCORD_BOT_TOKEN';
/** Discord user ids of the people in these tests. */
const user = {
  alice: '910000000000000001',
  bob: '910000000000000002',
  viewer: '910000000000000003',
  rita: '910000000000000004',
  stranger: '910000000000000099',
};
const key: Record<'operator' | 'alice' | 'bob' | 'viewer' | 'rita', { key: string; id: string }> = {} as never;

async function as(who: string, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${who}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await app.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
let adminKey: string;
let adminId: string;
const admin = (method: string, path: string, body?: unknown) => as(adminKey, method, path, body);

const submit = (who: string, command: string) =>
  as(who, 'POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'shell',
    operation: 'exec',
    agent_id: agentId,
    parameters: { command },
  });

const getAction = async (id: string) => (await as(key.viewer.key, 'GET', `/api/actions/${id}`)).body as ActionRecord;

/** An admin pairs the Discord user to the key, and the key's holder confirms it with that key. */
async function pair(discordUser: string, holder: { key: string; id: string }) {
  const paired = await admin('POST', '/api/channels/pairings', { platform_user: `discord:${discordUser}`, key_id: holder.id });
  expect(paired.status).toBe(201);
  expect((await as(holder.key, 'POST', `/api/channels/pairings/discord:${discordUser}/confirm`)).status).toBe(200);
}

/** The action's card in each configured channel, once posted. */
const cardsOf = (actionId: string) =>
  waitFor(`the cards of ${actionId} in every channel`, async () => {
    const cards = fake.channelIds.map((channel) =>
      fake.messagesIn(channel).find((m) => m.versions.some((v) => JSON.stringify(v).includes(actionId))),
    );
    return cards.every(Boolean) ? (cards as FakeMessage[]) : undefined;
  });

const buttonOf = (message: FakeMessage, label: 'Approve' | 'Reject') =>
  message.components[0]!.components.find((b) => b.label === label)!.custom_id;

const cardText = (message: FakeMessage) => JSON.stringify(message.embeds);

/** A click and the private answer it gets (a silent acknowledgement answers nothing). */
async function click(discordUser: string, message: FakeMessage, customId: string) {
  const clicked = fake.click(discordUser, message, customId);
  const ack = await clicked.acknowledged;
  return { ack, answer: ack === 5 ? await clicked.answer : null };
}

const settledCards = (actionId: string, text: RegExp) =>
  waitFor(`every card of ${actionId} to show ${text}`, async () => {
    const cards = await cardsOf(actionId);
    return cards.every((m) => m.components.length === 0 && text.test(cardText(m))) ? cards : undefined;
  });

const channelConfig = () => ({
  discordBotTokenSecret: TOKEN_SECRET,
  discordChannelIds: fake.channelIds,
  discordApiUrl: fake.apiBase,
  channelPollSeconds: 0.5,
});

beforeAll(async () => {
  fake = await startFakeDiscord({ channelIds: ['920000000000000001', '920000000000000002'] });
  const vault = openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-vault-')) });
  await vault.put(TOKEN_SECRET, fake.token);
  channelStore = ChannelStore.open(join(mkdtempSync(join(tmpdir(), 'warden-channels-')), 'channels.db'));
  stack = await startStack({ config: channelConfig(), vault, channelStore });
  app = stack.realApp;
  ({ key: adminKey, id: adminId } = await stack.keys.create('admin', 'admin', null));
  for (const [name, role] of [
    ['operator', 'operator'],
    ['alice', 'approver'],
    ['bob', 'approver'],
    ['viewer', 'viewer'],
    ['rita', 'approver'],
  ] as const) {
    const made = await stack.keys.create(name, role, null);
    key[name] = { key: made.key, id: made.id };
  }
  await pair(user.alice, key.alice);
  await pair(user.bob, key.bob);
  await pair(user.viewer, key.viewer);
  await pair(user.rita, key.rita);
  agentId = uniqueId('channels');
  expect((await admin('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  await waitFor('Discord to be connected', async () => (await admin('GET', '/api/channels')).body.channels[0].connected);
});

afterAll(async () => {
  await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  if (app !== stack?.realApp) await app?.channels.stop();
  await stack?.stop();
  channelStore?.close();
  await fake?.close();
});

describe('Discord approvals', () => {
  it('reports the channel connected in /api/channels and /api/status', async () => {
    const { body } = await admin('GET', '/api/channels');
    expect(body.channels).toEqual([
      expect.objectContaining({ name: 'discord', enabled: true, connected: true, rooms: fake.channelIds, error: null }),
    ]);
    const status = await admin('GET', '/api/status');
    expect(status.body.components.channels).toMatchObject({ state: 'up', detail: 'discord: connected' });
  });

  it('full flow: the card appears in every channel, a paired approver clicks, the command runs once, every card shows the result', async () => {
    const submitted = await submit(key.operator.key, 'echo ran >> /workspace/runs; wc -l < /workspace/runs');
    expect(submitted.body).toMatchObject({ status: 'pending', security_level: 'high' });
    const { id } = submitted.body;
    const [first, second] = await cardsOf(id);
    for (const card of [first!, second!]) {
      expect(cardText(card)).toContain('echo ran >> /workspace/runs');
      expect(cardText(card)).toContain('Awaiting approval: 0 of 1 approval');
      // Markdown escaped: the key id's underscore, as the embed carries it.
      expect(cardText(card)).toContain(`operator (${key.operator.id.replace('_', '\\\\_')})`);
      expect(card.components[0]!.components.map((b) => b.label)).toEqual(['Approve', 'Reject']);
      expect(buttonOf(card, 'Approve')).toBe(buttonData(id, true, submitted.body.params_hash));
    }
    const { ack, answer } = await click(user.alice, second!, buttonOf(second!, 'Approve'));
    expect(ack).toBe(5);
    expect(answer).toMatch(new RegExp(`Approved: ${id}`));
    const cards = await settledCards(id, /completed \(exit code 0\)/);
    for (const card of cards) expect(cardText(card)).toMatch(/Approved by alice/);
    const done = await getAction(id);
    expect(done.status).toBe('completed');
    expect(done.result?.stdout.trim()).toBe('1');
    expect(done.approvals.map((a) => [a.approver.key_id, a.comment])).toEqual([[key.alice.id, 'via discord']]);

    // An old button of the decided action says so and does nothing.
    const late = await click(user.bob, first!, buttonData(id, true, submitted.body.params_hash));
    expect(late.answer).toMatch(new RegExp(`Already decided: ${id} is completed \\(approved by alice\\)`));
    expect((await getAction(id)).approvals).toHaveLength(1);
  });

  it("refuses a stranger's click silently, a viewer's and the requester's with the reason, and none changes anything", async () => {
    const submitted = await submit(key.rita.key, 'echo rita');
    const { id } = submitted.body;
    const [card] = await cardsOf(id);
    const approve = buttonOf(card!, 'Approve');

    const stranger = await click(user.stranger, card!, approve);
    expect(stranger).toEqual({ ack: 6, answer: null });
    const viewer = await click(user.viewer, card!, approve);
    expect(viewer.answer).toMatch(/Not allowed: your key viewer has the viewer role/);
    const requester = await click(user.rita, card!, approve);
    expect(requester.answer).toMatch(/Not allowed: the requester cannot approve or reject their own action/);

    const action = await getAction(id);
    expect(action.status).toBe('pending');
    expect(action.approvals).toEqual([]);
    expect(cardText(card!)).toContain('Awaiting approval');
    await as(key.alice.key, 'POST', `/api/actions/${id}/approve`, { approved: false, params_hash: submitted.body.params_hash });
    await settledCards(id, /Rejected by alice/);
  });

  it('forged and malformed buttons from a paired approver change nothing', async () => {
    const a = await submit(key.operator.key, 'echo a');
    const b = await submit(key.operator.key, 'echo b');
    const [cardA] = await cardsOf(a.body.id);
    // Action b, with a's parameters hash: not what b's card showed.
    const forged = await click(user.alice, cardA!, buttonData(b.body.id, true, a.body.params_hash));
    expect(forged.answer).toMatch(/Not allowed: the parameters hash does not match/);
    const malformed = await click(user.alice, cardA!, `wd1:a:${a.body.id}:nothex`);
    expect(malformed.answer).toMatch(/not one of Warden’s approval buttons/);
    const unknown = await click(user.alice, cardA!, buttonData('act-0000000000000000', true, a.body.params_hash));
    expect(unknown.answer).toMatch(/act-0000000000000000 not found/);
    for (const id of [a.body.id, b.body.id]) expect((await getAction(id)).approvals).toEqual([]);
    for (const { body } of [a, b])
      await as(key.bob.key, 'POST', `/api/actions/${body.id}/approve`, { approved: false, params_hash: body.params_hash });
  });

  it('a critical action needs two different paired people: the same one twice is refused', async () => {
    const submitted = await submit(key.operator.key, 'mkfs.ext4 /workspace/disk.img');
    expect(submitted.body).toMatchObject({ security_level: 'critical', approvals_required: 2 });
    const { id } = submitted.body;
    const [card] = await cardsOf(id);
    const approve = buttonOf(card!, 'Approve');
    expect((await click(user.alice, card!, approve)).answer).toMatch(/needs another person’s approval too/);
    await waitFor('the card to show one approval of two', async () => cardText(card!).includes('1 of 2 approvals (alice)'));
    expect((await click(user.alice, card!, approve)).answer).toMatch(/Not allowed: alice has already approved/);
    expect((await getAction(id)).status).toBe('pending');
    expect((await click(user.bob, card!, approve)).answer).toMatch(/Approved/);
    await settledCards(id, /Approved by alice, bob/);
    expect((await getAction(id)).approvals.map((x) => x.approver.name)).toEqual(['alice', 'bob']);
  });

  it('a revoked pairing, and a paired user whose key is revoked, stop at once', async () => {
    const carol = await stack.keys.create('carol', 'approver', null);
    const carolUser = '910000000000000005';
    await pair(carolUser, { key: carol.key, id: carol.id });
    const submitted = await submit(key.operator.key, 'echo carol');
    const { id } = submitted.body;
    const [card] = await cardsOf(id);
    expect((await admin('DELETE', `/api/channels/pairings/discord:${carolUser}`)).status).toBe(200);
    expect(await click(carolUser, card!, buttonOf(card!, 'Approve'))).toEqual({ ack: 6, answer: null });
    // Paired again, confirmed, and then the key itself is revoked.
    await pair(carolUser, { key: carol.key, id: carol.id });
    expect((await admin('DELETE', `/api/keys/${carol.id}`)).status).toBe(200);
    expect(await click(carolUser, card!, buttonOf(card!, 'Approve'))).toEqual({ ack: 6, answer: null });
    expect((await getAction(id)).approvals).toEqual([]);
    const pairings = (await admin('GET', '/api/channels/pairings')).body.pairings;
    expect(pairings.find((p: { platform_user: string }) => p.platform_user === `discord:${carolUser}`)).toMatchObject({ key_id: carol.id });
    // Each step is on the audit log, by whoever took it: both pairings, both confirmations, the revocation.
    const steps: Array<[string, string | null]> = [];
    for (const kind of ['channel.paired', 'channel.pairing_confirmed', 'channel.unpaired'] as const) {
      for (const entry of await stack.audit.list({ kind, limit: 1000 }))
        if (entry.details.platform_user === `discord:${carolUser}` && entry.details.key_id === carol.id) steps.push([kind, entry.actor]);
    }
    expect(steps).toEqual([
      ['channel.paired', adminId],
      ['channel.paired', adminId],
      ['channel.pairing_confirmed', carol.id],
      ['channel.pairing_confirmed', carol.id],
      ['channel.unpaired', adminId],
    ]);
    await as(key.alice.key, 'POST', `/api/actions/${id}/approve`, { approved: false, params_hash: submitted.body.params_hash });
  });

  it('a pairing acts only once its key confirms it, and only that key can', async () => {
    const dave = await stack.keys.create('dave', 'approver', null);
    const daveUser = '910000000000000006';
    expect((await admin('POST', '/api/channels/pairings', { platform_user: `discord:${daveUser}`, key_id: dave.id })).status).toBe(201);
    const twice = await admin('POST', '/api/channels/pairings', { platform_user: `discord:${daveUser}`, key_id: key.alice.id });
    expect(twice.status).toBe(409);
    const submitted = await submit(key.operator.key, 'echo dave');
    const [card] = await cardsOf(submitted.body.id);
    expect(await click(daveUser, card!, buttonOf(card!, 'Approve'))).toEqual({ ack: 6, answer: null });
    // Another key, even an admin's, cannot confirm it.
    expect((await admin('POST', `/api/channels/pairings/discord:${daveUser}/confirm`)).status).toBe(403);
    expect((await as(key.alice.key, 'POST', `/api/channels/pairings/discord:${daveUser}/confirm`)).status).toBe(403);
    expect((await getAction(submitted.body.id)).approvals).toEqual([]);
    expect((await as(dave.key, 'POST', `/api/channels/pairings/discord:${daveUser}/confirm`)).status).toBe(200);
    expect((await click(daveUser, card!, buttonOf(card!, 'Reject'))).answer).toMatch(/Rejected/);
  });

  it('an API approval and a Discord click racing end with exactly one decision, and the card shows it', async () => {
    const submitted = await submit(key.operator.key, 'echo race');
    const { id, params_hash } = submitted.body;
    const [card] = await cardsOf(id);
    const [api, discord] = await Promise.all([
      as(key.bob.key, 'POST', `/api/actions/${id}/approve`, { approved: true, params_hash }),
      click(user.alice, card!, buttonOf(card!, 'Reject')),
    ]);
    const apiWon = api.status === 200;
    expect(apiWon).toBe(!/^Rejected/.test(discord.answer!));
    if (apiWon) expect(discord.answer).toMatch(/Already decided/);
    else expect(api.status).toBe(409);
    const action = await waitFor('the action to be final', async () => {
      const a = await getAction(id);
      return a.completed_at ? a : undefined;
    });
    expect(action.approvals).toHaveLength(1);
    await settledCards(id, apiWon ? /completed/ : /Rejected by alice/);
  });

  it('survives a restart of the API: open cards are refreshed in place, a decided one is closed, and the old button works', async () => {
    const waiting = await submit(key.operator.key, 'echo after-restart');
    const decided = await submit(key.operator.key, 'echo decided-while-down');
    const [waitingCard] = await cardsOf(waiting.body.id);
    await cardsOf(decided.body.id);
    const messagesBefore = fake.messages.size;

    await app.channels.stop();
    await waitFor('the gateway session to close', async () => fake.sessions() === 0);
    expect(
      (await as(key.bob.key, 'POST', `/api/actions/${decided.body.id}/approve`, { approved: false, params_hash: decided.body.params_hash }))
        .status,
    ).toBe(200);

    // Discord is unreachable when the new process starts: reported, retried, and the API answers.
    fake.setDown(true);
    app = stack.newApp();
    await waitFor('the failed connection to be reported', async () => (await admin('GET', '/api/channels')).body.channels[0].error);
    const readyz = await app.request('/readyz');
    expect((await readyz.json()).components.channels).toMatchObject({
      state: 'degraded',
      detail: expect.stringMatching(/discord: not connected/),
    });
    fake.setDown(false);
    await waitFor('the retry to connect', async () => (await admin('GET', '/api/channels')).body.channels[0].connected, 90_000);

    await settledCards(decided.body.id, /Rejected by bob/);
    expect(fake.messages.size).toBe(messagesBefore);
    const { answer } = await click(user.alice, waitingCard!, buttonOf(waitingCard!, 'Approve'));
    expect(answer).toMatch(/Approved/);
    await settledCards(waiting.body.id, /completed/);
  });
});
