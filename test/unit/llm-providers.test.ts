/**
 * The model providers with the real openai and Anthropic client libraries against a local fake
 * that speaks their wire protocols: normalisation, the retry policy, fallback, and where the API
 * key goes (only the protocol's auth header: never a body, a URL, an error or a log line).
 */
import { Writable } from 'node:stream';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ProviderConfigSchema, type ProviderConfig } from '../../domain/model-providers.js';
import { AnthropicProvider } from '../../llm/anthropic-provider.js';
import { toolsOf } from '../../activities/model.js';
import { embeddedProviderConfig } from '../../domain/model-providers.js';
import { ProviderError, retryAfterMs, withoutKey } from '../../llm/errors.js';
import { withFallback } from '../../llm/fallback.js';
import { OpenAIProvider } from '../../llm/openai-provider.js';
import { ProviderRegistry } from '../../llm/registry.js';
import type { RetryPolicy } from '../../llm/retry.js';
import { openVault } from '../../stores/vault.js';
import { toJsonSchema } from '../../skills/index.js';
import { createLogger } from '../../telemetry/logger.js';
import { anthropicMessage, openaiChunk, openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';

const API_KEY = 'sk-test-0123456789abcdefSECRETKEY';
const FAST: RetryPolicy = { attempts: 3, baseDelayMs: 5, maxDelayMs: 20, maxRetryAfterMs: 5_000 };

let fake: FakeLlm;
let logLines: string[] = [];
// The production logger (field redaction and value scrubbing included), writing to a buffer.
const logger = createLogger(
  'test',
  'debug',
  new Writable({ write: (chunk, _enc, done) => (logLines.push(String(chunk)), done()) }) as never,
);

beforeAll(async () => {
  fake = await startFakeLlm();
});
afterAll(async () => fake.close());
afterEach(async () => {
  fake.requests.length = 0;
  logLines = [];
});

const config = (over: Partial<ProviderConfig> & { kind: ProviderConfig['kind'] }): ProviderConfig =>
  ProviderConfigSchema.parse({
    name: over.kind === 'openai' ? 'local' : 'claude',
    base_url: over.kind === 'openai' ? `${fake.origin}/v1` : fake.origin,
    default_model: 'fake-model',
    api_key_secret: 'LLM_KEY',
    ...over,
  });
const openai = (over: Partial<ProviderConfig> = {}, key: string | null = API_KEY) =>
  new OpenAIProvider({ config: config({ kind: 'openai', ...over }), apiKey: () => key ?? undefined, logger, retry: FAST });
const anthropic = (over: Partial<ProviderConfig> = {}) =>
  new AnthropicProvider({ config: config({ kind: 'anthropic', ...over }), apiKey: () => API_KEY, logger, retry: FAST });

const tools = [{ name: 'filesystem_read', description: 'Read a file', parameters: toJsonSchema('filesystem', 'read') }];
const messages = [
  { role: 'system' as const, content: 'You are careful.' },
  { role: 'user' as const, content: 'Read notes.txt' },
];

describe('OpenAI protocol', () => {
  it('sends messages and tools, and normalises text, usage and the finish reason', async () => {
    fake.script('POST /v1/chat/completions', {
      json: openaiCompletion(
        { content: 'Hello.' },
        { usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15, prompt_tokens_details: { cached_tokens: 8 } } },
      ),
    });
    const res = await openai().chat({ messages, tools, max_tokens: 100 });
    expect(res).toEqual({
      text: 'Hello.',
      tool_calls: [],
      usage: { input_tokens: 12, output_tokens: 3, cached_tokens: 8 },
      finish_reason: 'stop',
      model: 'fake-model',
    });
    const [req] = fake.to('POST /v1/chat/completions');
    expect(req!.body).toMatchObject({
      model: 'fake-model',
      max_tokens: 100,
      messages: [
        { role: 'system', content: 'You are careful.' },
        { role: 'user', content: 'Read notes.txt' },
      ],
      tools: [{ type: 'function', function: { name: 'filesystem_read', description: 'Read a file', parameters: tools[0]!.parameters } }],
    });
  });

  it('reads tool calls with any id shape and "" content, and reports invalid arguments without losing the answer', async () => {
    fake.script('POST /v1/chat/completions', {
      json: openaiCompletion(
        {
          content: '',
          tool_calls: [
            { id: 'ollama-7f3a', name: 'filesystem_read', arguments: '{"path":"notes.txt"}' },
            { id: '', name: 'filesystem_read', arguments: '{"path": "a.txt"' },
          ],
        },
        // Some compatible servers say "stop" although the model called tools.
        { finish_reason: 'stop' },
      ),
    });
    const res = await openai().chat({ messages, tools });
    expect(res.finish_reason).toBe('tool_calls');
    expect(res.text).toBe('');
    expect(res.tool_calls[0]).toEqual({ id: 'ollama-7f3a', name: 'filesystem_read', arguments: { path: 'notes.txt' } });
    expect(res.tool_calls[1]).toMatchObject({ id: 'call_1', name: 'filesystem_read', arguments: {}, raw_arguments: '{"path": "a.txt"' });
    expect(res.tool_calls[1]!.parse_error).toMatch(/not valid JSON/);
  });

  it('sends the conversation back with tool calls and tool answers in its own shape', async () => {
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: 'It says hi.' }) });
    await openai().chat({
      messages: [
        ...messages,
        { role: 'assistant', content: '', tool_calls: [{ id: 'x1', name: 'filesystem_read', arguments: { path: 'notes.txt' } }] },
        { role: 'tool', tool_call_id: 'x1', content: 'hi' },
      ],
    });
    expect((fake.requests[0]!.body as { messages: unknown[] }).messages.slice(2)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'x1', type: 'function', function: { name: 'filesystem_read', arguments: '{"path":"notes.txt"}' } }],
      },
      { role: 'tool', tool_call_id: 'x1', content: 'hi' },
    ]);
  });

  it.each([
    ['length', 'length'],
    ['content_filter', 'content_filter'],
    ['something_new', 'other'],
  ])('maps finish_reason %s to %s', async (given, normalised) => {
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: 'x' }, { finish_reason: given }) });
    expect((await openai().chat({ messages })).finish_reason).toBe(normalised);
  });

  it('assembles a streamed answer: text (told as it grows), tool-call deltas and usage', async () => {
    fake.script('POST /v1/chat/completions', {
      sse: [
        { data: openaiChunk({ role: 'assistant', content: 'Let me ' }) },
        { data: openaiChunk({ content: 'look.' }) },
        {
          data: openaiChunk({
            tool_calls: [{ index: 0, id: 'call_abc', type: 'function', function: { name: 'filesystem_read', arguments: '' } }],
          }),
        },
        { data: openaiChunk({ tool_calls: [{ index: 0, function: { arguments: '{"path":' } }] }) },
        { data: openaiChunk({ tool_calls: [{ index: 0, function: { arguments: '"notes.txt"}' } }] }) },
        { data: openaiChunk({}, { finish_reason: 'tool_calls' }) },
        {
          data: openaiChunk(null, {
            usage: { prompt_tokens: 20, completion_tokens: 7, total_tokens: 27, prompt_tokens_details: { cached_tokens: 4 } },
          }),
        },
        '[DONE]',
      ],
    });
    const textSoFar: string[] = [];
    const res = await openai({ stream: true }).chat({ messages, tools, onText: (text) => textSoFar.push(text) });
    expect(textSoFar).toEqual(['Let me ', 'Let me look.']);
    expect(res).toEqual({
      text: 'Let me look.',
      tool_calls: [{ id: 'call_abc', name: 'filesystem_read', arguments: { path: 'notes.txt' } }],
      usage: { input_tokens: 20, output_tokens: 7, cached_tokens: 4 },
      finish_reason: 'tool_calls',
      model: 'fake-model',
    });
    expect(fake.requests[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
  });

  it('lists models, and a health check is one timed round trip', async () => {
    expect(await openai().listModels()).toEqual([{ id: 'fake-model', owned_by: 'fake' }]);
    const health = await openai().health();
    expect(health).toMatchObject({ status: 'up' });
    expect(health.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('sends no Authorization header to a server that wants no key', async () => {
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: 'ok' }) });
    await openai({ api_key_secret: undefined }, null).chat({ messages });
    expect(fake.requests[0]!.headers.authorization).toBeUndefined();
  });
});

