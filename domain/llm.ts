/**
 * A conversation with a model, as Warden keeps it whatever the provider: messages, tools, and the
 * normalised answer. Pure types: the API, the provider clients (llm/) and, later, the conversation
 * workflow share them.
 */

export type ChatMessage =
  | { role: 'system'; content: string }
  | { role: 'user'; content: string }
  | { role: 'assistant'; content: string; tool_calls?: ToolCall[] }
  | { role: 'tool'; tool_call_id: string; content: string };

/** A tool the model may call: its parameters are a JSON Schema object (skills/index.ts toJsonSchema makes them). */
export interface ToolSpec {
  name: string;
  description: string;
  parameters: Record<string, unknown>;
}

/**
 * A call the model asked for. `arguments` is the parsed JSON object; when the model sent text that
 * is not a JSON object, `arguments` is `{}`, `raw_arguments` keeps the text and `parse_error` says
 * what is wrong, so the caller can tell the model instead of losing the answer.
 */
export interface ToolCall {
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  raw_arguments?: string;
  parse_error?: string;
}

export type FinishReason = 'stop' | 'tool_calls' | 'length' | 'content_filter' | 'other';

/** Tokens: `input_tokens` counts the whole prompt, `cached_tokens` the part of it read from the provider's cache. */
export interface TokenUsage {
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
}

export interface ChatRequest {
  /** The provider's `default_model` when not given. */
  model?: string;
  messages: ChatMessage[];
  tools?: ToolSpec[];
  max_tokens?: number;
  signal?: AbortSignal;
  /**
   * Called with the answer's text so far as a streamed answer arrives (providers configured with
   * `stream`); a retry or a fallback starts the text again from nothing.
   */
  onText?: (textSoFar: string) => void;
}

export interface ChatResponse {
  text: string;
  tool_calls: ToolCall[];
  usage: TokenUsage;
  finish_reason: FinishReason;
  /** The model that answered, as the provider names it. */
  model: string;
}

/** Parses tool-call arguments as a provider sends them (JSON text); never throws. */
export function parseToolArguments(raw: string): Pick<ToolCall, 'arguments' | 'raw_arguments' | 'parse_error'> {
  // Some servers send "" for a call without parameters.
  if (raw.trim() === '') return { arguments: {} };
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    return { arguments: {}, raw_arguments: raw, parse_error: `the arguments are not valid JSON: ${(err as Error).message}` };
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    return { arguments: {}, raw_arguments: raw, parse_error: 'the arguments are JSON but not an object' };
  }
  return { arguments: parsed as Record<string, unknown> };
}

/** A model call's heartbeat details while its answer streams in. */
export interface ModelCallProgress {
  /** The attempt whose answer this is: Temporal hands a retry the details of the attempt before. */
  attempt: number;
  text: string;
}
