/** The browser tests' Chromium: Debian's chromium (scripts/setup-browser.sh installs it as root), driven by playwright-core. */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';

/** The path of a Chromium to drive; a clear failure without one. */
function chromiumPath(): string {
  try {
    return execFileSync('bash', [join(PROJECT_ROOT, 'scripts/setup-browser.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    }).trim();
  } catch (err) {
    const said = (err as { stderr?: string }).stderr?.trim();
    throw new Error(`the browser tests need Chromium and scripts/setup-browser.sh could not provide it: ${said || err}`);
  }
}

/** A headless Chromium that reaches nothing but what the test opens. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: chromiumPath(),
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}

/** A person's own browser (its own cookies) on the console at `base`, signed in with their key. */
export async function signedIn(browser: Browser, base: string, key: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const context = await browser.newContext({ viewport });
  context.setDefaultTimeout(20_000);
  const page = await context.newPage();
  await page.goto(`${base}/console/sign-in`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/console/approvals`);
  return page;
}
