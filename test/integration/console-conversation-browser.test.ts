/**
 * A conversation in the console, in a real browser (Debian's chromium, driven by playwright-core)
 * against the API over HTTP, with real Temporal workers and Docker sandboxes and the model played
 * by the scripted fake speaking OpenAI's protocol: an operator starts a conversation and sends a
 * message; the model's tool call, which needs approval, shows as pending on the page; an approver
 * approves it from the Approvals page in a second browser; the result and the model's answer
 * appear on the operator's page without a reload, the model's <script> and htmx attributes inert.
 * A streaming model's text appears on the page in pieces while the turn still runs, from the
 * page's event stream. Without the stream the page refreshes on its timer, and a refresh that
 * fails says so until the next one succeeds. A viewer sees no message box, is told on a console
 * page that a conversation is not theirs to open, and a forged post from the viewer's page is
 * refused. The pages are saved as screenshots in .warden/screenshots/.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { launchChromium, signedIn } from '../support/browser.js';
import { openaiChunk, openaiCompletion, startFakeLlm, fakeProvidersFile, type FakeLlm } from '../support/fake-llm.js';
import { freePort } from '../support/global-setup.js';
import { startStack, uniqueId, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let fake: FakeLlm;
let server: ServerType;
let browser: Browser;
let base: string;
let agentId: string;
const SCREENSHOTS = join(PROJECT_ROOT, '.warden/screenshots');
const ROUTE = 'POST /v1/chat/completions';
const STREAMING_ROUTE = 'POST /streaming/v1/chat/completions';
const keys = {} as Record<'owner' | 'alice' | 'viewer', string>;
/** Model output that would run a script, or make htmx sign the person out, were it not escaped. */
const HOSTILE = '<script>document.title="pwned"</script><div hx-post="/console/sign-out" hx-trigger="load">x</div>';

beforeAll(async () => {
  fake = await startFakeLlm();
  // The default provider answers in one piece; the second streams its answers, a piece at a time.
  stack = await startStack({ config: { providersFile: fakeProvidersFile(fake) } });
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  await new Promise<void>((resolve) => {
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port }, () => resolve());
  });
  keys.owner = (await stack.keys.create('Olga', 'operator', null)).key;
  keys.alice = (await stack.keys.create('Alice', 'approver', null)).key;
  keys.viewer = (await stack.keys.create('Vera', 'viewer', null)).key;
  agentId = uniqueId('agt-browser-conv');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  mkdirSync(SCREENSHOTS, { recursive: true });
  browser = await launchChromium();
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (agentId) await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await stack?.stop();
  await fake?.close();
});

const shot = (page: Page, name: string) => page.screenshot({ path: join(SCREENSHOTS, `console-${name}.png`), fullPage: true });
/** A value the page shows once its next refresh (every 2 s) or the server's answer comes. */
const eventually = <T>(read: () => T | Promise<T>, timeout = 30_000) => expect.poll(read, { timeout });

let conversationPage: string;

