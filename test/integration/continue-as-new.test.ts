/**
 * Continue-as-new, for real: a dev server of this file's own suggests it after 40 history events,
 * so the agent workflow, the capacity workflow and a conversation cross runs during the test, and
 * must carry their state across.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { CAPACITY_WORKFLOW_ID, capacityQuery, conversationQuery } from '../../workflows/definitions.js';
import { freePort } from '../support/global-setup.js';
import type { Conversation, Turn } from '../../domain/conversation.js';
import { openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { containersOf, startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

let server: DevServer;
let dir: string;
let stack: Awaited<ReturnType<typeof startStack>>;
let fake: FakeLlm;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-can-'));
  server = await startDevServer({
    dbFile: join(dir, 'temporal.db'),
    port: await freePort(),
    uiPort: 0,
    ui: false,
    logFile: join(dir, 'temporal.log'),
    dynamicConfig: { 'limit.historyCount.suggestContinueAsNew': 40 },
  });
  fake = await startFakeLlm();
  stack = await startStack({
    config: {
      temporalAddress: server.address,
      maxAgents: 3,
      llmBaseUrl: `${fake.origin}/v1`,
      llmModel: 'fake-model',
      modelPrices: { 'fake-model': { input_per_million: 1000, output_per_million: 1000 } },
    },
  });
});
afterAll(async () => {
  await stack?.stop();
  await fake?.close();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A filesystem action (medium or low: it runs at once), as an operator's client submits it. */
const fileAction = async (agentId: string, operation: string, parameters: Record<string, unknown>) =>
  (
    await stack.api('POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'filesystem',
      operation,
      agent_id: agentId,
      parameters,
      wait_seconds: 30,
    })
  ).body;

const runIds = async (workflowId: string) => {
  const runs = new Set<string>();
  for await (const info of stack.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs.add(info.runId);
  return runs;
};

it('an agent continues as new and keeps its sandbox, record and behaviour', async () => {
  const id = uniqueId('can');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);
  const first = await waitForStatus(stack.api, id, ['running']);

  for (let round = 0; (await runIds(id)).size < 2; round++) {
    expect(round).toBeLessThan(15);
    await stack.api('POST', `/api/agents/${id}/pause`);
    await waitForStatus(stack.api, id, ['paused']);
    await stack.api('POST', `/api/agents/${id}/resume`);
    await waitForStatus(stack.api, id, ['running']);
    const wrote = await fileAction(id, 'write', { path: 'round.txt', content: String(round) });
    expect(wrote.status).toBe('completed');
  }

  // The new run carries the record over and still owns the same container.
  const now = await waitForStatus(stack.api, id, ['running']);
  expect(now).toMatchObject({ container_id: first.container_id, started_at: first.started_at, created_at: first.created_at });
  expect(await containersOf(id)).toHaveLength(1);
  const after = await fileAction(id, 'read', { path: 'round.txt' });
  expect(after).toMatchObject({ status: 'completed' });
  expect(after.result.stdout).toMatch(/^\d+$/);

  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped']);
  expect(await containersOf(id)).toHaveLength(0);
}, 180_000);

it('the capacity workflow continues as new and its count stays exact', async () => {
  // Each create and stop adds events to the capacity workflow; cycle until it has crossed a run.
  for (let round = 0; (await runIds(CAPACITY_WORKFLOW_ID)).size < 2; round++) {
    expect(round).toBeLessThan(20);
    const id = uniqueId(`cap-can${round}`);
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
  }
  // With max 3: exactly 3 more are admitted after the crossing, the 4th is refused.
  const ids = [1, 2, 3, 4].map((i) => uniqueId(`cap-after${i}`));
  const results = [];
  for (const agent_id of ids) results.push((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id })).status);
  expect(results).toEqual([201, 201, 201, 409]);
  const state = await stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery);
  expect(Object.keys(state.admitted).sort()).toEqual(ids.slice(0, 3).sort());
  for (const id of ids.slice(0, 3)) {
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  }
  for (const id of ids.slice(0, 3)) await waitForStatus(stack.api, id, ['stopped']);
}, 240_000);

it('a conversation continues as new between turns and keeps its transcript, usage, cost and spent budget', async () => {
  const ROUTE = 'POST /v1/chat/completions';
  const agent = uniqueId('can-conv');
  const created = await stack.api('POST', '/api/agents', {
    skill_id: 'filesystem',
    agent_id: agent,
    runtime: 'runc',
    budget: { conversation_tokens: 20_000 },
  });
  expect(created.status).toBe(201);
  await waitForStatus(stack.api, agent, ['running']);
  const id = (await stack.api('POST', '/api/conversations', { agent_id: agent })).body.id as string;
  const firstRun = (await stack.client.workflow.getHandle(id).describe()).runId;
  /** Sends a message once the conversation takes it (not while it moves to a new run) and waits for its turn. */
  const say = (message: string) =>
    waitFor(`"${message}" to be taken and answered`, async () => {
      const sent = await stack.api('POST', `/api/conversations/${id}/messages`, { message, wait_seconds: 60 });
      return sent.status === 202 ? (sent.body as Turn) : undefined;
    });
  const conversation = async () => (await stack.api('GET', `/api/conversations/${id}`)).body as Conversation;

  // The first turn writes a file and answers; its answer spends nearly all of the budget.
  fake.script(
    ROUTE,
    {
      json: openaiCompletion(
        { tool_calls: [{ id: 'call_note', name: 'filesystem_write', arguments: JSON.stringify({ path: 'note.txt', content: 'kept' }) }] },
        { usage: { prompt_tokens: 100, completion_tokens: 20, total_tokens: 120 } },
      ),
    },
    { json: openaiCompletion({ content: 'Written.' }, { usage: { prompt_tokens: 19_000, completion_tokens: 500, total_tokens: 19_500 } }) },
  );
  expect(await say('write a note')).toMatchObject({ status: 'answered', reply: 'Written.', actions: [{ status: 'completed' }] });

  // Each refused turn adds to the history, until the server suggests a new run.
  for (let round = 0; (await runIds(id)).size < 2; round++) {
    expect(round).toBeLessThan(20);
    expect(await say(`again ${round}`)).toMatchObject({ status: 'over_budget' });
  }
  // The first run's state as it ended.
  const before = await stack.client.workflow.getHandle(id, firstRun).query(conversationQuery);
  expect(before.usage).toEqual({ input_tokens: 19_100, output_tokens: 520, cached_tokens: 0 });
  expect(before.cost_usd).toBeCloseTo(19.62, 10);

  // The new run refuses as the old one did: the budget spent before is still spent.
  const refused = await say('once more, in the new run');
  expect(refused.status).toBe('over_budget');
  expect(refused.error).toMatch(/this conversation spent 19620 of 20000 tokens/);
  expect(fake.to(ROUTE)).toHaveLength(2);

  const after = await conversation();
  expect(after.usage).toEqual(before.usage);
  expect(after.cost_usd).toBeCloseTo(19.62, 10);
  expect(after.transcript.slice(0, before.transcript.length)).toEqual(before.transcript);
  expect(after.turns.slice(0, before.turns.length)).toEqual(before.turns);
  expect(after.turns.at(-1)).toMatchObject({ message: 'once more, in the new run', status: 'over_budget' });
  expect(after.turns.slice(1).every((t) => t.status === 'over_budget')).toBe(true);

  await stack.api('POST', `/api/conversations/${id}/end`);
  await stack.api('POST', `/api/agents/${agent}/stop`, { force: true });
  await waitForStatus(stack.api, agent, ['stopped']);
}, 240_000);
