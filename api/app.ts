/**
 * The Hono app: routers mounted on one OpenAPIHono, JSON errors for every failure, the OpenAPI
 * document generated from the zod schemas, and a docs page served from the local swagger-ui.
 */
import { OpenAPIHono } from '@hono/zod-openapi';
import type Docker from 'dockerode';
import type { Client } from '@temporalio/client';
import type { Logger } from 'pino';
import type { Config } from '../domain/config.js';
import { WardenError } from '../domain/errors.js';
import type { AuditStore } from '../activities/audit-store.js';
import type { Policy } from '../domain/policy.js';
import { createActionService } from './action-service.js';
import { actionsRouter } from './actions.js';
import { createAgentService } from './agent-service.js';
import { auditRouter } from './audit.js';
import { skillsRouter } from './skills.js';
import type { KeyStore } from './key-store.js';
import { keysRouter } from './keys.js';
import { apiKeyAuth } from './middleware/auth.js';
import { agentsRouter } from './agents.js';
import { agentStatsRouter, createAgentStats } from './agent-stats.js';
import { createContainerUsage } from './container-usage.js';
import { docsRouter } from './docs.js';
import { systemRouter } from './system.js';
import { createMetrics } from './metrics.js';
import { validationHook, type AppEnv } from './openapi.js';

export interface AppDeps {
  client: Client;
  docker: Docker;
  config: Config;
  logger: Logger;
  keys: KeyStore;
  audit: AuditStore;
  policy: Policy;
}

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const agents = createAgentService(deps.client, deps.config);
  const usage = createContainerUsage(deps.docker);
  const stats = createAgentStats(agents, usage, deps.config);

  // Every 4xx/5xx is counted; /metrics has its own optional scrape token instead of an API key.
  const metrics = createMetrics({ client: deps.client, config: deps.config, audit: deps.audit, usage });
  app.use('*', metrics.countErrors);
  app.route('/', metrics.router);
  // Every /api route needs a key; /healthz, /readyz and the docs are for probes and people.
  app.use('/api/*', apiKeyAuth({ keys: deps.keys }));
  app.route('/', systemRouter({ ...deps, agents }));
  app.route('/api/agents', agentsRouter(agents, stats));
  app.route('/api/agents', agentStatsRouter(stats));
  app.route('/api/keys', keysRouter(deps.keys, deps.audit));
  app.route('/api/actions', actionsRouter(createActionService(deps.client, deps.config, deps.policy, deps.audit)));
  app.route('/api/audit-logs', auditRouter(deps.audit));
  app.route('/api', skillsRouter());
  app.route('/', docsRouter());

  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <API key>' });
  app.doc31('/openapi.json', {
    openapi: '3.1.0',
    security: [{ apiKey: [] }],
    info: {
      title: 'Warden API',
      version: '0.1.0',
      description: 'Durable, sandboxed AI agents: every agent lifecycle is a Temporal workflow.',
    },
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    if (err instanceof WardenError) {
      return c.json({ error: { code: err.code, message: err.message } }, err.status);
    }
    const status = (err as { status?: number }).status;
    if (status && status >= 400 && status < 500) {
      // Hono's own HTTPExceptions (malformed JSON and the like) say what is wrong.
      return c.json({ error: { code: 'bad_request', message: err.message } }, status as 400);
    }
    deps.logger.error({ err: { type: err.name, message: err.message, cause: String((err as { cause?: unknown }).cause ?? '') }, path: c.req.path }, 'request failed');
    return c.json({ error: { code: 'internal', message: 'internal error; the server log has the details' } }, 500);
  });
  return app;
}
