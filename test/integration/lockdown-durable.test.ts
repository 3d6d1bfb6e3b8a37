/**
 * The lockdown against someone who can reach Temporal's port: a workflow squatting on the id of
 * the next emergency stop does not stop the stop, and terminating or deleting the capacity
 * workflow lifts nothing (the audit log records the lockdown); every check fails closed, and the
 * resume still works afterwards.
 */
import { WorkflowNotFoundError } from '@temporalio/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPACITY_WORKFLOW_ID, capacityQuery } from '../../workflows/definitions.js';
import { containersOf, recordHistory, startStack, submitShell, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
const agentId = uniqueId('locked');
let pendingId: string;

const small = (agent_id: string) => ({
  skill_id: 'shell',
  agent_id,
  runtime: 'runc',
  resource_limits: { cpu_cores: 0.1, memory_mb: 64, disk_mb: 8, max_processes: 32 },
});
const LOCKDOWN =
  /^Warden is in emergency lockdown since \S+ by test admin: squatters everywhere; an admin must POST \/api\/system\/resume$/;

beforeAll(async () => {
  stack = await startStack();
  expect((await stack.api('POST', '/api/agents', small(agentId))).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  const action = await submitShell(stack.api, agentId, 'touch /workspace/never');
  expect(action.body.status).toBe('pending');
  pendingId = action.body.id;
  // The stop finds pending approvals through visibility.
  await waitFor('the action to be listed as pending', async () =>
    (await stack.api('GET', '/api/actions/pending')).body.actions.some((a: { id: string }) => a.id === pendingId),
  );
  // Listed from its start, it awaits approval only once its workflow has checked the lockdown: on a
  // loaded machine the stop could otherwise come first, and the action would be refused, not cancelled.
  await waitFor(
    'the action to await approval',
    async () => (await stack.audit.list({ action_id: pendingId, kind: 'approval.requested', limit: 1 }))[0],
  );
});
afterAll(async () => {
  await stack?.api('POST', '/api/system/resume', { reason: 'test cleanup' });
  await stack?.stop();
});

const capacity = () => stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID);

describe('an id squatted ahead of the emergency stop', () => {
  it('does not keep the stop from stopping every agent and cancelling every approval', async () => {
    // The attacker, on Temporal's port, takes the ids the next stops would have had (numbered ids).
    const { stops = 0 } = await capacity().query(capacityQuery);
    for (const n of [stops + 1, stops + 2]) {
      await stack.client.workflow.start('squatter', { workflowId: `warden-emergency-stop-${n}`, taskQueue: 'nobody-polls-this' });
    }
    const res = await stack.api('POST', '/api/system/emergency-stop', { reason: 'squatters everywhere' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.stop_workflow_id).toMatch(/^warden-emergency-stop-[0-9a-f-]{36}-\d+$/);
    expect(res.body.report.agents_stopped).toContain(agentId);
    expect(res.body.report.approvals_cancelled).toContain(pendingId);
    await waitForStatus(stack.api, agentId, ['stopped']);
    expect(await containersOf(agentId)).toHaveLength(0);
    expect((await stack.api('GET', '/api/system/lockdown')).body).toMatchObject({
      locked: true,
      stop_workflow_id: res.body.stop_workflow_id,
    });
    await recordHistory('capacity-unique-stop-id', CAPACITY_WORKFLOW_ID);
  });
});

describe('the capacity workflow ended from Temporal', () => {
  it('terminated: new agents and actions are still refused, and the lockdown still shows', async () => {
    await capacity().terminate('attacker');
    const agent = await stack.api('POST', '/api/agents', small(uniqueId('after-terminate')));
    expect(agent.status).toBe(423);
    expect(agent.body.error.message).toMatch(LOCKDOWN);
    const action = await submitShell(stack.api, agentId, 'echo hi');
    expect(action.status).toBe(423);
    expect((await stack.api('GET', '/api/system/lockdown')).body).toMatchObject({ locked: true, reason: 'squatters everywhere' });
  });

  it('deleted: the lockdown checks fail closed on the audit log', async () => {
    await stack.client.workflowService.deleteWorkflowExecution({
      namespace: 'default',
      workflowExecution: { workflowId: CAPACITY_WORKFLOW_ID },
    });
    await waitFor('the capacity workflow to be deleted', async () =>
      capacity()
        .describe()
        .then(
          () => false,
          (err) => err instanceof WorkflowNotFoundError,
        ),
    );
    expect((await stack.api('GET', '/api/system/lockdown')).body).toMatchObject({
      locked: true,
      reason: 'squatters everywhere',
      message: expect.stringMatching(LOCKDOWN),
    });
    const action = await submitShell(stack.api, agentId, 'echo hi');
    expect(action.status).toBe(423);
    expect(action.body.error.message).toMatch(LOCKDOWN);
  });

  it('the resume lifts it, and a new agent runs again', async () => {
    const res = await stack.api('POST', '/api/system/resume', { reason: 'squatters gone' });
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.lifted).toMatchObject({ reason: 'squatters everywhere' });
    expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false);
    const id = uniqueId('resumed');
    expect((await stack.api('POST', '/api/agents', small(id))).status).toBe(201);
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
  });
});
