/**
 * A conversation's budget, on the control worker beside the audit log: before each model call the
 * call is estimated and refused if it would go over the agent's limits; after it, what the
 * provider reported is priced and written to the log as a `model.call` entry. Those entries are
 * the ledger the day's budget is summed from, so it holds across the agent's conversations and
 * across restarts of any process. The limits come from the conversation's grant (the agent's own,
 * as the API signed them) over the worker's configured defaults, never from the workflow's input.
 */
import { Context } from '@temporalio/activity';
import {
  answerTokenCap,
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
import { GrantError, type ConversationClaims, type Grants } from '../domain/grants.js';
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
}

export interface ModelBudgetVerdict {
  /** Why the call may not be made, for the person; null when it may. */
  refusal: string | null;
  estimated_tokens: number;
  tool_calls_per_turn: number;
  /** What the budget leaves the answer once the prompt is paid for: the call's max_tokens. Unset without a token or money limit. */
  max_tokens?: number;
}

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

  /** What the agent's model calls reported since midnight UTC: the sum of the log's model.call entries. */
  async function spentToday(agentId: string): Promise<Spend> {
    const spent: Spend = { tokens: 0, usd: 0 };
    const since = dayStart(new Date());
    let before: number | undefined;
    for (;;) {
      const page = await deps.audit.list({ kind: 'model.call', agent_id: agentId, since, limit: PAGE, before_seq: before });
      for (const e of page) {
        spent.tokens += spentTokens(e.details.usage as TokenUsage);
        spent.usd += typeof e.details.cost_usd === 'number' ? e.details.cost_usd : 0;
      }
      if (page.length < PAGE) return spent;
      before = page.at(-1)!.seq;
    }
  }

  /** Before a model call: its estimate against what the conversation and the agent's day have left. */
  async function checkModelBudget(input: ModelBudgetInput): Promise<ModelBudgetVerdict> {
    const { claims, budget } = await claimsOf(input.grant);
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
    const day = countsDay ? await spentToday(claims.agent_id) : { tokens: 0, usd: 0 };
    const spent = { conversation: input.spent, day };
    const refusal = budgetRefusal(limits, spent, { tokens, usd, model });
    const promptUsd = price ? costOf({ input_tokens: estimate.prompt_tokens, output_tokens: 0, cached_tokens: 0 }, price) : null;
    const max_tokens =
      refusal === null ? answerTokenCap(limits, spent, { tokens: estimate.prompt_tokens, usd: promptUsd }, price) : undefined;
    return {
      refusal,
      estimated_tokens: tokens,
      tool_calls_per_turn: limits.tool_calls_per_turn,
      ...(max_tokens === undefined ? {} : { max_tokens }),
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
