/**
 * Our retry policy for provider calls (the SDKs' own retries are off, so this is the only one):
 * a bounded number of attempts, exponential backoff with jitter, and a provider's Retry-After
 * honoured up to a cap.
 */
import type { Logger } from 'pino';
import { classify, ProviderError } from './errors.js';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The first backoff; doubled on each retry. */
  baseDelayMs: number;
  maxDelayMs: number;
  /** The longest Retry-After honoured: a provider asking for more is waited on this long, then tried again. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = { attempts: 4, baseDelayMs: 500, maxDelayMs: 8_000, maxRetryAfterMs: 30_000 };

/** How long to wait before retry number `retry` (1 for the first) after this failure. */
export function retryDelayMs(policy: RetryPolicy, retry: number, err: ProviderError, random = Math.random): number {
  const backoff = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1));
  // Full jitter on the upper half: callers failing together do not retry together.
  const jittered = backoff / 2 + (random() * backoff) / 2;
  return err.retryAfterMs === undefined ? jittered : Math.min(policy.maxRetryAfterMs, Math.max(err.retryAfterMs, jittered));
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const timer = setTimeout(() => (signal?.removeEventListener('abort', onAbort), resolve()), ms);
    const onAbort = () => (clearTimeout(timer), reject(signal!.reason));
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryContext {
  provider: string;
  policy: RetryPolicy;
  logger: Logger;
  signal?: AbortSignal;
  /** The key, only to cut it out of error messages. */
  apiKey?: string;
}

/** Runs `call` until it succeeds, fails for good, or the attempts run out; the last failure is thrown as a ProviderError. */
export async function withRetry<T>(ctx: RetryContext, call: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call();
    } catch (raw) {
      const err = classify(ctx.provider, raw, ctx.apiKey);
      if (!err.retryable || attempt >= ctx.policy.attempts || ctx.signal?.aborted) {
        if (err.retryable) {
          throw new ProviderError(
            err.provider,
            err.kind,
            `${err.message} (gave up after ${attempt} attempts)`,
            err.status,
            err.retryAfterMs,
          );
        }
        throw err;
      }
      const delay = retryDelayMs(ctx.policy, attempt, err);
      ctx.logger.warn(
        { provider: ctx.provider, kind: err.kind, status: err.status, attempt, delay_ms: Math.round(delay) },
        'model provider call failed; retrying',
      );
      try {
        await sleep(delay, ctx.signal);
      } catch {
        throw classify(ctx.provider, Object.assign(new Error('aborted'), { name: 'AbortError' }), ctx.apiKey);
      }
    }
  }
}
