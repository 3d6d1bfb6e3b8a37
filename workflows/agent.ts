/**
 * The agent workflow: one long-running workflow per agent, whose id is the agent id. It
 * provisions the sandbox, keeps the agent's record (the `status` query), follows pause, resume
 * and stop signals, runs commands through the `exec` update, notices a sandbox that died (and,
 * under restart_policy on-failure, makes a new one), stops an idle agent on a durable timer, and
 * always removes its container, whatever ends it.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  continueAsNew,
  getExternalWorkflowHandle,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { AgentRecord, AgentStatus } from '../domain/agent.js';
import type { SandboxActivities, SandboxExit } from '../activities/sandbox.js';
import type { AuditActivities, RecordAuditInput } from '../activities/audit.js';
import type { AlertActivities } from '../activities/alerts.js';
import type { EmergencyActivities } from '../activities/emergency.js';
import { lockdownMessage } from '../domain/lockdown.js';
import {
  agentStatusQuery,
  agentSecretsQuery,
  CAPACITY_WORKFLOW_ID,
  containerLostUpdate,
  execUpdate,
  newAgentRecord,
  pauseSignal,
  releaseAgentSignal,
  resumeSignal,
  sandboxTaskQueue,
  SearchAttributes,
  stopSignal,
  touchSignal,
  AgentSignalSchemas,
  type AgentWorkflowInput,
} from './definitions.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { FailureType } from '../domain/failure-types.js';

/** Activities on the agent's Docker host; teardown retries until it succeeds, so nothing leaks. */
function sandboxActivities(host: string, input: AgentWorkflowInput) {
  // Short activities heartbeat: a worker that dies mid-activity is noticed within 10 s.
  const base: ActivityOptions = { taskQueue: sandboxTaskQueue(host), startToCloseTimeout: '1 minute', heartbeatTimeout: '10 seconds' };
  return {
    provision: proxyActivities<SandboxActivities>({
      ...base,
      startToCloseTimeout: '3 minutes',
      retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.SandboxUnavailable, FailureType.ImageMissing, FailureType.NameConflict] },
    }),
    control: proxyActivities<SandboxActivities>({ ...base, retry: { maximumAttempts: 5 } }),
    teardown: proxyActivities<SandboxActivities>({
      ...base,
      startToCloseTimeout: `${input.stopGraceSeconds + 60} seconds`,
      retry: { maximumInterval: '1 minute' },
    }),
    watch: proxyActivities<SandboxActivities>({
      ...base,
      startToCloseTimeout: '1 day',
      heartbeatTimeout: '20 seconds',
      retry: { maximumInterval: '30 seconds' },
    }),
  };
}

// A local activity: the audit store sits beside the control worker, and an append is a short,
// idempotent write, so it skips the task queue round trip a regular activity costs.
const { recordAudit, raiseAlert, lockdownState } = proxyLocalActivities<AuditActivities & AlertActivities & EmergencyActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '30 seconds' },
});

