/** /api/security/validate: what the injection screen thinks of a text. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { screenText } from '../../domain/injection-screen/index.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

export function securityRouter() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });

  app.openapi(
    createRoute({
      method: 'post',
      path: '/security/validate',
      summary: 'Screen a text for prompt injection: verdict, score, categories, findings',
      request: {
        body: {
          required: true,
          content: { 'application/json': { schema: z.object({ text: z.string().max(1_000_000) }).strict() } },
        },
      },
      responses: {
        200: json(
          z.object({
            verdict: z.enum(['clean', 'suspicious', 'injection']),
            score: z.number(),
            categories: z.array(z.string()),
            findings: z.array(z.object({ category: z.string(), evidence: z.string() })),
          }),
          'The screen result',
        ),
        ...errorResponses(400, 401),
      },
    }),
    (c) => c.json(screenText(c.req.valid('json').text), 200),
  );
  return app;
}
