/**
 * /api/providers: the configured model providers, their health (a real round trip each time it is
 * asked) and the models each serves. No answer carries an API key or the name of the vault secret
 * holding it.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { PROVIDER_KINDS } from '../../domain/model-providers.js';
import { WardenError } from '../../domain/errors.js';
import { ProviderError } from '../../llm/errors.js';
import type { ProviderRegistry } from '../../llm/registry.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

// Any name: one that no provider has is a 404, whatever its shape.
const NameParam = z.object({ name: z.string() });

const ProviderSchema = z.object({
  name: z.string(),
  kind: z.enum(PROVIDER_KINDS),
  base_url: z.string(),
  default_model: z.string(),
  fallback: z.array(z.string()).describe('The providers tried, in order, when this one stays down.'),
  status: z.enum(['up', 'down', 'unknown']).describe('From the last health check since the API started; unknown before the first.'),
  checked_at: z.string().nullable(),
});

const HealthSchema = z.object({
  name: z.string(),
  status: z.enum(['up', 'down']),
  latency_ms: z.number(),
  error: z.string().nullable().describe('Why it is down: what failed and what to check.'),
  checked_at: z.string(),
});

export function providersRouter(registry: ProviderRegistry) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('viewer'));
  const entry = (name: string) => {
    const found = registry.get(name);
    if (!found) throw new WardenError('not_found', `no model provider is named ${name}; GET /api/providers lists them`, 404);
    return found;
  };

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'The configured model providers, each with the status of its last health check',
      responses: { 200: json(z.object({ providers: z.array(ProviderSchema) }), 'Providers') },
    }),
    (c) =>
      c.json(
        {
          providers: registry.list().map(({ config, lastHealth }) => ({
            name: config.name,
            kind: config.kind,
            base_url: config.base_url,
            default_model: config.default_model,
            fallback: config.fallback,
            status: lastHealth?.status ?? ('unknown' as const),
            checked_at: lastHealth?.checked_at ?? null,
          })),
        },
        200,
      ),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/health',
      summary:
        'Check a provider now (one round trip: its model list); a provider that is down answers 200 with status down and why, as /api/status does for components',
      request: { params: NameParam },
      responses: { 200: json(HealthSchema, "The provider's state now"), ...errorResponses(404) },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      entry(name);
      const health = (await registry.health(name, c.req.raw.signal))!;
      return c.json(
        { name, status: health.status, latency_ms: health.latency_ms, error: health.error ?? null, checked_at: health.checked_at },
        200,
      );
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/{name}/models',
      summary: 'The models a provider serves, as it lists them',
      request: { params: NameParam },
      responses: {
        200: json(z.object({ models: z.array(z.object({ id: z.string(), owned_by: z.string().optional() })) }), 'Models'),
        ...errorResponses(404, 503),
      },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      try {
        return c.json({ models: await entry(name).provider.listModels(c.req.raw.signal) }, 200);
      } catch (err) {
        if (err instanceof ProviderError) throw new WardenError('provider_unavailable', err.message, 503);
        throw err;
      }
    },
  );
  return app;
}
