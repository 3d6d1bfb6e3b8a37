/**
 * Budgets before a model call: the repository's price table and the configuration's overrides,
 * what a call costs, the token estimate (tiktoken's bundled ranks), and the decision to refuse a
 * call that would go over a limit, unpriced models included.
 */
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { budgetLimits, budgetRefusal, dayStart, type BudgetLimits } from '../../domain/budget.js';
import { ConfigSchema } from '../../domain/config.js';
import { SYSTEM_PROMPT } from '../../domain/conversation.js';
import { costOf, MODEL_PRICES, priceOf } from '../../llm/pricing.js';
import { ANSWER_RESERVE_TOKENS, countTokens, estimateCall, tokensAtMost } from '../../llm/token-estimate.js';
import { toolsOf } from '../../activities/model.js';

describe('the price table', () => {
  it('says where and when each price was read', () => {
    for (const [model, p] of Object.entries(MODEL_PRICES)) {
      expect(p.source, model).toMatch(/^(https:\/\/|runs locally)/);
      expect(p.as_of, model).toMatch(/^\d{4}-\d{2}-\d{2}$/);
      expect(p.input_per_million, model).toBeGreaterThanOrEqual(p.cached_per_million ?? 0);
    }
  });

  it('prices dated snapshots as their model, and the longest matching name wins', () => {
    expect(priceOf('openai', 'gpt-4o-mini-2024-07-18')).toMatchObject({ input_per_million: 0.15, output_per_million: 0.6 });
    expect(priceOf('openai', 'gpt-4o-2024-08-06')).toMatchObject({ input_per_million: 2.5 });
    expect(priceOf('anthropic', 'claude-sonnet-4-20250514')).toMatchObject({ input_per_million: 3, output_per_million: 15 });
    expect(priceOf('anthropic', 'claude-3-5-haiku-latest')).toMatchObject({ input_per_million: 0.8 });
  });

  it('knows no price for a model it does not list, nor for a variant that is not a snapshot', () => {
    expect(priceOf('default', 'fake-model')).toBeNull();
    expect(priceOf('openai', 'gpt-4o-audio-preview')).toBeNull();
  });

  it('costs nothing for the embedded local model', () => {
    expect(costOf({ input_tokens: 10_000, output_tokens: 5_000, cached_tokens: 0 }, priceOf('local', 'SmolLM2-135M-Instruct')!)).toBe(0);
  });

  it('takes the configuration first: provider and model, then every model of a provider, then the model', () => {
    const overrides = {
      'ollama/*': { input_per_million: 0, output_per_million: 0 },
      'proxy/gpt-4o': { input_per_million: 3, output_per_million: 12 },
      'fake-model': { input_per_million: 1, output_per_million: 2 },
    };
    expect(priceOf('ollama', 'llama3.2:3b', overrides)).toEqual({ input_per_million: 0, output_per_million: 0 });
    expect(priceOf('proxy', 'gpt-4o', overrides)).toEqual({ input_per_million: 3, output_per_million: 12 });
    expect(priceOf('openai', 'gpt-4o', overrides)).toMatchObject({ input_per_million: 2.5 });
    expect(priceOf('default', 'fake-model', overrides)).toEqual({ input_per_million: 1, output_per_million: 2 });
  });

  it('reads prices from WARDEN_MODEL_PRICES, and refuses a price that is not one', () => {
    const config = ConfigSchema.parse({ modelPrices: '{"fake-model": {"input_per_million": 1, "output_per_million": 2}}' });
    expect(config.modelPrices).toEqual({ 'fake-model': { input_per_million: 1, output_per_million: 2 } });
    expect(ConfigSchema.safeParse({ modelPrices: '{"m": {"input_per_million": -1, "output_per_million": 2}}' }).success).toBe(false);
    expect(ConfigSchema.safeParse({ modelPrices: 'not json' }).success).toBe(false);
  });
});

describe('what a call costs', () => {
  it('prices the cached part of the prompt apart from the rest, and the answer at the output price', () => {
    const price = { input_per_million: 2, cached_per_million: 0.5, output_per_million: 8 };
    // 800 uncached at $2/M, 200 cached at $0.50/M, 100 out at $8/M
    expect(costOf({ input_tokens: 1000, cached_tokens: 200, output_tokens: 100 }, price)).toBeCloseTo(0.0016 + 0.0001 + 0.0008, 10);
  });

  it('prices cached tokens as input when the model has no cached price', () => {
    expect(
      costOf({ input_tokens: 1_000_000, cached_tokens: 1_000_000, output_tokens: 0 }, { input_per_million: 3, output_per_million: 15 }),
    ).toBe(3);
  });
});

