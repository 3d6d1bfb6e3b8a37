/**
 * Admission of new agents on real Temporal and Docker: agent ids stay out of the system's id
 * space, unknown skills are refused, weaker isolation and large limits are an admin's to give,
 * the Docker host's memory is never overbooked (concurrent creates included), and ids that are
 * not agents answer 404, never 500.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CAPACITY_WORKFLOW_ID, capacityQuery } from '../../workflows/definitions.js';
import { docker, startStack, stopLiveAgents, submitShell, TEST_HOST, uniqueId, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let operator: string;

beforeAll(async () => {
  stack = await startStack();
  operator = await stack.keyFor('operator');
});
afterAll(async () => {
  await stopLiveAgents(stack.api);
  await stack?.stop();
});

async function as(key: string, method: string, path: string, body?: unknown) {
  const res = await stack.realApp.request(path, {
    method,
    headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

const small = { cpu_cores: 0.1, memory_mb: 64, disk_mb: 8, max_processes: 32 };

describe('agent ids', () => {
  it.each([
    'warden-emergency-stop-9999',
    'warden-capacity',
    'warden-alert-x1',
    'warden-reaper-local-1',
    'act-0123456789abcdef',
    'temporal-sys-tq-scanner',
  ])('a new agent cannot take the system id %s', async (agent_id) => {
    const res = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id, runtime: 'runc', resource_limits: small });
    expect(res.status).toBe(400);
    expect(res.body.error.message).toMatch(/reserved for Warden's own workflows/);
    // No agent workflow took the id (warden-capacity is there already: the stack's own).
    const type = await stack.client.workflow
      .getHandle(agent_id)
      .describe()
      .then(
        (d) => d.type,
        () => null,
      );
    expect(type).not.toBe('agentWorkflow');
  });

  it('an unknown skill_id is a 422 naming the known skills, and starts nothing', async () => {
    const agent_id = uniqueId('noskill');
    const res = await stack.api('POST', '/api/agents', { skill_id: 'rootkit', agent_id, runtime: 'runc', resource_limits: small });
    expect(res.status).toBe(422);
    expect(res.body.error).toMatchObject({
      code: 'unknown_skill',
      message: expect.stringMatching(/unknown skill "rootkit"; known skills: .*"shell"/),
    });
    await expect(stack.client.workflow.getHandle(agent_id).describe()).rejects.toThrow();
  });
});

describe('ids that are not agents', () => {
  it('GET, ?usage=true, /stats and /stop on the capacity workflow and on an action are 404 "not an agent"', async () => {
    const agentId = uniqueId('host');
    expect(
      (await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc', resource_limits: small })).status,
    ).toBe(201);
    await waitForStatus(stack.api, agentId, ['running']);
    const action = await submitShell(stack.api, agentId, 'echo hi');
    expect(action.body.id).toMatch(/^act-[0-9a-f]{16}$/);
    const viewer = await stack.keyFor('viewer');
    for (const id of [CAPACITY_WORKFLOW_ID, action.body.id]) {
      for (const [key, method, path] of [
        [viewer, 'GET', `/api/agents/${id}`],
        [viewer, 'GET', `/api/agents/${id}?usage=true`],
        [viewer, 'GET', `/api/agents/${id}/stats`],
        [operator, 'POST', `/api/agents/${id}/stop`],
        [operator, 'POST', `/api/agents/${id}/pause`],
      ] as const) {
        const res = await as(key, method, path);
        expect(res.status, `${method} ${path}`).toBe(404);
        expect(res.body.error.message).toBe(`${id} is not an agent (it is one of Warden's own workflows, or an action)`);
      }
    }
    expect((await stack.api('GET', `/api/actions/${action.body.id}`)).body.status).toBe('pending');
  });
});

describe('who may ask for what', () => {
  it.each([
    ['runtime runc', { runtime: 'runc' }, /runtime runc/],
    ['network_enabled', { resource_limits: { ...small, network_enabled: true } }, /network_enabled true/],
    [
      'memory_mb above the operator maximum',
      { resource_limits: { ...small, memory_mb: 65536, disk_mb: 8 } },
      /memory_mb 65536, above 2048, the most a key below admin may ask for \(WARDEN_OPERATOR_MAX_MEMORY_MB\)/,
    ],
    ['disk_mb above the operator maximum', { resource_limits: { ...small, memory_mb: 2048, disk_mb: 2000 } }, /disk_mb 2000, above 1024,/],
    ['cpu_cores above the operator maximum', { resource_limits: { ...small, cpu_cores: 8 } }, /cpu_cores 8, above 2,/],
    [
      'max_processes above the operator maximum',
      { resource_limits: { ...small, max_processes: 32768 } },
      /max_processes 32768, above 512,/,
    ],
  ])('an operator asking for %s gets 403: an admin must create such an agent', async (_what, asked, names) => {
    const agent_id = uniqueId('op');
    const res = await as(operator, 'POST', '/api/agents', { skill_id: 'shell', agent_id, ...asked });
    expect(res.status).toBe(403);
    expect(res.body.error).toMatchObject({
      code: 'admin_required',
      message: expect.stringMatching(/^an admin must create an agent with /),
    });
    expect(res.body.error.message).toMatch(names);
    await expect(stack.client.workflow.getHandle(agent_id).describe()).rejects.toThrow();
  });

  it.each([
    ['runtime runc', { runtime: 'runc', resource_limits: small }, {}],
    [
      'network_enabled',
      { runtime: 'runc', resource_limits: { ...small, network_enabled: true } },
      { resource_limits: { network_enabled: true } },
    ],
    [
      'memory_mb above the operator maximum',
      { runtime: 'runc', resource_limits: { ...small, memory_mb: 3072 } },
      { resource_limits: { memory_mb: 3072 } },
    ],
    [
      'disk_mb above the operator maximum',
      { runtime: 'runc', resource_limits: { ...small, memory_mb: 2048, disk_mb: 1100 } },
      { resource_limits: { disk_mb: 1100 } },
    ],
    [
      'cpu_cores above the operator maximum',
      { runtime: 'runc', resource_limits: { ...small, cpu_cores: 2.5 } },
      { resource_limits: { cpu_cores: 2.5 } },
    ],
    [
      'max_processes above the operator maximum',
      { runtime: 'runc', resource_limits: { ...small, max_processes: 1024 } },
      { resource_limits: { max_processes: 1024 } },
    ],
  ])('an admin asking for %s is admitted (201) with what was asked', async (_what, asked, recorded) => {
    const agent_id = uniqueId('adm');
    const res = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id, ...asked });
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject(recorded);
    if (_what === 'runtime runc') expect((await waitForStatus(stack.api, agent_id, ['running', 'error'])).sandbox_runtime).toBe('runc');
    await stack.api('POST', `/api/agents/${agent_id}/stop`, { force: true });
  });

  it('an operator within the maxima, under the sandbox runtime, is admitted', async () => {
    const agent_id = uniqueId('op-ok');
    const res = await as(operator, 'POST', '/api/agents', { skill_id: 'shell', agent_id, resource_limits: small });
    expect(res.status).toBe(201);
    expect(res.body.resource_limits).toEqual({ ...small, network_enabled: false });
  });

  it('an absent disk_mb is what memory_mb has room for; a disk_mb it cannot hold is a 422 that says why', async () => {
    const fits = await stack.api('POST', '/api/agents', {
      skill_id: 'shell',
      agent_id: uniqueId('fit'),
      runtime: 'runc',
      resource_limits: { memory_mb: 64 },
    });
    expect(fits.status).toBe(201);
    expect(fits.body.resource_limits.disk_mb).toBe(64 - 16 - 4 - 8);
    const res = await stack.api('POST', '/api/agents', {
      skill_id: 'shell',
      runtime: 'runc',
      resource_limits: { memory_mb: 256, disk_mb: 256 },
    });
    expect(res.status).toBe(422);
    expect(res.body.error.message).toMatch(
      /disk_mb 256 does not fit in memory_mb 256: .*\/dev\/shm 4 MiB.*ask for disk_mb at most 228 or memory_mb at least 284/,
    );
  });

  it("an admin's 64 GiB agent on a smaller host is a 409 that says what the host has and what was asked", async () => {
    const info = await docker.info();
    const hostMb = Math.floor(info.MemTotal / 1024 / 1024);
    expect(hostMb).toBeLessThan(65536);
    const agent_id = uniqueId('huge');
    const res = await stack.api('POST', '/api/agents', {
      skill_id: 'shell',
      agent_id,
      runtime: 'runc',
      resource_limits: { memory_mb: 65536, disk_mb: 65000, max_processes: 32768, cpu_cores: 0.1 },
    });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe('host_capacity_exceeded');
    expect(res.body.error.message).toContain(
      `Docker host ${TEST_HOST} cannot hold this agent: it asks for 65536 MiB of memory; the host has ${hostMb} MiB`,
    );
    await expect(stack.client.workflow.getHandle(agent_id).describe()).rejects.toThrow();
  });
});

describe("the host's memory", () => {
  it('concurrent creates never reserve more than the host may hold', async () => {
    await stopLiveAgents(stack.api);
    const state = await stack.client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery);
    const held = Object.values(state.reserved ?? {})
      .filter((r) => r.host === TEST_HOST)
      .reduce((sum, r) => sum + r.memory_mb, 0);
    const hostMb = Math.floor((await docker.info()).MemTotal / 1024 / 1024);
    // Room for two more 1 GiB agents, not three.
    const room = held + 2 * 1024 + 512;
    const tight = await startStack({ workers: false, config: { memoryOvercommit: room / hostMb } });
    try {
      const ids = [uniqueId('mem'), uniqueId('mem'), uniqueId('mem')];
      const asked = { cpu_cores: 0.1, memory_mb: 1024, disk_mb: 8, max_processes: 32 };
      const results = await Promise.all(
        ids.map((agent_id) => tight.api('POST', '/api/agents', { skill_id: 'shell', agent_id, runtime: 'runc', resource_limits: asked })),
      );
      expect(results.map((r) => r.status).sort()).toEqual([201, 201, 409]);
      const refused = results.find((r) => r.status === 409)!;
      expect(refused.body.error.message).toMatch(/it asks for 1024 MiB of memory; .* leaving \d+ MiB/);
    } finally {
      await tight.stop();
    }
  });
});
