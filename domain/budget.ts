/**
 * An agent's budget for conversations: tokens and money per conversation and per day (UTC), and
 * tool calls per turn. The configuration sets the defaults; an agent may carry its own limits,
 * which replace them one by one. Pure: the control worker decides with it before each model call.
 */
import { z } from 'zod';
import type { Config } from './config.js';
import type { TokenUsage } from './llm.js';

const tokens = z.number().int().min(1).max(1_000_000_000);
const usd = z.number().min(0).max(1_000_000);

export const AgentBudgetSchema = z
  .object({
    conversation_tokens: tokens.optional().describe('Tokens (prompt and answer) one conversation may spend.'),
    conversation_usd: usd.optional().describe('US dollars one conversation may spend.'),
    day_tokens: tokens.optional().describe("Tokens the agent's conversations may spend together in a day (UTC)."),
    day_usd: usd.optional().describe("US dollars the agent's conversations may spend together in a day (UTC)."),
    tool_calls_per_turn: z.number().int().min(1).max(1000).optional().describe('Tool calls the model may make in one turn.'),
  })
  .strict();
export type AgentBudget = z.infer<typeof AgentBudgetSchema>;

/** The limits in force: an unset one does not limit. */
export type BudgetLimits = AgentBudget & { tool_calls_per_turn: number };

export type BudgetSettings = Pick<
  Config,
  'budgetConversationTokens' | 'budgetConversationUsd' | 'budgetDayTokens' | 'budgetDayUsd' | 'budgetToolCallsPerTurn'
>;

/** Each limit and the setting of its default. */
export const BUDGET_SETTINGS = {
  conversation_tokens: 'budgetConversationTokens',
  conversation_usd: 'budgetConversationUsd',
  day_tokens: 'budgetDayTokens',
  day_usd: 'budgetDayUsd',
  tool_calls_per_turn: 'budgetToolCallsPerTurn',
} as const satisfies Record<keyof AgentBudget, keyof BudgetSettings>;

/** The limits the configuration sets for every agent. */
export function defaultBudget(settings: BudgetSettings): BudgetLimits {
  const limits: BudgetLimits = { tool_calls_per_turn: settings.budgetToolCallsPerTurn };
  for (const [field, setting] of Object.entries(BUDGET_SETTINGS) as Array<[keyof AgentBudget, keyof BudgetSettings]>)
    if (settings[setting] !== undefined) limits[field] = settings[setting];
  return limits;
}

/** The agent's own limits over the configured defaults. */
export const budgetLimits = (defaults: BudgetLimits, agent: AgentBudget | undefined): BudgetLimits => ({
  ...defaults,
  ...Object.fromEntries(Object.entries(agent ?? {}).filter(([, v]) => v !== undefined)),
});

/** What was spent: tokens (prompt and answer) and US dollars. */
export interface Spend {
  tokens: number;
  usd: number;
}

/** The tokens a budget counts: the whole prompt (cached or not) and the answer. */
export const spentTokens = (usage: TokenUsage): number => usage.input_tokens + usage.output_tokens;

/** The next call as estimated: its tokens, and its cost, or null when its model has no price. */
export interface CallEstimate {
  tokens: number;
  usd: number | null;
}

const dollars = (n: number): string => `$${n.toFixed(4)}`;

/** Why the call may not be made, fit for the person who sent the message; null when it fits. */
export function budgetRefusal(
  limits: BudgetLimits,
  spent: { conversation: Spend; day: Spend },
  call: CallEstimate & { model: string },
): string | null {
  const over = (scope: 'conversation' | 'day'): string | null => {
    const what = scope === 'conversation' ? 'this conversation' : "the agent's conversations today (UTC)";
    const tokenLimit = limits[`${scope}_tokens`];
    const usdLimit = limits[`${scope}_usd`];
    const s = spent[scope];
    if (tokenLimit !== undefined && s.tokens + call.tokens > tokenLimit)
      return `its token budget: ${what} spent ${s.tokens} of ${tokenLimit} tokens, and the next model call needs about ${call.tokens}`;
    if (usdLimit === undefined) return null;
    if (call.usd === null)
      return `its money budget: the model ${call.model} has no price (add it to WARDEN_MODEL_PRICES, or give the agent a token budget only)`;
    if (s.usd + call.usd > usdLimit)
      return `its money budget: ${what} spent ${dollars(s.usd)} of ${dollars(usdLimit)}, and the next model call would cost about ${dollars(call.usd)}`;
    return null;
  };
  const conversation = over('conversation');
  if (conversation)
    return `The model was not called: this would exceed ${conversation}. Start a new conversation, or ask an admin to raise the agent's budget.`;
  const day = over('day');
  return day
    ? `The model was not called: this would exceed ${day}. It starts afresh at midnight UTC, or an admin can raise the agent's budget.`
    : null;
}

const perMillion = z.number().min(0).max(10_000);

/** A model's price in US dollars per million tokens. */
export const ModelPriceSchema = z
  .object({
    input_per_million: perMillion,
    output_per_million: perMillion,
    cached_per_million: perMillion.optional().describe("The prompt tokens read from the provider's cache; the input price when unset."),
  })
  .strict();
export type ModelPrice = z.infer<typeof ModelPriceSchema>;

/** The start of the UTC day `at` falls in: the day budget counts from there. */
export const dayStart = (at: Date): string => `${at.toISOString().slice(0, 10)}T00:00:00.000Z`;
