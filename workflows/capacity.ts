/**
 * The capacity workflow: one long-running workflow that admits agents up to max_agents. Its
 * update handlers run one at a time, so N+k concurrent creates with room for N admit exactly N.
 * Agent workflows release their slot when they end; slots of agents that ended without doing so
 * (terminated workflows, an API that died between admission and start) are reclaimed when the
 * capacity is full. Each admission also reserves the agent's memory and cores on its Docker host,
 * refused when the host cannot hold them. It also holds the emergency lockdown: admissions are
 * refused while it holds, and the update that sets it starts the emergency stop workflow (under an
 * id no one can take ahead of it), so a lockdown never exists without the stop that goes with it.
 * The audit log records the lockdown too, and every run restores it from there before it admits
 * anything: a terminated capacity workflow, recreated empty, stays locked.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  log,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  startChild,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control.js';
import type { SandboxActivities } from '../activities/sandbox.js';
import { DOCKER_HOST_ID, hostShortfall, type HostReservation } from '../domain/host-capacity.js';
import { emergencyStopWorkflowId, lockdownMessage, type Lockdown, type LockdownActor } from '../domain/lockdown.js';
import type { emergencyStopWorkflow } from './emergency-stop.js';
import {
  admitAgentUpdate,
  capacityQuery,
  CONTROL_TASK_QUEUE,
  describeHostUpdate,
  liftLockdownUpdate,
  lockdownQuery,
  lockdownUpdate,
  releaseAgentSignal,
  sandboxTaskQueue,
  type CapacityState,
} from './definitions.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { raiseAlert, recordAudit, recordedLockdownState } from './local-activities.js';
import { FailureType } from '../domain/failure-types.js';

const { closedAgents } = proxyActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** A freshly admitted agent gets this long to start its workflow before its slot can be reclaimed. */
export const ADMISSION_GRACE_MS = 60_000;

/** Attempts at starting an emergency stop, each under a new id, before the lockdown is rolled back. */
const STOP_START_ATTEMPTS = 3;

