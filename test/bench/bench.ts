/**
 * `make bench`: what Warden adds on top of Docker. For each runtime (runc, runsc) it measures
 *   - create-to-ready through the real HTTP API (POST /api/agents, then GET until running),
 *   - a low-risk action end to end (POST /api/actions with wait_seconds, filesystem `info`),
 *   - from each of those actions' histories, the command round trip through Temporal: the
 *     execInSandbox activity from scheduled to completed (commands run only as actions),
 * and, in the same run with the same image and hardening, the raw baselines:
 *   - create+start of a container built like createSandbox builds it,
 *   - `docker exec` of the skill's argv, which the action runs, of that argv under the shell
 *     execution journal (what a sandbox without the executor runs), and of `true`,
 *   - the skill's argv through the sandbox's executor as an action's run, attached straight (no Temporal).
 * Everything runs in this process against a Temporal dev server of its own; every container it
 * makes is removed at the end, on error and on Ctrl-C. Results: a table on stdout and JSON in
 * bench-results/. Sizes: BENCH_AGENTS (creates per runtime, default 10), BENCH_EXECS (actions and
 * raw execs per runtime, default 50). Then idle agents (test/bench/idle-agents.ts): memory per
 * idle agent against raw containers (BENCH_IDLE_AGENTS, default 10) and the most idle agents held
 * while the low-risk action's p99 stays within twice the single-agent p99 (steps of
 * BENCH_IDLE_STEP, default 50, BENCH_RAMP_EXECS actions per step, default 30, up to
 * WARDEN_BENCH_MAX_AGENTS, default the target: 300 under runc, 100 under runsc).
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import Docker from 'dockerode';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { detectRuntimes } from '../../sandbox/docker-engine.js';
import { shareWorkspace } from '../../activities/sandbox.js';
import {
  agentOfContainer,
  containerName,
  EXECUTOR_ENV,
  LABELS,
  SANDBOX_GID,
  sandboxContainerOptions,
  execUid,
  WORKSPACE,
} from '../../sandbox/spec.js';
import type { SandboxPool } from '../../sandbox/pool.js';
import { parsePoolProfiles } from '../../domain/sandbox-pool.js';
import { ResourceLimitsSchema, type AgentRecord, type SandboxRuntime } from '../../domain/agent.js';
import { ConfigSchema } from '../../domain/config.js';
import { PROJECT_ROOT, startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { bundleWorkflows } from '../../workers/bundle.js';
import { createWorkers } from '../../workers/create-workers.js';
import { createDataConverter, loadPayloadCodec } from '../../domain/data-converter.js';
import { prepareCommand, SKILLS } from '../../skills/index.js';
import { actionExec } from '../../domain/action-exec.js';
import { attachExecutor } from '../../sandbox/executor-client.js';

const run = promisify(execFile);

import { createApp } from '../../api/app.js';
import { KeyStore } from '../../stores/key-store.js';
import { AuditStore } from '../../stores/audit-store.js';
import { Keyring } from '../../domain/keyring.js';
import { loadPolicy } from '../../domain/policy.js';
import { positiveInt } from './env.js';
import { freePort } from './http-api.js';
import { activityRoundTripMs } from './history.js';
import { memoryPerIdleAgent, rampIdleAgents, type IdleBench, type MemoryPerAgent, type RampResult } from './idle-agents.js';

const HOST_ID = 'bench';
const RUNTIMES = ['runc', 'runsc'] as const satisfies readonly SandboxRuntime[];
// Defaults sized so that `make bench` ends within about 15 minutes on a 2-core machine.
const N = positiveInt('BENCH_AGENTS', 10);
const M = positiveInt('BENCH_EXECS', 50);
const IDLE_N = positiveInt('BENCH_IDLE_AGENTS', 10);
const IDLE_STEP = positiveInt('BENCH_IDLE_STEP', 50);
/** The ramp's cap: the idle-agent target of each runtime (docs/benchmark.md), unless set. */
const IDLE_CAP: Record<(typeof RUNTIMES)[number], number> = {
  runc: positiveInt('WARDEN_BENCH_MAX_AGENTS', 300),
  runsc: positiveInt('WARDEN_BENCH_MAX_AGENTS', 100),
};
const RAMP_EXECS = positiveInt('BENCH_RAMP_EXECS', 30);
const EXEC_WARMUP = 5;
/** Untimed creates before the timed ones (first workflow task, first container of a runtime). */
const CREATE_WARMUP = 1;
/** The warm pool keeps one member per runtime of a profile only the warm creates ask for. */
const WARM_POOL_SIZE = 1;
const WARM_CPU_CORES = 0.5;
const POLL_MS = 10;
const EXEC_TIMEOUT_MS = 10_000;

