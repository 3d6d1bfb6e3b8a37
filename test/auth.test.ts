/**
 * API keys and roles: the authorization matrix over every /api and /codec route, key creation (shown
 * once), revocation, and keys stored only as hashes.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyStore } from '../api/key-store.js';
import { ROLES, type Role } from '../domain/roles.js';
import { startStack } from './helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const keys: Record<Role | 'revoked', string> = {} as never;

beforeAll(async () => {
  stack = await startStack();
  for (const role of ROLES) keys[role] = stack.keyFor(role);
  const revoked = stack.keys.create('revoked admin', 'admin', null);
  stack.keys.revoke(revoked.id);
  keys.revoked = revoked.key;
});
afterAll(async () => stack?.stop());

async function call(key: string | null, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = {};
  if (key !== null) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await stack.realApp.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  const json = res.headers.get('content-type')?.startsWith('application/json') ? JSON.parse(text) : {};
  return { status: res.status, body: json as { error?: { code: string; message: string } } };
}

// Each route, the least role it needs, and the status an allowed caller gets for this request.
const ROUTES: Array<[method: string, path: string, body: unknown, needs: Role, allowed: number]> = [
  ['GET', '/api/agents', undefined, 'viewer', 200],
  ['GET', '/api/agents/no-such-agent', undefined, 'viewer', 404],
  ['GET', '/api/agents/no-such-agent/stats', undefined, 'viewer', 404],
  ['GET', '/api/sandbox', undefined, 'viewer', 200],
  ['GET', '/api/status', undefined, 'viewer', 200],
  ['POST', '/api/agents', {}, 'operator', 400],
  ['POST', '/api/agents/no-such-agent/pause', undefined, 'operator', 404],
  ['POST', '/api/agents/no-such-agent/resume', undefined, 'operator', 404],
  ['POST', '/api/agents/no-such-agent/stop', {}, 'operator', 404],
  ['POST', '/api/actions', {}, 'operator', 400],
  ['GET', '/api/actions/pending', undefined, 'viewer', 200],
  ['GET', '/api/actions/act-0000000000000000', undefined, 'viewer', 404],
  ['POST', '/api/actions/act-0000000000000000/approve', {}, 'approver', 400],
  ['GET', '/api/audit-logs', undefined, 'viewer', 200],
  ['GET', '/api/audit-logs/verify', undefined, 'viewer', 200],
  ['GET', '/api/audit-logs/export', undefined, 'viewer', 200],
  ['GET', '/api/skills', undefined, 'viewer', 200],
  ['POST', '/api/security/validate', { text: 'list the files' }, 'viewer', 200],
  ['GET', '/api/keys', undefined, 'admin', 200],
  ['POST', '/api/keys', {}, 'admin', 400],
  ['DELETE', '/api/keys/key_000000000000', undefined, 'admin', 404],
  ['POST', '/api/keys/key_000000000000/confirm', undefined, 'admin', 404],
  ['GET', '/api/secrets', undefined, 'admin', 200],
  ['PUT', '/api/secrets/MATRIX_SECRET', {}, 'admin', 400],
  ['DELETE', '/api/secrets/NO_SUCH_SECRET', undefined, 'admin', 404],
  ['POST', '/api/secrets/rotate', undefined, 'admin', 200],
  ['POST', '/codec/decode', { payloads: [] }, 'viewer', 200],
  // The Temporal CLI asks to encode nothing before each query: a viewer may; encoding anything is an admin's.
  ['POST', '/codec/encode', { payloads: [] }, 'viewer', 200],
  ['POST', '/codec/encode', {}, 'viewer', 200],
  ['POST', '/codec/encode', { payloads: [{ metadata: { encoding: btoa('json/plain') }, data: btoa('"forged"') }] }, 'admin', 200],
  ['POST', '/api/system/emergency-stop', {}, 'admin', 400],
  ['POST', '/api/system/resume', {}, 'admin', 400],
  ['GET', '/api/system/lockdown', undefined, 'viewer', 200],
];

describe.each(ROUTES)('%s %s', (method, path, body, needs, allowed) => {
  it('is 401 without a key, with a malformed header, and with a revoked key', async () => {
    const none = await call(null, method, path, body);
    expect(none.status).toBe(401);
    expect(none.body.error).toEqual({ code: 'unauthorized', message: 'send an API key: Authorization: Bearer <key>' });
    expect((await call('wk_not-a-key', method, path, body)).body.error?.message).toBe('the API key is unknown or revoked');
    expect((await call(keys.revoked, method, path, body)).status).toBe(401);
  });

  it.each(ROLES)(`role %s: allowed when at least ${needs}, else 403`, async (role) => {
    const res = await call(keys[role], method, path, body);
    if (ROLES.indexOf(role) >= ROLES.indexOf(needs)) {
      expect(res.status).toBe(allowed);
    } else {
      expect(res.status).toBe(403);
      expect(res.body.error?.message).toBe(`this needs the ${needs} role; the key test ${role} has ${role}`);
    }
  });
});

it('covers exactly the routes of the OpenAPI document, each with an expected role', async () => {
  const doc = (await (await stack.realApp.request('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
  const METHODS = ['get', 'put', 'post', 'delete', 'patch', 'head', 'options'];
  const documented = Object.entries(doc.paths).flatMap(([template, item]) =>
    Object.entries(item).filter(([m]) => METHODS.includes(m)).map(([m, op]) => ({
      route: `${m.toUpperCase()} ${template}`,
      template,
      method: m.toUpperCase(),
      open: Array.isArray((op as { security?: unknown[] }).security) && (op as { security: unknown[] }).security.length === 0,
    })),
  );
  // The routes the document declares open (security: []): readiness, and the codec's sign-in and sign-out, which take the key in the request itself.
  expect(documented.filter((d) => d.open).map((d) => d.route).sort()).toEqual(['DELETE /codec/session', 'GET /readyz', 'POST /codec/session', 'POST /codec/sign-out']);
  // A documented path template as a pattern for concrete paths: /api/agents/{id} matches /api/agents/x.
  const matches = (template: string, path: string) =>
    new RegExp(`^${template.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`).test(path);
  const covered = new Set<string>();
  const undocumented: string[] = [];
  for (const [method, path] of ROUTES) {
    const exact = documented.filter((d) => d.method === method && d.template === path); // a fixed path wins over a template
    const hits = exact.length ? exact : documented.filter((d) => d.method === method && matches(d.template, path));
    if (hits.length > 1) throw new Error(`${method} ${path} matches several documented routes: ${hits.map((d) => d.route).join(', ')}`);
    if (hits[0]) covered.add(hits[0].route);
    else undocumented.push(`${method} ${path}`);
  }
  // Served but not in the document: the export streams NDJSON, not a JSON answer.
  expect(undocumented, 'rows of ROUTES that are no documented route').toEqual(['GET /api/audit-logs/export']);
  const missing = documented.filter((d) => !d.open && !covered.has(d.route)).map((d) => d.route);
  expect(missing, 'documented routes with no row in ROUTES (add the least role each needs)').toEqual([]);
});

it('probes and docs need no key', async () => {
  // /metrics too, unless WARDEN_METRICS_TOKEN is set (test/metrics.test.ts).
  for (const path of ['/healthz', '/openapi.json', '/docs', '/metrics']) expect((await stack.realApp.request(path)).status).toBe(200);
});

it('an admin creates a key that works at once, is shown once, and stops working when revoked', async () => {
  const created = await call(keys.admin, 'POST', '/api/keys', { name: 'ci bot', role: 'operator' });
  expect(created.status).toBe(201);
  const made = created.body as unknown as { id: string; key: string; role: string; created_by: string };
  expect(made.key).toMatch(/^wk_[A-Za-z0-9_-]{43}$/);
  expect(made.role).toBe('operator');
  expect(made.created_by).toMatch(/^key_/);

  expect((await call(made.key, 'GET', '/api/agents')).status).toBe(200);
  const listed = await call(keys.admin, 'GET', '/api/keys');
  expect(JSON.stringify(listed.body)).not.toContain(made.key);
  expect(JSON.stringify(listed.body)).toContain(made.id);

  expect(stack.audit.list({ kind: 'key.created' }).find((e) => e.details.id === made.id)).toMatchObject({
    actor: made.created_by,
    details: { name: 'ci bot', role: 'operator' },
  });
  const revoked = await call(keys.admin, 'DELETE', `/api/keys/${made.id}`);
  expect(revoked.status).toBe(200);
  expect((revoked.body as unknown as { revoked_at: string }).revoked_at).not.toBeNull();
  expect((await call(made.key, 'GET', '/api/agents')).status).toBe(401);
  expect(stack.audit.list({ kind: 'key.revoked' }).some((e) => e.details.id === made.id)).toBe(true);
  expect(JSON.stringify(stack.audit.list({ limit: 1000 }))).not.toContain(made.key);
});

it('refuses bad key requests with the reason', async () => {
  const res = await call(keys.admin, 'POST', '/api/keys', { name: 'x', role: 'root' });
  expect(res.status).toBe(400);
  expect(res.body.error?.message).toMatch(/json\.role/);
  const extra = await call(keys.admin, 'POST', '/api/keys', { name: 'x', role: 'viewer', key: 'chosen' });
  expect(extra.status).toBe(400);
});

it('stores only hashes: the key never appears in the database file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-keys-'));
  try {
    const store = KeyStore.open(join(dir, 'warden.db'));
    const { key } = store.create('someone', 'viewer', null);
    store.close();
    for (const file of ['warden.db', 'warden.db-wal']) {
      const bytes = (() => {
        try {
          return readFileSync(join(dir, file));
        } catch {
          return Buffer.alloc(0);
        }
      })();
      expect(bytes.includes(Buffer.from(key))).toBe(false);
      expect(bytes.includes(Buffer.from(key.slice(3, 20)))).toBe(false);
    }
    const reopened = KeyStore.open(join(dir, 'warden.db'));
    expect(reopened.authenticate(key)).toMatchObject({ name: 'someone', role: 'viewer' });
    expect(reopened.authenticate(`${key}x`)).toBeNull();
    reopened.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
