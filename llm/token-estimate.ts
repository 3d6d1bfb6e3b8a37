/**
 * How many tokens a model call will cost, counted before it is made: the prompt with tiktoken's
 * o200k_base ranks (bundled with js-tiktoken: nothing is downloaded), and a reserve for the answer,
 * whose length no one knows beforehand. Other models' tokenizers differ by some percent: the
 * estimate only decides whether to call; what the provider reports is what is counted.
 */
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

export interface TokenEstimate {
  prompt_tokens: number;
  answer_tokens: number;
}

/** The prompt as it will be sent (messages, tool calls and the tools' schemas), and the answer's reserve. */
export function estimateCall(messages: ChatMessage[], tools: ToolSpec[]): TokenEstimate {
  let prompt = 0;
  for (const m of messages) {
    prompt += PER_MESSAGE_TOKENS + countTokens(m.content);
    if (m.role === 'assistant' && m.tool_calls?.length) prompt += countTokens(JSON.stringify(m.tool_calls));
  }
  if (tools.length) prompt += countTokens(JSON.stringify(tools));
  return { prompt_tokens: prompt, answer_tokens: ANSWER_RESERVE_TOKENS };
}
