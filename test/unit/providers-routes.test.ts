/**
 * /api/providers through the whole app (auth included), with providers configured by environment
 * and file pointing at the local fake model server: the list, a real health round trip, the model
 * list, and a provider that is down.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import { createApp } from '../../api/app.js';
import { KeyStore } from '../../stores/key-store.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { ConfigSchema, loadConfig } from '../../domain/config.js';
import { loadProviderConfigs } from '../../domain/model-providers.js';
import { loadPolicy } from '../../domain/policy.js';
import { SKILLS } from '../../skills/index.js';
import type { PayloadEncryptionCodec } from '../../domain/payload-codec.js';
import { openVault, type Vault } from '../../stores/vault.js';
import { startFakeLlm, type FakeLlm } from '../support/fake-llm.js';

const API_KEY = 'sk-route-test-key-0123456789';
let fake: FakeLlm;
let vault: Vault;
let viewer: string;
let app: ReturnType<typeof createApp>;
const dir = mkdtempSync(join(tmpdir(), 'warden-providers-'));

beforeAll(async () => {
  fake = await startFakeLlm();
  vault = openVault({ dataDir: dir });
  await vault.put('LOCAL_LLM_KEY', API_KEY);
  const file = join(dir, 'providers.json');
  writeFileSync(
    file,
    JSON.stringify({
      providers: [
        {
          name: 'local',
          kind: 'openai',
          base_url: `${fake.origin}/v1`,
          default_model: 'fake-model',
          api_key_secret: 'LOCAL_LLM_KEY',
          fallback: ['gone'],
        },
        { name: 'gone', kind: 'openai', base_url: 'http://127.0.0.1:9/v1', default_model: 'm' },
      ],
    }),
  );
  const keys = KeyStore.open(':memory:');
  viewer = (await keys.create('viewer', 'viewer', null)).key;
  // Temporal, Docker and the audit store are not touched by these routes.
  app = createApp({
    client: {} as Client,
    docker: {} as Docker,
    config: ConfigSchema.parse({
      providersFile: file,
      llmKind: 'anthropic',
      llmBaseUrl: fake.origin,
      llmModel: 'fake-claude',
      llmApiKeySecret: 'LOCAL_LLM_KEY',
    }),
    logger: pino({ level: 'silent' }),
    keys,
    audit: {} as AuditStore,
    policy: loadPolicy(SKILLS),
    vault,
    payloadCodec: {} as PayloadEncryptionCodec,
  });
});
afterAll(async () => (await vault.close(), fake.close()));

const get = async (path: string) => {
  const res = await app.request(path, { headers: { authorization: `Bearer ${viewer}` } });
  const text = await res.text();
  expect(text).not.toContain(API_KEY);
  expect(text).not.toContain('LOCAL_LLM_KEY');
  return { status: res.status, body: JSON.parse(text) };
};

describe('/api/providers', () => {
  it('lists the providers of the file and of the environment, status unknown before a health check', async () => {
    const { status, body } = await get('/api/providers');
    expect(status).toBe(200);
    expect(body.providers).toEqual([
      {
        name: 'local',
        kind: 'openai',
        base_url: `${fake.origin}/v1`,
        default_model: 'fake-model',
        fallback: ['gone'],
        status: 'unknown',
        checked_at: null,
      },
      {
        name: 'gone',
        kind: 'openai',
        base_url: 'http://127.0.0.1:9/v1',
        default_model: 'm',
        fallback: [],
        status: 'unknown',
        checked_at: null,
      },
      {
        name: 'default',
        kind: 'anthropic',
        base_url: fake.origin,
        default_model: 'fake-claude',
        fallback: [],
        status: 'unknown',
        checked_at: null,
      },
    ]);
  });

  it('checks health with a real round trip, and the list remembers it', async () => {
    const before = fake.to('GET /v1/models').length;
    const { status, body } = await get('/api/providers/local/health');
    expect(status).toBe(200);
    expect(body).toMatchObject({ name: 'local', status: 'up', error: null });
    expect(body.latency_ms).toBeGreaterThanOrEqual(0);
    const sent = fake.to('GET /v1/models');
    expect(sent).toHaveLength(before + 1);
    expect(sent.at(-1)!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect((await get('/api/providers')).body.providers[0]).toMatchObject({ name: 'local', status: 'up', checked_at: body.checked_at });
  });

  it('answers 200 with status down and why for a provider that cannot be reached', async () => {
    const { status, body } = await get('/api/providers/gone/health');
    expect(status).toBe(200);
    expect(body).toMatchObject({ name: 'gone', status: 'down' });
    expect(body.error).toMatch(/provider gone: cannot reach the provider; check its base_url/);
  });

  it('lists the models of a provider, and 503 with the reason when it cannot', async () => {
    expect(await get('/api/providers/default/models')).toEqual({ status: 200, body: { models: [{ id: 'fake-model' }] } });
    fake.script('GET /v1/models', { status: 401, json: { error: { message: `bad key ${API_KEY}` } } });
    const refused = await get('/api/providers/local/models');
    expect(refused.status).toBe(503);
    expect(refused.body.error.message).toMatch(/provider local answered 401, the API key was refused/);
  });

  it('is 404 for a provider nobody configured', async () => {
    for (const path of ['/api/providers/nope/health', '/api/providers/nope/models']) {
      const { status, body } = await get(path);
      expect(status).toBe(404);
      expect(body.error.message).toBe('no model provider is named nope; GET /api/providers lists them');
    }
  });
});

describe('provider configuration', () => {
  it('names the field at fault in the file', async () => {
    const file = join(dir, 'bad.json');
    writeFileSync(
      file,
      JSON.stringify({ providers: [{ name: 'a', kind: 'gemini', base_url: 'ftp://x', default_model: 'm', fallback: ['b'] }] }),
    );
    expect(() => loadProviderConfigs({ providersFile: file, llmKind: 'openai' })).toThrow(
      new RegExp(
        `WARDEN_PROVIDERS_FILE \\(${file.replace(/[.\\/]/g, '\\$&')}\\):\\n  providers\\[0\\]\\.kind: one of openai, anthropic\\n  providers\\[0\\]\\.base_url: an http\\(s\\) URL`,
      ),
    );
    writeFileSync(
      file,
      JSON.stringify({
        providers: [{ name: 'a', kind: 'openai', base_url: 'http://x/v1', default_model: 'm', fallback: ['b'], api_key: 'sk-no' }],
      }),
    );
    expect(() => loadProviderConfigs({ providersFile: file, llmKind: 'openai' })).toThrow(/providers\[0\]: Unrecognized key: "api_key"/);
    writeFileSync(
      file,
      JSON.stringify({ providers: [{ name: 'a', kind: 'openai', base_url: 'http://x/v1', default_model: 'm', fallback: ['b'] }] }),
    );
    expect(() => loadProviderConfigs({ providersFile: file, llmKind: 'openai' })).toThrow(
      /providers\[0\]\.fallback\[0\]: no provider is named "b"/,
    );
    writeFileSync(
      file,
      JSON.stringify({ providers: [{ name: 'c', kind: 'anthropic', base_url: 'https://api.anthropic.com', default_model: 'm' }] }),
    );
    expect(() => loadProviderConfigs({ providersFile: file, llmKind: 'openai' })).toThrow(
      /providers\[0\]\.api_key_secret: an anthropic provider needs the vault secret/,
    );
  });

  it('reads a single provider from the environment, and needs its model', async () => {
    expect(loadProviderConfigs(loadConfig({ WARDEN_LLM_BASE_URL: 'http://127.0.0.1:11434/v1', WARDEN_LLM_MODEL: 'llama3.2' }))).toEqual([
      { name: 'default', kind: 'openai', base_url: 'http://127.0.0.1:11434/v1', default_model: 'llama3.2', fallback: [], stream: false },
    ]);
    expect(() => loadConfig({ WARDEN_LLM_BASE_URL: 'http://127.0.0.1:11434/v1' })).toThrow(
      /WARDEN_LLM_MODEL: required when WARDEN_LLM_BASE_URL is set/,
    );
    expect(() =>
      loadProviderConfigs(loadConfig({ WARDEN_LLM_BASE_URL: 'http://x/v1', WARDEN_LLM_MODEL: 'm', WARDEN_LLM_KIND: 'anthropic' })),
    ).toThrow(/WARDEN_LLM_API_KEY_SECRET: an anthropic provider needs the vault secret/);
  });

  it('makes the embedded model the provider only while no other is configured, and keeps its name for it', async () => {
    const embedded = { embeddedModelUrl: 'http://127.0.0.1:8181/v1', llmKind: 'openai' as const };
    expect(loadProviderConfigs(embedded)).toEqual([
      {
        name: 'embedded',
        kind: 'openai',
        base_url: 'http://127.0.0.1:8181/v1',
        default_model: 'smollm2-135m',
        fallback: [],
        stream: false,
      },
    ]);
    expect(loadProviderConfigs({ ...embedded, llmBaseUrl: 'http://127.0.0.1:11434/v1', llmModel: 'llama3.2' })).toMatchObject([
      { name: 'default', base_url: 'http://127.0.0.1:11434/v1' },
    ]);
    const file = join(dir, 'embedded.json');
    writeFileSync(file, JSON.stringify({ providers: [{ name: 'embedded', kind: 'openai', base_url: 'http://x/v1', default_model: 'm' }] }));
    expect(() => loadProviderConfigs({ ...embedded, providersFile: file })).toThrow(
      /providers\[0\]\.name: "embedded" is the embedded default model's name/,
    );
  });
});
