/**
 * The agent operations every caller shares (API routes, CLI, tests, benchmark): each is a
 * Temporal call on the agent's workflow, and each failure becomes a typed WardenError.
 */
import { randomBytes } from 'node:crypto';
import type Docker from 'dockerode';
import {
  QueryNotRegisteredError,
  WorkflowExecutionAlreadyStartedError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import {
  AgentStatusSchema,
  completeLimits,
  DEFAULT_MAX_RESTARTS,
  ResourceLimitsSchema,
  type AgentRecord,
  type AgentStatus,
  type CreateAgentRequest,
  type ResourceLimits,
} from '../../domain/agent.js';
import { checkAgentRequest, type AgentAdmissionSettings } from '../../domain/agent-admission.js';
import { SKILL_REGISTRY } from '../../skills/index.js';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import type { HostBudget } from '../../domain/host-capacity.js';
import { parsePoolProfiles, poolReservation } from '../../domain/sandbox-pool.js';
import type { Identity } from '../../domain/roles.js';
import { askWorker, withTimeout } from '../deadlines.js';
import { isClosedBeforeFirstTask, isDeadlineExceeded } from '../temporal-errors.js';
import { updateCapacity } from '../system/capacity-updates.js';
import {
  admitAgentUpdate,
  agentStatusQuery,
  describeHostUpdate,
  CAPACITY_WORKFLOW_ID,
  capacityQuery,
  CONTROL_TASK_QUEUE,
  newAgentRecord,
  pauseSignal,
  releaseAgentSignal,
  resumeSignal,
  SearchAttributes,
  stopSignal,
  type AgentWorkflowInput,
  type CapacityState,
} from '../../workflows/definitions.js';
import { readEngineFacts, type EngineFacts } from '../../sandbox/docker-engine.js';
import { causeChain } from '../../domain/failure-chain.js';
import type { agentWorkflow } from '../../workflows/agent.js';
import { FailureType } from '../../domain/failure-types.js';

/** An agent as Temporal visibility lists it (search attributes, no query). */
export const AgentSummarySchema = z.object({
  id: z.string(),
  skill_id: z.string().nullable(),
  status: AgentStatusSchema.nullable(),
  sandbox_runtime: z.string().nullable(),
  host: z.string().nullable(),
  created_at: z.string().nullable(),
  closed_at: z.string().nullable(),
  workflow_status: z.string(),
});
export type AgentSummary = z.infer<typeof AgentSummarySchema>;

export type AgentServiceConfig = Pick<
  Config,
  | 'dockerHostId'
  | 'dockerHosts'
  | 'sandboxImage'
  | 'sandboxRuntime'
  | 'maxAgents'
  | 'agentIdleTtlSeconds'
  | 'stopGraceSeconds'
  | 'memoryOvercommit'
  | 'cpuOvercommit'
  | 'sandboxPoolSize'
  | 'sandboxPoolProfiles'
> &
  AgentAdmissionSettings &
  Partial<Pick<Config, 'alertWebhooks' | 'alertCapacityPercent'>>;

const QUERY_DEADLINE_MS = 5_000;
const ADMIT_DEADLINE_MS = 15_000;
const HOST_INFO_TIMEOUT_MS = 5_000;
/** The describeHost update waits up to 5 s for the host's worker to take it, 10 s for the engine. */
const HOST_WORKER_DEADLINE_MS = 16_000;
const MiB = 1024 * 1024;

/** Facts of another host's engine are read again after this long (its memory and cores rarely change). */
const ENGINE_FACTS_TTL_MS = 60_000;
/** A host whose worker did not answer is not asked again for this long: every create would wait for it. */
const HOST_DOWN_TTL_MS = 15_000;

/** The Docker hosts agents are placed on: WARDEN_DOCKER_HOSTS, or this API's host alone. */
export const placementHosts = (config: Pick<Config, 'dockerHostId' | 'dockerHosts'>): string[] =>
  config.dockerHosts.length ? config.dockerHosts : [config.dockerHostId];

/**
 * `docker`: the engine of this API's Docker host (config.dockerHostId); another host's engine is
 * read by that host's sandbox worker. A host's memory and cores bound what the agents' limits may
 * reserve there in all.
 */
export function createAgentService(client: Client, config: AgentServiceConfig, deps: { docker: Pick<Docker, 'info' | 'version'> }) {
  const handle = (id: string) => client.workflow.getHandle<typeof agentWorkflow>(id);
  const hosts = placementHosts(config);
  const factsRead = new Map<string, { facts: EngineFacts | Error; at: number }>();

  /** What a host's engine says of itself: this API's own engine, or through the host's sandbox worker. */
  async function engineFacts(host: string): Promise<EngineFacts> {
    if (host === config.dockerHostId) return withTimeout(readEngineFacts(deps.docker), HOST_INFO_TIMEOUT_MS, 'the Docker engine');
    const cached = factsRead.get(host);
    const fresh = cached && Date.now() - cached.at < (cached.facts instanceof Error ? HOST_DOWN_TTL_MS : ENGINE_FACTS_TTL_MS);
    const facts = fresh
      ? cached.facts
      : await client
          .withDeadline(Date.now() + HOST_WORKER_DEADLINE_MS, () => updateCapacity(client, describeHostUpdate, [{ host }]))
          .catch((err) => {
            const cause = err instanceof WorkflowUpdateFailedError ? causeChain(err.cause).at(-1)?.message : (err as Error).message;
            return new Error(`its sandbox worker did not answer (${cause})`);
          });
    if (!fresh) factsRead.set(host, { facts, at: Date.now() });
    if (facts instanceof Error) throw facts;
    return facts;
  }

  /** What a host lets its agents reserve; fails closed when its engine does not say. */
  async function hostBudget(host: string): Promise<HostBudget> {
    let facts: EngineFacts;
    try {
      facts = await engineFacts(host);
    } catch (err) {
      throw new WardenError(
        'host_unavailable',
        `cannot read the memory and cores of Docker host ${host} to admit the agent (${(err as Error).message}); try again when its engine answers`,
        503,
      );
    }
    if (!facts.memory_bytes || !facts.cpu_cores) {
      throw new WardenError(
        'host_unavailable',
        `the Docker engine of host ${host} did not report its memory and cores; no agent is admitted without them`,
        503,
      );
    }
    return {
      memory_mb: Math.floor(facts.memory_bytes / MiB),
      cpu_cores: facts.cpu_cores,
      memoryOvercommit: config.memoryOvercommit,
      cpuOvercommit: config.cpuOvercommit,
      ...(config.sandboxPoolSize > 0
        ? { pool: poolReservation(config.sandboxPoolSize, parsePoolProfiles(config.sandboxPoolProfiles)) }
        : {}),
    };
  }

  /**
   * The hosts to try, in order, with what each lets agents reserve: the one a request names, or
   * every placement host whose engine answers, the one with the most memory left for agents first
   * (so agents spread). The capacity workflow checks the chosen host again, serialised.
   */
  async function placementOrder(named: string | undefined): Promise<Array<{ host: string; budget: HostBudget }>> {
    if (named !== undefined && !hosts.includes(named)) {
      throw new WardenError('unknown_host', `Docker host ${named} is not one agents are placed on (${hosts.join(', ')})`, 400);
    }
    if (named !== undefined || hosts.length === 1) {
      const host = named ?? hosts[0]!;
      return [{ host, budget: await hostBudget(host) }];
    }
    const budgets = await Promise.allSettled(hosts.map((host) => hostBudget(host)));
    const answered = hosts.flatMap((host, i) => {
      const b = budgets[i]!;
      return b.status === 'fulfilled' ? [{ host, budget: b.value }] : [];
    });
    if (answered.length === 0) {
      const reasons = budgets.map((b) => (b.status === 'rejected' ? (b.reason as Error).message : '')).join('; ');
      throw new WardenError('host_unavailable', `no Docker host can take an agent now: ${reasons}`, 503);
    }
    const reserved = Object.values((await capacityState())?.reserved ?? {});
    const memoryLeft = ({ host, budget }: { host: string; budget: HostBudget }) =>
      budget.memory_mb * budget.memoryOvercommit -
      (budget.pool?.memory_mb ?? 0) -
      reserved.filter((r) => r.host === host).reduce((sum, r) => sum + r.memory_mb, 0);
    return answered.sort((a, b) => memoryLeft(b) - memoryLeft(a));
  }

  /** The capacity workflow's state; null before it exists. */
  async function capacityState(): Promise<CapacityState | null> {
    try {
      return await askWorker(
        client,
        QUERY_DEADLINE_MS,
        () => client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery),
        'no worker answered for the capacity workflow; is the Warden worker running?',
      );
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return null;
      throw err;
    }
  }

  /** Admits the agent on `host` (one serialised update); a full host is a HostCapacityExceeded WardenError. */
  async function admit(agentId: string, host: string, budget: HostBudget, limits: ResourceLimits): Promise<void> {
    const admission = {
      agentId,
      maxAgents: config.maxAgents,
      ...(config.alertWebhooks?.length ? { alertPercent: config.alertCapacityPercent } : {}),
      reservation: { host, cpu_cores: limits.cpu_cores, memory_mb: limits.memory_mb },
      hostBudget: budget,
    };
    try {
      await askWorker(
        client,
        ADMIT_DEADLINE_MS,
        () => updateCapacity(client, admitAgentUpdate, [admission]),
        'no worker answered the admission of this agent; is the Warden worker running?',
      );
    } catch (err) {
      const failure = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (failure instanceof ApplicationFailure && failure.type === FailureType.CapacityExceeded) {
        throw new WardenError('capacity_exceeded', failure.message, 409);
      }
      if (failure instanceof ApplicationFailure && failure.type === FailureType.HostCapacityExceeded) {
        throw new WardenError('host_capacity_exceeded', failure.message, 409);
      }
      if (failure instanceof ApplicationFailure && failure.type === FailureType.Lockdown) {
        throw new WardenError('lockdown', failure.message, 423);
      }
      if (failure instanceof ApplicationFailure && failure.type === FailureType.AgentExists) {
        throw new WardenError('agent_exists', `agent ${agentId} already exists (agent ids are never reused)`, 409);
      }
      throw err;
    }
  }

  /**
   * Checks what the requester may ask for, then places the agent: admits it against max_agents
   * and a host's memory and cores (one serialised update per host tried, the next host when one
   * is full), then starts its workflow on that host.
   */
  async function createAgent(request: CreateAgentRequest, requester: Identity): Promise<AgentRecord> {
    const agentId = request.agent_id ?? `agt-${randomBytes(6).toString('hex')}`;
    const limits: ResourceLimits = completeLimits(request.resource_limits);
    checkAgentRequest(request, limits, requester.role, config, SKILL_REGISTRY);
    const order = await placementOrder(request.host);
    let host: string | undefined;
    for (const [i, candidate] of order.entries()) {
      try {
        await admit(agentId, candidate.host, candidate.budget, limits);
        host = candidate.host;
        break;
      } catch (err) {
        const last = i === order.length - 1;
        if (last || !(err instanceof WardenError) || err.code !== 'host_capacity_exceeded') throw err;
      }
    }
    const input: AgentWorkflowInput = {
      agentId,
      skillId: request.skill_id,
      host: host!,
      image: config.sandboxImage,
      limits,
      runtime: request.runtime ?? config.sandboxRuntime,
      requireSandbox: config.requireSandbox,
      idleTtlSeconds: request.idle_ttl_seconds ?? config.agentIdleTtlSeconds,
      stopGraceSeconds: config.stopGraceSeconds,
      ...(request.restart_policy === 'on-failure'
        ? { restartPolicy: 'on-failure', maxRestarts: request.max_restarts ?? DEFAULT_MAX_RESTARTS }
        : {}),
      ...(request.budget ? { budget: request.budget } : {}),
      createdAt: new Date().toISOString(),
      requestedBy: requester.key_id,
    };
    try {
      await client.workflow.start<typeof agentWorkflow>('agentWorkflow', {
        workflowId: agentId,
        taskQueue: CONTROL_TASK_QUEUE,
        args: [input],
        workflowIdReusePolicy: 'REJECT_DUPLICATE',
        memo: { resource_limits: limits, created_at: input.createdAt },
        typedSearchAttributes: [
          { key: SearchAttributes.agentId, value: agentId },
          { key: SearchAttributes.agentStatus, value: 'provisioning' },
          { key: SearchAttributes.skillId, value: request.skill_id },
          { key: SearchAttributes.host, value: input.host },
        ],
      });
    } catch (err) {
      await client.workflow
        .getHandle(CAPACITY_WORKFLOW_ID)
        .signal(releaseAgentSignal, { agentId })
        .catch(() => undefined);
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        throw new WardenError('agent_exists', `agent ${agentId} already exists (agent ids are never reused)`, 409);
      }
      throw err;
    }
    return newAgentRecord(input);
  }

  /** The agent's full record, straight from its workflow (the `status` query, or its result once it ended). */
  async function getAgent(id: string): Promise<AgentRecord> {
    const notAnAgent = () => new WardenError('not_found', `${id} is not an agent (it is one of Warden's own workflows, or an action)`, 404);
    try {
      // An ended agent's record is its workflow's result, read from history: no worker has to
      // replay the agent's whole life to answer, and it answers with every worker down.
      const { type, status } = await handle(id).describe();
      if (type !== 'agentWorkflow') throw notAnAgent();
      if (status.name === 'COMPLETED') return await handle(id).result();
      const agent = await askWorker(
        client,
        QUERY_DEADLINE_MS,
        () => handle(id).query(agentStatusQuery),
        `no worker answered for agent ${id}; is the Warden worker running?`,
      );
      if (agent?.id !== id) throw notAnAgent();
      return agent;
    } catch (err) {
      if (err instanceof WardenError) throw err;
      if (err instanceof WorkflowNotFoundError) throw new WardenError('not_found', `agent ${id} not found`, 404);
      if (isClosedBeforeFirstTask(err)) {
        throw new WardenError(
          'not_found',
          `agent ${id} has no record: its workflow was closed (terminated or timed out) before it first ran`,
          404,
        );
      }
      throw err;
    }
  }

  async function signalAgent(id: string, what: 'pause' | 'resume' | 'stop', force = false, requester?: Identity): Promise<AgentRecord> {
    const agent = await getAgent(id);
    if (agent.status === 'stopped' || agent.status === 'error') {
      throw new WardenError('agent_not_active', `agent ${id} is ${agent.status}; it cannot ${what}`, 409);
    }
    if (what !== 'stop' && agent.status === 'stopping') {
      throw new WardenError('agent_not_active', `agent ${id} is stopping; it cannot ${what}`, 409);
    }
    if (what !== 'stop' && agent.status === 'provisioning') {
      throw new WardenError('agent_not_ready', `agent ${id} is still provisioning; try again in a moment`, 409);
    }
    try {
      const by = requester?.key_id;
      if (what === 'pause') await handle(id).signal(pauseSignal, { by });
      else if (what === 'resume') await handle(id).signal(resumeSignal, { by });
      else await handle(id).signal(stopSignal, { force, by });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw new WardenError('agent_not_active', `agent ${id} has ended; it cannot ${what}`, 409);
      }
      throw err;
    }
    return agent;
  }

  /** Agents from Temporal visibility (search attributes), newest first. */
  async function listAgents(filter: { status?: AgentStatus; skill_id?: string; host?: string; limit?: number } = {}) {
    const clauses = [`WorkflowType = 'agentWorkflow'`];
    if (filter.status) clauses.push(`${SearchAttributes.agentStatus.name} = '${filter.status}'`);
    if (filter.skill_id) clauses.push(`${SearchAttributes.skillId.name} = '${filter.skill_id}'`);
    if (filter.host) clauses.push(`${SearchAttributes.host.name} = '${filter.host}'`);
    const agents: AgentSummary[] = [];
    for await (const info of client.workflow.list({ query: clauses.join(' AND '), pageSize: 100 })) {
      agents.push(summarize(info));
      if (agents.length >= (filter.limit ?? 100)) break;
    }
    return agents;
  }

  async function countAgents(status: AgentStatus, host?: string): Promise<number> {
    const onHost = host ? ` AND ${SearchAttributes.host.name} = '${host}'` : '';
    const { count } = await client.workflow.count(
      `WorkflowType = 'agentWorkflow' AND ${SearchAttributes.agentStatus.name} = '${status}'${onHost}`,
    );
    return count;
  }

  /** CPU cores and memory reserved by the limits of the agents whose workflow runs on this host (from their memo). */
  async function reservedResources(host: string): Promise<{ agents: number; cpu_cores: number; memory_bytes: number }> {
    const query = `WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.host.name} = '${host}'`;
    const reserved = { agents: 0, cpu_cores: 0, memory_bytes: 0 };
    for await (const info of client.workflow.list({ query, pageSize: 100 })) {
      const limits = ResourceLimitsSchema.safeParse(info.memo?.resource_limits);
      if (!limits.success) continue;
      reserved.agents += 1;
      reserved.cpu_cores += limits.data.cpu_cores;
      reserved.memory_bytes += limits.data.memory_mb * 1024 * 1024;
    }
    return reserved;
  }

  /** Slots taken in the capacity workflow (exact); without a worker, running agents per visibility. */
  async function admittedAgents(): Promise<number> {
    try {
      // A query needs a worker; without one it would wait until the gRPC deadline.
      const state = await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () =>
        client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery),
      );
      return Object.keys(state.admitted).length;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return 0;
      // No worker, or a capacity workflow that cannot answer (closed before it ran, or not Warden's).
      if (!isDeadlineExceeded(err) && !isClosedBeforeFirstTask(err) && !(err instanceof QueryNotRegisteredError)) throw err;
      const { count } = await client.workflow.count(`WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running'`);
      return count;
    }
  }

  return { createAgent, engineFacts, getAgent, signalAgent, listAgents, countAgents, admittedAgents, reservedResources };
}

export type AgentService = ReturnType<typeof createAgentService>;

function summarize(info: WorkflowExecutionInfo): AgentSummary {
  const sa = info.typedSearchAttributes;
  return {
    id: info.workflowId,
    skill_id: sa.get(SearchAttributes.skillId) ?? null,
    status: (sa.get(SearchAttributes.agentStatus) as AgentStatus | undefined) ?? null,
    sandbox_runtime: sa.get(SearchAttributes.runtime) ?? null,
    host: sa.get(SearchAttributes.host) ?? null,
    created_at: info.startTime.toISOString(),
    closed_at: info.closeTime?.toISOString() ?? null,
    workflow_status: info.status.name,
  };
}
