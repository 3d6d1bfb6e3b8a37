/**
 * What idle agents cost and how many this machine holds (part of `make bench`).
 *
 * Memory per idle agent, two ways, with the raw baseline (the same container via dockerode):
 *   - host: MemAvailable (/proc/meminfo) before and after N idle agents, divided by N; it counts
 *     everything an agent costs: the container, its shim, the workflow state in the worker and
 *     the Temporal server;
 *   - containers: the sum over the agents' memory cgroups (usage minus inactive file pages), and
 *     the summed RSS of the processes in them (for runsc: the Sentry and the gofer; RSS counts
 *     shared pages once per process, so it overstates).
 * Capacity: agents are added in steps; after each step, low-risk actions (through the API, round
 * robin over the agents) are timed; the ramp stops at the first step whose p99 is over twice the
 * single-agent p99, or at the cap (reported as such).
 */
import { readFileSync } from 'node:fs';
import type Docker from 'dockerode';

export interface IdleBench {
  docker: Docker;
  /** Creates an agent through the API and waits until it runs. */
  createAgent(): Promise<string>;
  stopAgents(ids: string[]): Promise<void>;
  /** One low-risk action end to end through the API, in ms. */
  action(agentId: string): Promise<number>;
  /** Creates and starts a raw container like an agent's; returns its name. */
  createRaw(): Promise<string>;
  removeRaw(names: string[]): Promise<void>;
}

export interface MemorySample {
  mem_available_bytes: number;
}

export interface ContainerMemory {
  cgroup_bytes: number | null;
  rss_bytes: number | null;
}

export interface MemoryPerAgent {
  n: number;
  /** (MemAvailable before - after) / n. */
  host_bytes_per_agent: number;
  /** Mean over the containers. */
  cgroup_bytes_per_container: number | null;
  rss_bytes_per_container: number | null;
}

export interface RampStep {
  agents: number;
  action_p50_ms: number;
  action_p99_ms: number;
  mem_available_bytes: number;
}

export interface RampResult {
  single_agent_p99_ms: number;
  threshold_ms: number;
  steps: RampStep[];
  /** The most agents at which the action p99 stayed within the threshold. */
  largest_ok: number;
  /** Why the ramp stopped: over the threshold, the cap, or a failure. */
  stopped_because: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function memAvailable(): number {
  const line = readFileSync('/proc/meminfo', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('MemAvailable:'));
  return Number(/(\d+)/.exec(line ?? '')?.[1] ?? NaN) * 1024;
}

/** MemAvailable once things settle: the median of a few samples a second apart. */
async function settledMemAvailable(): Promise<number> {
  await sleep(3000);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(memAvailable());
    await sleep(1000);
  }
  return samples.sort((a, b) => a - b)[2]!;
}

const readNumber = (file: string): number => Number(readFileSync(file, 'utf8').trim());
const statField = (file: string, field: string): number => {
  const line = readFileSync(file, 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${field} `));
  return line ? Number(line.split(' ')[1]) : 0;
};

/** The memory cgroup of a container's main process (cgroup v1 or v2) and what it holds. */
export async function containerMemory(docker: Docker, name: string): Promise<ContainerMemory> {
  try {
    const pid = (await docker.getContainer(name).inspect()).State.Pid;
    const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').split('\n');
    const v1 = lines.find((l) => /^\d+:memory:/.test(l));
    const dir = v1 ? `/sys/fs/cgroup/memory${v1.split(':')[2]}` : `/sys/fs/cgroup${lines.find((l) => l.startsWith('0::'))!.slice(3)}`;
    const cgroup = v1
      ? readNumber(`${dir}/memory.usage_in_bytes`) - statField(`${dir}/memory.stat`, 'total_inactive_file')
      : readNumber(`${dir}/memory.current`) - statField(`${dir}/memory.stat`, 'inactive_file');
    let rss = 0;
    for (const p of readFileSync(`${dir}/cgroup.procs`, 'utf8').split('\n').filter(Boolean)) {
      const kb = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${p}/status`, 'utf8'))?.[1];
      rss += Number(kb ?? 0) * 1024;
    }
    return { cgroup_bytes: cgroup, rss_bytes: rss };
  } catch {
    return { cgroup_bytes: null, rss_bytes: null }; // not root, or another cgroup layout
  }
}

async function meanContainerMemory(docker: Docker, names: string[]) {
  const all = await Promise.all(names.map((n) => containerMemory(docker, n)));
  const mean = (k: keyof ContainerMemory) =>
    all.every((m) => m[k] !== null) ? Math.round(all.reduce((s, m) => s + m[k]!, 0) / all.length) : null;
  return { cgroup_bytes_per_container: mean('cgroup_bytes'), rss_bytes_per_container: mean('rss_bytes') };
}

