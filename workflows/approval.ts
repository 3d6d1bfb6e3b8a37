/**
 * Who may approve what: one pure decision function shared by the approval signal, the approval
 * update's validator and the API, so every path applies the same rules.
 */
import type { ActionRecord } from '../domain/action.js';
import { hasRole, personOf, type Identity } from '../domain/roles.js';
import type { ApprovalClaims, Grant } from '../domain/grants.js';

export interface ApprovalAttempt {
  approver: Identity;
  approved: boolean;
  comment?: string | null;
  /** The hash of the exact action the approver reviewed. */
  params_hash: string;
  /**
   * The API's signed approval. Where the workflow requires grants, only the grant counts: the
   * approver, decision and hash above are taken from it, whatever the rest of the attempt says.
   */
  grant?: Grant<ApprovalClaims>;
}

export type ApprovalVerdict = { ok: true } | { ok: false; reason: string };

export function judgeApproval(action: ActionRecord, attempt: ApprovalAttempt): ApprovalVerdict {
  if (action.status !== 'pending') return { ok: false, reason: `action ${action.id} is ${action.status}, not awaiting approval` };
  if (!hasRole(attempt.approver.role, 'approver')) {
    return { ok: false, reason: `${attempt.approver.name} has the ${attempt.approver.role} role; approving needs approver` };
  }
  if (attempt.approver.key_id === action.requester.key_id) {
    return { ok: false, reason: 'the requester cannot approve or reject their own action' };
  }
  if (personOf(attempt.approver) === personOf(action.requester)) {
    return {
      ok: false,
      reason: `${attempt.approver.name} counts as ${personOf(attempt.approver)}, who requested this action: someone else must decide it`,
    };
  }
  if (attempt.params_hash !== action.params_hash) {
    return { ok: false, reason: 'the parameters hash does not match this action: review the action again and approve what it now says' };
  }
  if (action.approvals.some((a) => a.approver.key_id === attempt.approver.key_id)) {
    return {
      ok: false,
      reason: `${attempt.approver.name} has already approved this action; a second approval must come from someone else`,
    };
  }
  const same = action.approvals.find((a) => personOf(a.approver) === personOf(attempt.approver));
  if (same) {
    return {
      ok: false,
      reason: `${attempt.approver.name} counts as ${personOf(attempt.approver)}, who already approved this action (as ${same.approver.name}); a second approval must come from another person`,
    };
  }
  return { ok: true };
}
