/**
 * Console sessions shared by every API process, on each back end (SQLite and PostgreSQL), through
 * the apps with real cookies: two API apps on one key store, each with its own connection as two
 * processes behind a load balancer would hold, honour each other's sessions and sign-outs, and a
 * restarted API keeps people signed in. What an attacker presents is refused: a forged cookie, a
 * signed-out session's cookie, the stored hash as a cookie, a revoked key's session, an expired
 * session, another session's CSRF token.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, inject, it } from 'vitest';
import { SESSION_SECONDS } from '../../api/console/sessions.js';
import { startStack } from '../support/helpers.js';
import { createTestDatabase } from '../support/postgres.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
/** An API process: its app, on its own connection to the shared key store. */
type App = Stack;
type StackOptions = Parameters<typeof startStack>[0];

const ORIGIN = 'http://localhost';

/** One key store for several API processes: a data dir's warden.db, or a PostgreSQL database. */
const KEY_STORES = [
  {
    backend: 'SQLite',
    place: async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'warden-console-'));
      return { options: { keysFile: join(dataDir, 'warden.db') }, remove: () => rmSync(dataDir, { recursive: true, force: true }) };
    },
  },
  {
    backend: 'PostgreSQL',
    place: async () => ({
      options: { config: { databaseUrl: await createTestDatabase(inject('postgresAdminUrl')) } },
      remove: () => undefined,
    }),
  },
] as const;

/** A browser's cookie jar for /console, with the CSRF token its last page carried. */
class Browser {
  cookie = '';
  csrf = '';

  async signIn(app: App, key: string) {
    const res = await app.realApp.request(`${ORIGIN}/console/sign-in`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN, cookie: this.cookie },
      body: new URLSearchParams({ api_key: key }).toString(),
    });
    expect(res.status).toBe(303);
    this.cookie = res.headers.get('set-cookie')!.split(';')[0]!;
    expect((await this.open(app)).status).toBe(200);
    return this;
  }

  /** A page that needs a session: 200 with one, else 303 to the sign-in page. */
  async open(app: App, path = '/console/audit') {
    const res = await app.realApp.request(`${ORIGIN}${path}`, { headers: { cookie: this.cookie } });
    if (res.status === 200) this.csrf = /name="csrf" value="([^"]+)"/.exec(await res.text())![1]!;
    else expect(res.headers.get('location')).toBe('/console/sign-in');
    return res;
  }

  signOut(app: App, csrf = this.csrf) {
    return app.realApp.request(`${ORIGIN}/console/sign-out`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin: ORIGIN, cookie: this.cookie },
      body: new URLSearchParams({ csrf }).toString(),
    });
  }

  /** The session id its cookie carries. */
  get sessionId() {
    return this.cookie.slice('warden_console='.length);
  }

  static holding(sessionId: string) {
    return Object.assign(new Browser(), { cookie: `warden_console=${sessionId}` });
  }
}

describe.each(KEY_STORES)('console sessions of API processes sharing keys on $backend', ({ place }) => {
  let now: number;
  let stacks: Stack[];
  let remove: () => void;
  let start: () => Promise<Stack>;

  beforeEach(async () => {
    now = Date.parse('2026-01-01T00:00:00Z');
    stacks = [];
    const store = await place();
    remove = store.remove;
    const options: StackOptions = { ...store.options, workers: false, consoleClock: () => now };
    start = async () => {
      const stack = await startStack(options);
      stacks.push(stack);
      return stack;
    };
  });
  afterEach(async () => {
    for (const stack of stacks) await stack.stop();
    remove();
  });

  it('honour a session made by the other, survive a restart of the API, and end on both when signed out on one', async () => {
    const [a, b] = [await start(), await start()];
    const browser = await new Browser().signIn(a, await a.keyFor('approver'));
    const csrfOnA = browser.csrf;
    expect((await browser.open(b)).status).toBe(200);
    expect(browser.csrf).toBe(csrfOnA);

    // The API restarts: a new process on the same store, and the old one gone.
    await a.stop();
    stacks.splice(stacks.indexOf(a), 1);
    const restarted = await start();
    expect((await browser.open(restarted)).status).toBe(200);

    // Signed out through one process, signed out everywhere.
    const out = await browser.signOut(b);
    expect(out.status).toBe(200);
    expect(await out.text()).toContain('Signed out.');
    expect((await browser.open(restarted)).status).toBe(303);
    expect((await browser.open(b)).status).toBe(303);
  });

  it("refuse a forged cookie, a signed-out session's cookie, the stored hash as a cookie, and another session's CSRF token", async () => {
    const [a, b] = [await start(), await start()];
    const key = await a.keyFor('approver');
    const [alice, mallory] = [await new Browser().signIn(a, key), await new Browser().signIn(b, key)];

    expect((await Browser.holding(randomBytes(32).toString('base64url')).open(b)).status).toBe(303);
    const hash = createHash('sha256').update(alice.sessionId).digest();
    for (const spelling of [hash.toString('base64url'), hash.toString('hex'), hash.toString('base64')])
      expect((await Browser.holding(spelling).open(b)).status).toBe(303);

    // Mallory's own session and token do not sign Alice out: the token is her session's, not any session's.
    expect((await alice.signOut(b, mallory.csrf)).status).toBe(403);
    expect((await alice.open(a)).status).toBe(200);

    const kept = Browser.holding(alice.sessionId);
    expect((await alice.signOut(a)).status).toBe(200);
    expect((await kept.open(b)).status).toBe(303);
    expect((await kept.signOut(b, alice.csrf)).status).toBe(401);
    expect((await mallory.open(a)).status).toBe(200);
  });

  it("end a revoked key's sessions at once in every process, and every session SESSION_SECONDS after its sign-in", async () => {
    const [a, b] = [await start(), await start()];
    const revokee = await a.keys.create('console revokee', 'operator', null);
    const revoked = await new Browser().signIn(a, revokee.key);
    const kept = await new Browser().signIn(b, await b.keyFor('viewer'));
    expect((await b.api('DELETE', `/api/keys/${revokee.id}`)).status).toBe(200);
    expect((await revoked.open(a)).status).toBe(303);
    expect((await revoked.open(b)).status).toBe(303);

    now += (SESSION_SECONDS - 1) * 1000;
    expect((await kept.open(a)).status).toBe(200);
    now += 1000;
    expect((await kept.open(a)).status).toBe(303);
    expect((await kept.open(b)).status).toBe(303);
  });
});