/** Memory per idle agent through Warden, and per raw container, n of each. */
export async function memoryPerIdleAgent(bench: IdleBench, n: number, log: (s: string) => void) {
  const measure = async (
    create: () => Promise<string>,
    remove: (names: string[]) => Promise<void>,
    containerOf: (id: string) => string,
  ) => {
    const before = await settledMemAvailable();
    const made: string[] = [];
    try {
      for (let i = 0; i < n; i++) made.push(await create());
      const after = await settledMemAvailable();
      const perContainer = await meanContainerMemory(bench.docker, made.map(containerOf));
      return { n, host_bytes_per_agent: Math.round((before - after) / n), ...perContainer } satisfies MemoryPerAgent;
    } finally {
      await remove(made);
    }
  };
  const mib = (b: number | null) => (b === null ? '-' : `${(b / 1024 ** 2).toFixed(1)} MiB`);
  const show = (m: MemoryPerAgent) =>
    `host ${mib(m.host_bytes_per_agent)}, cgroup ${mib(m.cgroup_bytes_per_container)}, rss ${mib(m.rss_bytes_per_container)}`;
  log(`  memory: ${n} idle agents through Warden`);
  const warden = await measure(bench.createAgent, bench.stopAgents, (id) => `warden-agent-${id}`);
  log(`    per agent: ${show(warden)}`);
  log(`  memory: ${n} raw containers`);
  const raw = await measure(bench.createRaw, bench.removeRaw, (name) => name);
  log(`    per container: ${show(raw)}`);
  return { warden, raw };
}

function percentiles(samples: number[]) {
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (p: number) => {
    const rank = (p / 100) * (sorted.length - 1);
    const lo = Math.floor(rank);
    return sorted[lo]! + (sorted[Math.ceil(rank)]! - sorted[lo]!) * (rank - lo);
  };
  const r = (x: number) => Math.round(x * 100) / 100;
  return { p50: r(at(50)), p99: r(at(99)) };
}

/** At most this many agents are created at once: creating them one by one would take most of the ramp. */
const CREATE_BATCH = 10;

/** Adds idle agents step by step while the action p99 stays within twice the single-agent p99. */
export async function rampIdleAgents(
  bench: IdleBench,
  opts: { step: number; cap: number; actions: number },
  log: (s: string) => void,
): Promise<RampResult> {
  const agents: string[] = [];
  const timeActions = async () => {
    const samples: number[] = [];
    for (let i = 0; i < opts.actions; i++) samples.push(await bench.action(agents[i % agents.length]!));
    return percentiles(samples);
  };
  try {
    agents.push(await bench.createAgent());
    for (let i = 0; i < 5; i++) await bench.action(agents[0]!); // warm-up
    const single = await timeActions();
    const threshold = 2 * single.p99;
    const steps: RampStep[] = [{ agents: 1, action_p50_ms: single.p50, action_p99_ms: single.p99, mem_available_bytes: memAvailable() }];
    log(`  ramp: 1 agent, action p99 ${single.p99} ms (threshold ${threshold.toFixed(2)} ms)`);
    let largestOk = 1;
    let stoppedBecause = `reached the cap of ${opts.cap} agents with the action p99 still within 2x`;
    ramp: while (agents.length < opts.cap) {
      const target = Math.min(opts.cap, agents.length === 1 ? opts.step : agents.length + opts.step);
      while (agents.length < target) {
        const batch = Math.min(CREATE_BATCH, target - agents.length);
        const made = await Promise.allSettled(Array.from({ length: batch }, () => bench.createAgent()));
        for (const m of made) if (m.status === 'fulfilled') agents.push(m.value);
        const failed = made.find((m) => m.status === 'rejected');
        if (failed) {
          stoppedBecause = `creating agent ${agents.length + 1} failed: ${(failed.reason as Error).message}`;
          break ramp;
        }
      }
      const at = await timeActions();
      steps.push({ agents: agents.length, action_p50_ms: at.p50, action_p99_ms: at.p99, mem_available_bytes: memAvailable() });
      log(`  ramp: ${agents.length} agents, action p99 ${at.p99} ms`);
      if (at.p99 > threshold) {
        stoppedBecause = `action p99 ${at.p99} ms at ${agents.length} agents is over 2x the single-agent p99`;
        break;
      }
      largestOk = agents.length;
    }
    return {
      single_agent_p99_ms: single.p99,
      threshold_ms: Math.round(threshold * 100) / 100,
      steps,
      largest_ok: largestOk,
      stopped_because: stoppedBecause,
    };
  } finally {
    await bench.stopAgents(agents);
  }
}
