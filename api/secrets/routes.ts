/**
 * /api/secrets: admins put, list (names only), delete and rotate the vault's secrets. No answer
 * ever carries a value, and the audit log records each change with the secret's name only.
 */
import { randomBytes } from 'node:crypto';
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { WardenError } from '../../domain/errors.js';
import { SecretNameSchema, SecretValueSchema } from '../../domain/secret.js';
import type { AuditStore } from '../../stores/audit-store.js';
import { VaultError, type SecretInfo, type Vault } from '../../stores/vault.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const SecretInfoSchema = z.object({
  name: z.string(),
  key_id: z.string().describe('The master key the secret is encrypted under (its fingerprint, never the key).'),
  created_at: z.string(),
  updated_at: z.string(),
}) satisfies z.ZodType<SecretInfo>;

const NameParam = z.object({ name: SecretNameSchema });

/** A vault failure as the API reports it; the message names secrets and key ids, never values. */
function toWardenError(err: unknown): unknown {
  if (!(err instanceof VaultError)) return err;
  if (err.code === 'secret_not_found') return new WardenError('not_found', err.message, 404);
  if (err.code === 'invalid_secret') return new WardenError('invalid_request', err.message, 400);
  return new WardenError('vault_undecryptable', `${err.message}; nothing was changed`, 409);
}

export function secretsRouter(deps: { vault?: Vault; audit: AuditStore }) {
  const { audit } = deps;
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.use('*', requireRole('admin'));
  const vault = (): Vault => {
    if (!deps.vault)
      throw new WardenError('vault_unavailable', 'the secrets vault is not open in this API process; start the API with its data dir', 503);
    return deps.vault;
  };
  const record = (kind: 'secret.stored' | 'secret.deleted' | 'vault.rotated', actor: string, details: Record<string, unknown>) =>
    audit.append({ key: `api:${kind}:${randomBytes(8).toString('hex')}`, kind, actor, details });

  app.openapi(
    createRoute({
      method: 'put',
      path: '/{name}',
      summary: 'Store a secret (admin); the answer never contains the value',
      request: { params: NameParam, ...jsonBody(z.object({ value: SecretValueSchema }).strict()) },
      responses: {
        201: json(SecretInfoSchema, 'Stored as a new secret'),
        200: json(SecretInfoSchema, 'Replaced an existing secret'),
        ...errorResponses(400, 401, 403, 503),
      },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      const { created, ...info } = await vault().put(name, c.req.valid('json').value);
      await record('secret.stored', c.get('identity').key_id, { name, created, key_id: info.key_id });
      return created ? c.json(info, 201) : c.json(info, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'List secrets: names, times and key ids, never values',
      responses: { 200: json(z.object({ secrets: z.array(SecretInfoSchema) }), 'Secrets'), ...errorResponses(401, 403, 503) },
    }),
    async (c) => c.json({ secrets: await vault().list() }, 200),
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/{name}',
      summary: 'Delete a secret',
      request: { params: NameParam },
      responses: {
        200: json(z.object({ name: z.string(), deleted: z.literal(true) }), 'Deleted'),
        ...errorResponses(400, 401, 403, 404, 503),
      },
    }),
    async (c) => {
      const { name } = c.req.valid('param');
      if (!(await vault().delete(name))) throw new WardenError('not_found', `no secret named ${name}`, 404);
      await record('secret.deleted', c.get('identity').key_id, { name });
      return c.json({ name, deleted: true as const }, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/rotate',
      summary: 'Re-encrypt every secret under the current master key (a new one when the keys are in the key file), all or nothing',
      responses: {
        200: json(
          z.object({ key_id: z.string(), reencrypted: z.number(), total: z.number(), new_master_key: z.boolean(), message: z.string() }),
          'Every secret re-encrypted',
        ),
        ...errorResponses(401, 403, 409, 503),
      },
    }),
    async (c) => {
      let result;
      try {
        result = await vault().rotate();
      } catch (err) {
        throw toWardenError(err);
      }
      await record('vault.rotated', c.get('identity').key_id, result);
      const message = `${result.reencrypted} of ${result.total} secrets re-encrypted under master key ${result.key_id}`;
      return c.json({ ...result, message }, 200);
    },
  );
  return app;
}
