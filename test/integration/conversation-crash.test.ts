/**
 * Durability of a conversation: the worker process is SIGKILLed while a tool call's command runs;
 * a new worker carries the turn on, the command ran once, and its result reaches the model.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { ActionRecord } from '../../domain/action.js';
import type { Conversation } from '../../domain/conversation.js';
import { openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { recordHistory, startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { killWorkers, startWorker, workerDataDir, workspaceLines } from '../support/worker-process.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let fake: FakeLlm;
const ROUTE = 'POST /v1/chat/completions';
/** The worker process calls the fake as the API's configuration names it. */
let workerEnv: Record<string, string>;

beforeAll(async () => {
  fake = await startFakeLlm();
  const llm = { llmBaseUrl: `${fake.origin}/v1`, llmModel: 'fake-model' };
  workerEnv = { WARDEN_LLM_BASE_URL: llm.llmBaseUrl, WARDEN_LLM_MODEL: llm.llmModel };
  // The API's key store where the worker process reads it: it checks the conversation's requester there.
  stack = await startStack({ workers: false, config: llm, keysFile: join(workerDataDir, 'warden.db') });
});
afterAll(async () => {
  killWorkers();
  await stack?.stop();
  await fake?.close();
});

it("a tool call whose worker is killed mid-command runs once, and the turn ends with the command's result", async () => {
  await startWorker(workerEnv).ready;
  const agent = uniqueId('conv-crash');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agent, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agent, ['running'], 90_000);
  const created = await stack.api('POST', '/api/conversations', { agent_id: agent });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  fake.script(
    ROUTE,
    {
      json: openaiCompletion({
        tool_calls: [
          { id: 'call_slow', name: 'shell_exec', arguments: JSON.stringify({ command: 'echo run >> count.txt; sleep 6; echo finished' }) },
        ],
      }),
    },
    { json: openaiCompletion({ content: 'It finished.' }) },
  );
  expect((await stack.api('POST', `/api/conversations/${id}/messages`, { message: 'run the slow job' })).status).toBe(202);

  const held = await waitFor('the tool call to await approval', async () => {
    const conversation: Conversation = (await stack.api('GET', `/api/conversations/${id}`)).body;
    const actionId = conversation.turns[0]?.actions[0]?.action_id;
    const action = actionId ? (await stack.api('GET', `/api/actions/${actionId}`)).body : undefined;
    return action?.status === 'pending' ? (action as ActionRecord) : undefined;
  });
  const approver = (await stack.keys.create('approver', 'approver', null)).key;
  const approved = await stack.realApp.request(`/api/actions/${held.id}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' },
    body: JSON.stringify({ approved: true, params_hash: held.params_hash }),
  });
  expect(approved.status).toBe(200);

  const lines = () => workspaceLines(agent, 'count.txt');
  await waitFor('the command to start', async () => (await lines()) === 1);
  killWorkers();
  startWorker(workerEnv);

  const turn = await waitFor(
    'the turn to end',
    async () => {
      const t = ((await stack.api('GET', `/api/conversations/${id}`)).body as Conversation).turns[0];
      return t?.ended_at ? t : undefined;
    },
    120_000,
  );
  expect(turn).toMatchObject({ status: 'answered', reply: 'It finished.', actions: [{ action_id: held.id, status: 'completed' }] });
  expect(await lines()).toBe(1);
  const result = (fake.to(ROUTE).at(-1)!.body as { messages: Array<{ role: string; content: string }> }).messages.at(-1)!;
  expect(result).toMatchObject({ role: 'tool' });
  expect(result.content).toMatch(/completed\nexit code 0\nstdout:\nfinished\n/);
  await recordHistory('conversation-worker-killed', id);

  await stack.api('POST', `/api/agents/${agent}/stop`, { force: true });
  await waitForStatus(stack.api, agent, ['stopped'], 60_000);
}, 240_000);
