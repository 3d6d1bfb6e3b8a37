/** /api/skills and /api/security/validate: what agents can do, and what the injection screen thinks of a text. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { screenText } from '../../domain/injection-screen.js';
import { SKILLS, toJsonSchema } from '../../skills/index.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';


export function skillsRouter() {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  const catalogue = Object.values(SKILLS).map((skill) => ({
    id: skill.id,
    description: skill.description,
    operations: Object.entries(skill.operations).map(([name, op]) => ({
      name,
      description: op.description,
      risk: op.risk,
      parameters: toJsonSchema(skill.id, name),
    })),
  }));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/skills',
      summary: 'Skills, their operations, default risks and parameter JSON Schemas',
      responses: {
        200: json(
          z.object({
            skills: z.array(
              z.object({
                id: z.string(),
                description: z.string(),
                operations: z.array(
                  z.object({ name: z.string(), description: z.string(), risk: z.string(), parameters: z.record(z.string(), z.unknown()) }),
                ),
              }),
            ),
          }),
          'Skills',
        ),
        ...errorResponses(401),
      },
    }),
    (c) => c.json({ skills: catalogue }, 200),
  );

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
