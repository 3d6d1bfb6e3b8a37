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
import type { AuditStore } from '../stores/audit-store.js';
import type { Policy } from '../domain/policy.js';
import { createActionService } from './actions/service.js';
import { actionsRouter } from './actions/routes.js';
import { createAgentService } from './agents/service.js';
import { auditRouter } from './audit/routes.js';
import { skillsRouter } from './skills/routes.js';
import { securityRouter } from './security/routes.js';
import type { KeyStore } from '../stores/key-store.js';
import { keysRouter } from './keys/routes.js';
import { apiKeyAuth } from './middleware/auth.js';
import { apiCors, bodySizeLimit, requireJsonBody, securityHeaders } from './middleware/hardening.js';
import { authFailureLimit, MemoryRateLimitStore, rateLimit, type RateLimitStore } from './middleware/rate-limit.js';
import { parseRateLimits } from '../domain/rate-limits.js';
import { agentsRouter } from './agents/routes.js';
import { agentStatsRouter, createAgentStats } from './agents/stats.js';
import { createContainerUsage } from '../sandbox/container-usage.js';
import { docsRouter } from './docs.js';
import { emergencyRouter } from './system/emergency-routes.js';
import { createLockdownService } from './system/lockdown-service.js';
import { createSystemStatus, systemRouter } from './system/routes.js';
import { createKeyService } from './keys/service.js';
import { consoleRouter } from './console/routes.js';
import { CONSOLE_PATH, type ConsoleEnv, type ConsoleSessions } from './console/sessions.js';
import { secretsRouter } from './secrets/routes.js';
import type { Vault } from '../stores/vault.js';
import { scrubText } from '../domain/redact.js';
import { codecRouter } from './codec/routes.js';
import type { PayloadEncryptionCodec } from '../domain/payload-codec.js';
import { Grants } from '../domain/grants.js';
import { declareMiddlewareResponses, validationHook, type AppEnv } from './openapi.js';
import { isTemporalUnreachable } from './temporal-errors.js';
import { createMetrics } from './metrics/routes.js';
import { providersRouter } from './providers/routes.js';
import { channelsRouter } from './channels/routes.js';
import { channelRequestsRouter } from './channels/requests.js';
import { ChannelStore } from '../stores/channel-store.js';
import { createChannelService } from '../channels/service.js';
import { configuredChannels } from '../channels/index.js';
import { loadProviderConfigs } from '../domain/model-providers.js';
import { ProviderRegistry } from '../llm/registry.js';
import { createConversationService } from './conversations/service.js';
import { conversationsRouter } from './conversations/routes.js';
import { createConversationEvents } from './conversations/events.js';

export interface AppDeps {
  client: Client;
  docker: Docker;
  config: Config;
  logger: Logger;
  keys: KeyStore;
  audit: AuditStore;
  policy: Policy;
  /** The secrets vault; without it the /api/secrets routes answer 503 and action secrets are not checked at submission. */
  vault?: Vault;
  /** The payload codec behind /codec (the Web UI's codec server). */
  payloadCodec: PayloadEncryptionCodec;
  /** Where rate-limit buckets live; in memory when not given. */
  rateLimitStore?: RateLimitStore;
  /** The chat channels' pairings and cards (channels.db); in memory when not given. */
  channelStore?: ChannelStore;
  /** The console's sessions; in the key store, on the system clock, when not given (tests give them a clock they move). */
  consoleSessions?: ConsoleSessions;
}

/**
 * A key holds a few conversation event streams at once (a terminal and a console tab or two);
 * each closes after a while (its reader reconnects, and the key is checked as for any request).
 */
const CONVERSATION_STREAMS = { maxStreamsPerKey: 4, maxStreamMs: 15 * 60_000 };

