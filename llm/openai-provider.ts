/**
 * The OpenAI chat-completions protocol, spoken by OpenAI and by every compatible server (Ollama,
 * vLLM, llama.cpp's server) at its base URL. Their answers differ in small ways the normalisation
 * absorbs: call ids of any shape (or none), `content` null or "" beside tool calls, `finish_reason`
 * "stop" although tools were called, and arguments that are not valid JSON.
 */
import OpenAI from 'openai';
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsBase,
  ChatCompletionMessageParam,
} from 'openai/resources/chat/completions';
import type { Logger } from 'pino';
import type { ProviderConfig } from '../domain/model-providers.js';
import {
  parseToolArguments,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type FinishReason,
  type ToolCall,
} from '../domain/llm.js';
import type { ModelInfo, ModelProvider, ProviderHealth } from './provider.js';
import { DEFAULT_RETRY_POLICY, withRetry, type RetryPolicy } from './retry.js';
import { HEALTH_TIMEOUT_MS, measureHealth } from './health.js';

export interface ProviderOptions {
  config: ProviderConfig;
  /** Reads the API key from the vault, at each call; undefined when the provider has none. */
  /** Read at each call: the vault's value may change, and a remote vault answers asynchronously. */
  apiKey: () => string | undefined | Promise<string | undefined>;
  logger: Logger;
  retry?: RetryPolicy;
  /** One attempt's limit. */
  timeoutMs?: number;
}

export function toOpenAIMessages(messages: ChatMessage[]): ChatCompletionMessageParam[] {
  return messages.map((m): ChatCompletionMessageParam => {
    if (m.role === 'tool') return { role: 'tool', tool_call_id: m.tool_call_id, content: m.content };
    if (m.role !== 'assistant' || !m.tool_calls?.length) return { role: m.role, content: m.content };
    return {
      role: 'assistant',
      content: m.content || null,
      tool_calls: m.tool_calls.map((tc) => ({
        id: tc.id,
        type: 'function' as const,
        function: { name: tc.name, arguments: tc.raw_arguments ?? JSON.stringify(tc.arguments) },
      })),
    };
  });
}

function finishReason(reason: string | null | undefined, toolCalls: number): FinishReason {
  // Some compatible servers say "stop" although the model called tools.
  if (toolCalls > 0 && (reason === 'stop' || reason === 'tool_calls' || reason === 'function_call' || !reason)) return 'tool_calls';
  if (reason === 'stop' || reason === 'length' || reason === 'content_filter') return reason;
  if (reason === 'tool_calls' || reason === 'function_call') return 'tool_calls';
  return 'other';
}

const toolCall = (id: string | undefined, index: number, name: string, raw: string): ToolCall => ({
  // A server that sends no id gets one: the tool's answer must name the call it answers.
  id: id || `call_${index}`,
  name,
  ...parseToolArguments(raw),
});

type Usage = ChatCompletion['usage'];
const usageOf = (u: Usage) => ({
  input_tokens: u?.prompt_tokens ?? 0,
  output_tokens: u?.completion_tokens ?? 0,
  cached_tokens: u?.prompt_tokens_details?.cached_tokens ?? 0,
});

export function normaliseCompletion(completion: ChatCompletion): ChatResponse {
  const choice = completion.choices[0];
  const calls = (choice?.message.tool_calls ?? [])
    .filter((tc) => tc.type === 'function')
    .map((tc, i) => toolCall(tc.id, i, tc.function.name, tc.function.arguments ?? ''));
  return {
    text: choice?.message.content ?? '',
    tool_calls: calls,
    usage: usageOf(completion.usage),
    finish_reason: finishReason(choice?.finish_reason, calls.length),
    model: completion.model,
  };
}

