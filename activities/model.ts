/**
 * The model call of a conversation, on the model worker: the only worker that reads the providers'
 * API keys (from the vault, by the secret names the provider configuration gives). It has no
 * Docker, no audit store and signs nothing; it calls a model only for a conversation whose grant
 * holds, for a message the API passed on, and with the control worker's model-call grant for this
 * very call (made after the budget check: the provider, model and transcript it was estimated for,
 * the answer's cap, minutes to live, spent by the first scheduled call that shows it). So workflow
 * code run by anyone who reaches Temporal's port spends no one's tokens past the budget. The whole
 * normalised answer is the activity's result: a replay reads it from history and never calls the
 * model again.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { SYSTEM_PROMPT, toolName } from '../domain/conversation.js';
import { FailureType } from '../domain/failure-types.js';
import { budgetLimits } from '../domain/budget.js';
import { GrantError, transcriptHash, type ConversationClaims, type Grants, type ModelCallClaims } from '../domain/grants.js';
import type { ChatMessage, ModelCallProgress, ToolSpec } from '../domain/llm.js';
import { ProviderError } from '../llm/errors.js';
import type { FallbackResponse } from '../llm/fallback.js';
import { priceOf } from '../llm/pricing.js';
import type { ProviderRegistry } from '../llm/registry.js';
import { getSkill, toJsonSchema } from '../skills/index.js';
import type { ModelCallLedger } from '../stores/model-call-ledger.js';
import { checkConversationGrant, checkMessageGrant, type ConversationSettings } from './conversation.js';

export interface ModelCallInput {
  grant: unknown;
  provider: string;
  /** The provider's default model when absent. */
  model?: string;
  /** The turn's message and the API's grant for it: a message slipped in at Temporal's port reaches no model. */
  message: { text: string; grant: unknown };
  /** The transcript so far, without the system prompt (added here). */
  messages: ChatMessage[];
  /** The control worker's grant for this one call, made after its budget check (activities/budget.ts). */
  call_grant?: unknown;
}

/** How often at most a streamed answer's text so far is sent to the server (the model worker's heartbeat throttle). */
export const MODEL_TEXT_INTERVAL = '250 ms';

/** The tools of a skill: each operation, with its zod schema as JSON Schema. */
export function toolsOf(skillId: string): ToolSpec[] {
  const skill = getSkill(skillId);
  return Object.entries(skill.operations).map(([operation, op]) => ({
    name: toolName(skill.id, operation),
    description: op.description,
    parameters: toJsonSchema(skill.id, operation),
  }));
}

/** A grant that does not hold ends the turn: no model is called, and retrying cannot help. Rethrows anything else. */
export function refuseModelCall(err: unknown): never {
  if (!(err instanceof GrantError)) throw err;
  throw ApplicationFailure.create({ type: FailureType.Unauthorized, message: `no model was called: ${err.message}`, nonRetryable: true });
}

/** The model-call grant's claims, checked against the call as it is asked for now; throws a GrantError. */
export function checkModelCallGrant(
  grants: Grants,
  grant: unknown,
  call: { conversation_id: string; agent_id: string; provider: string; model: string | null; messages: unknown },
  now = Date.now(),
): ModelCallClaims {
  if (grant == null) throw new GrantError('the call carries no model-call grant: only a call that passed the budget check is made');
  const claims = grants.verify(grant, 'model_call');
  if (claims.conversation_id !== call.conversation_id || claims.agent_id !== call.agent_id)
    throw new GrantError(`the model-call grant is for conversation ${claims.conversation_id}, not for this one (${call.conversation_id})`);
  if (now > Date.parse(claims.expires_at)) throw new GrantError(`the model-call grant expired at ${claims.expires_at}`);
  if (claims.provider !== call.provider || claims.model !== call.model)
    throw new GrantError(`the model-call grant is for ${claims.provider}/${claims.model ?? 'its default model'}, not for this model`);
  let sent: string;
  try {
    sent = transcriptHash(call.messages);
  } catch {
    throw new GrantError('the transcript cannot be checked against the model-call grant');
  }
  if (sent !== claims.transcript_hash) throw new GrantError('the transcript differs from the one whose cost the budget check estimated');
  return claims;
}

