/**
 * Grants: what gives an action its authority, signed by the API with a key derived from the master
 * key, which Temporal never sees. Anyone who reaches Temporal's port can start workflows and send
 * signals, but cannot sign: the workers check every grant before they count an approval or run a
 * command (the action workflow through a local activity, the sandbox worker again right before
 * the command runs), so a hand-written workflow input, approval signal or replayed payload grants
 * nothing.
 *
 * - An action grant names the action (its id and the hash of everything it does), who asked, the
 *   level and approvals the policy decided at submission, and until when it may run.
 * - An approval grant names the action (id and hash, as the approver reviewed it), who decided,
 *   and the decision.
 * - A conversation grant names the conversation, its agent and skill, and who started it: the
 *   model's tool calls become actions of that requester, and of no one else.
 * - A message grant names a message of a conversation (its hash) and who sent it: only messages
 *   the API passed on may lead to actions.
 * - A model-call grant is the control worker's, made once a model call passed the budget check:
 *   it names one call of a conversation (its turn and step), the agent, the provider and model,
 *   the transcript that was estimated (its hash) and the most the answer may spend. It lives
 *   minutes and is spent by one scheduled call: the model worker calls no model without it.
 *
 * Node-side only (node:crypto): workflows import its types.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { AgentBudget } from './budget.js';
import type { Identity } from './roles.js';
import type { RiskLevel } from './risk.js';
import type { ActionOrigin, ActionType } from './action.js';
import { canonicalJson } from './audit-entry.js';
import type { Keyring } from './keyring.js';

/** What an action does: the fields its hash covers (the same command on two agents hashes differently). */
export interface ActionSubject {
  action_type: ActionType;
  skill_id: string;
  operation: string;
  agent_id: string;
  parameters: Record<string, unknown>;
}

/** The hash of the whole action: what an approver reviews and approves (`params_hash` in the API). */
export function actionHash(subject: ActionSubject): string {
  const { action_type, skill_id, operation, agent_id, parameters } = subject;
  return createHash('sha256').update(canonicalJson({ action_type, skill_id, operation, agent_id, parameters }), 'utf8').digest('hex');
}

export interface ActionClaims {
  kind: 'action';
  action_id: string;
  action_hash: string;
  requester: Identity;
  level: RiskLevel;
  approvals_required: number;
  /** After this the action may no longer run (approval expiry, the command's time, and a margin for retries). */
  expires_at: string;
  /** The conversation and turn whose tool call this action is, when a model asked for it. */
  origin?: ActionOrigin;
  /** Why the level is above the policy's decision (an approval pending in the agent, flagged content in the conversation). */
  raised?: string;
}

export interface ApprovalClaims {
  kind: 'approval';
  action_id: string;
  action_hash: string;
  approver: Identity;
  approved: boolean;
  comment: string | null;
  issued_at: string;
}

export interface ConversationClaims {
  kind: 'conversation';
  conversation_id: string;
  agent_id: string;
  /** The agent's skill: its operations are the model's tools. */
  skill_id: string;
  /** The agent's own conversation budget, when it has one; the workers' configured defaults for the rest. */
  budget?: AgentBudget;
  requester: Identity;
  issued_at: string;
  /** After this the conversation calls no model and asks for no action. */
  expires_at: string;
}

export interface MessageClaims {
  kind: 'message';
  conversation_id: string;
  /** messageHash of the text. */
  message_hash: string;
  sender: Identity;
  issued_at: string;
}

export interface ModelCallClaims {
  kind: 'model_call';
  /** The call it allows, `<conversation>:<turn>:<step>`: one scheduled call spends it (Temporal's retries of that call included). */
  call_id: string;
  conversation_id: string;
  agent_id: string;
  provider: string;
  /** The model asked for; null: the provider's default. */
  model: string | null;
  /** transcriptHash of the messages the budget check estimated: the call sends exactly those. */
  transcript_hash: string;
  /** The answer's cap (the provider's max_tokens) under a token or money limit: with the estimated prompt, the most the call may spend; null without a limit (the provider's own). */
  max_tokens: number | null;
  /** The call's estimate: prompt and answer tokens, and US dollars (null for an unpriced model). */
  estimated_tokens: number;
  estimated_usd: number | null;
  issued_at: string;
  expires_at: string;
}

export type GrantClaims = ActionClaims | ApprovalClaims | ConversationClaims | MessageClaims | ModelCallClaims;

/** The hash a message grant binds: of the text exactly as sent. */
export const messageHash = (text: string): string => createHash('sha256').update(text, 'utf8').digest('hex');

/** The hash a model-call grant binds: of the transcript as the model will be sent it (without the system prompt). */
export const transcriptHash = (messages: unknown): string => createHash('sha256').update(canonicalJson(messages), 'utf8').digest('hex');

/** Claims with the MAC that proves the API made them, and the id of the master key it used. */
export interface Grant<C extends GrantClaims = GrantClaims> {
  claims: C;
  key_id: string;
  mac: string;
}

/** A grant that does not hold; the message says which check failed (never a key or a MAC). */
export class GrantError extends Error {
  override name = 'GrantError';
}

export class Grants {
  constructor(private readonly keyring: Keyring) {}

  sign<C extends GrantClaims>(claims: C): Grant<C> {
    const keyId = this.keyring.currentId;
    return { claims, key_id: keyId, mac: this.mac(claims, keyId) };
  }

  /** The claims of a genuine grant of this kind; throws a GrantError saying what is wrong otherwise. */
  verify<K extends GrantClaims['kind']>(grant: unknown, kind: K): Extract<GrantClaims, { kind: K }> {
    const g = grant as Partial<Grant> | null | undefined;
    if (
      !g ||
      typeof g !== 'object' ||
      !g.claims ||
      typeof g.claims !== 'object' ||
      typeof g.mac !== 'string' ||
      typeof g.key_id !== 'string'
    ) {
      throw new GrantError(`no ${kind} grant: it must come from the Warden API`);
    }
    let expected: string;
    try {
      expected = this.mac(g.claims, g.key_id);
    } catch {
      throw new GrantError(`the ${kind} grant names a master key this worker does not have (${g.key_id})`);
    }
    const given = Buffer.from(g.mac, 'hex');
    if (given.length !== 32 || !timingSafeEqual(given, Buffer.from(expected, 'hex'))) {
      throw new GrantError(`the ${kind} grant's signature does not match: it was not made by the Warden API, or it was altered`);
    }
    if (g.claims.kind !== kind)
      throw new GrantError(`this is not a grant of the ${kind} kind (it is one of the ${String(g.claims.kind)} kind)`);
    return g.claims as Extract<GrantClaims, { kind: K }>;
  }

  private mac(claims: unknown, keyId: string): string {
    return createHmac('sha256', this.keyring.derive('grant', keyId)).update(canonicalJson(claims), 'utf8').digest('hex');
  }
}
