/**
 * The agent workflow: one long-running workflow per agent, whose id is the agent id. It
 * provisions the sandbox, keeps the agent's record (the `status` query), follows pause, resume
 * and stop signals, notices a sandbox that died (and, under restart_policy on-failure, makes a new
 * one), stops an idle agent on a durable timer, and always removes its container, whatever ends
 * it. Its state and transitions live in AgentEntity; here are the handlers and the loop.
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
  setHandler,
  sleep,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { AgentRecord, AgentStatus } from '../domain/agent.js';
import type { CreateSandboxResult, SandboxActivities } from '../activities/sandbox.js';
import type { SandboxExit, SandboxWatchActivities } from '../activities/sandbox-watch.js';
import type { RecordAuditInput } from '../activities/audit.js';
import { lockdownMessage } from '../domain/lockdown.js';
import {
  agentStatusQuery,
  agentSecretsQuery,
  agentUsageUpdate,
  CAPACITY_WORKFLOW_ID,
  containerLostUpdate,
  execUpdate,
  pauseSignal,
  releaseAgentSignal,
  resumeSignal,
  sandboxTaskQueue,
  sandboxWatchTaskQueue,
  SearchAttributes,
  stopSignal,
  touchSignal,
  AgentSignalSchemas,
  type AgentWorkflowInput,
} from './definitions.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { FailureType } from '../domain/failure-types.js';
import { AgentEntity } from './agent-entity.js';
import { failureSummary, failureType } from './failures.js';
import { auditTrail, lockdownState, raiseAlert } from './local-activities.js';

/** Activities on the agent's Docker host; teardown retries until it succeeds, so nothing leaks. */
function sandboxActivities(host: string, input: AgentWorkflowInput) {
  // Short activities heartbeat: a worker that dies mid-activity is noticed within 10 s.
  const base: ActivityOptions = { taskQueue: sandboxTaskQueue(host), startToCloseTimeout: '1 minute', heartbeatTimeout: '10 seconds' };
  return {
    provision: proxyActivities<SandboxActivities>({
      ...base,
      startToCloseTimeout: '3 minutes',
      retry: {
        maximumAttempts: 5,
        nonRetryableErrorTypes: [FailureType.SandboxUnavailable, FailureType.ImageMissing, FailureType.NameConflict],
      },
    }),
    control: proxyActivities<SandboxActivities>({ ...base, retry: { maximumAttempts: 5 } }),
    // A read someone waits for: a host whose worker does not pick it up within seconds is down.
    usage: proxyActivities<SandboxActivities>({
      ...base,
      scheduleToStartTimeout: '5 seconds',
      startToCloseTimeout: '15 seconds',
      retry: { maximumAttempts: 1 },
    }),
    teardown: proxyActivities<SandboxActivities>({
      ...base,
      startToCloseTimeout: `${input.stopGraceSeconds + 60} seconds`,
      retry: { maximumInterval: '1 minute' },
    }),
    // Only the task queue differs from before: the SDK matches a scheduled activity to its
    // command by id and type, so histories with the watch on the sandbox queue still replay.
    watch: proxyActivities<SandboxWatchActivities>({
      ...base,
      taskQueue: sandboxWatchTaskQueue(host),
      startToCloseTimeout: '1 day',
      heartbeatTimeout: '20 seconds',
      retry: { maximumInterval: '30 seconds' },
    }),
  };
}

/** For the audit entry of a new sandbox: whether a warm pool member was claimed (hit), none was idle (miss), or no pool keeps its profile. */
const sandboxOrigin = (created: CreateSandboxResult) => (created.pool ? { sandbox_pool: created.pool } : {});

