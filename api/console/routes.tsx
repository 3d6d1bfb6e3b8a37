/**
 * /console: Warden's web console, served by the API and built on the API's own services. Pages
 * are rendered here; htmx (served from this origin, like the rest) fetches the parts that change.
 * Sign-in turns a pasted API key into a server-side session; every other route needs one, and
 * every form that changes something needs this origin and the session's CSRF token. Roles are
 * checked by the API's requireRole, the buttons a role may not use are not shown. Whatever is
 * refused or fails, a person is told so on a console page, never with the API's JSON.
 */
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { Hono, type MiddlewareHandler } from 'hono';
import { getCookie } from 'hono/cookie';
import { HTTPException } from 'hono/http-exception';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from 'pino';
import type { Config } from '../../domain/config.js';
import { WardenError } from '../../domain/errors.js';
import type { Policy } from '../../domain/policy.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { KeyStore } from '../../stores/key-store.js';
import type { ActionService } from '../actions/service.js';
import type { AgentService } from '../agents/service.js';
import type { AgentStats } from '../agents/stats.js';
import type { ConversationEvents } from '../conversations/events.js';
import type { ConversationService } from '../conversations/service.js';
import type { KeyService } from '../keys/service.js';
import { bodySizeLimit } from '../middleware/hardening.js';
import { fromThisOrigin } from '../middleware/same-origin.js';
import { isTemporalUnreachable } from '../temporal-errors.js';
import type { LockdownService } from '../system/lockdown-service.js';
import type { SystemStatus } from '../system/routes.js';
import { agentsRouter } from './agents.js';
import { approvalsRouter } from './approvals.js';
import { auditRouter } from './audit.js';
import { conversationsRouter } from './conversations.js';
import { Document } from './layout.js';
import { problemPage } from './render.js';
import {
  clearSessionCookie,
  CONSOLE_COOKIE,
  CONSOLE_PATH,
  ConsoleSessions,
  requireCsrf,
  requireSession,
  SESSION_SECONDS,
  setSessionCookie,
  type ConsoleEnv,
} from './sessions.js';
import { systemRouter } from './system.js';

export interface ConsoleDeps {
  config: Config;
  keys: KeyStore;
  audit: AuditStore;
  policy: Policy;
  actions: ActionService;
  agents: AgentService;
  stats: AgentStats;
  conversations: ConversationService;
  conversationEvents: ConversationEvents;
  lockdown: LockdownService;
  system: SystemStatus;
  keyService: KeyService;
  logger: Logger;
  sessions?: ConsoleSessions;
  /** The API's rate limit, charged for every change made in the console as for the same change through the API. */
  changeLimit?: MiddlewareHandler<ConsoleEnv>;
}

