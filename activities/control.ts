/**
 * Control activities: the few things the control workflows need from Temporal itself.
 */
import { ApplicationFailure } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { AgentRecord } from '../domain/agent.js';
import { lockdownMessage } from '../domain/lockdown.js';
import { agentSecretsQuery, agentStatusQuery, touchSignal } from '../workflows/definitions.js';
import type { AuditStore } from '../stores/audit-store.js';
import { readLockdown } from '../stores/lockdown-record.js';
import { FailureType } from '../domain/failure-types.js';

/** The execution status of an agent's workflow as the server has it now (Temporal's names), or NOT_FOUND. */
export async function agentWorkflowState(client: Client, agentId: string): Promise<string> {
  try {
    return (await client.workflow.getHandle(agentId).describe()).status.name;
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return 'NOT_FOUND';
    throw err;
  }
}

export function createControlActivities(client: Client, audit: AuditStore) {
  /** Of these agent ids, the ones whose workflow is no longer running (or never started). */
  async function closedAgents(agentIds: string[]): Promise<string[]> {
    const closed: string[] = [];
    for (const id of agentIds) if ((await agentWorkflowState(client, id)) !== 'RUNNING') closed.push(id);
    return closed;
  }
  /**
   * The agent an action runs in: it must exist and be running, and Warden must not be in lockdown.
   * With it, the names of the secrets its actions have used so far (their values are redacted).
   * Given `busy`, the agent is told the action runs in it before this returns (the `touch`
   * signal): the action workflow then needs no signal of its own, and no workflow task to await it.
   */
  async function agentForAction(
    agentId: string,
    busy?: { action_id: string; busy_ms: number; secrets?: string[] },
  ): Promise<Pick<AgentRecord, 'id' | 'host' | 'status'> & { secrets_used: string[] }> {
    const handle = client.workflow.getHandle(agentId);
    // Read together, one round trip; the lockdown is judged first, and nothing is sent the agent before it.
    const [lockdown, found] = await Promise.allSettled([
      readLockdown(client, audit),
      Promise.all([handle.query(agentStatusQuery), handle.query(agentSecretsQuery)]),
    ]);
    if (lockdown.status === 'rejected') throw lockdown.reason;
    if (lockdown.value)
      throw ApplicationFailure.create({ type: FailureType.Lockdown, message: lockdownMessage(lockdown.value), nonRetryable: true });
    let agent: AgentRecord;
    let secretsUsed: string[];
    try {
      if (found.status === 'rejected') throw found.reason;
      [agent, secretsUsed] = found.value;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) {
        throw ApplicationFailure.create({
          type: FailureType.AgentNotFound,
          message: `agent ${agentId} does not exist`,
          nonRetryable: true,
        });
      }
      throw err;
    }
    if (agent.status !== 'running') {
      throw ApplicationFailure.create({
        type: FailureType.AgentNotRunning,
        message: `agent ${agentId} is ${agent.status}; actions run only in a running agent`,
        nonRetryable: true,
      });
    }
    if (busy) await handle.signal(touchSignal, busy);
    return { id: agent.id, host: agent.host, status: agent.status, secrets_used: secretsUsed };
  }

  return { closedAgents, agentForAction };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
