/**
 * How many tokens a model call will cost, counted before it is made: the prompt with tiktoken's
 * o200k_base ranks (bundled with js-tiktoken: nothing is downloaded), and a reserve for the answer,
 * whose length no one knows beforehand. Other models' tokenizers differ by some percent: the
 * estimate only decides whether to call; what the provider reports is what is counted. A long,
 * dense text is bounded by its length in bytes instead of counted (tokensAtMost).
 */
import { createHash } from 'node:crypto';
import { Tiktoken } from 'js-tiktoken/lite';
import o200k_base from 'js-tiktoken/ranks/o200k_base';
import type { ChatMessage, ToolSpec } from '../domain/llm.js';

/** Tokens set aside for the answer of each call. */
export const ANSWER_RESERVE_TOKENS = 512;

/** What each message's role and separators add, as OpenAI's chat format counts them. */
const PER_MESSAGE_TOKENS = 4;

let encoder: Tiktoken | undefined;

export function countTokens(text: string): number {
  encoder ??= new Tiktoken(o200k_base);
  return encoder.encode(text).length;
}

/**
 * Counts of the texts seen lately, by their hash: a conversation sends its whole transcript at
 * every step, and counting it afresh would take longer than the call's other overhead (about
 * 300 ms for ten 16 000-character tool results); remembered, each step counts only what is new.
 */
const remembered = new Map<string, number>();
const REMEMBERED_TEXTS = 10_000;
/** Shorter texts are counted faster than they are hashed. */
const REMEMBER_FROM_CHARS = 256;

/** Texts this long are probed first: dense text (random data, base64, keys) is slow to count. */
const PROBE_FROM_CHARS = 4096;
const PROBE_CHARS = 1024;
/** Prose and code take 0.2 to 0.35 tokens per UTF-8 byte; random base64 about 0.7. */
const DENSE_TOKENS_PER_BYTE = 0.5;

/**
 * The text's tokens, or for a long text whose start is dense, its UTF-8 length: every token stands
 * for at least one byte, so that is never less than the count (the check errs toward refusing),
 * and for dense text it is within about 1.5 times of it, at no cost. Counting 16 KB of random
 * base64 takes about 90 ms; the same length of prose, about 5.
 */
export function tokensAtMost(text: string): number {
  if (text.length >= PROBE_FROM_CHARS) {
    const probe = text.slice(0, PROBE_CHARS);
    if (countTokens(probe) > DENSE_TOKENS_PER_BYTE * Buffer.byteLength(probe, 'utf8')) return Buffer.byteLength(text, 'utf8');
  }
  return countTokens(text);
}

function countOnce(text: string): number {
  if (text.length < REMEMBER_FROM_CHARS) return countTokens(text);
  const key = createHash('sha256').update(text).digest('base64');
  let count = remembered.get(key);
  if (count === undefined) {
    count = tokensAtMost(text);
    if (remembered.size >= REMEMBERED_TEXTS) remembered.delete(remembered.keys().next().value!);
    remembered.set(key, count);
  }
  return count;
}

export interface TokenEstimate {
  prompt_tokens: number;
  answer_tokens: number;
}

/** The prompt as it will be sent (messages, tool calls and the tools' schemas), and the answer's reserve. */
export function estimateCall(messages: ChatMessage[], tools: ToolSpec[]): TokenEstimate {
  let prompt = 0;
  for (const m of messages) {
    prompt += PER_MESSAGE_TOKENS + countOnce(m.content);
    if (m.role === 'assistant' && m.tool_calls?.length) prompt += countOnce(JSON.stringify(m.tool_calls));
  }
  if (tools.length) prompt += countOnce(JSON.stringify(tools));
  return { prompt_tokens: prompt, answer_tokens: ANSWER_RESERVE_TOKENS };
}
