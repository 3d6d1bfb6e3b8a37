/**
 * The warm sandbox pool against the real engine and server, under every runtime this engine has
 * (runc, and runsc when gVisor is installed): an agent takes a member (its container is the
 * member, no new one is made), runs an action in it, the pool refills and the used sandbox never
 * comes back; a retried create adopts what the first attempt claimed and takes no second member;
 * a worker killed mid-claim leaves neither a leak nor a member given twice; the lockdown drains
 * the pool and nothing is made until it is lifted; the reaper removes members of an earlier
 * process and of a profile no longer kept, and never another host's.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ResourceLimitsSchema } from '../../domain/agent.js';
import { createSandboxActivities } from '../../activities/sandbox.js';
import { idlePoolMembers } from '../../sandbox/pool.js';
import { LABELS, POOL_MEMBER_PREFIX, sandboxProfileOptions } from '../../sandbox/spec.js';
import { runtimesUnderTest } from '../support/require-or-skip.js';
import {
  activityEnv,
  approveWith,
  containersOf,
  docker,
  recordHistory,
  startStack,
  submitShell,
  TEST_HOST,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import { triggerReaper } from '../support/reaper-runs.js';
import { killWorkers, signalWorker, startWorker } from '../support/worker-process.js';

const { engine, runtimes } = await runtimesUnderTest(docker);

let stack: Awaited<ReturnType<typeof startStack>>;
const handMade: string[] = [];

beforeAll(async () => {
  stack = await startStack({
    reaper: true,
    // The pool reconciles itself only when the tests ask (the reaper's runs, or reconcile()):
    // between two of its own rounds it would remove what a test sets up for the reaper.
    poolReconcileMs: 3_600_000,
    // A weekly schedule stays out of the way; the tests trigger the runs they need.
    config: {
      reaperIntervalSeconds: 7 * 24 * 3600,
      sandboxPoolSize: 1,
      sandboxPoolProfiles: runtimes.map((r) => `runtime=${r}`).join(';'),
    },
  });
});
afterAll(async () => {
  for (const id of handMade)
    await docker
      .getContainer(id)
      .remove({ force: true })
      .catch(() => undefined);
  await stack?.api('POST', '/api/system/resume', { reason: 'test cleanup' });
  await stack?.stop();
});

/** The idle, running members of the host's pool, per runtime of their profile. */
async function idleMembers(runtime?: string) {
  const members = (await idlePoolMembers(docker, TEST_HOST)).filter((m) => m.state === 'running');
  if (!runtime) return members;
  const infos = await Promise.all(members.map((m) => docker.getContainer(m.id).inspect()));
  return members.filter((_, i) => infos[i]!.HostConfig.Runtime === engine.names[runtime as 'runc']);
}

const waitForMember = (runtime: string, not: string[] = []) =>
  waitFor(`an idle ${runtime} pool member`, async () => (await idleMembers(runtime)).find((m) => !not.includes(m.id)), 120_000);

async function actionOutput(agentId: string, command: string): Promise<string> {
  const submitted = await submitShell(stack.api, agentId, command);
  expect(submitted.status).toBe(202);
  if (submitted.body.status === 'pending') expect(await approveWith(stack, await stack.keyFor('approver'), submitted.body)).toBe(200);
  const done = await waitFor(`action ${submitted.body.id} to end`, async () => {
    const res = await stack.api('GET', `/api/actions/${submitted.body.id}`);
    return ['completed', 'failed'].includes(res.body.status) ? res.body : undefined;
  });
  expect(done.status).toBe('completed');
  return done.result.stdout;
}

