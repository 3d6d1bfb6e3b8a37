/**
 * Emergency activities: what the emergency stop and the lockdown checks need from Temporal
 * itself (visibility, the capacity workflow's lockdown, the cancellation of pending approvals)
 * and from the audit log (the lockdown's record of truth).
 */
import { heartbeat } from '@temporalio/activity';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import type { Lockdown } from '../domain/lockdown.js';
import { cancelActionUpdate, SearchAttributes, stopSignal } from '../workflows/definitions.js';
import type { AuditStore } from '../stores/audit-store.js';
import { readLockdown, recordedLockdown } from '../stores/lockdown-record.js';

/** Runs fn on every workflow at once: the ids it answered true for (a workflow that has ended: false). */
async function workflowsWhere(ids: string[], fn: (id: string) => Promise<boolean>): Promise<string[]> {
  const outcomes = await Promise.all(
    ids.map((id) =>
      fn(id).catch((err: unknown) => {
        if (err instanceof WorkflowNotFoundError) return false;
        throw err;
      }),
    ),
  );
  return ids.filter((_, i) => outcomes[i]);
}

export function createEmergencyActivities(client: Client, audit: AuditStore) {
  async function idsOf(query: string): Promise<string[]> {
    const ids: string[] = [];
    for await (const info of client.workflow.list({ query, pageSize: 500 })) ids.push(info.workflowId);
    return ids;
  }

  /** Fails closed: a lockdown that cannot be read is retried, never assumed away. */
  async function lockdownState(): Promise<Lockdown | null> {
    return readLockdown(client, audit);
  }

  /** The lockdown the audit log records: the capacity workflow restores it when a run starts. */
  async function recordedLockdownState(): Promise<Lockdown | null> {
    return recordedLockdown(audit);
  }

  /** Agent workflows still running, from visibility. */
  async function runningAgents(): Promise<string[]> {
    return idsOf(`WorkflowType = 'agentWorkflow' AND ExecutionStatus = 'Running'`);
  }

  /**
   * Sends every agent a forced stop, all at once (signals sent one by one from a workflow reach a
   * busy server one after another). A retry sends them again: a second forced stop changes nothing.
   */
  async function forceStopAgents(request: { agentIds: string[]; by: string }): Promise<{ stopped: string[]; ended: string[] }> {
    const stopped = await workflowsWhere(request.agentIds, async (id) => {
      await client.workflow.getHandle(id).signal(stopSignal, { force: true, by: request.by });
      return true;
    });
    return { stopped, ended: request.agentIds.filter((id) => !stopped.includes(id)) };
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
    return workflowsWhere(pending, async (id) => {
      const outcome = await client.workflow.getHandle(id).executeUpdate(cancelActionUpdate, { args: [request] });
      heartbeat(id);
      return outcome.cancelled || outcome.status === 'cancelled';
    });
  }

  return { lockdownState, recordedLockdownState, runningAgents, forceStopAgents, actionsInFlight, cancelPendingApprovals };
}

export type EmergencyActivities = ReturnType<typeof createEmergencyActivities>;