describe('the embedded model', () => {
  const registry = () => new ProviderRegistry({ configs: [embeddedProviderConfig(`${fake.origin}/v1`)], logger, retry: FAST });
  const sent = () => (fake.to('POST /v1/chat/completions').at(-1)!.body as { messages: Array<Record<string, unknown>> }).messages;

  it('gets a worked example for each offered tool that has one, after the system prompt and before the conversation', async () => {
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: 'ok' }) });
    await registry()
      .get('embedded')!
      .provider.chat({ messages, tools: toolsOf('filesystem') });
    const body = sent();
    expect(body[0]).toEqual({ role: 'system', content: 'You are careful.' });
    expect(body.at(-1)).toEqual({ role: 'user', content: 'Read notes.txt' });
    // filesystem_write and filesystem_list have an example; the skill's other tools do not.
    const calls = body.flatMap((m) => (m.tool_calls as Array<{ id: string; function: { name: string; arguments: string } }>) ?? []);
    expect(calls.map((c) => c.function.name)).toEqual(['filesystem_write', 'filesystem_list']);
    expect(JSON.parse(calls[1]!.function.arguments)).toEqual({});
    // Each example call is answered, as a real tool result is: the template renders it as a tool turn.
    for (const c of calls) expect(body.some((m) => m.role === 'tool' && m.tool_call_id === c.id)).toBe(true);
    expect(body).toHaveLength(1 + 2 * 4 + 1);
  });

  it('gets none for tools without an example, and no other provider gets any', async () => {
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: 'ok' }) }, { json: openaiCompletion({ content: 'ok' }) });
    await registry().get('embedded')!.provider.chat({ messages, tools });
    expect(sent()).toEqual(messages);
    await openai().chat({ messages, tools: toolsOf('shell') });
    expect(sent()).toEqual(messages);
  });
});

