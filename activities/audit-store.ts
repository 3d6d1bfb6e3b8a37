/**
 * The audit log: append-only and tamper-evident, in SQLite under the data dir. Every entry
 * carries the hash of the one before it (a hash chain over a canonical encoding), so changing,
 * deleting, reordering or inserting an entry breaks a link that `verify()` reports. A `head` row,
 * written in the same transaction as each entry, records the newest (seq, hash): the chain alone
 * cannot notice that its newest entries were cut off. Someone able to rewrite the whole file
 * consistently (every hash and the head) is only caught by an anchor kept elsewhere, for
 * instance a head exported to another system now and then.
 *
 * Appends are idempotent by key: a retried activity gets the entry its first attempt wrote.
 * The store never logs: details may name things a log should not.
 */
import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import { z } from 'zod';
import { scrubValue } from '../domain/redact.js';

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
  'key.rotated',
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
  /** An action whose grant did not hold (not made by the API, altered, replayed elsewhere, expired): it never runs. */
  'action.refused',
  /** A signal or update whose argument did not decode or validate: refused, the workflow carries on. */
  'message.refused',
] as const;
export const AuditKindSchema = z.enum(AUDIT_KINDS);
export type AuditKind = z.infer<typeof AuditKindSchema>;

/** prev_hash of the first entry. */
export const GENESIS_HASH = '0'.repeat(64);

const Hex64 = z.string().regex(/^[0-9a-f]{64}$/);

export const AuditEntrySchema = z.object({
  seq: z.number().int().positive(),
  /** Idempotency key: one entry per key, ever. */
  key: z.string().min(1),
  at: z.string(),
  kind: AuditKindSchema,
  /** Who: an API key's name or id, or 'system'. */
  actor: z.string().nullable(),
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
  /** Only entries older than this seq (paging backwards). */
  before_seq: z.coerce.number().int().min(1).optional(),
});
export type AuditQuery = z.input<typeof AuditQuerySchema>;

export interface AuditVerification {
  ok: boolean;
  entries: number;
  first_broken: null | { seq: number; reason: string };
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

/** The hash of an entry: sha256 over the previous hash and the canonical encoding of every other field. */
export function hashEntry(entry: Omit<AuditEntry, 'hash'> & { hash?: string }): string {
  const { hash: _ignored, ...fields } = entry;
  return createHash('sha256').update(`${entry.prev_hash}\n${canonicalJson(fields)}`, 'utf8').digest('hex');
}

interface Row {
  seq: number;
  key: string;
  at: string;
  kind: string;
  actor: string | null;
  action_id: string | null;
  agent_id: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

const COLUMNS = 'seq, key, at, kind, actor, action_id, agent_id, details, prev_hash, hash';

function toEntry(row: Row): AuditEntry {
  let details: Record<string, unknown>;
  try {
    details = JSON.parse(row.details);
  } catch {
    throw new Error(`audit entry ${row.seq} has unreadable details; run \`warden audit verify --db <file>\``);
  }
  return { ...row, kind: row.kind as AuditKind, details };
}

/** The entry as stored, or null when its details no longer parse (a tampered row). */
function rowFields(row: Row): Omit<AuditEntry, 'hash'> | null {
  try {
    const { hash: _ignored, ...fields } = toEntry(row);
    return fields;
  } catch {
    return null;
  }
}

const rowHashMatches = (row: Row, seq = row.seq): boolean => {
  const fields = rowFields(row);
  if (!fields) return false;
  try {
    return hashEntry({ ...fields, seq }) === row.hash;
  } catch {
    return false;
  }
};

export class AuditStore {
  private constructor(private readonly db: Database.Database) {}

  /**
   * Opens (and creates) the log. `readonly` opens an existing file without changing it, for the
   * verifier and the CLI.
   */
  static open(path: string, opts: { readonly?: boolean } = {}): AuditStore {
    if (opts.readonly) {
      const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 10_000 });
      return new AuditStore(db);
    }
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
    // Writers in other processes wait for the write lock instead of failing at once.
    const db = new Database(path, { timeout: 10_000 });
    db.pragma('journal_mode = WAL');
    // An acknowledged audit entry survives a power cut, not only a crash.
    db.pragma('synchronous = FULL');
    db.exec(`
      CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        action_id TEXT,
        agent_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE INDEX IF NOT EXISTS entries_action ON entries (action_id, seq) WHERE action_id IS NOT NULL;
      CREATE INDEX IF NOT EXISTS entries_agent ON entries (agent_id, seq) WHERE agent_id IS NOT NULL;
      CREATE INDEX IF NOT EXISTS entries_kind ON entries (kind, seq);
      CREATE INDEX IF NOT EXISTS entries_hash ON entries (hash);
      CREATE INDEX IF NOT EXISTS entries_prev_hash ON entries (prev_hash);
      CREATE TABLE IF NOT EXISTS head (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        seq INTEGER NOT NULL,
        hash TEXT NOT NULL
      );
      INSERT OR IGNORE INTO head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');
      -- Against mistakes, not attackers (who can drop these): the chain is what catches them.
      CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
      CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    `);
    return new AuditStore(db);
  }