it('converses: the tool call shows pending, is approved in a second browser, and the result and answer appear without a reload', async () => {
  const olga = await signedIn(browser, base, keys.owner);
  await olga.getByRole('link', { name: 'Conversations' }).click();
  await olga.getByLabel('Agent').selectOption(agentId);
  await olga.getByRole('button', { name: 'New conversation' }).click();
  await olga.waitForURL(/\/console\/conversations\/cnv-[0-9a-f]{16}$/);
  conversationPage = olga.url();
  expect(await olga.locator('a.temporal').getAttribute('href')).toMatch(/\/namespaces\/default\/workflows\/cnv-[0-9a-f]{16}$/);

  fake.script(
    ROUTE,
    {
      json: openaiCompletion({
        content: `I will count the files first. ${HOSTILE}`,
        tool_calls: [{ id: 'call_count', name: 'shell_exec', arguments: JSON.stringify({ command: 'echo "files: $((3*7))"' }) }],
      }),
    },
    { json: openaiCompletion({ content: `There are 21 files. ${HOSTILE}` }) },
  );
  let loads = 0;
  olga.on('load', () => loads++);
  const dialogs: string[] = [];
  olga.on('dialog', (d) => void (dialogs.push(d.message()), d.dismiss()));
  await olga.getByLabel('Message').fill('How many files are there?');
  await olga.getByRole('button', { name: 'Send' }).click();
  await eventually(() => olga.locator('#send-message [role=status]').textContent()).toBe('Sent: turn 1 is running.');
  expect(await olga.getByLabel('Message').inputValue()).toBe('');

  const call = olga.locator('#call-call_count');
  await eventually(() => call.locator('.approval').textContent()).toMatch(/^Awaiting approval \(high\): 0 of 1/);
  expect(await call.locator('code').first().textContent()).toBe('shell.exec');
  expect(await call.locator('pre.params').textContent()).toContain('echo \\"files: $((3*7))\\"');
  const actionId = (await call.getByRole('link', { name: 'decide on its page' }).getAttribute('href'))!.split('/').at(-1)!;
  await shot(olga, 'conversation-pending');

  const alice = await signedIn(browser, base, keys.alice);
  const card = alice.locator(`#pending-${actionId}`);
  await card.waitFor();
  await card.getByRole('button', { name: 'Approve' }).click();
  await eventually(() => alice.locator('#verdicts .verdict', { hasText: actionId }).textContent()).toContain('approved: it runs now');
  await alice.context().close();

  await eventually(() => call.locator('pre[aria-label=Result]').textContent(), 60_000).toContain('files: 21');
  await eventually(() => olga.locator('.said.model .text').last().textContent()).toBe(`There are 21 files. ${HOSTILE}`);
  expect(await call.locator('.badge').textContent()).toBe('completed');
  expect(await olga.locator('#turn-1 .turn-state .badge').textContent()).toBe('answered');
  expect(loads).toBe(0);
  // The model's markup stayed text: no script ran, htmx acted on nothing it wrote, Olga is still signed in.
  expect(await olga.locator('#conversation-live script, #conversation-live [hx-post="/console/sign-out"]').count()).toBe(0);
  expect(await olga.title()).not.toBe('pwned');
  expect(dialogs).toEqual([]);
  await olga.reload();
  await olga.locator('#signed-in-as', { hasText: 'Olga' }).waitFor();
  await olga.locator('#call-call_count pre[aria-label=Result]').waitFor();
  await shot(olga, 'conversation');

  await olga.getByRole('link', { name: 'Conversations' }).click();
  await olga.getByRole('link', { name: conversationPage.split('/').at(-1)! }).waitFor();
  await olga.goto(`${base}/console/agents/${agentId}`);
  await olga.getByRole('link', { name: conversationPage.split('/').at(-1)! }).click();
  await olga.waitForURL(conversationPage);
  await olga.context().close();
});

it("gives a viewer no message box, and refuses a forged post from the viewer's page", async () => {
  const vera = await signedIn(browser, base, keys.viewer);
  await vera.goto(`${base}/console/conversations`);
  await vera.getByText('Conversations are their owners').waitFor();
  expect(await vera.getByRole('button', { name: 'New conversation' }).count()).toBe(0);
  const opened = await vera.goto(conversationPage);
  expect(opened?.status()).toBe(403);
  expect(await vera.locator('textarea').count()).toBe(0);
  // A console page saying what is wrong, in the console's frame: never the API's JSON.
  expect(await vera.title()).toBe('Not allowed · Warden');
  expect(await vera.getByRole('alert').textContent()).toBe('this needs the operator role; the key Vera has viewer');
  expect(await vera.locator('nav a[aria-current=page]').textContent()).toBe('Conversations');
  await shot(vera, 'not-allowed');
  const asked = fake.to(ROUTE).length;
  await vera.goto(`${base}/console/conversations`);
  const forged = await vera.evaluate(async (page) => {
    const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
    const res = await fetch(`${page}/messages`, { method: 'POST', body: new URLSearchParams({ csrf, message: 'run rm -rf /' }) });
    return res.status;
  }, new URL(conversationPage).pathname);
  expect(forged).toBe(403);
  const started = await vera.evaluate(async (agent) => {
    const csrf = (document.querySelector('input[name=csrf]') as HTMLInputElement).value;
    return (await fetch('/console/conversations', { method: 'POST', body: new URLSearchParams({ csrf, agent_id: agent }) })).status;
  }, agentId);
  expect(started).toBe(403);
  expect(fake.to(ROUTE).length).toBe(asked);
  const id = conversationPage.split('/').at(-1)!;
  expect((await stack.api('GET', `/api/conversations/${id}`)).body.turns).toHaveLength(1);
  await vera.context().close();
});

