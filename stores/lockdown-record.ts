/**
 * The lockdown as it is recorded: by the capacity workflow, which holds it, and by the audit log,
 * its record of truth. The log is outside Temporal, so whoever can reach Temporal's port and
 * terminate the capacity workflow cannot erase it. Read by the API and by the activities.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { Lockdown } from '../domain/lockdown.js';
import type { AuditStore } from './audit-store.js';
import { CAPACITY_WORKFLOW_ID, lockdownQuery } from '../workflows/definitions.js';

const RecordedLockdownSchema = z.object({
  since: z.string(),
  by: z.string(),
  by_name: z.string(),
  reason: z.string(),
  stop: z.number(),
  stop_workflow_id: z.string().optional(),
});

/**
 * The lockdown as the audit log records it: the newest system.lockdown entry, unless a
 * system.lockdown_lifted entry came after it.
 */
export async function recordedLockdown(audit: AuditStore): Promise<Lockdown | null> {
  const [locked] = await audit.list({ kind: 'system.lockdown', limit: 1 });
  if (!locked) return null;
  const [lifted] = await audit.list({ kind: 'system.lockdown_lifted', limit: 1 });
  if (lifted && lifted.seq > locked.seq) return null;
  const parsed = RecordedLockdownSchema.safeParse(locked.details);
  if (parsed.success) return parsed.data;
  // Fail closed: a lockdown entry whose details do not read is a lockdown all the same.
  return {
    since: locked.at,
    by: locked.actor ?? 'unknown',
    by_name: locked.actor ?? 'unknown',
    reason: `see audit entry ${locked.seq}`,
    stop: 0,
  };
}

/**
 * The lockdown, failing closed: locked when the capacity workflow holds one or the audit log
 * records one (a capacity workflow that was terminated, or started anew with no lockdown, lifts
 * nothing). An error reading either is thrown, never taken for "no lockdown".
 */
export async function readLockdown(client: Client, audit: AuditStore): Promise<Lockdown | null> {
  const recorded = await recordedLockdown(audit);
  return (await heldLockdown(client)) ?? recorded;
}

/**
 * The lockdown the capacity workflow holds (none while it does not exist). For a process without
 * the audit log: a sandbox worker on another host, whose warm pool stops under a lockdown.
 */
export async function heldLockdown(client: Client): Promise<Lockdown | null> {
  try {
    return await client.workflow.getHandle(CAPACITY_WORKFLOW_ID).query(lockdownQuery);
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return null;
    throw err;
  }
}
