/**
 * A provider that stays down is replaced by the next of its fallbacks, in order. The answer says
 * which provider gave it and why the ones before it did not, so the switch can be audited.
 */
import type { ChatRequest, ChatResponse } from '../domain/llm.js';
import { ProviderError } from './errors.js';
import type { ModelProvider } from './provider.js';

export interface FallbackResponse extends ChatResponse {
  /** The provider that answered. */
  provider: string;
  /** The providers tried before it, each with why it failed. */
  failed_over: Array<{ provider: string; kind: string; message: string }>;
}

export interface FallbackOptions {
  /** Why a fallback may not be called with its default model, or null when it may (the budget's price check). */
  refuse?: (provider: string, model: string) => string | null;
}

/**
 * Tries each provider in order. The first gets the request's model; a model name belongs to its
 * provider, so each fallback uses its own default model. A request the provider refused as invalid
 * (400) or that was cancelled is not sent elsewhere: it would fail there too. A fallback the
 * caller refuses is passed over, never sent the request.
 */
export function withFallback(providers: ModelProvider[], opts: FallbackOptions = {}) {
  if (providers.length === 0) throw new Error('withFallback needs at least one provider');
  return {
    async chat(request: ChatRequest): Promise<FallbackResponse> {
      const failed: FallbackResponse['failed_over'] = [];
      for (const [i, provider] of providers.entries()) {
        const last = i === providers.length - 1;
        const refusal = i > 0 ? opts.refuse?.(provider.name, provider.defaultModel) : null;
        if (refusal) {
          failed.push({ provider: provider.name, kind: 'refused', message: `provider ${provider.name} was not called: ${refusal}` });
          if (last) throw new ProviderError(provider.name, 'refused', failed.map((f) => f.message).join('; '));
          continue;
        }
        try {
          const response = await provider.chat(i === 0 ? request : { ...request, model: undefined });
          return { ...response, provider: provider.name, failed_over: failed };
        } catch (err) {
          if (!(err instanceof ProviderError) || err.kind === 'bad_request' || err.kind === 'aborted' || last) throw err;
          failed.push({ provider: provider.name, kind: err.kind, message: err.message });
        }
      }
      throw new Error('unreachable: the last provider returns or throws');
    },
  };
}
