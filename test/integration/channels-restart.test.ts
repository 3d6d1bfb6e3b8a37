/**
 * Discord approvals through what breaks: the worker process SIGKILLed, the Temporal server
 * restarted, no worker at all when the click comes (the decision goes as a signal and is applied
 * once a worker is back), and an agent busy in a conversation turn whose model holds its answer.
 * Real discord.js against the local fake Discord, real Temporal (a dev server of this file's own,
 * so it can be restarted), real Docker, worker processes the test kills.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { ActionRecord } from '../../domain/action.js';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { AuditStore } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { startChannelStack } from '../support/channel-stack.js';
import { startFakeDiscord, type FakeDiscord, type FakeMessage } from '../support/fake-discord.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type Reply } from '../support/fake-llm.js';
import { freePort } from '../support/global-setup.js';
import { testAuditOptions, waitFor } from '../support/helpers.js';
import { killWorkers, signalWorker, startWorker, workerDataDir, workspaceLines, type WorkerProcess } from '../support/worker-process.js';

const TOKEN_SECRET = 'DISCORD_BOT_TOKEN';
const ALICE = '930000000000000001';
const MODEL_ROUTE = 'POST /v1/chat/completions';
const dir = mkdtempSync(join(tmpdir(), 'warden-channels-restart-'));
let server: DevServer;
let serve: () => Promise<DevServer>;
let discord: FakeDiscord;
let llm: FakeLlm;
let env: Awaited<ReturnType<typeof startChannelStack>>;
let worker: WorkerProcess;
let workerEnv: Record<string, string>;
let audit: AuditStore;

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

/** SIGKILLs the worker process and waits until it is gone. */
async function killWorker() {
  signalWorker(worker, 'SIGKILL');
  await worker.exited;
}

async function restartWorker() {
  worker = startWorker(workerEnv);
  await worker.ready;
}

/** A command that counts its own runs in the workspace and prints the count. */
const countingCommand = (file: string) => `echo ran >> /workspace/${file}; wc -l < /workspace/${file}`;

/** The action completed once: approved by alice once, the card closed on its result, the command run once. */
async function ranOnce(id: string, file: string) {
  await settledCard(id, /completed \(exit code 0\)/);
  const done = await action(id);
  expect(done).toMatchObject({ status: 'completed', result: { stdout: '1\n' } });
  expect(done.approvals.map((a) => [a.approver.name, a.approved])).toEqual([['alice', true]]);
  expect(await audit.list({ action_id: id, kind: 'approval.granted' })).toHaveLength(1);
  expect(await workspaceLines(env.agentId, `/workspace/${file}`, 'ran')).toBe(1);
}

beforeAll(async () => {
  discord = await startFakeDiscord();
  llm = await startFakeLlm();
  const port = await freePort();
  serve = () => startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  server = await serve();
  const model = { llmBaseUrl: `${llm.origin}/v1`, llmModel: 'fake-model' };
  workerEnv = { TEMPORAL_ADDRESS: server.address, WARDEN_LLM_BASE_URL: model.llmBaseUrl, WARDEN_LLM_MODEL: model.llmModel };
  // The API and the worker process share the data dir, as in docker-compose.yml: the key store (the
  // worker checks a conversation's requester there) and the audit log (the API finds an action's
  // requester there without asking a worker).
  const keysFile = join(workerDataDir, 'warden.db');
  audit = AuditStore.open(join(workerDataDir, 'audit.db'), testAuditOptions(KeyStore.open(keysFile)));
  env = await startChannelStack({
    secrets: { [TOKEN_SECRET]: discord.token },
    config: {
      ...model,
      temporalAddress: server.address,
      discordBotTokenSecret: TOKEN_SECRET,
      discordChannelIds: discord.channelIds,
      discordApiUrl: discord.apiBase,
    },
    alice: `discord:${ALICE}`,
    stack: { workers: false, keysFile, audit },
    startWorkers: restartWorker,
  });
}, 240_000);

afterAll(async () => {
  await env?.stop();
  killWorkers();
  await server?.stop();
  await audit?.close();
  await discord?.close();
  await llm?.close();
  rmSync(dir, { recursive: true, force: true });
});

// A test that failed with its worker killed leaves the next one a worker.
beforeEach(async () => {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) await restartWorker();
});

it('a pending approval survives a SIGKILL of the worker: its button approves, the command runs once, the card shows the result', async () => {
  const { id } = (await env.submit(countingCommand('after-kill'))).body;
  const card = await cardOf(id);
  await killWorker();
  await restartWorker();
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Approved: ${id} is (approved|executing)`));
  await ranOnce(id, 'after-kill');
}, 240_000);

it('a click while no worker runs is sent as a signal, and applied once a worker is back', async () => {
  const { id } = (await env.submit(countingCommand('no-worker'))).body;
  const card = await cardOf(id);
  await killWorker();
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Sent: .*your approval of ${id} will be checked and applied when it is back`));
  // Only the signal is in the history yet: no worker has taken a task since.
  const history = await env.stack.client.workflow.getHandle(id).fetchHistory();
  expect(history.events!.filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'approve')).toHaveLength(1);
  expect(JSON.stringify(card.embeds)).toContain('Awaiting approval');

  await restartWorker();
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
  await server.stop();
  server = await serve();
  // The API and the worker process reconnect on their own; the action is read again once they have.
  await waitFor('the action to be read again', async () => (await action(id)).status === 'pending', 120_000);
  const { ack, answer } = await approveOn(card);
  expect(ack).toBe(5);
  expect(answer).toMatch(new RegExp(`^Approved: ${id} is (approved|executing)`));
  await ranOnce(id, 'after-temporal');
}, 240_000);
