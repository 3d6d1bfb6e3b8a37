/**
 * A conversation's budget, on the control worker beside the audit log: before each model call the
 * call is estimated and refused if it would go over the agent's limits; after it, what the
 * provider reported is priced and written to the log as a `model.call` entry. Those entries are
 * the ledger the day's budget is summed from, so it holds across the agent's conversations and
 * across restarts of any process. The limits come from the conversation's grant (the agent's own,
 * as the API signed them) over the worker's configured defaults, never from the workflow's input.
 *
 * A call that fits is held against the agent's day (a `model.reserve` entry, written in the same
 * append transaction that summed the day, so two conversations calling at once cannot both take
 * the last room) and gets a model-call grant: the model worker calls no model without one.
 */
import { Context } from '@temporalio/activity';
import {
  budgetLimits,
  budgetRefusal,
  dayStart,
  defaultBudget,
  spentTokens,
  type BudgetLimits,
  type BudgetSettings,
  type Spend,
} from '../domain/budget.js';
import type { Config } from '../domain/config.js';
import { SYSTEM_PROMPT } from '../domain/conversation.js';
import type { AuditEntry, AuditQuery } from '../domain/audit-entry.js';
import { GrantError, transcriptHash, type ConversationClaims, type Grant, type Grants, type ModelCallClaims } from '../domain/grants.js';
import type { ChatMessage, TokenUsage } from '../domain/llm.js';
import type { ProviderConfig } from '../domain/model-providers.js';
import { costOf, priceOf, type PriceOverrides } from '../llm/pricing.js';
import { estimateCall } from '../llm/token-estimate.js';
import type { AuditStore } from '../stores/audit-store.js';
import { createAuditActivities } from './audit.js';
import { checkConversationGrant, type ConversationSettings } from './conversation.js';
import { refuseModelCall, toolsOf } from './model.js';

/** What the control worker decides budgets with: the configured defaults, the prices over the table, the providers' default models. */
export interface ModelBudgetSettings {
  defaults: BudgetLimits;
  prices: PriceOverrides;
  providers: ProviderConfig[];
}

/** The budget settings as the configuration gives them. */
export const modelBudgetSettings = (
  config: BudgetSettings & Pick<Config, 'modelPrices'>,
  providers: ProviderConfig[],
): ModelBudgetSettings => ({
  defaults: defaultBudget(config),
  prices: config.modelPrices,
  providers,
});

export interface ModelBudgetInput {
  grant: unknown;
  provider: string;
  model?: string;
  /** The transcript as the model will be sent it, without the system prompt. */
  messages: ChatMessage[];
  /** What the conversation has spent so far (its workflow's state, carried when it continues as new). */
  spent: Spend;
  /**
   * Which call of the conversation this is: with it a call that fits is held against the day and
   * gets its model-call grant (conversations from before those grants send none, and get none).
   */
  call?: { turn: number; step: number };
}

export interface ModelBudgetVerdict {
  /** Why the call may not be made, for the person; null when it may. */
  refusal: string | null;
  estimated_tokens: number;
  tool_calls_per_turn: number;
  /** What the model worker must be shown to make this one call (when it may be made and `call` was given). */
  call_grant?: Grant<ModelCallClaims>;
}

/** How long a model-call grant holds: long enough for the call to wait for a model worker and be retried once, no longer. */
export const MODEL_CALL_GRANT_SECONDS = 600;

export interface ModelCallRecord {
  grant: unknown;
  turn: number;
  step: number;
  /** The provider and model that answered (a fallback's, after a failover). */
  provider: string;
  model: string;
  usage: TokenUsage;
  estimated_tokens: number;
}

/** Entries read at once when summing the day. */
const PAGE = 1000;

