/**
 * Submitting and deciding actions: the parameters are validated against the skill's schema, free
 * text is screened for prompt injection, the policy judges the result, and the action's workflow
 * takes it from there. The identity is always the caller's API key, never a field of the body.
 */
import { randomBytes } from 'node:crypto';
import {
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
} from '@temporalio/client';
import type { ActionRecord, SubmitActionRequest } from '../domain/action.js';
import { assessAction } from '../domain/action-decision.js';
import { DEFAULT_ACTION_TIMEOUT_MS } from '../domain/action-exec.js';
import type { Config } from '../domain/config.js';
import { WardenError } from '../domain/errors.js';
import { actionHash, type Grants } from '../domain/grants.js';
import { isDeadlineExceeded } from './temporal-errors.js';
import type { Policy } from '../domain/policy.js';
import type { Identity } from '../domain/roles.js';
import type { AuditStore } from '../activities/audit-store.js';
import type { Vault } from '../activities/vault.js';
import { scrubText } from '../domain/redact.js';
import type { actionWorkflow } from '../workflows/action.js';
import {
  actionStatusQuery,
  approveUpdate,
  CONTROL_TASK_QUEUE,
  SearchAttributes,
  type ActionWorkflowInput,
} from '../workflows/definitions.js';

/** How long a signed action stays runnable past its approval expiry and its command's time: room for retries. */
const GRANT_MARGIN_MS = 10 * 60_000;

export interface ActionSummary {
  id: string;
  agent_id: string | null;
  skill_id: string | null;
  status: string | null;
  security_level: string | null;
  created_at: string;
}

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
  } = {},
) {
  const { vault, assertOpen = async () => undefined } = opts;
  const QUERY_DEADLINE_MS = 5_000;
  const handle = (id: string) => client.workflow.getHandle<typeof actionWorkflow>(id);

  async function submitAction(request: SubmitActionRequest, requester: Identity) {
    const { command, decision, reasons } = assessAction(policy, request);
    // Checked again when the command runs (a secret may be deleted meanwhile); here for a fast 422.
    const missing = vault ? (command.secrets ?? []).filter((name) => !vault.has(name)) : [];
    if (missing.length) throw new WardenError('unknown_secret', `no secret named ${missing.join(', ')} in the vault; an admin stores it with PUT /api/secrets/{name}`, 422);
    await assertOpen('action', requester);
    const now = new Date();
    const pending = decision.allowed && decision.approvals_required > 0;
    const expiresAt = pending ? new Date(now.getTime() + config.approvalExpirySeconds * 1000) : now;
    const action: ActionRecord = {
      id: `act-${randomBytes(8).toString('hex')}`,
      action_type: request.action_type,
      skill_id: request.skill_id,
      operation: request.operation,
      agent_id: request.agent_id,
      parameters: request.parameters,
      params_hash: actionHash(request),
      requester,
      status: !decision.allowed ? 'rejected' : pending ? 'pending' : 'approved',
      security_level: decision.level,
      rule: decision.rule,
      reasons,
      approvals_required: decision.approvals_required,
      approvals: [],
      result: null,
      error: decision.allowed ? null : `denied by policy rule ${decision.rule}`,
      created_at: now.toISOString(),
      expires_at: pending ? expiresAt.toISOString() : null,
      completed_at: null,
    };
    const grant = grants.sign({
      kind: 'action',
      action_id: action.id,
      action_hash: action.params_hash,
      requester,
      level: decision.level,
      approvals_required: decision.approvals_required,
      expires_at: new Date(expiresAt.getTime() + (command.timeout_ms ?? DEFAULT_ACTION_TIMEOUT_MS) + GRANT_MARGIN_MS).toISOString(),
    });
    const input: ActionWorkflowInput = {
      action,
      command,
      grant,
      expirySeconds: config.approvalExpirySeconds,
      ...(pending && config.alertWebhooks?.length ? { alertPendingSeconds: config.alertApprovalPendingSeconds } : {}),
    };
    const started = await client.workflow.start<typeof actionWorkflow>('actionWorkflow', {
      workflowId: action.id,
      taskQueue: CONTROL_TASK_QUEUE,
      args: [input],
      typedSearchAttributes: [
        { key: SearchAttributes.actionId, value: action.id },
        { key: SearchAttributes.actionStatus, value: action.status },
        { key: SearchAttributes.securityLevel, value: action.security_level },
        { key: SearchAttributes.agentId, value: action.agent_id },
        { key: SearchAttributes.skillId, value: action.skill_id },
      ],
    });
    if (request.wait_seconds > 0) {
      const final = await Promise.race([
        started.result(),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), request.wait_seconds * 1000)),
      ]).catch(() => null);
      if (final) return withScrubbedError(final);
    }
    return action;
  }

  async function getAction(id: string): Promise<ActionRecord> {
    try {
      return withScrubbedError(await client.withDeadline(Date.now() + QUERY_DEADLINE_MS, () => handle(id).query(actionStatusQuery)));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new WardenError('not_found', `action ${id} not found`, 404);
      throw noWorker(err, `no worker answered for action ${id}; is the Warden worker running?`);
    }
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

  /** Approves or rejects through the workflow's update: answered at once, decided exactly once. */
  async function decideAction(id: string, approver: Identity, body: { approved: boolean; comment?: string; params_hash: string }) {
    try {
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
      const verdict = await client.withDeadline(Date.now() + 15_000, () =>
        handle(id).executeUpdate(approveUpdate, { args: [{ approver, approved: body.approved, comment, params_hash: body.params_hash, grant }] }),
      );
      if (!verdict.ok) throw new WardenError('approval_refused', verdict.reason, 409);
      return { action_id: id, status: verdict.status };
    } catch (err) {
      if (err instanceof WardenError) throw err;
      if (err instanceof WorkflowNotFoundError) {
        // Updates cannot reach a closed workflow: say what became of the action instead.
        const action = await getAction(id);
        throw refused(id, approver, body.approved, `action ${id} is ${action.status}, not awaiting approval`);
      }
      if (err instanceof WorkflowUpdateFailedError) {
        // The validator refused it before the workflow recorded it: the action is no longer pending.
        throw refused(id, approver, body.approved, (err.cause as Error | undefined)?.message ?? 'the approval was refused');
      }
      throw noWorker(err, `no worker answered for action ${id}; is the Warden worker running?`);
    }
  }

  /** A refusal the workflow never saw: the API records it, so every refused attempt is on the log. */
  function refused(id: string, approver: Identity, approved: boolean, reason: string): WardenError {
    audit.append({
      key: `api:${id}:refused:${randomBytes(8).toString('hex')}`,
      kind: 'approval.refused',
      actor: approver.key_id,
      action_id: id,
      details: { approver: approver.name, approved, reason },
    });
    return new WardenError('approval_refused', reason, 409);
  }

  return { submitAction, getAction, pendingActions, decideAction };
}

export type ActionService = ReturnType<typeof createActionService>;

/** An action's error message comes from anywhere a failure did: credentials in it are redacted. */
const withScrubbedError = (action: ActionRecord): ActionRecord => (action.error ? { ...action, error: scrubText(action.error) } : action);

function noWorker(err: unknown, message: string): unknown {
  return isDeadlineExceeded(err) ? new WardenError('worker_unavailable', message, 503) : err;
}
