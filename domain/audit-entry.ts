/**
 * An audit entry, as the log and its readers know it: the kinds, the schemas of an entry, an
 * append and a query, and the hash chain's encoding (canonical JSON, sha256 over the previous
 * hash and the entry). The store that keeps entries is stores/audit-store.ts; the API, the CLI and
 * grants use this without opening a database.
 */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const AUDIT_KINDS = [
  'action.submitted',
  'policy.decided',
  'approval.requested',
  'approval.granted',
  'approval.rejected',
  /** An approval attempt that was refused: self-approval, wrong role, already decided, expired… */
  'approval.refused',
  'action.expired',
  'action.cancelled',
  'execution.started',
  'execution.completed',
  'execution.failed',
  'agent.created',
  'agent.status_changed',
  'agent.stopped',
  'key.created',
  'key.revoked',
  /** A key confirmed as its holder's own by a second admin (approvals then count it as that person). */
  'key.confirmed',
  'key.rotated',
  /** A chat user linked to an API key by an admin, the link confirmed by the key's holder, the link revoked. */
  'channel.paired',
  'channel.pairing_confirmed',
  'channel.unpaired',
  /** The vault: a secret stored or deleted (its name, never its value), every secret re-encrypted. */
  'secret.stored',
  'secret.deleted',
  'vault.rotated',
  'system.started',
  'system.stopped',
  /** The emergency lockdown began, was lifted; an emergency stop's report; a request refused because of it. */
  'system.lockdown',
  'system.lockdown_lifted',
  'system.emergency_stop',
  'system.lockdown_refused',
  /** The reaper removed a container whose agent workflow was not running. */
  'reaper.container_removed',
  /** The reaper told a running agent that its container is gone or stopped. */
  'reaper.agent_lost',
  /** The reaper freed the capacity slot of an agent whose workflow had ended. */
  'reaper.slot_released',
  /** The reaper removed a warm pool member: of an earlier worker process, of a profile no longer kept, stopped, or under a lockdown. */
  'reaper.pool_member_removed',
  /** An action whose grant did not hold (not made by the API, altered, replayed elsewhere, expired): it never runs. */
  'action.refused',
  /** A signal or update whose argument did not decode or validate: refused, the workflow carries on. */
  'message.refused',
  /** An action whose workflow was ended outside Warden (terminated, timed out, reset away) before it finished: seen by the API. */
  'action.abandoned',
  /** A conversation's turn ended (answered, at its step limit, cancelled or failed): its actions and the tokens so far. */
  'conversation.turn',
  /** A model provider stayed down and the next of its fallbacks answered. */
  'model.failover',
  /** A conversation's model call: the provider and model that answered, the tokens they reported and what they cost (never the text). */
  'model.call',
  /**
   * A model call's estimate, held against the agent's day before the call is made, so that
   * conversations calling at once cannot each spend the same room; its model.call replaces it.
   */
  'model.reserve',
] as const;
export const AuditKindSchema = z.enum(AUDIT_KINDS);
export type AuditKind = z.infer<typeof AuditKindSchema>;

/** prev_hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

/**
 * The actors workflows and the API record that are not API keys (workflows/agent.ts, action.ts,
 * capacity.ts, reaper.ts; `host` is scripts/confirm-key.ts). An actor that is neither one of these nor a known key id is recorded
 * as unverified.
 */
export const SYSTEM_ACTORS: readonly string[] = ['system', 'reaper', 'system (restart policy)', 'system (idle timeout)', 'host'];

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const AuditEntrySchema = z.object({
  seq: z.number().int().positive(),
  /** Idempotency key: one entry per key, ever. */
  key: z.string().min(1),
  at: z.string(),
  kind: AuditKindSchema,
  /** Who: an API key's id, or a system actor. */
  actor: z.string().nullable(),
  /**
   * Whether the actor was checked when the entry was written: a system actor or a key id the key
   * store knows. false: a claim nobody could confirm (a forged workflow, say); null: written
   * before actors were checked.
   */
  actor_verified: z.boolean().nullable(),
  action_id: z.string().nullable(),
  agent_id: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  prev_hash: Hex64,
  hash: Hex64,
});
export type AuditEntry = z.infer<typeof AuditEntrySchema>;

