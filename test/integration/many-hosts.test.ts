/**
 * Many Docker hosts: two sandbox-only hosts' workers (here on the same engine, under host ids of
 * their own) beside the stack's own host, which agents are not placed on, and a third placement
 * host whose worker never runs. New agents spread over the two live hosts, or go to the one they
 * name; /api/sandbox shows each host. An agent's stats are read by its own host's sandbox worker,
 * through the API of the first host; with that worker gone, the stats say so at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPACITY_WORKFLOW_ID } from '../../workflows/definitions.js';
import { docker, recordHistory, startSandboxHost, startStack, TEST_HOST, uniqueId, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;

const SECOND_HOST = `${TEST_HOST}-b`;
const THIRD_HOST = `${TEST_HOST}-c`;
/** Configured for placement, and no worker of it ever runs. */
const DEAD_HOST = `${TEST_HOST}-dead`;
let stack: Stack;
let second: Awaited<ReturnType<typeof startSandboxHost>> | undefined;
let third: Awaited<ReturnType<typeof startSandboxHost>> | undefined;
const recorded = new Map<string, string>();

beforeAll(async () => {
  // First: the stack installs the SDK's runtime before any worker starts.
  stack = await startStack({ config: { dockerHosts: [SECOND_HOST, THIRD_HOST, DEAD_HOST] } });
  [second, third] = await Promise.all([startSandboxHost(SECOND_HOST, docker), startSandboxHost(THIRD_HOST, docker)]);
});
afterAll(async () => {
  for (const [name, id] of recorded) await recordHistory(name, id);
  // The capacity workflow read the hosts' engines through their workers (its describeHost update).
  await recordHistory('capacity-describe-host', CAPACITY_WORKFLOW_ID);
  await Promise.all([second?.stop(), third?.stop()]);
  await stack?.stop();
  // The suite's teardown removes the containers of its own host id only.
  for (const host of [SECOND_HOST, THIRD_HOST]) {
    const left = await docker.listContainers({ all: true, filters: { label: [`dev.warden.host=${host}`] } });
    await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
  }
});

const create = async (prefix: string, fields: Record<string, unknown> = {}) => {
  const agent_id = uniqueId(prefix);
  return { id: agent_id, res: await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id, runtime: 'runc', ...fields }) };
};
const stop = async (id: string) => {
  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped']);
};
const createOnSecondHost = async (prefix: string) => {
  const { id, res } = await create(prefix, { host: SECOND_HOST });
  expect(res.status).toBe(201);
  await waitForStatus(stack.api, id, ['running']);
  return id;
};

describe('placement', () => {
  it('/api/sandbox shows every placement host: its worker, its engine read there, capacity and agents', async () => {
    const res = await stack.api('GET', '/api/sandbox');
    expect(res.status).toBe(200);
    const hosts = res.body.hosts as Array<Record<string, any>>;
    expect(hosts.map((h) => h.host)).toEqual([SECOND_HOST, THIRD_HOST, DEAD_HOST]);
    const engine = await docker.info();
    const version = (await docker.version()).Version;
    for (const live of hosts.slice(0, 2)) {
      expect(live.sandbox_worker).toMatchObject({ ok: true, state: 'up' });
      expect(live.engine).toMatchObject({ available: true, version });
      expect(live.engine.runtimes).toContain('runc');
      expect(live.capacity.memory_bytes.total).toBe(engine.MemTotal);
      expect(live.capacity.cpu_cores.total).toBe(engine.NCPU);
    }
    expect(hosts[2]!.sandbox_worker).toMatchObject({ ok: false, state: 'down' });
    expect(hosts[2]!.sandbox_worker.detail).toContain(`warden-sandbox@${DEAD_HOST}`);
    expect(hosts[2]!.engine).toMatchObject({ available: false, version: null, runtimes: [] });
    expect(hosts[2]!.capacity.memory_bytes.total).toBeNull();
  });

  it('new agents spread over the hosts with room, never the one whose worker is down; each runs a command there', async () => {
    const a = await create('spread', { skill_id: 'filesystem' });
    const b = await create('spread', { skill_id: 'filesystem' });
    expect([a.res.status, b.res.status]).toEqual([201, 201]);
    expect(new Set([a.res.body.host, b.res.body.host])).toEqual(new Set([SECOND_HOST, THIRD_HOST]));
    for (const { id, res } of [a, b]) {
      await waitForStatus(stack.api, id, ['running']);
      const container = await docker.getContainer(`warden-agent-${id}`).inspect();
      expect(container.Config.Labels['dev.warden.host']).toBe(res.body.host);
      const action = await stack.api('POST', '/api/actions', {
        action_type: 'skill_execution',
        skill_id: 'filesystem',
        operation: 'write',
        agent_id: id,
        parameters: { path: 'where.txt', content: res.body.host },
        wait_seconds: 30,
      });
      expect(action.body.status).toBe('completed');
      const listed = (await stack.api('GET', '/api/sandbox')).body.hosts.find((h: { host: string }) => h.host === res.body.host);
      expect(listed.agents.map((x: { id: string }) => x.id)).toContain(id);
    }
    await Promise.all([stop(a.id), stop(b.id)]);
  });

  it('an agent goes to the host its request names; a host not configured is a 400, one whose worker is down a 503', async () => {
    const named = await create('named', { host: THIRD_HOST });
    expect(named.res.status).toBe(201);
    expect(named.res.body.host).toBe(THIRD_HOST);
    await waitForStatus(stack.api, named.id, ['running']);
    await stop(named.id);

    const unknown = await create('unknown', { host: TEST_HOST });
    expect(unknown.res.status).toBe(400);
    expect(unknown.res.body.error).toMatchObject({ code: 'unknown_host' });
    expect(unknown.res.body.error.message).toContain(`Docker host ${TEST_HOST} is not one agents are placed on`);
    expect((await create('bad', { host: 'Not A Host' })).res.status).toBe(400);

    const dead = await create('dead', { host: DEAD_HOST });
    expect(dead.res.status).toBe(503);
    expect(dead.res.body.error.code).toBe('host_unavailable');
    expect(dead.res.body.error.message).toContain(`Docker host ${DEAD_HOST}`);
    expect((await stack.api('GET', `/api/agents/${dead.id}`)).status).toBe(404);
  });
});

