/**
 * Emergency activities: what the emergency stop and the lockdown checks need from Temporal
 * itself (visibility, the capacity workflow's lockdown, the cancellation of pending approvals).
 */
import { heartbeat } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Lockdown } from '../domain/lockdown.js';
import { CAPACITY_WORKFLOW_ID, cancelActionUpdate, lockdownQuery, SearchAttributes } from '../workflows/definitions.js';

/** The lockdown the capacity workflow holds; null when there is none (or it never ran: nothing was ever admitted). */
export async function readLockdown(client: Client): Promise<Lockdown | null> {
  try {
    return await client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(lockdownQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}

export function createEmergencyActivities(client: Client) {
  async function idsOf(query: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const info of client.workflow.list({ query, pageSize: 500 })) ids.push(info.workflowId);
    return ids;
  }

  /** Fails closed: a lockdown that cannot be read is retried, never assumed away. */
  async function lockdownState(): Promise<Lockdown | null> {
    return readLockdown(client);
  }

  /** Agent workflows still running, from visibility. */
  async function runningAgents(): Promise<string[]> {
    return idsOf(`WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running'`);
  }

  /** Actions approved or executing: the stop does not interrupt their command, it stops their agent. */
  async function actionsInFlight(): Promise<string[]> {
    const status = SearchAttributes.actionStatus.name;
    return idsOf(`WorkflowType = 'actionWorkflow' AND ExecutionStatus = 'Running' AND ${status} IN ('approved', 'executing')`);
  }

  /**
   * Cancels every action awaiting approval, found through visibility. Each cancellation is an
   * update the action applies at most once, so a retried activity cancels nothing twice; the
   * answer names the actions that were still pending and are now cancelled.
   */
  async function cancelPendingApprovals(request: { reason: string; by: string }): Promise<string[]> {
    const status = SearchAttributes.actionStatus.name;
    const pending = await idsOf(`WorkflowType = 'actionWorkflow' AND ExecutionStatus = 'Running' AND ${status} = 'pending'`);
    const cancelled: string[] = [];
    for (const id of pending) {
      heartbeat(id);
      try {
        const outcome = await client.workflow.getHandle(id).executeUpdate(cancelActionUpdate, { args: [request] });
        if (outcome.cancelled || outcome.status === 'cancelled') cancelled.push(id);
      } catch (err) {
        // Ended between the listing and the update: nothing left to cancel.
        if (!(err instanceof WorkflowNotFoundError)) throw err;
      }
    }
    return cancelled;
  }

  return { lockdownState, runningAgents, actionsInFlight, cancelPendingApprovals };
}

export type EmergencyActivities = ReturnType<typeof createEmergencyActivities>;
