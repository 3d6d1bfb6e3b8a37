/**
 * API keys as admins manage them, through the REST API or the console: every change is on the
 * audit log, and a revocation also ends what the key asked for that still awaits approval.
 */
import { WardenError } from '../../domain/errors.js';
import { z } from 'zod';
import { RoleSchema, type Identity } from '../../domain/roles.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { KeyStore } from '../../stores/key-store.js';

const PersonName = (what: string) =>
  z
    .string()
    .trim()
    .min(1)
    .max(100)
    .regex(/^[\w .@-]+$/, `${what}: letters, digits, spaces and . _ @ -`);

export const CreateKeyRequestSchema = z
  .object({
    name: PersonName('name'),
    role: RoleSchema,
    person: PersonName('person')
      .optional()
      .describe('Who holds the key (default: its name). It counts as that person once a second admin confirms it'),
  })
  .strict();

/** What else a revocation ends: the key's actions awaiting approval (their ids). */
export type OnRevoked = (keyId: string, by: string) => Promise<string[]>;

export function createKeyService(keys: KeyStore, audit: AuditStore, onRevoked: OnRevoked = async () => []) {
  async function createKey(request: z.output<typeof CreateKeyRequestSchema>, by: Identity) {
    const { name, role, person } = request;
    const created = await keys.create(name, role, by.key_id, { person });
    await audit.append({
      key: `key:${created.id}:created`,
      kind: 'key.created',
      actor: by.key_id,
      details: { id: created.id, name, role, person: created.person, counts_as: created.counts_as },
    });
    return created;
  }

  async function confirmKey(id: string, by: Identity) {
    if (!(await keys.get(id))) throw new WardenError('not_found', `no API key ${id}`, 404);
    const problem = await keys.confirm(id, by);
    if (problem) throw new WardenError('confirmation_refused', problem, 409);
    const confirmed = (await keys.get(id))!;
    await audit.append({ key: `key:${id}:confirmed`, kind: 'key.confirmed', actor: by.key_id, details: { id, person: confirmed.person } });
    return confirmed;
  }

  async function revokeKey(id: string, by: Identity) {
    const revoked = await keys.revoke(id);
    if (!revoked) throw new WardenError('not_found', `no API key ${id}`, 404);
    await audit.append({
      key: `key:${revoked.id}:revoked`,
      kind: 'key.revoked',
      actor: by.key_id,
      details: { id: revoked.id, name: revoked.name },
    });
    return { ...revoked, cancelled_actions: await onRevoked(revoked.id, by.key_id) };
  }

  return { createKey, confirmKey, revokeKey, listKeys: () => keys.list() };
}

export type KeyService = ReturnType<typeof createKeyService>;
