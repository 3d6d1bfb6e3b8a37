/**
 * Continue-as-new, for real: a dev server of this file's own suggests it after 40 history events,
 * so both the agent workflow and the capacity workflow cross runs during the test, and must carry
 * their state across.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { CAPACITY_WORKFLOW_ID, capacityQuery } from '../../workflows/definitions.js';
import { freePort } from '../support/global-setup.js';
import { containersOf, startStack, uniqueId, waitForStatus } from '../support/helpers.js';

let server: DevServer;
let dir: string;
let stack: Awaited<ReturnType<typeof startStack>>;

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
  stack = await startStack({ config: { temporalAddress: server.address, maxAgents: 3 } });
});
afterAll(async () => {
  await stack?.stop();
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
