/**
 * The HTTP API against a real Temporal server: bad input never gets a 5xx or a stack trace, every
 * error has one JSON shape that names what is wrong, and the OpenAPI document, docs page, health,
 * readiness, status and sandbox info say what they should.
 *
 * The stack without workers comes first: the control task queue is shared, and Temporal keeps
 * listing a worker as a poller for a while after it stops.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_STATUSES } from '../../domain/agent.js';
import { detectRuntimes } from '../../sandbox/docker-engine.js';
import { docker, startStack, STATUS_COMPONENTS, TEST_HOST, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

const engine = await detectRuntimes(docker);

type Stack = Awaited<ReturnType<typeof startStack>>;
type App = Stack['app'];

interface Raw {
  status: number;
  contentType: string;
  text: string;
  body: any;
}

/** A request with a raw body and headers; the body is parsed when it is JSON. */
async function raw(app: App, method: string, path: string, init: { body?: string; contentType?: string } = {}): Promise<Raw> {
  const headers: Record<string, string> = {};
  if (init.contentType) headers['content-type'] = init.contentType;
  const res = await app.request(path, { method, headers, body: init.body });
  const text = await res.text();
  const contentType = res.headers.get('content-type') ?? '';
  let body: unknown = null;
  if (contentType.includes('json') && text) body = JSON.parse(text);
  return { status: res.status, contentType, text, body };
}

const sendJson = (app: App, method: string, path: string, body: unknown) =>
  raw(app, method, path, { body: JSON.stringify(body), contentType: 'application/json' });

/**
 * An error answer: the given 4xx status, a JSON body of exactly {error: {code, message}} (plus the
 * validation issues), no stack trace, and a message that names what is wrong.
 */
function expectError(res: Raw, status: number, code: string, names?: RegExp | string) {
  expect(res.status, res.text).toBe(status);
  expect(res.contentType).toMatch(/^application\/json/);
  expect(Object.keys(res.body)).toEqual(['error']);
  const { error } = res.body;
  expect(Object.keys(error).sort()).toEqual(error.issues ? ['code', 'issues', 'message'] : ['code', 'message']);
  expect(error.code).toBe(code);
  expect(error.message).toBeTypeOf('string');
  expect(error.message.length).toBeGreaterThan(0);
  if (error.issues) {
    expect(error.issues.length).toBeGreaterThan(0);
    for (const issue of error.issues) expect(issue).toBeTypeOf('string');
  }
  if (names) expect(error.message).toMatch(names);
  // No stack trace, no source paths.
  expect(res.text).not.toMatch(/\n\s+at |\bat [\w.<>]+ \(|\.ts:\d+|node_modules/);
}

describe('without workers, on a host no worker serves', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: false, config: { dockerHostId: 'nobody' } });
  });
  afterAll(async () => stack?.stop());

  it('GET /healthz is 200 (liveness needs nothing)', async () => {
    const res = await raw(stack.app, 'GET', '/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true });
  });

  it('GET /readyz is 503 and names the sandbox worker nobody runs', async () => {
    const res = await raw(stack.app, 'GET', '/readyz');
    expect(res.status).toBe(503);
    expect(res.body.ready).toBe(false);
    const { components } = res.body;
    expect(Object.keys(components).sort()).toEqual(STATUS_COMPONENTS);
    expect(components.temporal).toMatchObject({ ok: true, detail: expect.stringMatching(/^server /) });
    expect(components.docker).toMatchObject({ ok: true, detail: expect.stringMatching(/^engine /) });
    expect(components.sandbox_worker.ok).toBe(false);
    expect(components.sandbox_worker.detail).toBe('no worker polls task queue warden-sandbox@nobody');
    for (const c of Object.values<any>(components)) expect(c.latency_ms).toBeGreaterThanOrEqual(0);
  });

  it('GET /api/status still answers 200, with the sandbox worker not ok', async () => {
    const res = await raw(stack.app, 'GET', '/api/status');
    expect(res.status).toBe(200);
    expect(res.body.components.sandbox_worker.ok).toBe(false);
    expect(res.body.components.sandbox_worker.detail).toMatch(/no worker polls task queue warden-sandbox@nobody/);
    expect(Object.keys(res.body.agents).sort()).toEqual([...AGENT_STATUSES].sort());
  });

  it('GET /api/agents/{id} answers 503 at once when no worker can answer for the agent', async () => {
    const id = uniqueId('noworker');
    // A task queue no worker polls, so no stray worker of another test can answer either.
    const handle = await stack.client.workflow.start('agentWorkflow', { workflowId: id, taskQueue: `nobody-polls-${id}`, args: [{}] });
    try {
      const started = Date.now();
      const res = await raw(stack.app, 'GET', `/api/agents/${id}`);
      expectError(res, 503, 'worker_unavailable', /is the Warden worker running/);
      expect(Date.now() - started).toBeLessThan(15_000);
    } finally {
      await handle.terminate('test cleanup: never meant to run');
    }
    // Closed before its first task, it has no state to query: a 404 that says so, never a 500.
    for (const [method, path] of [
      ['GET', `/api/agents/${id}`],
      ['POST', `/api/agents/${id}/stop`],
    ] as const) {
      expectError(await raw(stack.app, method, path), 404, 'not_found', /closed \(terminated or timed out\) before it first ran/);
    }
  });

  it('GET /api/sandbox reports this host, with no agents on it', async () => {
    const res = await raw(stack.app, 'GET', '/api/sandbox');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ host: 'nobody', available: true, agents: [] });
  });
});

