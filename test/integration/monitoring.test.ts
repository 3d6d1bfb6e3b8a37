/**
 * Health and resources on the real engine and Temporal: an agent's live usage shows what the
 * test made it do (memory, processes, CPU, a workspace file) under runc and runsc; the sandbox
 * summary follows agents as they are created, paused and stopped; /api/status and /readyz say
 * which component is down, and a component that never answers cannot hang them. Behind
 * docker-compose's socket proxy (a stand-in following the image's rules, configured from the compose
 * file), the API reads what the proxy allows and says what it refuses, and an agent's stats, read by
 * its host's sandbox worker, still answer.
 */
import { createServer, type Server, type Socket } from 'node:net';
import Docker from 'dockerode';
import Long from 'long';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_STATUSES } from '../../domain/agent.js';
import { composeCli } from '../support/compose-config.js';
import { DOCKER_SOCKET_PROXY_IMAGE, startDockerSocketProxy, type DockerSocketProxy } from '../support/docker-socket-proxy.js';
import { docker, startStack, STATUS_COMPONENTS, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
const MiB = 1024 * 1024;

/** Runs a shell script in the agent's sandbox as the sandbox user, straight through the engine. */
async function runInSandbox(agentId: string, script: string, opts: { detach?: boolean } = {}) {
  const exec = await docker.getContainer(`warden-agent-${agentId}`).exec({
    Cmd: ['/bin/sh', '-c', script],
    User: '10001:10001',
    AttachStdout: !opts.detach,
    AttachStderr: !opts.detach,
  });
  if (opts.detach) {
    await exec.start({ Detach: true });
    return;
  }
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise((resolve) => (stream.on('end', resolve), stream.on('close', resolve), stream.resume()));
}

describe('with workers', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  describe.each(['runc', 'runsc'] as const)('GET /api/agents/{id}/stats under %s', (runtime) => {
    const id = uniqueId(`stats-${runtime}`);
    const limits = { memory_mb: 192, cpu_cores: 0.5, disk_mb: 64, max_processes: 64 };

    beforeAll(async () => {
      const created = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime, resource_limits: limits });
      expect(created.status).toBe(201);
      await waitForStatus(stack.api, id, ['running']);
      // 24 MiB in the workspace (a tmpfs: it counts as memory too), three sleepers and a busy loop.
      await runInSandbox(id, 'head -c 25165824 /dev/zero > /workspace/blob');
      await runInSandbox(id, 'sleep 600 & sleep 600 & sleep 600 & while :; do :; done', { detach: true });
    });
    afterAll(async () => {
      await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    });

    it('a running agent: memory, processes, CPU and workspace show what runs in it', async () => {
      // The processes started above are visible once the exec has forked them.
      const res = await waitFor('the stats to show the started processes', async () => {
        const r = await stack.api('GET', `/api/agents/${id}/stats`);
        return r.status === 200 && r.body.pids >= 6 ? r : undefined;
      });
      const s = res.body;
      expect(s).toMatchObject({ agent_id: id, status: 'running', sandbox_runtime: runtime, paused: false });
      expect(s.memory_limit_bytes).toBe(limits.memory_mb * MiB);
      expect(s.memory_bytes).toBeGreaterThanOrEqual(24 * MiB);
      expect(s.memory_bytes).toBeLessThan(limits.memory_mb * MiB);
      expect(s.workspace_bytes).toBeGreaterThanOrEqual(24 * MiB);
      expect(s.workspace_bytes).toBeLessThan(limits.disk_mb * MiB);
      expect(s.workspace_limit_bytes).toBe(limits.disk_mb * MiB);
      // init + its sleep + the exec's shell + 3 sleepers; under runsc the host tasks of the sandbox.
      expect(s.pids).toBeGreaterThanOrEqual(6);
      expect(s.pids).toBeLessThanOrEqual(s.pids_limit);
      expect(s.pids_limit).toBe(runtime === 'runc' ? limits.max_processes : 64 + 4 * limits.max_processes);
      expect(s.cpu_limit_cores).toBe(limits.cpu_cores);
      // A busy loop under a 0.5-core quota: clearly busy, never above the quota (plus sampling slack).
      expect(s.cpu_percent).toBeGreaterThan(5);
      expect(s.cpu_percent).toBeLessThanOrEqual(limits.cpu_cores * 100 * 1.2 + 5);
      expect(s.cpu_seconds).toBeGreaterThan(0);
      expect(s.uptime_seconds).toBeGreaterThanOrEqual(0);
      expect(s.uptime_seconds).toBeLessThan(600);
      expect(Date.parse(s.sampled_at)).not.toBeNaN();
    });

    it('the agent record carries a compact usage summary when asked for', async () => {
      expect((await stack.api('GET', `/api/agents/${id}`)).body.usage).toBeUndefined();
      const res = await stack.api('GET', `/api/agents/${id}?usage=true`);
      expect(res.status).toBe(200);
      expect(res.body.usage).toMatchObject({ memory_limit_bytes: limits.memory_mb * MiB });
      expect(res.body.usage.memory_bytes).toBeGreaterThanOrEqual(24 * MiB);
      expect(res.body.usage.pids).toBeGreaterThanOrEqual(6);
    });

    it('paused: memory is still reported, CPU and workspace are not (nothing runs)', async () => {
      expect((await stack.api('POST', `/api/agents/${id}/pause`)).status).toBe(202);
      await waitForStatus(stack.api, id, ['paused']);
      const res = await stack.api('GET', `/api/agents/${id}/stats`);
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        status: 'paused',
        paused: true,
        cpu_percent: null,
        workspace_bytes: null,
        memory_limit_bytes: limits.memory_mb * MiB,
      });
      expect(res.body.memory_bytes).toBeGreaterThanOrEqual(24 * MiB);
    });

    it('stopped: 409 saying the agent has no running container', async () => {
      await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
      await waitForStatus(stack.api, id, ['stopped']);
      const res = await stack.api('GET', `/api/agents/${id}/stats`);
      expect(res.status).toBe(409);
      expect(res.body.error).toEqual({
        code: 'agent_not_running',
        message: `agent ${id} is stopped: it has no running container to read usage from`,
      });
      expect((await stack.api('GET', `/api/agents/${id}?usage=true`)).body.usage).toBeNull();
    });
  });

  it('GET /api/agents/{id}/stats of an unknown agent is 404', async () => {
    const res = await stack.api('GET', '/api/agents/no-such-agent/stats');
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe('not_found');
  });

  it('GET /api/sandbox: capacity and status distribution follow create, pause and stop', async () => {
    const sandbox = async () => (await stack.api('GET', '/api/sandbox')).body;
    const before = await sandbox();
    const engine = await docker.info();
    expect(before.capacity.cpu_cores.total).toBe(engine.NCPU);
    expect(before.capacity.memory_bytes.total).toBe(engine.MemTotal);
    expect(Object.keys(before.statuses).sort()).toEqual([...AGENT_STATUSES].sort());

    /** Waits until the summary shows these changes from `before`. */
    const expectDelta = (what: string, d: { running: number; paused: number; stopped: number; cpu: number; memory: number }) =>
      waitFor(what, async () => {
        const now = await sandbox();
        const ok =
          now.statuses.running - before.statuses.running === d.running &&
          now.statuses.paused - before.statuses.paused === d.paused &&
          now.statuses.stopped - before.statuses.stopped === d.stopped &&
          Math.abs(now.capacity.cpu_cores.used - before.capacity.cpu_cores.used - d.cpu) < 1e-9 &&
          now.capacity.memory_bytes.used - before.capacity.memory_bytes.used === d.memory;
        return ok ? now : undefined;
      });

    const a = uniqueId('cap-a');
    const b = uniqueId('cap-b');
    for (const [id, cpu, mem] of [
      [a, 0.25, 64],
      [b, 0.5, 96],
    ] as const) {
      const res = await stack.api('POST', '/api/agents', {
        skill_id: 'shell',
        agent_id: id,
        runtime: 'runc',
        resource_limits: { cpu_cores: cpu, memory_mb: mem },
      });
      expect(res.status).toBe(201);
    }
    await waitForStatus(stack.api, a, ['running']);
    await waitForStatus(stack.api, b, ['running']);
    const both = await expectDelta('two more running agents', { running: 2, paused: 0, stopped: 0, cpu: 0.75, memory: 160 * MiB });
    expect(both.capacity.agents.used).toBeGreaterThanOrEqual(2);
    expect(both.capacity.agents.free).toBe(both.capacity.agents.total - both.capacity.agents.used);
    expect(both.capacity.memory_bytes.free).toBe(engine.MemTotal - both.capacity.memory_bytes.used);

    await stack.api('POST', `/api/agents/${b}/pause`);
    await waitForStatus(stack.api, b, ['paused']);
    // A paused agent keeps its reservation.
    await expectDelta('one running, one paused', { running: 1, paused: 1, stopped: 0, cpu: 0.75, memory: 160 * MiB });

    await stack.api('POST', `/api/agents/${a}/stop`, { force: true });
    await waitForStatus(stack.api, a, ['stopped']);
    await expectDelta('a stopped, b paused', { running: 0, paused: 1, stopped: 1, cpu: 0.5, memory: 96 * MiB });

    await stack.api('POST', `/api/agents/${b}/stop`, { force: true });
    await waitForStatus(stack.api, b, ['stopped']);
    await expectDelta('both stopped', { running: 0, paused: 0, stopped: 2, cpu: 0, memory: 0 });
  });

  it('GET /api/status: every component up with its latency, pending actions and agent counts', async () => {
    const res = await waitFor(
      'every component up',
      async () => {
        const r = await stack.api('GET', '/api/status');
        return Object.values<any>(r.body.components).every((c) => c.state === 'up') ? r : undefined;
      },
      30_000,
    );
    expect(Object.keys(res.body.components).sort()).toEqual(STATUS_COMPONENTS);
    for (const c of Object.values<any>(res.body.components)) {
      expect(c).toMatchObject({ ok: true, state: 'up' });
      expect(c.latency_ms).toBeGreaterThanOrEqual(0);
    }
    expect(res.body.components.runtimes.detail).toMatch(/runsc.*agents run under runsc/);
    expect(res.body.components.audit_store.detail).toBe(`${(await stack.audit.head()).seq} entries`);
    expect(res.body.components.channels.detail).toBe('none configured');
    expect(Number.isInteger(res.body.pending_actions)).toBe(true);
    expect(Object.keys(res.body.agents).sort()).toEqual([...AGENT_STATUSES].sort());
  });
});