export async function capacityWorkflow(state: CapacityState = { admitted: {} }): Promise<void> {
  refuseUndecodableInput(state);
  const admitted = new Map(Object.entries(state.admitted));
  const reserved = new Map<string, HostReservation>(Object.entries(state.reserved ?? {}));
  const release = (agentId: string) => void (admitted.delete(agentId), reserved.delete(agentId));
  let lockdown: Lockdown | null = state.lockdown ?? null;
  let stops = state.stops ?? 0;
  // Fail closed: before this run admits anything, the lockdown the audit log records is restored
  // (whatever state this run was started with: by continue-as-new, or by anyone with a client).
  // Patch guards restoring the lockdown from the audit log; deprecatePatch once no open capacity run predates it: capacity and capacity-lockdown do.
  let tail: Promise<unknown> = patched('lockdown-from-audit')
    ? recordedLockdownState().then((recorded) => void (lockdown ??= recorded))
    : Promise.resolve();
  // Ids this workflow makes come from its run id and a counter, not from the workflow's random
  // numbers: a worker with tracing on draws from those too (span ids), so a run replayed on a
  // worker with tracing off (or on) would otherwise make other ids and fail as nondeterministic.
  // Patch guards ids without random numbers; deprecatePatch once no open capacity run predates it: all three capacity histories do.
  const idsWithoutRandom = patched('capacity-ids-without-random');
  let made = 0;
  const newId = () => (idsWithoutRandom ? `${workflowInfo().runId}-${++made}` : uuid4());
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  const snapshot = (): CapacityState => ({
    admitted: Object.fromEntries(admitted),
    lockdown,
    stops,
    reserved: Object.fromEntries(reserved),
  });
  setHandler(capacityQuery, snapshot);
  setHandler(lockdownQuery, () => lockdown);
  setHandler(releaseAgentSignal, ({ agentId }) => release(agentId));
  setHandler(
    admitAgentUpdate,
    ({ agentId, maxAgents, alertPercent, reservation, hostBudget }) =>
      oneAtATime(async () => {
        if (lockdown) {
          const message = lockdownMessage(lockdown);
          await recordAudit({
            key: `lockdown-refused:${newId()}`,
            kind: 'system.lockdown_refused',
            actor: 'system',
            agent_id: agentId,
            details: { what: 'agent', reason: message },
          });
          throw ApplicationFailure.create({ type: FailureType.Lockdown, message, nonRetryable: true });
        }
        if (admitted.has(agentId)) {
          throw ApplicationFailure.create({
            type: FailureType.AgentExists,
            message: `agent ${agentId} already exists`,
            nonRetryable: true,
          });
        }
        if (admitted.size >= maxAgents) {
          const now = Date.now();
          const settled = [...admitted].filter(([, at]) => now - Date.parse(at) > ADMISSION_GRACE_MS).map(([id]) => id);
          if (settled.length > 0) for (const id of await closedAgents(settled)) release(id);
        }
        if (admitted.size >= maxAgents) {
          throw ApplicationFailure.create({
            type: FailureType.CapacityExceeded,
            message: `capacity reached: ${admitted.size} of ${maxAgents} agents are running; stop one or raise WARDEN_MAX_AGENTS`,
            nonRetryable: true,
          });
        }
        const shortfall = reservation && hostBudget ? hostShortfall(reservation, [...reserved.values()], hostBudget) : null;
        if (shortfall) throw ApplicationFailure.create({ type: FailureType.HostCapacityExceeded, message: shortfall, nonRetryable: true });
        admitted.set(agentId, new Date().toISOString());
        if (reservation) reserved.set(agentId, reservation);
        // Alert when this admission crosses the threshold (not on every admission above it).
        const threshold = alertPercent ? Math.ceil((maxAgents * alertPercent) / 100) : 0;
        if (threshold > 0 && admitted.size === threshold) {
          await raiseAlert({
            id: `capacity-${newId()}`,
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
      validator: ({ agentId, maxAgents, reservation, hostBudget }) => {
        if (typeof agentId !== 'string' || agentId.length === 0) throw new Error('agentId is required');
        if (!Number.isInteger(maxAgents) || maxAgents < 1) throw new Error('maxAgents must be a positive integer');
        if ((reservation === undefined) !== (hostBudget === undefined)) throw new Error('reservation and hostBudget go together');
      },
    },
  );

  // Changes no state and emits no command until called: histories from before replay as they are.
  setHandler(
    describeHostUpdate,
    ({ host }) =>
      proxyActivities<SandboxActivities>({
        taskQueue: sandboxTaskQueue(host),
        // A host whose worker does not take it within seconds is not answering.
        scheduleToStartTimeout: '5 seconds',
        startToCloseTimeout: '10 seconds',
        retry: { maximumAttempts: 1 },
      }).describeDockerHost(),
    {
      validator: ({ host }) => {
        if (typeof host !== 'string' || !DOCKER_HOST_ID.test(host)) throw new Error('host: a Docker host id');
      },
    },
  );

  setHandler(
    lockdownUpdate,
    (actor) => {
      // Decided as the update arrives, before any local activity of this workflow task.
      // Patch guards unique emergency stop ids; deprecatePatch once no open capacity run predates it: capacity-lockdown does.
      const uniqueStopIds = patched('emergency-stop-unique-id');
      return oneAtATime(async () => {
        const alreadyLocked = lockdown !== null;
        const stop = ++stops;
        if (!uniqueStopIds) return startNumberedStop(actor, stop, alreadyLocked);
        const stopWorkflowId = emergencyStopWorkflowId(newId());
        if (!lockdown) {
          lockdown = {
            since: new Date().toISOString(),
            by: actor.by,
            by_name: actor.by_name,
            reason: actor.reason,
            stop,
            stop_workflow_id: stopWorkflowId,
          };
          await recordAudit({ key: `lockdown:${newId()}`, kind: 'system.lockdown', actor: actor.by, details: { ...lockdown } });
        }
        const started = await startStop(actor, stop, lockdown, stopWorkflowId);
        if (started) return { lockdown, already_locked: alreadyLocked, stop_workflow_id: started };
        // No stop could start: a lockdown this update began is rolled back, never left without its stop.
        if (!alreadyLocked) {
          const lifted = lockdown;
          lockdown = null;
          await recordAudit({
            key: `lockdown-lifted:${newId()}`,
            kind: 'system.lockdown_lifted',
            actor: 'system',
            details: { reason: 'the emergency stop could not start', by_name: 'system', locked_since: lifted.since, stop: lifted.stop },
          });
        }
        throw ApplicationFailure.create({
          type: FailureType.EmergencyStopNotStarted,
          message: `the emergency stop could not start after ${STOP_START_ATTEMPTS} attempts; ${alreadyLocked ? 'the lockdown holds' : 'no lockdown was set'}: try again`,
          nonRetryable: true,
        });
      });
    },
    { validator: validateActor },
  );

  /** Starts the stop's workflow, abandoned (it carries on whatever becomes of this run); its id, or null when every attempt failed. */
  async function startStop(actor: LockdownActor, stop: number, held: Lockdown, firstId: string): Promise<string | null> {
    for (let attempt = 1, workflowId = firstId; attempt <= STOP_START_ATTEMPTS; attempt++, workflowId = emergencyStopWorkflowId(newId())) {
      try {
        await startChild<typeof emergencyStopWorkflow>('emergencyStopWorkflow', {
          workflowId,
          taskQueue: CONTROL_TASK_QUEUE,
          parentClosePolicy: ParentClosePolicy.ABANDON,
          args: [{ stop, lockdown: held, requested: actor, admitted: [...admitted.keys()] }],
        });
        return workflowId;
      } catch (err) {
        log.warn('an emergency stop did not start', { workflowId, error: String(err) });
      }
    }
    return null;
  }

  /** Histories from before unique stop ids: the stop's workflow is numbered. */
  async function startNumberedStop(actor: LockdownActor, stop: number, alreadyLocked: boolean) {
    if (!lockdown) {
      lockdown = { since: new Date().toISOString(), by: actor.by, by_name: actor.by_name, reason: actor.reason, stop };
      await recordAudit({ key: `lockdown:${newId()}`, kind: 'system.lockdown', actor: actor.by, details: { ...lockdown } });
    }
    await startChild<typeof emergencyStopWorkflow>('emergencyStopWorkflow', {
      workflowId: emergencyStopWorkflowId(stop),
      taskQueue: CONTROL_TASK_QUEUE,
      parentClosePolicy: ParentClosePolicy.ABANDON,
      args: [{ stop, lockdown, requested: actor, admitted: [...admitted.keys()] }],
    });
    return { lockdown, already_locked: alreadyLocked, stop_workflow_id: emergencyStopWorkflowId(stop) };
  }
  setHandler(
    liftLockdownUpdate,
    (actor) =>
      oneAtATime(async () => {
        const lifted = lockdown;
        if (!lifted)
          throw ApplicationFailure.create({
            type: FailureType.NotLocked,
            message: 'Warden is not in lockdown; there is nothing to resume',
            nonRetryable: true,
          });
        lockdown = null;
        const resumedAt = new Date().toISOString();
        await recordAudit({
          key: `lockdown-lifted:${newId()}`,
          kind: 'system.lockdown_lifted',
          actor: actor.by,
          details: { reason: actor.reason, by_name: actor.by_name, locked_since: lifted.since, stop: lifted.stop },
        });
        await raiseAlert({
          id: `resume-${newId()}`,
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
  if (typeof actor.reason !== 'string' || actor.reason.trim().length === 0 || actor.reason.length > 500)
    throw new Error('reason: 1 to 500 characters');
}