export function createBudgetActivities(deps: { grants: Grants; audit: AuditStore; settings?: ConversationSettings }) {
  const { recordAudit } = createAuditActivities(deps.audit);

  async function claimsOf(grant: unknown): Promise<{ claims: ConversationClaims; workflowId: string; budget: ModelBudgetSettings }> {
    const workflowId = Context.current().info.workflowExecution?.workflowId ?? '';
    try {
      const claims = await checkConversationGrant(deps.grants, grant, workflowId, deps.settings);
      const budget = deps.settings?.budget;
      if (!budget) throw new GrantError('this worker was started without budget settings: it calls no model');
      return { claims, workflowId, budget };
    } catch (err) {
      refuseModelCall(err);
    }
  }

  /**
   * What the agent's model calls spent since midnight UTC: what each call reported (its model.call
   * entry), and for a call not yet recorded, the estimate it reserved.
   */
  async function spentToday(read: (query: AuditQuery) => Promise<AuditEntry[]>, agentId: string): Promise<Spend> {
    const spent: Spend = { tokens: 0, usd: 0 };
    const since = dayStart(new Date());
    const callOf = (e: AuditEntry) => `${String(e.details.conversation_id)}:${String(e.details.turn)}:${String(e.details.step)}`;
    async function each(kind: 'model.call' | 'model.reserve', fn: (e: AuditEntry) => void) {
      for (let before: number | undefined; ;) {
        const page = await read({ kind, agent_id: agentId, since, limit: PAGE, before_seq: before });
        page.forEach(fn);
        if (page.length < PAGE) return;
        before = page.at(-1)!.seq;
      }
    }
    const recorded = new Set<string>();
    await each('model.call', (e) => {
      spent.tokens += spentTokens(e.details.usage as TokenUsage);
      spent.usd += typeof e.details.cost_usd === 'number' ? e.details.cost_usd : 0;
      recorded.add(callOf(e));
    });
    await each('model.reserve', (e) => {
      if (recorded.has(callOf(e))) return;
      spent.tokens += typeof e.details.estimated_tokens === 'number' ? e.details.estimated_tokens : 0;
      spent.usd += typeof e.details.estimated_usd === 'number' ? e.details.estimated_usd : 0;
    });
    return spent;
  }

  /**
   * Before a model call: its estimate against what the conversation and the agent's day have left.
   * A call that fits is reserved against the day and granted; one that does not is never sent.
   */
  async function checkModelBudget(input: ModelBudgetInput): Promise<ModelBudgetVerdict> {
    const { claims, workflowId, budget } = await claimsOf(input.grant);
    const limits = budgetLimits(budget.defaults, claims.budget);
    const model =
      input.model ?? budget.providers.find((p) => p.name === input.provider)?.default_model ?? `${input.provider}'s default model`;
    const estimate = estimateCall([{ role: 'system', content: SYSTEM_PROMPT }, ...input.messages], toolsOf(claims.skill_id));
    const tokens = estimate.prompt_tokens + estimate.answer_tokens;
    const price = priceOf(input.provider, model, budget.prices);
    const usd = price
      ? costOf({ input_tokens: estimate.prompt_tokens, output_tokens: estimate.answer_tokens, cached_tokens: 0 }, price)
      : null;
    const countsDay = limits.day_tokens !== undefined || limits.day_usd !== undefined;
    const limited = countsDay || limits.conversation_tokens !== undefined || limits.conversation_usd !== undefined;
    const refusalAfter = (day: Spend) => budgetRefusal(limits, { conversation: input.spent, day }, { tokens, usd, model });
    const verdict = (refusal: string | null): ModelBudgetVerdict => ({
      refusal,
      estimated_tokens: tokens,
      tool_calls_per_turn: limits.tool_calls_per_turn,
    });
    const read = (query: AuditQuery) => deps.audit.list(query);
    const { call } = input;
    if (!call) return verdict(refusalAfter(countsDay ? await spentToday(read, claims.agent_id) : { tokens: 0, usd: 0 }));

    let refusal: string | null;
    if (countsDay) {
      // Summed and reserved in one append transaction: the next check, in any process, sees this reservation.
      const reserved = await deps.audit.appendUnless(
        {
          key: `${workflowId}:model.reserve:${call.turn}:${call.step}`,
          kind: 'model.reserve',
          actor: 'system',
          agent_id: claims.agent_id,
          details: { conversation_id: workflowId, turn: call.turn, step: call.step, model, estimated_tokens: tokens, estimated_usd: usd },
        },
        async (inLog) => refusalAfter(await spentToday(inLog, claims.agent_id)),
      );
      refusal = 'refused' in reserved ? reserved.refused : null;
    } else {
      refusal = refusalAfter({ tokens: 0, usd: 0 });
    }
    if (refusal !== null) return verdict(refusal);
    const now = Date.now();
    return {
      ...verdict(null),
      call_grant: deps.grants.sign<ModelCallClaims>({
        kind: 'model_call',
        call_id: `${workflowId}:${call.turn}:${call.step}`,
        conversation_id: workflowId,
        agent_id: claims.agent_id,
        provider: input.provider,
        model: input.model ?? null,
        transcript_hash: transcriptHash(input.messages),
        // Under a token or money limit the answer is held to what the check reserved for it, so the
        // call can never spend past what is left (the refusal above made sure the reserve fits).
        max_tokens: limited ? estimate.answer_tokens : null,
        estimated_tokens: tokens,
        estimated_usd: usd,
        issued_at: new Date(now).toISOString(),
        expires_at: new Date(now + MODEL_CALL_GRANT_SECONDS * 1000).toISOString(),
      }),
    };
  }

  /** After a model call: what it cost, on the audit log (once, however often this is retried). */
  async function recordModelCall(input: ModelCallRecord): Promise<{ cost_usd: number | null }> {
    const { claims, workflowId, budget } = await claimsOf(input.grant);
    const price = priceOf(input.provider, input.model, budget.prices);
    const cost = price ? costOf(input.usage, price) : null;
    await recordAudit({
      key: `${workflowId}:model.call:${input.turn}:${input.step}`,
      kind: 'model.call',
      actor: 'system',
      agent_id: claims.agent_id,
      details: {
        conversation_id: workflowId,
        turn: input.turn,
        step: input.step,
        provider: input.provider,
        model: input.model,
        usage: input.usage,
        estimated_tokens: input.estimated_tokens,
        cost_usd: cost,
      },
    });
    return { cost_usd: cost };
  }

  return { checkModelBudget, recordModelCall };
}

export type BudgetActivities = ReturnType<typeof createBudgetActivities>;
