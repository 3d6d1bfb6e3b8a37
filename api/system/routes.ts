/** Health, readiness, system status and sandbox info. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import proto from '@temporalio/proto';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { AGENT_STATUSES, SandboxRuntimeSchema } from '../../domain/agent.js';
import { chooseRuntime, engineRuntimes, SandboxUnavailableError } from '../../sandbox/docker-engine.js';
import { CONTROL_TASK_QUEUE, sandboxTaskQueue, SearchAttributes } from '../../workflows/definitions.js';
import type { ChannelStatus } from '../../channels/service.js';
import type { Config } from '../../domain/config.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { EMBEDDED_PROVIDER } from '../../domain/model-providers.js';
import type { ProviderRegistry } from '../../llm/registry.js';
import { placementHosts, type AgentService } from '../agents/service.js';
import { withTimeout } from '../deadlines.js';
import { idlePoolMembers } from '../../sandbox/pool.js';
import { parsePoolProfiles, poolReservation } from '../../domain/sandbox-pool.js';
import { validationHook, type AppEnv } from '../openapi.js';

/** How many times each key occurs. */
const countBy = (keys: string[]): Record<string, number> => {
  const counts: Record<string, number> = {};
  for (const k of keys) counts[k] = (counts[k] ?? 0) + 1;
  return counts;
};

// @temporalio/proto is CommonJS: Node's ESM loader sees only its default export.
const { temporal } = proto;

/** No probe waits longer than this: a dead component must not hang /readyz or /api/status. */
const PROBE_TIMEOUT_MS = 3_000;
/** A worker's long poll lasts about 60 s (measured: a live poller's last access is never older). */
const POLLER_LIVE_SECONDS = 90;
const MiB = 1024 * 1024;

/** A protobuf Timestamp (seconds may be a Long) in ms since the epoch; 0 when absent. */
function tsToMs(t: { seconds?: { toNumber(): number } | number | null; nanos?: number | null } | null | undefined): number {
  if (!t) return 0;
  const seconds = typeof t.seconds === 'number' ? t.seconds : (t.seconds?.toNumber() ?? 0);
  return seconds * 1000 + (t.nanos ?? 0) / 1e6;
}

const ComponentSchema = z.object({
  ok: z.boolean().describe('false when the component is down'),
  state: z.enum(['up', 'degraded', 'down']),
  latency_ms: z.number(),
  detail: z.string().nullable(),
});
type Component = z.infer<typeof ComponentSchema>;

/** What a probe found: a detail, and `degraded` when the component works but not as it should. */
type Finding = string | { detail: string; degraded: true };

async function probe(what: string, fn: () => Promise<Finding>): Promise<Component> {
  const started = performance.now();
  const latency = () => Math.round(performance.now() - started);
  try {
    const found = await withTimeout(fn(), PROBE_TIMEOUT_MS, what);
    if (typeof found === 'string') return { ok: true, state: 'up', latency_ms: latency(), detail: found };
    return { ok: true, state: 'degraded', latency_ms: latency(), detail: found.detail };
  } catch (err) {
    return { ok: false, state: 'down', latency_ms: latency(), detail: (err as Error).message ?? String(err) };
  }
}

const ReadySchema = z.object({
  ready: z.boolean(),
  components: z.record(z.string(), ComponentSchema),
});

const UsedFreeSchema = z.object({ used: z.number(), total: z.number().nullable(), free: z.number().nullable() });

/** `used` of `total`; null totals where the engine did not say. */
const usedFree = (used: number, total: number | null) => ({ used, total, free: total === null ? null : Math.max(0, total - used) });

const StatusCountsSchema = z.object(
  Object.fromEntries(AGENT_STATUSES.map((s) => [s, z.number()])) as Record<(typeof AGENT_STATUSES)[number], z.ZodNumber>,
);

