/**
 * /codec: the codec server of Temporal's remote codec protocol, so the Temporal Web UI and CLI show
 * decrypted payloads to people holding a Warden API key (viewer or above), and to nobody else.
 * POST /codec/decode and /codec/encode take and return `{payloads: [{metadata: {k: base64}, data: base64}]}`
 * (proto3 JSON of Temporal's Payloads; `{}` is an empty list, as proto3 JSON leaves it out). Encoding
 * makes ciphertext Warden's workers accept, so only an admin may encode anything. The key comes as
 * `Authorization: Bearer` (CLI, curl), or as a cookie set by the sign-in page (GET /codec/login,
 * POST /codec/session): the Web UI sends cookies ("Include cross-origin credentials") but cannot
 * send a key of its own.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import type { Context, MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';
import { deleteCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import { isEncrypted, PayloadCodecError, type PayloadEncryptionCodec } from '../../domain/payload-codec.js';
import { hasRole, type Identity } from '../../domain/roles.js';
import type { KeyStore } from '../../stores/key-store.js';
import { apiKeyAuth, bearerKey, requireRole, roleRefusal } from '../middleware/auth.js';
import { fromThisOrigin } from '../middleware/same-origin.js';
import { ErrorSchema, errorResponses, jsonBody, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

/** The cookie that carries a person's API key to the codec routes, and only to them (Path=/codec). */
export const CODEC_COOKIE = 'warden_codec_key';
const SESSION_SECONDS = 12 * 3600;

const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
// Other Payload fields a newer UI may send are ignored, not refused: the UI must keep decoding.
const JsonPayloadSchema = z.object({
  metadata: z.record(z.string(), Base64).nullish(),
  data: Base64.nullish(),
});
// The Temporal CLI sends `{}` for no payloads (proto3 JSON omits an empty list), e.g. before a query.
const PayloadsSchema = z.object({ payloads: z.array(JsonPayloadSchema).default([]) });
type JsonPayload = z.infer<typeof JsonPayloadSchema>;

/** The Web UI origins allowed to call the codec routes: WARDEN_CODEC_CORS_ORIGINS, or the dev server's UI. */
export function codecCorsOrigins(config: Config): string[] {
  if (config.codecCorsOrigins)
    return config.codecCorsOrigins
      .split(',')
      .map((o) => o.trim())
      .filter(Boolean);
  return [`http://localhost:${config.devServerUiPort}`, `http://127.0.0.1:${config.devServerUiPort}`];
}

export function codecRouter(deps: { codec: PayloadEncryptionCodec; keys: KeyStore; config: Config }) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const origins = codecCorsOrigins(deps.config);
  // Preflights are answered here, before authentication: browsers never send credentials with them.
  app.use(
    '*',
    cors({
      origin: (origin) => (origins.includes(origin) ? origin : null),
      allowMethods: ['POST', 'OPTIONS'],
      allowHeaders: ['authorization', 'content-type', 'x-namespace'],
      credentials: true,
      maxAge: 600,
    }),
  );
  const auth = apiKeyAuth({ keys: deps.keys, cookie: CODEC_COOKIE });
  for (const path of ['/decode', '/encode']) app.use(path, auth, requireRole('viewer'), requireJsonPayloads);

  const codecRoute = (path: '/decode' | '/encode', summary: string) =>
    createRoute({
      method: 'post',
      path,
      summary,
      request: jsonBody(PayloadsSchema),
      responses: { 200: json(PayloadsSchema, 'The payloads'), ...errorResponses(400, 401, 403, 413, 415, 422) },
    });

  app.openapi(
    codecRoute('/decode', 'Decrypt payloads for the Temporal Web UI or CLI (viewer); unencrypted payloads come back as they are'),
    async (c) => {
      const payloads = c.req.valid('json').payloads.map(fromJson);
      // Display only: a plaintext payload (say, a terminate reason typed in the UI) is shown as it is.
      const decoded = payloads.map((payload, i) =>
        isEncrypted(payload) ? refuseUndecodable(i, () => deps.codec.decrypt(payload)) : payload,
      );
      return c.json({ payloads: decoded.map(toJson) }, 200);
    },
  );

  app.openapi(
    codecRoute('/encode', 'Encrypt payloads, for input given in the Temporal Web UI or CLI (admin; a viewer may send an empty list)'),
    async (c) => {
      const payloads = c.req.valid('json').payloads.map(fromJson);
      // Ciphertext under Warden's key is what its workers trust: whoever encodes can forge workflow
      // inputs and signals. The CLI asks to encode an empty list before every query, so that stays open.
      const identity = c.get('identity');
      if (payloads.length && !hasRole(identity.role, 'admin')) throw new WardenError('forbidden', roleRefusal('admin', identity), 403);
      return c.json({ payloads: payloads.map((p) => toJson(deps.codec.encrypt(p))) }, 200);
    },
  );

  const SessionSchema = z.object({ name: z.string(), role: z.string(), expires_in_seconds: z.number() });
  app.openapi(
    createRoute({
      method: 'post',
      path: '/session',
      summary:
        'Keep an API key in an HttpOnly cookie for the codec routes, for the Web UI (form field api_key: an HTML page answers; or Authorization: Bearer: JSON)',
      security: [],
      responses: {
        200: {
          description: 'The cookie is set',
          content: { 'application/json': { schema: SessionSchema }, 'text/html': { schema: z.string() } },
        },
        ...errorResponses(403, 413),
        // A form gets the sign-in page again, with the reason; a Bearer request gets JSON.
        401: {
          description: 'No key, or an unknown or revoked one',
          content: { 'application/json': { schema: ErrorSchema }, 'text/html': { schema: z.string() } },
        },
      },
    }),
    async (c) => {
      if (!fromThisOrigin(c, { allowNoOrigin: true }))
        throw new WardenError(
          'forbidden',
          `a codec session cannot be started from ${c.req.header('origin')}: sign in at ${codecUrl(c)}/login`,
          403,
        );
      const isForm = c.req.header('content-type')?.startsWith('application/x-www-form-urlencoded') ?? false;
      const form = isForm ? await c.req.parseBody() : {};
      const key = typeof form.api_key === 'string' && form.api_key ? form.api_key : bearerKey(c.req.header('authorization'));
      const identity = key ? await deps.keys.authenticate(key) : null;
      if (!key || !identity) {
        const message = key ? 'the API key is unknown or revoked' : 'send an API key: form field api_key or Authorization: Bearer <key>';
        if (isForm) return c.html(signInPage(message), 401);
        throw new WardenError('unauthorized', message, 401);
      }
      setCookie(c, CODEC_COOKIE, key, {
        path: '/codec',
        httpOnly: true,
        sameSite: 'Strict',
        secure: new URL(c.req.url).protocol === 'https:',
        maxAge: SESSION_SECONDS,
      });
      if (isForm) return c.html(signedInPage(identity, codecUrl(c)), 200);
      return c.json({ name: identity.name, role: identity.role, expires_in_seconds: SESSION_SECONDS }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/session',
      summary: 'Forget the codec cookie',
      security: [],
      responses: { 204: { description: 'The cookie is cleared' }, ...errorResponses(413) },
    }),
    (c) => {
      deleteCookie(c, CODEC_COOKIE, { path: '/codec' });
      return c.body(null, 204);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/sign-out',
      summary: "Forget the codec cookie, from the sign-in page's Sign out button (an HTML page answers)",
      security: [],
      responses: {
        200: { description: 'The cookie is cleared', content: { 'text/html': { schema: z.string() } } },
        ...errorResponses(403, 413),
      },
    }),
    (c) => {
      if (!fromThisOrigin(c, { allowNoOrigin: true }))
        throw new WardenError('forbidden', `a codec session cannot be ended from ${c.req.header('origin')}`, 403);
      deleteCookie(c, CODEC_COOKIE, { path: '/codec' });
      return c.html(signInPage('Signed out: this browser no longer sends a key to the codec server.'), 200);
    },
  );

  // A page a person opens once, in the browser that runs the Web UI, to hand it their key.
  app.get('/login', (c) => c.html(signInPage()));
  return app;
}

