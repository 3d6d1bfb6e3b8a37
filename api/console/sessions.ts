/**
 * Console sessions: a person pastes an API key once; the browser then holds only an opaque random
 * session id in an HttpOnly, SameSite=Strict cookie, and the key's identity stays on the server.
 * A session ends when it expires, when its person signs out, or at once when its key is revoked.
 * Every state-changing request must come from a console page (Origin) and carry the session's
 * CSRF token.
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
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

/** What the key store holds of a session: the SHA-256 of its id, so a reader of the database cannot present it. */
const idHash = (id: string) => createHash('sha256').update(id, 'utf8').digest();

/**
 * The session's CSRF token, derived from its id rather than stored: every API process computes
 * the same token with no key to share, and the database, holding only the id's hash, cannot
 * yield it. The token shown in a page in turn says nothing of the id (the id is the HMAC's key).
 */
const csrfTokenOf = (id: string) => createHmac('sha256', id).update('warden console csrf token').digest('base64url');

/**
 * Sessions in the key store (SQLite or PostgreSQL), so every API process sharing the keys honours
 * them and a restart of the API signs no one out. The identity is the key's, read on every
 * request: a role change or a revocation applies at once.
 */
export class ConsoleSessions {
  constructor(
    private readonly keys: Pick<KeyStore, 'identityOf' | 'consoleSessions'>,
    private readonly clock: () => number = Date.now,
  ) {}

  async start(identity: Identity): Promise<ConsoleSession> {
    const now = this.clock();
    // Sign-ins sweep the expired rows: the table holds no more than the sessions of the last SESSION_SECONDS.
    await this.keys.consoleSessions.deleteExpired(now);
    const id = randomBytes(32).toString('base64url');
    const expiresAt = now + SESSION_SECONDS * 1000;
    await this.keys.consoleSessions.insert({ id_hash: idHash(id), key_id: identity.key_id, expires_at: expiresAt });
    return { id, identity, csrfToken: csrfTokenOf(id), expiresAt };
  }

  /** The live session of this id: none once it expired or its key was revoked. */
  async find(id: string | undefined): Promise<ConsoleSession | null> {
    if (!id) return null;
    const hash = idHash(id);
    const row = await this.keys.consoleSessions.byHash(hash);
    if (!row) return null;
    const identity = row.expires_at > this.clock() ? await this.keys.identityOf(row.key_id) : null;
    if (!identity) {
      await this.keys.consoleSessions.delete(hash);
      return null;
    }
    return { id, identity, csrfToken: csrfTokenOf(id), expiresAt: row.expires_at };
  }

  async end(id: string): Promise<void> {
    await this.keys.consoleSessions.delete(idHash(id));
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
