/**
 * Two real Docker engines on one machine: the suite's engine, and a second `dockerd` this file
 * starts with a socket, data root, exec root, pid file and containerd namespace of its own, no
 * bridge and no iptables rules (so it cannot disturb the engine the other tests use), with the
 * sandbox image loaded into it by `docker save | docker load`. Each engine has its sandbox worker;
 * an agent on each runs an action in its own engine, and its stats are read there.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { docker, startSandboxHost, startStack, TEST_HOST, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

const ENGINE_HOST = `${TEST_HOST}-engine2`;
let dir: string | undefined;
let dockerd: ChildProcess | undefined;
let secondEngine: Docker | undefined;
/** Why this file's tests cannot run here, when they cannot. */
let unavailable: string | null = null;
let stack: Awaited<ReturnType<typeof startStack>> | undefined;
let worker: Awaited<ReturnType<typeof startSandboxHost>> | undefined;

/** Starts the second engine; null when it is up, else why it is not. */
async function startSecondEngine(): Promise<string | null> {
  // A short path: a unix socket's path is limited to 108 bytes.
  dir = mkdtempSync(join(tmpdir(), 'wd2-'));
  const socket = join(dir, 'docker.sock');
  dockerd = spawn(
    'dockerd',
    [
      ...['-H', `unix://${socket}`, '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec')],
      ...['--pidfile', join(dir, 'docker.pid'), '--bridge=none', '--iptables=false', '--ip6tables=false'],
      ...['--containerd-namespace', 'warden-engine2', '--containerd-plugins-namespace', 'warden-engine2-plugins'],
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<string>((resolve) => {
    dockerd!.on('error', (err) => resolve(`dockerd could not start: ${err.message}`));
    dockerd!.on('exit', (code) => resolve(`dockerd exited with code ${code}`));
  });
  secondEngine = new Docker({ socketPath: socket });
  const up = waitFor('the second engine to answer', () => secondEngine!.ping().then(() => true), 30_000).then(
    () => null,
    (err: Error) => err.message,
  );
  const why = await Promise.race([up, exited]);
  if (why) return why;
  execFileSync('sh', ['-c', `docker save "$1" | docker -H "unix://$2" load`, 'load', inject('sandboxImage'), socket], { stdio: 'ignore' });
  return null;
}

beforeAll(async () => {
  unavailable = await startSecondEngine().catch((err: Error) => `the second engine could not be prepared: ${err.message}`);
  if (unavailable) return;
  stack = await startStack({ config: { dockerHosts: [TEST_HOST, ENGINE_HOST] } });
  worker = await startSandboxHost(ENGINE_HOST, secondEngine!);
});
afterAll(async () => {
  await worker?.stop();
  await stack?.stop();
  if (dockerd?.exitCode === null) {
    // The daemon this file started, by its own process: never the suite's engine.
    dockerd.kill('SIGTERM');
    await new Promise((resolve) => dockerd!.once('exit', resolve));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('two real Docker engines', () => {
  it('an agent on each engine runs an action in its own engine, and has its stats read there', async (ctx) => {
    if (unavailable || !stack) return ctx.skip(unavailable ?? 'the stack did not start');
    const agents = [];
    for (const host of [TEST_HOST, ENGINE_HOST]) {
      const id = uniqueId('engine');
      const res = await stack.api('POST', '/api/agents', { skill_id: 'filesystem', agent_id: id, runtime: 'runc', host });
      expect(res.status).toBe(201);
      agents.push({ id, host });
    }
    for (const { id, host } of agents) {
      await waitForStatus(stack.api, id, ['running']);
      const [own, other] = host === ENGINE_HOST ? [secondEngine!, docker] : [docker, secondEngine!];
      expect((await own.getContainer(`warden-agent-${id}`).inspect()).Config.Labels['dev.warden.host']).toBe(host);
      await expect(other.getContainer(`warden-agent-${id}`).inspect()).rejects.toMatchObject({ statusCode: 404 });
      const action = await stack.api('POST', '/api/actions', {
        action_type: 'skill_execution',
        skill_id: 'filesystem',
        operation: 'write',
        agent_id: id,
        parameters: { path: 'engine.txt', content: host },
        wait_seconds: 30,
      });
      expect(action.body.status).toBe('completed');
      const stats = await stack.api('GET', `/api/agents/${id}/stats`);
      expect(stats.status).toBe(200);
      expect(stats.body).toMatchObject({ agent_id: id, host, status: 'running' });
      expect(stats.body.workspace_bytes).toBeGreaterThan(0);
    }
    const hosts = (await stack.api('GET', '/api/sandbox')).body.hosts;
    expect(hosts.map((h: { host: string; sandbox_worker: { state: string } }) => [h.host, h.sandbox_worker.state])).toEqual([
      [TEST_HOST, 'up'],
      [ENGINE_HOST, 'up'],
    ]);
    for (const { id } of agents) {
      await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
      await waitForStatus(stack.api, id, ['stopped']);
    }
    await expect(secondEngine!.getContainer(`warden-agent-${agents[1]!.id}`).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});