/** This run's id: its agent ids and raw containers carry it, so cleanup removes exactly what it made. */
const RUN_ID = randomBytes(3).toString('hex');
const BENCH_RUN_LABEL = 'dev.warden.bench-run';
const agentPrefix = `bench-${RUN_ID}-`;

// ---------------------------------------------------------------------------------------------
// Statistics and output

interface Stats {
  n: number;
  p50: number;
  p95: number;
  p99: number;
  mean: number;
  min: number;
  max: number;
}

/** Percentile by linear interpolation between closest ranks (numpy's default). */
function percentile(sorted: number[], p: number): number {
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.ceil(rank);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

function stats(samples: number[]): Stats {
  const sorted = [...samples].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 100) / 100;
  return {
    n: sorted.length,
    p50: r(percentile(sorted, 50)),
    p95: r(percentile(sorted, 95)),
    p99: r(percentile(sorted, 99)),
    mean: r(sorted.reduce((a, b) => a + b, 0) / sorted.length),
    min: r(sorted[0]),
    max: r(sorted[sorted.length - 1]),
  };
}

type Measure =
  | 'warden_create_to_ready'
  | 'warden_warm_create_to_ready'
  | 'raw_create_start'
  | 'warden_action'
  | 'warden_exec'
  | 'raw_executor'
  | 'raw_exec_journaled'
  | 'raw_exec_plain'
  | 'raw_exec_true';
const MEASURE_LABEL: Record<Measure, string> = {
  warden_create_to_ready: 'Warden create-to-ready (API)',
  warden_warm_create_to_ready: 'Warden warm create-to-ready (API, pool)',
  raw_create_start: 'raw create+start (dockerode)',
  warden_action: 'Warden action (REST, low risk)',
  warden_exec: 'Warden command via Temporal (execInSandbox)',
  raw_executor: 'raw executor run (action argv, no Temporal)',
  raw_exec_journaled: 'raw docker exec (shell-journaled argv)',
  raw_exec_plain: 'raw docker exec (filesystem info argv)',
  raw_exec_true: 'raw docker exec (true)',
};

interface RuntimeResult {
  runtime: SandboxRuntime;
  engine_runtime: string;
  measures: Partial<Record<Measure, Stats & { samples_ms: number[] }>>;
  overhead_p50_ms: { create: number; warm_create: number; exec: number; action: number };
  /** p50 ratios against the targets in docs/benchmark.md. */
  ratios_p50: { create_to_raw: number; warm_create_to_raw: number; exec_to_raw_exec: number; action_to_raw_exec: number };
  idle: { memory: { warden: MemoryPerAgent; raw: MemoryPerAgent }; ramp: RampResult };
}

