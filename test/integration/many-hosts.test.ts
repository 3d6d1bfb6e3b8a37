/**
 * Many Docker hosts: a second host's sandbox-only workers (here on the same engine, under another
 * host id) beside the stack's own. An agent of that host has its stats read by that host's sandbox
 * worker, through the API of the first host; with that worker gone, the stats say so at once.
 */
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAgentService } from '../../api/agents/service.js';
import { createWorkers } from '../../workers/create-workers.js';
import { docker, recordHistory, startStack, testConfig, testPayloadCodec, TEST_HOST, uniqueId, waitForStatus } from '../support/helpers.js';
import { inject } from 'vitest';

type Stack = Awaited<ReturnType<typeof startStack>>;

/** A Docker host that runs only the sandbox and watch workers, as a sandbox-only host's process does. */
async function startSandboxHost(host: string, engine: Docker) {
  const workers = await createWorkers({
    temporal: { address: inject('temporalAddress') },
    namespace: 'default',
    dockerHostId: host,
    roles: ['sandbox'],
    payloadCodec: testPayloadCodec(),
    docker: engine,
    shutdownGraceTime: '2 seconds',
  });
  const running = workers.run();
  return {
    async stop() {
      workers.shutdown();
      await running;
    },
  };
}

const SECOND_HOST = `${TEST_HOST}-b`;
let stack: Stack;
let second: Awaited<ReturnType<typeof startSandboxHost>> | undefined;
/** Creates agents on the second host, as an API attached to it would. */
let secondHostAgents: ReturnType<typeof createAgentService>;
const recorded = new Map<string, string>();

beforeAll(async () => {
  stack = await startStack();
  second = await startSandboxHost(SECOND_HOST, docker);
  secondHostAgents = createAgentService(stack.client, testConfig({ dockerHostId: SECOND_HOST }), { docker });
});
afterAll(async () => {
  for (const [name, id] of recorded) await recordHistory(name, id);
  await second?.stop();
  await stack?.stop();
  // The suite's teardown removes the containers of its own host id only.
  const left = await docker.listContainers({ all: true, filters: { label: [`dev.warden.host=${SECOND_HOST}`] } });
  await Promise.all(left.map((c) => docker.getContainer(c.Id).remove({ force: true })));
});

const createOnSecondHost = async (prefix: string) => {
  const id = uniqueId(prefix);
  const admin = { key_id: 'test-admin', name: 'test admin', role: 'admin' as const };
  await secondHostAgents.createAgent({ skill_id: 'shell', agent_id: id, runtime: 'runc' }, admin);
  await waitForStatus(stack.api, id, ['running']);
  return id;
};

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
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
  });
});
