/**
 * Limits and hardening, read back from the engine and probed from inside, under every runtime
 * this engine has (runc, and runsc when gVisor is installed).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AgentRecord, ExecResult } from '../../domain/agent.js';
import { createSandboxActivities } from '../../activities/sandbox.js';
import { activityEnv, containersOf, docker, startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { runtimesUnderTest } from '../support/require-or-skip.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const { engine, runtimes } = await runtimesUnderTest(docker);

beforeAll(async () => {
  stack = await startStack();
});
afterAll(async () => stack?.stop());

const limits = { cpu_cores: 0.5, memory_mb: 96, disk_mb: 8, max_processes: 48 };

async function newAgent(runtime: string, extra: Record<string, unknown> = {}) {
  const id = uniqueId(`hard-${runtime}`);
  const res = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime, resource_limits: limits, ...extra });
  expect(res.status).toBe(201);
  return waitForStatus(stack.api, id, ['running']);
}

/** Runs a command in the agent's sandbox through the exec activity itself (actions add the journal and grants). */
function exec(id: string, command: string[], timeout_ms = 10_000, max_output_bytes = 4096): Promise<ExecResult> {
  return activityEnv().run(createSandboxActivities(docker).execInSandbox, { agentId: id, command, timeout_ms, max_output_bytes });
}