describe.each(runtimes)('under %s', (runtime) => {
  it('an agent takes a warm member as its sandbox, runs an action in it; the pool refills and never gets it back', async () => {
    const member = await waitForMember(runtime);
    const id = uniqueId(`pool-${runtime}`);
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime })).status).toBe(201);
    const agent = await waitForStatus(stack.api, id, ['running']);

    // The member itself, renamed: no container was created for the agent.
    expect(agent.container_id).toBe(member.id);
    const info = await docker.getContainer(member.id).inspect();
    expect(info.Name).toBe(`/warden-agent-${id}`);
    expect(info.Config.Labels[LABELS.pool]).toBe(member.profile);
    expect(info.Config.Labels[LABELS.agentId]).toBeUndefined();
    expect((await containersOf(id)).map((c) => c.Id)).toEqual([member.id]);
    const running = (await stack.audit.list({ agent_id: id, kind: 'agent.status_changed' })).find((e) => e.details.to === 'running');
    expect(running?.details.sandbox_pool).toBe('hit');

    expect(await actionOutput(id, 'echo warm > note; cat note; id -u')).toMatch(/^warm\n\d+\n$/);

    // A new member takes its place; the claimed one is no member any more.
    const next = await waitForMember(runtime, [member.id]);
    expect(next.id).not.toBe(member.id);
    expect((await idlePoolMembers(docker, TEST_HOST)).map((m) => m.id)).not.toContain(member.id);

    const metrics = await (await stack.app.request('/metrics')).text();
    expect(metrics).toMatch(/warden_sandbox_pool_claims_total\{outcome="hit"\} [1-9]/);
    expect(metrics).toContain(`warden_sandbox_pool_idle{profile="${next.profile}"} 1`);

    // Stopped, its sandbox is removed, not returned to the pool.
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
    await expect(docker.getContainer(member.id).inspect()).rejects.toMatchObject({ statusCode: 404 });
    expect((await idlePoolMembers(docker, TEST_HOST)).map((m) => m.id)).not.toContain(member.id);
  }, 240_000);
});

it("a claimed sandbox is still its agent's for the watch and the reaper: found by its name", async () => {
  // Killed outside Warden: the agent's watch hears of it on the host's events stream, by name.
  const killed = uniqueId('pool-kill');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: killed, runtime: 'runc' })).status).toBe(201);
  const first = await waitForStatus(stack.api, killed, ['running']);
  expect((await docker.getContainer(first.container_id!).inspect()).Config.Labels[LABELS.pool]).toBeDefined();
  await docker.getContainer(first.container_id!).kill({ signal: 'SIGKILL' });
  const lost = await waitForStatus(stack.api, killed, ['error']);
  expect(lost.error_message).toMatch(/outside Warden/);
  await waitFor('its container to go', async () => (await containersOf(killed)).length === 0);

  // Its workflow terminated by force: the reaper takes the claimed sandbox for an orphan of that agent.
  const orphan = uniqueId('pool-orphan');
  await waitForMember('runc');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: orphan, runtime: 'runc' })).status).toBe(201);
  const agent = await waitForStatus(stack.api, orphan, ['running']);
  await stack.client.workflow.getHandle(orphan).terminate('test: terminated by force');
  const report = await triggerReaper(stack.client, stack.reaperSchedule!);
  expect(report.containers_removed).toContainEqual(
    expect.objectContaining({ container_id: agent.container_id, agent_id: orphan, state: 'running' }),
  );
  expect(await containersOf(orphan)).toHaveLength(0);
}, 180_000);

it('an agent of a profile the pool does not keep gets a sandbox made for it', async () => {
  const id = uniqueId('pool-other');
  const body = { skill_id: 'shell', agent_id: id, runtime: 'runc', resource_limits: { memory_mb: 256 } };
  expect((await stack.api('POST', '/api/agents', body)).status).toBe(201);
  const agent = await waitForStatus(stack.api, id, ['running']);
  const info = await docker.getContainer(agent.container_id!).inspect();
  expect(info.Config.Labels[LABELS.agentId]).toBe(id);
  expect(info.Config.Labels[LABELS.pool]).toBeUndefined();
  const running = (await stack.audit.list({ agent_id: id, kind: 'agent.status_changed' })).find((e) => e.details.to === 'running');
  expect(running?.details.sandbox_pool).toBe('none');
  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped']);
});

