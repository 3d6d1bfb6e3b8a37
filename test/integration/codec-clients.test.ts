/**
 * The codec server as its real clients use it, over HTTP, with a Temporal dev server whose Web UI is
 * pointed at it. In a real browser (Debian's chromium, driven by playwright-core) a person signs in
 * on the page, reads what to set next, and the browser then decodes with its cookie: from the Web
 * UI's origin (CORS with credentials), and in the Web UI itself, set up as the success page says.
 * The Temporal CLI signals with a viewer key (it encodes an empty list, sent as `{}`) and can forge
 * a signal's input only with an admin key.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { serve, type ServerType } from '@hono/node-server';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startDevServer, temporalCli, type DevServer } from '../../scripts/dev-server.js';
import { launchChromium } from '../support/browser.js';
import { freePort } from '../support/global-setup.js';
import { startStack, uniqueId } from '../support/helpers.js';

type JsonPayload = { metadata: Record<string, string>; data: string };

let dir: string;
let temporal: DevServer;
let stack: Awaited<ReturnType<typeof startStack>>;
let server: ServerType;
let browser: Browser;
let api: string;
let ui: string;
let workflowId: string;
const canary = uniqueId('canary');

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-browser-'));
  const [port, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  api = `http://127.0.0.1:${apiPort}`;
  ui = `http://127.0.0.1:${uiPort}`;
  temporal = await startDevServer({
    dbFile: join(dir, 'temporal.db'),
    port,
    uiPort,
    ui: true,
    uiCodecEndpoint: `${api}/codec`,
    logFile: join(dir, 'temporal.log'),
  });
  stack = await startStack({ workers: false, config: { temporalAddress: temporal.address, devServerUiPort: uiPort } });
  await new Promise<void>((resolve) => {
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: apiPort }, () => resolve());
  });
  // No worker polls this task queue: the workflow waits, its encrypted input in the history.
  workflowId = uniqueId('browser');
  await stack.client.workflow.start('browserCanaryWorkflow', { workflowId, taskQueue: uniqueId('nobody'), args: [{ prompt: canary }] });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  await stack?.stop();
  await temporal?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The workflow's input as the Web UI sends it to the codec server. */
async function startInput(): Promise<JsonPayload[]> {
  const res = await stack.client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId } });
  const payloads = res.history!.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads!;
  return payloads.map((p) => ({
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(p.data ?? []).toString('base64'),
  }));
}

/** POST /codec/decode from a page's own script, sending the cookie as the Web UI does. */
function decodeFrom(page: Page, payloads: JsonPayload[]) {
  return page.evaluate(
    async ({ url, payloads }) => {
      const res = await fetch(url, {
        method: 'POST',
        credentials: 'include',
        headers: { 'content-type': 'application/json', 'x-namespace': 'default' },
        body: JSON.stringify({ payloads }),
      });
      return { status: res.status, body: await res.json() };
    },
    { url: `${api}/codec/decode`, payloads },
  );
}

const decodedText = (body: { payloads: JsonPayload[] }) => body.payloads.map((p) => Buffer.from(p.data, 'base64').toString()).join('');

/** A person's browser, new (no cookies, no Web UI settings), with one page open. */
async function inBrowser(use: (page: Page, context: BrowserContext) => Promise<void>) {
  // Tall enough that the Web UI's codec settings, opened under its sticky top bar, fit on the screen.
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } });
  // A page that breaks (a form the browser will not post) fails in seconds, not playwright's 30.
  context.setDefaultTimeout(10_000);
  try {
    await use(await context.newPage(), context);
  } finally {
    await context.close();
  }
}

