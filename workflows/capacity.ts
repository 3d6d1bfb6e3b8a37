/**
 * The capacity workflow: one long-running workflow that admits agents up to max_agents. Its
 * update handlers run one at a time, so N+k concurrent creates with room for N admit exactly N.
 * Agent workflows release their slot when they end; slots of agents that ended without doing so
 * (terminated workflows, an API that died between admission and start) are reclaimed when the
 * capacity is full. It also holds the emergency lockdown: admissions are refused while it holds,
 * and the update that sets it starts the emergency stop workflow, so a lockdown never exists
 * without the stop that goes with it.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  ParentClosePolicy,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control.js';
import type { AlertActivities } from '../activities/alerts.js';
import type { AuditActivities } from '../activities/audit.js';
import { emergencyStopWorkflowId, lockdownMessage, type Lockdown, type LockdownActor } from '../domain/lockdown.js';
import type { emergencyStopWorkflow } from './emergency-stop.js';
import {
  admitAgentUpdate,
  capacityQuery,
  CONTROL_TASK_QUEUE,
  liftLockdownUpdate,
  lockdownQuery,
  lockdownUpdate,
  releaseAgentSignal,
  type CapacityState,
} from './definitions.js';

const { closedAgents } = proxyActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** A freshly admitted agent gets this long to start its workflow before its slot can be reclaimed. */
export const ADMISSION_GRACE_MS = 60_000;

const { recordAudit, raiseAlert } = proxyLocalActivities<AuditActivities & AlertActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '30 seconds' },
});

export async function capacityWorkflow(state: CapacityState = { admitted: {} }): Promise<void> {
  const admitted = new Map(Object.entries(state.admitted));
  let lockdown: Lockdown | null = state.lockdown ?? null;
  let stops = state.stops ?? 0;
  let tail: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const snapshot = (): CapacityState => ({ admitted: Object.fromEntries(admitted), lockdown, stops });
  setHandler(capacityQuery, snapshot);
  setHandler(lockdownQuery, () => lockdown);
  setHandler(releaseAgentSignal, ({ agentId }) => void admitted.delete(agentId));
  setHandler(
    admitAgentUpdate,
    ({ agentId, maxAgents, alertPercent }) =>
      oneAtATime(async () => {
        if (lockdown) {
          const message = lockdownMessage(lockdown);
          await recordAudit({ key: `lockdown-refused:${uuid4()}`, kind: 'system.lockdown_refused', actor: 'system', agent_id: agentId, details: { what: 'agent', reason: message } });
          throw ApplicationFailure.create({ type: 'Lockdown', message, nonRetryable: true });
        }
        if (admitted.has(agentId)) {
          throw ApplicationFailure.create({ type: 'AgentExists', message: `agent ${agentId} already exists`, nonRetryable: true });
        }
        if (admitted.size >= maxAgents) {
          const now = Date.now();
          const settled = [...admitted].filter(([, at]) => now - Date.parse(at) > ADMISSION_GRACE_MS).map(([id]) => id);
          if (settled.length > 0) for (const id of await closedAgents(settled)) admitted.delete(id);
        }
        if (admitted.size >= maxAgents) {
          throw ApplicationFailure.create({
            type: 'CapacityExceeded',
            message: `capacity reached: ${admitted.size} of ${maxAgents} agents are running; stop one or raise WARDEN_MAX_AGENTS`,
            nonRetryable: true,
          });
        }
        admitted.set(agentId, new Date().toISOString());
        // Alert when this admission crosses the threshold (not on every admission above it).
        const threshold = alertPercent ? Math.ceil((maxAgents * alertPercent) / 100) : 0;
        if (threshold > 0 && admitted.size === threshold) {
          await raiseAlert({
            id: `capacity-${uuid4()}`,
            type: 'capacity.high',
            time: new Date().toISOString(),
            severity: 'warning',
            summary: `capacity at ${admitted.size} of ${maxAgents} agents (alert threshold ${alertPercent}%)`,
            details: { admitted: admitted.size, max_agents: maxAgents, threshold_percent: alertPercent },
          });
        }
        return { admitted: admitted.size, max_agents: maxAgents };
      }),
    {
      validator: ({ agentId, maxAgents }) => {
        if (typeof agentId !== 'string' || agentId.length === 0) throw new Error('agentId is required');
        if (!Number.isInteger(maxAgents) || maxAgents < 1) throw new Error('maxAgents must be a positive integer');
      },
    },
  );

  setHandler(
    lockdownUpdate,
    (actor) =>
      oneAtATime(async () => {
        const alreadyLocked = lockdown !== null;
        const stop = ++stops;
        if (!lockdown) {
          lockdown = { since: new Date().toISOString(), by: actor.by, by_name: actor.by_name, reason: actor.reason, stop };
          await recordAudit({ key: `lockdown:${uuid4()}`, kind: 'system.lockdown', actor: actor.by, details: { ...lockdown } });
        }
        // Abandoned: the stop carries on whatever becomes of this run (continue-as-new included).
        await startChild<typeof emergencyStopWorkflow>('emergencyStopWorkflow', {
          workflowId: emergencyStopWorkflowId(stop),
          taskQueue: CONTROL_TASK_QUEUE,
          parentClosePolicy: ParentClosePolicy.ABANDON,
          args: [{ stop, lockdown, requested: actor, admitted: [...admitted.keys()] }],
        });
        return { lockdown, already_locked: alreadyLocked, stop_workflow_id: emergencyStopWorkflowId(stop) };
      }),
    { validator: validateActor },
  );
  setHandler(
    liftLockdownUpdate,
    (actor) =>
      oneAtATime(async () => {
        const lifted = lockdown;
        if (!lifted) throw ApplicationFailure.create({ type: 'NotLocked', message: 'Warden is not in lockdown; there is nothing to resume', nonRetryable: true });
        lockdown = null;
        const resumedAt = new Date().toISOString();
        await recordAudit({
          key: `lockdown-lifted:${uuid4()}`,
          kind: 'system.lockdown_lifted',
          actor: actor.by,
          details: { reason: actor.reason, by_name: actor.by_name, locked_since: lifted.since, stop: lifted.stop },
        });
        await raiseAlert({
          id: `resume-${uuid4()}`,
          type: 'emergency_resume',
          time: resumedAt,
          severity: 'info',
          summary: `Warden resumed by ${actor.by_name}: ${actor.reason}`,
          details: { by: actor.by, by_name: actor.by_name, reason: actor.reason, locked_since: lifted.since, stop: lifted.stop },
        });
        return { lifted, resumed_at: resumedAt };
      }),
    { validator: validateActor },
  );

  await condition(() => workflowInfo().continueAsNewSuggested && allHandlersFinished());
  await continueAsNew<typeof capacityWorkflow>(snapshot());
}

function validateActor(actor: LockdownActor): void {
  if (typeof actor?.by !== 'string' || actor.by.length === 0) throw new Error('by is required');
  if (typeof actor.reason !== 'string' || actor.reason.trim().length === 0 || actor.reason.length > 500) throw new Error('reason: 1 to 500 characters');
}