/** The host directory of a container's pids cgroup, read from its init process: cgroup v1 or v2, any driver. */
async function pidsCgroup(containerId: string): Promise<string> {
  const { readFile } = await import('node:fs/promises');
  const pid = (await docker.getContainer(containerId).inspect()).State.Pid;
  const lines = (await readFile(`/proc/${pid}/cgroup`, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => l.split(':'));
  const v1 = lines.find(([, controllers]) => controllers!.split(',').includes('pids'));
  if (v1) return `/sys/fs/cgroup/pids${v1[2]}`;
  const v2 = lines.find(([id, controllers]) => id === '0' && controllers === '');
  if (!v2) throw new Error(`no pids cgroup for container ${containerId} in /proc/${pid}/cgroup`);
  return `/sys/fs/cgroup${v2[2]}`;
}

async function stop(id: string) {
  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  // Seconds when quiet; a gVisor sandbox just filled by a fork bomb once took over a minute to stop in a full suite run.
  await waitForStatus(stack.api, id, ['stopped', 'error'], 100_000);
  expect(await containersOf(id)).toHaveLength(0);
}

it('the engine offers runc', () => {
  expect(runtimes).toContain('runc');
});

describe.each(runtimes)('sandbox under %s', (runtime) => {
  it('carries the limits and hardening in its container config', async () => {
    const agent = await newAgent(runtime);
    expect(agent.sandbox_runtime).toBe(runtime);
    const info = await docker.getContainer(agent.container_id!).inspect();
    const host = info.HostConfig;
    expect(host.Runtime).toBe(engine.names[runtime]);
    expect(host.NanoCpus).toBe(0.5e9);
    expect(host.Memory).toBe(96 * 1024 * 1024);
    expect(host.MemorySwap).toBe(96 * 1024 * 1024);
    if (runtime === 'runsc') {
      expect(host.Ulimits).toEqual([{ Name: 'nproc', Soft: 48, Hard: 48 }]);
      expect(host.PidsLimit).toBeGreaterThan(48);
    } else {
      expect(host.PidsLimit).toBe(48);
    }
    expect(host.NetworkMode).toBe('none');
    expect(host.ReadonlyRootfs).toBe(true);
    expect(host.CapDrop).toEqual(['ALL']);
    expect(host.CapAdd).toEqual(['SETUID', 'SETGID', 'KILL']); // the executor's, which no command gets
    expect(host.Privileged).toBe(false);
    expect(host.SecurityOpt).toEqual(['no-new-privileges:true']); // no seccomp=unconfined: the default profile applies
    expect(host.Binds ?? []).toEqual([]);
    expect(info.Mounts.every((m) => m.Type === 'tmpfs' || m.Type === undefined)).toBe(true);
    expect(JSON.stringify(info)).not.toContain('docker.sock');
    expect(host.Tmpfs?.['/workspace']).toContain('size=8m');
    expect(info.Config.User).toBe('0:0'); // the executor: each command runs as its own uid
    expect(info.Config.Labels['dev.warden.agent-id']).toBe(agent.id);
    await stop(agent.id);
  });

  it('has no network but loopback, a read-only root, and a writable workspace of bounded size', async () => {
    const agent = await newAgent(runtime);
    const net = await exec(agent.id, ['cat', '/proc/net/dev']);
    const interfaces = net.stdout
      .split('\n')
      .slice(2)
      .filter(Boolean)
      .map((l) => l.split(':')[0]!.trim());
    expect(interfaces).toEqual(['lo']);

    const mounts = await exec(agent.id, ['cat', '/proc/mounts']);
    const root = mounts.stdout.split('\n').find((l) => l.split(' ')[1] === '/')!;
    expect(root.split(' ')[3]!.split(',')).toContain('ro');
    const rootWrite = await exec(agent.id, ['touch', '/etc/warden-probe']);
    expect(rootWrite.exit_code).not.toBe(0);

    const who = await exec(agent.id, ['sh', '-c', 'id -g; echo data > /workspace/f && cat /workspace/f']);
    expect(who).toMatchObject({ exit_code: 0, stdout: '10001\ndata\n' });

    // 8 MiB workspace: writing 16 MiB fails with "No space left on device".
    const fill = await exec(agent.id, ['sh', '-c', 'head -c 16777216 /dev/zero > /workspace/big']);
    expect(fill.exit_code).not.toBe(0);
    expect(fill.stderr).toMatch(/No space left on device/);
    await stop(agent.id);
  });

  it('keeps a fork bomb inside the process limit, and the sandbox survives it', async () => {
    const agent = await newAgent(runtime);
    const { readFile } = await import('node:fs/promises');
    const pids = await pidsCgroup(agent.container_id!);
    // No sleep of its own: the exec lasts as long as the bomb does (it dies out once forks fail).
    const bomb = await exec(agent.id, ['sh', '-c', 'f(){ f|f & }; f; wait'], 4000);
    expect(bomb.timed_out).toBe(false);
    // The limit refuses forks inside the sandbox: 80 sleepers asked for, the limit is 48.
    const flood = await exec(agent.id, ['sh', '-c', 'for i in $(seq 80); do sleep 3 & done; echo all started'], 8000);
    expect(flood).toMatchObject({ exit_code: 2, stdout: '' });
    expect(flood.stderr).toMatch(/Cannot fork/);
    if (runtime === 'runc') {
      // runc: the container's own pids cgroup refused them (gVisor enforces nproc inside the sandbox).
      expect(bomb.stderr).toMatch(/Cannot fork/);
      const refused = /^max (\d+)$/m.exec(await readFile(`${pids}/pids.events`, 'utf8'));
      expect(Number(refused?.[1])).toBeGreaterThan(0);
    }
    // The sandbox answers again, and nothing of the bomb is left: under gVisor children forked
    // while the group was signalled outlive `timeout` unless the exec's wrapper sweeps the group.
    const after = await waitFor(
      'the sandbox to answer after the bomb',
      async () => {
        const r = await exec(agent.id, ['echo', 'alive']);
        return r.exit_code === 0 ? r : undefined;
      },
      15_000,
    );
    expect(after.stdout).toBe('alive\n');
    const left = await exec(agent.id, ['sh', '-c', "grep -ls 'f[|]f' /proc/[0-9]*/cmdline; true"]);
    expect(left).toMatchObject({ exit_code: 0, stdout: '' });
    expect((await waitForStatus(stack.api, agent.id, ['running'])).status).toBe('running');
    await stop(agent.id);
  });

  it('stops a memory hog at the memory limit and reports it', async () => {
    const agent = await newAgent(runtime);
    const hog = await exec(agent.id, ['tail', '/dev/zero'], 30_000).catch((err: Error) => err);
    if (runtime === 'runsc') {
      // gVisor's OOM ends the whole sandbox: the agent moves to error with that reason.
      expect((hog as { type?: string }).type).toBe('SandboxExited');
      const failed = await waitFor('the failed agent to be torn down', async () => {
        const res = await stack.api('GET', `/api/agents/${agent.id}`);
        return res.body.status === 'error' && res.body.stopped_at ? (res.body as AgentRecord) : undefined;
      });
      expect(failed.error_message).toBe('sandbox killed: out of memory (limit 96 MiB)');
      expect(failed.exit_code).toBe(137);
      expect(await containersOf(agent.id)).toHaveLength(0);
    } else {
      // runc's OOM killer ends only the hog; the exec reports it and the agent keeps running.
      expect(hog).toMatchObject({ exit_code: 137, oom_killed: true, timed_out: false });
      const after = await exec(agent.id, ['echo', 'alive']);
      expect(after.stdout).toBe('alive\n');
      await stop(agent.id);
    }
  });
});

it('reports exec timeouts and bounds output', async () => {
  const agent = await newAgent('runc');
  const slow = await exec(agent.id, ['sleep', '30'], 1000);
  expect(slow).toMatchObject({ timed_out: true, oom_killed: false });
  expect(slow.duration_ms).toBeLessThan(10_000);
  const loud = await exec(agent.id, ['head', '-c', '100000', '/dev/zero'], 5000, 1000);
  expect(loud.stdout.length).toBe(1000);
  expect(loud.stdout_truncated_bytes).toBe(99_000);
  await stop(agent.id);
});
