/**
 * Where the time of one low-risk action goes: runs BENCH_ACTIONS (default 30) filesystem `info`
 * actions through POST /api/actions with wait_seconds on one agent (BENCH_RUNTIME: runc, the
 * default, or runsc; the image WARDEN_SANDBOX_IMAGE or the default), then reads each action
 * workflow's history and prints the p50 of the time between its key events (local activity
 * markers, activities, signals to the agent, the exec, completion) beside the REST round trip.
 * Everything runs in this process against a Temporal dev server of its own, as test/bench/bench.ts
 * does; the agent and its container are removed at the end.
 *   npx tsx test/bench/action-path.ts
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import proto from '@temporalio/proto';
import { createApp } from '../../api/app.js';
import { ConfigSchema } from '../../domain/config.js';
import { createDataConverter, loadPayloadCodec } from '../../domain/data-converter.js';
import { Keyring } from '../../domain/keyring.js';
import { loadPolicy } from '../../domain/policy.js';
import { startDevServer } from '../../scripts/dev-server.js';
import { SKILLS } from '../../skills/index.js';
import { AuditStore } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { bundleWorkflows } from '../../workers/bundle.js';
import { createWorkers } from '../../workers/create-workers.js';
import { oneOf, positiveInt } from './env.js';
import { freePort, serveApi } from './http-api.js';
import { eventMillis as millis, type HistoryEvent } from './history.js';

const { EventType } = proto.temporal.api.enums.v1;

const ACTIONS = positiveInt('BENCH_ACTIONS', 30);
const RUNTIME = oneOf('BENCH_RUNTIME', ['runc', 'runsc'] as const);
const WARMUP = 3;
const HOST_ID = 'bench-path';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const p50 = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const rank = 0.5 * (s.length - 1);
  return s[Math.floor(rank)] + (s[Math.ceil(rank)] - s[Math.floor(rank)]) * (rank - Math.floor(rank));
};

/**
 * A name for each event worth timing: local activity markers by their activity type, activities by
 * theirs. A local activity runs inside a workflow task, and its marker carries the time the task
 * completed: the gap before a marker is the workflow task that ran it.
 */
