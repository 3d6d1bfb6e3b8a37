/**
 * API hardening over real HTTP (@hono/node-server, a Temporal server, no workers needed): security
 * headers on the API and the docs page, CORS closed unless the origin is configured, body limits
 * by Content-Length and by counting a chunked body, JSON only, unknown fields named, rate limits
 * with their headers and a 429 that matches the OpenAPI document, failed authentications (API and
 * codec server) limited per address without refusing valid keys, X-Forwarded-For believed only
 * from a trusted proxy, and 503 (declared) when the Temporal server cannot be reached.
 */
import { request as httpRequest } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import pino from 'pino';
import { Client, Connection } from '@temporalio/client';
import { createApp } from '../../api/app.js';
import { KeyStore } from '../../stores/key-store.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { loadPolicy } from '../../domain/policy.js';
import { SKILLS } from '../../skills/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../domain/config.js';
import { validate, type OpenApiDocument } from '../support/openapi-schema.js';
import { docker, startStack, testConfig, testPayloadCodec } from '../support/helpers.js';
import { freePort } from '../support/global-setup.js';

interface Served {
  stack: Awaited<ReturnType<typeof startStack>>;
  server: ServerType;
  url: string;
  admin: string;
}

async function served(config: Partial<Config>): Promise<Served> {
  const stack = await startStack({ workers: false, config });
  let server!: ServerType;
  const url = await new Promise<string>((resolve) => {
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve(`http://127.0.0.1:${info.port}`));
  });
  return { stack, server, url, admin: await stack.keyFor('admin') };
}

async function close(s?: Served) {
  if (!s) return;
  await new Promise((resolve) => s.server.close(resolve));
  await s.stack.stop();
}

/** A raw HTTP request, so the body can be sent chunked (no Content-Length). */
function chunked(url: string, path: string, headers: Record<string, string>, chunks: string[]) {
  return new Promise<{ status: number; body: any }>((resolve, reject) => {
    const req = httpRequest(`${url}${path}`, { method: 'POST', headers: { ...headers, 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) }));
    });
    req.on('error', reject);
    for (const chunk of chunks) req.write(chunk);
    req.end();
  });
}