export async function agentWorkflow(input: AgentWorkflowInput): Promise<AgentRecord> {
  refuseUndecodableInput(input);
  // Commands run only as actions (policy, approvals, grants, journal, audit): agents started since
  // then have no `exec` update; histories from before still replay theirs.
  const execDoor = !patched('no-exec-update');
  const agent: AgentRecord = input.carried ?? newAgentRecord(input);
  // A record carried over from a run before restart policies existed.
  agent.restart_policy ??= 'never';
  agent.max_restarts ??= 0;
  agent.restarts ??= 0;
  const sandbox = sandboxActivities(input.host, input);

  let stopRequest: { force: boolean } | null = null;
  let wantPaused = agent.status === 'paused';
  let exited: SandboxExit | null = null;
  /** Set when the reaper found the container gone or stopped before the watcher did. */
  let lostReason: string | null = null;
  let execsInFlight = 0;
  let idleDeadline = Date.now() + input.idleTtlSeconds * 1000;
  const touch = () => void (idleDeadline = Date.now() + input.idleTtlSeconds * 1000);
  /** Actions running in the agent, each with the time it may run until: the agent is not idle. */
  const busy = new Map<string, number>();
  /** Drops entries past their time: actions that ended without saying so (they were cancelled). */
  const pruneBusy = () => {
    for (const [id, until] of busy) if (until < Date.now()) busy.delete(id);
  };
  const stopsAt = () => (pruneBusy(), Math.max(idleDeadline, ...busy.values()));
  /** Set when the idle deadline may have moved earlier: the loop re-arms its timer. */
  let rearm = false;

  // Audit keys are unique per run (the run id) and per entry (a counter replayed identically).
  let audits = 0;
  const audit = (kind: RecordAuditInput['kind'], actor: string, details: Record<string, unknown>) =>
    recordAudit({ key: `${workflowInfo().runId}:${++audits}`, kind, actor, agent_id: input.agentId, details });
  /** Who asked for the change under way: the key behind the last signal, or the system. */
  let requestedBy = 'system';

  /** Set when the lockdown refused this agent: no container exists, and there is no failure to alert about. */
  let refusedByLockdown = false;
  const setStatus = async (status: AgentStatus, reason: string | null = null) => {
    const from = agent.status;
    agent.status = status;
    // Decided before the audit's local activity: a patch marker recorded after a local activity's
    // marker in the same workflow task does not replay.
    const alert = status === 'error' && !refusedByLockdown && patched('alerts');
    upsertSearchAttributes([
      { key: SearchAttributes.agentStatus, value: status },
      ...(agent.sandbox_runtime ? [{ key: SearchAttributes.runtime, value: agent.sandbox_runtime }] : []),
    ]);
    await audit(status === 'stopped' ? 'agent.stopped' : 'agent.status_changed', requestedBy, { from, to: status, reason });
    if (alert) {
      await raiseAlert({
        id: `agent-error-${input.agentId}`,
        type: 'agent.error',
        time: new Date().toISOString(),
        severity: 'warning',
        summary: `agent ${input.agentId} entered error: ${reason}`,
        details: { agent_id: input.agentId, skill_id: input.skillId, host: input.host, from, reason, exit_code: agent.exit_code },
      });
    }
  };

  setHandler(agentStatusQuery, () => agent);
  /** A signal whose argument does not decode or validate is refused and recorded, never acted on. */
  const checked = <T>(name: keyof typeof AgentSignalSchemas, arg: unknown, act: (value: T) => void) => {
    const parsed = AgentSignalSchemas[name].safeParse(arg);
    if (parsed.success) act(parsed.data as T);
    else void audit('message.refused', 'unverified', { message: name, reason: parsed.error.issues.map((i) => i.message).join('; ') });
  };
  /** The vault secrets this agent's actions ran with: their values are redacted from its later outputs. */
  const secretsUsed = new Set<string>(input.secretsUsed ?? []);
  setHandler(agentSecretsQuery, () => [...secretsUsed]);
  setHandler(touchSignal, (arg) =>
    checked<{ action_id: string; busy_ms: number; secrets?: string[] }>('touch', arg, ({ action_id, busy_ms, secrets }) => {
      for (const name of secrets ?? []) secretsUsed.add(name);
      if (busy_ms > 0) busy.set(action_id, Date.now() + busy_ms);
      else busy.delete(action_id);
      touch();
      rearm = true;
    }),
  );
  setHandler(pauseSignal, (arg) => checked<{ by?: string } | undefined>('pause', arg, (v) => void ((wantPaused = true), (requestedBy = v?.by ?? 'system'))));
  setHandler(resumeSignal, (arg) => checked<{ by?: string } | undefined>('resume', arg, (v) => void ((wantPaused = false), (requestedBy = v?.by ?? 'system'))));
  setHandler(stopSignal, (arg) =>
    checked<{ force?: boolean; by?: string }>('stop', arg, ({ force, by }) => {
      // A forced stop may upgrade a graceful one already asked for, never the reverse.
      stopRequest = { force: Boolean(force) || Boolean(stopRequest?.force) };
      requestedBy = by ?? 'system';
    }),
  );
  setHandler(containerLostUpdate, ({ reason, exit_code }) => {
    // The reaper looked a moment ago: an agent that is stopping since then still owns its
    // container's fate, and one that already knows keeps what its watcher saw.
    if (exited || stopRequest || (agent.status !== 'running' && agent.status !== 'paused')) return { accepted: false, status: agent.status };
    exited = { exitCode: exit_code, oomKilled: false, vanished: false };
    lostReason = reason;
    requestedBy = 'reaper';
    return { accepted: true, status: agent.status };
  });
  if (execDoor) setHandler(
    execUpdate,
    async (request) => {
      execsInFlight++;
      touch();
      try {
        const exec = proxyActivities<SandboxActivities>({
          taskQueue: sandboxTaskQueue(input.host),
          startToCloseTimeout: request.timeout_ms + 30_000,
          heartbeatTimeout: '30 seconds',
          // A command is never run twice behind the caller's back: no automatic retry.
          retry: { maximumAttempts: 1 },
        });
        return await exec.execInSandbox({ ...request, agentId: input.agentId });
      } finally {
        execsInFlight--;
        touch();
        rearm = true;
      }
    },
    {
      validator: (_request) => {
        if (agent.status !== 'running' || stopRequest) {
          throw new Error(`agent ${input.agentId} is ${stopRequest ? 'stopping' : agent.status}; commands run only while it is running`);
        }
      },
    },
  );

  /** Watches the current sandbox; a re-provisioned agent watches its new one (the old watch says nothing more). */
  let watcher: CancellationScope | undefined;
  const watch = () => {
    const scope = (watcher = new CancellationScope());
    void scope
      .run(() => sandbox.watch.awaitSandboxExit(input.agentId))
      .then((exit) => void (scope === watcher && (exited = exit)))
      .catch((err) => {
        if (!isCancellation(err)) log.warn('sandbox watch failed', { error: String(err) });
      });
  };

  const provision = () =>
    sandbox.provision.createSandbox({
      agentId: input.agentId,
      host: input.host,
      image: input.image,
      limits: input.limits,
      runtime: input.runtime,
      requireSandbox: input.requireSandbox,
    });
  const started = (created: Awaited<ReturnType<typeof provision>>) => {
    agent.container_id = created.containerId;
    agent.sandbox_runtime = created.runtime;
    agent.sandbox_warning = created.warning;
    agent.started_at = new Date().toISOString();
  };

  /**
   * The container was lost while the agent ran: under restart_policy on-failure, with restarts
   * left and no lockdown, a new sandbox takes its place (null, as when a stop came meanwhile);
   * otherwise the agent's error.
   */
  const reprovision = async (exit: SandboxExit): Promise<string | null> => {
    const reason = lostReason ?? exitReason(exit, input.limits.memory_mb);
    if (agent.restart_policy !== 'on-failure') return reason;
    if (agent.restarts >= agent.max_restarts) return `${reason}; not re-provisioned: all ${agent.max_restarts} restarts used`;
    agent.restarts++;
    agent.exit_code = exit.exitCode;
    requestedBy = 'system (restart policy)';
    await setStatus('provisioning', `${reason}; re-provisioning (restart ${agent.restarts} of ${agent.max_restarts})`);
    // Backing off (1 s, 2 s, 4 s, ... at most a minute) lets an engine that is shutting down finish
    // first: a sandbox made on it now would be stopped with it.
    await sleep(Math.min(60_000, 1000 * 2 ** (agent.restarts - 1)));
    if (stopRequest) return null; // stopped meanwhile: the loop ends and the agent stops, no new sandbox
    const lockdown = await lockdownState();
    if (lockdown) return `${reason}; not re-provisioned: ${lockdownMessage(lockdown)}`;
    // Whatever is left of the old container goes first: the new one takes its name.
    await sandbox.teardown.removeSandbox(input.agentId);
    started(await provision());
    exited = null;
    lostReason = null;
    agent.exit_code = null;
    await setStatus('running');
    touch();
    watch();
    return null;
  };

  let cleanup = true;
  /** False when the container by our name belongs to someone else: teardown must not touch it. */
  let ownsContainer = true;
  let cancelled: unknown = null;
  try {
    if (agent.status === 'provisioning') {
      // Fail closed: an agent started during the lockdown, by any client, never gets a sandbox.
      if (patched('lockdown-check')) {
        const lockdown = await lockdownState();
        if (lockdown) {
          refusedByLockdown = true;
          throw ApplicationFailure.create({ type: FailureType.Lockdown, message: lockdownMessage(lockdown), nonRetryable: true });
        }
      }
      await audit('agent.created', input.requestedBy ?? 'system', {
        skill_id: input.skillId,
        host: input.host,
        runtime: input.runtime,
        limits: input.limits,
      });
      started(await provision());
      await setStatus('running');
    }
    watch();

    for (;;) {
      for (;;) {
        // Never while commands or actions run: their bookkeeping is not carried to the next run.
        const suggestNew = () =>
          workflowInfo().continueAsNewSuggested && execsInFlight === 0 && (pruneBusy(), busy.size === 0) && allHandlersFinished();
        const wake = () => stopRequest !== null || exited !== null || wantPaused !== (agent.status === 'paused') || rearm || suggestNew();
        // While a command runs the agent is not idle: no timer, the command's end re-arms the loop.
        const woke = execsInFlight > 0 ? (await condition(wake), true) : await condition(wake, Math.max(stopsAt() - Date.now(), 1));
        if (stopRequest || exited) break;
        if (rearm) {
          rearm = false;
          continue;
        }
        if (!woke) {
          if (execsInFlight === 0 && Date.now() >= stopsAt()) {
            log.info('agent idle; stopping', { idleTtlSeconds: input.idleTtlSeconds });
            stopRequest = { force: false };
            requestedBy = 'system (idle timeout)';
            break;
          }
          continue;
        }
        if (wantPaused && agent.status === 'running') {
          await sandbox.control.pauseSandbox(input.agentId);
          await setStatus('paused');
          touch();
        } else if (!wantPaused && agent.status === 'paused') {
          await sandbox.control.unpauseSandbox(input.agentId);
          await setStatus('running');
          touch();
        } else if (suggestNew()) {
          cleanup = false;
          watcher?.cancel();
          await continueAsNew<typeof agentWorkflow>({ ...input, carried: agent, secretsUsed: [...secretsUsed] });
        }
      }

      if (!exited || stopRequest) break;
      const exit: SandboxExit = exited;
      const refusal = await reprovision(exit);
      if (refusal === null) continue;
      agent.exit_code = exit.exitCode;
      agent.error_message = refusal;
      await setStatus('error', agent.error_message);
      break;
    }
  } catch (err) {
    if (isCancellation(err)) {
      cancelled = err;
    } else if (cleanup) {
      ownsContainer = !errorText(err).startsWith('NameConflict') && !refusedByLockdown;
      agent.error_message = errorText(err);
      await CancellationScope.nonCancellable(() => setStatus('error', agent.error_message));
    }
    if (!cleanup) throw err; // continue-as-new: the next run owns the sandbox
  } finally {
    if (cleanup) {
      await CancellationScope.nonCancellable(async () => {
        watcher?.cancel();
        const failed = agent.status === 'error';
        if (!failed) await setStatus('stopping');
        const stopped = ownsContainer
          ? await sandbox.teardown.stopSandbox({
              agentId: input.agentId,
              graceSeconds: stopRequest?.force || cancelled ? 0 : input.stopGraceSeconds,
            })
          : { exitCode: null };
        if (ownsContainer) await sandbox.teardown.removeSandbox(input.agentId);
        // Free the slot before saying "stopped": whoever sees the final status may create at once.
        await getExternalWorkflowHandle(CAPACITY_WORKFLOW_ID)
          .signal(releaseAgentSignal, { agentId: input.agentId })
          .catch((err) => log.warn('could not release capacity slot', { error: String(err) }));
        agent.stopped_at = new Date().toISOString();
        if (!failed) {
          agent.exit_code = stopped.exitCode;
          await setStatus('stopped');
        } else {
          await audit('agent.stopped', 'system', { from: 'error', to: 'error', reason: agent.error_message, exit_code: agent.exit_code });
        }
        await condition(allHandlersFinished);
      });
    }
  }
  if (cancelled) throw cancelled;
  return agent;
}