describe('bad input never gets a 5xx', () => {
  let stack: Stack;
  let app: App;
  beforeAll(async () => {
    stack = await startStack({ workers: false, config: { dockerHostId: 'nobody' } });
    app = stack.app;
  });
  afterAll(async () => stack?.stop());

  const valid = { skill_id: 'shell' };

  describe('POST /api/agents', () => {
    it('malformed JSON is a 400 that says so', async () => {
      const res = await raw(app, 'POST', '/api/agents', { body: '{"skill_id": "shell",', contentType: 'application/json' });
      expectError(res, 400, 'bad_request', /json/i);
    });

    it('an empty body is a 400', async () => {
      expectError(await raw(app, 'POST', '/api/agents', { body: '', contentType: 'application/json' }), 400, 'bad_request', /json/i);
    });

    it('no body and no content type is a 400 naming the missing skill_id', async () => {
      expectError(await raw(app, 'POST', '/api/agents'), 400, 'invalid_request', /skill_id/);
    });

    it('a body that is not JSON is 415', async () => {
      const res = await raw(app, 'POST', '/api/agents', { body: 'skill_id=shell', contentType: 'text/plain' });
      expectError(res, 415, 'unsupported_media_type', /Content-Type: application\/json/i);
    });

    it.each([
      ['an array', [valid]],
      ['a string', 'shell'],
      ['a number', 42],
      ['null', null],
    ])('a body that is %s is a 400', async (_, body) => {
      expectError(await sendJson(app, 'POST', '/api/agents', body), 400, 'invalid_request', /^json: .*expected object/);
    });

    it('an unknown field is refused, named', async () => {
      const res = await sendJson(app, 'POST', '/api/agents', { ...valid, privileged: true });
      expectError(res, 400, 'invalid_request', /privileged/);
    });

    it('an unknown field inside resource_limits is refused, named', async () => {
      const res = await sendJson(app, 'POST', '/api/agents', { ...valid, resource_limits: { memory_mb: 64, cap_add: ['SYS_ADMIN'] } });
      expectError(res, 400, 'invalid_request', /resource_limits.*cap_add/);
    });

    it.each([
      ['skill_id', { skill_id: 5 }],
      ['skill_id', { skill_id: 'Shell!' }],
      ['skill_id', {}],
      ['resource_limits', { ...valid, resource_limits: 'big' }],
      ['resource_limits.memory_mb', { ...valid, resource_limits: { memory_mb: '512' } }],
      ['resource_limits.network_enabled', { ...valid, resource_limits: { network_enabled: 'yes' } }],
      ['idle_ttl_seconds', { ...valid, idle_ttl_seconds: '60' }],
      ['agent_id', { ...valid, agent_id: 12345 }],
    ])('a wrong type or value for %s is a 400 naming it', async (field, body) => {
      expectError(await sendJson(app, 'POST', '/api/agents', body), 400, 'invalid_request', `json.${field}: `);
    });

    it.each([
      ['memory_mb', 1],
      ['memory_mb', 1e9],
      ['memory_mb', 100.5],
      ['cpu_cores', 1000],
      ['cpu_cores', 0],
      ['max_processes', 0],
      ['max_processes', 1e6],
      ['disk_mb', -1],
      ['disk_mb', 0],
    ])('resource_limits.%s = %s is out of range: 400 naming it', async (field, value) => {
      const res = await sendJson(app, 'POST', '/api/agents', { ...valid, resource_limits: { [field]: value } });
      expectError(res, 400, 'invalid_request', `json.resource_limits.${field}: `);
    });

    it('reports every problem at once', async () => {
      const res = await sendJson(app, 'POST', '/api/agents', { skill_id: 'shell', resource_limits: { memory_mb: 1, cpu_cores: 1000 } });
      expectError(res, 400, 'invalid_request');
      expect(res.body.error.issues).toHaveLength(2);
      expect(res.body.error.message).toMatch(/memory_mb.*cpu_cores|cpu_cores.*memory_mb/);
    });

    it.each(['UPPER', '../x', 'a', 'ab', '-lead', 'has space', 'x'.repeat(64), ''])(
      'agent_id %j is a 400 naming agent_id',
      async (agent_id) => {
        expectError(
          await sendJson(app, 'POST', '/api/agents', { ...valid, agent_id }),
          400,
          'invalid_request',
          /json\.agent_id: agent id: 3-63 characters/,
        );
      },
    );

    it.each(['docker', 'RUNSC', 'gvisor', ''])('runtime %j is a 400 naming runtime and the choices', async (runtime) => {
      const res = await sendJson(app, 'POST', '/api/agents', { ...valid, runtime });
      expectError(res, 400, 'invalid_request', /json\.runtime: .*runsc.*kata.*runc/);
    });

    it('a refused create starts no agent', async () => {
      const id = uniqueId('refused');
      expect((await sendJson(app, 'POST', '/api/agents', { ...valid, agent_id: id, resource_limits: { memory_mb: 1 } })).status).toBe(400);
      expectError(await raw(app, 'GET', `/api/agents/${id}`), 404, 'not_found', id);
    });
  });

  describe('/api/agents/{id}', () => {
    it.each(['UPPER', 'a', 'x_y', '..%2Fx', '%00abc'])('GET with id %s is a 400 naming the id', async (id) => {
      expectError(await raw(app, 'GET', `/api/agents/${id}`), 400, 'invalid_request', /^param\.id: agent id: /);
    });

    it.each(['pause', 'resume', 'stop'])('POST %s with an invalid id is a 400', async (action) => {
      expectError(await raw(app, 'POST', `/api/agents/UPPER/${action}`), 400, 'invalid_request', /param\.id/);
    });

    it('GET an unknown, valid id is a 404 not_found naming it', async () => {
      const id = uniqueId('ghost');
      expectError(await raw(app, 'GET', `/api/agents/${id}`), 404, 'not_found', `agent ${id} not found`);
    });

    it.each(['pause', 'resume', 'stop'])('POST %s on an unknown, valid id is a 404 not_found', async (action) => {
      const id = uniqueId('ghost');
      expectError(await raw(app, 'POST', `/api/agents/${id}/${action}`), 404, 'not_found', id);
    });

    it('stop with force: "yes" is a 400 naming force', async () => {
      const res = await sendJson(app, 'POST', `/api/agents/${uniqueId('ghost')}/stop`, { force: 'yes' });
      expectError(res, 400, 'invalid_request', /json\.force: /);
    });

    it('stop with an unknown field is a 400 naming it', async () => {
      const res = await sendJson(app, 'POST', `/api/agents/${uniqueId('ghost')}/stop`, { force: true, now: true });
      expectError(res, 400, 'invalid_request', /now/);
    });

    it('stop with malformed JSON is a 400', async () => {
      const res = await raw(app, 'POST', `/api/agents/${uniqueId('ghost')}/stop`, { body: '{force', contentType: 'application/json' });
      expectError(res, 400, 'bad_request', /json/i);
    });
  });

  describe('GET /api/agents', () => {
    it.each([
      ['status=bogus', /query\.status: /],
      ['limit=0', /query\.limit: /],
      ['limit=1001', /query\.limit: /],
      ['limit=abc', /query\.limit: /],
      ['limit=1.5', /query\.limit: /],
      ['skill_id=x%27%20OR%201%3D1', /query\.skill_id: /],
      ['host=a%27%20OR%20%271%27%3D%271', /query\.host: /],
      ['status=running&status=paused', /query\.status: /],
      ['color=blue', /color/],
    ])('?%s is a 400 naming the parameter', async (query, names) => {
      expectError(await raw(app, 'GET', `/api/agents?${query}`), 400, 'invalid_request', names);
    });

    it('good filters answer 200 with a list', async () => {
      const res = await raw(app, 'GET', '/api/agents?status=running&limit=5&skill_id=shell&host=nobody');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ agents: [] });
    });
  });

  describe('routes that do not exist', () => {
    it.each([
      ['GET', '/nope'],
      ['GET', '/api'],
      ['POST', '/api/agents/some-agent/explode'],
      ['DELETE', '/api/agents/some-agent'],
      ['PUT', '/api/agents'],
      ['GET', '/docs/assets/..%2F..%2Fpackage.json'],
      ['GET', '/docs/assets/index.html'],
    ])('%s %s is a JSON 404', async (method, path) => {
      expectError(await raw(app, method, path), 404, 'not_found');
    });
  });
});

