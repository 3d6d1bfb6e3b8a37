/** /api/keys: admins create (the key is shown once), list and revoke API keys. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { RoleSchema } from '../../domain/roles.js';
import type { ApiKeyInfo } from '../../stores/key-store.js';
import { CreateKeyRequestSchema, type KeyService } from './service.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const KeyInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  role: RoleSchema,
  person: z.string().describe('Who holds the key'),
  created_at: z.string(),
  created_by: z.string().nullable(),
  confirmed_by: z.string().nullable().describe('The admin key (or "host") that confirmed the key as its holder\'s own'),
  revoked_at: z.string().nullable(),
  counts_as: z
    .string()
    .describe('The person approvals count the key as: its holder once confirmed (or made on the host), else the admin who made it'),
}) satisfies z.ZodType<ApiKeyInfo>;

const KeyIdSchema = z.object({ id: z.string().regex(/^key_[0-9a-f]{12}$/, 'id: key_ followed by 12 hex digits') });

export function keysRouter(keys: KeyService) {
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin'));

  app.openapi(
    createRoute({
      method: 'post',
      path: '/',
      summary: 'Create an API key (admin); the key is in this answer and never again',
      request: {
        body: {
          required: true,
          content: {
            'application/json': {
              schema: CreateKeyRequestSchema,
            },
          },
        },
      },
      responses: { 201: json(KeyInfoSchema.extend({ key: z.string() }), 'The new key'), ...errorResponses(400, 401, 403) },
    }),
    async (c) => c.json(await keys.createKey(c.req.valid('json'), c.get('identity')), 201),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/confirm',
      summary: "Confirm a key as its holder's own (admin, another person than the key's maker): approvals then count it as that person",
      request: { params: KeyIdSchema },
      responses: { 200: json(KeyInfoSchema, 'The confirmed key'), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => c.json(await keys.confirmKey(c.req.valid('param').id, c.get('identity')), 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'List API keys (never their secrets)',
      responses: { 200: json(z.object({ keys: z.array(KeyInfoSchema) }), 'Keys'), ...errorResponses(401, 403) },
    }),
    async (c) => c.json({ keys: await keys.listKeys() }, 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{id}',
      summary: 'Revoke an API key',
      request: { params: KeyIdSchema },
      responses: {
        200: json(
          KeyInfoSchema.extend({
            cancelled_actions: z.array(z.string()).describe('Its actions that were awaiting approval, now cancelled'),
          }),
          'The revoked key',
        ),
        ...errorResponses(400, 401, 403, 404),
      },
    }),
    async (c) => c.json(await keys.revokeKey(c.req.valid('param').id, c.get('identity')), 200),
  );
  return app;
}