const codecUrl = (c: Context) => `${new URL(c.req.url).origin}/codec`;

const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

const page = (title: string, body: string) =>
  `<!doctype html><html lang="en"><meta charset="utf-8"><title>${title}</title><body>${body}</body></html>`;

function signInPage(notice?: string): string {
  return page(
    'Warden codec sign-in',
    '<h1>Warden codec sign-in</h1>' +
      (notice ? `<p role="status">${escapeHtml(notice)}</p>` : '') +
      '<form method="post" action="/codec/session"><p><label for="api_key">Warden API key (viewer or above)</label>, kept in an HttpOnly cookie sent only to /codec for 12 hours:</p>' +
      '<input id="api_key" name="api_key" type="password" size="60" autocomplete="off" required> <button>Sign in</button></form>',
  );
}

/** What the person does next: the Web UI's codec settings, which no server flag turns on for them. */
function signedInPage(identity: Identity, endpoint: string): string {
  const host = new URL(endpoint).hostname;
  return page(
    'Warden codec: signed in',
    `<h1>Signed in</h1><p id="signed-in">Signed in as ${escapeHtml(identity.name)} (${identity.role}) for 12 hours: this browser sends your key to ${escapeHtml(endpoint)} and nowhere else.</p>` +
      '<h2>Next, in the Temporal Web UI (in this browser)</h2><ol>' +
      `<li>Open the Web UI with the same host name as this page, <code>${escapeHtml(host)}</code>: the cookie travels only within one site.</li>` +
      '<li>Click the data encoder icon (the glasses) at the top right.</li>' +
      '<li>In the Codec Server drawer, open the choice <q>Use Cluster-level setting, where available.</q> and pick <q>Use my browser setting and ignore Cluster-level setting.</q></li>' +
      `<li>Enter <code>${escapeHtml(endpoint)}</code> as the <q>Codec Server browser endpoint</q>.</li>` +
      '<li>Turn on <q>Include cross-origin credentials</q>.</li>' +
      '<li>Apply, then reload the page: workflow inputs and results show decoded.</li></ol>' +
      '<form method="post" action="/codec/sign-out"><button>Sign out</button></form>',
  );
}

/**
 * 400 for a request with no JSON body: the validator would read it as `{}`, an empty list, and a
 * client that forgot its payloads must hear so. (The Temporal CLI and Web UI always send JSON.)
 */
const requireJsonPayloads: MiddlewareHandler = async (c, next) => {
  if (!c.req.header('content-type'))
    throw new WardenError(
      'invalid_request',
      'send the payloads as JSON with Content-Type: application/json: {"payloads": [...]}, or {} for none',
      400,
    );
  await next();
};

function refuseUndecodable(index: number, decrypt: () => Payload): Payload {
  try {
    return decrypt();
  } catch (err) {
    if (err instanceof PayloadCodecError) throw new WardenError('undecodable_payload', `payloads[${index}]: ${err.message}`, 422);
    throw err;
  }
}

function fromJson({ metadata, data }: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(data ?? '', 'base64'),
  };
}

function toJson({ metadata, data }: Payload): { metadata: Record<string, string>; data: string } {
  return {
    metadata: Object.fromEntries(Object.entries(metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
    data: Buffer.from(data ?? new Uint8Array()).toString('base64'),
  };
}