describe('with the default settings', () => {
  let s: Served;
  beforeAll(async () => {
    s = await served({ rateLimits: 'read=1000/min,write=1000/min,auth_failure=1000/min', maxBodyBytes: 1024 * 1024 });
  });
  afterAll(async () => close(s));
  const auth = () => ({ authorization: `Bearer ${s.admin}` });

  it('sends nosniff, frame DENY, no-referrer and a CSP that allows nothing on API answers', async () => {
    for (const path of ['/api/skills', '/openapi.json', '/healthz', '/api/nowhere']) {
      const res = await fetch(`${s.url}${path}`, { headers: auth() });
      expect(res.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(res.headers.get('x-frame-options'), path).toBe('DENY');
      expect(res.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(res.headers.get('content-security-policy'), path).toBe(
        "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
      );
      expect(res.headers.get('x-powered-by')).toBeNull();
    }
  });

  it('lets the docs page load swagger-ui from its own origin, and nothing else', async () => {
    const res = await fetch(`${s.url}/docs`);
    expect(res.status).toBe(200);
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toMatch(/unsafe-eval|\*/);
    // Every script the page loads is our own, and none is inline.
    const html = await res.text();
    expect(html.match(/<script[^>]*>[^<]+<\/script>/)).toBeNull();
    for (const src of html.matchAll(/src="([^"]+)"/g)) expect((await fetch(`${s.url}${src[1]}`)).status).toBe(200);
  });

  it('is closed to browsers: no Access-Control-Allow-Origin for any origin, preflight included', async () => {
    const simple = await fetch(`${s.url}/api/skills`, { headers: { ...auth(), origin: 'https://evil.example' } });
    expect(simple.status).toBe(200);
    expect(simple.headers.get('access-control-allow-origin')).toBeNull();
    const preflight = await fetch(`${s.url}/api/agents`, {
      method: 'OPTIONS',
      headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(preflight.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('413 for a body over the limit, by Content-Length and when sent chunked', async () => {
    const big = JSON.stringify({ text: 'x'.repeat(1024 * 1024) });
    const res = await fetch(`${s.url}/api/security/validate`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'application/json' },
      body: big,
    });
    expect(res.status).toBe(413);
    expect(await res.json()).toEqual({
      error: { code: 'payload_too_large', message: 'the request body is larger than the limit of 1048576 bytes' },
    });
    const streamed = await chunked(s.url, '/api/security/validate', { ...auth(), 'content-type': 'application/json' }, [
      big.slice(0, 600_000),
      big.slice(600_000),
    ]);
    expect(streamed.status).toBe(413);
    // Under the limit, chunked, it is read and answered.
    const small = await chunked(s.url, '/api/security/validate', { ...auth(), 'content-type': 'application/json' }, [
      '{"text": "list',
      ' the files"}',
    ]);
    expect(small).toMatchObject({ status: 200, body: { verdict: 'clean' } });
  });

  it('415 for a body that is not declared as JSON, naming the type it got', async () => {
    const res = await fetch(`${s.url}/api/security/validate`, {
      method: 'POST',
      headers: { ...auth(), 'content-type': 'text/plain' },
      body: '{"text":"x"}',
    });
    expect(res.status).toBe(415);
    expect((await res.json()).error).toEqual({
      code: 'unsupported_media_type',
      message: 'send the body as JSON with Content-Type: application/json (got text/plain)',
    });
    // A POST without a body needs no content type.
    const pause = await fetch(`${s.url}/api/agents/no-such-agent/pause`, { method: 'POST', headers: auth() });
    expect(pause.status).toBe(404);
  });

  it('400 naming an unknown field, and for malformed JSON', async () => {
    const post = (body: string) =>
      fetch(`${s.url}/api/security/validate`, { method: 'POST', headers: { ...auth(), 'content-type': 'application/json' }, body });
    const extra = await post('{"text": "x", "shell": "/bin/sh"}');
    expect(extra.status).toBe(400);
    expect((await extra.json()).error.message).toMatch(/json: Unrecognized key: "shell"/);
    const malformed = await post('{"text": ');
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error).toEqual({ code: 'bad_request', message: 'Malformed JSON in request body' });
  });

  it('sends the RateLimit headers on every /api answer', async () => {
    const res = await fetch(`${s.url}/api/skills`, { headers: auth() });
    expect(res.headers.get('ratelimit-limit')).toBe('1000');
    expect(Number(res.headers.get('ratelimit-remaining'))).toBeLessThan(1000);
    expect(res.headers.get('ratelimit-policy')).toBe('1000;w=60');
  });
});

describe('with CORS origins, tight rate limits and a trusted proxy', () => {
  let s: Served;
  let doc: OpenApiDocument;
  beforeAll(async () => {
    s = await served({
      corsOrigins: 'https://console.example, https://ops.example',
      rateLimits: 'read=3/min,auth_failure=2/min',
      trustProxy: 1,
    });
    doc = (await (await fetch(`${s.url}/openapi.json`)).json()) as OpenApiDocument;
  });
  afterAll(async () => close(s));

  it('allows exactly the configured origins, with the headers a browser client needs', async () => {
    const preflight = await fetch(`${s.url}/api/agents`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://ops.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type',
      },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://ops.example');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toBe('authorization,content-type');
    const other = await fetch(`${s.url}/api/skills`, { headers: { origin: 'https://evil.example', 'x-forwarded-for': '192.0.2.50' } });
    expect(other.headers.get('access-control-allow-origin')).toBeNull();
    const allowed = await fetch(`${s.url}/api/skills`, {
      headers: { authorization: `Bearer ${s.admin}`, origin: 'https://console.example', 'x-forwarded-for': '192.0.2.51' },
    });
    expect(allowed.headers.get('access-control-allow-origin')).toBe('https://console.example');
    expect(allowed.headers.get('access-control-expose-headers')).toMatch(/RateLimit-Remaining/);
  });

  it('answers 429 as the OpenAPI document declares, with Retry-After, per client address', async () => {
    const key = await s.stack.keyFor('operator');
    const get = (from: string) =>
      fetch(`${s.url}/api/skills`, { headers: { authorization: `Bearer ${key}`, 'x-forwarded-for': `10.9.9.9, ${from}` } });
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get('203.0.113.10')).status);
    expect(statuses).toEqual([200, 200, 200, 429]);
    const refused = await get('203.0.113.10');
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(refused.headers.get('ratelimit-remaining')).toBe('0');
    const declared = doc.paths['/api/skills']!.get.responses['429'];
    expect(validate(doc, declared.content['application/json'].schema, await refused.json())).toEqual([]);
    // The key has its own bucket of 3: another address with another key is not affected.
    const other = await fetch(`${s.url}/api/skills`, {
      headers: { authorization: `Bearer ${await s.stack.keyFor('viewer')}`, 'x-forwarded-for': '203.0.113.11' },
    });
    expect(other.status).toBe(200);
  });

  it("limits an address's failed authentications, on the API and the codec server, never its valid keys", async () => {
    const from = { 'x-forwarded-for': '198.51.100.77' };
    const api = (key: string) => fetch(`${s.url}/api/agents`, { headers: { authorization: `Bearer ${key}`, ...from } });
    const decode = (key: string) =>
      fetch(`${s.url}/codec/decode`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...from },
        body: '{"payloads":[]}',
      });
    // One failure on each: the codec server's count is the address's count.
    expect((await api('wk_wrong')).status).toBe(401);
    expect((await decode('wk_wrong')).status).toBe(401);
    for (const refused of [await api('wk_wrong'), await decode('wk_wrong')]) {
      expect(refused.status).toBe(429);
      expect((await refused.json()).error.message).toMatch(/^too many failed authentications from this address; retry in \d+ s$/);
    }
    const session = await fetch(`${s.url}/codec/session`, { method: 'POST', headers: { authorization: 'Bearer wk_wrong', ...from } });
    expect(session.status).toBe(429);
    // The same address's valid keys go on working.
    expect((await api(s.admin)).status).toBe(200);
    expect((await decode(await s.stack.keyFor('viewer'))).status).toBe(200);
  });
});