function label(e: HistoryEvent, activityTypes: Map<string, string>): string | null {
  const type = EventType[e.eventType ?? 0] ?? String(e.eventType);
  const attrs = e.activityTaskScheduledEventAttributes;
  if (attrs) {
    activityTypes.set(String(e.eventId), attrs.activityType!.name!);
    return `${attrs.activityType!.name} scheduled`;
  }
  const ref = e.activityTaskStartedEventAttributes?.scheduledEventId ?? e.activityTaskCompletedEventAttributes?.scheduledEventId;
  if (ref !== undefined && ref !== null)
    return `${activityTypes.get(String(ref))} ${e.activityTaskStartedEventAttributes ? 'started' : 'completed'}`;
  const marker = e.markerRecordedEventAttributes;
  if (marker) {
    if (marker.markerName !== 'core_local_activity') return null;
    const data = marker.details?.data?.payloads?.[0]?.data;
    const activityType = data ? (JSON.parse(Buffer.from(data).toString('utf8')).activity_type as string) : 'local activity';
    return `${activityType} (local)`;
  }
  // Workflow tasks and patch markers show in the gaps between the rest; whether an update is
  // accepted in the first task or one of its own depends on when it reaches the server.
  if (/UPSERT_WORKFLOW_SEARCH_ATTRIBUTES|WORKFLOW_TASK|UPDATE_ACCEPTED/.test(type)) return null;
  return type
    .replace(/^EVENT_TYPE_/, '')
    .toLowerCase()
    .replaceAll('_', ' ');
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(os.tmpdir(), 'warden-action-path-'));
  const docker = new Docker();
  const noop = () => undefined;
  Runtime.install({ logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: (m) => console.error(m) } });
  const server = await startDevServer({
    dbFile: join(tmp, 'temporal.db'),
    port: await freePort(),
    uiPort: 0,
    ui: false,
    logFile: join(tmp, 'temporal.log'),
  });
  const keys = KeyStore.open(':memory:');
  const audit = AuditStore.open(join(tmp, 'audit.db'), { keyring: Keyring.load({ dataDir: tmp }), isKnownKeyId: (id) => keys.has(id) });
  const payloadCodec = loadPayloadCodec(ConfigSchema.parse({ dataDir: tmp }), { warn: () => undefined });
  const workers = await createWorkers({
    temporal: { address: server.address },
    namespace: 'default',
    dockerHostId: HOST_ID,
    roles: ['control', 'sandbox'],
    payloadCodec,
    policy: loadPolicy(SKILLS),
    audit,
    docker,
    workflowBundle: await bundleWorkflows(),
    shutdownGraceTime: '2 seconds',
  });
  const running = workers.run();
  const connection = await Connection.connect({ address: server.address });
  const client = new Client({ connection, dataConverter: createDataConverter(payloadCodec) });
  const config = ConfigSchema.parse({
    temporalAddress: server.address,
    dockerHostId: HOST_ID,
    logLevel: 'silent',
    rateLimits: 'off',
    requireSandbox: false,
    ...(process.env.WARDEN_SANDBOX_IMAGE ? { sandboxImage: process.env.WARDEN_SANDBOX_IMAGE } : {}),
  });
  const { key } = await keys.create('bench', 'admin', null);
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
  const http = await serveApi(app, key);
  const { api } = http;
  const agentId = `bench-path-${randomBytes(3).toString('hex')}`;
  try {
    const created = await api('POST', '/api/agents', { skill_id: 'filesystem', runtime: RUNTIME, agent_id: agentId });
    if (created.status !== 201) throw new Error(`POST /api/agents: ${created.status} ${JSON.stringify(created.body)}`);
    while ((await api('GET', `/api/agents/${agentId}`)).body?.status !== 'running') await sleep(20);

    const rest: number[] = [];
    const segments = new Map<string, number[]>();
    for (let i = -WARMUP; i < ACTIONS; i++) {
      const started = performance.now();
      const res = await api('POST', '/api/actions', {
        action_type: 'skill_execution',
        skill_id: 'filesystem',
        operation: 'info',
        agent_id: agentId,
        parameters: {},
        wait_seconds: 10,
      });
      const elapsed = performance.now() - started;
      if (res.body?.status !== 'completed') throw new Error(`action ended ${res.status} ${JSON.stringify(res.body)}`);
      if (i < 0) continue;
      rest.push(elapsed);
      const handle = client.workflow.getHandle(res.body.id);
      await handle.result();
      const events = (await handle.fetchHistory()).events ?? [];
      const types = new Map<string, string>();
      let previous: { at: number; name: string } | null = null;
      const seen = new Map<string, number>();
      for (const e of events) {
        const name = label(e, types);
        if (!name) continue;
        // Repeated steps (the audit entries) are told apart by their order.
        const n = (seen.get(name) ?? 0) + 1;
        seen.set(name, n);
        const numbered = n > 1 ? `${name} #${n}` : name;
        if (previous) {
          const key = `${previous.name} -> ${numbered}`;
          segments.set(key, [...(segments.get(key) ?? []), millis(e) - previous.at]);
        }
        previous = { at: millis(e), name: numbered };
      }
      const tasks = events.filter((e) => e.workflowTaskCompletedEventAttributes).length;
      segments.set('workflow tasks of the action (a count)', [...(segments.get('workflow tasks of the action (a count)') ?? []), tasks]);
      const first = millis(events[0]);
      const last = millis(events[events.length - 1]);
      segments.set('TOTAL workflow started -> completed', [...(segments.get('TOTAL workflow started -> completed') ?? []), last - first]);
    }
    console.log(`Action path: ${ACTIONS} low-risk actions (filesystem info, ${RUNTIME}), ${os.cpus().length} cores, p50 in ms`);
    for (const [name, xs] of segments)
      console.log(`  ${p50(xs).toFixed(0).padStart(5)}  ${name}${xs.length < ACTIONS ? ` (n=${xs.length})` : ''}`);
    console.log(`  ${p50(rest).toFixed(0).padStart(5)}  REST round trip (POST /api/actions, wait_seconds)`);
  } finally {
    await api('POST', `/api/agents/${agentId}/stop`, { force: true }).catch(() => undefined);
    await client.workflow
      .getHandle(agentId)
      .result()
      .catch(() => undefined);
    http.close();
    workers.shutdown();
    await running.catch(() => undefined);
    await connection.close();
    await server.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
