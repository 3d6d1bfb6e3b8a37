/** The API docs page: swagger-ui from the local swagger-ui-dist package (no CDN needed). */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Hono } from 'hono';
import { getAbsoluteFSPath } from 'swagger-ui-dist';

const ASSETS = new Set(['swagger-ui.css', 'swagger-ui-bundle.js', 'swagger-ui-standalone-preset.js', 'favicon-32x32.png']);
const TYPES: Record<string, string> = { css: 'text/css', js: 'text/javascript', png: 'image/png' };

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Warden API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="docs"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/docs-init.js"></script>
</body></html>`;
const INIT = `window.ui = SwaggerUIBundle({ url: '/openapi.json', dom_id: '#docs' });`;

export function docsRouter() {
  const app = new Hono();
  const dir = getAbsoluteFSPath();
  app.get('/docs', (c) => c.html(PAGE));
  app.get('/docs/assets/docs-init.js', (c) => c.body(INIT, 200, { 'content-type': 'text/javascript' }));
  app.get('/docs/assets/:file', async (c) => {
    const file = c.req.param('file');
    if (!ASSETS.has(file)) return c.json({ error: { code: 'not_found', message: `no asset ${file}` } }, 404);
    const body = await readFile(join(dir, file));
    return c.body(body, 200, { 'content-type': TYPES[file.split('.').pop()!] ?? 'application/octet-stream' });
  });
  return app;
}