export const AuditAppendSchema = z.object({
  key: z.string().min(1).max(2000),
  kind: AuditKindSchema,
  actor: z.string().min(1).nullable(),
  action_id: z.string().min(1).nullable().optional(),
  agent_id: z.string().min(1).nullable().optional(),
  details: z.record(z.string(), z.unknown()),
  /** When it happened (ISO 8601); defaults to now. Workflows pass their own clock. */
  at: z.iso.datetime({ offset: true }).optional(),
});
export type AuditAppendInput = z.input<typeof AuditAppendSchema>;

export const AuditQuerySchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  action_id: z.string().min(1).optional(),
  agent_id: z.string().min(1).optional(),
  kind: AuditKindSchema.optional(),
  /** Only entries at or after this time (ISO 8601). */
  since: z.iso.datetime({ offset: true }).optional(),
  /** Only entries before this time (ISO 8601). */
  until: z.iso.datetime({ offset: true }).optional(),
  /** Only entries older than this seq (paging backwards). */
  before_seq: z.coerce.number().int().min(1).optional(),
});
export type AuditQuery = z.input<typeof AuditQuerySchema>;

export interface AuditBreak {
  seq: number;
  reason: string;
}

export interface AuditVerification {
  /** True when nothing is broken: the chain, the head and its anchor. */
  ok: boolean;
  entries: number;
  /** Every break, in the order found (the chain oldest first, then the head, then the anchor). */
  breaks: AuditBreak[];
  /** breaks[0], or null. */
  first_broken: AuditBreak | null;
  /** Entries whose actor could not be verified when written: how many, and the seqs of the first 100. */
  unverified_actors: { count: number; seqs: number[] };
  /** The head's anchor: the master key it is under, and the entry it was first set at (after that, every head was anchored). */
  anchor: { key_id: string; since_seq: number } | null;
}

/** A value that has no canonical JSON form (undefined, a function, NaN, a Date, a cycle…). */
export class AuditEncodingError extends Error {
  override name = 'AuditEncodingError';
}

/**
 * Deterministic JSON: object keys sorted recursively (by UTF-16 code units), no whitespace,
 * numbers as JSON writes them. Anything JSON cannot carry exactly is refused rather than
 * silently dropped or converted, so the hashed bytes are what was meant.
 */
export function canonicalJson(value: unknown, path = '$'): string {
  return encode(value, path, new Set());
}

function encode(value: unknown, path: string, seen: Set<object>): string {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return JSON.stringify(value);
    case 'number':
      if (!Number.isFinite(value)) throw new AuditEncodingError(`${path} is ${value}: only finite numbers have a JSON form`);
      return JSON.stringify(value);
    case 'object': {
      if (seen.has(value)) throw new AuditEncodingError(`${path} refers back to itself: a cycle has no JSON form`);
      seen.add(value);
      try {
        if (Array.isArray(value)) return `[${value.map((v, i) => encode(v, `${path}[${i}]`, seen)).join(',')}]`;
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const type = (value as object).constructor?.name ?? 'object';
          throw new AuditEncodingError(`${path} is a ${type}: use plain objects, arrays, strings, numbers, booleans and null`);
        }
        const record = value as Record<string, unknown>;
        const fields = Object.keys(record)
          .sort()
          .map((k) => `${JSON.stringify(k)}:${encode(record[k], `${path}.${k}`, seen)}`);
        return `{${fields.join(',')}}`;
      } finally {
        seen.delete(value);
      }
    }
    default:
      throw new AuditEncodingError(`${path} is ${typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`}: it has no JSON form`);
  }
}

type HashedFields = Omit<AuditEntry, 'hash' | 'actor_verified'> & { actor_verified?: boolean | null; hash?: string };

/**
 * The hash of an entry: sha256 over the previous hash and the canonical encoding of every other
 * field. An entry written before actors were checked (actor_verified null) is hashed without it.
 */
export function hashEntry(entry: HashedFields): string {
  const { hash: _ignored, actor_verified, ...rest } = entry;
  const fields = actor_verified === null || actor_verified === undefined ? rest : { ...rest, actor_verified };
  return createHash('sha256')
    .update(`${entry.prev_hash}\n${canonicalJson(fields)}`, 'utf8')
    .digest('hex');
}