describe('Anthropic protocol', () => {
  it('puts the system prompt at the top, tools as input_schema, and normalises text, tool_use and usage with cache reads', async () => {
    fake.script('POST /v1/messages', {
      json: anthropicMessage(
        [
          { type: 'text', text: 'Reading it.' },
          { type: 'tool_use', id: 'toolu_01', name: 'filesystem_read', input: { path: 'notes.txt' } },
        ],
        {
          stop_reason: 'tool_use',
          usage: { input_tokens: 5, output_tokens: 9, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 },
        },
      ),
    });
    const res = await anthropic().chat({ messages, tools });
    expect(res).toEqual({
      text: 'Reading it.',
      tool_calls: [{ id: 'toolu_01', name: 'filesystem_read', arguments: { path: 'notes.txt' } }],
      usage: { input_tokens: 105, output_tokens: 9, cached_tokens: 100 },
      finish_reason: 'tool_calls',
      model: 'fake-claude',
    });
    expect(fake.requests[0]!.body).toEqual({
      model: 'fake-model',
      max_tokens: 4096,
      system: 'You are careful.',
      messages: [{ role: 'user', content: 'Read notes.txt' }],
      tools: [{ name: 'filesystem_read', description: 'Read a file', input_schema: tools[0]!.parameters }],
    });
  });

  it('sends tool calls as tool_use blocks and their answers as tool_result blocks in one user turn', async () => {
    fake.script('POST /v1/messages', { json: anthropicMessage([{ type: 'text', text: 'Both say hi.' }]) });
    const res = await anthropic().chat({
      messages: [
        ...messages,
        {
          role: 'assistant',
          content: 'Reading both.',
          tool_calls: [
            { id: 't1', name: 'filesystem_read', arguments: { path: 'a' } },
            { id: 't2', name: 'filesystem_read', arguments: { path: 'b' } },
          ],
        },
        { role: 'tool', tool_call_id: 't1', content: 'hi' },
        { role: 'tool', tool_call_id: 't2', content: 'hi too' },
      ],
    });
    expect(res.finish_reason).toBe('stop');
    expect((fake.requests[0]!.body as { messages: unknown[] }).messages.slice(1)).toEqual([
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Reading both.' },
          { type: 'tool_use', id: 't1', name: 'filesystem_read', input: { path: 'a' } },
          { type: 'tool_use', id: 't2', name: 'filesystem_read', input: { path: 'b' } },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 't1', content: 'hi' },
          { type: 'tool_result', tool_use_id: 't2', content: 'hi too' },
        ],
      },
    ]);
  });

  it.each([
    ['max_tokens', 'length'],
    ['refusal', 'content_filter'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'other'],
  ])('maps stop_reason %s to %s', async (given, normalised) => {
    fake.script('POST /v1/messages', { json: anthropicMessage([{ type: 'text', text: 'x' }], { stop_reason: given }) });
    expect((await anthropic().chat({ messages })).finish_reason).toBe(normalised);
  });

  it('assembles a streamed answer from its events: text (told as it grows), tool input deltas (invalid JSON reported) and usage', async () => {
    const ev = (type: string, data: Record<string, unknown>) => ({ event: type, data: { type, ...data } });
    fake.script('POST /v1/messages', {
      sse: [
        ev('message_start', {
          message: {
            ...anthropicMessage([], {
              usage: { input_tokens: 7, output_tokens: 1, cache_read_input_tokens: 30, cache_creation_input_tokens: 0 },
            }),
            stop_reason: null,
          },
        }),
        ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }),
        ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Reading ' } }),
        ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'two.' } }),
        ev('content_block_stop', { index: 0 }),
        ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_a', name: 'filesystem_read', input: {} } }),
        ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '{"path": ' } }),
        ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: '"a.txt"}' } }),
        ev('content_block_stop', { index: 1 }),
        ev('content_block_start', { index: 2, content_block: { type: 'tool_use', id: 'toolu_b', name: 'filesystem_read', input: {} } }),
        ev('content_block_delta', { index: 2, delta: { type: 'input_json_delta', partial_json: '{"path": "b' } }),
        ev('content_block_stop', { index: 2 }),
        ev('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 42 } }),
        ev('message_stop', {}),
      ],
    });
    const textSoFar: string[] = [];
    const res = await anthropic({ stream: true }).chat({ messages, tools, onText: (text) => textSoFar.push(text) });
    expect(textSoFar).toEqual(['Reading ', 'Reading two.']);
    expect(res).toMatchObject({
      text: 'Reading two.',
      usage: { input_tokens: 37, output_tokens: 42, cached_tokens: 30 },
      finish_reason: 'tool_calls',
      model: 'fake-claude',
    });
    expect(res.tool_calls[0]).toEqual({ id: 'toolu_a', name: 'filesystem_read', arguments: { path: 'a.txt' } });
    expect(res.tool_calls[1]).toMatchObject({
      id: 'toolu_b',
      arguments: {},
      raw_arguments: '{"path": "b',
      parse_error: expect.stringMatching(/not valid JSON/),
    });
    expect(fake.requests[0]!.body).toMatchObject({ stream: true });
  });

  it('lists models and checks health', async () => {
    expect(await anthropic().listModels()).toEqual([{ id: 'fake-model' }]);
    expect((await anthropic().health()).status).toBe('up');
  });
});

