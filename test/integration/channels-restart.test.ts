/**
 * Discord approvals through what breaks: the worker process SIGKILLed, the Temporal server
 * restarted, no worker at all when the click comes (the decision goes as a signal and is applied
 * once a worker is back), and an agent busy in a conversation turn whose model holds its answer.
 * Real discord.js against the local fake Discord, real Temporal (a dev server of this file's own,
 * so it can be restarted), real Docker, worker processes the test kills.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { ActionRecord } from '../../domain/action.js';
import { countingCommand, startBreakableChannelStack } from '../support/breakable-channel-stack.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage } from '../support/fake-discord.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type Reply } from '../support/fake-llm.js';
import { waitFor } from '../support/helpers.js';

const TOKEN_SECRET = 'DISCORD_BOT_TOKEN';
const ALICE = '930000000000000001';
const MODEL_ROUTE = 'POST /v1/chat/completions';
let discord: FakeDiscord;
let llm: FakeLlm;
let stack: Awaited<ReturnType<typeof startBreakableChannelStack>>;
let env: (typeof stack)['env'];

const action = async (id: string) => (await env.as(env.operator.key, 'GET', `/api/actions/${id}`)).body as ActionRecord;

/** The action's card, once posted. */
const cardOf = (actionId: string) =>
  waitFor(`the card of ${actionId}`, async () =>
    discord.messagesIn(discord.channelIds[0]!).find((m) => m.versions.some((v) => JSON.stringify(v).includes(actionId))),
  );

const approveButton = (card: FakeMessage) => card.components[0]!.components.find((b) => b.label === 'Approve')!.custom_id;

/** Alice clicks Approve: the acknowledgement's type, and the private answer that follows it. */
async function approveOn(card: FakeMessage) {
  const clicked = discord.click(ALICE, card, approveButton(card));
  const ack = await clicked.acknowledged;
  return { ack, answer: await clicked.answer };
}

const settledCard = (actionId: string, text: RegExp) =>
  waitFor(
    `the card of ${actionId} to show ${text}`,
    async () => {
      const card = await cardOf(actionId);
      return card.components.length === 0 && text.test(JSON.stringify(card.embeds)) ? card : undefined;
    },
    90_000,
  );

/** The action completed once, approved by alice from Discord, the card closed on its result. */
async function ranOnce(id: string, file: string) {
  await settledCard(id, /completed \(exit code 0\)/);
  expect(await action(id)).toMatchObject({ status: 'completed', result: { stdout: '1\n' } });
  await stack.expectRanOnce(id, file, 'discord');
}

beforeAll(async () => {
  discord = await startFakeDiscord();
  llm = await startFakeLlm();
  const model = { llmBaseUrl: `${llm.origin}/v1`, llmModel: 'fake-model' };
  stack = await startBreakableChannelStack({
    secrets: { [TOKEN_SECRET]: discord.token },
    config: { ...model, discordBotTokenSecret: TOKEN_SECRET, discordChannelIds: discord.channelIds, discordApiUrl: discord.apiBase },
    alice: `discord:${ALICE}`,
    workerEnv: { WARDEN_LLM_BASE_URL: model.llmBaseUrl, WARDEN_LLM_MODEL: model.llmModel },
  });
  env = stack.env;
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  await discord?.close();
  await llm?.close();
});

// A test that failed with its worker killed leaves the next one a worker.
beforeEach(() => stack.ensureWorker());

it('a pending approval survives a SIGKILL of the worker: its button approves, the command runs once, the card shows the result', async () => {
  const { id } = (await env.submit(countingCommand('after-kill'))).body;
  const card = await cardOf(id);
  await stack.killWorker();
  await stack.restartWorker();
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Approved: ${id} is (approved|executing)`));
  await ranOnce(id, 'after-kill');
}, 240_000);

it('a click while no worker runs is sent as a signal, and applied once a worker is back', async () => {
  const { id } = (await env.submit(countingCommand('no-worker'))).body;
  const card = await cardOf(id);
  await stack.killWorker();
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Sent: .*your approval of ${id} will be checked and applied when it is back`));
  // Only the signal is in the history yet: no worker has taken a task since.
  const history = await env.stack.client.workflow.getHandle(id).fetchHistory();
  expect(history.events!.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'approve')).toHaveLength(1);
  expect(JSON.stringify(card.embeds)).toContain('Awaiting approval');

  await stack.restartWorker();
  await ranOnce(id, 'no-worker');
}, 240_000);

it('a click is acknowledged and decided while a conversation turn on the same agent waits for its model', async () => {
  let answerModel!: (reply: Reply) => void;
  llm.script(MODEL_ROUTE, { held: new Promise<Reply>((resolve) => (answerModel = resolve)) });
  const asked = llm.to(MODEL_ROUTE).length;
  const started = await env.as(env.operator.key, 'POST', '/api/conversations', { agent_id: env.agentId });
  expect(started.status).toBe(201);
  const conversation = started.body.id as string;
  expect((await env.as(env.operator.key, 'POST', `/api/conversations/${conversation}/messages`, { message: 'hello' })).status).toBe(202);
  await waitFor('the model to be asked', async () => llm.to(MODEL_ROUTE).length > asked);

  const { id } = (await env.submit(countingCommand('while-busy'))).body;
  const card = await cardOf(id);
  // The model is answered only after all of this: the click cannot have waited for the turn.
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Approved: ${id} is (approved|executing)`));
  await ranOnce(id, 'while-busy');
  const turn = async () => (await env.as(env.operator.key, 'GET', `/api/conversations/${conversation}`)).body.turns[0];
  expect((await turn()).ended_at).toBeNull();

  answerModel({ json: openaiCompletion({ content: 'Hello.' }) });
  const ended = await waitFor('the turn to end', async () => ((await turn()).ended_at ? turn() : undefined));
  expect(ended).toMatchObject({ status: 'answered', reply: 'Hello.' });
}, 240_000);

it('a pending approval survives a restart of the Temporal server: its button approves, the command runs once', async () => {
  const { id } = (await env.submit(countingCommand('after-temporal'))).body;
  const card = await cardOf(id);
  await stack.stopTemporal();
  await stack.startTemporal();
  // The API and the worker process reconnect on their own; the action is read again once they have.
  await waitFor('the action to be read again', async () => (await action(id)).status === 'pending', 120_000);
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Approved: ${id} is (approved|executing)`));
  await ranOnce(id, 'after-temporal');
}, 240_000);