describe('when the Temporal server cannot be reached', () => {
  it('answers 503 temporal_unavailable, as the document declares, instead of a 500', async () => {
    // A lazy connection to a port nobody listens on; no retry interceptor, so it fails at once.
    const connection = Connection.lazy({ address: `127.0.0.1:${await freePort()}`, interceptors: [] });
    const keys = KeyStore.open(':memory:');
    const app = createApp({
      client: new Client({ connection }),
      docker,
      config: testConfig(),
      logger: pino({ level: 'silent' }),
      keys,
      audit: {} as AuditStore,
      policy: loadPolicy(SKILLS),
      payloadCodec: testPayloadCodec(),
    });
    const doc = (await (await app.request('/openapi.json')).json()) as OpenApiDocument;
    const headers = { authorization: `Bearer ${(await keys.create('admin', 'admin', null)).key}` };
    for (const [path, route] of [
      ['/api/agents', '/api/agents'],
      ['/api/actions/pending', '/api/actions/pending'],
    ] as const) {
      const res = await app.request(path, { headers });
      expect(res.status, path).toBe(503);
      const body = await res.json();
      expect(body.error).toEqual({
        code: 'temporal_unavailable',
        message: 'the Temporal server cannot be reached; try again when it is back',
      });
      expect(validate(doc, doc.paths[route]!.get.responses['503'].content['application/json'].schema, body)).toEqual([]);
    }
    await keys.close();
    await connection.close();
  });
});
