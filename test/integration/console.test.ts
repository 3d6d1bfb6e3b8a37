/**
 * The console's pages and forms through the app (no browser), on real Temporal and Docker: the
 * Content-Security-Policy, the session cookie's flags, the sign-in's origin check, a viewer who
 * sees an action but gets no buttons, forged posts (no token, another origin, a viewer's role)
 * refused without deciding anything, escaped parameters, and sessions that end on sign-out and on
 * revocation of their key.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startStack, submitShell, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let agentId: string;
const ORIGIN = 'http://localhost';

beforeAll(async () => {
  stack = await startStack();
  agentId = uniqueId('agt-console');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
});

afterAll(async () => {
  if (agentId) await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await stack?.stop();
});

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
const FORM = 'application/x-www-form-urlencoded';

type App = Stack['realApp'];

async function signIn(key: string, origin = ORIGIN, url = `${ORIGIN}/console/sign-in`, cookie = '', app: App = stack.realApp) {
  return app.request(url, { method: 'POST', headers: { 'content-type': FORM, origin, cookie }, body: form({ api_key: key }) });
}

/** A signed-in browser (one that held this cookie before): its cookie, and the CSRF token its pages carry. */
async function session(key: string, held?: string, app: App = stack.realApp) {
  const res = await signIn(key, ORIGIN, undefined, held, app);
  expect(res.status).toBe(303);
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  const page = await get(cookie, '/console/audit', app);
  const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
  return { cookie, csrf };
}

const get = (cookie: string, path: string, app: App = stack.realApp) => app.request(`${ORIGIN}${path}`, { headers: { cookie } });

function post(
  who: { cookie: string; csrf?: string },
  path: string,
  fields: Record<string, string>,
  origin = ORIGIN,
  app: App = stack.realApp,
) {
  return app.request(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { cookie: who.cookie, 'content-type': FORM, origin },
    body: form(who.csrf ? { ...fields, csrf: who.csrf } : fields),
  });
}

