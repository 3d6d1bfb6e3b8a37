/**
 * Submitting and deciding actions: the parameters are validated against the skill's schema, free
 * text is screened for prompt injection, the policy judges the result, and the action's workflow
 * takes it from there. The identity is always the caller's API key, never a field of the body.
 */
import { randomBytes } from 'node:crypto';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { WorkflowNotFoundError, WorkflowUpdateFailedError, type Client } from '@temporalio/client';
import { z } from 'zod';
import type { ActionRecord, SubmitActionRequest } from '../../domain/action.js';
import { actionSubmitter, prepareAction } from '../../domain/action-submission.js';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import type { Grants } from '../../domain/grants.js';
import { askWorker, workerUnavailable } from '../deadlines.js';
import { isTemporalUnreachable } from '../temporal-errors.js';
import type { Policy } from '../../domain/policy.js';
import { SKILL_REGISTRY } from '../../skills/index.js';
import { hasRole, type Identity } from '../../domain/roles.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { Vault } from '../../stores/vault.js';
import { scrubText } from '../../domain/redact.js';
import type { actionWorkflow } from '../../workflows/action.js';
import {
  actionResultUpdate,
  actionStartOptions,
  actionStatusQuery,
  approveSignal,
  approveUpdate,
  cancelActionUpdate,
  SearchAttributes,
  type ActionWorkflowInput,
} from '../../workflows/definitions.js';

/** An action awaiting approval as Temporal visibility lists it. */
export const ActionSummarySchema = z.object({
  id: z.string(),
  agent_id: z.string().nullable(),
  skill_id: z.string().nullable(),
  status: z.string().nullable(),
  security_level: z.string().nullable(),
  created_at: z.string(),
});
export type ActionSummary = z.infer<typeof ActionSummarySchema>;