describe('GET /openapi.json and /docs', () => {
  let stack: Stack;
  let doc: any;
  beforeAll(async () => {
    stack = await startStack({ workers: false, config: { dockerHostId: 'nobody' } });
    const res = await raw(stack.app, 'GET', '/openapi.json');
    expect(res.status).toBe(200);
    expect(res.contentType).toMatch(/^application\/json/);
    doc = res.body;
  });
  afterAll(async () => stack?.stop());

  it('is an OpenAPI 3.1 document', () => {
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(doc.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
    expect(doc.paths).toBeTypeOf('object');
  });

  it('lists every route', () => {
    const routes = Object.entries<Record<string, unknown>>(doc.paths).flatMap(([path, ops]) =>
      Object.keys(ops)
        .filter((m) => ['get', 'post', 'put', 'patch', 'delete'].includes(m))
        .map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(routes.sort()).toEqual(
      [
        'POST /api/agents',
        'GET /api/agents',
        'GET /api/agents/{id}',
        'GET /api/agents/{id}/stats',
        'POST /api/agents/{id}/pause',
        'POST /api/agents/{id}/resume',
        'POST /api/agents/{id}/stop',
        'GET /api/sandbox',
        'GET /api/status',
        'GET /readyz',
        'POST /api/keys',
        'POST /api/keys/{id}/confirm',
        'GET /api/keys',
        'DELETE /api/keys/{id}',
        'POST /api/actions',
        'GET /api/actions/pending',
        'GET /api/actions/{id}',
        'POST /api/actions/{id}/approve',
        'GET /api/audit-logs',
        'GET /api/audit-logs/verify',
        'GET /api/skills',
        'POST /api/security/validate',
        'PUT /api/secrets/{name}',
        'GET /api/secrets',
        'DELETE /api/secrets/{name}',
        'POST /api/secrets/rotate',
        'POST /codec/decode',
        'POST /codec/encode',
        'POST /codec/session',
        'DELETE /codec/session',
        'POST /codec/sign-out',
        'POST /api/system/emergency-stop',
        'POST /api/system/resume',
        'GET /api/system/lockdown',
        'GET /api/providers',
        'GET /api/providers/{name}/health',
        'GET /api/providers/{name}/models',
        'POST /api/conversations',
        'GET /api/conversations',
        'GET /api/conversations/{id}',
        'GET /api/conversations/{id}/events',
        'POST /api/conversations/{id}/messages',
        'POST /api/conversations/{id}/cancel',
        'POST /api/conversations/{id}/end',
        'POST /api/chat',
        'GET /api/channels',
        'GET /api/channels/pairings',
        'POST /api/channels/pairings',
        'POST /api/channels/pairings/{platform_user}/confirm',
        'DELETE /api/channels/pairings/{platform_user}',
        'POST /channels/slack/events',
        'POST /channels/telegram/webhook',
      ].sort(),
    );
    expect(doc.security).toEqual([{ apiKey: [] }]);
    expect(doc.paths['/readyz'].get.security).toEqual([]); // probes need no key
    for (const ops of Object.values<any>(doc.paths)) {
      for (const op of Object.values<any>(ops)) {
        expect(op.summary).toBeTypeOf('string');
        expect(Object.keys(op.responses).length).toBeGreaterThan(0);
      }
    }
  });

  it('describes the create request, strict, with its limits', () => {
    const body = doc.paths['/api/agents'].post.requestBody;
    expect(body.required).toBe(true);
    const schema = body.content['application/json'].schema;
    expect(schema.type).toBe('object');
    expect(schema.required).toEqual(['skill_id']);
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties).sort()).toEqual([
      'agent_id',
      'budget',
      'host',
      'idle_ttl_seconds',
      'max_restarts',
      'resource_limits',
      'restart_policy',
      'runtime',
      'skill_id',
    ]);
    expect(schema.properties.runtime.enum).toEqual(['runsc', 'kata', 'runc']);
    expect(schema.properties.restart_policy.enum).toEqual(['never', 'on-failure']);
    expect(schema.properties.max_restarts).toMatchObject({ type: 'integer', minimum: 1, maximum: 10 });
    expect(schema.properties.agent_id.pattern).toBeTypeOf('string');
    expect(schema.properties.host.pattern).toBeTypeOf('string');
    expect(schema.properties.budget.additionalProperties).toBe(false);
    expect(schema.properties.budget.properties.tool_calls_per_turn).toMatchObject({ type: 'integer', minimum: 1, maximum: 1000 });
    const limits = schema.properties.resource_limits;
    expect(limits.additionalProperties).toBe(false);
    expect(limits.properties.memory_mb).toMatchObject({ type: 'integer', minimum: 32, maximum: 65536 });
    expect(limits.properties.cpu_cores).toMatchObject({ type: 'number', minimum: 0.05, maximum: 64 });
    expect(limits.properties.max_processes).toMatchObject({ minimum: 8 });
    expect(limits.properties.disk_mb).toMatchObject({ minimum: 1 });
    expect(doc.paths['/api/agents'].post.responses).toHaveProperty('201');
  });

  it('describes the stop body (optional), the id parameter and the list query', () => {
    const stop = doc.paths['/api/agents/{id}/stop'].post;
    expect(stop.requestBody.required).toBe(false);
    expect(stop.requestBody.content['application/json'].schema.properties.force.type).toBe('boolean');
    for (const path of ['/api/agents/{id}', '/api/agents/{id}/pause', '/api/agents/{id}/resume', '/api/agents/{id}/stop']) {
      const op = Object.values<any>(doc.paths[path])[0];
      const id = op.parameters.find((p: any) => p.name === 'id');
      expect(id, path).toMatchObject({ in: 'path', required: true, schema: { type: 'string', pattern: expect.any(String) } });
    }
    const query = doc.paths['/api/agents'].get.parameters;
    expect(query.map((p: any) => p.name).sort()).toEqual(['host', 'limit', 'skill_id', 'status']);
    expect(query.every((p: any) => p.in === 'query')).toBe(true);
    expect(query.find((p: any) => p.name === 'status').schema.enum).toEqual([...AGENT_STATUSES]);
  });

  it('documents the error shape on error responses', () => {
    const err = doc.paths['/api/agents'].post.responses['400'].content['application/json'].schema;
    const shape = err.$ref ? doc.components.schemas[err.$ref.split('/').pop()] : err;
    expect(shape.properties.error.required).toEqual(expect.arrayContaining(['code', 'message']));
  });

  it('GET /docs is an HTML page that loads the document through its own assets', async () => {
    const page = await raw(stack.app, 'GET', '/docs');
    expect(page.status).toBe(200);
    expect(page.contentType).toMatch(/^text\/html/);
    const refs = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    expect(refs).toContain('/docs/assets/swagger-ui-bundle.js');
    expect(refs).toContain('/docs/assets/swagger-ui.css');
    expect(
      refs.every((r) => r.startsWith('/docs/assets/')),
      'no CDN',
    ).toBe(true);
    // The init script the page loads points swagger-ui at /openapi.json.
    const init = await raw(stack.app, 'GET', '/docs/assets/docs-init.js');
    expect(page.text.includes('/openapi.json') || init.text.includes("'/openapi.json'")).toBe(true);
    expect(init.text).toContain("url: '/openapi.json'");
  });

  it.each([
    ['/docs/assets/swagger-ui-bundle.js', /^text\/javascript/, 100_000],
    ['/docs/assets/swagger-ui.css', /^text\/css/, 10_000],
    ['/docs/assets/swagger-ui-standalone-preset.js', /^text\/javascript/, 10_000],
    ['/docs/assets/docs-init.js', /^text\/javascript/, 10],
    ['/docs/assets/favicon-32x32.png', /^image\/png/, 100],
  ])('%s is served as %s', async (path, type, minBytes) => {
    const res = await stack.app.request(path);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(type);
    expect((await res.arrayBuffer()).byteLength).toBeGreaterThan(minBytes);
  });

  it('the swagger-ui bundle is the real one', async () => {
    const res = await raw(stack.app, 'GET', '/docs/assets/swagger-ui-bundle.js');
    expect(res.text).toContain('SwaggerUIBundle');
  });
});

