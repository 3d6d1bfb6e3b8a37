/**
 * Console sessions: a person pastes an API key once; the browser then holds only an opaque random
 * session id in an HttpOnly, SameSite=Strict cookie, and the key's identity stays on the server.
 * A session ends when it expires, when its person signs out, or at once when its key is revoked.
 * Every state-changing request must come from a console page (Origin) and carry the session's
 * CSRF token.
 */
import { randomBytes } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Identity } from '../../domain/roles.js';
import type { KeyStore } from '../../stores/key-store.js';
import { secretMatches } from '../../domain/secret-match.js';
import { fromThisOrigin } from '../middleware/same-origin.js';

export const CONSOLE_COOKIE = 'warden_console';
export const CONSOLE_PATH = '/console';
/** A console session lasts this long from sign-in, however active. */
export const SESSION_SECONDS = 8 * 3600;

export interface ConsoleSession {
  id: string;
  identity: Identity;
  /** Sent back with every form and htmx request of this session. */
  csrfToken: string;
  expiresAt: number;
}

export type ConsoleEnv = { Variables: { identity: Identity; session: ConsoleSession } };

/**
 * Sessions in the API's memory: a restart of the API signs everyone out, and each API process
 * has its own (a load balancer in front of several needs sticky sessions).
 */
export class ConsoleSessions {
  private readonly sessions = new Map<string, ConsoleSession>();

  constructor(
    private readonly keys: Pick<KeyStore, 'isRevoked'>,
    private readonly clock: () => number = Date.now,
  ) {}

  start(identity: Identity): ConsoleSession {
    this.sweep();
    const session = {
      id: randomBytes(32).toString('base64url'),
      identity,
      csrfToken: randomBytes(32).toString('base64url'),
      expiresAt: this.clock() + SESSION_SECONDS * 1000,
    };
    this.sessions.set(session.id, session);
    return session;
  }

  /** The live session of this id: none once it expired or its key was revoked. */
  async find(id: string | undefined): Promise<ConsoleSession | null> {
    const session = id ? this.sessions.get(id) : undefined;
    if (!session) return null;
    if (session.expiresAt <= this.clock() || (await this.keys.isRevoked(session.identity.key_id))) {
      this.sessions.delete(session.id);
      return null;
    }
    return session;
  }

  end(id: string): void {
    this.sessions.delete(id);
  }

  private sweep() {
    const now = this.clock();
    for (const [id, session] of this.sessions) if (session.expiresAt <= now) this.sessions.delete(id);
  }
}

/**
 * The cookie is Secure when the browser reached the console over HTTPS: this request's own URL,
 * or, behind a trusted proxy that ends TLS (WARDEN_TRUST_PROXY), the proxy's X-Forwarded-Proto.
 */
export function setSessionCookie(c: Context, session: ConsoleSession, opts: { trustProxy: boolean }) {
  const https = new URL(c.req.url).protocol === 'https:' || (opts.trustProxy && c.req.header('x-forwarded-proto') === 'https');
  setCookie(c, CONSOLE_COOKIE, session.id, {
    path: CONSOLE_PATH,
    httpOnly: true,
    sameSite: 'Strict',
    secure: https,
    maxAge: SESSION_SECONDS,
  });
}

export const clearSessionCookie = (c: Context) => deleteCookie(c, CONSOLE_COOKIE, { path: CONSOLE_PATH });

/**
 * Puts the session and its identity on the context; without a live session, a page request is
 * sent to the sign-in page and an htmx request is told to go there (its partial cannot show it).
 */
export function requireSession(sessions: ConsoleSessions): MiddlewareHandler<ConsoleEnv> {
  return async function requireSessionHandler(c, next) {
    const session = await sessions.find(getCookie(c, CONSOLE_COOKIE));
    if (!session) {
      clearSessionCookie(c);
      const signIn = `${CONSOLE_PATH}/sign-in`;
      if (c.req.header('hx-request')) return c.body(null, 401, { 'HX-Redirect': signIn });
      if (c.req.method !== 'GET') return c.text('sign in first: your console session is over', 401);
      return c.redirect(signIn, 303);
    }
    c.set('session', session);
    c.set('identity', session.identity);
    await next();
  };
}

/** Refuses a state-changing request that is not from a console page of this session (403). */
export function requireCsrf(): MiddlewareHandler<ConsoleEnv> {
  return async function requireCsrfHandler(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    if (!fromThisOrigin(c, { allowNoOrigin: false }))
      return c.text(
        `refused: this form must be sent from a Warden console page, not from ${c.req.header('origin') ?? 'an unknown page'}`,
        403,
      );
    const sent = c.req.header('x-csrf-token') ?? (await formField(c, 'csrf'));
    if (!sent || !secretMatches(sent, c.get('session').csrfToken))
      return c.text('refused: the form has no valid CSRF token; reload the page and try again', 403);
    await next();
  };
}

async function formField(c: Context, name: string): Promise<string | undefined> {
  const type = c.req.header('content-type') ?? '';
  if (!type.startsWith('application/x-www-form-urlencoded') && !type.startsWith('multipart/form-data')) return undefined;
  const value = (await c.req.parseBody())[name];
  return typeof value === 'string' ? value : undefined;
}