/** Assembles a streamed answer: text deltas, tool-call deltas by index, usage in the last chunk. */
async function assembleStream(chunks: AsyncIterable<ChatCompletionChunk>, onText?: (textSoFar: string) => void): Promise<ChatResponse> {
  let text = '';
  let model = '';
  let reason: string | null = null;
  let usage: Usage;
  const calls = new Map<number, { id?: string; name: string; args: string }>();
  for await (const chunk of chunks) {
    model ||= chunk.model;
    if (chunk.usage) usage = chunk.usage;
    const choice = chunk.choices[0];
    if (!choice) continue;
    if (choice.delta.content) {
      text += choice.delta.content;
      onText?.(text);
    }
    for (const d of choice.delta.tool_calls ?? []) {
      const call = calls.get(d.index) ?? { name: '', args: '' };
      call.id ||= d.id;
      call.name += d.function?.name ?? '';
      call.args += d.function?.arguments ?? '';
      calls.set(d.index, call);
    }
    reason = choice.finish_reason ?? reason;
  }
  const toolCalls = [...calls].sort(([a], [b]) => a - b).map(([i, c]) => toolCall(c.id, i, c.name, c.args));
  return { text, tool_calls: toolCalls, usage: usageOf(usage), finish_reason: finishReason(reason, toolCalls.length), model };
}

export class OpenAIProvider implements ModelProvider {
  readonly kind = 'openai' as const;
  readonly name: string;
  readonly defaultModel: string;

  constructor(private readonly opts: ProviderOptions) {
    this.name = opts.config.name;
    this.defaultModel = opts.config.default_model;
  }

  /** A client per call: the key is read from the vault each time, so a rotated key takes effect at once. */
  private client(apiKey: string | undefined, timeoutMs = this.opts.timeoutMs): OpenAI {
    return new OpenAI({
      baseURL: this.opts.config.base_url,
      // A server that wants no key gets no Authorization header at all.
      apiKey: apiKey ?? 'none',
      ...(apiKey ? {} : { defaultHeaders: { Authorization: null } }),
      // Nothing from the environment (OPENAI_ORG_ID, OPENAI_PROJECT_ID) rides along.
      organization: null,
      project: null,
      maxRetries: 0,
      logLevel: 'off',
      ...(timeoutMs ? { timeout: timeoutMs } : {}),
    });
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const apiKey = await this.opts.apiKey();
    const params: ChatCompletionCreateParamsBase = {
      model: request.model ?? this.defaultModel,
      messages: toOpenAIMessages(request.messages),
      ...(request.tools?.length
        ? {
            tools: request.tools.map((t) => ({
              type: 'function' as const,
              function: { name: t.name, description: t.description, parameters: t.parameters },
            })),
          }
        : {}),
      ...(request.max_tokens ? { max_tokens: request.max_tokens } : {}),
    };
    const ctx = {
      provider: this.name,
      policy: this.opts.retry ?? DEFAULT_RETRY_POLICY,
      logger: this.opts.logger,
      signal: request.signal,
      apiKey,
    };
    return withRetry(ctx, async () => {
      const client = this.client(apiKey);
      if (!this.opts.config.stream)
        return normaliseCompletion(await client.chat.completions.create({ ...params, stream: false }, { signal: request.signal }));
      const stream = await client.chat.completions.create(
        { ...params, stream: true, stream_options: { include_usage: true } },
        { signal: request.signal },
      );
      return assembleStream(stream, request.onText);
    });
  }

  async listModels(signal?: AbortSignal): Promise<ModelInfo[]> {
    const apiKey = await this.opts.apiKey();
    return withRetry(
      { provider: this.name, policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, logger: this.opts.logger, signal, apiKey },
      async () => {
        const page = await this.client(apiKey).models.list({ signal });
        return page.data.map((m) => ({ id: m.id, ...(m.owned_by ? { owned_by: m.owned_by } : {}) }));
      },
    );
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    return measureHealth(
      this.name,
      signal,
      async (apiKey) => void (await this.client(apiKey, HEALTH_TIMEOUT_MS).models.list({ signal })),
      this.opts.apiKey,
    );
  }
}
