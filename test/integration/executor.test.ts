/**
 * The sandbox executor (sandbox-image/executor) as the sandbox's PID 1, driven through its client
 * (sandbox/executor-client.ts) over the container's attach stream, under runc and, when the engine
 * has it, runsc: commands run as their uid with no capability, under their timeout and output
 * caps, secrets reach them on stdin, nothing they start outlives them, a run id never runs twice
 * (a client killed mid-command leaves a result the next one collects, and a result forgotten or
 * evicted past the cap on kept output is never run again), and a command cannot reach
 * PID 1's stdin or stdout nor signal it. Prints how a round trip compares with `docker exec`.
 */
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ResourceLimitsSchema } from '../../domain/agent.js';
import {
  attachExecutor,
  ExecutorDetachedError,
  ExecutorRequestError,
  ExecutorResultCollectedError,
  type ExecutorClient,
  type ExecutorRunRequest,
} from '../../sandbox/executor-client.js';
import { execUid, SANDBOX_GID, sandboxContainerOptions } from '../../sandbox/spec.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { waitFor } from '../support/helpers.js';
import { runtimesUnderTest } from '../support/require-or-skip.js';

const docker = new Docker();
const { engine, runtimes } = await runtimesUnderTest(docker);
const limits = ResourceLimitsSchema.parse({ cpu_cores: 1, memory_mb: 128, disk_mb: 16, max_processes: 64 });
const EXECUTOR = join(PROJECT_ROOT, '.warden/bin/warden-executor');
const IN_SANDBOX = '/usr/local/bin/warden-executor';

beforeAll(() => {
  execFileSync('bash', [join(PROJECT_ROOT, 'scripts/build-executor.sh')], { stdio: 'inherit' });
});

