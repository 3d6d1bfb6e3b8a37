/**
 * A conversation's activities on the control worker: a model's tool call becomes an action
 * through the one submission path (domain/action-submission.ts), for the requester the API signed
 * into the conversation's grant. The workflow's input is not trusted: the conversation grant must
 * be genuine, for this workflow, unexpired and its requester's key unrevoked, and the turn's
 * message must carry the API's message grant.
 */
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { actionSubmitter, prepareAction, type ActionWorkflowInput } from '../domain/action-submission.js';
import { operationOfTool, taintReason, type Taint } from '../domain/conversation.js';
import { screenText, type ScreenResult } from '../domain/injection-screen/index.js';
import { WardenError } from '../domain/errors.js';
import { GrantError, messageHash, type ConversationClaims, type Grants } from '../domain/grants.js';
import type { ToolCall } from '../domain/llm.js';
import type { Policy } from '../domain/policy.js';
import { getSkill, SKILL_REGISTRY } from '../skills/index.js';
import type { ModelBudgetSettings } from './budget.js';

/** What a worker needs to act for conversations; a worker without it refuses every conversation (fail closed). */
export interface ConversationSettings {
  /** Whether an API key was revoked (the API's key store, read-only). */
  isRevoked: (keyId: string) => Promise<boolean>;
  /** As the API's: how long the actions tool calls become wait for approval. */
  approvalExpirySeconds: number;
  /** As the API's: when an action awaiting approval raises an alert (alerts configured). */
  alertPendingSeconds?: number;
  /** The control worker's budget settings; without them it calls no model (activities/budget.ts). */
  budget?: ModelBudgetSettings;
}

/** The claims of the conversation grant, checked for this workflow now; throws a GrantError. */
export async function checkConversationGrant(
  grants: Grants,
  grant: unknown,
  workflowId: string,
  settings: ConversationSettings | undefined,
  now = Date.now(),
): Promise<ConversationClaims> {
  const claims = grants.verify(grant, 'conversation');
  if (claims.conversation_id !== workflowId)
    throw new GrantError(`the grant is for conversation ${claims.conversation_id}, not for this workflow (${workflowId})`);
  if (now > Date.parse(claims.expires_at)) throw new GrantError(`the conversation's grant expired at ${claims.expires_at}`);
  if (!settings) throw new GrantError('this worker cannot tell revoked keys: it does not act for conversations');
  if (await settings.isRevoked(claims.requester.key_id))
    throw new GrantError(`the key that started this conversation (${claims.requester.key_id}) was revoked`);
  return claims;
}

/** Throws a GrantError unless the grant is the API's for exactly this text in this conversation. */
export function checkMessageGrant(grants: Grants, message: { text: string; grant: unknown } | undefined, workflowId: string): void {
  const claims = grants.verify(message?.grant, 'message');
  if (claims.conversation_id !== workflowId || claims.message_hash !== messageHash(String(message?.text)))
    throw new GrantError('the turn carries no message the API passed on to this conversation');
}

/** A tool call as the model made it, and where it stands in the conversation. */
export interface ToolCallInput {
  grant: unknown;
  /** The turn's message and the API's grant for it. */
  message: { text: string; grant: unknown };
  turn: number;
  /** The call's place among the turn's calls, counted over all its model steps. */
  call_index: number;
  call: ToolCall;
  /** Set once the conversation took in flagged content: the action is raised to at least high. */
  taint?: Taint;
}

export type PreparedToolCall = { ok: true; input: ActionWorkflowInput } | { ok: false; reason: string };

/** The id of the action a tool call becomes: the same for every retry and replay of the call. */
export function toolCallActionId(conversationId: string, turn: number, callIndex: number): string {
  return `act-${createHash('sha256').update(`${conversationId}:${turn}:${callIndex}`).digest('hex').slice(0, 16)}`;
}

export function createConversationActivities(deps: { client: Client; grants: Grants; policy: Policy; settings?: ConversationSettings }) {
  const { settings } = deps;
  // Without settings the grant check refuses every call first (fail closed).
  const submitter =
    settings && actionSubmitter(deps.client, { policy: deps.policy, grants: deps.grants, skills: SKILL_REGISTRY }, settings);

  /**
   * The signed input of the action a tool call becomes, or why it cannot become one (told to the
   * model as the call's result). A denied action is still an action: its workflow records the denial.
   */
  async function prepareToolCall(input: ToolCallInput): Promise<PreparedToolCall> {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
    let claims: ConversationClaims;
    try {
      claims = await checkConversationGrant(deps.grants, input.grant, workflowId, settings);
      checkMessageGrant(deps.grants, input.message, workflowId);
    } catch (err) {
      if (err instanceof GrantError) return { ok: false, reason: `refused: ${err.message}` };
      throw err;
    }
    const { call } = input;
    const skill = getSkill(claims.skill_id);
    const operation = operationOfTool(skill.id, Object.keys(skill.operations), call.name);
    if (!operation) return { ok: false, reason: `there is no tool named ${call.name}` };
    if (call.parse_error) return { ok: false, reason: `the call's arguments could not be read (${call.parse_error}); send a JSON object` };
    try {
      const prepared = await prepareAction(
        submitter!,
        { action_type: 'skill_execution', skill_id: skill.id, operation, agent_id: claims.agent_id, parameters: call.arguments },
        claims.requester,
        {
          id: toolCallActionId(workflowId, input.turn, input.call_index),
          now: new Date(),
          origin: { conversation_id: workflowId, turn: input.turn },
          ...(input.taint ? { atLeast: { level: 'high' as const, reason: taintReason(input.taint) } } : {}),
        },
      );
      return { ok: true, input: prepared };
    } catch (err) {
      // Invalid parameters: the model hears what is wrong and may call again.
      if (err instanceof WardenError) return { ok: false, reason: err.message };
      throw err;
    }
  }

  /** The injection screen's verdict on a tool result: what the sandbox returned is data, not instructions. */
  async function screenToolResult(input: { text: string }): Promise<Pick<ScreenResult, 'verdict' | 'categories'>> {
    const { verdict, categories } = screenText(String(input.text));
    return { verdict, categories };
  }

  return { prepareToolCall, screenToolResult };
}

export type ConversationActivities = ReturnType<typeof createConversationActivities>;