describe('failures', () => {
  it('waits as long as a 429 Retry-After says before trying again', async () => {
    fake.script(
      'POST /v1/chat/completions',
      { status: 429, headers: { 'retry-after': '1' }, json: { error: { message: 'slow down', type: 'rate_limit' } } },
      { json: openaiCompletion({ content: 'ok' }) },
    );
    expect((await openai().chat({ messages })).text).toBe('ok');
    const [first, second] = fake.to('POST /v1/chat/completions');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(1000);
    expect(logLines.join('')).toMatch(/"kind":"rate_limited".*"delay_ms":1000/);
  });

  it('caps a Retry-After that asks too much', async () => {
    fake.script(
      'POST /v1/messages',
      { status: 429, headers: { 'retry-after': '3600' }, json: { type: 'error', error: { type: 'rate_limit_error', message: 'slow' } } },
      { json: anthropicMessage([{ type: 'text', text: 'ok' }]) },
    );
    const provider = new AnthropicProvider({
      config: config({ kind: 'anthropic' }),
      apiKey: () => API_KEY,
      logger,
      retry: { ...FAST, maxRetryAfterMs: 200 },
    });
    expect((await provider.chat({ messages })).text).toBe('ok');
    const [first, second] = fake.to('POST /v1/messages');
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(200);
    expect(second!.at - first!.at).toBeLessThan(3000);
  });

  it('reads Retry-After in seconds, as an HTTP date, and as retry-after-ms', async () => {
    const now = Date.parse('2026-12-07T12:00:00Z');
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }), now)).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Mon, 07 Dec 2026 12:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'Mon, 07 Dec 2026 11:00:00 GMT' }), now)).toBe(0);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '250', 'retry-after': '9' }), now)).toBe(250);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }), now)).toBeUndefined();
  });

  it('retries a 500 and then answers', async () => {
    fake.script(
      'POST /v1/messages',
      { status: 500, json: { type: 'error', error: { type: 'api_error', message: 'boom' } } },
      { json: anthropicMessage([{ type: 'text', text: 'ok' }]) },
    );
    expect((await anthropic().chat({ messages })).text).toBe('ok');
    expect(fake.to('POST /v1/messages')).toHaveLength(2);
  });

  it('gives up after the attempts of the policy, saying so', async () => {
    fake.script(
      'POST /v1/chat/completions',
      { status: 503, json: { error: { message: 'down' } } },
      { status: 502, json: { error: { message: 'down' } } },
      { hangUp: true },
    );
    const err = await openai()
      .chat({ messages })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ kind: 'connection', retryable: true });
    expect((err as Error).message).toMatch(/gave up after 3 attempts/);
    expect(fake.to('POST /v1/chat/completions')).toHaveLength(3);
  });

  it.each([
    [401, 'unauthorized', /API key was refused/],
    [403, 'forbidden', /may not do this/],
    [404, 'not_found', /check the model name/],
    [400, 'bad_request', /refused the request/],
  ])('does not retry %i, and the message never holds the key', async (status, kind, advice) => {
    // A provider that echoes the key it refused, as some do.
    fake.script('POST /v1/chat/completions', {
      status,
      json: { error: { message: `Incorrect API key provided: ${API_KEY}`, type: 'invalid_request_error' } },
    });
    const err = (await openai()
      .chat({ messages })
      .catch((e: unknown) => e)) as ProviderError;
    expect(err).toMatchObject({ kind, status, retryable: false });
    expect(err.message).toMatch(advice);
    expect(err.message).not.toContain(API_KEY);
    expect(err.message).not.toContain(API_KEY.slice(0, 8));
    expect(fake.to('POST /v1/chat/completions')).toHaveLength(1);
  });

  it('cuts a key and key-shaped text out of messages', async () => {
    expect(withoutKey(`bad key ${API_KEY} (sk-test***KEY)`, API_KEY)).not.toMatch(/sk-test|SECRETKEY/);
  });

  it('reports a provider that cannot be reached as down, with what to check', async () => {
    const health = await openai({ base_url: 'http://127.0.0.1:9/v1' }).health();
    expect(health.status).toBe('down');
    expect(health.error).toMatch(/cannot reach the provider; check its base_url/);
  });
});