describe('require_sandbox', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack({ workers: false, config: { requireSandbox: true, dockerHostId: 'nobody' } });
  });
  afterAll(async () => stack?.stop());

  it('POST /api/agents with runtime runc is a 422 sandbox_required, and starts nothing', async () => {
    const id = uniqueId('runc-refused');
    const res = await sendJson(stack.app, 'POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' });
    expectError(res, 422, 'sandbox_required', /require_sandbox.*runc/);
    expectError(await raw(stack.app, 'GET', `/api/agents/${id}`), 404, 'not_found');
  });

  it('GET /api/sandbox says require_sandbox is on', async () => {
    const res = await raw(stack.app, 'GET', '/api/sandbox');
    expect(res.status).toBe(200);
    expect(res.body.require_sandbox).toBe(true);
  });
});

describe('with workers running', () => {
  let stack: Stack;
  beforeAll(async () => {
    stack = await startStack();
  });
  afterAll(async () => stack?.stop());

  it('GET /readyz becomes 200 with every component ok', async () => {
    // A just-started worker shows as a poller once its first poll reaches the server.
    const res = await waitFor(
      'readiness',
      async () => {
        const r = await raw(stack.app, 'GET', '/readyz');
        return r.status === 200 ? r : undefined;
      },
      30_000,
    );
    expect(res.status, res.text).toBe(200);
    expect(res.body.ready).toBe(true);
    expect(Object.keys(res.body.components).sort()).toEqual(STATUS_COMPONENTS);
    for (const [name, c] of Object.entries<any>(res.body.components)) {
      expect(c.ok, name).toBe(true);
      expect(c.latency_ms).toBeGreaterThanOrEqual(0);
    }
    expect(res.body.components.sandbox_worker.detail).toMatch(/^\d+ poller\(s\)$/);
  });

  it('GET /api/status lists the components with latency and agents by status', async () => {
    const res = await raw(stack.app, 'GET', '/api/status');
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.components).sort()).toEqual(STATUS_COMPONENTS);
    for (const c of Object.values<any>(res.body.components)) {
      expect(c).toMatchObject({ ok: true, latency_ms: expect.any(Number) });
      expect(c.detail).toBeTypeOf('string');
    }
    expect(Object.keys(res.body.agents).sort()).toEqual([...AGENT_STATUSES].sort());
    for (const n of Object.values<any>(res.body.agents)) expect(Number.isInteger(n) && n >= 0).toBe(true);
    expect(res.body.max_agents).toBe(stack.config.maxAgents);
  });

  it('GET /api/sandbox shows the host, its runtime and capacity', async () => {
    const res = await raw(stack.app, 'GET', '/api/sandbox');
    expect(res.status).toBe(200);
    const expected = engine.names.runsc ? 'runsc' : engine.names.kata ? 'kata' : 'runc';
    expect(res.body).toMatchObject({
      host: TEST_HOST,
      available: true,
      runtime: expected,
      require_sandbox: false,
      max_agents: stack.config.maxAgents,
      current_agents: expect.any(Number),
    });
    expect([...res.body.runtimes].sort()).toEqual(Object.keys(engine.names).sort());
    expect(res.body.runtimes).toContain('runc');
    if (expected === 'runc') expect(res.body.warning).toMatch(/shares the host kernel/);
    else expect(res.body.warning).toBeNull();
    expect(res.body.current_agents).toBeGreaterThanOrEqual(0);
    expect(res.body.current_agents).toBeLessThanOrEqual(res.body.max_agents);
  });

  it('this host has gVisor', () => {
    // The suite's host registers runsc; the sandbox info above then reports it.
    expect(engine.names.runsc).toBe('runsc');
  });

  it('an agent: bad stop bodies, a duplicate id and a second stop get 4xx, never 5xx', async () => {
    const id = uniqueId('api');
    const created = await sendJson(stack.app, 'POST', '/api/agents', {
      skill_id: 'shell',
      agent_id: id,
      resource_limits: { memory_mb: 64 },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body).toMatchObject({ id, status: 'provisioning', host: TEST_HOST });
    await waitForStatus(stack.api, id, ['running']);

    const sandbox = await raw(stack.app, 'GET', '/api/sandbox');
    expect(sandbox.body.current_agents).toBeGreaterThanOrEqual(1);
    expect(sandbox.body.agents.map((a: any) => a.id)).toContain(id);

    expectError(await sendJson(stack.app, 'POST', '/api/agents', { skill_id: 'shell', agent_id: id }), 409, 'agent_exists', id);
    expectError(await sendJson(stack.app, 'POST', `/api/agents/${id}/stop`, { force: 'yes' }), 400, 'invalid_request', /json\.force/);
    expect((await raw(stack.app, 'GET', `/api/agents/${id}`)).body.status).toBe('running');

    // No body: a graceful stop.
    const stopped = await raw(stack.app, 'POST', `/api/agents/${id}/stop`);
    expect(stopped.status, stopped.text).toBe(202);
    await waitForStatus(stack.api, id, ['stopped']);
    expectError(await raw(stack.app, 'POST', `/api/agents/${id}/stop`), 409, 'agent_not_active', id);
    expectError(await raw(stack.app, 'POST', `/api/agents/${id}/pause`), 409, 'agent_not_active', id);
    expectError(await sendJson(stack.app, 'POST', '/api/agents', { skill_id: 'shell', agent_id: id }), 409, 'agent_exists', id);
  });
});
