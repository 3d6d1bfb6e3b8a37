/**
 * The action workflow: one per action, its id the action id. The API has validated the parameters
 * and the policy has judged them before it starts; here the action waits for the approvals its
 * level requires (or expires on a durable timer and never runs), runs once in the agent's sandbox
 * through the execution journal, and records every step in the audit log.
 */
import {
  allHandlersFinished,
  CancellationScope,
  condition,
  getExternalWorkflowHandle,
  isCancellation,
  patched,
  proxyActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActionRecord, ActionStatus } from '../domain/action.js';
import { actionExec, type ActionExec } from '../domain/action-exec.js';
import type { ApprovalClaims, Grant } from '../domain/grants.js';
import type { GuardedSandboxActivities } from '../activities/grants.js';
import type { RecordAuditInput } from '../activities/audit.js';
import type { ControlActivities } from '../activities/control.js';
import { lockdownMessage } from '../domain/lockdown.js';
import { judgeApproval, type ApprovalAttempt } from './approval.js';
import { failureText, failureType } from './failures.js';
import { auditTrail, lockdownState, raiseAlert, verifyAction, verifyApproval } from './local-activities.js';
import {
  actionResultUpdate,
  actionStatusQuery,
  approveSignal,
  approveUpdate,
  cancelActionUpdate,
  sandboxTaskQueue,
  SearchAttributes,
  touchSignal,
  ApprovalAttemptSchema,
  type ActionWorkflowInput,
} from './definitions.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { FailureType } from '../domain/failure-types.js';

const { agentForAction } = proxyActivities<ControlActivities>({ startToCloseTimeout: '30 seconds', retry: { maximumAttempts: 5 } });

