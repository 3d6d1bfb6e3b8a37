/**
 * The console in a real browser (Debian's chromium, driven by playwright-core) against the API
 * served over HTTP, with real Temporal workers and Docker sandboxes: people sign in with their
 * keys, an action appears on the Approvals page without a reload, approving runs it once and
 * shows its output, the requester's own approval is refused, a critical action needs a second
 * person in a second browser, a comment being typed outlives the list's refreshes, a viewer has
 * no buttons and a forged post fails (from the page and from another site), an operator pauses and
 * resumes an agent, the audit page filters, verifies and exports, an admin creates a key (shown
 * once) and revokes it, the emergency stop from the System page stops every agent, and signing
 * out ends the session. Each page is saved as a screenshot in .warden/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createServer, type Server } from 'node:http';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { launchChromium, signedIn } from '../support/browser.js';
import { freePort } from '../support/global-setup.js';
import { startStack, submitShellAs, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let server: ServerType;
let attacker: Server;
let browser: Browser;
let base: string;
let attackerPort: number;
const agents: string[] = [];
const SCREENSHOTS = join(PROJECT_ROOT, '.warden/screenshots');
const keys = {} as Record<'admin' | 'alice' | 'bob' | 'operator' | 'viewer', string>;

beforeAll(async () => {
  stack = await startStack();
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await new Promise<void>((resolve) => {
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port }, () => resolve());
  });
  keys.admin = (await stack.keys.create('Ada (admin)', 'admin', null)).key;
  keys.alice = (await stack.keys.create('Alice', 'approver', null)).key;
  keys.bob = (await stack.keys.create('Bob', 'approver', null)).key;
  keys.operator = (await stack.keys.create('Otto', 'operator', null)).key;
  keys.viewer = (await stack.keys.create('Vera', 'viewer', null)).key;
  for (let i = 0; i < 2; i++) {
    const id = uniqueId('agt-browser');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
    agents.push(id);
  }
  for (const id of agents) await waitForStatus(stack.api, id, ['running']);
  // Another site, whose page posts a form to the console as soon as it opens.
  attackerPort = await freePort();
  attacker = createServer((req, res) => {
    const target = new URL(req.url!, 'http://x').searchParams.get('target')!;
    res.setHeader('content-type', 'text/html');
    res.end(
      `<form id="f" method="post" action="${target}"><input name="verdict" value="approve"><input name="params_hash" value="${'0'.repeat(64)}"></form><script>document.getElementById('f').submit()</script>`,
    );
  }).listen(attackerPort, '127.0.0.2');
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  attacker?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  for (const id of agents) await stack?.api('POST', `/api/agents/${id}/stop`, { force: true });
  await stack?.stop();
});

const personWith = (key: string, viewport?: { width: number; height: number }) => signedIn(browser, base, key, viewport);

const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `console-${name}.png`), fullPage: true });

async function submit(key: string, command: string) {
  const action = await submitShellAs(stack, key, agents[0]!, command);
  expect(action.status).toBe('pending');
  return action;
}

/** A value the page shows once its next refresh (every 2 s) or the server's answer comes. */
const eventually = <T>(read: () => T | Promise<T>, timeout = 20_000) => expect.poll(read, { timeout });

const card = (page: Page, id: string) => page.locator(`#pending-${id}`);
const verdictOf = (page: Page, id: string) => page.locator('#verdicts .verdict', { hasText: id }).first();

