/**
 * Whether a request comes from a page of this API, so another site's page cannot post a form to it
 * with this browser's cookies. Browsers send Origin (the HTML pages keep it with Referrer-Policy:
 * same-origin); behind a proxy that changes the host, Sec-Fetch-Site (set by the browser only) tells.
 */
import type { Context } from 'hono';

export function fromThisOrigin(c: Context, opts: { allowNoOrigin: boolean }): boolean {
  const origin = c.req.header('origin');
  if (c.req.header('sec-fetch-site') === 'same-origin') return true;
  // Clients that are not browsers send neither header; a form that only a browser posts refuses them.
  if (!origin) return opts.allowNoOrigin && !c.req.header('sec-fetch-site');
  return origin === new URL(c.req.url).origin;
}