export function createActionService(
  client: Client,
  config: Pick<Config, 'approvalExpirySeconds'> & Partial<Pick<Config, 'alertWebhooks' | 'alertApprovalPendingSeconds'>>,
  policy: Policy,
  audit: AuditStore,
  grants: Grants,
  opts: {
    /** Without it, action secrets are checked only when the command runs. */
    vault?: Vault;
    /** Refuses new actions during the emergency lockdown (the action workflow checks again). */
    assertOpen?: (what: 'action', requester: Identity) => Promise<void>;
    /** Whether an API key was revoked: an action its key no longer stands behind is not approved. */
    isRevoked?: (keyId: string) => Promise<boolean>;
  } = {},
) {
  const { vault, assertOpen = async () => undefined, isRevoked } = opts;
  const QUERY_DEADLINE_MS = 5_000;
  /** An approval waits longer: a worker that just restarted may first replay the action. */
  const APPROVAL_DEADLINE_MS = 15_000;
  /** How long a chat click waits to learn whether the Temporal server answers at all. */
  const REACH_DEADLINE_MS = 2_000;
  const handle = (id: string) => client.workflow.getHandle<typeof actionWorkflow>(id);

  const submitter = actionSubmitter(
    client,
    { policy, grants, skills: SKILL_REGISTRY },
    {
      approvalExpirySeconds: config.approvalExpirySeconds,
      ...(config.alertWebhooks?.length ? { alertPendingSeconds: config.alertApprovalPendingSeconds } : {}),
    },
  );

  async function submitAction(request: SubmitActionRequest, requester: Identity) {
    const input = await prepareAction(submitter, request, requester, { id: `act-${randomBytes(8).toString('hex')}`, now: new Date() });
    const { action, command } = input;
    // Checked again when the command runs (a secret may be deleted meanwhile); here for a fast 422,
    // to admins only: only they may list the vault's names, and a 422 against a 202 would let any
    // key probe them. Below admin, a missing secret fails the action when it runs, after the
    // approval every secret-using action needs.
    const needed = vault && hasRole(requester.role, 'admin') ? (command.secrets ?? []) : [];
    const stored = await Promise.all(needed.map((name) => vault!.has(name)));
    const missing = needed.filter((_, i) => !stored[i]);
    if (missing.length)
      throw new WardenError(
        'unknown_secret',
        `no secret named ${missing.join(', ')} in the vault; an admin stores it with PUT /api/secrets/{name}`,
        422,
      );
    await assertOpen('action', requester);
    const started = await client.workflow.start<typeof actionWorkflow>('actionWorkflow', { ...actionStartOptions(action), args: [input] });
    if (request.wait_seconds > 0) {
      // The update answers once the record is final, before the workflow's last audit entry and
      // completion; a worker from before it refuses the update, and its result comes with the end.
      const final = await Promise.race([
        started.executeUpdate(actionResultUpdate).catch(() => started.result()),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), request.wait_seconds * 1000)),
      ]).catch(() => null);
      if (final) return withScrubbedError(final);
    }
    return action;
  }

  async function getAction(id: string, deadlineMs = QUERY_DEADLINE_MS): Promise<ActionRecord> {
    try {
      // A finished action's record is its workflow's result, read from history: no worker has to
      // replay the whole workflow to answer, and it answers with every worker down.
      const { status } = await handle(id).describe();
      if (status.name === 'COMPLETED') return withScrubbedError(await handle(id).result());
      let action: ActionRecord;
      try {
        action = await askWorker(client, deadlineMs, () => handle(id).query(actionStatusQuery), noWorker(id));
      } catch (err) {
        // A workflow ended before its first task has no state to query: its start input says what it was.
        if (!(await endedOutside(id))) throw err;
        action = await startedAs(id);
      }
      return withScrubbedError(action.completed_at ? action : await unlessEnded(action));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new WardenError('not_found', `action ${id} not found`, 404);
      throw workerUnavailable(err, noWorker(id));
    }
  }

  /**
   * A query of a closed workflow answers with its last state: an action whose workflow was
   * terminated (or timed out) outside Warden would read `pending` or `executing` for ever. It is
   * shown as what it became, and the log records it once.
   */
  async function unlessEnded(action: ActionRecord): Promise<ActionRecord> {
    const workflowStatus = await endedOutside(action.id);
    if (!workflowStatus) return action;
    const how = workflowStatus.toLowerCase().replace('_', ' ');
    const ran = action.status === 'executing';
    const ended: ActionRecord = {
      ...action,
      status: ran ? 'failed' : 'cancelled',
      error: `the action's workflow was ${how} outside Warden while the action was ${action.status}; ${ran ? 'its command may have run, in part' : 'it did not run'}`,
    };
    await audit.append({
      key: `api:${action.id}:abandoned`,
      kind: 'action.abandoned',
      actor: 'system',
      action_id: action.id,
      agent_id: action.agent_id,
      details: { workflow_status: how, was: action.status, status: ended.status },
    });
    return ended;
  }

  /** How the action's workflow ended, when it ended other than by finishing (terminated, timed out, ...). */
  async function endedOutside(id: string): Promise<string | null> {
    const { status } = await handle(id).describe();
    return status.name === 'RUNNING' || status.name === 'COMPLETED' || status.name === 'CONTINUED_AS_NEW' ? null : status.name;
  }

  /** The action as the API started it, from the workflow's first event. */
  async function startedAs(id: string): Promise<ActionRecord> {
    const history = await handle(id).fetchHistory();
    const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    const input = await decodeFromPayloadsAtIndex<ActionWorkflowInput>(client.options.loadedDataConverter, 0, payloads);
    return input.action;
  }

  /**
   * When a key is revoked, what it asked for no longer stands: its actions awaiting approval are
   * cancelled (an approval of one visibility has not listed yet is refused by decideAction).
   */
  async function cancelPendingOf(keyId: string, by: string): Promise<string[]> {
    const cancelled: string[] = [];
    for (const { id } of await pendingActions(10_000)) {
      const action = await handle(id).query(actionStatusQuery);
      if (action.requester.key_id !== keyId || action.status !== 'pending') continue;
      const reason = `the key that requested it (${action.requester.name}, ${keyId}) was revoked`;
      const outcome = await handle(id).executeUpdate(cancelActionUpdate, { args: [{ reason, by }] });
      if (outcome.cancelled) cancelled.push(id);
    }
    return cancelled;
  }

  /** Pending actions, from Temporal visibility: they survive restarts of every component. */
  async function pendingActions(limit = 100): Promise<ActionSummary[]> {
    const query = `WorkflowType = 'actionWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.actionStatus.name} = 'pending'`;
    const out: ActionSummary[] = [];
    for await (const info of client.workflow.list({ query, pageSize: 100 })) {
      const sa = info.typedSearchAttributes;
      out.push({
        id: info.workflowId,
        agent_id: sa.get(SearchAttributes.agentId) ?? null,
        skill_id: sa.get(SearchAttributes.skillId) ?? null,
        status: sa.get(SearchAttributes.actionStatus) ?? null,
        security_level: sa.get(SearchAttributes.securityLevel) ?? null,
        created_at: info.startTime.toISOString(),
      });
      if (out.length >= limit) break;
    }
    return out;
  }

  /**
   * Approves or rejects through the workflow's update: answered at once, decided exactly once.
   * With `signalWhenUnanswered`, a decision the update could not deliver (no worker in time,
   * Temporal unreachable) is sent again as the `approve` signal, which waits in the workflow's
   * history and is checked by the worker as the update would have been; the answer says `sent`.
   */
  async function decideAction(
    id: string,
    approver: Identity,
    body: { approved: boolean; comment?: string; params_hash: string },
    opts: { signalWhenUnanswered?: boolean } = {},
  ): Promise<{ action_id: string; status: ActionRecord['status']; sent?: true }> {
    try {
      if (body.approved && isRevoked) {
        // The requester is on the log's submitted entry (no worker needed); the query is the fallback.
        const [submitted] = await audit.list({ action_id: id, kind: 'action.submitted', limit: 1 });
        const requester = submitted?.actor ?? (await getAction(id, APPROVAL_DEADLINE_MS)).requester.key_id;
        if (await isRevoked(requester)) {
          throw await refused(
            id,
            approver,
            body.approved,
            `the key that requested this action (${requester}) was revoked; it cannot be approved`,
          );
        }
      }
      const comment = body.comment ?? null;
      const grant = grants.sign({
        kind: 'approval',
        action_id: id,
        action_hash: body.params_hash,
        approver,
        approved: body.approved,
        comment,
        issued_at: new Date().toISOString(),
      });
      const attempt = { approver, approved: body.approved, comment, params_hash: body.params_hash, grant };
      const verdict = await askWorker(
        client,
        APPROVAL_DEADLINE_MS,
        () => handle(id).executeUpdate(approveUpdate, { args: [attempt] }),
        noWorker(id),
      ).catch(async (err) => {
        if (!opts.signalWhenUnanswered || !(isUnanswered(err) || isTemporalUnreachable(err))) throw err;
        // Should the update still reach the workflow too, the second of the two is refused as a repeat.
        await handle(id).signal(approveSignal, attempt);
        return null;
      });
      if (!verdict) return { action_id: id, status: 'pending', sent: true };
      if (!verdict.ok) throw new WardenError('approval_refused', verdict.reason, 409);
      return { action_id: id, status: verdict.status };
    } catch (err) {
      if (err instanceof WardenError) throw err;
      if (err instanceof WorkflowNotFoundError) {
        // Updates cannot reach a closed workflow: say what became of the action instead.
        const action = await getAction(id);
        throw await refused(id, approver, body.approved, `action ${id} is ${action.status}, not awaiting approval`);
      }
      if (err instanceof WorkflowUpdateFailedError) {
        // The validator refused it before the workflow recorded it: the action is no longer pending.
        throw await refused(id, approver, body.approved, (err.cause as Error | undefined)?.message ?? 'the approval was refused');
      }
      throw err;
    }
  }

  /**
   * Whether the Temporal server answers now: a chat click whose decision could not be delivered
   * (not even as the signal) is told so at once, not after the update's deadline and the retries.
   */
  async function temporalReachable(): Promise<boolean> {
    const asked = client.withDeadline(Date.now() + REACH_DEADLINE_MS, () => client.workflowService.getSystemInfo({}));
    return asked.then(
      () => true,
      () => false,
    );
  }

  /** A refusal the workflow never saw: the API records it, so every refused attempt is on the log. */
  async function refused(id: string, approver: Identity, approved: boolean, reason: string): Promise<WardenError> {
    await audit.append({
      key: `api:${id}:refused:${randomBytes(8).toString('hex')}`,
      kind: 'approval.refused',
      actor: approver.key_id,
      action_id: id,
      details: { approver: approver.name, approved, reason },
    });
    return new WardenError('approval_refused', reason, 409);
  }

  return { submitAction, getAction, pendingActions, decideAction, temporalReachable, cancelPendingOf };
}

export type ActionService = ReturnType<typeof createActionService>;

/** An action's error message comes from anywhere a failure did: credentials in it are redacted. */
const withScrubbedError = (action: ActionRecord): ActionRecord => (action.error ? { ...action, error: scrubText(action.error) } : action);

const isUnanswered = (err: unknown) => err instanceof WardenError && err.code === 'worker_unavailable';

const noWorker = (id: string) => `no worker answered for action ${id}; is the Warden worker running?`;