const ASSETS: Record<string, { file: string; type: string }> = {
  'htmx.min.js': { file: createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'), type: 'text/javascript' },
  'console.js': { file: new URL('./assets/console.js', import.meta.url).pathname, type: 'text/javascript' },
  'console.css': { file: new URL('./assets/console.css', import.meta.url).pathname, type: 'text/css' },
};

export function consoleRouter(deps: ConsoleDeps) {
  const app = new Hono<ConsoleEnv>();
  const sessions = deps.sessions ?? new ConsoleSessions(deps.keys);
  const links = {
    temporalUi: deps.config.temporalUiUrl ?? `http://127.0.0.1:${deps.config.devServerUiPort}`,
    namespace: deps.config.temporalNamespace,
  };

  app.use('*', problemsAsPages(), bodySizeLimit(deps.config.maxBodyBytes));

  app.get('/assets/:file', async (c) => {
    const asset = ASSETS[c.req.param('file')];
    if (!asset) return c.text('no such asset', 404);
    return c.body(await readFile(asset.file), 200, { 'content-type': asset.type, 'cache-control': 'no-cache' });
  });

  app.get('/sign-in', async (c) => {
    if (await sessions.find(getCookie(c, CONSOLE_COOKIE))) return c.redirect(`${CONSOLE_PATH}/approvals`, 303);
    return c.html(<SignIn />);
  });

  app.post('/sign-in', async (c) => {
    // No session yet, so no token: the Origin check alone keeps another site from signing this browser in as someone else.
    if (!fromThisOrigin(c, { allowNoOrigin: false })) return c.html(<SignIn notice="Sign in from this console's own page." />, 403);
    const form = await c.req.parseBody();
    const key = typeof form.api_key === 'string' ? form.api_key.trim() : '';
    const identity = key ? await deps.keys.authenticate(key) : null;
    if (!identity) return c.html(<SignIn notice={key ? 'That API key is unknown or revoked.' : 'Paste an API key.'} />, 401);
    // A sign-in in a browser that still holds a session replaces it: one browser, one live session.
    const previous = await sessions.find(getCookie(c, CONSOLE_COOKIE));
    if (previous) await sessions.end(previous.id);
    setSessionCookie(c, await sessions.start(identity), { trustProxy: deps.config.trustProxy > 0 });
    return c.redirect(`${CONSOLE_PATH}/approvals`, 303);
  });

  app.use('*', requireSession(sessions), requireCsrf());
  const { changeLimit } = deps;
  // Reads are left alone: the pages poll, and a page's polls are not a person's requests.
  if (changeLimit) app.use('*', (c, next) => (c.req.method === 'GET' ? next() : changeLimit(c, next)));

  app.post('/sign-out', async (c) => {
    await sessions.end(c.get('session').id);
    clearSessionCookie(c);
    return c.html(<SignIn notice="Signed out." />);
  });

  app.get('/', (c) => c.redirect(`${CONSOLE_PATH}/approvals`, 303));
  app.route('/', approvalsRouter(deps.actions, deps.audit, deps.keys, links));
  app.route(
    '/',
    agentsRouter({ agents: deps.agents, stats: deps.stats, audit: deps.audit, keys: deps.keys, conversations: deps.conversations, links }),
  );
  app.route(
    '/',
    conversationsRouter({
      conversations: deps.conversations,
      events: deps.conversationEvents,
      sessions,
      agents: deps.agents,
      actions: deps.actions,
      links,
    }),
  );
  app.route('/', auditRouter(deps.audit, deps.keys));
  app.route('/', systemRouter(deps, links));

  app.all('*', (c) => problemPage(c, 404, `There is no console page at ${c.req.path}.`));
  app.onError((err, c) => {
    if (isTemporalUnreachable(err))
      err = new WardenError('temporal_unavailable', 'the Temporal server cannot be reached; try again when it is back', 503);
    if (err instanceof WardenError || (err instanceof HTTPException && err.status < 500))
      return problemPage(c, err.status as ContentfulStatusCode, err.message);
    deps.logger.error({ err: { type: err.name, message: err.message }, path: c.req.path }, 'console request failed');
    return problemPage(c, 500, 'internal error; the server log has the details');
  });
  return app;
}

/**
 * The API's middleware the console reuses (role checks, the rate limit, the body limit) answers in
 * JSON, and the session checks in plain text: a person's browser gets a console page saying the
 * same, with the same status and headers (Retry-After, the cleared cookie).
 */
function problemsAsPages(): MiddlewareHandler<ConsoleEnv> {
  return async function problemsAsPagesHandler(c, next) {
    await next();
    const type = c.res.headers.get('content-type') ?? '';
    const json = type.startsWith('application/json');
    if (c.res.status < 400 || !(json || type.startsWith('text/plain'))) return;
    const body = await c.res.clone().text();
    let message = body;
    if (json)
      try {
        message = String(JSON.parse(body).error.message);
      } catch {
        message = 'the request was refused';
      }
    c.res = await problemPage(c, c.res.status as ContentfulStatusCode, message);
  };
}

function SignIn(props: { notice?: string }) {
  return (
    <Document title="Sign in">
      <main id="main" class="sign-in">
        <h1>Warden console</h1>
        {props.notice && (
          <p role="status" class="notice">
            {props.notice}
          </p>
        )}
        <form method="post" action={`${CONSOLE_PATH}/sign-in`}>
          <label for="api_key">API key</label>
          <input id="api_key" name="api_key" type="password" autocomplete="off" required autofocus />
          <button type="submit">Sign in</button>
        </form>
        <p class="muted">
          The key is checked once; this browser then keeps only a session id, for {SESSION_SECONDS / 3600} hours or until you sign out or
          the key is revoked. What you may do is what the key's role allows.
        </p>
      </main>
    </Document>
  );
}
