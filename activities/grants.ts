/**
 * Grant checks, where the keys are: the control worker checks an action's grant and decides the
 * action again from its parameters (local activities of the action workflow), checks each
 * approval's grant before it counts, and the sandbox worker checks the whole authority again right
 * before a command runs (authorizeExec). None of them trusts what the workflow says it has.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { ExecResult } from '../domain/agent.js';
import type { ExecInput, JournaledAction, SandboxActivities } from './sandbox.js';
import type { ActionRecord } from '../domain/action.js';
import { assessAction } from '../domain/action-decision.js';
import { raisedAtSubmission } from '../domain/action-submission.js';
import { actionExec, type ActionExec } from '../domain/action-exec.js';
import {
  actionHash,
  GrantError,
  type ActionClaims,
  type ActionSubject,
  type Grant,
  type ApprovalClaims,
  type Grants,
} from '../domain/grants.js';
import type { Policy } from '../domain/policy.js';
import { prepareCommand, SKILL_REGISTRY } from '../skills/index.js';
import { hasRole, personOf, type Identity } from '../domain/roles.js';
import { maxRisk, RISK_LEVELS, type RiskLevel } from '../domain/risk.js';
import { WardenError } from '../domain/errors.js';
import type { SkillCommand } from '../domain/skill.js';
import { FailureType } from '../domain/failure-types.js';

/** The decision the control worker made itself, from the signed action's parameters. */
/**
 * The control worker's check of an action: refused (the grant or the input does not hold), or
 * genuine and decided again, allowed or denied by the policy. (Histories from before `allowed`
 * recorded denials as refusals.)
 */
export type ActionVerdict =
  | { ok: true; allowed?: true; level: RiskLevel; rule: string; reasons: string[]; approvals_required: number; exec: ActionExec }
  | { ok: true; allowed: false; level: RiskLevel; rule: string; reasons: string[] }
  | { ok: false; reason: string };

export type ApprovalVerdict = { ok: true; approver: Identity; approved: boolean; comment: string | null } | { ok: false; reason: string };

/** What execInSandbox must be shown to run an action's command. */
export interface ExecAuthority {
  action: ActionSubject & { id: string };
  grant: Grant<ActionClaims>;
  approvals: Grant<ApprovalClaims>[];
}

const sameIdentity = (a: Identity, b: Identity) => a.key_id === b.key_id && a.name === b.name && a.role === b.role;

/** The signed action's claims, checked against the action it came with; throws a GrantError. */
function checkActionGrant(grants: Grants, grant: unknown, action: ActionSubject & { id: string }, workflowId: string): ActionClaims {
  const claims = grants.verify(grant, 'action');
  if (claims.action_id !== action.id || claims.action_id !== workflowId) {
    throw new GrantError(`the grant is for action ${claims.action_id}, not for this workflow (${workflowId})`);
  }
  if (actionHash(action) !== claims.action_hash)
    throw new GrantError('the action differs from what the API signed (type, skill, operation, agent or parameters)');
  return claims;
}

export function createGrantActivities(deps: { grants: Grants; policy: Policy }) {
  /**
   * Checks the action's grant and decides the action again from its parameters with this worker's
   * policy: the stricter of the API's decision and this one holds.
   */
  async function verifyAction(input: { workflowId: string; action: ActionRecord; grant: unknown }): Promise<ActionVerdict> {
    const { action } = input;
    let claims: ActionClaims;
    let decided: ReturnType<typeof assessAction>;
    try {
      claims = checkActionGrant(deps.grants, input.grant, action, input.workflowId);
      if (!sameIdentity(claims.requester, action.requester)) throw new GrantError('the requester differs from the one the API signed');
      if (JSON.stringify(claims.origin ?? null) !== JSON.stringify(action.origin ?? null))
        throw new GrantError('the conversation the action names differs from the one that was signed');
      decided = assessAction(deps.policy, action, SKILL_REGISTRY);
    } catch (err) {
      // Whatever the input is (a hand-written one may be anything), a failed check refuses the action: never retried.
      const known = err instanceof GrantError || err instanceof WardenError;
      return {
        ok: false,
        reason: known ? (err as Error).message : `the action could not be checked: ${(err as Error)?.message ?? String(err)}`,
      };
    }
    const { decision } = decided;
    if (!decision.allowed) return { ok: true, allowed: false, level: decision.level, rule: decision.rule, reasons: decided.reasons };
    const level = maxRisk(decision.level, RISK_LEVELS.includes(claims.level) ? claims.level : 'critical');
    return {
      ok: true,
      allowed: true,
      level,
      rule: decision.rule,
      reasons: level === decision.level ? decided.reasons : [...decided.reasons, raisedAtSubmission(level, claims.raised)],
      approvals_required: Math.max(decision.approvals_required, claims.approvals_required),
      exec: actionExec(action.id, decided.command),
    };
  }

  /** Checks an approval's grant against the action it is sent to; the identity comes from the grant only. */
  async function verifyApproval(input: { action_id: string; action_hash: string; grant: unknown }): Promise<ApprovalVerdict> {
    try {
      const claims = deps.grants.verify(input.grant, 'approval');
      if (claims.action_id !== input.action_id)
        throw new GrantError(`the approval is for action ${claims.action_id}, not ${input.action_id}`);
      if (claims.action_hash !== input.action_hash) {
        throw new GrantError('the parameters hash does not match this action: review the action again and approve what it now says');
      }
      return { ok: true, approver: claims.approver, approved: claims.approved, comment: claims.comment };
    } catch (err) {
      if (err instanceof GrantError) return { ok: false, reason: err.message };
      throw err;
    }
  }

  return { verifyAction, verifyApproval };
}