it('serves its pages under a strict Content-Security-Policy, with htmx and its script from its own origin', async () => {
  const res = await stack.realApp.request('/console/sign-in');
  expect(res.status).toBe(200);
  const csp = res.headers.get('content-security-policy')!;
  expect(csp).toContain("script-src 'self'");
  expect(csp).toContain("style-src 'self'");
  expect(csp).toContain("default-src 'none'");
  expect(csp).toContain("frame-ancestors 'none'");
  expect(csp).not.toContain('unsafe');
  const html = await res.text();
  expect(html).toContain('src="/console/assets/htmx.min.js"');
  expect(html).not.toMatch(/<script(?![^>]*\bsrc=)/);
  expect(html).not.toMatch(/https?:\/\//);
  const htmx = await stack.realApp.request('/console/assets/htmx.min.js');
  expect(htmx.status).toBe(200);
  expect(htmx.headers.get('content-type')).toContain('javascript');
  expect(await htmx.text()).toContain('htmx');
  expect((await stack.realApp.request('/console/assets/..%2F..%2Fapp.ts')).status).toBe(404);
});

it('turns a key into an opaque HttpOnly, SameSite=Strict session cookie (Secure under HTTPS), and refuses a sign-in from another site', async () => {
  const key = await stack.keyFor('viewer');
  const res = await signIn(key);
  expect(res.status).toBe(303);
  const cookie = res.headers.get('set-cookie')!;
  expect(cookie).toMatch(/^warden_console=[A-Za-z0-9_-]{43};/);
  expect(cookie).not.toContain(key);
  expect(cookie).toContain('HttpOnly');
  expect(cookie).toContain('SameSite=Strict');
  expect(cookie).toContain('Path=/console');
  expect(cookie).not.toContain('Secure');
  const secure = await signIn(key, 'https://warden.example', 'https://warden.example/console/sign-in');
  expect(secure.headers.get('set-cookie')).toContain('Secure');

  // Behind a proxy that ends TLS: Secure when the proxy is trusted (WARDEN_TRUST_PROXY) and says so, not when anyone does.
  const proxied = async (app: App, apiKey: string) =>
    (
      await app.request(`${ORIGIN}/console/sign-in`, {
        method: 'POST',
        headers: { 'content-type': FORM, origin: ORIGIN, 'x-forwarded-proto': 'https' },
        body: form({ api_key: apiKey }),
      })
    ).headers.get('set-cookie');
  expect(await proxied(stack.realApp, key)).not.toContain('Secure');
  const behindProxy = await startStack({ workers: false, config: { trustProxy: 1 } });
  try {
    expect(await proxied(behindProxy.realApp, await behindProxy.keyFor('viewer'))).toContain('Secure');
  } finally {
    await behindProxy.stop();
  }

  const forged = await signIn(key, 'https://evil.example');
  expect(forged.status).toBe(403);
  expect(forged.headers.get('set-cookie')).toBeNull();
  const wrong = await signIn('not-a-key');
  expect(wrong.status).toBe(401);
  expect(wrong.headers.get('set-cookie')).toBeNull();
  // Without a session, every page sends the browser to the sign-in page.
  const anonymous = await stack.realApp.request('/console/approvals');
  expect(anonymous.status).toBe(303);
  expect(anonymous.headers.get('location')).toBe('/console/sign-in');
});

it('shows a viewer the pending action with its escaped parameters but no buttons, and refuses forged decisions', async () => {
  const submitted = await submitShell(stack.api, agentId, 'echo "<script>alert(1)</script>"');
  expect(submitted.body.status).toBe('pending');
  const { id, params_hash } = submitted.body;

  const viewer = await session(await stack.keyFor('viewer'));
  const seen = await (await get(viewer.cookie, '/console/approvals')).text();
  expect(seen).toContain(id);
  expect(seen).toContain(params_hash);
  expect(seen).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
  expect(seen).not.toContain('<script>alert(1)');
  expect(seen).not.toMatch(/<button[^>]*>\s*(Approve|Reject)/);
  const approver = await session(await stack.keyFor('approver'));
  expect(await (await get(approver.cookie, '/console/approvals')).text()).toMatch(/<button[^>]*value="approve"[^>]*>\s*Approve/);

  const decision = { verdict: 'approve', params_hash, comment: 'forged' };
  // A viewer's own valid form: the API's role check refuses it.
  expect((await post(viewer, `/console/actions/${id}/decision`, decision)).status).toBe(403);
  // An approver's browser, driven by another site (no token), or posting from another origin with the token.
  expect((await post({ cookie: approver.cookie }, `/console/actions/${id}/decision`, decision)).status).toBe(403);
  expect((await post(approver, `/console/actions/${id}/decision`, decision, 'https://evil.example')).status).toBe(403);
  expect((await post({ ...approver, csrf: viewer.csrf }, `/console/actions/${id}/decision`, decision)).status).toBe(403);
  const still = await stack.api('GET', `/api/actions/${id}`);
  expect(still.body).toMatchObject({ status: 'pending', approvals: [] });

  const garbled = await post(approver, `/console/actions/${id}/decision`, { ...decision, verdict: 'maybe' });
  expect(await garbled.text()).toContain('not sent: choose Approve or Reject');
  const lost = await post(approver, `/console/actions/${id}/decision`, { ...decision, params_hash: 'abc' });
  expect(await lost.text()).toContain('not sent: params_hash');
  // The same approver's real form decides it.
  const decided = await post(approver, `/console/actions/${id}/decision`, { ...decision, verdict: 'reject', comment: 'not now' });
  expect(decided.status).toBe(200);
  expect(await decided.text()).toContain('rejected');
  expect((await stack.api('GET', `/api/actions/${id}`)).body.status).toBe('rejected');
});

it("lets an operator pause and resume an agent from its page, through the API's agent service", async () => {
  const operator = await session(await stack.keyFor('operator'));
  const page = await (await get(operator.cookie, `/console/agents/${agentId}`)).text();
  expect(page).toMatch(/<button[^>]*>Pause<\/button>/);
  const paused = await post(operator, `/console/agents/${agentId}/pause`, {});
  expect(paused.status).toBe(200);
  expect(await paused.text()).toContain(`Pause sent to ${agentId} (it was running)`);
  await waitForStatus(stack.api, agentId, ['paused']);
  expect((await post(operator, `/console/agents/${agentId}/resume`, {})).status).toBe(200);
  await waitForStatus(stack.api, agentId, ['running']);
  const viewer = await session(await stack.keyFor('viewer'));
  expect(await (await get(viewer.cookie, `/console/agents/${agentId}`)).text()).not.toMatch(/<button[^>]*>(Pause|Resume|Stop)<\/button>/);
});

it('filters the audit log by agent, kind and time, and exports it as JSON Lines', async () => {
  const viewer = await session(await stack.keyFor('viewer'));
  const created = await (await get(viewer.cookie, `/console/audit?agent_id=${agentId}&kind=agent.created`)).text();
  expect(created).toContain(agentId);
  expect(created).toContain('<code>agent.created</code>');
  // Its actor by the key's name (the stack's admin created the agent), with the key id beside it.
  expect(created).toMatch(/test admin<span class="muted"> \(key_[0-9a-f]{12}\)/);
  expect(created).not.toContain('<code>agent.status_changed</code>');
  expect(await (await get(viewer.cookie, `/console/audit?agent_id=${agentId}`)).text()).toContain('<code>agent.status_changed</code>');
  const future = await (await get(viewer.cookie, `/console/audit?agent_id=${agentId}&since=2999-01-01T00:00`)).text();
  expect(future).toContain('No audit entries match.');
  const exported = await get(viewer.cookie, '/console/audit/export');
  expect(exported.headers.get('content-type')).toBe('application/x-ndjson');
  expect(exported.headers.get('content-disposition')).toContain('warden-audit.jsonl');
  const lines = (await exported.text())
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l));
  expect(lines.some((e) => e.agent_id === agentId && e.kind === 'agent.created')).toBe(true);
});

