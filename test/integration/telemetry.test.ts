/**
 * Temporal SDK metrics and OpenTelemetry tracing, each from a real worker process started with
 * its setting: the SDK's Prometheus endpoint serves temporal_ metrics for the worker's task
 * queue, and an agent's life reaches a local OTLP/HTTP collector as one trace, from the client's
 * workflow start through the workflow to its activities.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { createAgentService } from '../../api/agents/service.js';
import { clientTracingInterceptors, startTracing } from '../../telemetry/tracing.js';
import { freePort } from '../support/global-setup.js';
import { containersOf, docker, testConfig, testDataConverter, TEST_MASTER_KEY, uniqueId, waitFor } from '../support/helpers.js';

// @temporalio/proto is CommonJS: Node's ESM loader sees only its default export.
const { temporal } = proto;
const children: ChildProcess[] = [];

/** A worker process (workers/main.ts) with these settings. */
function startWorker(env: Record<string, string>): ChildProcess {
  const child = spawn('npx', ['tsx', 'workers/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      WARDEN_DATA_DIR: mkdtempSync(join(tmpdir(), 'warden-telemetry-')),
      WARDEN_LOG_LEVEL: 'warn',
      WARDEN_MASTER_KEY: TEST_MASTER_KEY, // the same keys as the test's client
      ...env,
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true, // its own process group: the signal reaches tsx and node alike
  });
  children.push(child);
  return child;
}

/** SIGTERM (in-flight work finishes, spans are flushed), then waits for the process to exit. */
async function stopWorker(child: ChildProcess) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  process.kill(-child.pid!, 'SIGTERM');
  await exited;
}

afterAll(async () => {
  for (const child of children) await stopWorker(child).catch(() => undefined);
});

describe('WARDEN_SDK_METRICS_ADDRESS', () => {
  it("the worker's SDK serves temporal_ metrics for its task queue", async () => {
    const port = await freePort();
    const host = uniqueId('sdkmetrics');
    const worker = startWorker({
      WARDEN_WORKER_ROLES: 'sandbox',
      WARDEN_DOCKER_HOST_ID: host,
      WARDEN_SDK_METRICS_ADDRESS: `127.0.0.1:${port}`,
    });
    const text = await waitFor(
      'the SDK metrics endpoint',
      async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`);
        const body = await res.text();
        return res.status === 200 && body.includes(`task_queue="warden-sandbox@${host}"`) ? body : undefined;
      },
      90_000,
    );
    expect(text).toMatch(/^temporal_\w+/m);
    expect(text).toMatch(/^# TYPE temporal_\w+ (counter|gauge|histogram)/m);
    await stopWorker(worker);
  });
});

describe('WARDEN_OTEL_ENDPOINT', () => {
  interface Span {
    name: string;
    traceId: string;
    service: string;
  }
  const spans: Span[] = [];
  let collector: Server;
  let endpoint: string;

  beforeAll(async () => {
    // A tiny OTLP/HTTP collector: the exporter POSTs JSON to /v1/traces.
    collector = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        if (req.method === 'POST' && req.url === '/v1/traces') {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          for (const rs of body.resourceSpans ?? []) {
            const service = rs.resource?.attributes?.find((a: any) => a.key === 'service.name')?.value?.stringValue;
            for (const ss of rs.scopeSpans ?? []) for (const s of ss.spans ?? []) spans.push({ name: s.name, traceId: s.traceId, service });
          }
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => collector.listen(0, '127.0.0.1', resolve));
    endpoint = `http://127.0.0.1:${(collector.address() as { port: number }).port}`;
  });
  afterAll(() => collector?.close());

  it("an agent's life is one trace from the client's start through the workflow to its activities", async () => {
    const host = uniqueId('traced');
    const worker = startWorker({ WARDEN_WORKER_ROLES: 'control,sandbox', WARDEN_DOCKER_HOST_ID: host, WARDEN_OTEL_ENDPOINT: endpoint });
    // The API side: a client with the tracing interceptors, as api/main.ts builds it.
    const tracing = startTracing(endpoint, 'warden-api');
    const connection = await Connection.connect({ address: inject('temporalAddress') });
    const client = new Client({ connection, dataConverter: testDataConverter(), interceptors: clientTracingInterceptors() });
    const agents = createAgentService(client, testConfig({ dockerHostId: host }), { docker });
    const id = uniqueId('traced');
    try {
      // Ready once its sandbox worker polls (the control worker, bundling its workflows first, starts with it).
      await waitFor(
        'the worker to poll',
        async () => {
          const res = await client.workflowService.describeTaskQueue({
            namespace: 'default',
            taskQueue: { name: `warden-sandbox@${host}`, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
            taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
          });
          return (res.pollers?.length ?? 0) > 0;
        },
        120_000,
      );
      await agents.createAgent(
        { skill_id: 'shell', agent_id: id, runtime: 'runc' },
        { key_id: 'telemetry-test', name: 'telemetry test', role: 'admin' },
      );
      await waitFor('the agent to run', async () => (await agents.getAgent(id).catch(() => null))?.status === 'running', 90_000);
      await agents.signalAgent(id, 'stop', true);
      await waitFor('the agent to stop', async () => (await agents.getAgent(id)).status === 'stopped', 60_000);
    } finally {
      await tracing.shutdown();
      await connection.close();
    }
    expect(await containersOf(id)).toEqual([]);

    const start = await waitFor('the client span', async () => spans.find((s) => s.name === 'StartWorkflow:agentWorkflow'));
    expect(start.service).toBe('warden-api');
    const trace = await waitFor(
      'the workflow and activity spans',
      async () => {
        const inTrace = spans.filter((s) => s.traceId === start.traceId);
        const names = new Set(inTrace.map((s) => s.name));
        return names.has('RunWorkflow:agentWorkflow') && names.has('RunActivity:createSandbox') && names.has('RunActivity:removeSandbox')
          ? inTrace
          : undefined;
      },
      30_000,
    ).catch((err) => {
      throw new Error(
        `${err.message}; spans of the trace: ${spans
          .filter((s) => s.traceId === start.traceId)
          .map((s) => `${s.service}:${s.name}`)
          .join(', ')}; all: ${spans.map((s) => `${s.service}:${s.name}:${s.traceId.slice(0, 6)}`).join(', ')}`,
      );
    });
    await stopWorker(worker);
    const services = new Set(trace.map((s) => s.service));
    expect(services).toEqual(new Set(['warden-api', 'warden-worker']));
    expect(trace.find((s) => s.name === 'RunActivity:createSandbox')!.service).toBe('warden-worker');
  });
});