function printTable(results: RuntimeResult[], skipped: string[]): void {
  const cols = ['runtime', 'measure', 'n', 'p50', 'p95', 'p99', 'mean', 'min', 'max'];
  const rows: string[][] = [];
  for (const r of results) {
    for (const m of Object.keys(MEASURE_LABEL) as Measure[]) {
      const s = r.measures[m];
      if (!s) continue;
      rows.push([r.runtime, MEASURE_LABEL[m], String(s.n), ...[s.p50, s.p95, s.p99, s.mean, s.min, s.max].map((x) => x.toFixed(2))]);
    }
  }
  const widths = cols.map((c, i) => Math.max(c.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  console.log('\nLatency in ms');
  console.log(line(cols));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log('\nOverhead Warden adds (p50 Warden - p50 raw; raw exec: docker exec of the filesystem info argv the action runs)');
  for (const r of results) {
    const sign = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)} ms`;
    console.log(
      `  ${r.runtime.padEnd(6)} create-to-ready ${sign(r.overhead_p50_ms.create)} (warm ${sign(r.overhead_p50_ms.warm_create)}), command via Temporal ${sign(r.overhead_p50_ms.exec)}, REST action ${sign(r.overhead_p50_ms.action)}`,
    );
  }
  console.log(
    '\nRatios of p50s (targets: warm create-to-ready <= 0.25x raw create+start and <= 30 ms; command via Temporal <= 0.5x raw exec; REST action <= 1.0x raw exec)',
  );
  for (const r of results) {
    const { create_to_raw, warm_create_to_raw, exec_to_raw_exec, action_to_raw_exec } = r.ratios_p50;
    console.log(
      `  ${r.runtime.padEnd(6)} create-to-ready ${create_to_raw.toFixed(2)}x (warm ${warm_create_to_raw.toFixed(2)}x), command via Temporal ${exec_to_raw_exec.toFixed(2)}x, REST action ${action_to_raw_exec.toFixed(2)}x`,
    );
  }
  for (const note of skipped) console.log(`  note: ${note}`);
  const mib = (b: number | null) => (b === null ? '-' : `${(b / 1024 ** 2).toFixed(1)} MiB`);
  console.log('\nMemory per idle agent (host: MemAvailable drop / n; cgroup: usage minus inactive file; rss: processes in the cgroup)');
  for (const r of results) {
    for (const [who, m] of [
      ['Warden agent', r.idle.memory.warden],
      ['raw container', r.idle.memory.raw],
    ] as const) {
      console.log(
        `  ${r.runtime.padEnd(6)} ${who.padEnd(13)} n=${m.n}  host ${mib(m.host_bytes_per_agent)}  cgroup ${mib(m.cgroup_bytes_per_container)}  rss ${mib(m.rss_bytes_per_container)}`,
      );
    }
  }
  console.log('\nIdle agents held with the low-risk action p99 within 2x the single-agent p99');
  for (const r of results) {
    const { ramp } = r.idle;
    console.log(
      `  ${r.runtime.padEnd(6)} ${ramp.largest_ok} agents (single-agent p99 ${ramp.single_agent_p99_ms} ms); stopped: ${ramp.stopped_because}`,
    );
    console.log(`         ${ramp.steps.map((s) => `${s.agents}:${s.action_p99_ms}`).join('  ')}  (agents:p99 ms)`);
  }
}

// ---------------------------------------------------------------------------------------------
// Machine info

async function machineInfo(docker: Docker, runscPath: string | undefined) {
  const cpus = os.cpus();
  let dockerVersion: string | null = null;
  try {
    dockerVersion = (await docker.version()).Version;
  } catch {
    /* reported as null */
  }
  let runscVersion: string | null = null;
  try {
    const { stdout } = await run(runscPath ?? 'runsc', ['--version']);
    runscVersion = stdout.split('\n')[0].trim();
  } catch {
    /* runsc not installed */
  }
  return {
    cpu_model: cpus[0]?.model.trim() ?? 'unknown',
    cpu_cores: cpus.length,
    total_memory_bytes: os.totalmem(),
    total_memory_gib: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    kernel: `${os.type()} ${os.release()}`,
    arch: os.arch(),
    node_version: process.version,
    docker_engine_version: dockerVersion,
    runsc_version: runscVersion,
  };
}

// ---------------------------------------------------------------------------------------------
// Stack and cleanup

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

const docker = new Docker();
const tmp = mkdtempSync(join(os.tmpdir(), 'warden-bench-'));
let devServer: Promise<DevServer> | undefined;
let workers: Promise<Awaited<ReturnType<typeof createWorkers>>> | undefined;
let workersRunning: Promise<void> | undefined;
let connection: Connection | undefined;
let httpServer: ReturnType<typeof serve> | undefined;
let aborting = false;

/** Containers this run made: Warden agents (by agent-id prefix) and raw ones (by run label). */
async function ownContainers(): Promise<Docker.ContainerInfo[]> {
  const [warden, raw] = await Promise.all([
    docker.listContainers({ all: true, filters: { label: [`${LABELS.host}=${HOST_ID}`] } }),
    docker.listContainers({ all: true, filters: { label: [`${BENCH_RUN_LABEL}=${RUN_ID}`] } }),
  ]);
  // An agent's container: made for it (its label), or a warm pool member it claimed (its name);
  // and the idle members of this run's pool, which the workers remove when they stop.
  const poolOwner = (await workers)?.pool?.owner;
  const ours = (c: Docker.ContainerInfo) =>
    agentOfContainer(c.Names[0] ?? '', c.Labels)?.startsWith(agentPrefix) || (poolOwner && c.Labels[LABELS.poolOwner] === poolOwner);
  return [...warden.filter(ours), ...raw];
}

async function removeContainer(idOrName: string): Promise<void> {
  try {
    await docker.getContainer(idOrName).remove({ force: true, v: true });
  } catch (err) {
    if (statusOf(err) !== 404 && statusOf(err) !== 409) throw err;
  }
}

async function waitGone(idOrName: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await docker.getContainer(idOrName).inspect();
    } catch (err) {
      if (statusOf(err) === 404) return;
      throw err;
    }
    if (Date.now() > deadline) throw new Error(`container ${idOrName} still exists after ${timeoutMs} ms`);
    await sleep(50);
  }
}

let cleaning: Promise<void> | undefined;
/** Idempotent: stops what was started (workers before containers, so none is made after). */
function cleanup(): Promise<void> {
  cleaning ??= (async () => {
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${what} failed: ${(err as Error).message ?? err}`);
      }
    };
    await step('closing the API server', async () => {
      if (!httpServer) return;
      const server = httpServer as unknown as { close(cb: () => void): void; closeAllConnections?: () => void };
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections?.();
      await closed;
    });
    await step('stopping the workers', async () => {
      if (!workers) return;
      const w = await workers;
      w.shutdown();
      await Promise.race([workersRunning, sleep(20_000)]);
    });
    await step('removing containers', async () => {
      for (let attempt = 0; attempt < 3; attempt++) {
        const left = await ownContainers();
        if (left.length === 0) return;
        await Promise.all(left.map((c) => removeContainer(c.Id)));
        await sleep(200);
      }
      const left = await ownContainers();
      if (left.length) throw new Error(`still there: ${left.map((c) => c.Names.join(',')).join(' ')}`);
    });
    await step('closing the Temporal connection', async () => connection?.close());
    await step('stopping the dev server', async () => (await devServer)?.stop());
    await step('removing the temp dir', async () => rmSync(tmp, { recursive: true, force: true }));
  })();
  return cleaning;
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (aborting) {
      console.error(`\n${signal} again: exiting without finishing cleanup`);
      process.exit(130);
    }
    aborting = true;
    console.error(`\n${signal}: cleaning up (containers, workers, dev server)...`);
    void cleanup().finally(() => process.exit(130));
  });
}
// Once cleanup has begun, calls still in flight fail as their connections close: expected, not news.
for (const event of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(event, (err: unknown) => {
    if (cleaning) return;
    console.error(`bench failed (${event}): ${(err as Error)?.stack ?? err}`);
    void cleanup().finally(() => process.exit(1));
  });
}