  close(): void {
    this.db.close();
  }

  /**
   * Appends an entry, atomically: the write lock is taken first, then the head is read, the hash
   * computed and the entry and head written in one transaction. Idempotent by key: when the key
   * is already stored, that entry is returned unchanged and nothing is written, even when this
   * call's details differ (the first write wins).
   */
  append(input: AuditAppendInput): AuditEntry {
    const parsed = AuditAppendSchema.parse(input);
    // Credentials that slipped into details (an error message quoting a URL, say) are redacted before hashing.
    // Encoded first, so what has no JSON form is refused as before; the plain JSON is then scrubbed.
    const details = canonicalJson(scrubValue(JSON.parse(canonicalJson(parsed.details, 'details'))));
    return this.db
      .transaction((): AuditEntry => {
        const existing = this.db.prepare(`SELECT ${COLUMNS} FROM entries WHERE key = ?`).get(parsed.key) as Row | undefined;
        if (existing) return toEntry(existing);
        // The head, not the newest row, is what the next entry links to: if the newest rows were
        // deleted, new entries keep pointing at them and the gap stays visible to verify().
        const head = this.db.prepare('SELECT seq, hash FROM head WHERE id = 1').get() as { seq: number; hash: string };
        const last = (this.db.prepare('SELECT MAX(seq) AS seq FROM entries').get() as { seq: number | null }).seq ?? 0;
        if (last > head.seq) {
          throw new Error(
            `the audit log is inconsistent: its head records entry ${head.seq} but entry ${last} exists; ` +
              'run `warden audit verify --db <file>`',
          );
        }
        const fields: Omit<AuditEntry, 'hash'> = {
          seq: head.seq + 1,
          key: parsed.key,
          at: parsed.at ?? new Date().toISOString(),
          kind: parsed.kind,
          actor: parsed.actor,
          action_id: parsed.action_id ?? null,
          agent_id: parsed.agent_id ?? null,
          details: JSON.parse(details),
          prev_hash: head.hash,
        };
        const entry: AuditEntry = { ...fields, hash: hashEntry(fields) };
        this.db
          .prepare(`INSERT INTO entries (${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
          .run(entry.seq, entry.key, entry.at, entry.kind, entry.actor, entry.action_id, entry.agent_id, details, entry.prev_hash, entry.hash);
        this.db.prepare('UPDATE head SET seq = ?, hash = ? WHERE id = 1').run(entry.seq, entry.hash);
        return entry;
      })
      .immediate();
  }

  /** Entries, newest first. */
  list(query: AuditQuery = {}): AuditEntry[] {
    const q = AuditQuerySchema.parse(query);
    const where: string[] = [];
    const params: unknown[] = [];
    for (const field of ['action_id', 'agent_id', 'kind'] as const) {
      if (q[field] !== undefined) {
        where.push(`${field} = ?`);
        params.push(q[field]);
      }
    }
    if (q.before_seq !== undefined) {
      where.push('seq < ?');
      params.push(q.before_seq);
    }
    const sql = `SELECT ${COLUMNS} FROM entries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
    return (this.db.prepare(sql).all(...params, q.limit) as Row[]).map(toEntry);
  }

  /** The newest entry's (seq, hash) as the head records it: the value to anchor elsewhere. */
  head(): { seq: number; hash: string } {
    return this.headRow() ?? { seq: 0, hash: GENESIS_HASH };
  }

  private headRow(): { seq: number; hash: string } | undefined {
    const table = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'head'").get();
    if (!table) return undefined;
    return this.db.prepare('SELECT seq, hash FROM head WHERE id = 1').get() as { seq: number; hash: string } | undefined;
  }

  /**
   * Walks the chain oldest first and reports the first broken link: an entry that was changed,
   * deleted, moved or inserted, or a head that does not match the newest entry.
   */
  verify(): AuditVerification {
    return this.db.transaction((): AuditVerification => {
      const entries = (this.db.prepare('SELECT COUNT(*) AS n FROM entries').get() as { n: number }).n;
      const broken = (seq: number, reason: string): AuditVerification => ({ ok: false, entries, first_broken: { seq, reason } });
      let prev = GENESIS_HASH;
      let expected = 1;
      let anomaly: Row | undefined;
      for (const row of this.db.prepare(`SELECT ${COLUMNS} FROM entries ORDER BY seq`).iterate() as IterableIterator<Row>) {
        if (row.seq !== expected || row.prev_hash !== prev || !rowHashMatches(row)) {
          anomaly = row;
          break;
        }
        prev = row.hash;
        expected += 1;
      }
      if (anomaly) {
        const found = this.diagnose(anomaly, expected, prev);
        return broken(found.seq, found.reason);
      }
      const last = expected - 1;
      const head = this.headRow();
      if (!head) return broken(last + 1, 'the head record is missing, so entries cut off the end of the log would go unnoticed');
      if (head.seq > last) {
        const missing = head.seq === last + 1 ? `entry ${head.seq} is missing` : `entries ${last + 1} to ${head.seq} are missing`;
        return broken(last + 1, `${missing}: the head records entry ${head.seq} but the log ends at entry ${last} (the newest entries were deleted)`);
      }
      if (head.seq < last) {
        return broken(head.seq + 1, `entry ${head.seq + 1} was added outside the audit store: the head records entry ${head.seq} as the newest`);
      }
      if (head.hash !== prev) {
        return broken(last, `entry ${last} was replaced: its hash does not match the one the head recorded for it`);
      }
      return { ok: true, entries, first_broken: null };
    })();
  }

  /**
   * Says what happened at the first entry that does not fit: `row` sits where entry `expected`
   * should be, and entry `expected - 1` (hash `prev`) is intact.
   */
  private diagnose(row: Row, expected: number, prev: string): { seq: number; reason: string } {
    if (row.seq !== expected) {
      const missing = row.seq === expected + 1 ? `entry ${expected} is missing` : `entries ${expected} to ${row.seq - 1} are missing`;
      return { seq: expected, reason: `${missing}: the log jumps from entry ${expected - 1} to entry ${row.seq} (deleted)` };
    }
    const n = row.seq;
    if (rowHashMatches(row)) {
      // Intact as written at this seq, yet written after a different entry n-1.
      return { seq: n - 1, reason: `entry ${n - 1} was replaced or inserted: entry ${n} was written after a different entry ${n - 1}` };
    }
    // The entry that was written right after entry n-1, if it is still in the log somewhere else.
    const successor = this.db.prepare('SELECT seq FROM entries WHERE prev_hash = ? AND seq != ? ORDER BY seq LIMIT 1').get(prev, n) as
      | { seq: number }
      | undefined;
    const writtenAs = this.originalSeq(row);
    if (writtenAs !== null && writtenAs > n) {
      if (successor) {
        return { seq: n, reason: `entries were reordered: seq ${n} holds the entry written as entry ${writtenAs}, and entry ${n} is now at seq ${successor.seq}` };
      }
      const deleted = writtenAs === n + 1 ? `entry ${n} was deleted` : `entries ${n} to ${writtenAs - 1} were deleted`;
      return { seq: n, reason: `${deleted} and the later entries renumbered: seq ${n} holds the entry written as entry ${writtenAs}` };
    }
    if (writtenAs !== null && writtenAs < n) {
      return { seq: writtenAs, reason: `entry ${writtenAs} was inserted: the entry now at seq ${n} was written as entry ${writtenAs}` };
    }
    if (successor) {
      return { seq: n, reason: `entry ${n} was inserted: the entry written after entry ${n - 1} is now at seq ${successor.seq}` };
    }
    return { seq: n, reason: `entry ${n} was changed: its contents no longer match its hash` };
  }

  /**
   * The seq an intact entry was written with, when it now sits elsewhere; null when its contents
   * match its hash at no seq (it was changed). Only runs once a break is found.
   */
  private originalSeq(row: Row): number | null {
    const fields = rowFields(row);
    if (!fields) return null;
    const stats = this.db.prepare('SELECT COALESCE(MAX(seq), 0) AS last, COUNT(*) AS n FROM entries').get() as { last: number; n: number };
    // Entries renumbered after a deletion were written with larger seqs than the log now holds.
    const upTo = Math.max(stats.last, this.headRow()?.seq ?? 0) + stats.n;
    try {
      for (let seq = 1; seq <= upTo; seq++) if (hashEntry({ ...fields, seq }) === row.hash) return seq;
    } catch {
      return null;
    }
    return null;
  }

  /**
   * Streams entries oldest first to `write`, one canonical JSON object (hash included) per call,
   * without the newline: JSON Lines. Returns how many were written.
   */
  exportJsonl(write: (line: string) => void, opts: { after_seq?: number } = {}): number {
    return this.db.transaction((): number => {
      let count = 0;
      const rows = this.db.prepare(`SELECT ${COLUMNS} FROM entries WHERE seq > ? ORDER BY seq`).iterate(opts.after_seq ?? 0) as IterableIterator<Row>;
      for (const row of rows) {
        write(canonicalJson(toEntry(row)));
        count += 1;
      }
      return count;
    })();
  }
}