it('signs in; an action needing approval appears without a reload; approving runs it once and shows its output', async () => {
  const signIn = await (await browser.newContext({ viewport: { width: 900, height: 600 } })).newPage();
  await signIn.goto(`${base}/console`);
  await eventually(() => signIn.url()).toBe(`${base}/console/sign-in`);
  await shot(signIn, 'sign-in');
  await signIn.context().close();

  const alice = await personWith(keys.alice);
  await eventually(() => alice.locator('#signed-in-as').textContent()).toContain('Alice');
  let loads = 0;
  alice.on('load', () => loads++);
  const action = await submit(keys.operator, 'echo ran >> runs.txt; echo "runs: $(wc -l < runs.txt)"');
  await card(alice, action.id).waitFor();
  expect(loads).toBe(0);
  await eventually(() => card(alice, action.id).textContent()).toContain(action.params_hash);
  await eventually(() => card(alice, action.id).locator('[data-countdown]').textContent()).toMatch(/expires in \d+:\d\d/);
  await shot(alice, 'approvals');

  await card(alice, action.id).getByLabel('Comment').fill('looks fine');
  // The list is fetched again every 2 s; a comment being typed outlives the refreshes.
  const refreshes: number[] = [];
  alice.on('response', (r) => r.url().endsWith('/console/approvals/pending') && refreshes.push(Date.now()));
  await eventually(() => refreshes.length, 10_000).toBeGreaterThanOrEqual(2);
  expect(refreshes[1]! - refreshes[0]!).toBeGreaterThan(1_500);
  expect(await card(alice, action.id).getByLabel('Comment').inputValue()).toBe('looks fine');
  await card(alice, action.id).getByRole('button', { name: 'Approve' }).click();
  await eventually(() => verdictOf(alice, action.id).textContent()).toContain('approved: it runs now');
  await eventually(() => verdictOf(alice, action.id).locator('.outcome').textContent(), 60_000).toContain('completed');
  expect(await verdictOf(alice, action.id).locator('pre').textContent()).toBe('runs: 1\n');
  // Gone from the list once decided; the decision stays above it.
  await eventually(() => card(alice, action.id).count()).toBe(0);
  expect(loads).toBe(0);
  await shot(alice, 'approved');
  await alice.goto(`${base}/console/actions/${action.id}`);
  await alice.getByRole('heading', { name: 'Audit trail' }).waitFor();
  expect(await alice.locator('.outcome pre').textContent()).toBe('runs: 1\n');
  await shot(alice, 'action');
  const record = (await stack.api('GET', `/api/actions/${action.id}`)).body;
  expect(record).toMatchObject({ status: 'completed', approvals: [{ approver: { name: 'Alice' }, comment: 'looks fine' }] });
  const kinds = (await stack.api('GET', `/api/audit-logs?action_id=${action.id}`)).body.entries.map((e: { kind: string }) => e.kind);
  expect(kinds.filter((k: string) => k === 'execution.started')).toHaveLength(1);
  await alice.context().close();
});

it("refuses the requester's own approval on the page; a critical action needs a second person in a second browser", async () => {
  const alice = await personWith(keys.alice);
  const own = await submit(keys.alice, 'echo mine');
  await card(alice, own.id).getByRole('button', { name: 'Approve' }).click();
  await expect
    .poll(() => verdictOf(alice, own.id).textContent())
    .toContain('not allowed: the requester cannot approve or reject their own action');
  expect((await stack.api('GET', `/api/actions/${own.id}`)).body).toMatchObject({ status: 'pending', approvals: [] });

  const critical = await submit(keys.operator, 'mkfs.ext4 /workspace/disk.img');
  expect(critical.approvals_required).toBe(2);
  await card(alice, critical.id).getByRole('button', { name: 'Approve' }).click();
  await eventually(() => verdictOf(alice, critical.id).textContent()).toContain('needs a second person');
  await eventually(() => card(alice, critical.id).locator('.approvals-count').textContent()).toMatch(/^1 of 2/);
  await shot(alice, 'second-person');
  // A second approval from the same person is refused too.
  await card(alice, critical.id).getByRole('button', { name: 'Approve' }).click();
  await expect
    .poll(() => alice.locator('#verdicts .verdict-refused', { hasText: critical.id }).textContent())
    .toContain('Alice has already approved');
  expect((await stack.api('GET', `/api/actions/${critical.id}`)).body.status).toBe('pending');

  const bob = await personWith(keys.bob);
  await card(bob, critical.id).getByRole('button', { name: 'Approve' }).click();
  await eventually(() => verdictOf(bob, critical.id).textContent()).toContain('approved: it runs now');
  // It ran only now, and failed in the sandbox (no such image file, no privileges): the page says so.
  await eventually(() => verdictOf(bob, critical.id).locator('.outcome').textContent(), 60_000).toContain('failed');
  await bob.context().close();
  await alice.context().close();
});

