/**
 * The configured model providers, built once: each reads its API key from the vault at call time,
 * by the secret's name, and keeps the result of its last health check.
 */
import type { Logger } from 'pino';
import { EMBEDDED_PROVIDER, type ProviderConfig } from '../domain/model-providers.js';
import { VaultError, type Vault } from '../stores/vault.js';
import { AnthropicProvider } from './anthropic-provider.js';
import { EmbeddedModelProvider } from './embedded-model.js';
import { ProviderError } from './errors.js';
import { withFallback, type FallbackOptions } from './fallback.js';
import { OpenAIProvider } from './openai-provider.js';
import type { ModelProvider, ProviderHealth } from './provider.js';
import type { RetryPolicy } from './retry.js';

export interface ProviderEntry {
  config: ProviderConfig;
  provider: ModelProvider;
  /** The last health check, if any since start. */
  lastHealth?: ProviderHealth;
}

export interface RegistryOptions {
  configs: ProviderConfig[];
  /** Where API keys are read; a provider naming a secret without a vault fails each call with a clear error. */
  vault?: Vault;
  logger: Logger;
  retry?: RetryPolicy;
}

export class ProviderRegistry {
  private readonly entries = new Map<string, ProviderEntry>();

  constructor(opts: RegistryOptions) {
    for (const config of opts.configs) {
      const options = { config, apiKey: keyReader(config, opts.vault), logger: opts.logger, retry: opts.retry };
      const provider =
        config.kind === 'anthropic'
          ? new AnthropicProvider(options)
          : config.name === EMBEDDED_PROVIDER
            ? new EmbeddedModelProvider(options)
            : new OpenAIProvider(options);
      this.entries.set(config.name, { config, provider });
    }
  }

  list(): ProviderEntry[] {
    return [...this.entries.values()];
  }

  get(name: string): ProviderEntry | undefined {
    return this.entries.get(name);
  }

  /** A real round trip to the provider, remembered as its status. */
  async health(name: string, signal?: AbortSignal): Promise<ProviderHealth | undefined> {
    const entry = this.entries.get(name);
    if (!entry) return undefined;
    entry.lastHealth = await entry.provider.health(signal);
    return entry.lastHealth;
  }

  /** The provider and then its fallbacks, in the configured order. */
  chain(name: string, opts?: FallbackOptions) {
    const entry = this.entries.get(name);
    if (!entry) throw new Error(`no model provider is named "${name}"`);
    return withFallback([entry.provider, ...entry.config.fallback.map((f) => this.entries.get(f)!.provider)], opts);
  }
}

function keyReader(config: ProviderConfig, vault: Vault | undefined): () => Promise<string | undefined> {
  const secret = config.api_key_secret;
  if (!secret) return async () => undefined;
  return async () => {
    if (!vault)
      throw new ProviderError(
        config.name,
        'misconfigured',
        `provider ${config.name}: its API key is in the vault secret ${secret}, and this process has no vault open`,
      );
    try {
      return (await vault.reveal([secret])).get(secret);
    } catch (err) {
      if (err instanceof VaultError && err.code === 'secret_not_found') {
        throw new ProviderError(
          config.name,
          'misconfigured',
          `provider ${config.name}: the vault has no secret ${secret}; store its API key with PUT /api/secrets/${secret}`,
        );
      }
      throw new ProviderError(config.name, 'misconfigured', `provider ${config.name}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
}