/** Why the sandbox ended, as the agent's error message says it. */
function exitReason(exit: SandboxExit, memoryMb: number): string {
  if (exit.oomKilled) return `sandbox killed: out of memory (limit ${memoryMb} MiB)`;
  if (exit.vanished) return 'sandbox container disappeared (removed outside Warden, or lost by the Docker engine)';
  // The sandbox's init exits 0 only on SIGTERM, and no process inside can SIGKILL it: while the
  // agent runs, Warden sends neither, so these came from outside (an engine shutting down
  // SIGKILLs what SIGTERM did not stop, such as a paused gVisor sandbox).
  if (exit.exitCode === 0) return 'sandbox container stopped outside Warden (SIGTERM: `docker stop`, or a Docker engine shutdown or restart)';
  if (exit.exitCode === 137) return 'sandbox container killed outside Warden (SIGKILL: `docker kill` or `docker rm -f`, or a Docker engine shutdown or restart)';
  return `sandbox exited unexpectedly with code ${exit.exitCode}`;
}

function errorText(err: unknown): string {
  // Activity failures wrap the activity's own error: report the innermost message.
  let cause = err as { message?: string; cause?: unknown } | undefined;
  while (cause?.cause) cause = cause.cause as typeof cause;
  const message = cause?.message ?? String(err);
  const type = err instanceof ApplicationFailure ? err.type : (cause as ApplicationFailure | undefined)?.type;
  return type ? `${type}: ${message}` : message;
}