it('shows a viewer everything but no buttons, and refuses forged posts from the page and from another site', async () => {
  const action = await submit(keys.operator, 'echo "<b>bold</b>"');
  const vera = await personWith(keys.viewer, { width: 390, height: 844 });
  await card(vera, action.id).waitFor();
  // The keyboard's first stop is the way past the navigation.
  await vera.keyboard.press('Tab');
  expect(await vera.evaluate(() => document.activeElement?.textContent?.trim())).toBe('Skip to the content');
  expect(await card(vera, action.id).locator('pre.params').textContent()).toContain('echo \\"<b>bold</b>\\"');
  expect(await card(vera, action.id).locator('b').count()).toBe(0);
  expect(await vera.getByRole('button', { name: /Approve|Reject/ }).count()).toBe(0);
  await shot(vera, 'viewer-phone');
  // The viewer's own session and token, posted by a script on the page: the API's role check refuses it.
  const forged = await vera.evaluate(
    async ({ id, hash }) => {
      const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
      const res = await fetch(`/console/actions/${id}/decision`, {
        method: 'POST',
        body: new URLSearchParams({ csrf, verdict: 'approve', params_hash: hash }),
      });
      return res.status;
    },
    { id: action.id, hash: action.params_hash },
  );
  expect(forged).toBe(403);
  for (const path of ['/console/system/emergency-stop', `/console/agents/${agents[0]}/stop`]) {
    const status = await vera.evaluate(async (path) => {
      const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
      return (await fetch(path, { method: 'POST', body: new URLSearchParams({ csrf, reason: 'x', confirm: 'STOP' }) })).status;
    }, path);
    expect(status, path).toBe(403);
  }
  for (const page of ['agents', 'system']) {
    await vera.goto(`${base}/console/${page}`);
    expect(await vera.locator('main button', { hasText: /Pause|Resume|Stop|Emergency|Revoke|Create/ }).count(), page).toBe(0);
  }
  await vera.context().close();

  // Alice is signed in; another site's page posts an approval form to the console in her browser.
  const alice = await personWith(keys.alice);
  const posted = alice.waitForResponse((r) => r.url().includes('/decision'));
  await alice.goto(`http://127.0.0.2:${attackerPort}/?target=${encodeURIComponent(`${base}/console/actions/${action.id}/decision`)}`);
  // SameSite=Strict: the browser sent no session cookie with another site's form.
  expect((await posted).status()).toBe(401);
  expect((await stack.api('GET', `/api/actions/${action.id}`)).body).toMatchObject({ status: 'pending', approvals: [] });
  await alice.context().close();
});

it("lets an operator pause and resume an agent from its page; the page's state follows", async () => {
  const id = agents[1]!;
  const otto = await personWith(keys.operator);
  await otto.goto(`${base}/console/agents/${id}`);
  const state = otto.locator('#agent-state .badge').first();
  expect(await state.textContent()).toBe('running');
  await otto.getByRole('button', { name: 'Pause' }).click();
  await eventually(() => otto.locator('#agent-message').textContent()).toContain(`Pause sent to ${id} (it was running)`);
  await waitForStatus(stack.api, id, ['paused']);
  // The state section refreshes itself (every 3 s): no reload.
  await eventually(() => state.textContent()).toBe('paused');
  await shot(otto, 'agent-paused');
  await otto.getByRole('button', { name: 'Resume' }).click();
  await eventually(() => otto.locator('#agent-message').textContent()).toContain(`Resume sent to ${id} (it was paused)`);
  await waitForStatus(stack.api, id, ['running']);
  await eventually(() => state.textContent()).toBe('running');
  await otto.context().close();
});

it('filters the audit log from its form, names actors by their keys, verifies the chain and exports JSON Lines', async () => {
  const vera = await personWith(keys.viewer);
  await vera.goto(`${base}/console/audit`);
  await vera.getByLabel('Agent', { exact: true }).fill(agents[1]!);
  await vera.getByLabel('Kind').selectOption('agent.created');
  await vera.getByRole('button', { name: 'Filter' }).click();
  await vera.waitForURL(/\/console\/audit\?/);
  const rows = vera.locator('table.audit tbody tr');
  expect(await rows.count()).toBe(1);
  expect(await rows.locator('td').nth(2).textContent()).toBe('agent.created');
  // The stack's admin key created the agent: named, with the key id beside it.
  expect(await rows.locator('td').nth(3).textContent()).toMatch(/^test admin \(key_[0-9a-f]{12}\)$/);
  expect(await rows.getByRole('link', { name: agents[1]! }).count()).toBe(1);
  // The form keeps what was asked; a later start leaves nothing.
  expect(await vera.getByLabel('Agent', { exact: true }).inputValue()).toBe(agents[1]);
  await vera.getByLabel('From (UTC)').fill('2999-01-01T00:00');
  await vera.getByRole('button', { name: 'Filter' }).click();
  await vera.getByText('No audit entries match.').waitFor();
  await vera.getByLabel('Kind').selectOption('');
  await vera.getByLabel('From (UTC)').fill('');
  await vera.getByRole('button', { name: 'Filter' }).click();
  await eventually(() => rows.locator('td code', { hasText: 'agent.status_changed' }).count()).toBeGreaterThan(0);

  await vera.getByRole('button', { name: 'Verify the chain' }).click();
  await eventually(() => vera.locator('#verification').textContent()).toMatch(/The chain holds: \d+ entries/);
  const [download] = await Promise.all([vera.waitForEvent('download'), vera.getByRole('link', { name: 'Export JSON Lines' }).click()]);
  expect(download.suggestedFilename()).toBe('warden-audit.jsonl');
  const lines = (await readFile((await download.path())!, 'utf8'))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { seq: number; kind: string; agent_id?: string });
  expect(lines.some((e) => e.agent_id === agents[1] && e.kind === 'agent.created')).toBe(true);
  // The whole log, oldest first, none left out.
  expect(lines.map((e) => e.seq)).toEqual(lines.map((_, i) => lines[0]!.seq + i));
  await vera.context().close();
});