describe("an agent's stats are read by its own host's sandbox worker", () => {
  it('an agent of another Docker host than the API: its usage, read there', async () => {
    const id = await createOnSecondHost('stats-b');
    const res = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ agent_id: id, host: SECOND_HOST, status: 'running', paused: false, sandbox_runtime: 'runc' });
    expect(res.body.memory_limit_bytes).toBe(512 * 1024 * 1024);
    expect(res.body.workspace_limit_bytes).toBeGreaterThan(0);

    expect((await stack.api('POST', `/api/agents/${id}/pause`)).status).toBe(202);
    await waitForStatus(stack.api, id, ['paused']);
    const paused = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ status: 'paused', paused: true, cpu_percent: null, workspace_bytes: null });

    expect((await stack.api('POST', `/api/agents/${id}/stop`, { force: true })).status).toBe(202);
    await waitForStatus(stack.api, id, ['stopped']);
    const stopped = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(stopped.status).toBe(409);
    expect(stopped.body.error.code).toBe('agent_not_running');
    recorded.set('usage-read', id);
  });

  it("a container removed behind the agent's back: 409, read by the host's worker", async () => {
    const id = await createOnSecondHost('stats-gone');
    await docker.getContainer(`warden-agent-${id}`).remove({ force: true });
    const res = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('agent_not_running');
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  });

  it("with the host's sandbox worker gone: 503 stats_unavailable naming the host; back with it", async () => {
    const id = await createOnSecondHost('stats-down');
    await second!.stop();
    second = undefined;
    const res = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(res.status).toBe(503);
    expect(res.body.error.code).toBe('stats_unavailable');
    expect(res.body.error.message).toContain(`Docker host ${SECOND_HOST}`);

    second = await startSandboxHost(SECOND_HOST, docker);
    expect((await stack.api('GET', `/api/agents/${id}/stats`)).status).toBe(200);
    await stop(id);
  });
});

describe('the lockdown', () => {
  it('holds for every host: an agent naming one is refused like any other, and placement resumes with the lockdown lifted', async () => {
    expect((await stack.api('POST', '/api/system/emergency-stop', { reason: 'many-hosts test' })).status).toBe(200);
    try {
      for (const fields of [{ host: SECOND_HOST }, { host: THIRD_HOST }, {}]) {
        const refused = await create('locked', fields);
        expect(refused.res.status).toBe(423);
        expect(refused.res.body.error.code).toBe('lockdown');
        expect((await stack.api('GET', `/api/agents/${refused.id}`)).status).toBe(404);
      }
    } finally {
      expect((await stack.api('POST', '/api/system/resume', { reason: 'many-hosts test done' })).status).toBe(200);
    }
    const placed = await create('unlocked', { host: THIRD_HOST });
    expect(placed.res.status).toBe(201);
    await waitForStatus(stack.api, placed.id, ['running']);
    await stop(placed.id);
  });
});
