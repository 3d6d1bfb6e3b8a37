/**
 * Conversations in a chat room, end to end: real Temporal, real Docker, real discord.js against the
 * local fake Discord, and the model played by the fake speaking OpenAI's protocol. A paired
 * operator's message in the room that talks to the shell agent starts their conversation, the
 * answer comes back in the room, a tool call that needs approval shows its card there and a click
 * approves it; strangers, bots and viewers get nowhere; the link outlives a restart of the API.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Conversation } from '../../domain/conversation.js';
import { ChannelStore } from '../../stores/channel-store.js';
import { startChannelStack } from '../support/channel-stack.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage } from '../support/fake-discord.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type Reply } from '../support/fake-llm.js';
import { uniqueId, waitFor } from '../support/helpers.js';

const MODEL_ROUTE = 'POST /v1/chat/completions';
const CARDS = '940000000000000001';
const ROOM = '940000000000000002';
const user = { alice: '950000000000000001', olive: '950000000000000002', victor: '950000000000000003', stranger: '950000000000000099' };
let discord: FakeDiscord;
let llm: FakeLlm;
let channelStore: ChannelStore;
let env: Awaited<ReturnType<typeof startChannelStack>>;
let olive: { key: string; id: string };
let app: Awaited<ReturnType<typeof startChannelStack>>['stack']['realApp'];

/** An admin pairs the chat user to the key, and the key's holder confirms it. */
async function pair(discordUser: string, holder: { key: string; id: string }) {
  expect(
    (await env.stack.api('POST', '/api/channels/pairings', { platform_user: `discord:${discordUser}`, key_id: holder.id })).status,
  ).toBe(201);
  expect((await env.as(holder.key, 'POST', `/api/channels/pairings/discord:${discordUser}/confirm`)).status).toBe(200);
}

/** What the bot posted in the room after the message with this id (snowflakes grow with time). */
const postedAfter = (messageId: string) => discord.messagesIn(ROOM).filter((m) => BigInt(m.id) > BigInt(messageId));

const replyTo = (messageId: string) =>
  waitFor(`the bot's reply to ${messageId}`, async () =>
    postedAfter(messageId).find((m) => JSON.stringify(m.versions[0]).includes(`"message_id":"${messageId}"`)),
  );

const conversationsOfAgent = async () =>
  (await env.stack.api('GET', `/api/conversations?agent_id=${env.agentId}`)).body.conversations as Array<{ id: string }>;

const conversation = async (id: string) => (await env.as(olive.key, 'GET', `/api/conversations/${id}`)).body as Conversation;

const call = (id: string, command: string) => ({ id, name: 'shell_exec', arguments: JSON.stringify({ command }) });

beforeAll(async () => {
  discord = await startFakeDiscord({ channelIds: [CARDS, ROOM] });
  llm = await startFakeLlm();
  channelStore = ChannelStore.open(join(mkdtempSync(join(tmpdir(), 'warden-channels-')), 'channels.db'));
  const agentId = uniqueId('room');
  env = await startChannelStack({
    secrets: { DISCORD_BOT_TOKEN: discord.token },
    config: {
      llmBaseUrl: `${llm.origin}/v1`,
      llmModel: 'fake-model',
      discordBotTokenSecret: 'DISCORD_BOT_TOKEN',
      discordChannelIds: [CARDS],
      discordApiUrl: discord.apiBase,
      discordRoomAgents: { [ROOM]: agentId },
    },
    alice: `discord:${user.alice}`,
    agentId,
    stack: { channelStore },
  });
  app = env.stack.realApp;
  olive = await env.stack.keys.create('olive', 'operator', null);
  await pair(user.olive, olive);
  await pair(user.victor, await env.stack.keys.create('victor', 'viewer', null));
}, 120_000);

afterAll(async () => {
  if (app !== env?.stack.realApp) await app?.channels.stop();
  await env?.stop();
  channelStore?.close();
  await llm?.close();
  await discord?.close();
});

