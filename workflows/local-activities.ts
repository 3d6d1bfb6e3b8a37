/**
 * The activities workflows run as local activities, and the audit trail every workflow writes.
 * They run on the control worker beside the audit store and the Temporal client, and each is a
 * short, idempotent call, so they skip the task queue round trip a regular activity costs.
 */
import { proxyLocalActivities } from '@temporalio/workflow';
import type { AlertActivities } from '../activities/alerts.js';
import type { AuditActivities, RecordAuditInput } from '../activities/audit.js';
import type { EmergencyActivities } from '../activities/emergency.js';
import type { GrantActivities } from '../activities/grants.js';

export const { recordAudit, raiseAlert, lockdownState, recordedLockdownState, verifyAction, verifyApproval } = proxyLocalActivities<
  Pick<AuditActivities, 'recordAudit'> &
    Pick<AlertActivities, 'raiseAlert'> &
    Pick<EmergencyActivities, 'lockdownState' | 'recordedLockdownState'> &
    GrantActivities
>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '30 seconds' },
});

/**
 * Appends to the audit log under keys `<scope>:<n>`: the scope is unique to the workflow run (or
 * the action), and the count replays identically, so a retried or replayed append adds nothing.
 */
export function auditTrail(scope: string): (entry: Omit<RecordAuditInput, 'key'>) => ReturnType<typeof recordAudit> {
  let entries = 0;
  return (entry) => recordAudit({ ...entry, key: `${scope}:${++entries}` });
}
