/**
 * The reaper against the real engine and server: its Schedule is made idempotently; a workflow
 * terminated by force leaves a container and a capacity slot that the reaper's run takes back;
 * a container of another host is never touched; an agent told that it lost its container moves
 * to error, unless it is already stopping.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { CAPACITY_WORKFLOW_ID, capacityQuery, containerLostUpdate, stopSignal } from '../../workflows/definitions.js';
import { ADMISSION_GRACE_MS } from '../../workflows/capacity.js';
import { sandboxContainerOptions } from '../../sandbox/spec.js';
import { ResourceLimitsSchema } from '../../domain/agent.js';
import { ensureReaperSchedule } from '../../workers/reaper-schedule.js';
import {
  containersOf,
  docker,
  recordHistory,
  startStack,
  TEST_HOST,
  TEST_MASTER_KEY,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import { triggerReaper } from '../support/reaper-runs.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const foreignIds: string[] = [];
const recorded = new Map<string, string>();

beforeAll(async () => {
  // Schedule intervals are aligned to the clock: an hourly one ticks at every :00 and could reap in
  // the middle of a test; a weekly one (Thursdays, 00:00 UTC) stays out of the way.
  stack = await startStack({ reaper: true, config: { reaperIntervalSeconds: 7 * 24 * 3600 } });
});
afterAll(async () => {
  for (const id of foreignIds)
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => undefined);
  for (const [name, id] of recorded) await recordHistory(name, id);
  await stack?.stop();
});

const createRunning = async (prefix: string) => {
  const id = uniqueId(prefix);
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  return waitForStatus(stack.api, id, ['running']);
};

it('makes one schedule per host, idempotently, even when two processes start at once', async () => {
  const host = `${TEST_HOST}-sched`;
  const made = await Promise.all([1, 2, 3].map(() => ensureReaperSchedule(stack.client, { host, intervalSeconds: 600 })));
  try {
    expect(made.map((m) => m.outcome).sort()).toEqual(['created', 'unchanged', 'unchanged']);
    expect(made[0]!.handle.scheduleId).toBe(`warden-reaper@${host}`);
    const described = await made[0]!.handle.describe();
    expect(described.spec.intervals).toMatchObject([{ every: 600_000 }]);
    expect(described.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
    expect(described.action).toMatchObject({ workflowType: 'reaperWorkflow', taskQueue: 'warden-control', args: [{ host }] });

    // A new interval updates the schedule in place; the same one again changes nothing.
    expect((await ensureReaperSchedule(stack.client, { host, intervalSeconds: 120 })).outcome).toBe('updated');
    expect((await made[0]!.handle.describe()).spec.intervals).toMatchObject([{ every: 120_000 }]);
    expect((await ensureReaperSchedule(stack.client, { host, intervalSeconds: 120 })).outcome).toBe('unchanged');
  } finally {
    await made[0]!.handle.delete();
  }
});

it('a worker process serving a host makes its reaper schedule at start-up', async () => {
  const host = `${TEST_HOST}-proc`;
  const handle = stack.client.schedule.getHandle(`warden-reaper@${host}`);
  const child = spawn('npx', ['tsx', 'workers/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      WARDEN_DOCKER_HOST_ID: host,
      WARDEN_WORKER_ROLES: 'sandbox',
      WARDEN_REAPER_INTERVAL_SECONDS: '120',
      WARDEN_LOG_LEVEL: 'warn',
      WARDEN_MASTER_KEY: TEST_MASTER_KEY, // the same keys as the test's client
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true, // its own process group, so tsx and node both get the signal
  });
  try {
    const described = await waitFor('the worker to make its schedule', () => handle.describe(), 90_000);
    expect(described.spec.intervals).toMatchObject([{ every: 120_000 }]);
    expect(described.action).toMatchObject({ workflowType: 'reaperWorkflow', args: [{ host }] });
  } finally {
    process.kill(-child.pid!, 'SIGTERM');
    await handle.delete().catch((err) => {
      if (!(err instanceof ScheduleNotFoundError)) throw err;
    });
  }
});

it('an agent told that its container is lost moves to error with that reason; one already stopping refuses', async () => {
  const agent = await createRunning('lost');
  recorded.set('container-lost', agent.id);
  const handle = stack.client.workflow.getHandle(agent.id);
  const reason = 'sandbox container removed outside Warden (the reaper found none for this running agent)';
  expect(await handle.executeUpdate(containerLostUpdate, { args: [{ reason, exit_code: null }] })).toEqual({
    accepted: true,
    status: 'running',
  });
  const failed = await waitForStatus(stack.api, agent.id, ['error']);
  expect(failed.error_message).toBe(reason);
  await handle.result();
  expect(await containersOf(agent.id)).toHaveLength(0); // the agent's own teardown removed it

  const stopping = await createRunning('lost-stop');
  const other = stack.client.workflow.getHandle(stopping.id);
  await other.signal(stopSignal, {});
  expect(await other.executeUpdate(containerLostUpdate, { args: [{ reason, exit_code: null }] })).toMatchObject({ accepted: false });
  expect(await other.result()).toMatchObject({ status: 'stopped', error_message: null });
});

it('removes the container of a terminated workflow and frees its slot, and never touches another host', async () => {
  const agent = await createRunning('reap');
  const admittedAt = Date.now();
  await stack.client.workflow.getHandle(agent.id).terminate('test: terminated by force');
  // A terminated workflow runs no cleanup: its container and its slot stay.
  expect((await containersOf(agent.id)).map((c) => c.State)).toEqual(['running']);
  const slots = async () => (await stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery)).admitted;
  expect(Object.keys(await slots())).toContain(agent.id);

  // Another host's Warden container, whose agent has no workflow at all: not this reaper's business.
  const foreignAgent = uniqueId('foreign');
  const foreign = await docker.createContainer(
    sandboxContainerOptions({
      agentId: foreignAgent,
      host: `${TEST_HOST}-other`,
      image: stack.config.sandboxImage,
      limits: ResourceLimitsSchema.parse({}),
      runtime: 'runc',
      engineRuntime: 'runc',
    }),
  );
  foreignIds.push(foreign.id);

  // A slot is only reclaimed once its admission grace has passed (an API may still be starting the workflow).
  await new Promise((r) => setTimeout(r, Math.max(0, admittedAt + ADMISSION_GRACE_MS + 1_000 - Date.now())));
  const report = await triggerReaper(stack.client, stack.reaperSchedule!);
  recorded.set('reaper', report.workflowId);

  expect(report.host).toBe(TEST_HOST);
  expect(report.containers_removed).toContainEqual({
    container_id: agent.container_id,
    agent_id: agent.id,
    state: 'running',
    reason: `the workflow of agent ${agent.id} is terminated: nothing owns this container`,
  });
  expect(report.containers_removed.map((c) => c.agent_id)).not.toContain(foreignAgent);
  expect(report.slots_released).toContain(agent.id);
  expect(await containersOf(agent.id)).toHaveLength(0);
  expect(Object.keys(await slots())).not.toContain(agent.id);
  expect((await docker.getContainer(foreign.id).inspect()).Config.Labels['dev.warden.agent-id']).toBe(foreignAgent);

  const entries = (await stack.audit.list({ agent_id: agent.id })).filter((e) => e.actor === 'reaper');
  expect(entries.map((e) => e.kind).sort()).toEqual(['reaper.container_removed', 'reaper.slot_released']);
  expect(entries.find((e) => e.kind === 'reaper.container_removed')!.details).toMatchObject({
    host: TEST_HOST,
    container_id: agent.container_id,
    reason: expect.stringContaining('terminated'),
  });
  expect((await stack.audit.verify()).ok).toBe(true);

  // Run again: nothing is left to do for this agent, and nothing is recorded twice.
  const again = await triggerReaper(stack.client, stack.reaperSchedule!);
  expect(again.containers_removed.map((c) => c.agent_id)).not.toContain(agent.id);
  expect(again.slots_released).not.toContain(agent.id);
  expect((await stack.audit.list({ agent_id: agent.id })).filter((e) => e.actor === 'reaper')).toHaveLength(2);
}, 180_000);
