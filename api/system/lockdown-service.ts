/**
 * The emergency stop, the resume and the lockdown state, as Temporal calls on the capacity
 * workflow (which holds the lockdown and starts the stop workflow), with typed errors.
 */
import { randomBytes } from 'node:crypto';
import { WorkflowFailedError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { WardenError } from '../../domain/errors.js';
import { lockdownMessage, type EmergencyStopReport, type Lockdown, type LockdownActor } from '../../domain/lockdown.js';
import type { Identity } from '../../domain/roles.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { readLockdown } from '../../stores/lockdown-record.js';
import { liftLockdownUpdate, lockdownUpdate } from '../../workflows/definitions.js';
import { updateCapacity } from './capacity-updates.js';
import type { emergencyStopWorkflow } from '../../workflows/emergency-stop.js';
import { askWorker } from '../deadlines.js';
import { FailureType } from '../../domain/failure-types.js';

const UPDATE_DEADLINE_MS = 15_000;
const QUERY_DEADLINE_MS = 5_000;
/** How long the API waits for the stop's report; the stop carries on past it regardless. */
export const STOP_REPORT_WAIT_MS = 60_000;

/** The lockdown and the stop's report as the API answers them: the records of domain/lockdown.ts, which workflows share without zod. */
export const LockdownSchema = z.object({
  since: z.string(),
  by: z.string().describe('the API key id of the admin who stopped everything'),
  by_name: z.string(),
  reason: z.string(),
  stop: z.number().int().describe('the number of the emergency stop that began it'),
  stop_workflow_id: z.string().optional().describe('the workflow of that stop'),
}) satisfies z.ZodType<Lockdown>;

const EmergencyStopReportSchema = z.object({
  stop_workflow_id: z.string(),
  agents_stopped: z.array(z.string()),
  agents_already_ended: z.array(z.string()),
  approvals_cancelled: z.array(z.string()),
  actions_in_flight: z.array(z.string()),
  counts: z.object({ agents_stopped: z.number(), approvals_cancelled: z.number(), actions_in_flight: z.number() }),
  completed_at: z.string(),
}) satisfies z.ZodType<EmergencyStopReport>;

export const EmergencyStopOutcomeSchema = z.object({
  lockdown: LockdownSchema,
  already_locked: z.boolean(),
  stop_workflow_id: z.string(),
  completed: z.boolean().describe('false: the report was not ready in time; the stop workflow carries on'),
  report: EmergencyStopReportSchema.nullable(),
});
export type EmergencyStopOutcome = z.infer<typeof EmergencyStopOutcomeSchema>;

export function createLockdownService(client: Client, audit: AuditStore, opts: { reportWaitMs?: number } = {}) {
  const actor = (who: Identity, reason: string): LockdownActor => ({ by: who.key_id, by_name: who.name, reason });
  const noWorker = (what: string) => `no worker answered the ${what}; is the Warden worker running?`;

  /** Locks down, then waits (up to the deadline) for the stop workflow's report. */
  async function emergencyStop(reason: string, who: Identity): Promise<EmergencyStopOutcome> {
    let started: { lockdown: Lockdown; already_locked: boolean; stop_workflow_id: string };
    try {
      started = await askWorker(
        client,
        UPDATE_DEADLINE_MS,
        () => updateCapacity(client, lockdownUpdate, [actor(who, reason)]),
        noWorker('emergency stop'),
      );
    } catch (err) {
      const failure = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (failure instanceof ApplicationFailure && failure.type === FailureType.EmergencyStopNotStarted)
        throw new WardenError('stop_failed', failure.message, 503);
      throw err;
    }
    const handle = client.workflow.getHandle<typeof emergencyStopWorkflow>(started.stop_workflow_id);
    const report = await Promise.race([
      handle.result(),
      new Promise<null>((resolve) => setTimeout(resolve, opts.reportWaitMs ?? STOP_REPORT_WAIT_MS, null).unref()),
    ]).catch((err) => {
      if (err instanceof WorkflowFailedError)
        throw new WardenError(
          'stop_failed',
          `the emergency stop ${started.stop_workflow_id} failed: ${err.cause?.message ?? err.message}`,
          503,
        );
      throw err;
    });
    return { ...started, completed: report !== null, report };
  }

  async function resume(reason: string, who: Identity): Promise<{ lifted: Lockdown; resumed_at: string }> {
    try {
      // With start: a capacity workflow that was terminated comes back with the recorded lockdown, which this lifts.
      return await askWorker(
        client,
        UPDATE_DEADLINE_MS,
        () => updateCapacity(client, liftLockdownUpdate, [actor(who, reason)]),
        noWorker('resume'),
      );
    } catch (err) {
      const failure = err instanceof WorkflowUpdateFailedError ? err.cause : undefined;
      if (failure instanceof ApplicationFailure && failure.type === FailureType.NotLocked)
        throw new WardenError('not_locked', failure.message, 409);
      throw err;
    }
  }

  function state(): Promise<Lockdown | null> {
    return askWorker(client, QUERY_DEADLINE_MS, () => readLockdown(client, audit), noWorker('lockdown query'));
  }

  /**
   * Refuses a new agent or action during the lockdown (423), and records the refusal. Fails
   * closed: a lockdown that cannot be read refuses too (503).
   */
  async function assertOpen(what: 'agent' | 'action' | 'conversation', who: Identity): Promise<void> {
    const lockdown = await state();
    if (!lockdown) return;
    const message = lockdownMessage(lockdown);
    await audit.append({
      key: `api:lockdown-refused:${randomBytes(8).toString('hex')}`,
      kind: 'system.lockdown_refused',
      actor: who.key_id,
      details: { what, reason: message },
    });
    throw new WardenError('lockdown', message, 423);
  }

  return { emergencyStop, resume, state, assertOpen };
}

export type LockdownService = ReturnType<typeof createLockdownService>;