describe('the API key', () => {
  it('goes only in the header each protocol authenticates with, never in a body, a URL or a log line', async () => {
    fake.script(
      'POST /v1/chat/completions',
      { status: 500, json: { error: { message: 'x' } } },
      { json: openaiCompletion({ content: 'ok' }) },
    );
    fake.script(
      'POST /v1/messages',
      { status: 429, json: { type: 'error', error: { type: 'rate_limit_error', message: 'x' } } },
      { json: anthropicMessage([{ type: 'text', text: 'ok' }]) },
    );
    await openai().chat({ messages });
    await anthropic().chat({ messages });
    await openai().listModels();
    expect(fake.requests).toHaveLength(5);
    for (const req of fake.requests) {
      expect(req.raw).not.toContain(API_KEY);
      expect(req.path).not.toContain(API_KEY);
      const carrying = Object.entries(req.headers)
        .filter(([, v]) => String(v).includes(API_KEY))
        .map(([k, v]) => [k, v]);
      // The pinned clients both send the key as a bearer token: the Anthropic one no longer uses x-api-key.
      expect(carrying).toEqual([['authorization', `Bearer ${API_KEY}`]]);
    }
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.join('')).not.toContain(API_KEY);
  });

  it('is read from the vault by secret name at each call, so a rotated key is used at once', async () => {
    const vault = openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-llm-')) });
    await vault.put('LLM_KEY', 'sk-first-key-0000000000');
    const registry = new ProviderRegistry({ configs: [config({ kind: 'openai' })], vault, logger, retry: FAST });
    const provider = registry.get('local')!.provider;
    fake.script('POST /v1/chat/completions', { json: openaiCompletion({ content: '1' }) }, { json: openaiCompletion({ content: '2' }) });
    await provider.chat({ messages });
    await vault.put('LLM_KEY', 'sk-second-key-000000000');
    await provider.chat({ messages });
    expect(fake.requests.map((r) => r.headers.authorization)).toEqual(['Bearer sk-first-key-0000000000', 'Bearer sk-second-key-000000000']);
    await vault.delete('LLM_KEY');
    const err = (await provider.chat({ messages }).catch((e: unknown) => e)) as ProviderError;
    expect(err).toMatchObject({ kind: 'misconfigured' });
    expect(err.message).toBe('provider local: the vault has no secret LLM_KEY; store its API key with PUT /api/secrets/LLM_KEY');
    await vault.close();
  });
});

