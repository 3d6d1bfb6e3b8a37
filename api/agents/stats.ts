/**
 * GET /api/agents/{id}/stats: an agent's live resource usage, read by the sandbox worker of the
 * agent's Docker host (the agent's readUsage update runs an activity on that host's task queue):
 * it reads for any host, and behind docker-compose's read-only proxy, which shows the API no
 * container. The compact summary of an agent's record is still read by the API from its own engine.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { ActivityFailure, ApplicationFailure, WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import { AgentIdSchema, SandboxRuntimeSchema, type AgentRecord } from '../../domain/agent.js';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import { FailureType } from '../../domain/failure-types.js';
import { causeChain } from '../../domain/failure-chain.js';
import { agentUsageUpdate } from '../../workflows/definitions.js';
import type { AgentService } from './service.js';
import { ContainerUsageSchema, type ContainerUsageReader, type UsageSummary } from '../../sandbox/container-usage.js';
import { askWorker, withTimeout } from '../deadlines.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

/** The worker waits up to 5 s for the host's worker to pick the read up, and 15 s for the reading. */
const STATS_TIMEOUT_MS = 25_000;
/** The engine answers a one-shot sample at once, or at its next collection tick (about a second). */
const SUMMARY_TIMEOUT_MS = 3_000;

const AgentStatsSchema = ContainerUsageSchema.extend({
  agent_id: z.string(),
  status: z.enum(['running', 'paused']),
  sandbox_runtime: SandboxRuntimeSchema.nullable(),
  host: z.string().describe('The Docker host whose sandbox worker read the usage.'),
  sampled_at: z.string(),
});

const hasContainer = (agent: AgentRecord) => agent.status === 'running' || agent.status === 'paused';

export function createAgentStats(client: Client, agents: AgentService, usage: ContainerUsageReader, config: Pick<Config, 'dockerHostId'>) {
  const notRunning = (id: string, why: string) => new WardenError('agent_not_running', `agent ${id}: ${why}`, 409);

  async function agentStats(id: string) {
    const agent = await agents.getAgent(id);
    if (!hasContainer(agent)) {
      throw new WardenError('agent_not_running', `agent ${id} is ${agent.status}: it has no running container to read usage from`, 409);
    }
    try {
      const reading = await askWorker(
        client,
        STATS_TIMEOUT_MS,
        () => client.workflow.getHandle(id).executeUpdate(agentUsageUpdate),
        `no worker answered for agent ${id}; is the Warden worker running?`,
      );
      return {
        agent_id: id,
        status: reading.paused ? ('paused' as const) : ('running' as const),
        sandbox_runtime: agent.sandbox_runtime,
        host: agent.host,
        sampled_at: new Date().toISOString(),
        ...reading,
      };
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw notRunning(id, 'its workflow has ended');
      const failure = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (failure instanceof ApplicationFailure && failure.type === FailureType.AgentNotRunning) throw notRunning(id, failure.message);
      if (failure instanceof ActivityFailure) {
        const gone = failure.cause instanceof ApplicationFailure && failure.cause.type === FailureType.AgentNotRunning;
        if (gone) throw notRunning(id, failure.cause.message);
        throw new WardenError(
          'stats_unavailable',
          `the sandbox worker of Docker host ${agent.host} did not read the usage of agent ${id} (${causeChain(failure).at(-1)?.message}); is that host's worker running?`,
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
      description:
        "Read by the sandbox worker of the agent's Docker host; takes about a second (CPU % is measured over two engine samples). 503 when that host's worker does not answer.",
      request: { params: z.object({ id: AgentIdSchema }) },
      responses: { 200: json(AgentStatsSchema, 'Usage'), ...errorResponses(400, 404, 409, 503) },
    }),
    async (c) => c.json(await stats.agentStats(c.req.valid('param').id), 200),
  );
  return app;
}
