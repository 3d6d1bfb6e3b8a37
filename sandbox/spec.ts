/**
 * The sandbox container as the engine is told it: its user and the execs' uids, its workspace,
 * labels and name, the engine-enforced limits and hardening, and how a command is run in it.
 * The sandbox activities create containers with it; the API reads containers by it; the tests and
 * the benchmark make containers the way Warden does.
 */
import { randomInt } from 'node:crypto';
import type Docker from 'dockerode';
import { SANDBOX_SHM_MB, type ResourceLimits, type SandboxRuntime } from '../domain/agent.js';

/** This uid owns the sandbox's tmpfs mounts; its gid is every command's group. */
export const SANDBOX_UID = 10001;
export const SANDBOX_GID = 10001;
/**
 * Each exec runs as its own uid, drawn from [2^20, 2^31 - 2] (far above the uids images and hosts
 * hand out), in the shared group: its processes can neither signal nor trace (nor, under runc, read
 * the environment of) another command's, and when it ends everything that uid still runs is killed.
 */
export const EXEC_UID_MIN = 2 ** 20;
export const EXEC_UID_MAX = 2 ** 31 - 2;
export const execUid = (): number => randomInt(EXEC_UID_MIN, EXEC_UID_MAX + 1);
export const WORKSPACE = '/workspace';
/** setgid and group-writable: the execs' uids share the workspace through the sandbox group. */
export const WORKSPACE_MODE = '2770';
export const LABELS = {
  managed: 'dev.warden.managed',
  agentId: 'dev.warden.agent-id',
  host: 'dev.warden.host',
  /** `1` on a sandbox whose PID 1 is the executor; sandboxes created before it run commands through `docker exec`. */
  executor: 'dev.warden.executor',
  /** On the sandbox image: the hash of the executor's sources it was built with (scripts/build-image.sh); none before the executor. */
  executorSha256: 'dev.warden.executor-sha256',
  /** On a sandbox made for the warm pool: its profile's hash. It stays after an agent claims the sandbox. */
  pool: 'dev.warden.pool',
  /** On a warm pool member: the id of the worker process whose pool made it. */
  poolOwner: 'dev.warden.pool-owner',
} as const;

const AGENT_CONTAINER_PREFIX = 'warden-agent-';
export const containerName = (agentId: string): string => `${AGENT_CONTAINER_PREFIX}${agentId}`;
/** An idle warm pool member's name; claiming it renames it to its agent's containerName. */
export const POOL_MEMBER_PREFIX = 'warden-pool-';

/**
 * The agent a container of Warden's belongs to: its agent label (a sandbox created for the agent),
 * or else its name (a warm pool member renamed when the agent claimed it: labels cannot change
 * after create). Null for an idle pool member and for anything else.
 */
