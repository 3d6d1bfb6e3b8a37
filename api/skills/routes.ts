/** /api/skills: what agents can do. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
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
  return app;
}