it('lets an admin create a key, shown once, and revoke it from the System page', async () => {
  const ada = await personWith(keys.admin);
  await ada.goto(`${base}/console/system`);
  await ada.getByLabel('Name', { exact: true }).fill('Made in the browser');
  await ada.getByLabel('Person (optional)').fill('Pat');
  await ada.getByLabel('Role', { exact: true }).selectOption('viewer');
  await ada.getByRole('button', { name: 'Create key' }).click();
  const shown = ada.locator('#new-key');
  await shown.waitFor();
  const key = await shown.inputValue();
  expect(await ada.locator('#keys-message').textContent()).toContain('it is shown this once and never again');
  const made = await stack.keys.authenticate(key);
  expect(made).toMatchObject({ name: 'Made in the browser', role: 'viewer' });
  await shot(ada, 'key-created');
  // Once: the page opened again lists the key but nowhere holds its secret.
  await ada.reload();
  await ada.getByRole('cell', { name: made!.key_id }).waitFor();
  expect(await ada.content()).not.toContain(key);
  await ada.getByRole('button', { name: 'Revoke Made in the browser' }).click();
  await eventually(() => ada.locator('#keys-message').textContent()).toContain(
    `Revoked ${made!.key_id} (Made in the browser): its sessions are over`,
  );
  expect(await stack.keys.authenticate(key)).toBeNull();
  await ada.reload();
  expect(await ada.getByRole('button', { name: 'Revoke Made in the browser' }).count()).toBe(0);
  await ada.context().close();
});

it('shows agents, an agent, the audit log and the system; the emergency stop from the page stops every agent', async () => {
  const ada = await personWith(keys.admin);
  await ada.goto(`${base}/console/agents`);
  for (const id of agents) await ada.getByRole('link', { name: id }).waitFor();
  await eventually(() => ada.locator('.usage', { hasText: /using \d+ of \d+ MiB/ }).count()).toBe(agents.length);
  await shot(ada, 'agents');
  await ada.getByRole('link', { name: agents[0] }).click();
  await ada.waitForURL(`${base}/console/agents/${agents[0]}`);
  await ada.getByRole('heading', { name: 'Audit trail' }).waitFor();
  expect(await ada.locator('a.temporal').first().getAttribute('href')).toMatch(/\/namespaces\/default\/workflows\/agt-browser-/);
  await shot(ada, 'agent');
  await ada.goto(`${base}/console/audit?agent_id=${agents[0]}`);
  await ada.getByRole('button', { name: 'Verify the chain' }).click();
  await eventually(() => ada.locator('#verification').textContent()).toContain('The chain holds');
  await shot(ada, 'audit');

  await ada.goto(`${base}/console/system`);
  await ada.getByLabel('Reason').fill('browser test: stop everything');
  await ada.getByLabel('to confirm').fill('stop');
  await ada.getByRole('button', { name: 'Emergency stop' }).click();
  // The browser refuses the form until the word is typed exactly; nothing was sent.
  expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false);
  await ada.getByLabel('to confirm').fill('STOP');
  await shot(ada, 'system');
  await ada.getByRole('button', { name: 'Emergency stop' }).click();
  await eventually(() => ada.locator('#lockdown-message').textContent(), 90_000).toMatch(/done: \d+ agents stopped/);
  for (const id of agents) await waitForStatus(stack.api, id, ['stopped']);
  expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(true);
  await ada.reload();
  await ada.getByText('Locked down').waitFor();
  await shot(ada, 'lockdown');
  await ada.getByLabel('Reason').fill('browser test over');
  await ada.getByLabel('to confirm').fill('RESUME');
  await ada.getByRole('button', { name: 'Resume' }).click();
  await eventually(() => ada.locator('#lockdown-message').textContent()).toContain('Lockdown lifted');
  await waitFor('the lockdown to lift', async () => !(await stack.api('GET', '/api/system/lockdown')).body.locked);
  await ada.context().close();
});

it('ends the session on sign-out: the same cookie opens nothing afterwards', async () => {
  const alice = await personWith(keys.alice);
  const [cookie] = await alice.context().cookies();
  expect(cookie).toMatchObject({ name: 'warden_console', httpOnly: true, sameSite: 'Strict', path: '/console' });
  await alice.getByRole('button', { name: 'Sign out' }).click();
  await alice.getByText('Signed out.').waitFor();
  await alice.context().addCookies([cookie!]);
  await alice.goto(`${base}/console/approvals`);
  expect(alice.url()).toBe(`${base}/console/sign-in`);
  await alice.context().close();
});
