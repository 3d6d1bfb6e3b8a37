/** The health check both protocols share: one timed round trip, never retried. */
import { classify } from './errors.js';
import type { ProviderHealth } from './provider.js';

/** A health check's limit: a provider slower than this is down for the purpose. */
export const HEALTH_TIMEOUT_MS = 10_000;

/** Times one round trip; a failure is a `down` answer with the classified message, not an exception. */
export async function measureHealth(
  provider: string,
  signal: AbortSignal | undefined,
  roundTrip: (apiKey: string | undefined) => Promise<void>,
  readKey: () => string | undefined | Promise<string | undefined>,
): Promise<ProviderHealth> {
  const started = performance.now();
  const checked_at = new Date().toISOString();
  let apiKey: string | undefined;
  try {
    apiKey = await readKey();
    await roundTrip(apiKey);
    return { status: 'up', latency_ms: Math.round(performance.now() - started), checked_at };
  } catch (err) {
    if (signal?.aborted) throw err;
    return {
      status: 'down',
      latency_ms: Math.round(performance.now() - started),
      error: classify(provider, err, apiKey).message,
      checked_at,
    };
  }
}
