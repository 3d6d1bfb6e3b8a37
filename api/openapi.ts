/** Shared pieces of the OpenAPI routes: the error shape and the hook that reports bad input. */
import type { Hook, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';

import type { AuthEnv } from './middleware/auth.js';

export type AppEnv = AuthEnv;

export const ErrorSchema = z.object({
  error: z.object({ code: z.string(), message: z.string(), issues: z.array(z.string()).optional() }),
});

export const errorResponses = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, { description: 'Error', content: { 'application/json': { schema: ErrorSchema } } }]));

/** Every validation failure: 400 with each problem as "where: what". */
export const validationHook: Hook<unknown, AppEnv, string, unknown> = (result, c) => {
  if (result.success) return;
  const issues = result.error.issues.map((i) => `${[result.target, ...i.path].join('.')}: ${i.message}`);
  return c.json({ error: { code: 'invalid_request', message: issues.join('; '), issues } }, 400);
};

/** A JSON response of this schema. */
export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { 'application/json': { schema } },
});

/** A JSON request body of this schema. */
export const jsonBody = <T extends z.ZodType>(schema: T, required = true) => ({
  body: { required, content: { 'application/json': { schema } } },
});

/**
 * Declares on every /api route what the middleware in front of it and the error handler can
 * answer: 401 (no key), 429 (rate limited), 503 (Temporal unreachable); 413 (too large) and 415
 * (not JSON) wherever a body can be sent; 400 (malformed JSON) where one is read.
 */
export function declareMiddlewareResponses(registry: OpenAPIHono['openAPIRegistry']) {
  for (const definition of registry.definitions) {
    if (definition.type !== 'route' || !definition.route.path.startsWith('/api/')) continue;
    const { route } = definition;
    const codes = route.method === 'get' ? [401, 429, 503] : [401, 413, 415, 429, 503];
    if (route.request?.body) codes.push(400);
    route.responses = { ...errorResponses(...codes), ...route.responses };
  }
}
