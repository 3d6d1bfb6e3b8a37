/**
 * A conversation through what breaks, on a Temporal dev server of this file's own (so it can be
 * restarted) and a worker process the test kills: the worker SIGKILLed while the model is
 * answering, and the Temporal server restarted while a tool call waits for approval. Each turn
 * completes, and each command ran once, counted in the sandbox itself.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { ActionRecord } from '../../domain/action.js';
import type { Conversation } from '../../domain/conversation.js';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type Reply } from '../support/fake-llm.js';
import { freePort } from '../support/global-setup.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { killWorkers, signalWorker, startWorker, workerDataDir, workspaceLines, type WorkerProcess } from '../support/worker-process.js';

const ROUTE = 'POST /v1/chat/completions';
const dir = mkdtempSync(join(tmpdir(), 'warden-conversation-restarts-'));
let server: DevServer;
let serve: () => Promise<DevServer>;
let fake: FakeLlm;
let stack: Awaited<ReturnType<typeof startStack>>;
let worker: WorkerProcess;
let workerEnv: Record<string, string>;
let agent: string;
let approver: string;

async function restartWorker() {
  worker = startWorker(workerEnv);
  await worker.ready;
}

/** A shell command that counts its own runs in the workspace and prints the count. */
const countingCall = (id: string, file: string) => ({
  id,
  name: 'shell_exec',
  arguments: JSON.stringify({ command: `echo ran >> /workspace/${file}; wc -l < /workspace/${file}` }),
});

async function converse(message: string): Promise<string> {
  const created = await stack.api('POST', '/api/conversations', { agent_id: agent });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  expect((await stack.api('POST', `/api/conversations/${id}/messages`, { message })).status).toBe(202);
  return id;
}

/** The turn's tool call, once its action waits for approval. */
const pendingAction = (id: string, timeoutMs?: number) =>
  waitFor(
    'the tool call to await approval',
    async () => {
      const conversation: Conversation = (await stack.api('GET', `/api/conversations/${id}`)).body;
      const actionId = conversation.turns[0]?.actions[0]?.action_id;
      const action = actionId ? (await stack.api('GET', `/api/actions/${actionId}`)).body : undefined;
      return action?.status === 'pending' ? (action as ActionRecord) : undefined;
    },
    timeoutMs,
  );

async function approve(action: ActionRecord) {
  const res = await stack.realApp.request(`/api/actions/${action.id}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' },
    body: JSON.stringify({ approved: true, params_hash: action.params_hash }),
  });
  expect(res.status).toBe(200);
}

const endedTurn = (id: string) =>
  waitFor(
    'the turn to end',
    async () => {
      const turn = ((await stack.api('GET', `/api/conversations/${id}`)).body as Conversation).turns[0];
      return turn?.ended_at ? turn : undefined;
    },
    150_000,
  );

/** The content of the last message of a request the fake received. */
const lastMessageOf = (index: number) =>
  (fake.to(ROUTE)[index]!.body as { messages: Array<{ role: string; content: string }> }).messages.at(-1)!;

beforeAll(async () => {
  fake = await startFakeLlm();
  const port = await freePort();
  serve = () => startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  server = await serve();
  const llm = { llmBaseUrl: `${fake.origin}/v1`, llmModel: 'fake-model' };
  workerEnv = { TEMPORAL_ADDRESS: server.address, WARDEN_LLM_BASE_URL: llm.llmBaseUrl, WARDEN_LLM_MODEL: llm.llmModel };
  // The API's key store where the worker process reads it: it checks the conversation's requester there.
  stack = await startStack({
    workers: false,
    config: { ...llm, temporalAddress: server.address },
    keysFile: join(workerDataDir, 'warden.db'),
  });
  await restartWorker();
  approver = (await stack.keys.create('approver', 'approver', null)).key;
  agent = uniqueId('conv-restarts');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agent, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agent, ['running'], 90_000);
}, 240_000);

afterAll(async () => {
  if (agent && worker?.child.exitCode === null && worker.child.signalCode === null) {
    await stack.api('POST', `/api/agents/${agent}/stop`, { force: true });
    await waitForStatus(stack.api, agent, ['stopped'], 60_000).catch(() => undefined);
  }
  killWorkers();
  await stack?.stop();
  await server?.stop();
  await fake?.close();
  rmSync(dir, { recursive: true, force: true });
});

// A test that failed with its worker killed leaves the next one a worker.
beforeEach(async () => {
  if (worker.child.exitCode !== null || worker.child.signalCode !== null) await restartWorker();
});

it('a worker SIGKILLed while the model is answering: a new worker asks again, the turn completes, the command ran once', async () => {
  let answerHeld!: (reply: Reply) => void;
  const before = fake.to(ROUTE).length;
  fake.script(
    ROUTE,
    { json: openaiCompletion({ tool_calls: [countingCall('call_count', 'model-kill.txt')] }) },
    { held: new Promise<Reply>((resolve) => (answerHeld = resolve)) },
    { json: openaiCompletion({ content: 'It ran once.' }) },
  );
  const id = await converse('run the counter');
  await approve(await pendingAction(id));

  // The model is asked again with the command's result, and is still answering when the worker dies.
  await waitFor('the second model call', async () => fake.to(ROUTE).length === before + 2, 90_000);
  signalWorker(worker, 'SIGKILL');
  await worker.exited;
  answerHeld({ hangUp: true });
  await restartWorker();

  const turn = await endedTurn(id);
  expect(turn).toMatchObject({ status: 'answered', reply: 'It ran once.', actions: [{ status: 'completed' }] });
  expect(await workspaceLines(agent, '/workspace/model-kill.txt', 'ran')).toBe(1);
  // The killed call was asked again, the same request, and nothing more.
  expect(fake.to(ROUTE)).toHaveLength(before + 3);
  expect(fake.to(ROUTE)[before + 2]!.raw).toBe(fake.to(ROUTE)[before + 1]!.raw);
  expect(lastMessageOf(before + 2)).toMatchObject({ role: 'tool', content: expect.stringMatching(/completed\nexit code 0\nstdout:\n1\n/) });
}, 300_000);

it('a Temporal server restart while a tool call awaits approval: approved after it, the command runs once, the turn completes', async () => {
  const before = fake.to(ROUTE).length;
  fake.script(
    ROUTE,
    { json: openaiCompletion({ tool_calls: [countingCall('call_count', 'temporal-restart.txt')] }) },
    { json: openaiCompletion({ content: 'Done after the restart.' }) },
  );
  const id = await converse('run the counter');
  await pendingAction(id);

  await server.stop();
  server = await serve();
  // The API and the worker process reconnect on their own; the action is read again once they have.
  const held = await pendingAction(id, 120_000);
  await approve(held);

  const turn = await endedTurn(id);
  expect(turn).toMatchObject({
    status: 'answered',
    reply: 'Done after the restart.',
    actions: [{ action_id: held.id, status: 'completed' }],
  });
  expect(await workspaceLines(agent, '/workspace/temporal-restart.txt', 'ran')).toBe(1);
  expect(fake.to(ROUTE)).toHaveLength(before + 2);
  expect(lastMessageOf(before + 1)).toMatchObject({ role: 'tool', content: expect.stringMatching(/completed\nexit code 0\nstdout:\n1\n/) });
}, 300_000);