const ANSWER_PIECES = ['The ', 'files ', 'are ', 'all ', 'here, ', 'safe ', 'and ', 'sound.'];

it("streams a model's text into the page in pieces while the turn runs, from the page's event stream", async () => {
  const olga = await signedIn(browser, base, keys.owner);
  const started = await olga.request.fetch(`${base}/api/conversations`, {
    method: 'POST',
    headers: { authorization: `Bearer ${keys.owner}`, 'content-type': 'application/json' },
    data: { agent_id: agentId, provider: 'streaming' },
  });
  expect(started.status()).toBe(201);
  const { id } = (await started.json()) as { id: string };
  const streamed = olga.waitForResponse((res) => res.url().endsWith(`/console/conversations/${id}/events`) && res.status() === 200);
  await olga.goto(`${base}/console/conversations/${id}`);
  await streamed;
  // Every text the page shows as the model writes, in order (an observer the test adds; the page's CSP does not cover it).
  await olga.evaluate(() => {
    const shown: string[] = ((window as unknown as { shown: string[] }).shown = []);
    new MutationObserver(() => {
      const text = document.querySelector('[data-answer-turn]:not([hidden]) .text')?.textContent;
      if (text && text !== shown.at(-1)) shown.push(text);
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true });
  });
  let loads = 0;
  olga.on('load', () => loads++);
  fake.script(STREAMING_ROUTE, {
    pauseMs: 800,
    sse: [
      ...ANSWER_PIECES.map((content) => ({ data: openaiChunk({ content }) })),
      { data: openaiChunk({}, { finish_reason: 'stop' }) },
      '[DONE]',
    ],
  });
  await olga.getByLabel('Message').fill('Are my files there?');
  await olga.getByRole('button', { name: 'Send' }).click();
  const whole = ANSWER_PIECES.join('');
  await eventually(() => olga.locator('#turn-1 .turn-state .badge').textContent(), 60_000).toBe('answered');
  expect(await olga.locator('#turn-1 .said.model .text').textContent()).toBe(whole);
  expect(await olga.locator('[data-answer-turn]').count()).toBe(0);
  const shown = await olga.evaluate(() => (window as unknown as { shown: string[] }).shown);
  // Parts of the answer were on the page while the turn ran, each carrying on the one before.
  expect(shown.length).toBeGreaterThan(0);
  expect(shown[0]!.length).toBeLessThan(whole.length);
  shown.forEach((text, i) => expect(i === 0 || text.startsWith(shown[i - 1]!)).toBe(true));
  expect(shown.every((text) => whole.startsWith(text))).toBe(true);
  expect(loads).toBe(0);
  await shot(olga, 'conversation-streamed');
  await olga.context().close();
});

it('refreshes on its timer without its event stream, and a failed refresh says so only until the next one succeeds', async () => {
  const olga = await signedIn(browser, base, keys.owner);
  // The stream is cut for this page: it falls back to fetching the conversation every 2 s.
  await olga.route('**/events', (route) => route.abort());
  await olga.goto(conversationPage);
  const notice = olga.locator('#conversation-refresh-notice');
  // The server's own answer to a refresh that fails: that of a conversation that is not there.
  await olga.route('**/live', (route) => route.continue({ url: `${base}/console/conversations/cnv-0000000000000000/live` }));
  await eventually(() => notice.textContent()).toMatch(/^Could not refresh the conversation: conversation cnv-0{16} not found/);
  expect(await olga.locator('#turn-1 .said.model .text').last().textContent()).toContain('There are 21 files.');
  await shot(olga, 'conversation-refresh-failed');
  await olga.unroute('**/live');
  await eventually(() => notice.textContent()).toBe('');
  expect(await olga.locator('#turn-1 .said.model .text').last().textContent()).toContain('There are 21 files.');
  await olga.context().close();
});