describe('a conversation in a Discord room', () => {
  let conversationId: string;

  it("a paired operator's message starts their conversation with the room's agent, and the answer is posted in the room", async () => {
    llm.script(MODEL_ROUTE, { json: openaiCompletion({ content: 'Hello *olive* <@&1> @everyone' }) });
    const asked = discord.write(user.olive, ROOM, 'hello agent');
    const answer = await replyTo(asked);
    // Shown literally: no formatting, no pings.
    expect(answer.content).toBe('Hello \\*olive\\* <@&1> @everyone');
    expect(answer.versions[0]).toMatchObject({ allowed_mentions: { parse: [] } });
    const [started] = await conversationsOfAgent();
    conversationId = started!.id;
    const now = await conversation(conversationId);
    expect(now.owner.key_id).toBe(olive.id);
    expect(now.turns).toMatchObject([{ message: 'hello agent', status: 'answered' }]);
  }, 60_000);

  it('a second message continues it: the tool call needing approval shows its card in the room, a click approves, the command runs once, the answer follows', async () => {
    let answerAfterRun!: (reply: Reply) => void;
    llm.script(
      MODEL_ROUTE,
      { json: openaiCompletion({ tool_calls: [call('call_count', 'echo ran >> /workspace/room; wc -l < /workspace/room')] }) },
      { held: new Promise<Reply>((resolve) => (answerAfterRun = resolve)) },
    );
    const asked = discord.write(user.olive, ROOM, 'count the runs');
    const card = await waitFor('the card in the room', async () =>
      postedAfter(asked).find((m: FakeMessage) => m.components.length > 0 && JSON.stringify(m.embeds).includes('shell.exec')),
    );
    const actionId = /act-[0-9a-f]{16}/.exec(JSON.stringify(card.embeds))![0];
    // The card rooms show it as well.
    await waitFor('the card in the card room', async () =>
      discord.messagesIn(CARDS).find((m) => JSON.stringify(m.versions).includes(actionId)),
    );

    // The turn waits for the approval: a message meanwhile is answered, not queued.
    const meanwhile = discord.write(user.olive, ROOM, 'are you there?');
    expect((await replyTo(meanwhile)).content).toMatch(/^Still working on the last message/);

    const approve = card.components[0]!.components.find((b) => b.label === 'Approve')!.custom_id;
    const clicked = discord.click(user.alice, card, approve);
    expect(await clicked.acknowledged).toBe(5);
    expect(await clicked.answer).toMatch(new RegExp(`^Approved: ${actionId}`));
    await waitFor('the card to show the result', async () => card.components.length === 0 && /completed/.test(JSON.stringify(card.embeds)));
    await env.expectRanOnceApprovedByAlice(actionId, 'discord');

    answerAfterRun({ json: openaiCompletion({ content: 'It ran once.' }) });
    expect((await replyTo(asked)).content).toBe('It ran once.');
    const now = await conversation(conversationId);
    expect(now.turns.map((t) => [t.message, t.status])).toEqual([
      ['hello agent', 'answered'],
      ['count the runs', 'answered'],
    ]);
    expect(now.turns[1]!.actions).toMatchObject([{ action_id: actionId, status: 'completed' }]);
  }, 120_000);

  it("a stranger's or a bot's message does nothing; a viewer's is refused", async () => {
    const asked = llm.to(MODEL_ROUTE).length;
    const before = (await conversationsOfAgent()).length;
    const fromStranger = discord.write(user.stranger, ROOM, 'hello');
    const fromBot = discord.write(user.olive, ROOM, 'hello from a bot', { bot: true });
    const fromViewer = discord.write(user.victor, ROOM, 'hello');
    expect((await replyTo(fromViewer)).content).toMatch(/^Not allowed: your key victor has the viewer role/);
    // The viewer's refusal came after the two earlier messages were handled (one gateway, in order).
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(postedAfter(fromStranger).filter((m) => m.content && !/Not allowed/.test(m.content))).toEqual([]);
    expect(postedAfter(fromBot).map((m) => m.content)).toEqual([expect.stringMatching(/^Not allowed/)]);
    expect((await conversationsOfAgent()).length).toBe(before);
    expect(llm.to(MODEL_ROUTE).length).toBe(asked);
  }, 60_000);

  it('the conversation outlives a restart of the API: a turn running across it is answered, and the next message continues it', async () => {
    let answerModel!: (reply: Reply) => void;
    llm.script(MODEL_ROUTE, { held: new Promise<Reply>((resolve) => (answerModel = resolve)) });
    const modelCalls = llm.to(MODEL_ROUTE).length;
    const asked = discord.write(user.olive, ROOM, 'across a restart');
    await waitFor('the model to be asked', async () => llm.to(MODEL_ROUTE).length > modelCalls);
    await waitFor('the room to await the turn', async () => channelStore.awaitedTurns('discord').length === 1);
    await app.channels.stop();
    answerModel({ json: openaiCompletion({ content: 'Answered while you were away.' }) });
    app = env.stack.newApp();
    expect((await replyTo(asked)).content).toBe('Answered while you were away.');

    llm.script(MODEL_ROUTE, { json: openaiCompletion({ content: 'Still the same conversation.' }) });
    const again = discord.write(user.olive, ROOM, 'and now?');
    expect((await replyTo(again)).content).toBe('Still the same conversation.');
    expect((await conversation(conversationId)).turns.map((t) => t.message)).toEqual([
      'hello agent',
      'count the runs',
      'across a restart',
      'and now?',
    ]);
  }, 120_000);

  it('/end ends the conversation; the next message starts another', async () => {
    const ended = discord.write(user.olive, ROOM, '/end');
    expect((await replyTo(ended)).content).toBe(`Conversation ${conversationId} ended. Your next message here starts a new one.`);
    await waitFor('the conversation to end', async () => (await conversation(conversationId)).status === 'ended');
    llm.script(MODEL_ROUTE, { json: openaiCompletion({ content: 'A new start.' }) });
    const fresh = discord.write(user.olive, ROOM, 'hello again');
    expect((await replyTo(fresh)).content).toBe('A new start.');
    expect((await conversationsOfAgent()).map((c) => c.id)).toContain(conversationId);
    expect((await conversationsOfAgent()).length).toBe(2);
  }, 60_000);
});