export type GrantActivities = ReturnType<typeof createGrantActivities>;

/**
 * The sandbox worker's check before a command runs: the action's grant is genuine, for this
 * workflow, unexpired; enough distinct approvers other than the requester approved exactly this
 * action; and the command, timeout, output bound and secrets are what the signed parameters make.
 * Refusals are non-retryable failures of type Unauthorized. Returns the action the command
 * journals, as rebuilt here from the signed parameters (never read from the command).
 */
export function authorizeExec(
  grants: Grants,
  authority: ExecAuthority | undefined,
  request: { command: string[]; timeout_ms: number; max_output_bytes: number; secrets?: string[] },
  workflowId: string,
): JournaledAction {
  const refuse = (why: string): never => {
    throw ApplicationFailure.create({
      type: FailureType.Unauthorized,
      message: `the sandbox refused the command: ${why}`,
      nonRetryable: true,
    });
  };
  if (!authority) refuse('it carries no grant from the Warden API (commands run only as approved actions)');
  const { action, grant, approvals } = authority!;
  let claims: ActionClaims;
  try {
    claims = checkActionGrant(grants, grant, action, workflowId);
  } catch (err) {
    return refuse((err as Error).message);
  }
  if (Date.now() > Date.parse(claims.expires_at)) refuse(`the action's grant expired at ${claims.expires_at}`);
  const approvers = new Set<string>();
  for (const approval of Array.isArray(approvals) ? approvals : []) {
    let c: ApprovalClaims;
    try {
      c = grants.verify(approval, 'approval');
    } catch (err) {
      return refuse((err as Error).message);
    }
    if (c.action_id !== claims.action_id || c.action_hash !== claims.action_hash || !c.approved) continue;
    if (!hasRole(c.approver.role, 'approver') || personOf(c.approver) === personOf(claims.requester)) continue;
    approvers.add(personOf(c.approver));
  }
  if (approvers.size < claims.approvals_required) {
    refuse(
      `the action needs ${claims.approvals_required} approval(s) by different people other than the requester; it has ${approvers.size}`,
    );
  }
  let command: SkillCommand;
  let expected: ActionExec;
  try {
    command = prepareCommand(action.skill_id, action.operation, action.parameters);
    expected = actionExec(action.id, command);
  } catch (err) {
    return refuse((err as Error).message);
  }
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  if (
    !same(request.command, expected.command) ||
    request.timeout_ms !== expected.timeout_ms ||
    request.max_output_bytes !== expected.max_output_bytes ||
    !same(request.secrets ?? [], expected.secrets ?? [])
  ) {
    refuse('the command differs from the one the signed action makes');
  }
  return { action_id: action.id, argv: command.argv };
}

/** The sandbox activities as workers register them: a command runs only with an authority that holds. */
export type GuardedSandboxActivities = Omit<SandboxActivities, 'execInSandbox'> & {
  execInSandbox(input: ExecInput & { authority?: ExecAuthority }): Promise<ExecResult>;
};

export function guardSandboxActivities(grants: Grants, activities: SandboxActivities): GuardedSandboxActivities {
  async function execInSandbox(input: ExecInput & { authority?: ExecAuthority }): Promise<ExecResult> {
    const journaled = authorizeExec(grants, input.authority, input, Context.current().info.workflowExecution?.workflowId ?? '');
    const { authority: _checked, ...exec } = input;
    return activities.execInSandbox(exec, journaled);
  }
  return { ...activities, execInSandbox };
}