it('a retried create adopts the member its first attempt claimed and takes no second one', async () => {
  const member = await waitForMember('runc');
  const agentId = uniqueId('pool-retry');
  const create = createSandboxActivities(docker, { pool: stack.pool }).createSandbox;
  const input = {
    agentId,
    host: TEST_HOST,
    image: stack.config.sandboxImage,
    limits: ResourceLimitsSchema.parse({}),
    runtime: 'runc' as const,
    requireSandbox: false,
  };
  try {
    const first = await activityEnv().run(create, input);
    expect(first).toMatchObject({ containerId: member.id, pool: 'hit' });
    const refilled = await waitForMember('runc', [member.id]);
    // As after a worker that died between the claim and the activity's completion: the retry.
    const second = await activityEnv().run(create, input);
    expect(second).toMatchObject({ containerId: member.id, pool: 'hit' });
    expect((await idleMembers('runc')).map((m) => m.id)).toContain(refilled.id);
    expect((await containersOf(agentId)).map((c) => c.Id)).toEqual([member.id]);
  } finally {
    await docker
      .getContainer(`warden-agent-${agentId}`)
      .remove({ force: true })
      .catch(() => undefined);
  }
}, 180_000);

it('counts its members in the host capacity of /api/sandbox', async () => {
  const res = await stack.api('GET', '/api/sandbox');
  expect(res.status).toBe(200);
  const members = runtimes.length;
  expect(res.body.pool).toMatchObject({ size: 1, reserved: { members, cpu_cores: members, memory_bytes: members * 512 * 1024 * 1024 } });
  expect(Object.values(res.body.pool.idle as Record<string, number>).reduce((a, b) => a + b, 0)).toBeLessThanOrEqual(members);
  expect(res.body.capacity.memory_bytes.used).toBeGreaterThanOrEqual(members * 512 * 1024 * 1024);

  // An agent that would fit the host alone does not fit beside the pool's members: admission refuses it.
  const hostMb = Math.floor((await docker.info()).MemTotal / (1024 * 1024));
  const asked = hostMb - members * 512 + 1;
  const refused = await stack.api('POST', '/api/agents', {
    skill_id: 'shell',
    agent_id: uniqueId('pool-full'),
    runtime: 'runc',
    resource_limits: { memory_mb: asked },
  });
  expect(refused.status).toBe(409);
  expect(refused.body.error.code).toBe('host_capacity_exceeded');
  expect(refused.body.error.message).toContain(`${members} warm pool member(s)`);
});

it('the reaper removes members of an earlier process and of a profile no longer kept, and never another host', async () => {
  await waitForMember('runc');
  const profile = {
    host: TEST_HOST,
    image: stack.config.sandboxImage,
    limits: ResourceLimitsSchema.parse({}),
    runtime: 'runc' as const,
    engineRuntime: 'runc',
  };
  const member = async (host: string, key: string, owner: string) => {
    const options = sandboxProfileOptions({ ...profile, host });
    const c = await docker.createContainer({
      ...options,
      name: `${POOL_MEMBER_PREFIX}${key}-${randomUUID().slice(0, 8)}`,
      Labels: { ...options.Labels, [LABELS.pool]: key, [LABELS.poolOwner]: owner },
    });
    handMade.push(c.id);
    await c.start();
    return c.id;
  };
  const [[kept]] = Object.entries(stack.pool!.idle());
  const earlier = await member(TEST_HOST, kept!, randomUUID());
  const dropped = await member(TEST_HOST, 'feedfacefeedface', stack.pool!.owner);
  const elsewhere = await member(`${TEST_HOST}-other`, kept!, randomUUID());

  const report = await triggerReaper(stack.client, stack.reaperSchedule!);
  await recordHistory('reaper-pool', report.workflowId);
  expect(report.pool_members_removed).toEqual(
    expect.arrayContaining([
      expect.objectContaining({ container_id: earlier, reason: 'a member of an earlier worker process' }),
      expect.objectContaining({ container_id: dropped, reason: 'its profile is no longer kept' }),
    ]),
  );
  expect(report.pool_members_removed!.map((m) => m.container_id)).not.toContain(elsewhere);
  await expect(docker.getContainer(earlier).inspect()).rejects.toMatchObject({ statusCode: 404 });
  await expect(docker.getContainer(dropped).inspect()).rejects.toMatchObject({ statusCode: 404 });
  expect((await docker.getContainer(elsewhere).inspect()).State.Running).toBe(true);
  expect(report.pool_idle).toMatchObject({ [kept!]: 1 });
  const audited = (await stack.audit.list({ kind: 'reaper.pool_member_removed' })).map((e) => e.details.container_id);
  expect(audited).toEqual(expect.arrayContaining([earlier, dropped]));
  expect((await stack.audit.verify()).ok).toBe(true);
}, 180_000);

