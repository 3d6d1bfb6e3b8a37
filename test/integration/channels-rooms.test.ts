/**
 * Conversations in a chat room, end to end: real Temporal, real Docker, real discord.js against the
 * local fake Discord, real grammY long-polling the local fake Telegram, real Bolt in Socket Mode
 * against the local fake Slack, and the model played by the fake speaking OpenAI's protocol. A paired operator's message in the room that talks to the shell
 * agent starts their conversation, the answer comes back in the room, a tool call that needs
 * approval shows its card there and a click approves it; strangers, bots and viewers get nowhere;
 * the link outlives a restart of the API.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Conversation } from '../../domain/conversation.js';
import { ChannelStore } from '../../stores/channel-store.js';
import { startChannelStack } from '../support/channel-stack.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage } from '../support/fake-discord.js';
import { buttonValue, showsCompleted, startFakeSlack, type FakeSlack } from '../support/fake-slack.js';
import { startFakeTelegram, type FakeTelegram } from '../support/fake-telegram.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type Reply } from '../support/fake-llm.js';
import { uniqueId, waitFor } from '../support/helpers.js';

const MODEL_ROUTE = 'POST /v1/chat/completions';
const CARDS = '940000000000000001';
const ROOM = '940000000000000002';
const user = { alice: '950000000000000001', olive: '950000000000000002', victor: '950000000000000003', stranger: '950000000000000099' };
const TG_CARDS = '-1009400000001';
const TG_ROOM = '-1009400000002';
const tgUser = { alice: 960000001, olive: 960000002, stranger: 960000099 };
let discord: FakeDiscord;
let telegram: FakeTelegram;
const SLACK_CARDS = 'C0000000RC1';
const SLACK_ROOM = 'C0000000RM1';
const slackUser = { alice: 'U0000ALICE1', olive: 'U0000OLIVE1', stranger: 'U0000STRAN1' };
let slack: FakeSlack;
let llm: FakeLlm;
let channelStore: ChannelStore;
let env: Awaited<ReturnType<typeof startChannelStack>>;
let olive: { key: string; id: string };
let app: Awaited<ReturnType<typeof startChannelStack>>['stack']['realApp'];

/** An admin pairs the chat user to the key, and the key's holder confirms it. */
async function pair(platformUser: string, holder: { key: string; id: string }) {
  expect((await env.stack.api('POST', '/api/channels/pairings', { platform_user: platformUser, key_id: holder.id })).status).toBe(201);
  expect((await env.as(holder.key, 'POST', `/api/channels/pairings/${platformUser}/confirm`)).status).toBe(200);
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
  telegram = await startFakeTelegram({ chatIds: [TG_CARDS, TG_ROOM] });
  slack = await startFakeSlack({ channelIds: [SLACK_CARDS, SLACK_ROOM] });
  llm = await startFakeLlm();
  channelStore = ChannelStore.open(join(mkdtempSync(join(tmpdir(), 'warden-channels-')), 'channels.db'));
  const agentId = uniqueId('room');
  env = await startChannelStack({
    secrets: {
      DISCORD_BOT_TOKEN: discord.token,
      TELEGRAM_BOT_TOKEN: telegram.token,
      SLACK_BOT_TOKEN: slack.botToken,
      SLACK_APP_TOKEN: slack.appToken,
    },
    config: {
      llmBaseUrl: `${llm.origin}/v1`,
      llmModel: 'fake-model',
      discordBotTokenSecret: 'DISCORD_BOT_TOKEN',
      discordChannelIds: [CARDS],
      discordApiUrl: discord.apiBase,
      discordRoomAgents: { [ROOM]: agentId },
      telegramBotTokenSecret: 'TELEGRAM_BOT_TOKEN',
      telegramChatIds: [TG_CARDS],
      telegramApiUrl: telegram.apiRoot,
      telegramRoomAgents: { [TG_ROOM]: agentId },
      slackBotTokenSecret: 'SLACK_BOT_TOKEN',
      slackAppTokenSecret: 'SLACK_APP_TOKEN',
      slackChannelIds: [SLACK_CARDS],
      slackApiUrl: slack.apiUrl,
      slackRoomAgents: { [SLACK_ROOM]: agentId },
    },
    alice: `discord:${user.alice}`,
    agentId,
    stack: { channelStore },
  });
  app = env.stack.realApp;
  olive = await env.stack.keys.create('olive', 'operator', null);
  await pair(`discord:${user.olive}`, olive);
  await pair(`discord:${user.victor}`, await env.stack.keys.create('victor', 'viewer', null));
  await pair(`telegram:${tgUser.olive}`, olive);
  await pair(`telegram:${tgUser.alice}`, env.alice);
  await pair(`slack:${slackUser.olive}`, olive);
  await pair(`slack:${slackUser.alice}`, env.alice);
  await waitFor('every channel to be connected', async () =>
    (await env.stack.api('GET', '/api/channels')).body.channels.every((c: { connected: boolean }) => c.connected),
  );
}, 120_000);

