/**
 * One path from "someone asks for an action" to the action workflow's signed input, whatever the
 * door: POST /api/actions (the API, for the caller's key) and a model's tool call in a
 * conversation (the control worker, for the conversation's requester). The parameters are
 * validated by the skill, screened, judged by the policy, raised while an approval is pending in
 * the agent, and the result is signed as an action grant, which the workers check again.
 *
 * Node-side only (the grant's MAC): workflows start the action with actionStartOptions.
 */
import type { Client } from '@temporalio/client';
import type { ActionOrigin, ActionRecord } from './action.js';
import { assessAction } from './action-decision.js';
import { DEFAULT_ACTION_TIMEOUT_MS } from './action-exec.js';
import { actionHash, type ActionClaims, type ActionSubject, type Grant, type Grants } from './grants.js';
import { APPROVALS_REQUIRED, type Policy, type PolicyDecision } from './policy.js';
import type { Identity } from './roles.js';
import { maxRisk, type RiskLevel } from './risk.js';
import { SearchAttributes } from './search-attributes.js';
import type { SkillCommand, SkillRegistry } from './skill.js';

/** How long a signed action stays runnable past its approval expiry and its command's time: room for retries. */
const GRANT_MARGIN_MS = 10 * 60_000;

export interface ActionWorkflowInput {
  /** The record as submitted: parameters validated, policy decision made, status pending or rejected. */
  action: ActionRecord;
  /** What the sandbox runs once the action may run (built by the skill from the parameters). */
  command: SkillCommand;
  /** Unapproved actions expire after this long and never run. */
  expirySeconds: number;
  /** Raise an alert when the action has waited this long for approval (set when alerts are configured). */
  alertPendingSeconds?: number;
  /**
   * The API's signed grant (absent only in histories from before grants). The workflow checks it and
   * decides the action again from its parameters: `action`'s status, level and `command` are not trusted.
   */
  grant?: Grant<ActionClaims>;
}

export interface ActionSubmitter {
  policy: Policy;
  grants: Grants;
  skills: SkillRegistry;
  approvalExpirySeconds: number;
  /** Raise an alert when an action has waited this long for approval (alerts configured). */
  alertPendingSeconds?: number;
  /** Up to three ids of the agent's actions awaiting approval (from visibility). */
  pendingApprovalsIn(agentId: string): Promise<string[]>;
}

/**
 * The submitter both doors use, with the agent's pending approvals from Temporal visibility. A
 * worker acting for conversations is given the API's approval expiry and alert delay.
 */
export function actionSubmitter(
  client: Client,
  deps: Pick<ActionSubmitter, 'policy' | 'grants' | 'skills'>,
  settings: { approvalExpirySeconds: number; alertPendingSeconds?: number | undefined },
): ActionSubmitter {
  return {
    ...deps,
    approvalExpirySeconds: settings.approvalExpirySeconds,
    ...(settings.alertPendingSeconds !== undefined ? { alertPendingSeconds: settings.alertPendingSeconds } : {}),
    pendingApprovalsIn: pendingApprovalsIn(client),
  };
}

/**
 * The signed input of a new action's workflow. Invalid parameters throw a SkillError naming each
 * problem; a denied action is returned as rejected (its workflow records the denial).
 */