async function signIn(page: Page, key: string) {
  await page.goto(`${api}/codec/login`);
  await page.getByLabel('Warden API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

it.each(['viewer', 'admin'] as const)(
  'signs in with a %s key on the page, says what to set in the Web UI, and decodes with the cookie from the Web UI origin',
  (role) =>
    inBrowser(async (page, context) => {
      await signIn(page, await stack.keyFor(role));
      await expect.poll(() => page.textContent('#signed-in')).toContain(`Signed in as test ${role} (${role}) for 12 hours`);
      const next = await page.textContent('body');
      expect(next).toContain(`${api}/codec`);
      expect(next).toContain('Use my browser setting and ignore Cluster-level setting');
      expect(next).toContain('Include cross-origin credentials');

      // A page of the Web UI's origin (another origin of the same site, as the Web UI's own requests
      // are): CORS with credentials carries the cookie. The API's own pages may fetch nothing (CSP).
      const input = await startInput();
      const uiPage = await context.newPage();
      await uiPage.goto(ui);
      const fromUi = await decodeFrom(uiPage, input);
      expect(fromUi.status).toBe(200);
      expect(decodedText(fromUi.body)).toContain(canary);

      // Sign out: the cookie is gone, and the codec server answers 401 again.
      await page.getByRole('button', { name: 'Sign out' }).click();
      await expect.poll(() => page.textContent('body')).toContain('Signed out');
      expect((await decodeFrom(uiPage, input)).status).toBe(401);
    }),
);

it('shows the sign-in page again, saying why, for a wrong key', () =>
  inBrowser(async (page) => {
    await signIn(page, 'wk_not-a-key');
    await expect.poll(() => page.textContent('body')).toContain('the API key is unknown or revoked');
    await page.goto(ui);
    expect((await decodeFrom(page, await startInput())).status).toBe(401);
  }));

it('decodes a workflow input in the Temporal Web UI, set up as the success page says', () =>
  inBrowser(async (page) => {
    await signIn(page, await stack.keyFor('viewer'));
    await expect.poll(() => page.textContent('#signed-in')).toContain('Signed in');

    // The cluster-level endpoint alone (--ui-codec-endpoint) sends no cookie: the input stays encrypted.
    await page.goto(`${ui}/namespaces/default/workflows/${workflowId}`);
    const input = page.getByTestId('input-and-result');
    await expect.poll(() => input.textContent(), { timeout: 15_000 }).toContain(Buffer.from('binary/encrypted').toString('base64'));
    expect(await input.textContent()).not.toContain(canary);

    // The steps of the success page: the data encoder icon, the browser setting, the endpoint,
    // cross-origin credentials, Apply, reload.
    await page.locator('[data-testid^="data-encoder-status"]').click();
    await page.getByTestId('override-accordion').getByRole('button').first().click();
    await page.getByText('Use my browser setting and ignore Cluster-level setting').click();
    await page.getByTestId('data-encoder-endpoint-input').fill(`${api}/codec`);
    // The settings drawer is shorter than its content and the top bar covers its lower part: the
    // keyboard reaches what a pointer would have to scroll to.
    const credentials = page.getByRole('switch', { name: 'Include cross-origin credentials' });
    await credentials.press('Space');
    expect(await credentials.isChecked()).toBe(true);
    await page.getByTestId('confirm-data-encoder-button').press('Enter');
    await page.reload();
    await expect.poll(() => input.textContent(), { timeout: 15_000 }).toContain(canary);
  }));

it('lets the Temporal CLI signal with a viewer key, which encodes an empty list ({}); input is encoded for an admin only', async () => {
  const cli = await temporalCli();
  const signal = (key: string, ...input: string[]) =>
    promisify(execFile)(cli, [
      'workflow',
      'signal',
      '--workflow-id',
      workflowId,
      '--name',
      'nudge',
      '--address',
      temporal.address,
      '--codec-endpoint',
      `${api}/codec`,
      '--codec-auth',
      `Bearer ${key}`,
      ...input,
    ]);
  await signal(await stack.keyFor('viewer'));
  // A viewer cannot make ciphertext the workers would take for Warden's own.
  await expect(signal(await stack.keyFor('viewer'), '--input', '{"approved": true}')).rejects.toThrow(
    /Forbidden.*this needs the admin role/,
  );
  await signal(await stack.keyFor('admin'), '--input', '{"approved": true}');

  const { history } = await stack.client.workflowService.getWorkflowExecutionHistory({ namespace: 'default', execution: { workflowId } });
  const signals = history!
    .events!.filter((e) => e.workflowExecutionSignaledEventAttributes)
    .map((e) => e.workflowExecutionSignaledEventAttributes!.input?.payloads ?? []);
  expect(signals.map((payloads) => payloads.length)).toEqual([0, 1]);
  expect(Buffer.from(signals[1]![0]!.metadata!.encoding!).toString()).toBe('binary/encrypted');
});