export function createApp(deps: AppDeps) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const agents = createAgentService(deps.client, deps.config, { docker: deps.docker });
  const lockdown = createLockdownService(deps.client, deps.audit);

  app.use('*', securityHeaders());
  const corsOrigins = deps.config.corsOrigins
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  if (corsOrigins.length) app.use('/api/*', apiCors(corsOrigins));
  const limits = parseRateLimits(deps.config.rateLimits);
  const limiter = limits && { limits, store: deps.rateLimitStore ?? new MemoryRateLimitStore(), trustProxy: deps.config.trustProxy };
  // Failed authentications count wherever a key is checked: the API and the codec server.
  if (limiter) for (const path of ['/api/*', '/codec/*', '/console/*']) app.use(path, authFailureLimit(limiter));
  const usage = createContainerUsage(deps.docker);
  const stats = createAgentStats(deps.client, agents, usage, deps.config);

  // Every 4xx/5xx is counted; /metrics has its own optional scrape token instead of an API key.
  const metrics = createMetrics({ client: deps.client, config: deps.config, audit: deps.audit, usage, docker: deps.docker });
  app.use('*', metrics.countErrors);
  app.route('/', metrics.router);
  // Every /api route needs a key; /healthz, /readyz and the docs are for probes and people.
  app.use('/api/*', apiKeyAuth({ keys: deps.keys }));
  if (limiter) app.use('/api/*', rateLimit(limiter));
  app.use('/api/*', bodySizeLimit(deps.config.maxBodyBytes), requireJsonBody());
  const grants = new Grants(deps.payloadCodec.keyring);
  const actions = createActionService(deps.client, deps.config, deps.policy, deps.audit, grants, {
    vault: deps.vault,
    assertOpen: lockdown.assertOpen,
    isRevoked: (keyId) => deps.keys.isRevoked(keyId),
  });
  // The model providers of WARDEN_PROVIDERS_FILE and WARDEN_LLM_* (or the embedded model): a bad file stops start-up here, naming the field.
  const providers = new ProviderRegistry({ configs: loadProviderConfigs(deps.config), vault: deps.vault, logger: deps.logger });
  const conversations = createConversationService(deps.client, grants, providers, agents, lockdown.assertOpen);
  const channelStore = deps.channelStore ?? ChannelStore.open(':memory:');
  // Decides and converses through the services above: the same grants, checks and audit as the REST API.
  const channels = createChannelService({
    adapters: configuredChannels(deps.config, deps.vault),
    store: channelStore,
    identityOf: (keyId) => deps.keys.identityOf(keyId),
    actions,
    conversations,
    logger: deps.logger,
    pollMs: deps.config.channelPollSeconds * 1000,
  });
  const system = createSystemStatus({ ...deps, agents, channels: channels.status, providers });
  app.route('/', systemRouter(system));
  app.route('/api/agents', agentsRouter(agents, stats));
  app.route('/api/agents', agentStatsRouter(stats));
  const keyService = createKeyService(deps.keys, deps.audit, actions.cancelPendingOf);
  app.route('/api/keys', keysRouter(keyService));
  app.route('/api/actions', actionsRouter(actions));
  app.route('/api/channels', channelsRouter({ store: channelStore, keys: deps.keys, audit: deps.audit, status: channels.status }));
  // The platforms' own doors (HTTP modes): no Warden key, each checked with its platform's secret.
  app.use('/channels/*', bodySizeLimit(deps.config.maxBodyBytes));
  app.route('/channels', channelRequestsRouter(channels));
  app.route('/api/secrets', secretsRouter({ vault: deps.vault, audit: deps.audit }));
  app.route('/api/system', emergencyRouter(lockdown));
  app.route('/api/audit-logs', auditRouter(deps.audit));
  app.route('/api', skillsRouter());
  app.route('/api/providers', providersRouter(providers));
  const conversationEvents = createConversationEvents(
    conversations,
    (id) => actions.getAction(id),
    (keyId) => deps.keys.isRevoked(keyId),
    CONVERSATION_STREAMS,
  );
  app.route('/api', conversationsRouter(conversations, conversationEvents));
  app.route('/api', securityRouter());
  app.route('/', docsRouter());
  // The Web UI sends a page of payloads at a time: the API's body limit (WARDEN_MAX_BODY_BYTES) fits.
  app.use('/codec/*', bodySizeLimit(deps.config.maxBodyBytes));
  app.route('/codec', codecRouter({ codec: deps.payloadCodec, keys: deps.keys, config: deps.config }));
  // The console: the same services behind pages for people, with sessions instead of bearer keys (and the same body limit).
  app.route(
    CONSOLE_PATH,
    consoleRouter({
      ...deps,
      actions,
      agents,
      stats,
      conversations,
      conversationEvents,
      lockdown,
      system,
      keyService,
      sessions: deps.consoleSessions,
      changeLimit: limiter ? rateLimit<ConsoleEnv>(limiter) : undefined,
    }),
  );
  app.get('/', (c) => c.redirect(CONSOLE_PATH, 303));

  // After every router is mounted: the statuses the middleware above and onError add, on each /api route.
  declareMiddlewareResponses(app.openAPIRegistry);
  app.openAPIRegistry.registerComponent('securitySchemes', 'apiKey', {
    type: 'http',
    scheme: 'bearer',
    description: 'Authorization: Bearer <API key>',
  });
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
      return c.json({ error: { code: err.code, message: scrubText(err.message) } }, err.status);
    }
    if (isTemporalUnreachable(err)) {
      return c.json(
        { error: { code: 'temporal_unavailable', message: 'the Temporal server cannot be reached; try again when it is back' } },
        503,
      );
    }
    const status = (err as { status?: number }).status;
    if (status && status >= 400 && status < 500) {
      // Hono's own HTTPExceptions (malformed JSON and the like) say what is wrong.
      const code = status === 415 ? 'unsupported_media_type' : 'bad_request';
      const message = status === 415 ? `send the body as JSON with Content-Type: application/json (${err.message})` : err.message;
      return c.json({ error: { code, message: scrubText(message) } }, status as 400);
    }
    deps.logger.error(
      { err: { type: err.name, message: err.message, cause: String((err as { cause?: unknown }).cause ?? '') }, path: c.req.path },
      'request failed',
    );
    return c.json({ error: { code: 'internal', message: 'internal error; the server log has the details' } }, 500);
  });
  channels.start();
  // The caller stops the channels when the process ends (they hold gateway connections).
  return Object.assign(app, { channels });
}