export async function prepareAction(
  submitter: ActionSubmitter,
  request: ActionSubject,
  requester: Identity,
  opts: {
    id: string;
    now: Date;
    origin?: ActionOrigin;
    /** A level the action is raised to at least, and why (a conversation that took in flagged content). */
    atLeast?: { level: RiskLevel; reason: string };
  },
): Promise<ActionWorkflowInput> {
  const assessed = assessAction(submitter.policy, request, submitter.skills);
  const { command } = assessed;
  const { decision, reasons } = raisedTo(opts.atLeast, await raisedUnderPendingApproval(submitter, request.agent_id, assessed));
  const raised = reasons.length > assessed.reasons.length ? reasons.slice(assessed.reasons.length).join('; ') : undefined;
  const pending = decision.allowed && decision.approvals_required > 0;
  const expiresAt = pending ? new Date(opts.now.getTime() + submitter.approvalExpirySeconds * 1000) : opts.now;
  const action: ActionRecord = {
    id: opts.id,
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
    // Worded as the worker that decides again words them, so the record reads the same before its check and after.
    reasons: raised ? [...assessed.reasons, raisedAtSubmission(decision.level, raised)] : reasons,
    approvals_required: decision.approvals_required,
    approvals: [],
    result: null,
    error: decision.allowed ? null : `denied by policy rule ${decision.rule}`,
    created_at: opts.now.toISOString(),
    expires_at: pending ? expiresAt.toISOString() : null,
    completed_at: null,
    ...(opts.origin ? { origin: opts.origin } : {}),
  };
  const grant = submitter.grants.sign<ActionClaims>({
    kind: 'action',
    action_id: action.id,
    action_hash: action.params_hash,
    requester,
    level: decision.level,
    approvals_required: decision.approvals_required,
    expires_at: new Date(expiresAt.getTime() + (command.timeout_ms ?? DEFAULT_ACTION_TIMEOUT_MS) + GRANT_MARGIN_MS).toISOString(),
    ...(opts.origin ? { origin: opts.origin } : {}),
    // Why the level is above the policy's, for the worker that decides again to say so.
    ...(raised ? { raised } : {}),
  });
  return {
    action,
    command,
    grant,
    expirySeconds: submitter.approvalExpirySeconds,
    ...(pending && submitter.alertPendingSeconds !== undefined ? { alertPendingSeconds: submitter.alertPendingSeconds } : {}),
  };
}

/** The reason an action stands above its policy's level: `raised` is why, as the grant signs it. */
export const raisedAtSubmission = (level: RiskLevel, raised: string | undefined): string =>
  `raised to ${level} by the API at submission${raised ? ` (${raised})` : ''}`;

/**
 * An approver reads what an action will act on (a script, a config) and approves that; a medium
 * action that runs at once could change it before the approved one runs. So while an action of
 * the agent awaits approval, whatever is not low there needs an approval too (the signed level
 * carries the raise to the workers). Pending actions come from visibility, which may lag a
 * submission by a moment.
 */
async function raisedUnderPendingApproval(
  submitter: ActionSubmitter,
  agentId: string,
  assessed: { decision: PolicyDecision; reasons: string[] },
): Promise<{ decision: PolicyDecision; reasons: string[] }> {
  const { decision, reasons } = assessed;
  if (!decision.allowed || decision.level !== 'medium') return assessed;
  const pending = await submitter.pendingApprovalsIn(agentId);
  if (pending.length === 0) return assessed;
  return {
    decision: { ...decision, level: 'high' as const, approvals_required: APPROVALS_REQUIRED.high },
    reasons: [
      ...reasons,
      `raised to high: action ${pending.join(', ')} awaits approval in agent ${agentId}, and this could change what it acts on`,
    ],
  };
}

/** An allowed action below the level asked for is raised to it, with its approvals, saying why. */
function raisedTo(
  atLeast: { level: RiskLevel; reason: string } | undefined,
  assessed: { decision: PolicyDecision; reasons: string[] },
): { decision: PolicyDecision; reasons: string[] } {
  const { decision, reasons } = assessed;
  if (!atLeast || !decision.allowed || maxRisk(decision.level, atLeast.level) === decision.level) return assessed;
  return {
    decision: { ...decision, level: atLeast.level, approvals_required: APPROVALS_REQUIRED[atLeast.level] },
    reasons: [...reasons, `raised to ${atLeast.level}: ${atLeast.reason}`],
  };
}

/** Up to three of the agent's actions awaiting approval, from Temporal visibility. */
export function pendingApprovalsIn(client: Client): (agentId: string) => Promise<string[]> {
  return async (agentId) => {
    const query = `WorkflowType = 'actionWorkflow' AND ExecutionStatus = 'Running' AND ${SearchAttributes.actionStatus.name} = 'pending' AND ${SearchAttributes.agentId.name} = '${agentId.replaceAll("'", '')}'`;
    const pending: string[] = [];
    for await (const info of client.workflow.list({ query, pageSize: 10 })) {
      pending.push(info.workflowId);
      if (pending.length >= 3) break;
    }
    return pending;
  };
}