export function agentOfContainer(name: string, labels: Record<string, string>): string | null {
  if (labels[LABELS.agentId]) return labels[LABELS.agentId];
  const bare = name.replace(/^\//, '');
  return labels[LABELS.pool] && bare.startsWith(AGENT_CONTAINER_PREFIX) ? bare.slice(AGENT_CONTAINER_PREFIX.length) : null;
}

/**
 * PID 1 of the sandbox: the executor (sandbox-image/executor, baked into the image by
 * scripts/build-image.sh), which runs each command as its own uid. It runs as root with only the
 * capabilities that takes (CAP_SETUID and CAP_SETGID to become the command's uid, CAP_KILL to kill
 * what the command leaves); the commands have none.
 */
export const SANDBOX_EXECUTOR = '/usr/local/bin/warden-executor';
const EXECUTOR_CAPS = ['SETUID', 'SETGID', 'KILL'];

export const MiB = 1024 * 1024;

/**
 * Host tasks a gVisor sandbox may use: measured with trixie's runsc, an idle sandbox holds about
 * 32 host tasks (the Sentry's threads) and each process inside adds one or two more. Hitting the
 * cgroup's pids limit kills the whole gVisor sandbox, so under runsc the process limit is
 * enforced inside by RLIMIT_NPROC (the gVisor kernel counts each uid's processes, so the limit
 * holds per command, every exec having its own uid) and the cgroup limit is only a backstop sized
 * from those numbers.
 */
export const runscHostTasks = (maxProcesses: number): number => 64 + 4 * maxProcesses;

/** The engine-enforced limits and the always-on hardening of every sandbox. */
export function sandboxHostConfig(limits: ResourceLimits, runtime: SandboxRuntime, engineRuntime: string): Docker.HostConfig {
  const owner = `uid=${SANDBOX_UID},gid=${SANDBOX_GID}`;
  // Under runc, RLIMIT_NPROC would count the uid's processes across every sandbox on the host, so
  // the pids cgroup alone is the limit there.
  const processes =
    runtime === 'runsc'
      ? {
          PidsLimit: runscHostTasks(limits.max_processes),
          Ulimits: [{ Name: 'nproc', Soft: limits.max_processes, Hard: limits.max_processes }],
        }
      : { PidsLimit: limits.max_processes };
  return {
    Runtime: engineRuntime,
    NanoCpus: Math.round(limits.cpu_cores * 1e9),
    Memory: limits.memory_mb * MiB,
    MemorySwap: limits.memory_mb * MiB, // equal to Memory: no swap
    ...processes,
    NetworkMode: limits.network_enabled ? 'bridge' : 'none',
    ReadonlyRootfs: true,
    CapDrop: ['ALL'],
    CapAdd: EXECUTOR_CAPS,
    SecurityOpt: ['no-new-privileges:true'], // the engine's default seccomp profile stays on
    Tmpfs: {
      // Shared by the execs' uids through the group; setgid, so new files keep the group (runc copies
      // the image directory's mode over this one: shareWorkspace sets it again).
      [WORKSPACE]: `rw,nosuid,nodev,size=${limits.disk_mb}m,${owner},mode=${WORKSPACE_MODE}`,
      '/tmp': `rw,nosuid,nodev,noexec,size=16m,${owner},mode=1777`,
    },
    // The engine's /dev/shm is another writable tmpfs (64 MiB by default): small, and counted in memory_mb.
    ShmSize: SANDBOX_SHM_MB * MiB,
    Privileged: false,
    Init: false,
    RestartPolicy: { Name: 'no' },
    // Commands' output and the secrets they echo must not land in a log file on the host.
    LogConfig: { Type: 'none', Config: {} },
  };
}

export interface SandboxProfile {
  host: string;
  image: string;
  limits: ResourceLimits;
  runtime: SandboxRuntime;
  engineRuntime: string;
}

/** Everything the engine is told about a sandbox container (also used by the benchmark's baseline). */
export function sandboxContainerOptions(opts: SandboxProfile & { agentId: string }): Docker.ContainerCreateOptions {
  const profile = sandboxProfileOptions(opts);
  return {
    ...profile,
    name: containerName(opts.agentId),
    Labels: { ...profile.Labels, [LABELS.agentId]: opts.agentId },
  };
}

/**
 * A sandbox's create spec without the agent it is for: what a warm pool member is made with (the
 * pool keys its members by this spec's hash). Nothing in it is the agent's: its hostname and
 * environment are the same for every sandbox, and secrets reach commands on stdin, never here.
 */
export function sandboxProfileOptions(opts: SandboxProfile): Docker.ContainerCreateOptions {
  return {
    Image: opts.image,
    Cmd: [SANDBOX_EXECUTOR],
    User: '0:0',
    WorkingDir: WORKSPACE,
    Hostname: 'sandbox',
    Env: [],
    // The executor's requests and answers travel on its stdin and stdout, which outlive any one
    // attached worker (StdinOnce off).
    OpenStdin: true,
    StdinOnce: false,
    AttachStdin: false,
    Tty: false,
    Labels: { [LABELS.managed]: 'true', [LABELS.host]: opts.host, [LABELS.executor]: '1' },
    NetworkDisabled: !opts.limits.network_enabled,
    HostConfig: sandboxHostConfig(opts.limits, opts.runtime, opts.engineRuntime),
  };
}

/**
 * Runs the command under `timeout` (its own process group), then kills everything else its uid
 * still runs: children that left the group (setsid, nohup, daemons) included. Under gVisor a fork
 * bomb's children forked while they were signalled can outlive one kill, so it is repeated while
 * some are left (gVisor's kill(-1) fails once none is; Linux's succeeds while any other process
 * exists, so the count bounds it); the sweep is done by this shell, which exists before the bomb
 * does, with builtins only (forking needs a free slot). The activity checks afterwards, from
 * another exec, that nothing of the uid is left. umask 007: what the command makes stays usable by
 * later commands (other uids, same group). Stdin reaches the command through fd 3, as a background
 * job's own stdin is /dev/null.
 */
const EXEC_WRAPPER = [
  't=$1; shift',
  'umask 007',
  'exec 3<&0',
  'timeout --kill-after=2 "$t" "$@" <&3 3<&- &',
  'pid=$!',
  'exec 3<&-',
  'wait "$pid"; rc=$?',
  'n=0; while kill -KILL -1 2>/dev/null && [ "$n" -lt 1000 ]; do n=$((n + 1)); done',
  'exit "$rc"',
].join('\n');

/** A command's whole environment when the executor runs it: what `docker exec` gives one. */
export const EXECUTOR_ENV = ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'HOSTNAME=sandbox', `HOME=${WORKSPACE}`];

/** How a command is run in a sandbox created before the executor: as its own uid in the sandbox group, under `timeout`. */
export function sandboxExecOptions(command: string[], timeoutMs: number, uid: number, stdin = false): Docker.ExecCreateOptions {
  return {
    AttachStdin: stdin,
    Cmd: ['/bin/sh', '-c', EXEC_WRAPPER, 'warden-exec', (timeoutMs / 1000).toFixed(3), ...command],
    User: `${uid}:${SANDBOX_GID}`,
    WorkingDir: WORKSPACE,
    // The uid has no passwd entry; the sandbox user's home was the workspace.
    Env: [`HOME=${WORKSPACE}`],
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  };
}
