/** max_agents holds under concurrent creates: with room for N, N+5 simultaneous creates admit exactly N. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { CAPACITY_WORKFLOW_ID, capacityQuery, releaseAgentSignal } from '../../workflows/definitions.js';
import { containersOf, recordHistory, startStack, stopLiveAgents, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
afterAll(async () => {
  await recordHistory('capacity', CAPACITY_WORKFLOW_ID);
  await stack?.stop();
});

async function admitted(client: typeof stack.client): Promise<number> {
  try {
    return Object.keys((await client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery)).admitted).length;
  } catch {
    return 0; // no capacity workflow yet
  }
}

const ROOM = 4;

beforeAll(async () => {
  // Start from an idle system: agents of earlier test files have ended and released their slots.
  // The capacity workflow is the suite's: clear what other test files left behind.
  const probe = await startStack();
  await stopLiveAgents(probe.api);
  // Agents of other hosts whose workers those files stopped can never end by themselves.
  for await (const info of probe.client.workflow.list({ query: `WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running'` })) {
    await probe.client.workflow
      .getHandle(info.workflowId)
      .terminate('capacity test: left over by another test file')
      .catch(() => undefined);
  }
  await waitFor('earlier agents to end and release their slots', async () => {
    const { count } = await probe.client.workflow.count(`WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running'`);
    if (count > 0) return false;
    // Slots of ended workflows (terminated ones never release theirs) are freed as the reaper would.
    const capacity = probe.client.workflow.getHandle(CAPACITY_WORKFLOW_ID);
    const held = await capacity.query(capacityQuery).then(
      (c) => Object.keys(c.admitted),
      () => [],
    );
    for (const agentId of held) await capacity.signal(releaseAgentSignal, { agentId });
    return (await admitted(probe.client)) === 0;
  });
  await probe.stop();
  stack = await startStack({ config: { maxAgents: ROOM } });
});

it(`admits exactly ${ROOM} of ${ROOM + 5} simultaneous creates`, async () => {
  const ids = Array.from({ length: ROOM + 5 }, (_, i) => uniqueId(`cap${i}`));
  const results = await Promise.all(ids.map((agent_id) => stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id })));
  const created = ids.filter((_, i) => results[i]!.status === 201);
  const refused = results.filter((r) => r.status === 409);
  expect(created).toHaveLength(ROOM);
  expect(refused).toHaveLength(5);
  for (const r of refused) {
    expect(r.body.error.code).toBe('capacity_exceeded');
    expect(r.body.error.message).toMatch(/capacity reached: \d+ of \d+ agents are running; stop one or raise WARDEN_MAX_AGENTS/);
  }
  // Refused creates left nothing behind; admitted ones all run.
  for (const id of ids.filter((i) => !created.includes(i))) {
    expect(await stack.api('GET', `/api/agents/${id}`)).toMatchObject({ status: 404 });
    expect(await containersOf(id)).toHaveLength(0);
  }
  for (const id of created) await waitForStatus(stack.api, id, ['running']);
  const info = await stack.api('GET', '/api/sandbox');
  expect(info.body.current_agents).toBe(info.body.max_agents);

  // Stopping one frees its slot for the next create.
  await stack.api('POST', `/api/agents/${created[0]}/stop`, { force: true });
  await waitForStatus(stack.api, created[0]!, ['stopped']);
  const next = uniqueId('cap-next');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: next })).status).toBe(201);
  for (const id of [...created.slice(1), next]) {
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  }
  for (const id of [...created.slice(1), next]) await waitForStatus(stack.api, id, ['stopped']);
});

it('refuses a second agent with an id already used', async () => {
  const id = uniqueId('dup');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);
  const again = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
  expect(again.status).toBe(409);
  expect(again.body.error.code).toBe('agent_exists');
  await waitForStatus(stack.api, id, ['running']);
  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped']);
  const reuse = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
  expect(reuse.status).toBe(409);
  expect(reuse.body.error.message).toMatch(/never reused/);
});
