/** Health, readiness, system status and sandbox info. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import proto from '@temporalio/proto';
import { AGENT_STATUSES, SandboxRuntimeSchema } from '../domain/agent.js';
import { chooseRuntime, detectRuntimes, SandboxUnavailableError } from '../activities/docker-engine.js';
import { CONTROL_TASK_QUEUE, sandboxTaskQueue } from '../workflows/definitions.js';
import type { AgentService } from './agent-service.js';
import type { AppDeps } from './app.js';
import { validationHook, type AppEnv } from './openapi.js';

// @temporalio/proto is CommonJS: Node's ESM loader sees only its default export.
const { temporal } = proto;

const ComponentSchema = z.object({ ok: z.boolean(), latency_ms: z.number(), detail: z.string().nullable() });
type Component = z.infer<typeof ComponentSchema>;

async function probe(fn: () => Promise<string | null>): Promise<Component> {
  const started = performance.now();
  try {
    const detail = await fn();
    return { ok: true, latency_ms: Math.round(performance.now() - started), detail };
  } catch (err) {
    return { ok: false, latency_ms: Math.round(performance.now() - started), detail: (err as Error).message ?? String(err) };
  }
}

const ReadySchema = z.object({
  ready: z.boolean(),
  components: z.record(z.string(), ComponentSchema),
});

export function systemRouter(deps: AppDeps & { agents: AgentService }) {
  const { client, docker, config, agents } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const sandboxQueue = sandboxTaskQueue(config.dockerHostId);

  const pollers = async (queue: string, type: proto.temporal.api.enums.v1.TaskQueueType) => {
    const res = await client.workflowService.describeTaskQueue({
      namespace: config.temporalNamespace,
      taskQueue: { name: queue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
      taskQueueType: type,
    });
    const n = res.pollers?.length ?? 0;
    if (n === 0) throw new Error(`no worker polls task queue ${queue}`);
    return `${n} poller(s)`;
  };

  /** The components the API needs, probed concurrently. */
  const components = async () => {
    const [temporalServer, dockerEngine, controlWorker, sandboxWorker] = await Promise.all([
      probe(async () => {
        const info = await client.workflowService.getSystemInfo({});
        return `server ${info.serverVersion}`;
      }),
      probe(async () => {
        const v = await docker.version();
        return `engine ${v.Version}`;
      }),
      probe(() => pollers(CONTROL_TASK_QUEUE, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)),
      probe(() => pollers(sandboxQueue, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)),
    ]);
    return { temporal: temporalServer, docker: dockerEngine, control_worker: controlWorker, sandbox_worker: sandboxWorker };
  };

  app.get('/healthz', (c) => c.json({ ok: true }));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      security: [],
      summary: 'Ready when Temporal, the Docker engine and a worker for each task queue answer',
      responses: {
        200: { description: 'Ready', content: { 'application/json': { schema: ReadySchema } } },
        503: { description: 'Not ready; components say which', content: { 'application/json': { schema: ReadySchema } } },
      },
    }),
    async (c) => {
      const parts = await components();
      const ready = Object.values(parts).every((p) => p.ok);
      return c.json({ ready, components: parts }, ready ? 200 : 503);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/status',
      summary: 'System status: each component with its latency, and agents by status',
      responses: {
        200: {
          description: 'Status',
          content: {
            'application/json': {
              schema: z.object({
                components: z.record(z.string(), ComponentSchema),
                agents: z.record(z.string(), z.number()).nullable(),
                max_agents: z.number(),
              }),
            },
          },
        },
      },
    }),
    async (c) => {
      const parts = await components();
      let counts: Record<string, number> | null = null;
      if (parts.temporal.ok) {
        const values = await Promise.all(AGENT_STATUSES.map((s) => agents.countAgents(s)));
        counts = Object.fromEntries(AGENT_STATUSES.map((s, i) => [s, values[i]]));
      }
      return c.json({ components: parts, agents: counts, max_agents: config.maxAgents }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/sandbox',
      summary: 'Sandbox info: runtime, availability, capacity and the running agents',
      responses: {
        200: {
          description: 'Sandbox info',
          content: {
            'application/json': {
              schema: z.object({
                host: z.string(),
                available: z.boolean(),
                runtime: SandboxRuntimeSchema.nullable(),
                runtimes: z.array(SandboxRuntimeSchema),
                warning: z.string().nullable(),
                require_sandbox: z.boolean(),
                max_agents: z.number(),
                current_agents: z.number(),
                agents: z.array(z.object({ id: z.string(), status: z.string().nullable(), sandbox_runtime: z.string().nullable() })),
              }),
            },
          },
        },
      },
    }),
    async (c) => {
      let runtime = null;
      let runtimes: Array<z.infer<typeof SandboxRuntimeSchema>> = [];
      let warning: string | null = null;
      let available = true;
      try {
        const engine = await detectRuntimes(docker);
        runtimes = Object.keys(engine.names) as typeof runtimes;
        const choice = chooseRuntime(engine, config.sandboxRuntime, { requireSandbox: config.requireSandbox, networkEnabled: false });
        runtime = choice.runtime;
        warning = choice.warning;
      } catch (err) {
        available = false;
        warning = err instanceof SandboxUnavailableError ? err.message : `Docker engine unreachable: ${(err as Error).message}`;
      }
      const [current, active] = await Promise.all([
        agents.admittedAgents(),
        agents.listAgents({ host: config.dockerHostId, limit: 1000 }),
      ]);
      return c.json(
        {
          host: config.dockerHostId,
          available,
          runtime,
          runtimes,
          warning,
          require_sandbox: config.requireSandbox,
          max_agents: config.maxAgents,
          current_agents: current,
          agents: active
            .filter((a) => a.workflow_status === 'RUNNING')
            .map((a) => ({ id: a.id, status: a.status, sandbox_runtime: a.sandbox_runtime })),
        },
        200,
      );
    },
  );

  return app;
}