export function createModelActivities(deps: {
  grants: Grants;
  providers: ProviderRegistry;
  settings?: ConversationSettings;
  /** Which calls spent their grants, shared by every model worker; without it no model is called (fail closed). */
  spentCalls?: ModelCallLedger;
}) {
  /**
   * The budget was checked at the conversation's provider's price; a fallback answers at its own.
   * With a money limit, a fallback whose model has no price is not called: what it spent could not be counted.
   */
  function unpricedUnderMoneyBudget(claims: ConversationClaims) {
    const budget = deps.settings?.budget;
    const limits = budget ? budgetLimits(budget.defaults, claims.budget) : (claims.budget ?? {});
    if (limits.conversation_usd === undefined && limits.day_usd === undefined) return undefined;
    return (provider: string, model: string) =>
      priceOf(provider, model, budget?.prices)
        ? null
        : `its model ${model} has no price and the agent has a money budget (add the model to WARDEN_MODEL_PRICES)`;
  }

  async function callModel(input: ModelCallInput): Promise<FallbackResponse> {
    const context = Context.current();
    const { info } = context;
    const workflowId = info.workflowExecution?.workflowId ?? '';
    let claims: ConversationClaims;
    let allowed: ModelCallClaims;
    try {
      claims = await checkConversationGrant(deps.grants, input.grant, workflowId, deps.settings);
      checkMessageGrant(deps.grants, input.message, workflowId);
      allowed = checkModelCallGrant(deps.grants, input.call_grant, {
        conversation_id: workflowId,
        agent_id: claims.agent_id,
        provider: input.provider,
        model: input.model ?? null,
        messages: input.messages,
      });
      if (!deps.spentCalls) throw new GrantError('this worker cannot tell spent model-call grants: it calls no model');
      const spender = {
        run_id: info.workflowExecution?.runId ?? '',
        activity_id: info.activityId,
        scheduled_ms: info.scheduledTimestampMs,
      };
      if (!(await deps.spentCalls.spend(allowed.call_id, spender)))
        throw new GrantError(`the model-call grant for call ${allowed.call_id} was spent by another call: a grant allows one call`);
    } catch (err) {
      refuseModelCall(err);
    }
    if (!deps.providers.get(input.provider)) {
      throw ApplicationFailure.create({
        type: 'ProviderMisconfigured',
        message: `no model provider is named ${input.provider} on this worker; configure it as on the API (WARDEN_PROVIDERS_FILE, WARDEN_LLM_*)`,
        nonRetryable: true,
      });
    }
    // Heartbeats carry a cancelled turn to the call, and tell Temporal soon when this worker died mid-call.
    // Their details are the answer's text so far, for the API's event streams to read: they are
    // never written to the workflow's history, which records only the assembled answer.
    let streamed: ModelCallProgress | undefined;
    const beat = () => context.heartbeat(streamed);
    const beating = setInterval(beat, 5_000);
    try {
      return await deps.providers.chain(input.provider, { refuse: unpricedUnderMoneyBudget(claims) }).chat({
        ...(input.model ? { model: input.model } : {}),
        // Under a token or money limit, the answer the budget check reserved: the call spends no more than its grant allows.
        ...(allowed.max_tokens !== null ? { max_tokens: allowed.max_tokens } : {}),
        messages: [{ role: 'system', content: SYSTEM_PROMPT }, ...input.messages],
        tools: toolsOf(claims.skill_id),
        signal: context.cancellationSignal,
        onText: (text) => {
          streamed = { attempt: context.info.attempt, text };
          beat();
        },
      });
    } catch (err) {
      if (!(err instanceof ProviderError)) throw err;
      // The provider layer has retried and failed over already: Temporal retries only what may pass.
      throw ApplicationFailure.create({ type: `Provider_${err.kind}`, message: err.message, nonRetryable: !err.retryable });
    } finally {
      clearInterval(beating);
    }
  }
  return { callModel };
}

export type ModelActivities = ReturnType<typeof createModelActivities>;
