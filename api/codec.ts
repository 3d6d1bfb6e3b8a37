/**
 * /codec: the codec server of Temporal's remote codec protocol, so the Temporal Web UI and CLI show
 * decrypted payloads to people holding a Warden API key (viewer or above), and to nobody else.
 * POST /codec/decode and /codec/encode take and return `{payloads: [{metadata: {k: base64}, data: base64}]}`
 * (proto3 JSON of Temporal's Payloads). The key comes as `Authorization: Bearer` (CLI, curl), or
 * as a cookie set by POST /codec/session: the Web UI sends cookies ("Include cross-origin
 * credentials") but cannot send a key of its own.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { cors } from 'hono/cors';
import { deleteCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import type { Payload } from '@temporalio/common';
import type { Config } from '../domain/config.js';
import { WardenError } from '../domain/errors.js';
import { isEncrypted, PayloadCodecError, type PayloadEncryptionCodec } from '../domain/payload-codec.js';
import type { KeyStore } from './key-store.js';
import { apiKeyAuth, bearerKey, requireRole } from './middleware/auth.js';
import { errorResponses, jsonBody, jsonResponse as json, validationHook, type AppEnv } from './openapi.js';

/** The cookie that carries a person's API key to the codec routes, and only to them (Path=/codec). */
export const CODEC_COOKIE = 'warden_codec_key';
const SESSION_SECONDS = 12 * 3600;

const Base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
// Other Payload fields a newer UI may send are ignored, not refused: the UI must keep decoding.
const JsonPayloadSchema = z.object({
  metadata: z.record(z.string(), Base64).nullish(),
  data: Base64.nullish(),
});
const PayloadsSchema = z.object({ payloads: z.array(JsonPayloadSchema) });
type JsonPayload = z.infer<typeof JsonPayloadSchema>;

/** The Web UI origins allowed to call the codec routes: WARDEN_CODEC_CORS_ORIGINS, or the dev server's UI. */
export function codecCorsOrigins(config: Config): string[] {
  if (config.codecCorsOrigins) return config.codecCorsOrigins.split(',').map((o) => o.trim()).filter(Boolean);
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
  for (const path of ['/decode', '/encode']) app.use(path, auth, requireRole('viewer'));

  const codecRoute = (path: '/decode' | '/encode', summary: string) =>
    createRoute({
      method: 'post',
      path,
      summary,
      request: jsonBody(PayloadsSchema),
      responses: { 200: json(PayloadsSchema, 'The payloads'), ...errorResponses(400, 401, 403, 413, 415, 422) },
    });

  app.openapi(codecRoute('/decode', 'Decrypt payloads for the Temporal Web UI or CLI (viewer); unencrypted payloads come back as they are'), async (c) => {
    const payloads = c.req.valid('json').payloads.map(fromJson);
    // Display only: a plaintext payload (say, a terminate reason typed in the UI) is shown as it is.
    const decoded = payloads.map((payload, i) => (isEncrypted(payload) ? refuseUndecodable(i, () => deps.codec.decrypt(payload)) : payload));
    return c.json({ payloads: decoded.map(toJson) }, 200);
  });

  app.openapi(codecRoute('/encode', 'Encrypt payloads, for input given in the Temporal Web UI or CLI (viewer)'), async (c) => {
    const payloads = c.req.valid('json').payloads.map(fromJson);
    return c.json({ payloads: payloads.map((p) => toJson(deps.codec.encrypt(p))) }, 200);
  });

  app.openapi(
    createRoute({
      method: 'post',
      path: '/session',
      summary: 'Keep an API key in an HttpOnly cookie for the codec routes, for the Web UI (form field api_key, or Authorization: Bearer)',
      security: [],
      responses: { 200: json(z.object({ name: z.string(), role: z.string(), expires_in_seconds: z.number() }), 'The cookie is set'), ...errorResponses(401, 403, 413) },
    }),
    async (c) => {
      // A page of another site must not plant its own key in this browser.
      const origin = c.req.header('origin');
      if (origin && origin !== new URL(c.req.url).origin) throw new WardenError('forbidden', `a codec session cannot be started from ${origin}`, 403);
      const form = c.req.header('content-type')?.startsWith('application/x-www-form-urlencoded') ? await c.req.parseBody() : {};
      const key = typeof form.api_key === 'string' && form.api_key ? form.api_key : bearerKey(c.req.header('authorization'));
      const identity = key ? deps.keys.authenticate(key) : null;
      if (!key || !identity) throw new WardenError('unauthorized', key ? 'the API key is unknown or revoked' : 'send an API key: form field api_key or Authorization: Bearer <key>', 401);
      setCookie(c, CODEC_COOKIE, key, {
        path: '/codec',
        httpOnly: true,
        sameSite: 'Strict',
        secure: new URL(c.req.url).protocol === 'https:',
        maxAge: SESSION_SECONDS,
      });
      return c.json({ name: identity.name, role: identity.role, expires_in_seconds: SESSION_SECONDS }, 200);
    },
  );

  app.openapi(
    createRoute({ method: 'delete', path: '/session', summary: 'Forget the codec cookie', security: [], responses: { 204: { description: 'The cookie is cleared' }, ...errorResponses(413) } }),
    (c) => {
      deleteCookie(c, CODEC_COOKIE, { path: '/codec' });
      return c.body(null, 204);
    },
  );

  // A page a person opens once, in the browser that runs the Web UI, to hand it their key.
  app.get('/login', (c) =>
    c.html(
      '<!doctype html><meta charset="utf-8"><title>Warden codec sign-in</title>' +
        '<form method="post" action="/codec/session"><p>Warden API key (viewer or above), kept in an HttpOnly cookie sent only to /codec for 12 hours:</p>' +
        '<input name="api_key" type="password" size="60" autocomplete="off"> <button>Sign in</button></form>',
    ),
  );
  return app;
}

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
