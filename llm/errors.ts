/**
 * A provider's failures, classified once for both protocols: rate limits, server errors and lost
 * connections are worth retrying; a bad request, a refused key or an unknown model are not. The
 * message says what to do and never carries the API key.
 */
import { APIConnectionError as OpenAIConnectionError, APIError as OpenAIAPIError, APIUserAbortError as OpenAIAbort } from 'openai';
import {
  APIConnectionError as AnthropicConnectionError,
  APIError as AnthropicAPIError,
  APIUserAbortError as AnthropicAbort,
} from '@anthropic-ai/sdk';

export type ProviderErrorKind =
  | 'rate_limited'
  | 'unavailable'
  | 'connection'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'bad_request'
  | 'aborted'
  | 'misconfigured'
  /** Not called: the caller refused it (a fallback whose model a money budget cannot price). */
  | 'refused'
  | 'failed';

const RETRYABLE: ReadonlySet<ProviderErrorKind> = new Set(['rate_limited', 'unavailable', 'connection']);

export class ProviderError extends Error {
  readonly retryable: boolean;
  constructor(
    readonly provider: string,
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status?: number,
    /** What the provider asked us to wait (Retry-After), in ms. */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'ProviderError';
    this.retryable = RETRYABLE.has(kind);
  }
}

/** Retry-After as the provider sent it: `retry-after-ms`, or `retry-after` in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  const ms = Number(headers?.get('retry-after-ms') ?? NaN);
  if (Number.isFinite(ms) && ms >= 0) return ms;
  const value = headers?.get('retry-after')?.trim();
  if (!value) return undefined;
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** The text with the key cut out, should a provider echo it (some echo part of a refused key). */
export function withoutKey(text: string, apiKey: string | undefined): string {
  let out = text;
  if (apiKey) {
    out = out.split(apiKey).join('[REDACTED]');
    // A masked echo such as "sk-abc1***wxyz" still gives away the key's ends.
    if (apiKey.length >= 12) out = out.split(apiKey.slice(0, 8)).join('[REDACTED]').split(apiKey.slice(-4)).join('[REDACTED]');
  }
  return out.replace(/\b(sk|key)-[A-Za-z0-9_*.-]{6,}/g, '[REDACTED]');
}

const KIND_BY_STATUS: Record<number, ProviderErrorKind> = {
  400: 'bad_request',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  408: 'unavailable',
  409: 'unavailable',
  422: 'bad_request',
  429: 'rate_limited',
};

const ADVICE: Record<ProviderErrorKind, string> = {
  rate_limited: 'rate limited; retried with backoff',
  unavailable: 'the provider failed; retried with backoff',
  connection: 'cannot reach the provider; check its base_url and that it is running',
  unauthorized: 'the API key was refused; check the vault secret named by api_key_secret',
  forbidden: 'the API key may not do this; check its permissions at the provider',
  not_found: 'not found; check the model name and the base_url (OpenAI-compatible servers usually end in /v1)',
  bad_request: 'the provider refused the request',
  aborted: 'the request was cancelled',
  misconfigured: 'the provider is misconfigured',
  refused: 'not called',
  failed: 'the call failed',
};

/** Any failure of an SDK call as a ProviderError; the message is scrubbed of the key. */
export function classify(provider: string, err: unknown, apiKey: string | undefined): ProviderError {
  if (err instanceof ProviderError) return err;
  const detail = (e: Error) => withoutKey(e.message, apiKey);
  if (err instanceof OpenAIAbort || err instanceof AnthropicAbort || (err as Error)?.name === 'AbortError') {
    return new ProviderError(provider, 'aborted', `provider ${provider}: ${ADVICE.aborted}`);
  }
  if (err instanceof OpenAIConnectionError || err instanceof AnthropicConnectionError) {
    return new ProviderError(provider, 'connection', `provider ${provider}: ${ADVICE.connection} (${detail(err)})`);
  }
  if ((err instanceof OpenAIAPIError || err instanceof AnthropicAPIError) && err.status !== undefined) {
    const status = err.status;
    const kind = KIND_BY_STATUS[status] ?? (status >= 500 ? 'unavailable' : 'bad_request');
    // A refused key's own text is left out: some providers quote part of the key in it.
    const said = kind === 'unauthorized' || kind === 'forbidden' ? '' : `: ${detail(err)}`;
    return new ProviderError(
      provider,
      kind,
      `provider ${provider} answered ${status}, ${ADVICE[kind]}${said}`,
      status,
      retryAfterMs(err.headers),
    );
  }
  const message = err instanceof Error ? detail(err) : String(err);
  return new ProviderError(provider, 'failed', `provider ${provider} failed: ${message}`);
}
