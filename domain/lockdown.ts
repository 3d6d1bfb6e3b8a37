/**
 * The emergency lockdown: while it holds, no agent is admitted and no action runs, until an admin
 * resumes. Held by the capacity workflow (durable, and serialised with every admission) and
 * recorded in the audit log, whose newest system.lockdown or system.lockdown_lifted entry is the
 * record of truth: terminating the capacity workflow cannot lift it. These are its records and the
 * message every refusal carries. Workflow-safe: no I/O, no imports.
 */

export interface Lockdown {
  since: string;
  /** The API key id of the admin who stopped everything, and its name. */
  by: string;
  by_name: string;
  reason: string;
  /** The number of the emergency stop that began it. */
  stop: number;
  /** The workflow of that stop (absent from lockdowns begun before stop ids were unique: `warden-emergency-stop-<stop>`). */
  stop_workflow_id?: string;
}

/** Who asks for a lockdown or its end, and why (the identity comes from the API key, never the body). */
export interface LockdownActor {
  by: string;
  by_name: string;
  reason: string;
}

export interface EmergencyStopReport {
  stop_workflow_id: string;
  /** Agents sent a forced stop. */
  agents_stopped: string[];
  /** Agents admitted or listed whose workflow had already ended. */
  agents_already_ended: string[];
  /** Actions that were waiting for approval and are now cancelled. */
  approvals_cancelled: string[];
  /** Actions approved or executing when the stop came: their command is not interrupted, their agent is stopped. */
  actions_in_flight: string[];
  counts: { agents_stopped: number; approvals_cancelled: number; actions_in_flight: number };
  completed_at: string;
}

/** A stop's workflow id: a uuid (from the workflow's deterministic uuid4) that no one can take ahead of it. */
export const emergencyStopWorkflowId = (run: number | string): string => `warden-emergency-stop-${run}`;

/** The workflow of the stop that began this lockdown. */
export const stopWorkflowIdOf = (lockdown: Lockdown): string => lockdown.stop_workflow_id ?? emergencyStopWorkflowId(lockdown.stop);

/** What every refusal during the lockdown says. */
export function lockdownMessage(lockdown: Lockdown): string {
  return `Warden is in emergency lockdown since ${lockdown.since} by ${lockdown.by_name}: ${lockdown.reason}; an admin must POST /api/system/resume`;
}
