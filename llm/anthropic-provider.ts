/**
 * The Anthropic Messages protocol: the system prompt is a top-level parameter, tool calls are
 * `tool_use` blocks in the assistant's content and their answers `tool_result` blocks in the next
 * user turn, and usage reports cache reads apart from the rest of the prompt.
 */
import Anthropic from '@anthropic-ai/sdk';
import type { ContentBlockParam, Message, MessageParam, ToolResultBlockParam } from '@anthropic-ai/sdk/resources/messages';
import { parseToolArguments, type ChatMessage, type ChatRequest, type ChatResponse, type FinishReason, type ToolCall } from '../domain/llm.js';
import type { ModelInfo, ModelProvider, ProviderHealth } from './provider.js';
import { DEFAULT_RETRY_POLICY, withRetry } from './retry.js';
import { HEALTH_TIMEOUT_MS, measureHealth } from './health.js';
import type { ProviderOptions } from './openai-provider.js';

/** The Messages API requires max_tokens; this is used when a request sets none. */
export const DEFAULT_MAX_TOKENS = 4096;

export function toAnthropicMessages(messages: ChatMessage[]): { system?: string; messages: MessageParam[] } {
  const system = messages.filter((m) => m.role === 'system').map((m) => m.content);
  const out: MessageParam[] = [];
  for (const m of messages) {
    if (m.role === 'system') continue;
    if (m.role === 'user') out.push({ role: 'user', content: m.content });
    else if (m.role === 'assistant') {
      const blocks: ContentBlockParam[] = [];
      if (m.content) blocks.push({ type: 'text', text: m.content });
      for (const tc of m.tool_calls ?? []) blocks.push({ type: 'tool_use', id: tc.id, name: tc.name, input: tc.arguments });
      out.push({ role: 'assistant', content: blocks.length ? blocks : m.content });
    } else {
      // Answers to one turn's tool calls go together, in one user turn.
      const result: ToolResultBlockParam = { type: 'tool_result', tool_use_id: m.tool_call_id, content: m.content };
      const last = out.at(-1);
      if (last?.role === 'user' && Array.isArray(last.content) && last.content.every((b) => b.type === 'tool_result')) last.content.push(result);
      else out.push({ role: 'user', content: [result] });
    }
  }
  return { ...(system.length ? { system: system.join('\n\n') } : {}), messages: out };
}

const FINISH: Record<string, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  tool_use: 'tool_calls',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  refusal: 'content_filter',
};

export function normaliseMessage(message: Message): ChatResponse {
  let text = '';
  const calls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') text += block.text;
    else if (block.type === 'tool_use') {
      const input = block.input;
      const args = input !== null && typeof input === 'object' && !Array.isArray(input)
        ? { arguments: input as Record<string, unknown> }
        : parseToolArguments(typeof input === 'string' ? input : JSON.stringify(input));
      calls.push({ id: block.id, name: block.name, ...args });
    }
  }
  const u = message.usage;
  const cacheRead = u.cache_read_input_tokens ?? 0;
  return {
    text,
    tool_calls: calls,
    // input_tokens here excludes the cache: the normalised count is the whole prompt, as OpenAI's.
    usage: { input_tokens: u.input_tokens + cacheRead + (u.cache_creation_input_tokens ?? 0), output_tokens: u.output_tokens, cached_tokens: cacheRead },
    finish_reason: FINISH[message.stop_reason ?? ''] ?? 'other',
    model: message.model,
  };
}

export class AnthropicProvider implements ModelProvider {
  readonly kind = 'anthropic' as const;
  readonly name: string;
  readonly defaultModel: string;

  constructor(private readonly opts: ProviderOptions) {
    this.name = opts.config.name;
    this.defaultModel = opts.config.default_model;
  }

  /** A client per call with the key read from the vault now; nothing is taken from the environment or local credential files. */
  private client(apiKey: string | undefined, timeoutMs = this.opts.timeoutMs): Anthropic {
    return new Anthropic({
      baseURL: this.opts.config.base_url,
      apiKey: apiKey ?? null,
      ...(apiKey ? {} : { authToken: null, defaultHeaders: { Authorization: null } }),
      maxRetries: 0,
      logLevel: 'off',
      ...(timeoutMs ? { timeout: timeoutMs } : {}),
    });
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const apiKey = this.opts.apiKey();
    const { system, messages } = toAnthropicMessages(request.messages);
    const params = {
      model: request.model ?? this.defaultModel,
      max_tokens: request.max_tokens ?? DEFAULT_MAX_TOKENS,
      messages,
      ...(system ? { system } : {}),
      ...(request.tools?.length
        ? { tools: request.tools.map((t) => ({ name: t.name, description: t.description, input_schema: t.parameters as Anthropic.Tool.InputSchema })) }
        : {}),
    };
    const ctx = { provider: this.name, policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, logger: this.opts.logger, signal: request.signal, apiKey };
    return withRetry(ctx, async () => normaliseMessage(await this.client(apiKey).messages.create(params, { signal: request.signal })));
  }

  async listModels(signal?: AbortSignal): Promise<ModelInfo[]> {
    const apiKey = this.opts.apiKey();
    return withRetry({ provider: this.name, policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, logger: this.opts.logger, signal, apiKey }, async () => {
      const models: ModelInfo[] = [];
      for await (const m of this.client(apiKey).models.list({ limit: 100 }, { signal })) models.push({ id: m.id });
      return models;
    });
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    return measureHealth(this.name, signal, async (apiKey) => void (await this.client(apiKey, HEALTH_TIMEOUT_MS).models.list({ limit: 1 }, { signal })), this.opts.apiKey);
  }
}