// ---------------------------------------------------------------------------------------------
// Measurements

interface Api {
  (method: string, path: string, body?: unknown): Promise<{ status: number; body: any }>;
}

async function wardenCreateToReady(
  api: Api,
  runtime: SandboxRuntime,
  agentId: string,
  opts: { pollMs?: number; cpuCores?: number } = {},
): Promise<number> {
  const pollMs = opts.pollMs ?? POLL_MS;
  const started = performance.now();
  const created = await api('POST', '/api/agents', {
    skill_id: 'filesystem',
    runtime,
    agent_id: agentId,
    ...(opts.cpuCores ? { resource_limits: { cpu_cores: opts.cpuCores } } : {}),
  });
  if (created.status !== 201) {
    throw new Error(`POST /api/agents: ${created.status} ${JSON.stringify(created.body)}`);
  }
  for (;;) {
    const res = await api('GET', `/api/agents/${agentId}`);
    const agent = res.body as AgentRecord;
    if (res.status === 200 && agent.status === 'running') break;
    if (res.status === 200 && (agent.status === 'error' || agent.status === 'stopped')) {
      throw new Error(`agent ${agentId} is ${agent.status}: ${agent.error_message}`);
    }
    if (res.status !== 200 && res.status !== 404) throw new Error(`GET agent: ${res.status} ${JSON.stringify(res.body)}`);
    await sleep(pollMs);
  }
  const elapsed = performance.now() - started;
  if (aborting) throw new Error('aborted');
  return elapsed;
}

/** Waits, untimed, until every profile the pool keeps has its members idle. */
async function poolRefilled(pool: SandboxPool, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const idle = Object.values(pool.idle());
    if (idle.length > 0 && idle.every((n) => n >= WARM_POOL_SIZE)) return;
    if (Date.now() > deadline) throw new Error(`the warm pool did not refill within ${timeoutMs} ms`);
    await sleep(POLL_MS);
  }
}

/** Force-stops an agent and waits until its workflow has ended and its container is gone. */
async function stopAgent(api: Api, client: Client, agentId: string): Promise<void> {
  const res = await api('POST', `/api/agents/${agentId}/stop`, { force: true });
  if (res.status !== 202) throw new Error(`stop ${agentId}: ${res.status} ${JSON.stringify(res.body)}`);
  await client.workflow.getHandle(agentId).result();
  await waitGone(containerName(agentId));
}

/** A low-risk action end to end through the API: its REST round trip in ms, and its workflow id. */
async function wardenAction(api: Api, agentId: string): Promise<{ ms: number; actionId: string }> {
  const started = performance.now();
  const res = await api('POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'filesystem',
    operation: 'info',
    agent_id: agentId,
    parameters: {},
    wait_seconds: 30,
  });
  const elapsed = performance.now() - started;
  if (res.status !== 202 || res.body.status !== 'completed')
    throw new Error(`Warden action ended ${res.status} ${JSON.stringify(res.body)}`);
  return { ms: elapsed, actionId: res.body.id as string };
}

