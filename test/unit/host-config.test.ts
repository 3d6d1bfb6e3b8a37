/** sandboxHostConfig: the engine-enforced limits and the always-on hardening, under runc and runsc. */
import { describe, expect, it } from 'vitest';
import { ResourceLimitsSchema, type ResourceLimits } from '../../domain/agent.js';
import {
  runscHostTasks,
  SANDBOX_UID,
  SANDBOX_GID,
  EXEC_UID_MIN,
  EXEC_UID_MAX,
  execUid,
  sandboxExecOptions,
  sandboxContainerOptions,
  sandboxHostConfig,
  SANDBOX_EXECUTOR,
  WORKSPACE,
} from '../../sandbox/spec.js';

const MiB = 1024 * 1024;
const limits = (over: Partial<ResourceLimits> = {}): ResourceLimits => ResourceLimitsSchema.parse(over);

/** A tmpfs option string as a map (flags map to true). */
function tmpfsOptions(spec: string | undefined): Record<string, string | true> {
  expect(spec).toBeTypeOf('string');
  return Object.fromEntries(
    spec!.split(',').map((o) => {
      const [k, v] = o.split('=');
      return [k, v ?? true];
    }),
  );
}

describe.each([
  ['runc', 'runc'],
  ['runsc', 'runsc'],
] as const)('sandboxHostConfig under %s', (runtime, engineName) => {
  const l = limits({ cpu_cores: 0.5, memory_mb: 96, disk_mb: 8, max_processes: 48 });
  const hc = sandboxHostConfig(l, runtime, engineName);

  it('runs under the engine name it was given', () => {
    expect(hc.Runtime).toBe(engineName);
    expect(sandboxHostConfig(l, runtime, 'my-custom-name').Runtime).toBe('my-custom-name');
  });

  it('drops every capability but the three the executor needs, and forbids gaining privileges', () => {
    expect(hc.CapDrop).toEqual(['ALL']);
    expect(hc.CapAdd).toEqual(['SETUID', 'SETGID', 'KILL']);
    expect(hc.SecurityOpt).toContain('no-new-privileges:true');
    // The engine's default seccomp profile must stay on.
    expect((hc.SecurityOpt ?? []).filter((o: string) => /seccomp|apparmor/.test(o))).toEqual([]);
  });

  it('has a read-only root filesystem, no privileges, no host mounts or devices', () => {
    expect(hc.ReadonlyRootfs).toBe(true);
    expect(hc.Privileged).toBe(false);
    expect(hc.Binds).toBeUndefined();
    expect(hc.Mounts).toBeUndefined();
    expect(hc.VolumesFrom).toBeUndefined();
    expect(hc.Devices).toBeUndefined();
    expect(hc.PidMode).toBeUndefined();
    expect(hc.IpcMode).toBeUndefined();
    expect(hc.UsernsMode).toBeUndefined();
    expect(hc.LogConfig).toEqual({ Type: 'none', Config: {} });
    expect(hc.RestartPolicy).toEqual({ Name: 'no' });
  });

  it('has no network unless network_enabled', () => {
    expect(hc.NetworkMode).toBe('none');
    expect(sandboxHostConfig(limits({ network_enabled: true }), runtime, engineName).NetworkMode).toBe('bridge');
  });

  it('limits memory with no swap', () => {
    expect(hc.Memory).toBe(96 * MiB);
    expect(hc.MemorySwap).toBe(hc.Memory);
    const big = sandboxHostConfig(limits({ memory_mb: 4096 }), runtime, engineName);
    expect(big.Memory).toBe(4096 * MiB);
    expect(big.MemorySwap).toBe(4096 * MiB);
  });

  it('limits CPU in nano-CPUs, rounded to an integer', () => {
    expect(hc.NanoCpus).toBe(500_000_000);
    expect(sandboxHostConfig(limits({ cpu_cores: 2 }), runtime, engineName).NanoCpus).toBe(2_000_000_000);
    const odd = sandboxHostConfig(limits({ cpu_cores: 0.3333 }), runtime, engineName).NanoCpus;
    expect(odd).toBe(333_300_000);
    expect(Number.isInteger(odd)).toBe(true);
  });

  it('mounts /workspace as a size-limited tmpfs owned by the sandbox user, shared by its group (setgid)', () => {
    expect(WORKSPACE).toBe('/workspace');
    const ws = tmpfsOptions(hc.Tmpfs?.['/workspace']);
    expect(ws).toMatchObject({
      rw: true,
      nosuid: true,
      nodev: true,
      size: '8m',
      uid: String(SANDBOX_UID),
      gid: String(SANDBOX_GID),
      mode: '2770',
    });
    expect(tmpfsOptions(sandboxHostConfig(limits({ disk_mb: 300 }), runtime, engineName).Tmpfs?.['/workspace']).size).toBe('300m');
  });

  it('mounts /tmp as a small noexec tmpfs', () => {
    expect(tmpfsOptions(hc.Tmpfs?.['/tmp'])).toMatchObject({
      nosuid: true,
      nodev: true,
      noexec: true,
      size: '16m',
      uid: String(SANDBOX_UID),
      mode: '1777',
    });
    expect(Object.keys(hc.Tmpfs ?? {}).sort()).toEqual(['/tmp', '/workspace']);
  });

  it('limits processes', () => {
    if (runtime === 'runc') {
      // The pids cgroup is the limit; RLIMIT_NPROC would count the uid across every sandbox.
      expect(hc.PidsLimit).toBe(48);
      expect(hc.Ulimits ?? []).toEqual([]);
    } else {
      // gVisor enforces max_processes inside through RLIMIT_NPROC; the cgroup is a backstop.
      expect(hc.Ulimits).toEqual([{ Name: 'nproc', Soft: 48, Hard: 48 }]);
      expect(hc.PidsLimit).toBe(runscHostTasks(48));
      expect(hc.PidsLimit).toBeGreaterThan(48);
    }
  });
});