it('the lockdown drains the pool; nothing is made until it is lifted', async () => {
  await waitForMember('runc');
  const before = (await idlePoolMembers(docker, TEST_HOST)).map((m) => m.id);
  expect((await stack.api('POST', '/api/system/emergency-stop', { reason: 'drill: the pool drains' })).status).toBe(200);
  const report = await triggerReaper(stack.client, stack.reaperSchedule!);
  expect(report.pool_members_removed!.map((m) => m.container_id).sort()).toEqual([...before].sort());
  expect(new Set(report.pool_members_removed!.map((m) => m.reason))).toEqual(new Set(['Warden is locked down']));
  expect(await idlePoolMembers(docker, TEST_HOST)).toEqual([]);
  // Reconciling again while locked makes nothing.
  expect(Object.values((await stack.pool!.reconcile()).idle).every((n) => n === 0)).toBe(true);
  expect(await idlePoolMembers(docker, TEST_HOST)).toEqual([]);

  expect((await stack.api('POST', '/api/system/resume', { reason: 'drill over' })).status).toBe(200);
  await stack.pool!.reconcile();
  await waitForMember('runc');
}, 180_000);

it('a worker killed mid-claim leaves no leak and gives no member to two agents', async () => {
  // This file's in-process worker gives way to worker processes on the same host.
  await stack.stop();
  const env = { WARDEN_SANDBOX_POOL_SIZE: '2', WARDEN_SANDBOX_POOL_PROFILES: 'runtime=runc', WARDEN_REQUIRE_SANDBOX: 'false' };
  stack = await startStack({ workers: false });
  try {
    const first = startWorker(env);
    await first.ready;
    const before = (
      await waitFor(
        'two idle members',
        async () => {
          const idle = await idleMembers('runc');
          return idle.length === 2 ? idle : undefined;
        },
        120_000,
      )
    ).map((m) => m.id);
    const id = uniqueId('pool-crash');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
    // Killed the moment the claim renamed a member: the create activity may not have completed.
    await waitFor('the claim', async () => (await containersOf(id)).length > 0, 60_000);
    signalWorker(first, 'SIGKILL');

    await startWorker(env).ready;
    const agent = await waitForStatus(stack.api, id, ['running'], 90_000);
    expect(before).toContain(agent.container_id);
    expect((await containersOf(id)).map((c) => c.Id)).toEqual([agent.container_id]);

    // The dead process's idle member is removed and the new one's pool is full again; no member carries the agent's sandbox.
    const after = await waitFor(
      'the new pool',
      async () => {
        const idle = await idleMembers('runc');
        return idle.length === 2 && idle.every((m) => !before.includes(m.id)) ? idle : undefined;
      },
      120_000,
    );
    expect(after.map((m) => m.id)).not.toContain(agent.container_id);

    const other = uniqueId('pool-crash-2');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: other, runtime: 'runc' })).status).toBe(201);
    const second = await waitForStatus(stack.api, other, ['running'], 90_000);
    expect(second.container_id).not.toBe(agent.container_id);
    expect(after.map((m) => m.id)).toContain(second.container_id);

    for (const agentId of [id, other]) {
      await stack.api('POST', `/api/agents/${agentId}/stop`, { force: true });
      await waitForStatus(stack.api, agentId, ['stopped'], 90_000);
      expect(await containersOf(agentId)).toHaveLength(0);
    }
  } finally {
    killWorkers();
    // A killed worker removes nothing: its members are left to the next start-up or the reaper.
    for (const m of await idlePoolMembers(docker, TEST_HOST))
      await docker
        .getContainer(m.id)
        .remove({ force: true })
        .catch(() => undefined);
  }
}, 360_000);
