/**
 * /api/channels: the chat channels' state, and the pairings that let a chat user act as an API
 * key. An admin links a platform user to a key; the key's holder confirms the link with that very
 * key (so no admin can make a chat account act as someone else's key); an admin revokes it.
 */
import { createRoute, OpenAPIHono } from '@hono/zod-openapi';
import { z } from 'zod';
import { WardenError } from '../../domain/errors.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { ChannelStore, Pairing } from '../../stores/channel-store.js';
import type { KeyStore } from '../../stores/key-store.js';
import type { ChannelStatus } from '../../channels/service.js';
import { requireRole } from '../middleware/auth.js';
import { errorResponses, jsonBody as body, jsonResponse as json, validationHook, type AppEnv } from '../openapi.js';

const PlatformUserSchema = z
  .string()
  .regex(/^[a-z]+:[A-Za-z0-9_.-]{1,64}$/, 'platform_user: <channel>:<user id on that platform>, e.g. discord:80351110224678912')
  .describe('The channel and the user id the platform gives (Discord: the numeric user id, not the name)');

const PairingSchema = z.object({
  platform_user: z.string(),
  key_id: z.string(),
  paired_at: z.string(),
  paired_by: z.string(),
  confirmed_at: z.string().nullable().describe("When the key's holder confirmed the link with that key; until then clicks are dropped"),
  revoked_at: z.string().nullable(),
  revoked_by: z.string().nullable(),
}) satisfies z.ZodType<Pairing>;

const ChannelStatusSchema = z.object({
  name: z.string(),
  enabled: z.boolean(),
  connected: z.boolean(),
  rooms: z.array(z.string()),
  last_event_at: z.string().nullable(),
  error: z.string().nullable().describe('Why it is not connected; it is retried with backoff'),
}) satisfies z.ZodType<ChannelStatus>;

const UserParams = z.object({ platform_user: PlatformUserSchema });

/** Each step of a pairing's life, as the audit log names it. */
const PAIRING_STEPS = { paired: 'channel.paired', confirmed: 'channel.pairing_confirmed', revoked: 'channel.unpaired' } as const;

export function channelsRouter(deps: { store: ChannelStore; keys: KeyStore; audit: AuditStore; status: () => ChannelStatus[] }) {
  const { store, keys, audit } = deps;
  // Keyed by the pairing's start: each step is logged once, and a pairing made again after a revocation is a new one.
  const logStep = (pairing: Pairing, step: keyof typeof PAIRING_STEPS, actor: string) =>
    audit.append({
      key: `pairing:${pairing.platform_user}:${pairing.paired_at}:${step}`,
      kind: PAIRING_STEPS[step],
      actor,
      details: { platform_user: pairing.platform_user, key_id: pairing.key_id },
    });
  const app = new OpenAPIHono<AppEnv>({ defaultHook: validationHook });
  app.on(['GET', 'POST'], '/pairings', requireRole('admin'));
  app.on('DELETE', '/pairings/:platform_user', requireRole('admin'));

  app.openapi(
    createRoute({
      method: 'get',
      path: '/',
      summary: 'The chat channels: enabled, connected, rooms, last event, error',
      responses: { 200: json(z.object({ channels: z.array(ChannelStatusSchema) }), 'Channels'), ...errorResponses(401) },
    }),
    (c) => c.json({ channels: deps.status() }, 200),
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/pairings',
      summary: 'Pairings of chat users to API keys, revoked ones too (admin)',
      responses: { 200: json(z.object({ pairings: z.array(PairingSchema) }), 'Pairings'), ...errorResponses(401, 403) },
    }),
    (c) => c.json({ pairings: store.pairings() }, 200),
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/pairings',
      summary: "Link a chat user to an API key (admin); it acts once the key's holder confirms it",
      request: body(z.object({ platform_user: PlatformUserSchema, key_id: z.string().regex(/^key_[0-9a-f]{12}$/) }).strict()),
      responses: { 201: json(PairingSchema, 'The pairing, awaiting confirmation'), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { platform_user, key_id } = c.req.valid('json');
      const by = c.get('identity');
      if (!(await keys.identityOf(key_id))) throw new WardenError('not_found', `no live API key ${key_id}`, 404);
      const pairing = store.pair(platform_user, key_id, by.key_id);
      if (!pairing) {
        throw new WardenError(
          'already_paired',
          `${platform_user} is already paired to ${store.pairing(platform_user)?.key_id}; revoke that pairing first`,
          409,
        );
      }
      await logStep(pairing, 'paired', by.key_id);
      return c.json(pairing, 201);
    },
  );

  app.openapi(
    createRoute({
      method: 'post',
      path: '/pairings/{platform_user}/confirm',
      summary: 'Confirm a pairing as yours: only with the very key it links to',
      request: { params: UserParams },
      responses: { 200: json(PairingSchema, 'The confirmed pairing'), ...errorResponses(400, 401, 403, 404, 409) },
    }),
    async (c) => {
      const { platform_user } = c.req.valid('param');
      const by = c.get('identity');
      const pairing = store.pairing(platform_user);
      if (!pairing || pairing.revoked_at) throw new WardenError('not_found', `no live pairing of ${platform_user}`, 404);
      if (pairing.key_id !== by.key_id) {
        throw new WardenError('forbidden', `the pairing of ${platform_user} is confirmed with the key it links to, not ${by.name}`, 403);
      }
      if (!store.confirm(platform_user, by.key_id))
        throw new WardenError('already_confirmed', `${platform_user} is already confirmed`, 409);
      const confirmed = store.pairing(platform_user)!;
      await logStep(confirmed, 'confirmed', by.key_id);
      return c.json(confirmed, 200);
    },
  );

  app.openapi(
    createRoute({
      method: 'delete',
      path: '/pairings/{platform_user}',
      summary: 'Revoke a pairing (admin): its clicks are dropped from now on',
      request: { params: UserParams },
      responses: { 200: json(PairingSchema, 'The revoked pairing'), ...errorResponses(400, 401, 403, 404) },
    }),
    async (c) => {
      const { platform_user } = c.req.valid('param');
      const by = c.get('identity');
      const revoked = store.unpair(platform_user, by.key_id);
      if (!revoked) throw new WardenError('not_found', `no live pairing of ${platform_user}`, 404);
      await logStep(revoked, 'revoked', by.key_id);
      return c.json(revoked, 200);
    },
  );
  return app;
}