/** The command round trip through Temporal: the action's execInSandbox, scheduled to completed. */
async function execRoundTrip(client: Client, actionId: string): Promise<number> {
  const handle = client.workflow.getHandle(actionId);
  await handle.result();
  const ms = activityRoundTripMs((await handle.fetchHistory()).events ?? [], 'execInSandbox');
  if (ms === null) throw new Error(`action ${actionId} has no completed execInSandbox in its history`);
  return ms;
}

/** The container createSandbox makes, under another name and this run's label. */
function rawContainerOptions(name: string, image: string, runtime: SandboxRuntime, engineRuntime: string): Docker.ContainerCreateOptions {
  const options = sandboxContainerOptions({
    agentId: name,
    host: HOST_ID,
    image,
    limits: ResourceLimitsSchema.parse({}),
    runtime,
    engineRuntime,
  });
  return { ...options, name, Labels: { [BENCH_RUN_LABEL]: RUN_ID } };
}

async function rawCreateStart(image: string, runtime: SandboxRuntime, engineRuntime: string, name: string): Promise<number> {
  const started = performance.now();
  const created = await docker.createContainer(rawContainerOptions(name, image, runtime, engineRuntime));
  await created.start();
  await shareWorkspace(created);
  return performance.now() - started;
}

class Discard extends Writable {
  override _write(_chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    done();
  }
}

/**
 * A plain `docker exec` of argv as a uid of the sandbox group in the workspace: create, start
 * (hijacked), read to the end, inspect. The uid is fixed per container: a fresh one per exec would
 * need the executor's umask for the journal's directory to stay writable.
 */