export async function actionWorkflow(input: ActionWorkflowInput): Promise<ActionRecord> {
  refuseUndecodableInput(input);
  // Decided first, before any marker: workflows started since grants exist trust nothing in their
  // input that a grant does not prove (histories from before replay the old path).
  // Patch guards signed grants; deprecatePatch once no open action predates it: every recorded action history does.
  const requireGrants = patched('signed-grants');
  // Decided here too, before any local activity of the first task (see docs/workflow-versioning.md).
  // Patch guards recording the result before the last audit entry; deprecatePatch once no open action predates it: every recorded action history before it does.
  const answerOnResult = patched('answer-on-result');
  // Patch guards the agent told it is busy by agentForAction; deprecatePatch once no open action predates it: every recorded action history before it does.
  const busyInLookup = patched('busy-in-agent-lookup');
  // Patch guards one lockdown read for an action that runs at once; deprecatePatch once no open action predates it: every recorded action history before it does.
  const oneLockdownRead = patched('one-lockdown-read');
  // Under answer-on-result a record with completed_at is final, so no input may claim one.
  const action: ActionRecord = {
    ...input.action,
    approvals: [...(input.action?.approvals ?? [])],
    ...(answerOnResult ? { completed_at: null } : {}),
  };
  /** The approvals' grants, shown to the sandbox worker, which counts them again. */
  const approvalGrants: Grant<ApprovalClaims>[] = [];
  /** What the sandbox runs: under grants, made by the control worker from the signed parameters. */
  let exec: ActionExec | undefined = requireGrants ? undefined : actionExec(action.id, input.command);
  const trail = auditTrail(action.id);
  const audit = (entry: Omit<RecordAuditInput, 'key' | 'action_id' | 'agent_id'>) =>
    trail({ ...entry, action_id: action.id, agent_id: action.agent_id });

  const setStatus = (status: ActionStatus) => {
    action.status = status;
    upsertSearchAttributes([{ key: SearchAttributes.actionStatus, value: status }]);
  };

  // Approvals are taken once the request for them is on the audit log, so the log reads in order.
  let approvalsOpen = false;
  /** The signal telling the agent the command ended, once sent: the workflow ends only after it arrived. */
  let agentIdle: Promise<unknown> = Promise.resolve();

  /** Applies one approval attempt; refused attempts are answered and recorded, never counted. */
  // Under grants, attempts are decided one at a time: each waits for its grant's check (a local
  // activity), and concurrent checks would make the decision depend on which finished first, which
  // a replay cannot reproduce.
  let decisions: Promise<unknown> = Promise.resolve();
  const decide = (sent: ApprovalAttempt) => {
    if (!requireGrants) return decideNow(sent);
    const next = decisions.then(() => decideNow(sent));
    decisions = next.catch(() => undefined);
    return next;
  };
  const decideNow = async (sent: ApprovalAttempt) => {
    await condition(() => approvalsOpen || action.status !== 'pending');
    let attempt = sent;
    if (requireGrants) {
      const checked = await verifyApproval({ action_id: action.id, action_hash: action.params_hash, grant: sent.grant });
      if (!checked.ok) {
        await audit({
          kind: 'approval.refused',
          actor: 'unverified',
          details: { claimed_approver: sent.approver?.key_id ?? null, reason: checked.reason },
        });
        return { ok: false as const, reason: checked.reason, status: action.status };
      }
      attempt = { approver: checked.approver, approved: checked.approved, comment: checked.comment, params_hash: action.params_hash };
    }
    const verdict = judgeApproval(action, attempt);
    const actor = attempt.approver.key_id;
    if (!verdict.ok) {
      await audit({
        kind: 'approval.refused',
        actor,
        details: { approver: attempt.approver.name, approved: attempt.approved, reason: verdict.reason },
      });
      return { ...verdict, status: action.status };
    }
    if (requireGrants && attempt.approved) approvalGrants.push(sent.grant!);
    const at = new Date().toISOString();
    action.approvals.push({ approver: attempt.approver, approved: attempt.approved, comment: attempt.comment ?? null, at });
    if (!attempt.approved) {
      setStatus('rejected');
      action.error = `rejected by ${attempt.approver.name}${attempt.comment ? `: ${attempt.comment}` : ''}`;
    } else if (action.approvals.filter((a) => a.approved).length >= action.approvals_required) {
      setStatus('approved');
    }
    await audit({
      kind: attempt.approved ? 'approval.granted' : 'approval.rejected',
      actor,
      details: {
        approver: attempt.approver.name,
        comment: attempt.comment ?? null,
        approvals: action.approvals.length,
        required: action.approvals_required,
      },
    });
    return { ...verdict, status: action.status };
  };

  setHandler(actionStatusQuery, () => action);
  // The API's caller waiting for the result gets it here, as soon as it is recorded.
  setHandler(actionResultUpdate, async () => {
    await condition(() => action.completed_at !== null);
    return action;
  });
  setHandler(approveSignal, (attempt) => {
    // A signal cannot be refused before it is written: one that does not decode or validate is
    // recorded as refused, and the workflow carries on.
    const parsed = ApprovalAttemptSchema.safeParse(attempt);
    if (!parsed.success)
      void audit({ kind: 'message.refused', actor: 'unverified', details: { message: 'approve', reason: messageProblem(parsed.error) } });
    else void decide(parsed.data as ApprovalAttempt);
  });
  setHandler(approveUpdate, decide, {
    // Synchronous, as update validators must be: refuse what can never be accepted before it is
    // written to history. Refusals that need recording (wrong person, wrong hash) reach the handler.
    validator: (attempt) => {
      if (action.status !== 'pending') throw new Error(`action ${action.id} is ${action.status}, not awaiting approval`);
      const parsed = ApprovalAttemptSchema.safeParse(attempt);
      if (!parsed.success)
        throw new Error(`an approval needs an approver, a params_hash and the API's grant: ${messageProblem(parsed.error)}`);
    },
  });

  setHandler(cancelActionUpdate, async ({ reason, by }) => {
    await condition(() => approvalsOpen || action.status !== 'pending');
    if (action.status !== 'pending') return { cancelled: false, status: action.status };
    setStatus('cancelled');
    action.error = `cancelled: ${reason}`;
    await audit({ kind: 'action.cancelled', actor: by, details: { reason } });
    return { cancelled: true, status: action.status };
  });

  try {
    if (requireGrants) {
      const verdict = await verifyAction({ workflowId: workflowInfo().workflowId, action: input.action, grant: input.grant });
      if (!verdict.ok) {
        setStatus('rejected');
        action.error = `refused: ${verdict.reason}`;
        await audit({
          kind: 'action.refused',
          actor: 'unverified',
          details: { claimed_requester: action.requester?.key_id ?? null, reason: verdict.reason },
        });
        return await finish();
      }
      // The control worker's decision, from the signed parameters, replaces whatever the input claimed.
      action.security_level = verdict.level;
      action.rule = verdict.rule;
      action.reasons = verdict.reasons;
      action.approvals = [];
      if (verdict.allowed === false) {
        action.approvals_required = 0;
        setStatus('rejected');
        action.error = `denied by policy rule ${verdict.rule}`;
      } else {
        action.approvals_required = verdict.approvals_required;
        setStatus(verdict.approvals_required > 0 ? 'pending' : 'approved');
        exec = verdict.exec;
      }
    }
    await audit({
      kind: 'action.submitted',
      actor: action.requester.key_id,
      details: {
        action_type: action.action_type,
        skill_id: action.skill_id,
        operation: action.operation,
        params_hash: action.params_hash,
        // Checked against the grant by verifyAction: the conversation and turn whose tool call this is.
        ...(action.origin ? { conversation_id: action.origin.conversation_id, turn: action.origin.turn } : {}),
      },
    });
    await audit({
      kind: 'policy.decided',
      actor: 'system',
      details: { rule: action.rule, level: action.security_level, allowed: action.status !== 'rejected', reasons: action.reasons },
    });
    if (action.status === 'rejected') return await finish();
    // Fail closed: an action started during the lockdown, by any client, never runs.
    // Patch guards the lockdown check before approvals; no recorded history predates it: deprecatePatch once no open action does.
    // An action that runs at once skips it: agentForAction reads the lockdown right after, before the command runs.
    if (patched('lockdown-check') && !(oneLockdownRead && action.approvals_required === 0)) {
      const lockdown = await lockdownState();
      if (lockdown) {
        setStatus('rejected');
        action.error = lockdownMessage(lockdown);
        await audit({ kind: 'system.lockdown_refused', actor: 'system', details: { reason: action.error } });
        return await finish();
      }
    }

    if (action.approvals_required > 0) {
      await audit({
        kind: 'approval.requested',
        actor: 'system',
        details: { required: action.approvals_required, level: action.security_level },
      });
      approvalsOpen = true;
      const decided = await awaitDecision();
      if (!decided) {
        setStatus('expired');
        action.error = `no decision within ${input.expirySeconds} s; the action expired and did not run`;
        await audit({ kind: 'action.expired', actor: 'system', details: { after_seconds: input.expirySeconds } });
      }
      if (action.status !== 'approved') return await finish();
    }

    setStatus('executing');
    if (!exec) throw new Error('no command was decided for this action');
    const { timeout_ms: timeout, secrets } = exec;
    // Keeps the agent from stopping on its idle timer while the command runs.
    const busy = (redact: boolean) => ({ action_id: action.id, busy_ms: timeout + 30_000, ...(redact && secrets ? { secrets } : {}) });
    const agent = busyInLookup ? await agentForAction(action.agent_id, busy(true)) : await agentForAction(action.agent_id);
    // Since this patch the agent learns which secrets its actions use, and every later output of
    // the agent has their values redacted (a secret copied to a file or left in the journal).
    // Runs under busy-in-agent-lookup always redact (their histories carry no marker of it).
    // Patch guards telling the agent its secrets; deprecatePatch once no open action predates it: action-approved and action-two-approvals do.
    const redactUsed = busyInLookup || patched('redact-agent-secrets');
    const { execInSandbox } = proxyActivities<GuardedSandboxActivities>({
      taskQueue: sandboxTaskQueue(agent.host),
      startToCloseTimeout: timeout + 30_000,
      heartbeatTimeout: '15 seconds',
      // Safe to retry: the journal never runs the command twice and hands a retry the first result.
      retry: { maximumAttempts: 5, nonRetryableErrorTypes: [FailureType.SandboxExited, FailureType.ExecOutlived] },
    });
    const agentHandle = getExternalWorkflowHandle(action.agent_id);
    if (!busyInLookup) await agentHandle.signal(touchSignal, busy(redactUsed));
    await audit({ kind: 'execution.started', actor: 'system', details: { host: agent.host } });
    const result = await execInSandbox({
      agentId: action.agent_id,
      command: exec.command,
      timeout_ms: exec.timeout_ms,
      max_output_bytes: exec.max_output_bytes,
      // Names only: the activity reads the values from the vault, so they never enter this history.
      secrets: exec.secrets,
      ...(redactUsed ? { redact_secrets: agent.secrets_used } : {}),
      // The sandbox worker checks the grants itself before anything runs.
      ...(requireGrants
        ? {
            authority: {
              action: {
                id: action.id,
                action_type: action.action_type,
                skill_id: action.skill_id,
                operation: action.operation,
                agent_id: action.agent_id,
                parameters: action.parameters,
              },
              grant: input.grant!,
              approvals: approvalGrants,
            },
          }
        : {}),
    }).finally(() => {
      // Even when the action is cancelled: the agent must not think it is still busy.
      agentIdle = CancellationScope.nonCancellable(() => agentHandle.signal(touchSignal, { action_id: action.id, busy_ms: 0 })).catch(
        () => undefined,
      );
      // Under answer-on-result the record is made final first, and the signal awaited after.
      return answerOnResult ? undefined : agentIdle;
    });
    action.result = {
      exit_code: result.exit_code,
      stdout: result.stdout,
      stderr: result.stderr,
      timed_out: result.timed_out,
      duration_ms: result.duration_ms,
    };
    if (result.exit_code === 0) {
      setStatus('completed');
    } else {
      setStatus('failed');
      action.error = result.timed_out ? `timed out after ${timeout} ms` : `exited with code ${result.exit_code}`;
    }
    // The record is final: the caller waiting for it is answered before the last audit entry is written.
    if (answerOnResult) {
      action.completed_at = new Date().toISOString();
      await agentIdle;
    }
    await audit({
      kind: result.exit_code === 0 ? 'execution.completed' : 'execution.failed',
      actor: 'system',
      details: { exit_code: result.exit_code, timed_out: result.timed_out, duration_ms: result.duration_ms },
    });
    return await finish();
  } catch (err) {
    if (isCancellation(err)) {
      // A cancellation that arrives after the action ran or was decided changes nothing.
      if (['completed', 'failed', 'rejected', 'expired'].includes(action.status)) throw err;
      await CancellationScope.nonCancellable(async () => {
        setStatus('cancelled');
        action.error = 'cancelled';
        await audit({ kind: 'action.cancelled', actor: 'system', details: {} });
        await finish();
      });
      throw err;
    }
    // The lockdown, checked again just before the command would run (agentForAction).
    const refused = failureType(err) === FailureType.Lockdown;
    setStatus(refused ? 'rejected' : 'failed');
    action.error = failureText(err);
    await audit({
      kind: refused ? 'system.lockdown_refused' : 'execution.failed',
      actor: 'system',
      details: refused ? { reason: action.error } : { error: action.error },
    });
    return await finish();
  }

  /** Waits for the decision until expiry; past the alert threshold (when set), raises the approval-pending alert once. */
  async function awaitDecision(): Promise<boolean> {
    const decided = () => action.status !== 'pending';
    const alertAfter = input.alertPendingSeconds;
    if (!alertAfter || alertAfter >= input.expirySeconds) return condition(decided, input.expirySeconds * 1000);
    if (await condition(decided, alertAfter * 1000)) return true;
    await raiseAlert({
      id: `approval-pending-${action.id}`,
      type: 'approval.pending',
      time: new Date().toISOString(),
      severity: 'warning',
      summary: `action ${action.id} (${action.skill_id}.${action.operation}, ${action.security_level}) has awaited approval for ${alertAfter} s`,
      details: {
        action_id: action.id,
        agent_id: action.agent_id,
        security_level: action.security_level,
        approvals: action.approvals.length,
        approvals_required: action.approvals_required,
        expires_at: action.expires_at,
      },
    });
    return condition(decided, (input.expirySeconds - alertAfter) * 1000);
  }

  function messageProblem(error: { issues: Array<{ path: PropertyKey[]; message: string }> }): string {
    return error.issues.map((i) => `${i.path.map(String).join('.') || 'argument'}: ${i.message}`).join('; ');
  }

  async function finish(): Promise<ActionRecord> {
    action.completed_at ??= new Date().toISOString();
    await agentIdle;
    await condition(allHandlersFinished);
    return action;
  }
}