afterAll(async () => {
  if (app !== env?.stack.realApp) await app?.channels.stop();
  await env?.stop();
  channelStore?.close();
  await llm?.close();
  await discord?.close();
  await telegram?.close();
  await slack?.close();
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

describe('a conversation in a Telegram chat', () => {
  const replyIn = (messageId: number) =>
    waitFor(`the bot's reply to ${messageId}`, async () => telegram.messagesIn(TG_ROOM).find((m) => m.reply_to === messageId));

  it('a paired operator talks with the agent: the answer is posted as plain text, a tool call’s card shows in the chat and a press approves it; a stranger gets nothing; /end@bot ends it', async () => {
    llm.script(MODEL_ROUTE, { json: openaiCompletion({ content: 'Hi <b>olive</b>' }) });
    const hello = telegram.write(tgUser.olive, TG_ROOM, 'hello from telegram');
    expect(await replyIn(hello)).toMatchObject({ text: 'Hi <b>olive</b>', parse_mode: null });

    let answerAfterRun!: (reply: Reply) => void;
    llm.script(
      MODEL_ROUTE,
      { json: openaiCompletion({ tool_calls: [call('call_tg', 'echo ran >> /workspace/tg-room; wc -l < /workspace/tg-room')] }) },
      { held: new Promise<Reply>((resolve) => (answerAfterRun = resolve)) },
    );
    const count = telegram.write(tgUser.olive, TG_ROOM, 'count in telegram');
    const card = await waitFor('the card in the chat', async () => telegram.messagesIn(TG_ROOM).find((m) => m.buttons.length > 0));
    const actionId = /act-[0-9a-f]{16}/.exec(card.text)![0];
    const approve = card.buttons.find((b) => b.text === 'Approve')!.callback_data;
    expect(await telegram.press(tgUser.alice, card, approve)).toMatch(new RegExp(`^Approved: ${actionId}`));
    await waitFor('the card to show the result', async () => card.buttons.length === 0 && /completed/.test(card.text));
    await env.expectRanOnceApprovedByAlice(actionId, 'telegram');
    answerAfterRun({ json: openaiCompletion({ content: 'Counted.' }) });
    expect((await replyIn(count)).text).toBe('Counted.');

    const asked = llm.to(MODEL_ROUTE).length;
    const fromStranger = telegram.write(tgUser.stranger, TG_ROOM, 'hello');
    const ended = telegram.write(tgUser.olive, TG_ROOM, '/end@warden_bot');
    expect((await replyIn(ended)).text).toMatch(/^Conversation cnv-[0-9a-f]{16} ended/);
    expect(telegram.messagesIn(TG_ROOM).filter((m) => m.reply_to === fromStranger)).toEqual([]);
    expect(llm.to(MODEL_ROUTE).length).toBe(asked);
  }, 120_000);
});

describe('a conversation in a Slack channel', () => {
  const replyIn = (ts: string) =>
    waitFor(`the bot's reply to ${ts}`, async () => slack.messagesIn(SLACK_ROOM).find((m) => m.thread_ts === ts));

  it('a paired operator talks with the agent over Socket Mode: the answer is posted escaped in the thread, a tool call’s card shows in the channel and a press approves it; a stranger gets nothing; !end ends it', async () => {
    llm.script(MODEL_ROUTE, { json: openaiCompletion({ content: 'Hi <!channel> & *olive*' }) });
    const hello = slack.write(slackUser.olive, SLACK_ROOM, 'hello from slack');
    await hello.acked;
    expect(await replyIn(hello.ts)).toMatchObject({ text: 'Hi &lt;!channel&gt; &amp; *olive*', mrkdwn: false });

    let answerAfterRun!: (reply: Reply) => void;
    llm.script(
      MODEL_ROUTE,
      { json: openaiCompletion({ tool_calls: [call('call_slack', 'echo ran >> /workspace/slack-room; wc -l < /workspace/slack-room')] }) },
      { held: new Promise<Reply>((resolve) => (answerAfterRun = resolve)) },
    );
    const count = slack.write(slackUser.olive, SLACK_ROOM, 'count in slack');
    const card = await waitFor('the card in the channel', async () =>
      slack.messagesIn(SLACK_ROOM).find((m) => m.versions[0]!.includes('warden-approve')),
    );
    const actionId = /act-[0-9a-f]{16}/.exec(card.versions[0]!)![0];
    const pressed = slack.press(slackUser.alice, card, buttonValue(card, 'warden-approve'));
    await pressed.acked;
    expect(await pressed.ephemeral).toMatch(new RegExp(`^Approved: ${actionId}`));
    await waitFor('the card to show the result', async () => showsCompleted(card));
    await env.expectRanOnceApprovedByAlice(actionId, 'slack');
    answerAfterRun({ json: openaiCompletion({ content: 'Counted in Slack.' }) });
    expect((await replyIn(count.ts)).text).toBe('Counted in Slack.');

    const asked = llm.to(MODEL_ROUTE).length;
    const fromStranger = slack.write(slackUser.stranger, SLACK_ROOM, 'hello');
    await fromStranger.acked;
    const ended = slack.write(slackUser.olive, SLACK_ROOM, '!end');
    expect((await replyIn(ended.ts)).text).toMatch(/^Conversation cnv-[0-9a-f]{16} ended/);
    expect(slack.messagesIn(SLACK_ROOM).filter((m) => m.thread_ts === fromStranger.ts)).toEqual([]);
    expect(llm.to(MODEL_ROUTE).length).toBe(asked);
  }, 120_000);
});