/** A sandbox as Warden makes it, but with the executor as its root PID 1 holding the three capabilities it needs. */
function executorContainerOptions(agentId: string, runtime: 'runc' | 'runsc'): Docker.ContainerCreateOptions {
  const base = sandboxContainerOptions({
    agentId,
    host: inject('testHost'),
    image: inject('sandboxImage'),
    limits,
    runtime,
    engineRuntime: engine.names[runtime]!,
  });
  return {
    ...base,
    Cmd: [IN_SANDBOX],
    User: '0:0',
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: true,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    HostConfig: {
      ...base.HostConfig,
      CapAdd: ['SETUID', 'SETGID', 'KILL'],
      Binds: [`${EXECUTOR}:${IN_SANDBOX}:ro`],
      // Commands' output and secrets' echoes must not land in a log file on the host.
      LogConfig: { Type: 'none', Config: {} },
    },
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe.each(runtimes)('the sandbox executor under %s', (runtime) => {
  const agentId = `executor-${runtime}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  let container: Docker.Container;
  let client: ExecutorClient;

  const request = (argv: string[], extra: Partial<ExecutorRunRequest> = {}): ExecutorRunRequest => ({
    id: randomUUID(),
    argv,
    env: ['PATH=/usr/bin:/bin', 'HOME=/workspace'],
    cwd: '/tmp',
    uid: execUid(),
    gid: SANDBOX_GID,
    timeout_ms: 20_000,
    max_output_bytes: 1 << 20,
    ...extra,
  });
  const sh = async (script: string, extra: Partial<ExecutorRunRequest> = {}) => {
    const res = await client.run(request(['/bin/sh', '-c', script], extra));
    return { ...res, stdout: res.stdout.toString(), stderr: res.stderr.toString() };
  };
  /** How many processes of uid are alive, counted by a command of another uid. */
  const processesOf = async (uid: number) =>
    Number((await sh(`grep -l "^Uid:[[:space:]]*${uid}[[:space:]]" /proc/[0-9]*/status 2>/dev/null | wc -l`)).stdout);
  /** `docker exec` of argv as uid: its exit code and stdout. */
  const dockerExec = async (argv: string[], uid: number) => {
    const exec = await container.exec({ Cmd: argv, User: `${uid}:${SANDBOX_GID}`, AttachStdout: true, AttachStderr: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    const stdout = new PassThrough();
    let output = '';
    stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    docker.modem.demuxStream(stream, stdout, new PassThrough().resume());
    await new Promise((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
    });
    return { exitCode: (await exec.inspect()).ExitCode, output };
  };

  beforeAll(async () => {
    container = await docker.createContainer(executorContainerOptions(agentId, runtime));
    await container.start();
    client = await attachExecutor(container);
    await client.ping();
  });
  afterAll(async () => {
    client?.close();
    await container?.remove({ force: true, v: true });
  });

  it('runs a command and answers its exit code and output; refuses root and knows no run it never saw', async () => {
    expect(await sh('echo out; echo err >&2; exit 7')).toMatchObject({
      exit_code: 7,
      signal: 0,
      timed_out: false,
      stdout: 'out\n',
      stderr: 'err\n',
      stdout_dropped: 0,
      stderr_dropped: 0,
      outlived: false,
    });
    expect(await sh('echo "$HOME $PWD"', { cwd: '/' })).toMatchObject({ exit_code: 0, stdout: '/workspace /\n' });
    expect(await client.run(request(['no-such-command']))).toMatchObject({ exit_code: 127 });
    await expect(client.run(request(['id'], { uid: 0 }))).rejects.toThrow(ExecutorRequestError);
    expect(await client.result(randomUUID())).toBeNull();
  });

  it('runs as the requested uid in the sandbox group, with no capability and umask 007', async () => {
    const uid = execUid();
    const res = await sh('id -u; id -g; id -G; grep -E "^Cap(Inh|Prm|Eff|Bnd|Amb)" /proc/self/status; umask', { uid });
    const [u, g, groups, ...rest] = res.stdout.trim().split('\n');
    expect([u, g, groups]).toEqual([String(uid), String(SANDBOX_GID), String(SANDBOX_GID)]);
    // gVisor prints no CapAmb line; the bounding set still holds the executor's three, and with no
    // effective or permitted capability and no-new-privileges nothing can take them up.
    const caps = Object.fromEntries(rest.slice(0, -1).map((line) => line.split(/:\s*/)));
    expect(caps).toMatchObject({ CapInh: '0000000000000000', CapPrm: '0000000000000000', CapEff: '0000000000000000' });
    expect(caps.CapAmb ?? '0000000000000000').toBe('0000000000000000');
    expect(rest.at(-1)).toBe('0007');
  });

  it('kills the whole process group when the timeout runs out, with SIGKILL for what ignores SIGTERM', async () => {
    const uid = execUid();
    const res = await sh('sleep 60 & sleep 60; echo never', { uid, timeout_ms: 500 });
    expect(res).toMatchObject({ timed_out: true, signal: 15, exit_code: 143, stdout: '', outlived: false });
    expect(res.duration_ms).toBeLessThan(2_000);
    expect(await processesOf(uid)).toBe(0);

    const stubborn = await sh('trap "" TERM; sleep 60 & sleep 60', { uid, timeout_ms: 500 });
    expect(stubborn).toMatchObject({ timed_out: true, signal: 9, exit_code: 137, outlived: false });
    expect(stubborn.duration_ms).toBeGreaterThanOrEqual(2_500);
    expect(await processesOf(uid)).toBe(0);
  });

  it('cancels a run: its group is killed at once, its uid swept, and its result answered to every asker', async () => {
    const uid = execUid();
    const req = request(['/bin/sh', '-c', 'setsid sleep 60 & trap "" TERM; echo started; sleep 60'], { uid });
    const running = client.run(req);
    await waitFor('the command to start', async () => (await processesOf(uid)) >= 2);
    const cancelled = await client.cancel(req.id);
    expect(cancelled).toMatchObject({ id: req.id, signal: 9, exit_code: 137, timed_out: false, outlived: false });
    expect(cancelled!.stdout.toString()).toBe('started\n');
    expect((await running).duration_ms).toBe(cancelled!.duration_ms);
    expect(await processesOf(uid)).toBe(0);
    expect(await client.cancel(randomUUID())).toBeNull();
  });

  it('sweeps a fork bomb of its uid away', async () => {
    const uid = execUid();
    const res = await sh('f(){ f|f & }; f; sleep 1', { uid, timeout_ms: 3_000 });
    expect(res.outlived).toBe(false);
    expect(await processesOf(uid)).toBe(0);
  });

  it('kills what a command leaves running, in its group or not, and does not wait for it', async () => {
    const uid = execUid();
    const res = await sh('setsid sleep 60 >/dev/null 2>&1 & nohup sleep 60 >/dev/null 2>&1 & sleep 60 & echo started', { uid });
    expect(res).toMatchObject({ exit_code: 0, stdout: 'started\n', timed_out: false, outlived: false });
    // The last sleep held stdout open: the result came when the command ended, not when it did.
    expect(res.duration_ms).toBeLessThan(2_000);
    expect(await processesOf(uid)).toBe(0);
  });

  it('keeps max_output_bytes of each stream and counts the bytes dropped', async () => {
    const res = await sh("head -c 5000 /dev/zero | tr '\\0' a; head -c 300 /dev/zero | tr '\\0' b >&2", { max_output_bytes: 1000 });
    expect(res).toMatchObject({ exit_code: 0, stdout: 'a'.repeat(1000), stdout_dropped: 4000, stderr: 'b'.repeat(300), stderr_dropped: 0 });
  });

  it('gives a command its secrets on stdin, never in its argv or environment', async () => {
    const secret = `s3cr3t-${randomUUID()}`;
    const res = await sh('read -r s; echo "${#s}"; cat /proc/$$/cmdline /proc/$$/environ | grep -cF -- "$s"', { stdin: `${secret}\n` });
    expect(res.stdout).toBe(`${secret.length}\n0\n`);
  });

  it('never runs an id twice: a repeated run answers the first result', async () => {
    const id = randomUUID();
    const first = await client.run(request(['/bin/sh', '-c', `echo first >> /tmp/once-${id}; echo first`], { id }));
    const again = await client.run(request(['/bin/sh', '-c', `echo second >> /tmp/once-${id}; echo second`], { id }));
    expect(again).toEqual(first);
    expect(await client.result(id)).toEqual(first);
    expect((await sh(`cat /tmp/once-${id}`)).stdout).toBe('first\n');
  });

  it('forgets a result it was told to, and still never runs its id again', async () => {
    const id = randomUUID();
    const first = await client.run(request(['/bin/sh', '-c', `echo ran >> /tmp/once-${id}; echo ran`], { id }));
    expect(first.stdout.toString()).toBe('ran\n');
    await client.forget(id);
    await client.forget(randomUUID()); // an id never seen: nothing to do
    await expect(client.result(id)).rejects.toThrow(ExecutorResultCollectedError);
    await expect(client.run(request(['/bin/sh', '-c', `echo again >> /tmp/once-${id}`], { id }))).rejects.toThrow(
      ExecutorResultCollectedError,
    );
    expect((await sh(`cat /tmp/once-${id}`)).stdout).toBe('ran\n');
  });

  it('keeps at most 16 MiB of output: the oldest results go first, their ids stay known', async () => {
    const big = (id: string) =>
      client.run(request(['/bin/sh', '-c', "head -c 4194304 /dev/zero | tr '\\0' x"], { id, max_output_bytes: 4 << 20 }));
    const ids = Array.from({ length: 5 }, () => randomUUID());
    for (const id of ids) expect((await big(id)).stdout.length).toBe(4 << 20);
    // 20 MiB were made: the first result made room for the last.
    await expect(client.result(ids[0]!)).rejects.toThrow(ExecutorResultCollectedError);
    await expect(big(ids[0]!)).rejects.toThrow(ExecutorResultCollectedError);
    expect((await client.result(ids[4]!))?.stdout.length).toBe(4 << 20);
    for (const id of ids) await client.forget(id);
  });

  it('answers a run to a client that attaches after the one that started it was SIGKILLed mid-command', async () => {
    const id = randomUUID();
    const req = request(['/bin/sh', '-c', `echo ran >> /tmp/once-${id}; sleep 3; echo done`], { id });
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', join(PROJECT_ROOT, 'test/support/executor-client-process.ts'), container.id, JSON.stringify(req)],
      {
        cwd: PROJECT_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => chunk.toString().includes('sent') && resolve());
      child.on('exit', () => reject(new Error('the client process ended before it sent its run')));
    });
    await new Promise((resolve) => setTimeout(resolve, 500));
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const next = await attachExecutor(container);
    try {
      const res = await next.result(id);
      expect(res).toMatchObject({ id, exit_code: 0, timed_out: false, outlived: false });
      expect(res!.stdout.toString()).toBe('done\n');
      expect(res!.duration_ms).toBeGreaterThanOrEqual(3_000);
      // Retried as a whole run, it still ran once.
      expect(await next.run(req)).toEqual(res);
    } finally {
      next.close();
    }
    expect((await sh(`cat /tmp/once-${id}`)).stdout).toBe('ran\n');
  });

  it('drops the frame a client left half-written when it died, and serves the next client', async () => {
    const id = randomUUID();
    const raw = (await container.attach({
      stream: true,
      stdin: true,
      stdout: true,
      stderr: true,
      hijack: true,
    })) as NodeJS.ReadWriteStream & {
      destroy(): void;
    };
    await new Promise<void>((resolve) =>
      raw.write(`{"type":"run","id":"${id}","argv":["/bin/sh","-c","echo ran >> /tmp/once-${id}"],"ui`, () => resolve()),
    );
    raw.destroy();
    const next = await attachExecutor(container);
    try {
      await next.ping();
      expect(await next.result(id)).toBeNull();
    } finally {
      next.close();
    }
    expect((await sh(`cat /tmp/once-${id} 2>/dev/null; echo end`)).stdout).toBe('end\n');
  });

  it("keeps a command of another uid away from PID 1: it can neither open PID 1's stdin or stdout, nor its memory, nor signal it", async () => {
    // Each probe prints its name only if it got through.
    const probe = [
      'for f in 0 1 2; do',
      '  (exec 3</proc/1/fd/$f) 2>/dev/null && echo "read fd $f"',
      '  (exec 3>/proc/1/fd/$f) 2>/dev/null && echo "write fd $f"',
      'done',
      'head -c1 /proc/1/mem >/dev/null 2>&1 && echo "mem"',
      'ls /proc/1/root/ >/dev/null 2>&1 && echo "root"',
      'readlink /proc/1/fd/0 >/dev/null 2>&1 && echo "readlink fd"',
      'ls /proc/1/fd >/dev/null 2>&1 && echo "list fd"',
      'cat /proc/1/environ >/dev/null 2>&1 && echo "environ"',
      'kill -0 1 2>/dev/null && echo "signal"',
      'kill -TERM 1 2>/dev/null && echo "terminate"',
      'echo checked',
    ].join('\n');
    // gVisor guards /proc/[pid]/environ and the fd directory by file mode alone, not by the ptrace
    // access check Linux makes: any uid lists PID 1's descriptors (host:[N], nothing to open) and
    // reads its environment (the engine's PATH, HOSTNAME and HOME: no secret is ever put there).
    const through = runtime === 'runsc' ? 'readlink fd\nlist fd\nenviron\nchecked\n' : 'checked\n';
    for (const uid of [execUid(), SANDBOX_GID]) {
      expect((await sh(probe, { uid })).stdout).toBe(through);
      expect(await dockerExec(['/bin/sh', '-c', probe], uid)).toMatchObject({ exitCode: 0, output: through });
    }
    await client.ping();
  });

  it('measures a round trip of `true`: the executor against docker exec (printed, not asserted)', async () => {
    const time = async (fn: () => Promise<unknown>) => {
      const times: number[] = [];
      for (let i = 0; i < 20; i++) {
        const t0 = performance.now();
        await fn();
        times.push(performance.now() - t0);
      }
      return median(times);
    };
    const uid = execUid();
    const viaExecutor = await time(() => client.run(request(['true'], { uid })));
    const viaDockerExec = await time(() => dockerExec(['true'], uid));
    console.log(
      `${runtime}: median round trip of \`true\` over 20 runs: executor ${viaExecutor.toFixed(1)} ms, docker exec ${viaDockerExec.toFixed(1)} ms`,
    );
  });

  it('on SIGTERM kills every command and exits 0', async () => {
    const detached = expect(client.run(request(['sleep', '60']))).rejects.toThrow(ExecutorDetachedError);
    await client.ping();
    const t0 = Date.now();
    await container.stop({ t: 10 });
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect((await container.inspect()).State.ExitCode).toBe(0);
    await detached;
  });
});