it('lets an admin create a key, shown once, and revoke it; an approver gets neither form', async () => {
  const admin = await session(await stack.keyFor('admin'));
  const made = await post(admin, '/console/system/keys', { name: 'made in the console', role: 'viewer', person: 'Pat' });
  const key = /id="new-key"[^>]*value="([^"]+)"/.exec(await made.text())?.[1];
  expect(key).toBeTruthy();
  const id = (await stack.keys.authenticate(key!))!.key_id;
  expect(await (await get(admin.cookie, '/console/system')).text()).not.toContain(key!);
  expect((await post(admin, `/console/system/keys/${id}/revoke`, {})).status).toBe(200);
  expect(await stack.keys.authenticate(key!)).toBeNull();
  const odd = await post(admin, '/console/system/keys', { name: '<b>', role: 'viewer' });
  expect(await odd.text()).toContain('Not created: name: letters, digits, spaces and . _ @ -');
  const approver = await session(await stack.keyFor('approver'));
  const system = await (await get(approver.cookie, '/console/system')).text();
  expect(system).not.toMatch(/Create key|Revoke|Emergency stop<\/button>/);
  expect((await post(approver, '/console/system/keys', { name: 'sneaky', role: 'admin' })).status).toBe(403);
});

it('says the action expired when a decision comes too late', async () => {
  // A second API whose actions expire after a second, on the same Temporal server and workers.
  const quick = await startStack({ workers: false, config: { approvalExpirySeconds: 1 } });
  try {
    const submitted = await submitShell(quick.api, agentId, 'echo too late');
    expect(submitted.body.status).toBe('pending');
    const { id, params_hash } = submitted.body;
    await waitFor(`action ${id} to expire`, async () => (await quick.api('GET', `/api/actions/${id}`)).body.status === 'expired');
    const approver = await session(await quick.keyFor('approver'), undefined, quick.realApp);
    const late = await post(approver, `/console/actions/${id}/decision`, { verdict: 'approve', params_hash }, ORIGIN, quick.realApp);
    expect(late.status).toBe(200);
    expect(await late.text()).toContain(`expired: action ${id} is expired, not awaiting approval`);
  } finally {
    await quick.stop();
  }
});

it('asks the emergency stop for the typed word and a reason before anything stops', async () => {
  const admin = await session(await stack.keyFor('admin'));
  const unconfirmed = await post(admin, '/console/system/emergency-stop', { reason: 'drill', confirm: 'stop' });
  expect(await unconfirmed.text()).toContain('Not stopped: type STOP to confirm.');
  const reasonless = await post(admin, '/console/system/emergency-stop', { reason: '  ', confirm: 'STOP' });
  expect(await reasonless.text()).toContain('Not stopped: reason: say why');
  expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false);
  expect((await stack.api('GET', `/api/agents/${agentId}`)).body.status).toBe('running');
});

it("charges the console's decisions to the API's approve rate limit of the key", async () => {
  const limited = await startStack({ workers: false, config: { rateLimits: 'key.approve=2/min' } });
  try {
    const approver = await session(await limited.keyFor('approver'), undefined, limited.realApp);
    const decide = () => post(approver, '/console/actions/act-0000000000000000/decision', { verdict: 'approve' }, ORIGIN, limited.realApp);
    expect((await decide()).status).toBe(200);
    expect((await decide()).status).toBe(200);
    const third = await decide();
    expect(third.status).toBe(429);
    expect(await third.text()).toContain('too many approve requests from this API key');
  } finally {
    await limited.stop();
  }
});

it('answers an unknown page or action with a page that says so', async () => {
  const viewer = await session(await stack.keyFor('viewer'));
  const missing = await get(viewer.cookie, '/console/no-such-page');
  expect(missing.status).toBe(404);
  expect(await missing.text()).toContain('There is no console page at /console/no-such-page');
  const action = await get(viewer.cookie, '/console/actions/act-0000000000000000');
  expect(action.status).toBe(404);
  expect(await action.text()).toContain('action act-0000000000000000 not found');
});

it('ends a session on sign-out, and every session of a key the moment the key is revoked', async () => {
  const viewer = await session(await stack.keyFor('viewer'));
  expect((await get(viewer.cookie, '/console/audit')).status).toBe(200);
  // Signing in again in the same browser ends the session it held.
  const renewed = await session(await stack.keyFor('viewer'), viewer.cookie);
  expect((await get(viewer.cookie, '/console/audit')).status).toBe(303);
  const out = await post(renewed, '/console/sign-out', {});
  expect(out.status).toBe(200);
  expect(out.headers.get('set-cookie')).toMatch(/^warden_console=;/);
  expect((await get(renewed.cookie, '/console/audit')).status).toBe(303);

  const key = await stack.keys.create('console revokee', 'approver', null);
  const [first, second] = [await session(key.key), await session(key.key)];
  expect((await get(first.cookie, '/console/agents')).status).toBe(200);
  expect((await stack.api('DELETE', `/api/keys/${key.id}`)).status).toBe(200);
  for (const who of [first, second]) {
    expect((await get(who.cookie, '/console/agents')).status).toBe(303);
    expect((await post(who, '/console/system/emergency-stop', { reason: 'x', confirm: 'STOP' })).status).toBe(401);
  }
});