export async function agentWorkflow(input: AgentWorkflowInput): Promise<AgentRecord> {
  refuseUndecodableInput(input);
  // Commands run only as actions (policy, approvals, grants, journal, audit): agents started since
  // then have no `exec` update; histories from before still replay theirs.
  // Patch guards the retired `exec` update; deprecatePatch once no open agent predates it: every recorded agent history does (lifecycle and restart-on-failure use the update).
  const execDoor = !patched('no-exec-update');
  const agent = new AgentEntity(input);
  const record = agent.record;
  const sandbox = sandboxActivities(input.host, input);
  const trail = auditTrail(workflowInfo().runId);
  const audit = (kind: RecordAuditInput['kind'], actor: string, details: Record<string, unknown>) =>
    trail({ kind, actor, agent_id: input.agentId, details });

  /** `details`: more for the audit entry, e.g. whether the sandbox came from the warm pool. */
  const setStatus = async (status: AgentStatus, reason: string | null = null, details: Record<string, unknown> = {}) => {
    const from = agent.enter(status);
    // Decided before the audit's local activity: a patch marker recorded after a local activity's
    // marker in the same workflow task does not replay.
    // Patch guards the agent.error alert; no recorded history predates it: deprecatePatch once no open agent does.
    const alert = status === 'error' && !agent.refusedByLockdown && patched('alerts');
    upsertSearchAttributes([
      { key: SearchAttributes.agentStatus, value: status },
      ...(record.sandbox_runtime ? [{ key: SearchAttributes.runtime, value: record.sandbox_runtime }] : []),
    ]);
    await audit(status === 'stopped' ? 'agent.stopped' : 'agent.status_changed', agent.requestedBy, {
      from,
      to: status,
      reason,
      ...details,
    });
    if (alert) await raiseAlert(agent.errorAlert(from, reason));
  };

  setHandler(agentStatusQuery, () => record);
  setHandler(agentSecretsQuery, () => [...agent.secretsUsed]);
  /** A signal whose argument does not decode or validate is refused and recorded, never acted on. */
  const checked = <T>(name: keyof typeof AgentSignalSchemas, arg: unknown, act: (value: T) => void) => {
    const parsed = AgentSignalSchemas[name].safeParse(arg);
    if (parsed.success) act(parsed.data as T);
    else void audit('message.refused', 'unverified', { message: name, reason: parsed.error.issues.map((i) => i.message).join('; ') });
  };
  setHandler(touchSignal, (arg) =>
    checked<{ action_id: string; busy_ms: number; secrets?: string[] }>('touch', arg, (busy) => agent.actionBusy(busy)),
  );
  setHandler(pauseSignal, (arg) => checked<{ by?: string } | undefined>('pause', arg, (v) => agent.requestPause(v?.by)));
  setHandler(resumeSignal, (arg) => checked<{ by?: string } | undefined>('resume', arg, (v) => agent.requestResume(v?.by)));
  setHandler(stopSignal, (arg) =>
    checked<{ force?: boolean; by?: string }>('stop', arg, ({ force, by }) => agent.requestStop(Boolean(force), by)),
  );
  // A new handler emits no command until it is called: histories from before replay as they are.
  setHandler(agentUsageUpdate, () => sandbox.usage.readSandboxUsage(input.agentId), {
    validator: () => {
      const refusal = agent.usageRefusal();
      if (refusal) throw ApplicationFailure.create({ type: FailureType.AgentNotRunning, message: refusal, nonRetryable: true });
    },
  });
  setHandler(containerLostUpdate, ({ reason, exit_code }) => agent.containerLost(reason, exit_code));
  if (execDoor) {
    setHandler(
      execUpdate,
      async (request) => {
        agent.execStarted();
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
          agent.execEnded();
        }
      },
      {
        validator: (_request) => {
          const refusal = agent.execRefusal();
          if (refusal) throw new Error(refusal);
        },
      },
    );
  }

  /** Watches the current sandbox; a re-provisioned agent watches its new one (the old watch says nothing more). */
  let watcher: CancellationScope | undefined;
  const watch = () => {
    const scope = (watcher = new CancellationScope());
    void scope
      .run(() => sandbox.watch.awaitSandboxExit(input.agentId))
      .then((exit) => void (scope === watcher && (agent.exited = exit)))
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

  /**
   * The container was lost while the agent ran: under restart_policy on-failure, with restarts
   * left and no lockdown, a new sandbox takes its place (null, as when a stop came meanwhile);
   * otherwise the agent's error.
   */
  const reprovision = async (exit: SandboxExit): Promise<string | null> => {
    const reason = agent.lossReason(exit);
    const refusal = agent.restartRefusal(reason);
    if (refusal !== null) return refusal;
    await setStatus('provisioning', agent.beginRestart(exit, reason));
    await sleep(agent.restartBackoffMs());
    if (agent.stopRequest) return null; // stopped meanwhile: the loop ends and the agent stops, no new sandbox
    const lockdown = await lockdownState();
    if (lockdown) return `${reason}; not re-provisioned: ${lockdownMessage(lockdown)}`;
    // Whatever is left of the old container goes first: the new one takes its name.
    await sandbox.teardown.removeSandbox(input.agentId);
    const created = await provision();
    agent.restarted(created);
    await setStatus('running', null, sandboxOrigin(created));
    agent.touch();
    watch();
    return null;
  };

  // Never while commands or actions run: their bookkeeping is not carried to the next run.
  const continueAsNewDue = () => workflowInfo().continueAsNewSuggested && agent.quiet() && allHandlersFinished();
  const wake = () => agent.needsAttention() || continueAsNewDue();

  /** False once the run continues as new: the next run owns the sandbox. */
  let cleanup = true;
  let cancelled: unknown = null;
  try {
    if (record.status === 'provisioning') {
      // Fail closed: an agent started during the lockdown, by any client, never gets a sandbox.
      // Patch guards the lockdown check before provisioning; no recorded history predates it: deprecatePatch once no open agent does.
      if (patched('lockdown-check')) {
        const lockdown = await lockdownState();
        if (lockdown) {
          agent.refusedByLockdown = true;
          throw ApplicationFailure.create({ type: FailureType.Lockdown, message: lockdownMessage(lockdown), nonRetryable: true });
        }
      }
      await audit('agent.created', input.requestedBy ?? 'system', {
        skill_id: input.skillId,
        host: input.host,
        runtime: input.runtime,
        limits: input.limits,
      });
      const created = await provision();
      agent.sandboxStarted(created);
      await setStatus('running', null, sandboxOrigin(created));
    }
    watch();

    for (;;) {
      const wait = agent.idleWaitMs();
      const woke = wait === null ? (await condition(wake), true) : await condition(wake, wait);
      if (agent.stopRequest) break;
      if (agent.exited) {
        const exit = agent.exited;
        const refusal = await reprovision(exit);
        if (refusal === null) continue;
        agent.lost(exit, refusal);
        await setStatus('error', record.error_message);
        break;
      }
      if (agent.takeRearm()) continue;
      if (!woke) {
        if (agent.stopIfIdle()) {
          log.info('agent idle; stopping', { idleTtlSeconds: input.idleTtlSeconds });
          break;
        }
        continue;
      }
      if (agent.pauseDue) {
        await sandbox.control.pauseSandbox(input.agentId);
        await setStatus('paused');
        agent.touch();
      } else if (agent.resumeDue) {
        await sandbox.control.unpauseSandbox(input.agentId);
        await setStatus('running');
        agent.touch();
      } else if (continueAsNewDue()) {
        cleanup = false;
        watcher?.cancel();
        await continueAsNew<typeof agentWorkflow>({ ...input, carried: record, secretsUsed: [...agent.secretsUsed] });
      }
    }
  } catch (err) {
    if (isCancellation(err)) {
      cancelled = err;
    } else if (cleanup) {
      agent.failed(failureSummary(err), failureType(err) === FailureType.NameConflict);
      await CancellationScope.nonCancellable(() => setStatus('error', record.error_message));
    }
    if (!cleanup) throw err; // continue-as-new: the next run owns the sandbox
  } finally {
    if (cleanup) {
      await CancellationScope.nonCancellable(async () => {
        watcher?.cancel();
        const failed = record.status === 'error';
        if (!failed) await setStatus('stopping');
        const stopped = agent.ownsContainer
          ? await sandbox.teardown.stopSandbox({
              agentId: input.agentId,
              graceSeconds: agent.stopRequest?.force || cancelled ? 0 : input.stopGraceSeconds,
            })
          : { exitCode: null };
        if (agent.ownsContainer) await sandbox.teardown.removeSandbox(input.agentId);
        // Free the slot before saying "stopped": whoever sees the final status may create at once.
        await getExternalWorkflowHandle(CAPACITY_WORKFLOW_ID)
          .signal(releaseAgentSignal, { agentId: input.agentId })
          .catch((err) => log.warn('could not release capacity slot', { error: String(err) }));
        record.stopped_at = new Date().toISOString();
        if (!failed) {
          record.exit_code = stopped.exitCode;
          await setStatus('stopped');
        } else {
          await audit('agent.stopped', 'system', { from: 'error', to: 'error', reason: record.error_message, exit_code: record.exit_code });
        }
        await condition(allHandlersFinished);
      });
    }
  }
  if (cancelled) throw cancelled;
  return record;
}