export interface SystemDeps {
  client: Client;
  docker: Docker;
  config: Config;
  audit: AuditStore;
  agents: AgentService;
  /** The chat channels' state: one that cannot connect shows as degraded, never down. */
  channels: () => ChannelStatus[];
  /** The model providers: the embedded default model is a component when it is one of them. */
  providers: ProviderRegistry;
}

/** What the system pages show (the status routes here, the console's System page): read, never changed. */
export function createSystemStatus(deps: SystemDeps) {
  const { client, docker, config, agents, audit } = deps;
  const sandboxQueue = sandboxTaskQueue(config.dockerHostId);
  // The configuration is read once: what the pool reserves does not change while the API runs.
  const pool = poolReservation(config.sandboxPoolSize, parsePoolProfiles(config.sandboxPoolProfiles));

  const deadline = <T>(fn: () => Promise<T>) => client.withDeadline(Date.now() + PROBE_TIMEOUT_MS, fn);

  const pollers = async (queue: string, type: proto.temporal.api.enums.v1.TaskQueueType) => {
    const res = await deadline(() =>
      client.workflowService.describeTaskQueue({
        namespace: config.temporalNamespace,
        taskQueue: { name: queue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
        taskQueueType: type,
      }),
    );
    const pollers = res.pollers ?? [];
    if (pollers.length === 0) throw new Error(`no worker polls task queue ${queue}`);
    // A live worker polls again at least every minute; the server keeps listing a dead one for minutes.
    const ages = pollers.map((p) => (Date.now() - tsToMs(p.lastAccessTime)) / 1000);
    const live = ages.filter((age) => age <= POLLER_LIVE_SECONDS).length;
    if (live === 0) throw new Error(`no worker has polled task queue ${queue} for ${Math.round(Math.min(...ages))} s`);
    return `${live} poller(s)`;
  };

  /** The components the API needs, probed concurrently, each within PROBE_TIMEOUT_MS. */
  const components = async () => {
    const embeddedModel = probe('the embedded model', async () => {
      const entry = deps.providers.get(EMBEDDED_PROVIDER);
      if (!entry) return 'not in use: another model provider is configured, or none';
      const health = await deps.providers.health(EMBEDDED_PROVIDER);
      // Degraded, never down: without a model, agents, actions and approvals all still work, so
      // the API stays ready (conversations say their model call failed).
      if (health?.status !== 'up') return { detail: `not answering: ${health?.error ?? 'down'}`, degraded: true };
      return `${entry.config.default_model} at ${entry.config.base_url}`;
    });
    const [temporalServer, dockerEngine, runtimes, controlWorker, sandboxWorker, auditStore, chatChannels] = await Promise.all([
      probe('Temporal', async () => {
        const info = await deadline(() => client.workflowService.getSystemInfo({}));
        return `server ${info.serverVersion}`;
      }),
      probe('the Docker engine', async () => {
        const v = await docker.version();
        return `engine ${v.Version}`;
      }),
      // Down when no runtime can run an agent here (require_sandbox without gVisor or Kata); degraded under runc.
      probe('the Docker engine', async () => {
        const engine = engineRuntimes(await docker.info());
        const choice = chooseRuntime(engine, config.sandboxRuntime, { requireSandbox: config.requireSandbox, networkEnabled: false });
        const detail = `${Object.keys(engine.names).join(', ')}; agents run under ${choice.runtime}`;
        return choice.warning ? { detail: `${detail}: ${choice.warning}`, degraded: true } : detail;
      }),
      probe('Temporal', () => pollers(CONTROL_TASK_QUEUE, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)),
      probe('Temporal', () => pollers(sandboxQueue, temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)),
      probe('the audit store', async () => `${(await audit.head()).seq} entries`),
      probe('the chat channels', async () => {
        const channels = deps.channels();
        if (channels.length === 0) return 'none configured';
        const down = channels.filter((c) => !c.connected);
        const detail = channels.map(
          (c) => `${c.name}: ${c.connected ? 'connected' : `not connected (${c.error ?? 'connecting'}); retrying`}`,
        );
        return down.length ? { detail: detail.join('; '), degraded: true } : detail.join('; ');
      }),
    ]);
    return {
      temporal: temporalServer,
      docker: dockerEngine,
      runtimes,
      control_worker: controlWorker,
      sandbox_worker: sandboxWorker,
      audit_store: auditStore,
      channels: chatChannels,
      embedded_model: await embeddedModel,
    };
  };

  /** Each component, agents by status, actions pending, the cap on agents. */
  async function systemStatus() {
    const parts = await components();
    let counts: z.infer<typeof StatusCountsSchema> | null = null;
    let pending: number | null = null;
    if (parts.temporal.ok) {
      const pendingQuery = `WorkflowType = 'actionWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.actionStatus.name} = 'pending'`;
      const [values, pendingCount] = await Promise.all([
        Promise.all(AGENT_STATUSES.map((s) => agents.countAgents(s))),
        client.workflow.count(pendingQuery),
      ]);
      counts = Object.fromEntries(AGENT_STATUSES.map((s, i) => [s, values[i]])) as z.infer<typeof StatusCountsSchema>;
      pending = pendingCount.count;
    }
    return { components: parts, agents: counts, pending_actions: pending, max_agents: config.maxAgents };
  }

  /** This host's sandbox runtime, capacity and running agents. */
  async function sandboxInfo() {
    let runtime = null;
    let runtimes: Array<z.infer<typeof SandboxRuntimeSchema>> = [];
    let warning: string | null = null;
    let available = true;
    let engineCpus: number | null = null;
    let engineMemory: number | null = null;
    try {
      const info = await withTimeout(docker.info(), PROBE_TIMEOUT_MS, 'the Docker engine');
      engineCpus = info.NCPU ?? null;
      engineMemory = info.MemTotal ?? null;
      const engine = engineRuntimes(info);
      runtimes = Object.keys(engine.names) as typeof runtimes;
      const choice = chooseRuntime(engine, config.sandboxRuntime, { requireSandbox: config.requireSandbox, networkEnabled: false });
      runtime = choice.runtime;
      warning = choice.warning;
    } catch (err) {
      available = false;
      warning = err instanceof SandboxUnavailableError ? err.message : `Docker engine unreachable: ${(err as Error).message}`;
    }
    const [current, { active, reserved, statuses }, idle, hosts] = await Promise.all([
      agents.admittedAgents(),
      hostAgents(config.dockerHostId),
      withTimeout(idlePoolMembers(docker, config.dockerHostId), PROBE_TIMEOUT_MS, 'the Docker engine').then(
        (members) => countBy(members.filter((m) => m.state === 'running').map((m) => m.profile)),
        () => null,
      ),
      Promise.all(placementHosts(config).map(hostInfo)),
    ]);
    return {
      host: config.dockerHostId,
      available,
      runtime,
      runtimes,
      warning,
      require_sandbox: config.requireSandbox,
      max_agents: config.maxAgents,
      current_agents: current,
      agents: active,
      capacity: {
        agents: usedFree(current, config.maxAgents),
        ...reservedOf(reserved, engineCpus, engineMemory),
        admission: {
          cpu_cores: engineCpus === null ? null : engineCpus * config.cpuOvercommit,
          memory_bytes: engineMemory === null ? null : Math.floor((engineMemory / MiB) * config.memoryOvercommit) * MiB,
          cpu_overcommit: config.cpuOvercommit,
          memory_overcommit: config.memoryOvercommit,
        },
      },
      statuses,
      pool: {
        size: config.sandboxPoolSize,
        profiles: config.sandboxPoolProfiles,
        idle,
        reserved: { members: pool.members, cpu_cores: pool.cpu_cores, memory_bytes: pool.memory_mb * MiB },
      },
      hosts,
    };
  }

  /** A host's running agents, what their limits and the warm pool reserve, and its agents by status. */
  async function hostAgents(host: string) {
    const [listed, reserved, counts] = await Promise.all([
      agents.listAgents({ host, limit: 1000 }),
      agents.reservedResources(host),
      Promise.all(AGENT_STATUSES.map((s) => agents.countAgents(s, host))),
    ]);
    return {
      active: listed
        .filter((a) => a.workflow_status === 'RUNNING')
        .map((a) => ({ id: a.id, status: a.status, sandbox_runtime: a.sandbox_runtime })),
      reserved,
      statuses: Object.fromEntries(AGENT_STATUSES.map((s, i) => [s, counts[i]])) as z.infer<typeof StatusCountsSchema>,
    };
  }

  const reservedOf = (reserved: { cpu_cores: number; memory_bytes: number }, cpus: number | null, memory: number | null) => ({
    cpu_cores: usedFree(Math.round((reserved.cpu_cores + pool.cpu_cores) * 1000) / 1000, cpus),
    memory_bytes: usedFree(reserved.memory_bytes + pool.memory_mb * MiB, memory),
  });

  /** One host agents are placed on: its sandbox worker's liveness, its engine, what is reserved there and its agents. */
  async function hostInfo(host: string) {
    const worker = await probe('Temporal', () =>
      pollers(sandboxTaskQueue(host), temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY),
    );
    // Without a live worker the engine read would wait seconds for nobody: not asked.
    const [facts, { active, reserved, statuses }] = await Promise.all([
      worker.ok ? agents.engineFacts(host).catch((err: Error) => err) : new Error(`its sandbox worker is down: ${worker.detail}`),
      hostAgents(host),
    ]);
    const engine = facts instanceof Error ? null : facts;
    let choice: { runtime: z.infer<typeof SandboxRuntimeSchema> | null; warning: string | null };
    try {
      choice = engine
        ? chooseRuntime(engine.runtimes, config.sandboxRuntime, { requireSandbox: config.requireSandbox, networkEnabled: false })
        : { runtime: null, warning: `its engine was not read: ${(facts as Error).message}` };
    } catch (err) {
      choice = { runtime: null, warning: (err as Error).message };
    }
    return {
      host,
      sandbox_worker: worker,
      engine: {
        available: choice.runtime !== null,
        version: engine?.version ?? null,
        runtimes: (engine ? Object.keys(engine.runtimes.names) : []) as Array<z.infer<typeof SandboxRuntimeSchema>>,
        runtime: choice.runtime,
        warning: choice.warning,
      },
      capacity: reservedOf(reserved, engine?.cpu_cores ?? null, engine?.memory_bytes ?? null),
      agents: active,
      statuses,
    };
  }

  return { components, systemStatus, sandboxInfo };
}

export type SystemStatus = ReturnType<typeof createSystemStatus>;

export function systemRouter(status: SystemStatus) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.get('/healthz', (c) => c.json({ ok: true }));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/readyz',
      security: [],
      summary:
        'Ready when Temporal, the Docker engine (with a runtime agents may use), a worker for each task queue, the audit store and the embedded model (when in use) answer',
      responses: {
        200: { description: 'Ready', content: { 'application/json': { schema: ReadySchema } } },
        503: { description: 'Not ready; components say which', content: { 'application/json': { schema: ReadySchema } } },
      },
    }),
    async (c) => {
      const parts = await status.components();
      const ready = Object.values(parts).every((p) => p.state !== 'down');
      return c.json({ ready, components: parts }, ready ? 200 : 503);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/status',
      summary: 'System status: each component with its state and latency, pending actions, and agents by status',
      responses: {
        200: {
          description: 'Status',
          content: {
            'application/json': {
              schema: z.object({
                components: z.record(z.string(), ComponentSchema),
                agents: StatusCountsSchema.nullable().describe('Agents by status (all hosts); null when Temporal is down.'),
                pending_actions: z.number().nullable().describe('Actions awaiting approval; null when Temporal is down.'),
                max_agents: z.number(),
              }),
            },
          },
        },
      },
    }),
    async (c) => c.json(await status.systemStatus(), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/sandbox',
      summary: "Sandbox info: this host's runtime, availability, capacity and running agents, and every Docker host agents are placed on",
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
                capacity: z
                  .object({
                    agents: UsedFreeSchema.describe('Admitted agents against WARDEN_MAX_AGENTS.'),
                    cpu_cores: UsedFreeSchema.describe(
                      "Cores reserved by this host's running agents' limits and its warm pool against the engine's CPUs.",
                    ),
                    memory_bytes: UsedFreeSchema.describe(
                      "Memory reserved by this host's running agents' limits and its warm pool against the engine's memory.",
                    ),
                    admission: z
                      .object({
                        cpu_cores: z
                          .number()
                          .nullable()
                          .describe('The most CPU the limits of agents on this host may reserve in all: cores x cpu_overcommit.'),
                        memory_bytes: z
                          .number()
                          .nullable()
                          .describe('The most memory the limits of agents on this host may reserve in all: memory x memory_overcommit.'),
                        cpu_overcommit: z.number(),
                        memory_overcommit: z.number(),
                      })
                      .describe(
                        'What admission allows (WARDEN_CPU_OVERCOMMIT, WARDEN_MEMORY_OVERCOMMIT): a new agent whose limits do not fit is refused (409).',
                      ),
                  })
                  .describe('Reserved is what the limits promise, not what is in use: see GET /api/agents/{id}/stats for that.'),
                statuses: StatusCountsSchema.describe('Agents of this host by status.'),
                pool: z
                  .object({
                    size: z.number().describe('Members kept per profile (WARDEN_SANDBOX_POOL_SIZE); 0: no pool.'),
                    profiles: z.string().describe('The profiles kept (WARDEN_SANDBOX_POOL_PROFILES).'),
                    idle: z
                      .record(z.string(), z.number())
                      .nullable()
                      .describe(
                        "Idle members on this host's engine per profile hash; null when the engine does not list containers to the API.",
                      ),
                    reserved: z.object({ members: z.number(), cpu_cores: z.number(), memory_bytes: z.number() }),
                  })
                  .describe(
                    "The warm sandbox pool: sandboxes created and started ahead, which a new agent of the same profile takes. What it reserves counts in capacity's cpu_cores and memory_bytes.",
                  ),
                hosts: z
                  .array(
                    z.object({
                      host: z.string(),
                      sandbox_worker: ComponentSchema.describe("Whether a worker polls the host's task queue warden-sandbox@<host>."),
                      engine: z.object({
                        available: z.boolean().describe('false when the engine was not read, or has no runtime an agent may use.'),
                        version: z.string().nullable(),
                        runtimes: z.array(SandboxRuntimeSchema),
                        runtime: SandboxRuntimeSchema.nullable().describe('What an agent asking for no runtime gets there.'),
                        warning: z.string().nullable(),
                      }),
                      capacity: z.object({ cpu_cores: UsedFreeSchema, memory_bytes: UsedFreeSchema }),
                      agents: z.array(z.object({ id: z.string(), status: z.string().nullable(), sandbox_runtime: z.string().nullable() })),
                      statuses: StatusCountsSchema,
                    }),
                  )
                  .describe(
                    "Every Docker host agents are placed on (WARDEN_DOCKER_HOSTS, or this host alone): its sandbox worker's liveness, its engine as that worker reads it (this API's own engine for this host), what its agents' limits and warm pool reserve, its running agents and its agents by status.",
                  ),
              }),
            },
          },
        },
      },
    }),
    async (c) => c.json(await status.sandboxInfo(), 200),
  );

  return app;
}