describe('process limits follow max_processes', () => {
  it.each([8, 128, 32768])('max_processes=%i', (n) => {
    expect(sandboxHostConfig(limits({ max_processes: n }), 'runc', 'runc').PidsLimit).toBe(n);
    expect(sandboxHostConfig(limits({ max_processes: n }), 'kata', 'kata').PidsLimit).toBe(n);
    const runsc = sandboxHostConfig(limits({ max_processes: n }), 'runsc', 'runsc');
    expect(runsc.Ulimits).toEqual([{ Name: 'nproc', Soft: n, Hard: n }]);
    expect(runsc.PidsLimit).toBe(runscHostTasks(n));
  });

  it('runscHostTasks leaves room for the Sentry and grows with max_processes', () => {
    expect(runscHostTasks(0)).toBeGreaterThanOrEqual(32); // an idle sandbox holds ~32 host tasks
    expect(runscHostTasks(128)).toBe(64 + 4 * 128);
    expect(runscHostTasks(129) - runscHostTasks(128)).toBeGreaterThanOrEqual(2); // 1-2 host tasks per process
  });
});

describe('the defaults', () => {
  it('apply when no limits are given', () => {
    const hc = sandboxHostConfig(limits(), 'runc', 'runc');
    expect(hc).toMatchObject({ NanoCpus: 1e9, Memory: 512 * MiB, MemorySwap: 512 * MiB, PidsLimit: 128, NetworkMode: 'none' });
    expect(tmpfsOptions(hc.Tmpfs?.['/workspace']).size).toBe('256m');
  });
});

describe('sandboxContainerOptions', () => {
  const opts = (network_enabled: boolean) =>
    sandboxContainerOptions({
      agentId: 'agt-1',
      host: 'test',
      image: 'warden-sandbox:bookworm',
      limits: limits({ network_enabled }),
      runtime: 'runsc',
      engineRuntime: 'runsc',
    });

  it('runs the executor as PID 1 in /workspace, on an open stdin and with no inherited environment', () => {
    const o = opts(false);
    expect(o.Cmd).toEqual([SANDBOX_EXECUTOR]);
    expect(o.User).toBe('0:0');
    expect(o).toMatchObject({ OpenStdin: true, StdinOnce: false, AttachStdin: false, Tty: false });
    expect(SANDBOX_UID).not.toBe(0);
    expect(o.WorkingDir).toBe(WORKSPACE);
    expect(o.Env).toEqual([]);
    expect(o.HostConfig).toEqual(sandboxHostConfig(limits(), 'runsc', 'runsc'));
  });

  it('runs each command as its own uid, in the sandbox group, never the sandbox user nor root', () => {
    const uids = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const uid = execUid();
      expect(uid).toBeGreaterThanOrEqual(EXEC_UID_MIN);
      expect(uid).toBeLessThanOrEqual(EXEC_UID_MAX);
      uids.add(uid);
    }
    expect(uids.size).toBe(50);
    expect(EXEC_UID_MIN).toBeGreaterThan(SANDBOX_UID);
    const exec = sandboxExecOptions(['true'], 1000, 1234567);
    expect(exec.User).toBe(`1234567:${SANDBOX_GID}`);
    expect(exec.Env).toEqual([`HOME=${WORKSPACE}`]);
  });

  it('disables networking unless network_enabled', () => {
    expect(opts(false).NetworkDisabled).toBe(true);
    expect(opts(true).NetworkDisabled).toBe(false);
    expect(opts(true).HostConfig?.NetworkMode).toBe('bridge');
  });

  it('labels the container with its agent and host, and as run by the executor', () => {
    expect(opts(false).Labels).toEqual({
      'dev.warden.managed': 'true',
      'dev.warden.agent-id': 'agt-1',
      'dev.warden.host': 'test',
      'dev.warden.executor': '1',
    });
    expect(opts(false).name).toBe('warden-agent-agt-1');
  });
});