describe('the estimate', () => {
  it('counts with the bundled o200k ranks', () => {
    expect(countTokens('hello world')).toBe(2);
    expect(countTokens('')).toBe(0);
  });

  it('counts every message, the tool calls and the tools, and sets a reserve aside for the answer', () => {
    const tools = toolsOf('filesystem');
    const base = estimateCall(
      [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: 'list the files' },
      ],
      [],
    );
    const withTools = estimateCall(
      [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: 'list the files' },
      ],
      tools,
    );
    expect(base.prompt_tokens).toBeGreaterThan(countTokens(SYSTEM_PROMPT));
    expect(withTools.prompt_tokens - base.prompt_tokens).toBe(countTokens(JSON.stringify(tools)));
    expect(withTools.answer_tokens).toBe(ANSWER_RESERVE_TOKENS);
    const call = { id: 'c1', name: 'filesystem_read', arguments: { path: 'a-rather-long-file-name.txt' } };
    const afterCall = estimateCall(
      [
        { role: 'user', content: 'list the files' },
        { role: 'assistant', content: '', tool_calls: [call] },
        { role: 'tool', tool_call_id: 'c1', content: 'x'.repeat(400) },
      ],
      [],
    );
    expect(afterCall.prompt_tokens).toBeGreaterThan(countTokens(JSON.stringify([call])) + countTokens('x'.repeat(400)));
  });

  it('bounds a long dense text by its bytes, never below its count, and counts prose exactly', () => {
    const dense = randomBytes(12_288).toString('base64');
    expect(tokensAtMost(dense)).toBe(Buffer.byteLength(dense));
    expect(tokensAtMost(dense)).toBeGreaterThanOrEqual(countTokens(dense));
    expect(tokensAtMost(dense)).toBeLessThan(2 * countTokens(dense));
    // Dense after a prose start is counted: still exact, only slower.
    const mixed = `${'Plain words first. '.repeat(60)}${dense}`;
    expect(tokensAtMost(mixed)).toBe(countTokens(mixed));
    const prose = 'The quarterly report lists revenue by region and product line. '.repeat(200);
    expect(tokensAtMost(prose)).toBe(countTokens(prose));
    const { prompt_tokens } = estimateCall([{ role: 'user', content: dense }], []);
    expect(prompt_tokens).toBeGreaterThanOrEqual(countTokens(dense));
  });

  it('grows with a long transcript about as the text does', () => {
    const text = 'The quarterly report lists revenue by region and product line. '.repeat(200);
    const { prompt_tokens } = estimateCall([{ role: 'user', content: text }], []);
    expect(prompt_tokens).toBeGreaterThan(text.length / 8);
    expect(prompt_tokens).toBeLessThan(text.length / 2);
  });
});

describe('the decision before a call', () => {
  const none = { tokens: 0, usd: 0 };
  const limits = (l: Partial<BudgetLimits>): BudgetLimits => ({ tool_calls_per_turn: 20, ...l });

  it("lets the agent's own limits replace the defaults one by one", () => {
    expect(budgetLimits(limits({ day_usd: 5, conversation_tokens: 1000 }), { conversation_tokens: 50 })).toEqual({
      tool_calls_per_turn: 20,
      day_usd: 5,
      conversation_tokens: 50,
    });
  });

  it('lets a call through that fits, and refuses one that would go over, saying which limit', () => {
    const l = limits({ conversation_tokens: 1000, day_tokens: 5000 });
    expect(budgetRefusal(l, { conversation: { tokens: 400, usd: 0 }, day: none }, { tokens: 600, usd: null, model: 'm' })).toBeNull();
    expect(budgetRefusal(l, { conversation: { tokens: 401, usd: 0 }, day: none }, { tokens: 600, usd: null, model: 'm' })).toMatch(
      /not called.*token budget: this conversation spent 401 of 1000 tokens.*about 600.*new conversation/,
    );
    expect(budgetRefusal(l, { conversation: none, day: { tokens: 4500, usd: 0 } }, { tokens: 600, usd: null, model: 'm' })).toMatch(
      /today \(UTC\) spent 4500 of 5000 tokens.*midnight UTC/,
    );
  });

  it('refuses a money budget for a model no one priced (fail closed), and not a token-only budget', () => {
    expect(
      budgetRefusal(limits({ day_usd: 10 }), { conversation: none, day: none }, { tokens: 10, usd: null, model: 'fake-model' }),
    ).toMatch(/fake-model has no price.*WARDEN_MODEL_PRICES/);
    expect(
      budgetRefusal(limits({ day_tokens: 100 }), { conversation: none, day: none }, { tokens: 10, usd: null, model: 'fake-model' }),
    ).toBeNull();
  });

  it('refuses a call whose cost would go over the money left', () => {
    const l = limits({ conversation_usd: 0.01 });
    expect(budgetRefusal(l, { conversation: { tokens: 0, usd: 0.009 }, day: none }, { tokens: 10, usd: 0.002, model: 'm' })).toMatch(
      /money budget: this conversation spent \$0\.0090 of \$0\.0100.*\$0\.0020/,
    );
    expect(budgetRefusal(l, { conversation: { tokens: 0, usd: 0.007 }, day: none }, { tokens: 10, usd: 0.002, model: 'm' })).toBeNull();
  });

  it('counts the day from midnight UTC', () => {
    expect(dayStart(new Date('2026-12-07T23:59:59.999+00:00'))).toBe('2026-12-07T00:00:00.000Z');
    expect(dayStart(new Date('2026-12-08T00:30:00+02:00'))).toBe('2026-12-07T00:00:00.000Z');
  });
});
