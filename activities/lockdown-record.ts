/**
 * The lockdown as the audit log records it: the newest system.lockdown entry, unless a
 * system.lockdown_lifted entry came after it. The log is outside Temporal, so whoever can reach
 * Temporal's port and terminate the capacity workflow cannot erase it.
 */
import { z } from 'zod';
import type { Lockdown } from '../domain/lockdown.js';
import type { AuditStore } from './audit-store.js';

const RecordedLockdownSchema = z.object({
  since: z.string(),
  by: z.string(),
  by_name: z.string(),
  reason: z.string(),
  stop: z.number(),
  stop_workflow_id: z.string().optional(),
});

export function recordedLockdown(audit: AuditStore): Lockdown | null {
  const [locked] = audit.list({ kind: 'system.lockdown', limit: 1 });
  if (!locked) return null;
  const [lifted] = audit.list({ kind: 'system.lockdown_lifted', limit: 1 });
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
