/**
 * What a model's tokens cost: a table kept in the repository, per model in US dollars per million
 * tokens (the prompt, the part of it read from the provider's cache, the answer), each with where
 * the price was read and when. Prices change: the configuration (WARDEN_MODEL_PRICES) overrides
 * any of them and prices what the table does not know; a model nobody priced has no cost, and a
 * money budget refuses to call it (fail closed).
 */
import type { ModelPrice } from '../domain/budget.js';
import type { TokenUsage } from '../domain/llm.js';

interface PricedModel extends ModelPrice {
  source: string;
  as_of: string;
}

const OPENAI = 'https://openai.com/api/pricing/';
const ANTHROPIC = 'https://docs.anthropic.com/en/docs/about-claude/pricing';

/** Keyed by the model's name as its provider gives it; dated snapshots (`-2024-08-06`, `-20250514`) and `-latest` aliases share their model's price. */
export const MODEL_PRICES: Readonly<Record<string, PricedModel>> = {
  'gpt-5': { input_per_million: 1.25, cached_per_million: 0.125, output_per_million: 10, source: OPENAI, as_of: '2025-11-01' },
  'gpt-5-mini': { input_per_million: 0.25, cached_per_million: 0.025, output_per_million: 2, source: OPENAI, as_of: '2025-11-01' },
  'gpt-5-nano': { input_per_million: 0.05, cached_per_million: 0.005, output_per_million: 0.4, source: OPENAI, as_of: '2025-11-01' },
  'gpt-4.1': { input_per_million: 2, cached_per_million: 0.5, output_per_million: 8, source: OPENAI, as_of: '2025-11-01' },
  'gpt-4.1-mini': { input_per_million: 0.4, cached_per_million: 0.1, output_per_million: 1.6, source: OPENAI, as_of: '2025-11-01' },
  'gpt-4.1-nano': { input_per_million: 0.1, cached_per_million: 0.025, output_per_million: 0.4, source: OPENAI, as_of: '2025-11-01' },
  'gpt-4o': { input_per_million: 2.5, cached_per_million: 1.25, output_per_million: 10, source: OPENAI, as_of: '2025-11-01' },
  'gpt-4o-mini': { input_per_million: 0.15, cached_per_million: 0.075, output_per_million: 0.6, source: OPENAI, as_of: '2025-11-01' },
  o3: { input_per_million: 2, cached_per_million: 0.5, output_per_million: 8, source: OPENAI, as_of: '2025-11-01' },
  'o4-mini': { input_per_million: 1.1, cached_per_million: 0.275, output_per_million: 4.4, source: OPENAI, as_of: '2025-11-01' },
  'claude-opus-4-5': { input_per_million: 5, cached_per_million: 0.5, output_per_million: 25, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-opus-4-1': { input_per_million: 15, cached_per_million: 1.5, output_per_million: 75, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-opus-4': { input_per_million: 15, cached_per_million: 1.5, output_per_million: 75, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-sonnet-4-5': { input_per_million: 3, cached_per_million: 0.3, output_per_million: 15, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-sonnet-4': { input_per_million: 3, cached_per_million: 0.3, output_per_million: 15, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-3-7-sonnet': { input_per_million: 3, cached_per_million: 0.3, output_per_million: 15, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-haiku-4-5': { input_per_million: 1, cached_per_million: 0.1, output_per_million: 5, source: ANTHROPIC, as_of: '2025-11-24' },
  'claude-3-5-haiku': { input_per_million: 0.8, cached_per_million: 0.08, output_per_million: 4, source: ANTHROPIC, as_of: '2025-11-24' },
  // The embedded default model runs on this machine: its tokens cost nothing.
  'smollm2-135m-instruct': {
    input_per_million: 0,
    output_per_million: 0,
    source: 'runs locally (the embedded model)',
    as_of: '2026-12-01',
  },
};

/** A dated snapshot or alias of a model: `-2024-08-06`, `-20250514`, `-latest`, `-0` (claude-sonnet-4-0). */
const SNAPSHOT = /^-(\d{4}-\d{2}-\d{2}|\d{8}|latest|0)$/;

/** Prices set in the configuration: keyed by `<provider>/<model>`, `<provider>/*` (every model of a provider, e.g. a local Ollama at 0) or `<model>`. */
export type PriceOverrides = Readonly<Record<string, ModelPrice>>;

/** The price of a model as a provider serves it, or null when no one priced it. The configuration wins over the table. */
export function priceOf(provider: string, model: string, overrides: PriceOverrides = {}): ModelPrice | null {
  const configured = overrides[`${provider}/${model}`] ?? overrides[`${provider}/*`] ?? overrides[model];
  if (configured) return configured;
  const name = model.toLowerCase();
  // The longest name that is the model or a snapshot of it: gpt-4o-mini-2024-07-18 is gpt-4o-mini, not gpt-4o.
  const key = Object.keys(MODEL_PRICES)
    .filter((k) => name === k || (name.startsWith(`${k}-`) && SNAPSHOT.test(name.slice(k.length))))
    .sort((a, b) => b.length - a.length)[0];
  return key ? MODEL_PRICES[key]! : null;
}

/** In US dollars: the cached part of the prompt at its own price, the rest of it at the input price. */
export function costOf(usage: TokenUsage, price: ModelPrice): number {
  const cached = Math.min(usage.cached_tokens, usage.input_tokens);
  return (
    ((usage.input_tokens - cached) * price.input_per_million +
      cached * (price.cached_per_million ?? price.input_per_million) +
      usage.output_tokens * price.output_per_million) /
    1_000_000
  );
}
