/**
 * GET /metrics in the Prometheus text format: one prom-client registry per app (never the global
 * one). Agent gauges come from Temporal visibility at scrape time, action counts and latencies
 * from the audit log (api/metrics/audit-metrics.ts), container gauges from the Docker engine, HTTP
 * errors from the app itself. With WARDEN_METRICS_TOKEN set, a scrape needs that bearer token.
 */
import { Hono, type MiddlewareHandler } from 'hono';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { AGENT_STATUSES, SANDBOX_RUNTIMES } from '../../domain/agent.js';
import type { Config } from '../../domain/config.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { secretMatches } from '../../domain/secret-match.js';
import { SearchAttributes } from '../../workflows/definitions.js';
import { createAuditMetrics } from './audit-metrics.js';
import type { ContainerUsageReader, UsageSummary } from '../../sandbox/container-usage.js';
import { withTimeout } from '../deadlines.js';
import { idlePoolMembers } from '../../sandbox/pool.js';

const ENGINE_TIMEOUT_MS = 3_000;

export interface MetricsDeps {
  client: Client;
  config: Pick<Config, 'dockerHostId' | 'metricsToken' | 'metricsMaxContainers'>;
  audit: AuditStore;
  usage: ContainerUsageReader;
  /** This host's engine: its idle warm pool members are listed at scrape time. */
  docker: Pick<Docker, 'listContainers'>;
}

export function createMetrics(deps: MetricsDeps) {
  const { client, config, audit } = deps;
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'warden_api_' });

  const httpErrors = new Counter({
    name: 'warden_http_errors_total',
    help: 'API answers with a 4xx or 5xx status, by status and error code',
    labelNames: ['status', 'code'],
    registers: [registry],
  });

  const count = async (query: string) => (await client.workflow.count(query)).count;
  new Gauge({
    name: 'warden_agents',
    help: 'Agents by status and sandbox runtime (all hosts, from Temporal visibility); runtime "none" before a sandbox was made',
    labelNames: ['status', 'runtime'],
    registers: [registry],
    async collect() {
      const agent = `WorkflowType = 'agentWorkflow'`;
      const rows = await Promise.all(
        AGENT_STATUSES.map(async (status) => {
          const base = `${agent} AND ${SearchAttributes.agentStatus.name} = '${status}'`;
          const [total, ...perRuntime] = await Promise.all([
            count(base),
            ...SANDBOX_RUNTIMES.map((r) => count(`${base} AND ${SearchAttributes.runtime.name} = '${r}'`)),
          ]);
          return { status, total: total!, perRuntime };
        }),
      );
      this.reset();
      for (const { status, total, perRuntime } of rows) {
        SANDBOX_RUNTIMES.forEach((runtime, i) => this.set({ status, runtime }, perRuntime[i]!));
        this.set({ status, runtime: 'none' }, total - perRuntime.reduce((a, b) => a + b, 0));
      }
    },
  });

  new Gauge({
    name: 'warden_audit_entries',
    help: 'Entries in the audit log',
    registers: [registry],
    async collect() {
      this.set((await audit.head()).seq);
    },
  });

  new Gauge({
    name: 'warden_sandbox_pool_idle',
    help: "Idle warm pool sandboxes on this host's engine, by profile hash (absent when the engine does not list containers to the API)",
    labelNames: ['profile'],
    registers: [registry],
    async collect() {
      const members = await withTimeout(idlePoolMembers(deps.docker, config.dockerHostId), ENGINE_TIMEOUT_MS, 'the Docker engine').catch(
        () => null,
      );
      this.reset();
      for (const m of members ?? []) if (m.state === 'running') this.inc({ profile: m.profile });
    },
  });

  const auditMetrics = createAuditMetrics(registry, audit);
  const containers = registerContainerGauges(registry, deps);

  /** Counts every 4xx and 5xx answer, with the error code of its JSON body. */
  const countErrors: MiddlewareHandler = async (c, next) => {
    await next();
    if (c.res.status < 400) return;
    const body = (await c.res
      .clone()
      .json()
      .catch(() => null)) as { error?: { code?: unknown } } | null;
    const code = typeof body?.error?.code === 'string' ? body.error.code : 'none';
    httpErrors.inc({ status: String(c.res.status), code });
  };

  const router = new Hono();
  router.get('/metrics', async (c) => {
    if (config.metricsToken && !bearerMatches(c.req.header('authorization'), config.metricsToken)) {
      c.header('WWW-Authenticate', 'Bearer realm="warden-metrics"');
      return c.json(
        { error: { code: 'unauthorized', message: 'send the scrape token: Authorization: Bearer <WARDEN_METRICS_TOKEN>' } },
        401,
      );
    }
    await auditMetrics.catchUp();
    await containers.refresh().catch(() => undefined); // the engine or Temporal down: no container gauges this time
    return c.body(await registry.metrics(), 200, { 'content-type': registry.contentType });
  });

  return { registry, countErrors, router };
}

/**
 * Per-agent usage of this host's running and paused sandboxes, at most metricsMaxContainers of
 * them: read once per scrape by refresh(), then reported by four gauges.
 */
function registerContainerGauges(registry: Registry, deps: MetricsDeps) {
  const { client, config, usage } = deps;
  let latest: Array<{ agent_id: string; usage: UsageSummary }> = [];

  async function refresh(): Promise<void> {
    const query =
      `WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.host.name} = '${config.dockerHostId}'` +
      ` AND ${SearchAttributes.agentStatus.name} IN ('running', 'paused')`;
    const ids: string[] = [];
    for await (const info of client.workflow.list({ query, pageSize: 100 })) {
      ids.push(info.workflowId);
      if (ids.length >= config.metricsMaxContainers) break;
    }
    const readings = await Promise.all(
      ids.map(async (agent_id) => {
        const reading = await withTimeout(usage.usageSummary(agent_id), ENGINE_TIMEOUT_MS, 'the Docker engine').catch(() => null);
        return reading ? { agent_id, usage: reading } : null;
      }),
    );
    latest = readings.filter((r) => r !== null);
  }

  const gauge = (name: string, help: string, value: (u: UsageSummary) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['agent_id'],
      registers: [registry],
      collect() {
        this.reset();
        for (const r of latest) this.set({ agent_id: r.agent_id }, value(r.usage));
      },
    });
  gauge('warden_container_cpu_seconds', 'CPU time used by the sandbox since it started (rate() gives cores in use)', (u) => u.cpu_seconds);
  gauge('warden_container_memory_bytes', 'Memory the sandbox uses (its workspace tmpfs included)', (u) => u.memory_bytes);
  gauge('warden_container_memory_limit_bytes', "The sandbox's memory limit", (u) => u.memory_limit_bytes);
  gauge('warden_container_pids', 'Tasks in the sandbox (under runsc: host tasks of the gVisor sandbox)', (u) => u.pids);
  return { refresh };
}

/** Constant-time comparison of a bearer token (hashed first, so lengths do not leak either). */
function bearerMatches(header: string | undefined, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '');
  return secretMatches(match?.[1], token);
}