async function rawExec(container: Docker.Container, uid: number, argv: string[]): Promise<number> {
  const started = performance.now();
  const exec = await container.exec({
    Cmd: argv,
    User: `${uid}:${SANDBOX_GID}`,
    WorkingDir: WORKSPACE,
    Env: EXECUTOR_ENV,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  docker.modem.demuxStream(stream, new Discard(), new Discard());
  await new Promise<void>((resolve, reject) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
    stream.on('error', reject);
  });
  const info = await exec.inspect();
  const elapsed = performance.now() - started;
  if (info.ExitCode !== 0) throw new Error(`raw exec exited ${info.ExitCode}`);
  return elapsed;
}

function progress(label: string, i: number, total: number): void {
  if (process.stdout.isTTY) process.stdout.write(`\r  ${label} ${i}/${total}   ${i === total ? '\n' : ''}`);
  else if (i === total) console.log(`  ${label} ${total}/${total}`);
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  const startedAt = new Date();
  const image = ConfigSchema.parse({}).sandboxImage;
  try {
    await docker.getImage(image).inspect();
  } catch {
    throw new Error(`sandbox image ${image} is missing; build it with \`make image\``);
  }
  const engine = await detectRuntimes(docker);
  const machine = await machineInfo(docker, (await docker.info()).Runtimes?.[engine.names.runsc ?? '']?.path);

  const noop = () => undefined;
  Runtime.install({
    logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: (m) => console.error(m) },
    shutdownSignals: [], // this script handles Ctrl-C itself, cleanup included
  });

  console.log(`Warden bench (run ${RUN_ID}): N=${N} creates, M=${M} actions and raw execs per runtime`);
  console.log(`  ${machine.cpu_model}, ${machine.cpu_cores} cores, ${machine.total_memory_gib} GiB, ${machine.kernel}`);
  console.log(`  Node ${machine.node_version}, Docker ${machine.docker_engine_version}, ${machine.runsc_version ?? 'no runsc'}`);

  const port = await freePort();
  devServer = startDevServer({ dbFile: join(tmp, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(tmp, 'temporal.log') });
  const server = await devServer;
  const bundle = await bundleWorkflows();
  if (aborting) return;
  const keys = KeyStore.open(':memory:');
  // The audit store anchors its head under the key file the payload codec below shares.
  const audit = AuditStore.open(join(tmp, 'audit.db'), { keyring: Keyring.load({ dataDir: tmp }), isKnownKeyId: (id) => keys.has(id) });
  // Payloads are encrypted as in a deployment: the workers and the API share one key file.
  const payloadCodec = loadPayloadCodec(ConfigSchema.parse({ dataDir: tmp }), { warn: () => undefined });
  const dataConverter = createDataConverter(payloadCodec);
  workers = createWorkers({
    temporal: { address: server.address },
    namespace: 'default',
    dockerHostId: HOST_ID,
    roles: ['control', 'sandbox'],
    payloadCodec,
    policy: loadPolicy(SKILLS),
    audit,
    docker,
    workflowBundle: bundle,
    shutdownGraceTime: '2 seconds',
    // The warm creates' profile: a limit the cold creates do not ask for, so that they stay cold.
    pool: {
      size: WARM_POOL_SIZE,
      profiles: parsePoolProfiles(
        RUNTIMES.filter((r) => engine.names[r])
          .map((r) => `runtime=${r},cpu_cores=${WARM_CPU_CORES}`)
          .join(';'),
      ),
      image,
      defaultRuntime: 'auto',
      requireSandbox: false,
    },
  });
  const w = await workers;
  workersRunning = w.run();
  workersRunning.catch((err) => {
    if (!aborting) console.error(`workers stopped: ${err}`);
  });

  connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, dataConverter });
  const config = ConfigSchema.parse({
    temporalAddress: server.address,
    dockerHostId: HOST_ID,
    maxAgents: 1000,
    logLevel: 'silent',
    // The benchmark polls every 10 ms and sends hundreds of creates and actions from one key: far
    // beyond the default limits, which stay on (their cost is part of the path) but never bind.
    rateLimits: 'read=100000/s,write=100000/s',
    // runc is measured beside runsc: the host allows agents without a sandbox kernel.
    requireSandbox: false,
    // Hundreds of idle agents with the default limits (512 MB each) on one host.
    memoryOvercommit: 10,
    cpuOvercommit: 64,
  });
  // An admin: only an admin may create runc agents (no sandbox kernel).
  const { key: adminKey } = await keys.create('bench', 'admin', null);
  const app = createApp({
    client,
    docker,
    config,
    logger: pino({ level: 'silent' }),
    keys,
    audit,
    policy: loadPolicy(SKILLS),
    payloadCodec,
  });
  const apiPort = await freePort();
  await new Promise<void>((resolve) => {
    httpServer = serve({ fetch: app.fetch, hostname: '127.0.0.1', port: apiPort }, () => resolve());
  });
  const base = `http://127.0.0.1:${apiPort}`;
  const api: Api = async (method, path, body) => {
    const res = await fetch(base + path, {
      method,
      headers: { authorization: `Bearer ${adminKey}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };

  const results: RuntimeResult[] = [];
  const skipped: string[] = [];
  let agentSeq = 0;
  let rawSeq = 0;
  const nextAgentId = (rt: string) => `${agentPrefix}${rt}-${agentSeq++}`;
  const nextRawName = () => `warden-bench-raw-${RUN_ID}-${rawSeq++}`;

  for (const runtime of RUNTIMES) {
    const engineRuntime = engine.names[runtime];
    if (!engineRuntime) {
      const note = `${runtime} skipped: not registered with this Docker engine (it has ${Object.keys(engine.names).join(', ')})`;
      console.log(`\n${note}`);
      skipped.push(note);
      continue;
    }
    console.log(`\n${runtime} (engine runtime ${engineRuntime})`);
    const measures: RuntimeResult['measures'] = {};
    const keep = (m: Measure, samples: number[]) => {
      const s = (measures[m] = { ...stats(samples), samples_ms: samples.map((x) => Math.round(x * 1000) / 1000) });
      // As it comes, so that a run cut short still says what it measured.
      console.log(`    ${MEASURE_LABEL[m]}: p50 ${s.p50} ms, p95 ${s.p95} ms, p99 ${s.p99} ms`);
    };

    // a) Warden create-to-ready, each agent force-stopped and gone before the next.
    const creates: number[] = [];
    for (let i = -CREATE_WARMUP; i < N; i++) {
      const id = nextAgentId(runtime);
      const ms = await wardenCreateToReady(api, runtime, id);
      if (i >= 0) creates.push(ms);
      await stopAgent(api, client, id);
      progress('Warden create-to-ready', i + 1 < 0 ? 0 : i + 1, N);
    }
    keep('warden_create_to_ready', creates);

    // a') The same with the warm pool: each create takes the idle member of its profile (checked),
    // and the next waits, untimed, until the pool has refilled.
    const warmCreates: number[] = [];
    for (let i = -CREATE_WARMUP; i < N; i++) {
      await poolRefilled(w.pool!);
      const id = nextAgentId(runtime);
      const ms = await wardenCreateToReady(api, runtime, id, { cpuCores: WARM_CPU_CORES });
      const labels = (await docker.getContainer(containerName(id)).inspect()).Config.Labels ?? {};
      if (!labels[LABELS.pool]) throw new Error(`agent ${id} did not take a warm pool member: its sandbox was created`);
      if (i >= 0) warmCreates.push(ms);
      await stopAgent(api, client, id);
      progress('Warden warm create-to-ready', i + 1 < 0 ? 0 : i + 1, N);
    }
    keep('warden_warm_create_to_ready', warmCreates);

    // b) A low-risk action end to end (validation, screen, policy, action workflow, audit entries,
    // journaled command, result), and from its history the command's round trip through Temporal
    // (commands run only as actions: the agent has no door of its own for them).
    {
      const id = nextAgentId(runtime);
      await wardenCreateToReady(api, runtime, id);
      for (let i = 0; i < EXEC_WARMUP; i++) await wardenAction(api, id);
      const actions: number[] = [];
      const execs: number[] = [];
      for (let i = 0; i < M; i++) {
        const { ms, actionId } = await wardenAction(api, id);
        actions.push(ms);
        execs.push(await execRoundTrip(client, actionId));
        progress('Warden action', i + 1, M);
      }
      keep('warden_action', actions);
      keep('warden_exec', execs);
      await stopAgent(api, client, id);
    }

    // c) Raw baseline: the same container via dockerode, then the same command without Temporal.
    const rawCreates: number[] = [];
    for (let i = -CREATE_WARMUP; i < N; i++) {
      const name = nextRawName();
      const ms = await rawCreateStart(image, runtime, engineRuntime, name);
      if (i >= 0) rawCreates.push(ms);
      await removeContainer(name);
      await waitGone(name);
      progress('raw create+start', i + 1 < 0 ? 0 : i + 1, N);
    }
    keep('raw_create_start', rawCreates);
    {
      const name = nextRawName();
      await rawCreateStart(image, runtime, engineRuntime, name);
      const container = docker.getContainer(name);
      const skillCommand = prepareCommand('filesystem', 'info', {});
      let seq = 0;
      const actionId = () => `bench-${RUN_ID}-${seq++}`;
      const journaled = () => actionExec(actionId(), skillCommand);
      const timed = async (label: string, m: Measure, once: () => Promise<number>) => {
        for (let i = 0; i < EXEC_WARMUP; i++) await once();
        const samples: number[] = [];
        for (let i = 0; i < M; i++) {
          samples.push(await once());
          progress(label, i + 1, M);
        }
        keep(m, samples);
      };
      const executor = await attachExecutor(container);
      // As the sandbox worker runs an action: the skill's own argv, keyed by a fresh action id.
      const { max_output_bytes } = journaled();
      await timed('raw executor run', 'raw_executor', async () => {
        const started = performance.now();
        const res = await executor.run({
          id: `action:${actionId()}`,
          keep_id: true,
          argv: skillCommand.argv,
          env: EXECUTOR_ENV,
          cwd: WORKSPACE,
          uid: execUid(),
          gid: SANDBOX_GID,
          timeout_ms: EXEC_TIMEOUT_MS,
          max_output_bytes,
        });
        const elapsed = performance.now() - started;
        if (res.exit_code !== 0) throw new Error(`raw executor run exited ${res.exit_code}: ${res.stderr.toString('utf8')}`);
        return elapsed;
      });
      executor.close();
      const uid = execUid();
      await timed('raw docker exec (journaled)', 'raw_exec_journaled', () => rawExec(container, uid, journaled().command));
      await timed('raw docker exec (filesystem info)', 'raw_exec_plain', () => rawExec(container, uid, skillCommand.argv));
      await timed('raw docker exec (true)', 'raw_exec_true', () => rawExec(container, uid, ['true']));
      await removeContainer(name);
      await waitGone(name);
    }

    // d) Idle agents: memory per agent against raw containers, and how many this machine holds.
    const inBatches = async <T>(items: T[], fn: (item: T) => Promise<void>) => {
      for (let i = 0; i < items.length; i += 10) await Promise.all(items.slice(i, i + 10).map(fn));
    };
    const idleBench: IdleBench = {
      docker,
      createAgent: async () => {
        const id = nextAgentId(runtime);
        // Untimed, and up to ten at once: polling every 10 ms would take the cores from the creates.
        // A quarter core each, so that the ramp's agents fit the host's admission (cores x
        // WARDEN_CPU_OVERCOMMIT); an idle agent uses none.
        await wardenCreateToReady(api, runtime, id, { pollMs: 100, cpuCores: 0.25 });
        return id;
      },
      stopAgents: (ids) => inBatches(ids, (id) => stopAgent(api, client, id)),
      action: async (id) => (await wardenAction(api, id)).ms,
      createRaw: async () => {
        const name = nextRawName();
        await rawCreateStart(image, runtime, engineRuntime, name);
        return name;
      },
      removeRaw: (names) => inBatches(names, async (name) => (await removeContainer(name), await waitGone(name))),
    };
    const memory = await memoryPerIdleAgent(idleBench, IDLE_N, console.log);
    const ramp = await rampIdleAgents(idleBench, { step: IDLE_STEP, cap: IDLE_CAP[runtime], actions: RAMP_EXECS }, console.log);

    const diff = (a: Measure, b: Measure) => Math.round((measures[a]!.p50 - measures[b]!.p50) * 100) / 100;
    const ratio = (a: Measure, b: Measure) => Math.round((measures[a]!.p50 / measures[b]!.p50) * 100) / 100;
    results.push({
      runtime,
      engine_runtime: engineRuntime,
      measures,
      overhead_p50_ms: {
        create: diff('warden_create_to_ready', 'raw_create_start'),
        warm_create: diff('warden_warm_create_to_ready', 'raw_create_start'),
        exec: diff('warden_exec', 'raw_exec_plain'),
        action: diff('warden_action', 'raw_exec_plain'),
      },
      ratios_p50: {
        create_to_raw: ratio('warden_create_to_ready', 'raw_create_start'),
        warm_create_to_raw: ratio('warden_warm_create_to_ready', 'raw_create_start'),
        exec_to_raw_exec: ratio('warden_exec', 'raw_exec_plain'),
        action_to_raw_exec: ratio('warden_action', 'raw_exec_plain'),
      },
      idle: { memory, ramp },
    });
  }

  printTable(results, skipped);

  const outDir = join(PROJECT_ROOT, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = join(outDir, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  const report = {
    date: startedAt.toISOString(),
    run_id: RUN_ID,
    n_agents: N,
    m_actions_and_execs: M,
    idle_agents: IDLE_N,
    idle_step: IDLE_STEP,
    idle_cap: IDLE_CAP,
    ramp_actions: RAMP_EXECS,
    exec_warmup: EXEC_WARMUP,
    create_warmup: CREATE_WARMUP,
    poll_interval_ms: POLL_MS,
    image,
    machine,
    notes: [
      'Warden create-to-ready: POST /api/agents over HTTP, then GET /api/agents/{id} every 10 ms until running.',
      `Warden warm create-to-ready: the same, for agents of the warm pool's profile (cpu_cores ${WARM_CPU_CORES}, pool size ${WARM_POOL_SIZE}); each took an idle member (checked by its container's pool label), and waited untimed for the pool to refill before it.`,
      'Warden action: POST /api/actions with wait_seconds for a low-risk filesystem info, over HTTP, until its result.',
      "Warden command via Temporal: each of those actions' execInSandbox activity, scheduled to completed, from its workflow history (server timestamps, ms); the sandbox worker runs the action's own argv through the sandbox executor, keyed by the action id.",
      'raw create+start: dockerode createContainer (createSandbox options, sandboxHostConfig) + start + the workspace mode.',
      "raw executor run: the skill's argv through the sandbox executor as an action's run (keep_id, a fresh action id each), attached straight from this process (no Temporal).",
      "raw docker exec: dockerode exec create, start (hijacked), read to the end, inspect; of the skill's argv, which the action runs (the baseline of the overheads and ratios), of that argv under the shell execution journal (a fresh action id each), and of true.",
      'idle memory, host: MemAvailable (median of 5 samples after 3 s of settling) before and after n idle agents, divided by n; it includes the workers and API in this process and the Temporal dev server.',
      'idle memory, cgroup: memory.usage_in_bytes (v1) or memory.current (v2) minus inactive file pages, mean per container; rss: VmRSS summed over the processes in the cgroup (runsc: sandbox and gofer), shared pages counted per process.',
      'idle ramp: agents added in steps (created 10 at a time); p99 of the low-risk action (REST), round robin over the agents; stops at the first step over 2x the single-agent p99 or at the cap.',
      ...skipped,
    ],
    results,
  };
  writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  console.log(`\nJSON: ${file}`);
}

let exitCode = 0;
try {
  await main();
} catch (err) {
  if (!aborting) {
    console.error(`bench failed: ${(err as Error).stack ?? err}`);
    exitCode = 1;
  }
}
if (!aborting) {
  await cleanup();
  process.exit(exitCode);
}
