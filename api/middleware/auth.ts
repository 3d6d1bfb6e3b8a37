/**
 * Bearer API keys: `apiKeyAuth` puts the caller's identity on the context (401 without a valid,
 * unrevoked key); `requireRole` answers 403 when the identity's role is below the one needed.
 */
import type { MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { hasRole, type Identity, type Role } from '../../domain/roles.js';
import type { KeyStore } from '../../stores/key-store.js';

export type AuthEnv = { Variables: { identity: Identity } };

/** The key in an `Authorization: Bearer <key>` header, if that is what the header holds. */
export const bearerKey = (header: string | undefined) => /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];

export function apiKeyAuth(options: {
  keys: KeyStore;
  /** Also take the key from this cookie when no header is sent. */ cookie?: string;
}): MiddlewareHandler<AuthEnv> {
  return async function apiKeyAuthHandler(c, next) {
    const header = c.req.header('authorization') ?? '';
    const key = bearerKey(header) ?? (!header && options.cookie ? getCookie(c, options.cookie) : undefined);
    const identity = key ? await options.keys.authenticate(key) : null;
    if (!identity) {
      c.header('WWW-Authenticate', 'Bearer realm="warden"');
      const message = key ? 'the API key is unknown or revoked' : 'send an API key: Authorization: Bearer <key>';
      return c.json({ error: { code: 'unauthorized', message } }, 401);
    }
    c.set('identity', identity);
    await next();
  };
}

/** The 403 message when a key's role is below the one needed. */
export const roleRefusal = (role: Role, identity: Identity) => `this needs the ${role} role; the key ${identity.name} has ${identity.role}`;

export function requireRole(role: Role): MiddlewareHandler<AuthEnv> {
  return async function requireRoleHandler(c, next) {
    const identity = c.get('identity');
    if (!hasRole(identity.role, role)) {
      return c.json({ error: { code: 'forbidden', message: roleRefusal(role, identity) } }, 403);
    }
    await next();
  };
}
