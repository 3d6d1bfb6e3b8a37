/**
 * One interface for every model provider, whatever protocol it speaks: a chat turn with tools and
 * a normalised answer, the models it serves, and a health check that really goes to the provider.
 */
import type { ProviderKind } from '../domain/model-providers.js';
import type { ChatRequest, ChatResponse } from '../domain/llm.js';

export type { ChatMessage, ChatRequest, ChatResponse, FinishReason, TokenUsage, ToolCall, ToolSpec } from '../domain/llm.js';

export interface ModelInfo {
  id: string;
  /** Who publishes it, when the provider says. */
  owned_by?: string;
}

export interface ProviderHealth {
  status: 'up' | 'down';
  latency_ms: number;
  /** Why it is down: a message fit for a person, never a key. */
  error?: string;
  checked_at: string;
}

export interface ModelProvider {
  readonly name: string;
  readonly kind: ProviderKind;
  readonly defaultModel: string;
  chat(request: ChatRequest): Promise<ChatResponse>;
  listModels(signal?: AbortSignal): Promise<ModelInfo[]>;
  /** One round trip (the model list, no tokens spent), not retried: the state of the provider now. */
  health(signal?: AbortSignal): Promise<ProviderHealth>;
}