describe('fallback', () => {
  it('tries the next provider when one stays down, with its own default model, and says who answered', async () => {
    fake.script(
      'POST /v1/chat/completions',
      { status: 503, json: { error: { message: 'down' } } },
      { status: 503, json: { error: { message: 'down' } } },
      { status: 503, json: { error: { message: 'down' } } },
    );
    fake.script('POST /v1/messages', { json: anthropicMessage([{ type: 'text', text: 'from claude' }]) });
    const res = await withFallback([openai(), anthropic({ default_model: 'claude-fallback' })]).chat({ model: 'gpt-primary', messages });
    expect(res).toMatchObject({ text: 'from claude', provider: 'claude' });
    expect(res.failed_over).toEqual([
      { provider: 'local', kind: 'unavailable', message: expect.stringMatching(/provider local answered 503.*gave up after 3 attempts/) },
    ]);
    expect((fake.to('POST /v1/chat/completions')[0]!.body as { model: string }).model).toBe('gpt-primary');
    expect((fake.to('POST /v1/messages')[0]!.body as { model: string }).model).toBe('claude-fallback');
  });

  it("follows a provider's configured fallback list, and falls over when its key is missing from the vault", async () => {
    const vault = openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-llm-')) });
    await vault.put('CLAUDE_KEY', API_KEY);
    const registry = new ProviderRegistry({
      configs: [config({ kind: 'openai', fallback: ['claude'] }), config({ kind: 'anthropic', api_key_secret: 'CLAUDE_KEY' })],
      vault,
      logger,
      retry: FAST,
    });
    fake.script('POST /v1/messages', { json: anthropicMessage([{ type: 'text', text: 'from claude' }]) });
    const res = await registry.chain('local').chat({ messages });
    expect(res).toMatchObject({ provider: 'claude', failed_over: [{ provider: 'local', kind: 'misconfigured' }] });
    // The first provider never got a request: its key could not be read.
    expect(fake.to('POST /v1/chat/completions')).toHaveLength(0);
    await vault.close();
  });

  it('passes over a fallback the caller refuses, never sending it the request, and says why when none is left', async () => {
    const down = { status: 503, json: { error: { message: 'down' } } };
    fake.script('POST /v1/chat/completions', down, down, down);
    const refuse = (provider: string, model: string) => (model === 'unpriced' ? `${provider}'s ${model} has no price` : null);
    const refused = withFallback([openai(), anthropic({ default_model: 'unpriced' })], { refuse }).chat({ messages });
    await expect(refused).rejects.toMatchObject({
      kind: 'refused',
      retryable: false,
      message: expect.stringMatching(/provider local answered 503.*; provider claude was not called: claude's unpriced has no price$/),
    });
    expect(fake.to('POST /v1/messages')).toHaveLength(0);

    fake.script('POST /v1/chat/completions', down, down, down);
    fake.script('POST /v1/messages', { json: anthropicMessage([{ type: 'text', text: 'priced' }]) });
    const chain = [openai(), anthropic({ name: 'unpriced-claude', default_model: 'unpriced' }), anthropic()];
    const res = await withFallback(chain, { refuse }).chat({ messages });
    expect(res).toMatchObject({
      provider: 'claude',
      failed_over: [{ kind: 'unavailable' }, { provider: 'unpriced-claude', kind: 'refused' }],
    });
    expect(fake.to('POST /v1/messages')).toHaveLength(1);
  });

  it('does not send a request a provider refused as invalid elsewhere', async () => {
    fake.script('POST /v1/chat/completions', { status: 400, json: { error: { message: 'bad tools' } } });
    await expect(withFallback([openai(), anthropic()]).chat({ messages })).rejects.toMatchObject({ kind: 'bad_request' });
    expect(fake.to('POST /v1/messages')).toHaveLength(0);
  });
});
