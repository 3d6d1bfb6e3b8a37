/**
 * GET /api/agents/{id}/stats: an agent's live resource usage, read from the Docker engine.
 *
 * The API reads the engine it is attached to (deps.docker) rather than asking the sandbox worker
 * through its task queue: one HTTP call instead of a workflow or activity round trip, and it
 * works while no worker runs. An agent on another Docker host gets a 409 that says so.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { AgentIdSchema, SandboxRuntimeSchema, type AgentRecord } from '../../domain/agent.js';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import type { AgentService } from './service.js';
import { ContainerGoneError, ContainerUsageSchema, type ContainerUsageReader, type UsageSummary } from './container-usage.js';
import { withTimeout } from '../deadlines.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const STATS_TIMEOUT_MS = 10_000;
/** The engine answers a one-shot sample at once, or at its next collection tick (about a second). */
const SUMMARY_TIMEOUT_MS = 3_000;

const AgentStatsSchema = ContainerUsageSchema.extend({
  agent_id: z.string(),
  status: z.enum(['running', 'paused']),
  sandbox_runtime: SandboxRuntimeSchema.nullable(),
  sampled_at: z.string(),
});

const hasContainer = (agent: AgentRecord) => agent.status === 'running' || agent.status === 'paused';

export function createAgentStats(agents: AgentService, usage: ContainerUsageReader, config: Pick<Config, 'dockerHostId'>) {
  async function agentStats(id: string) {
    const agent = await agents.getAgent(id);
    if (!hasContainer(agent)) {
      throw new WardenError('agent_not_running', `agent ${id} is ${agent.status}: it has no running container to read usage from`, 409);
    }
    if (agent.host !== config.dockerHostId) {
      throw new WardenError(
        'stats_unavailable',
        `agent ${id} runs on Docker host ${agent.host}; this API reads the engine of host ${config.dockerHostId}`,
        409,
      );
    }
    try {
      const reading = await withTimeout(usage.usage(id), STATS_TIMEOUT_MS, 'the Docker engine');
      return {
        agent_id: id,
        status: agent.status as 'running' | 'paused',
        sandbox_runtime: agent.sandbox_runtime,
        sampled_at: new Date().toISOString(),
        ...reading,
      };
    } catch (err) {
      if (err instanceof ContainerGoneError) throw new WardenError('agent_not_running', `agent ${id}: ${err.message}`, 409);
      if ((err as { statusCode?: number }).statusCode === 403) {
        // docker-compose's read-only proxy lets the API read /version and /info only.
        throw new WardenError(
          'stats_unavailable',
          "the Docker engine refused to show this agent's container to the API (a read-only proxy allows no container reads)",
          503,
        );
      }
      throw err;
    }
  }

  /** A compact usage summary for the agent's record; null when there is none to read quickly. */
  async function usageSummary(agent: AgentRecord): Promise<UsageSummary | null> {
    if (!hasContainer(agent) || agent.host !== config.dockerHostId) return null;
    return withTimeout(usage.usageSummary(agent.id), SUMMARY_TIMEOUT_MS, 'the Docker engine').catch(() => null);
  }

  return { agentStats, usageSummary };
}

export type AgentStats = ReturnType<typeof createAgentStats>;

export function agentStatsRouter(stats: AgentStats) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.openapi(
    createRoute({
      method: 'get',
      path: '/{id}/stats',
      summary: "An agent's live resource usage: CPU, memory, processes, workspace, uptime",
      description: 'Read from the Docker engine; takes about a second (CPU % is measured over two engine samples).',
      request: { params: z.object({ id: AgentIdSchema }) },
      responses: { 200: json(AgentStatsSchema, 'Usage'), ...errorResponses(400, 404, 409, 503) },
    }),
    async (c) => c.json(await stats.agentStats(c.req.valid('param').id), 200),
  );
  return app;
}
