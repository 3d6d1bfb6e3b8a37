/** /api/keys: admins create (the key is shown once), list and revoke API keys. */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { RoleSchema } from '../../domain/roles.js';
import { WardenError } from '../../domain/errors.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { ApiKeyInfo, KeyStore } from '../../stores/key-store.js';
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

/** What else a revocation ends: the key's actions awaiting approval (their ids). */
export type OnRevoked = (keyId: string, by: string) => Promise<string[]>;

export function keysRouter(keys: KeyStore, audit: AuditStore, onRevoked: OnRevoked = async () => []) {
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
              schema: z
                .object({
                  name: z
                    .string()
                    .trim()
                    .min(1)
                    .max(100)
                    .regex(/^[\w .@-]+$/, 'name: letters, digits, spaces and . _ @ -'),
                  role: RoleSchema,
                  person: z
                    .string()
                    .trim()
                    .min(1)
                    .max(100)
                    .regex(/^[\w .@-]+$/, 'person: letters, digits, spaces and . _ @ -')
                    .optional()
                    .describe('Who holds the key (default: its name). It counts as that person once a second admin confirms it'),
                })
                .strict(),
            },
          },
        },
      },
      responses: { 201: json(KeyInfoSchema.extend({ key: z.string() }), 'The new key'), ...errorResponses(400, 401, 403) },
    }),
    async (c) => {
      const { name, role, person } = c.req.valid('json');
      const created = await keys.create(name, role, c.get('identity').key_id, { person });
      await audit.append({
        key: `key:${created.id}:created`,
        kind: 'key.created',
        actor: c.get('identity').key_id,
        details: { id: created.id, name, role, person: created.person, counts_as: created.counts_as },
      });
      return c.json(created, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/{id}/confirm',
      summary: "Confirm a key as its holder's own (admin, another person than the key's maker): approvals then count it as that person",
      request: { params: KeyIdSchema },
      responses: { 200: json(KeyInfoSchema, 'The confirmed key'), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { id } = c.req.valid('param');
      const by = c.get('identity');
      if (!(await keys.get(id))) throw new WardenError('not_found', `no API key ${id}`, 404);
      const problem = await keys.confirm(id, by);
      if (problem) throw new WardenError('confirmation_refused', problem, 409);
      const confirmed = (await keys.get(id))!;
      await audit.append({
        key: `key:${id}:confirmed`,
        kind: 'key.confirmed',
        actor: by.key_id,
        details: { id, person: confirmed.person },
      });
      return c.json(confirmed, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'List API keys (never their secrets)',
      responses: { 200: json(z.object({ keys: z.array(KeyInfoSchema) }), 'Keys'), ...errorResponses(401, 403) },
    }),
    async (c) => c.json({ keys: await keys.list() }, 200),
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
    async (c) => {
      const revoked = await keys.revoke(c.req.valid('param').id);
      if (!revoked) throw new WardenError('not_found', `no API key ${c.req.valid('param').id}`, 404);
      const by = c.get('identity').key_id;
      await audit.append({
        key: `key:${revoked.id}:revoked`,
        kind: 'key.revoked',
        actor: by,
        details: { id: revoked.id, name: revoked.name },
      });
      return c.json({ ...revoked, cancelled_actions: await onRevoked(revoked.id, by) }, 200);
    },
  );
  return app;
}
