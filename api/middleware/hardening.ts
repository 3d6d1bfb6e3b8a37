/**
 * What every request meets before a router: security headers, CORS closed unless origins are
 * configured, a body size limit (413) and JSON as the only body type (415).
 */
import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import { secureHeaders } from 'hono/secure-headers';

// A JSON API needs no content of its own; nothing may frame it.
const API_CSP = { defaultSrc: ["'none'"], frameAncestors: ["'none'"], baseUri: ["'none'"], formAction: ["'none'"] };
// The docs page runs swagger-ui from our own origin (it sets inline styles and shows data: images).
const DOCS_CSP = {
  ...API_CSP,
  scriptSrc: ["'self'"],
  styleSrc: ["'self'", "'unsafe-inline'"],
  imgSrc: ["'self'", 'data:'],
  connectSrc: ["'self'"],
};
// The codec sign-in pages post their forms to this origin; nothing else runs on them.
const CODEC_PAGE_CSP = { ...API_CSP, formAction: ["'self'"] };
// The console runs htmx and its own script from this origin, nothing inline, nothing from elsewhere.
const CONSOLE_CSP = {
  ...API_CSP,
  scriptSrc: ["'self'"],
  styleSrc: ["'self'"],
  imgSrc: ["'self'"],
  connectSrc: ["'self'"],
  formAction: ["'self'"],
};
/** The codec sign-in pages (api/codec/routes.ts). */
const CODEC_PAGES = ['/codec/login', '/codec/session', '/codec/sign-out'];

/**
 * nosniff, frame DENY, no-referrer, and a Content-Security-Policy for JSON (for /docs, one that lets
 * swagger-ui run; for the codec sign-in pages, one that lets their forms post to this origin; for
 * the console, scripts and styles from this origin only).
 */
export function securityHeaders(): MiddlewareHandler {
  const common = { xFrameOptions: 'DENY', referrerPolicy: 'no-referrer', xContentTypeOptions: true } as const;
  const api = secureHeaders({ ...common, contentSecurityPolicy: API_CSP });
  const docs = secureHeaders({ ...common, contentSecurityPolicy: DOCS_CSP });
  // same-origin, not no-referrer: under no-referrer a browser posts the form with `Origin: null`,
  // and the session route must see its own origin to tell the page's form from another site's.
  const codecPages = secureHeaders({ ...common, referrerPolicy: 'same-origin', contentSecurityPolicy: CODEC_PAGE_CSP });
  const consolePages = secureHeaders({ ...common, referrerPolicy: 'same-origin', contentSecurityPolicy: CONSOLE_CSP });
  return async function securityHeadersHandler(c, next) {
    if (c.req.path === '/docs' || c.req.path.startsWith('/docs/')) return docs(c, next);
    if (c.req.path === '/console' || c.req.path.startsWith('/console/')) return consolePages(c, next);
    return CODEC_PAGES.includes(c.req.path) ? codecPages(c, next) : api(c, next);
  };
}

/** CORS for these browser origins only; other origins get no Access-Control-Allow-Origin. */
export function apiCors(origins: string[]): MiddlewareHandler {
  return cors({
    origin: origins,
    allowMethods: ['GET', 'POST', 'DELETE'],
    allowHeaders: ['Authorization', 'Content-Type'],
    exposeHeaders: ['RateLimit-Limit', 'RateLimit-Remaining', 'RateLimit-Reset', 'RateLimit-Policy', 'Retry-After'],
    maxAge: 600,
  });
}

/** 413 when the body is larger than maxBytes (by Content-Length, or counted as it is read). */
export function bodySizeLimit(maxBytes: number): MiddlewareHandler {
  return bodyLimit({
    maxSize: maxBytes,
    onError: (c) => {
      // The rest of the body is never read: the connection cannot carry another request.
      c.header('Connection', 'close');
      return c.json(
        { error: { code: 'payload_too_large', message: `the request body is larger than the limit of ${maxBytes} bytes` } },
        413,
      );
    },
  });
}

const JSON_TYPE = /^application\/([a-z0-9.-]+\+)?json\s*(;|$)/i;

async function hasBody(req: Request) {
  if (!req.body) return false;
  const length = req.headers.get('content-length');
  if (length !== null && !req.headers.has('transfer-encoding')) return Number(length) > 0;
  // Mounted after bodySizeLimit, which has already read (and bounded) a body of unknown length.
  return (await req.clone().arrayBuffer()).byteLength > 0;
}

/** 415 for a request body that is not declared as JSON. */
export function requireJsonBody(): MiddlewareHandler {
  return async function requireJsonBodyHandler(c, next) {
    if (c.req.method === 'GET' || c.req.method === 'HEAD' || !(await hasBody(c.req.raw))) return next();
    const type = c.req.header('content-type');
    if (!type || !JSON_TYPE.test(type)) {
      const got = type ? `got ${type.slice(0, 100)}` : 'no Content-Type was sent';
      return c.json(
        { error: { code: 'unsupported_media_type', message: `send the body as JSON with Content-Type: application/json (${got})` } },
        415,
      );
    }
    await next();
  };
}
