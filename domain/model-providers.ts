/**
 * Model providers as configured: a JSON file (WARDEN_PROVIDERS_FILE) or, for a single provider,
 * WARDEN_LLM_KIND, WARDEN_LLM_BASE_URL and WARDEN_LLM_MODEL. A provider names the vault secret
 * holding its API key, never the key.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { Config } from './config.js';
import { SecretNameSchema } from './secret.js';

export const PROVIDER_KINDS = ['openai', 'anthropic'] as const;
export type ProviderKind = (typeof PROVIDER_KINDS)[number];

export const ProviderNameSchema = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,62}$/, '1-63 lower-case letters, digits, _ and -, starting with a letter or digit');

export const ProviderConfigSchema = z
  .object({
    name: ProviderNameSchema,
    kind: z.enum(PROVIDER_KINDS, { error: `one of ${PROVIDER_KINDS.join(', ')}` }),
    base_url: z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:11434/v1' }),
    default_model: z.string().min(1, 'name the model used when a request names none'),
    api_key_secret: SecretNameSchema.optional().describe(
      'The vault secret holding the API key; none for a local server that wants no key.',
    ),
    fallback: z.array(ProviderNameSchema).default([]),
    stream: z
      .boolean()
      .default(false)
      .describe('Ask for the answer as server-sent events and assemble it, for servers and proxies that cut long unstreamed requests off.'),
  })
  .strict()
  .refine((p) => p.kind !== 'anthropic' || p.api_key_secret !== undefined, {
    path: ['api_key_secret'],
    message: 'an anthropic provider needs the vault secret holding its API key',
  });
export type ProviderConfig = z.infer<typeof ProviderConfigSchema>;

/** The embedded default model's provider name: reserved, so no configured provider is taken for it. */
export const EMBEDDED_PROVIDER = 'embedded';
/** The name its server gives the model (scripts/embedded-model.py --alias). */
export const EMBEDDED_MODEL = 'smollm2-135m';

export function embeddedProviderConfig(baseUrl: string): ProviderConfig {
  return { name: EMBEDDED_PROVIDER, kind: 'openai', base_url: baseUrl, default_model: EMBEDDED_MODEL, fallback: [], stream: false };
}

export const ProvidersFileSchema = z
  .object({ providers: z.array(ProviderConfigSchema) })
  .strict()
  .superRefine(({ providers }, ctx) => {
    const names = new Set<string>();
    providers.forEach((p, i) => {
      if (names.has(p.name)) ctx.addIssue({ code: 'custom', path: ['providers', i, 'name'], message: `"${p.name}" is named twice` });
      if (p.name === EMBEDDED_PROVIDER)
        ctx.addIssue({
          code: 'custom',
          path: ['providers', i, 'name'],
          message: `"${EMBEDDED_PROVIDER}" is the embedded default model's name`,
        });
      names.add(p.name);
    });
    providers.forEach((p, i) =>
      p.fallback.forEach((f, j) => {
        if (f === p.name)
          ctx.addIssue({ code: 'custom', path: ['providers', i, 'fallback', j], message: 'a provider cannot fall back to itself' });
        else if (!names.has(f))
          ctx.addIssue({ code: 'custom', path: ['providers', i, 'fallback', j], message: `no provider is named "${f}"` });
      }),
    );
  });

/** The providers the configuration names, validated; a problem names the file or variable and the field. */
export function loadProviderConfigs(
  config: Pick<Config, 'providersFile' | 'llmKind' | 'llmBaseUrl' | 'llmModel' | 'llmApiKeySecret' | 'embeddedModelUrl'>,
): ProviderConfig[] {
  const configured = configuredProviders(config);
  // Any configured provider replaces the embedded model.
  if (configured.length === 0 && config.embeddedModelUrl) return [embeddedProviderConfig(config.embeddedModelUrl)];
  return configured;
}

function configuredProviders(
  config: Pick<Config, 'providersFile' | 'llmKind' | 'llmBaseUrl' | 'llmModel' | 'llmApiKeySecret'>,
): ProviderConfig[] {
  const fromFile = config.providersFile ? readProvidersFile(config.providersFile) : [];
  if (!config.llmBaseUrl) return fromFile;
  const single = ProviderConfigSchema.safeParse({
    name: 'default',
    kind: config.llmKind,
    base_url: config.llmBaseUrl,
    default_model: config.llmModel,
    api_key_secret: config.llmApiKeySecret,
  });
  if (!single.success) {
    const env: Record<string, string> = {
      kind: 'WARDEN_LLM_KIND',
      base_url: 'WARDEN_LLM_BASE_URL',
      default_model: 'WARDEN_LLM_MODEL',
      api_key_secret: 'WARDEN_LLM_API_KEY_SECRET',
    };
    throw new Error(
      `invalid model provider: ${single.error.issues.map((i) => `${env[String(i.path[0])] ?? i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  }
  if (fromFile.some((p) => p.name === 'default'))
    throw new Error('WARDEN_LLM_BASE_URL makes a provider named "default", and the providers file has one too: use one or the other');
  return [...fromFile, single.data];
}

function readProvidersFile(path: string): ProviderConfig[] {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`WARDEN_PROVIDERS_FILE (${path}): ${(err as Error).message}`);
  }
  const parsed = ProvidersFileSchema.safeParse(json);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) =>
        `${
          i.path
            .map((p) => (typeof p === 'number' ? `[${p}]` : `.${String(p)}`))
            .join('')
            .replace(/^\./, '') || '(file)'
        }: ${i.message}`,
    );
    throw new Error(`WARDEN_PROVIDERS_FILE (${path}):\n  ${problems.join('\n  ')}`);
  }
  return parsed.data.providers;
}
