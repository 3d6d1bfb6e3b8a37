/**
 * The reaper's activities. The sandbox ones run on a Docker host's own task queue and only ever
 * look at containers labelled with that host's id; the control ones ask Temporal which agents
 * run. The reaper workflow (workflows/reaper.ts) decides from what they report.
 */
import Docker from 'dockerode';
import { ApplicationFailure, heartbeat } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { AgentStatus } from '../domain/agent.js';
import { containerAlive, type SandboxContainer } from '../domain/reaping.js';
import { agentStatusQuery, CAPACITY_WORKFLOW_ID, capacityQuery, containerLostUpdate, SearchAttributes } from '../workflows/definitions.js';
import { agentWorkflowState } from './control.js';
import { agentOfContainer, LABELS } from '../sandbox/spec.js';
import { heartbeating } from './sandbox.js';
import type { PoolReconciliation, SandboxPool } from '../sandbox/pool.js';
import { FailureType } from '../domain/failure-types.js';

export function createReaperSandboxActivities(docker: Docker, pool: SandboxPool) {
  /** Warden's containers on this host, and only this host's. */
  async function listSandboxContainers(host: string): Promise<SandboxContainer[]> {
    heartbeat();
    const found = await docker.listContainers({ all: true, filters: { label: [`${LABELS.managed}=true`, `${LABELS.host}=${host}`] } });
    const containers: SandboxContainer[] = [];
    for (const c of found) {
      const agentId = agentOfContainer(c.Names[0] ?? '', c.Labels);
      if (!agentId) continue; // an idle warm pool member (reconcileSandboxPool), or not ours to judge
      const exitCode = containerAlive(c.State)
        ? null
        : ((
            await docker
              .getContainer(c.Id)
              .inspect()
              .catch(() => null)
          )?.State.ExitCode ?? null);
      containers.push({ container_id: c.Id, agent_id: agentId, state: c.State, exit_code: exitCode });
    }
    return containers;
  }

  /** Removes one container by id, after checking again that it is Warden's and this host's. */
  async function removeOrphanContainer(input: { containerId: string; agentId: string; host: string }): Promise<'removed' | 'gone'> {
    const c = docker.getContainer(input.containerId);
    let labels: Record<string, string>;
    let name: string;
    try {
      const info = await c.inspect();
      labels = info.Config.Labels ?? {};
      name = info.Name;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return 'gone';
      throw err;
    }
    if (labels[LABELS.managed] !== 'true' || labels[LABELS.host] !== input.host || agentOfContainer(name, labels) !== input.agentId) {
      throw ApplicationFailure.create({
        type: FailureType.NotOurContainer,
        message: `container ${input.containerId} is not agent ${input.agentId}'s on host ${input.host}; the reaper leaves it alone`,
        nonRetryable: true,
      });
    }
    try {
      await c.remove({ force: true, v: true });
      return 'removed';
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return 'gone';
      throw err;
    }
  }

  /**
   * The host's warm pool, reconciled by label: members of an earlier worker process, of a profile
   * no longer kept, or stopped, are removed; under a lockdown every member is; then it is refilled.
   * It waits behind a refill already running and may make members itself, each a create and a
   * start: it heartbeats all along, not once.
   */
  async function reconcileSandboxPool(): Promise<PoolReconciliation> {
    return pool.reconcile();
  }

  return { listSandboxContainers, removeOrphanContainer, reconcileSandboxPool: heartbeating(reconcileSandboxPool) };
}

export function createReaperControlActivities(client: Client) {
  /** The state of each agent's workflow, read from the server (not from visibility, which lags). */
  async function agentWorkflowStates(agentIds: string[]): Promise<Record<string, string>> {
    const states: Record<string, string> = {};
    for (const id of agentIds) {
      states[id] = await agentWorkflowState(client, id);
      heartbeat();
    }
    return states;
  }

  /** Agents of this host whose workflow runs, with the status each reports now. */
  async function runningAgentsOnHost(host: string): Promise<Array<{ agent_id: string; status: AgentStatus }>> {
    const agents: Array<{ agent_id: string; status: AgentStatus }> = [];
    const query = `WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.host.name} = '${host}'`;
    for await (const info of client.workflow.list({ query })) {
      try {
        agents.push({
          agent_id: info.workflowId,
          status: (await client.workflow.getHandle(info.workflowId).query(agentStatusQuery)).status,
        });
      } catch (err) {
        if (!(err instanceof WorkflowNotFoundError)) throw err; // it ended since visibility saw it
      }
      heartbeat();
    }
    return agents;
  }

  /** Tells an agent its container is lost; the agent decides (it refuses when it is already stopping). */
  async function reportContainerLost(input: { agentId: string; reason: string; exitCode: number | null }) {
    try {
      return await client.workflow
        .getHandle(input.agentId)
        .executeUpdate(containerLostUpdate, { args: [{ reason: input.reason, exit_code: input.exitCode }] });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return { accepted: false, status: null };
      throw err;
    }
  }

  /** Capacity slots held longer than graceMs by agents whose workflow is not running. */
  async function staleCapacitySlots(graceMs: number): Promise<string[]> {
    let admitted: Record<string, string>;
    try {
      admitted = (await client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(capacityQuery)).admitted;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return []; // no agent was ever admitted
      throw err;
    }
    const stale: string[] = [];
    for (const [id, at] of Object.entries(admitted)) {
      if (Date.now() - Date.parse(at) > graceMs && (await agentWorkflowState(client, id)) !== 'RUNNING') stale.push(id);
      heartbeat();
    }
    return stale;
  }

  return { agentWorkflowStates, runningAgentsOnHost, reportContainerLost, staleCapacitySlots };
}

export type ReaperSandboxActivities = ReturnType<typeof createReaperSandboxActivities>;
export type ReaperControlActivities = ReturnType<typeof createReaperControlActivities>;
