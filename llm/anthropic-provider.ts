/**
 * The Anthropic Messages protocol: the system prompt is a top-level parameter, tool calls are
 * `tool_use` blocks in the assistant's content and their answers `tool_result` blocks in the next
 * user turn, and usage reports cache reads apart from the rest of the prompt.
 */
import Anthropic from '@anthropic-ai/sdk';
import type {
  ContentBlockParam,
  Message,
  MessageParam,
  RawMessageStreamEvent,
  ToolResultBlockParam,
} from '@anthropic-ai/sdk/resources/messages';
import {
  parseToolArguments,
  type ChatMessage,
  type ChatRequest,
  type ChatResponse,
  type FinishReason,
  type ToolCall,
} from '../domain/llm.js';
import type { ModelInfo, ModelProvider, ProviderHealth } from './provider.js';
import { DEFAULT_RETRY_POLICY, withRetry } from './retry.js';
import { HEALTH_TIMEOUT_MS, measureHealth } from './health.js';
import { ProviderError } from './errors.js';
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
      if (last?.role === 'user' && Array.isArray(last.content) && last.content.every((b) => b.type === 'tool_result'))
        last.content.push(result);
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

type Usage = Pick<Message['usage'], 'input_tokens' | 'output_tokens' | 'cache_read_input_tokens' | 'cache_creation_input_tokens'>;

function normalised(text: string, calls: ToolCall[], u: Usage, stopReason: string | null, model: string): ChatResponse {
  const cacheRead = u.cache_read_input_tokens ?? 0;
  return {
    text,
    tool_calls: calls,
    // Anthropic's input_tokens leaves the cache out: the normalised count is the whole prompt, as OpenAI's.
    usage: {
      input_tokens: u.input_tokens + cacheRead + (u.cache_creation_input_tokens ?? 0),
      output_tokens: u.output_tokens,
      cached_tokens: cacheRead,
    },
    finish_reason: FINISH[stopReason ?? ''] ?? 'other',
    model,
  };
}

export function normaliseMessage(message: Message): ChatResponse {
  let text = '';
  const calls: ToolCall[] = [];
  for (const block of message.content) {
    if (block.type === 'text') text += block.text;
    else if (block.type === 'tool_use') {
      const input = block.input;
      const args =
        input !== null && typeof input === 'object' && !Array.isArray(input)
          ? { arguments: input as Record<string, unknown> }
          : parseToolArguments(typeof input === 'string' ? input : JSON.stringify(input));
      calls.push({ id: block.id, name: block.name, ...args });
    }
  }
  return normalised(text, calls, message.usage, message.stop_reason, message.model);
}

/** Assembles a streamed answer from its events: text deltas, tool input as JSON text deltas, usage at the start and the end. */
async function assembleStream(events: AsyncIterable<RawMessageStreamEvent>, onText?: (textSoFar: string) => void): Promise<ChatResponse> {
  let text = '';
  let model = '';
  let stopReason: string | null = null;
  const usage: Usage = { input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 };
  const tools = new Map<number, { id: string; name: string; json: string }>();
  for await (const event of events) {
    if (event.type === 'message_start') {
      model = event.message.model;
      Object.assign(usage, event.message.usage);
    } else if (event.type === 'content_block_start' && event.content_block.type === 'tool_use') {
      tools.set(event.index, { id: event.content_block.id, name: event.content_block.name, json: '' });
    } else if (event.type === 'content_block_delta') {
      if (event.delta.type === 'text_delta') {
        text += event.delta.text;
        onText?.(text);
      } else if (event.delta.type === 'input_json_delta') tools.get(event.index)!.json += event.delta.partial_json;
    } else if (event.type === 'message_delta') {
      stopReason = event.delta.stop_reason ?? stopReason;
      // The final counts; a field the delta leaves null keeps the start's value.
      for (const [k, v] of Object.entries(event.usage)) if (typeof v === 'number' && k in usage) usage[k as keyof Usage] = v;
    }
  }
  const calls = [...tools].sort(([a], [b]) => a - b).map(([, t]) => ({ id: t.id, name: t.name, ...parseToolArguments(t.json) }));
  return normalised(text, calls, usage, stopReason, model);
}

export class AnthropicProvider implements ModelProvider {
  readonly kind = 'anthropic' as const;
  readonly name: string;
  readonly defaultModel: string;

  constructor(private readonly opts: ProviderOptions) {
    this.name = opts.config.name;
    this.defaultModel = opts.config.default_model;
  }

  /**
   * A client per call with the key read from the vault now. Given a key, the library reads no
   * credentials of its own (environment variables, profile files); without one it would, so there
   * is no call without one (the configuration requires api_key_secret for this kind).
   */
  private client(apiKey: string | undefined, timeoutMs = this.opts.timeoutMs): Anthropic {
    if (!apiKey)
      throw new ProviderError(this.name, 'misconfigured', `provider ${this.name}: an anthropic provider needs an API key (api_key_secret)`);
    return new Anthropic({
      baseURL: this.opts.config.base_url,
      apiKey,
      maxRetries: 0,
      logLevel: 'off',
      ...(timeoutMs ? { timeout: timeoutMs } : {}),
    });
  }

  async chat(request: ChatRequest): Promise<ChatResponse> {
    const apiKey = await this.opts.apiKey();
    const { system, messages } = toAnthropicMessages(request.messages);
    const params = {
      model: request.model ?? this.defaultModel,
      max_tokens: request.max_tokens ?? DEFAULT_MAX_TOKENS,
      messages,
      ...(system ? { system } : {}),
      ...(request.tools?.length
        ? {
            tools: request.tools.map((t) => ({
              name: t.name,
              description: t.description,
              input_schema: t.parameters as Anthropic.Tool.InputSchema,
            })),
          }
        : {}),
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
      if (!this.opts.config.stream) return normaliseMessage(await client.messages.create(params, { signal: request.signal }));
      return assembleStream(await client.messages.create({ ...params, stream: true }, { signal: request.signal }), request.onText);
    });
  }

  async listModels(signal?: AbortSignal): Promise<ModelInfo[]> {
    const apiKey = await this.opts.apiKey();
    return withRetry(
      { provider: this.name, policy: this.opts.retry ?? DEFAULT_RETRY_POLICY, logger: this.opts.logger, signal, apiKey },
      async () => {
        const models: ModelInfo[] = [];
        for await (const m of this.client(apiKey).models.list({ limit: 100 }, { signal })) models.push({ id: m.id });
        return models;
      },
    );
  }

  async health(signal?: AbortSignal): Promise<ProviderHealth> {
    return measureHealth(
      this.name,
      signal,
      async (apiKey) => void (await this.client(apiKey, HEALTH_TIMEOUT_MS).models.list({ limit: 1 }, { signal })),
      this.opts.apiKey,
    );
  }
}