describe('without a control worker: a namespace no worker polls', () => {
  let stack: Stack;
  const namespace = uniqueId('warden-nobody');
  beforeAll(async () => {
    stack = await startStack({ workers: false, config: { temporalNamespace: namespace, dockerHostId: 'nobody' } });
    await stack.client.workflowService.registerNamespace({
      namespace,
      workflowExecutionRetentionPeriod: { seconds: Long.fromNumber(86_400) },
    });
  });
  afterAll(async () => stack?.stop());

  it('/api/status says the control worker is down; /readyz is 503 and names it', async () => {
    // A new namespace is usable once the server's namespace cache has it.
    const status = await waitFor(
      'the namespace to be known',
      async () => {
        const r = await stack.api('GET', '/api/status');
        return /^no worker polls/.test(r.body.components.control_worker.detail) ? r : undefined;
      },
      60_000,
    );
    expect(status.status).toBe(200);
    expect(status.body.components.control_worker).toMatchObject({
      ok: false,
      state: 'down',
      detail: 'no worker polls task queue warden-control',
    });
    expect(status.body.components.sandbox_worker).toMatchObject({
      state: 'down',
      detail: 'no worker polls task queue warden-sandbox@nobody',
    });
    for (const name of ['temporal', 'docker', 'audit_store']) expect(status.body.components[name].state, name).toBe('up');

    const ready = await stack.api('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.ready).toBe(false);
    expect(ready.body.components.control_worker.state).toBe('down');
  });
});

describe('a Docker engine that never answers', () => {
  let silent: Server;
  let stack: Stack;
  const sockets: Socket[] = [];
  beforeAll(async () => {
    // Accepts connections and never says a word: a hung engine (or a hung docker-proxy).
    silent = createServer((socket) => void sockets.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as { port: number }).port;
    stack = await startStack({ workers: false, docker: new Docker({ host: '127.0.0.1', port }) });
  });
  afterAll(async () => {
    await stack?.stop();
    for (const socket of sockets) socket.destroy();
    silent?.close();
  });

  it('/api/status and /readyz answer, with docker and runtimes down after the probe timeout', async () => {
    const status = await stack.api('GET', '/api/status');
    expect(status.status).toBe(200);
    for (const name of ['docker', 'runtimes']) {
      expect(status.body.components[name]).toMatchObject({
        ok: false,
        state: 'down',
        detail: 'the Docker engine did not answer within 3000 ms',
      });
      expect(status.body.components[name].latency_ms).toBeGreaterThanOrEqual(3000);
    }
    expect(status.body.components.temporal.state).toBe('up');
    const ready = await stack.api('GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(ready.body.components.docker.state).toBe('down');
    const sandbox = await stack.api('GET', '/api/sandbox');
    expect(sandbox.status).toBe(200);
    expect(sandbox.body).toMatchObject({ available: false, warning: expect.stringMatching(/did not answer within 3000 ms/) });
    expect(sandbox.body.capacity.cpu_cores.total).toBeNull();
  });
});

describe("behind docker-compose's read-only Docker proxy", () => {
  let proxyEnvironment: Record<string, string | null>;
  let proxy: DockerSocketProxy;
  let stack: Stack;
  const id = uniqueId('proxied');
  const viaProxy = (method: string, path: string, body?: unknown) =>
    fetch(`http://127.0.0.1:${proxy.port}${path}`, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  beforeAll(async () => {
    const compose = composeCli();
    try {
      const service = compose.load().services['docker-proxy']!;
      // The stand-in decides as this release of the image does; another release needs its rules re-checked.
      expect(service.image).toBe(DOCKER_SOCKET_PROXY_IMAGE);
      proxyEnvironment = service.environment ?? {};
    } finally {
      compose.dispose();
    }
    proxy = await startDockerSocketProxy(proxyEnvironment);
    // The workers use the engine itself; only the API goes through the proxy.
    stack = await startStack({ docker: new Docker({ host: '127.0.0.1', port: proxy.port }) });
  });
  afterAll(async () => {
    await stack?.api('POST', `/api/agents/${id}/stop`, { force: true });
    await stack?.stop();
    await proxy?.close();
  });

  it("lets through, with compose's environment, the engine reads the API needs and nothing that lists or changes containers", async () => {
    expect((await viaProxy('GET', '/info')).status).toBe(200);
    expect((await viaProxy('GET', '/v1.41/version')).status).toBe(200);
    expect((await viaProxy('HEAD', '/_ping')).status).toBe(200);
    expect((await viaProxy('GET', '/containers/json')).status).toBe(403);
    expect((await viaProxy('GET', `/v1.41/containers/warden-agent-${id}/stats?stream=false`)).status).toBe(403);
    const create = await viaProxy('POST', '/containers/create', { Image: 'busybox' });
    expect(create.status).toBe(403);
    expect(await create.text()).toMatch(/Request forbidden by administrative rules/);
  });

  it("stats are read by the host's sandbox worker, which the proxy does not stand in front of; /api/sandbox still works", async () => {
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
    await waitForStatus(stack.api, id, ['running']);
    const res = await stack.api('GET', `/api/agents/${id}/stats`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ agent_id: id, status: 'running', host: stack.config.dockerHostId, paused: false });
    expect(res.body.memory_limit_bytes).toBeGreaterThan(0);
    expect(res.body.workspace_limit_bytes).toBeGreaterThan(0);
    // The record's compact summary is still the API's own read, which the proxy refuses.
    expect((await stack.api('GET', `/api/agents/${id}?usage=true`)).body.usage).toBeNull();
    const sandbox = await stack.api('GET', '/api/sandbox');
    expect(sandbox.body.available).toBe(true);
    expect(sandbox.body.capacity.cpu_cores.total).toBeGreaterThan(0);
  });

  it('fails when the proxy stops allowing /info: with INFO off, /api/sandbox reports the engine unavailable', async () => {
    const closed = await startDockerSocketProxy({ ...proxyEnvironment, INFO: '0' });
    const apiOnly = await startStack({ workers: false, docker: new Docker({ host: '127.0.0.1', port: closed.port }) });
    try {
      const sandbox = await apiOnly.api('GET', '/api/sandbox');
      expect(sandbox.status).toBe(200);
      expect(sandbox.body).toMatchObject({ available: false, warning: expect.stringMatching(/HTTP code 403/) });
      expect(sandbox.body.capacity.cpu_cores.total).toBeNull();
    } finally {
      await apiOnly.stop();
      await closed.close();
    }
  });
});
