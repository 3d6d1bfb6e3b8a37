/**
 * What an approval card says, whatever the platform: the action's facts, its state, and the
 * buttons' data. Each adapter lays it out (and escapes it) for its platform; the text here is plain.
 * A button's data carries only the action id, the decision and the params hash: who clicked comes
 * from the platform's event, never from the button.
 */
import { createHash } from 'node:crypto';
import type { ActionRecord } from '../domain/action.js';

export interface ApprovalCard {
  action_id: string;
  /** One line: what is asked, and where. */
  title: string;
  /** Where the action stands, in a sentence (approvals so far, who decided, the result). */
  state: string;
  /** The facts, in order, as label and plain value. */
  facts: Array<[label: string, value: string]>;
  /** The exact parameters as JSON, cut at the platform's limit. */
  parameters: string;
  /** Set when the parameters were cut: how much is missing and where to read it whole. */
  parameters_note: string | null;
  /** The command's output, for a finished action (cut like the parameters). */
  output: string | null;
  /** Absent once the action no longer awaits a decision: nothing can be clicked. */
  buttons: { approve: string; reject: string } | null;
  /** The action's record is final: the card is never edited again. */
  final: boolean;
}

const BUTTON_DATA_VERSION = 'wd1';
const BUTTON_DATA = /^wd1:([ar]):(act-[0-9a-f]{16}):([0-9a-f]{32}|[0-9a-f]{64})$/;

/**
 * A button's data: the whole params hash (90 characters, within Discord's custom_id limit of 100),
 * or its first 32 hex digits (128 bits; 59 characters, within Telegram's callback_data limit of 64).
 */
export const buttonData = (actionId: string, approved: boolean, paramsHash: string, hashDigits: 32 | 64 = 64): string =>
  `${BUTTON_DATA_VERSION}:${approved ? 'a' : 'r'}:${actionId}:${paramsHash.slice(0, hashDigits)}`;

export interface ButtonChoice {
  action_id: string;
  approved: boolean;
  /** The whole params hash, or its first 32 hex digits where the platform limits the data's length. */
  params_hash: string;
}

/** The choice a button's data names, or null for anything that is not exactly one of Warden's. */
export function parseButtonData(data: unknown): ButtonChoice | null {
  if (typeof data !== 'string') return null;
  const match = BUTTON_DATA.exec(data);
  if (!match) return null;
  return { approved: match[1] === 'a', action_id: match[2]!, params_hash: match[3]! };
}

/** Cuts text to `max` characters, saying how much was left out. */
export function cut(text: string, max: number): { text: string; cut: number } {
  const chars = [...text];
  if (chars.length <= max) return { text, cut: 0 };
  return { text: chars.slice(0, max).join(''), cut: chars.length - max };
}

const decidedBy = (action: ActionRecord, approved: boolean) =>
  action.approvals
    .filter((a) => a.approved === approved)
    .map((a) => a.approver.name)
    .join(', ');

function stateOf(action: ActionRecord, now: Date): string {
  const approvals = action.approvals.filter((a) => a.approved);
  const so = `${approvals.length} of ${action.approvals_required} approval${action.approvals_required === 1 ? '' : 's'}`;
  switch (action.status) {
    case 'pending':
      if (new Date(action.expires_at ?? 0) <= now) return `Expired: no decision in time; it did not run`;
      return `Awaiting approval: ${so}${approvals.length ? ` (${decidedBy(action, true)})` : ''}`;
    case 'approved':
    case 'executing':
      return `Approved by ${decidedBy(action, true)}; running`;
    case 'completed':
      return `Approved by ${decidedBy(action, true)}; completed (exit code ${action.result?.exit_code ?? 0})`;
    case 'failed':
      return `${approvals.length ? `Approved by ${decidedBy(action, true)}; ` : ''}failed: ${action.error ?? 'unknown error'}`;
    case 'rejected':
      return action.approvals.some((a) => !a.approved)
        ? `Rejected by ${decidedBy(action, false)}`
        : `Rejected: ${action.error ?? 'refused'}`;
    case 'expired':
      return 'Expired: no decision in time; it did not run';
    case 'cancelled':
      return `Cancelled: ${action.error ?? 'cancelled'}`;
  }
}

export interface CardLimits {
  /** The most characters of parameters (JSON) the platform's card can show. */
  parameters: number;
  /** The most characters of output. */
  output: number;
  /** How much of the params hash the buttons carry (64: all of it). */
  hashDigits?: 32 | 64;
}

/** The card of an action as it stands now. */
export function approvalCard(action: ActionRecord, limits: CardLimits, now = new Date()): ApprovalCard {
  const json = JSON.stringify(action.parameters, null, 2);
  const parameters = cut(json, limits.parameters);
  const awaiting = action.status === 'pending' && new Date(action.expires_at ?? 0) > now;
  const output = action.result
    ? cut([action.result.stdout, action.result.stderr].filter(Boolean).join('\n').trim() || '(no output)', limits.output)
    : null;
  return {
    action_id: action.id,
    title: `${action.skill_id}.${action.operation} on agent ${action.agent_id}`,
    state: stateOf(action, now),
    facts: [
      ['Action', action.id],
      ['Risk', `${action.security_level} (rule ${action.rule})`],
      ['Requested by', `${action.requester.name} (${action.requester.key_id})`],
      ['Approvals', `${action.approvals.filter((a) => a.approved).length} of ${action.approvals_required}`],
      ...(action.expires_at ? [['Expires', action.expires_at] as [string, string]] : []),
    ],
    parameters: parameters.text,
    parameters_note: parameters.cut
      ? `${parameters.cut} more characters not shown: read them whole with \`warden approvals show ${action.id}\` before deciding`
      : null,
    output: output ? output.text + (output.cut ? `\n… ${output.cut} more characters` : '') : null,
    buttons: awaiting
      ? {
          approve: buttonData(action.id, true, action.params_hash, limits.hashDigits),
          reject: buttonData(action.id, false, action.params_hash, limits.hashDigits),
        }
      : null,
    final: action.completed_at !== null,
  };
}

/** A digest of what a card shows: its message is edited only when this changes. */
export const cardDigest = (card: ApprovalCard): string => createHash('sha256').update(JSON.stringify(card)).digest('hex');
