/**
 * The audit log: append-only and tamper-evident. Every entry carries the hash of the one before it
 * (a hash chain over a canonical encoding), so changing, deleting, reordering or inserting an
 * entry breaks a link that `verify()` reports, every break with its reason. A `head` row, written
 * in the same transaction as each entry, records the newest (seq, hash): the chain alone cannot
 * notice that its newest entries were cut off. The head is anchored with a MAC under a key derived
 * from the master key, which the database never holds: whoever rewrites the whole table and
 * re-chains it consistently cannot make the anchor match.
 *
 * Each entry says whether its actor was verified when it was written: a system actor, or an API
 * key the key store knows. Workflows pass actors in, and anyone who reaches Temporal can start a
 * workflow, so any other actor is recorded as claimed, never as trusted.
 *
 * Appends are idempotent by key: a retried activity gets the entry its first attempt wrote.
 * The store never logs: details may name things a log should not.
 *
 * This file holds the contract and everything both back ends share (appending, verifying,
 * exporting); a back end only reads and writes rows inside a transaction (AuditTables). The
 * embedded back end is SQLite under the data dir (`AuditStore.open`, below); the shared one is
 * PostgreSQL (stores/postgres/audit-store.ts).
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { resolve } from 'node:path';
import Database from 'better-sqlite3';
import { KeyringError, type Keyring } from '../domain/keyring.js';
import { scrubValue } from '../domain/redact.js';
import {
  AuditAppendSchema,
  AuditQuerySchema,
  canonicalJson,
  GENESIS_HASH,
  hashEntry,
  SYSTEM_ACTORS,
  type AuditAppendInput,
  type AuditBreak,
  type AuditEntry,
  type AuditKind,
  type AuditQuery,
  type AuditVerification,
} from '../domain/audit-entry.js';
import { SerialQueue } from './serial-queue.js';
import { hasColumn, openSqliteDatabase } from './sqlite-database.js';

/** The log does not match its anchor: it was rewritten outside the audit store, or cannot be checked here. */
export class AuditIntegrityError extends Error {
  override name = 'AuditIntegrityError';
}

const LISTED_UNVERIFIED = 100;
/** Breaks past this many are reported without searching for where their entry came from (each search hashes the whole log). */
const DIAGNOSED_BREAKS = 100;

// Node 20 has String.prototype.toWellFormed; the ES2022 library this project compiles against does not declare it.
const toWellFormed = (text: string): string => (text as string & { toWellFormed(): string }).toWellFormed();

/**
 * A lone surrogate becomes U+FFFD: UTF-8 (SQLite's text, PostgreSQL's) cannot hold one, so it
 * would be hashed as written and read back as U+FFFD, and an honest entry would fail verification.
 * A NUL becomes U+FFFD too: PostgreSQL's text cannot hold it. (Details are stored as JSON, whose
 * escapes carry both exactly.)
 */
const wellFormed = <T extends string | null | undefined>(text: T): T =>
  (typeof text === 'string' ? toWellFormed(text).replaceAll('\0', '\uFFFD') : text) as T;

/** The MAC that anchors a head (seq, hash), first set at entry `since`. */
function anchorMac(key: Buffer, head: { seq: number; hash: string }, since: number): string {
  return createHmac('sha256', key).update(`warden audit head v1\0${head.seq}\0${head.hash}\0${since}`, 'utf8').digest('hex');
}

/** An entry as both back ends store it: details as the canonical JSON that was hashed. */
export interface AuditRow {
  seq: number;
  key: string;
  at: string;
  kind: string;
  actor: string | null;
  actor_verified: 0 | 1 | null;
  action_id: string | null;
  agent_id: string | null;
  details: string;
  prev_hash: string;
  hash: string;
}

export const AUDIT_COLUMNS = [
  'seq',
  'key',
  'at',
  'kind',
  'actor',
  'actor_verified',
  'action_id',
  'agent_id',
  'details',
  'prev_hash',
  'hash',
] as const;

export interface AuditHeadRow {
  seq: number;
  hash: string;
  mac: string | null;
  mac_key_id: string | null;
  anchored_since: number | null;
}

/** The filters of a listing, checked: the columns are the schema's, the values bound as parameters. */
export interface AuditListing {
  where: Array<{ column: 'action_id' | 'agent_id' | 'kind'; value: string }>;
  /** Entries at or after this time, and before `until` (ISO 8601 in UTC: as text, it sorts as time does). */
  since?: string;
  until?: string;
  before_seq?: number;
  limit: number;
}

/**
 * What a back end does inside one transaction on the log's tables. An append transaction is
 * serialised with every other append to the same log, in any process; a read transaction sees
 * one consistent snapshot.
 */
export interface AuditTables {
  entryByKey(key: string): Promise<AuditRow | undefined>;
  /** The head row; undefined when there is none (a log older than heads, read without changing it). */
  headRow(): Promise<AuditHeadRow | undefined>;
  /** The largest seq stored, 0 when there is none. */
  lastSeq(): Promise<number>;
  count(): Promise<number>;
  insert(row: AuditRow): Promise<void>;
  writeHead(head: { seq: number; hash: string; mac: string; mac_key_id: string; anchored_since: number }): Promise<void>;
  /** Entries after this seq, oldest first. */
  rows(afterSeq: number): AsyncIterable<AuditRow> | Iterable<AuditRow>;
  /** The lowest seq other than `notSeq` whose entry links to `prevHash`. */
  successor(prevHash: string, notSeq: number): Promise<number | undefined>;
  list(listing: AuditListing): Promise<AuditRow[]>;
}

function toEntry(row: AuditRow): AuditEntry {
  let details: Record<string, unknown>;
  try {
    details = JSON.parse(row.details);
  } catch {
    throw new Error(`audit entry ${row.seq} has unreadable details; run \`warden audit verify\``);
  }
  return { ...row, kind: row.kind as AuditKind, actor_verified: row.actor_verified === null ? null : row.actor_verified === 1, details };
}

/** A query as a back end lists it, checked. */
function listingOf(query: AuditQuery): AuditListing {
  const q = AuditQuerySchema.parse(query);
  const where: AuditListing['where'] = [];
  for (const column of ['action_id', 'agent_id', 'kind'] as const) if (q[column] !== undefined) where.push({ column, value: q[column] });
  const since = q.since === undefined ? undefined : new Date(q.since).toISOString();
  const until = q.until === undefined ? undefined : new Date(q.until).toISOString();
  return { where, since, until, before_seq: q.before_seq, limit: q.limit };
}

/** The entry as stored, or null when its details no longer parse (a tampered row). */
function rowFields(row: AuditRow): Omit<AuditEntry, 'hash'> | null {
  try {
    const { hash: _ignored, ...fields } = toEntry(row);
    return fields;
  } catch {
    return null;
  }
}

const rowHashMatches = (row: AuditRow, seq: number): boolean => {
  const fields = rowFields(row);
  if (!fields) return false;
  try {
    return hashEntry({ ...fields, seq }) === row.hash;
  } catch {
    return false;
  }
};

/** A writer checks actors and anchors the head; a reader (the verifier, the CLI) checks the anchor when it has the keys. */
export type AuditStoreOptions =
  | {
      readonly?: false;
      /** The master keys the head's anchor is made and checked with. */
      keyring: Keyring;
      /** Whether an API key with this id exists (a read-only view of the key store). */
      isKnownKeyId: (id: string) => boolean | Promise<boolean>;
    }
  | { readonly: true; keyring?: Keyring };

/** The audit log's contract, whichever database holds it. */
export abstract class AuditStore {
  protected readonly keyring: Keyring | undefined;
  private readonly isKnownKeyId: (id: string) => boolean | Promise<boolean>;

  protected constructor(opts: AuditStoreOptions) {
    this.keyring = opts.keyring;
    this.isKnownKeyId = opts.readonly ? () => false : opts.isKnownKeyId;
  }

  /**
   * Opens (and creates) the log in a SQLite file. `readonly` opens an existing file without
   * changing it, for the verifier and the CLI.
   */
  static open(path: string, opts: AuditStoreOptions): AuditStore {
    return SqliteAuditStore.open(path, opts);
  }

  /** Runs `fn` in one transaction: `append` serialised with every other append to the log, `read` on one snapshot. */
  protected abstract transaction<T>(mode: 'append' | 'read', fn: (tables: AuditTables) => Promise<T>): Promise<T>;

  abstract close(): Promise<void>;

  /**
   * Appends an entry, atomically: the append lock is taken first, then the head is read and its
   * anchor checked, the hash computed and the entry and anchored head written in one transaction.
   * Idempotent by key: when the key is already stored, that entry is returned unchanged and
   * nothing is written, even when this call's details differ (the first write wins).
   */
  async append(input: AuditAppendInput): Promise<AuditEntry> {
    const appended = await this.appendUnless(input, async () => null);
    return (appended as { entry: AuditEntry }).entry;
  }

  /**
   * Appends an entry unless `refusal`, asked inside the append transaction, gives a reason: what it
   * reads is the log after every other append and before any next one, in any process, so a check
   * and the entry that records its outcome are one step (a budget reservation). Idempotent by key
   * as `append` is: an entry already stored is returned without asking.
   */
  async appendUnless(
    input: AuditAppendInput,
    refusal: (read: (query: AuditQuery) => Promise<AuditEntry[]>) => Promise<string | null>,
  ): Promise<{ entry: AuditEntry } | { refused: string }> {
    const parsed = AuditAppendSchema.parse(input);
    // Credentials that slipped into details (an error message quoting a URL, say) are redacted before hashing.
    // Encoded first, so what has no JSON form is refused as before; the plain JSON is then scrubbed.
    const details = canonicalJson(scrubValue(JSON.parse(canonicalJson(parsed.details, 'details'))));
    const key = wellFormed(parsed.key);
    const actor = wellFormed(parsed.actor);
    // Key ids are never removed, so asking before the transaction gives the answer it would.
    const actorVerified = actor !== null && (SYSTEM_ACTORS.includes(actor) || (await this.isKnownKeyId(actor)));
    return this.transaction('append', async (tables) => {
      const existing = await tables.entryByKey(key);
      if (existing) return { entry: toEntry(existing) };
      const refused = await refusal(async (query) => (await tables.list(listingOf(query))).map(toEntry));
      if (refused !== null) return { refused };
      // The head, not the newest row, is what the next entry links to: if the newest rows were
      // deleted, new entries keep pointing at them and the gap stays visible to verify().
      const head = (await tables.headRow())!;
      const anchorProblem = this.anchorProblem(head);
      if (anchorProblem)
        throw new AuditIntegrityError(`the audit log cannot be appended to: ${anchorProblem}; run \`warden audit verify\``);
      const last = await tables.lastSeq();
      if (last > head.seq) {
        throw new AuditIntegrityError(
          `the audit log is inconsistent: its head records entry ${head.seq} but entry ${last} exists; run \`warden audit verify\``,
        );
      }
      const fields: Omit<AuditEntry, 'hash'> = {
        seq: head.seq + 1,
        key,
        at: parsed.at ?? new Date().toISOString(),
        kind: parsed.kind,
        actor,
        actor_verified: actorVerified,
        action_id: wellFormed(parsed.action_id) ?? null,
        agent_id: wellFormed(parsed.agent_id) ?? null,
        details: JSON.parse(details),
        prev_hash: head.hash,
      };
      const entry: AuditEntry = { ...fields, hash: hashEntry(fields) };
      await tables.insert({ ...entry, actor_verified: entry.actor_verified ? 1 : 0, details });
      await tables.writeHead(this.anchoredHead(entry, head.anchored_since!));
      return { entry };
    });
  }

  /** The head (seq, hash), anchored under the current master key. */
  protected anchoredHead(head: { seq: number; hash: string }, since: number) {
    const keyId = this.keyring!.currentId;
    return {
      seq: head.seq,
      hash: head.hash,
      mac: anchorMac(this.keyring!.derive('audit-head', keyId), head, since),
      mac_key_id: keyId,
      anchored_since: since,
    };
  }

  /** Why the head's anchor does not vouch for it, or null when it does. */
  private anchorProblem(head: AuditHeadRow): string | null {
    if (!this.keyring) {
      return 'the anchor was not checked: no master key here (set WARDEN_MASTER_KEY, or run where the data dir holds master-keys.json)';
    }
    if (head.mac === null || head.mac_key_id === null || head.anchored_since === null) {
      return `the head (entry ${head.seq}) has no anchor: the log was rewritten by someone without the master key`;
    }
    let key: Buffer;
    try {
      key = this.keyring.derive('audit-head', head.mac_key_id);
    } catch (err) {
      if (err instanceof KeyringError) return `the anchor cannot be checked: ${err.message}`;
      throw err;
    }
    const expected = Buffer.from(anchorMac(key, head, head.anchored_since), 'hex');
    const actual = Buffer.from(head.mac, 'hex');
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      return `the anchor does not match the head (entry ${head.seq}): the head was not written by the audit store, so the log was rewritten or re-chained by someone without the master key`;
    }
    return null;
  }

  /** Entries, newest first. */
  async list(query: AuditQuery = {}): Promise<AuditEntry[]> {
    const listing = listingOf(query);
    const rows = await this.transaction('read', (tables) => tables.list(listing));
    return rows.map(toEntry);
  }

  /** The newest entry's (seq, hash) as the head records it: the value to anchor elsewhere. */
  async head(): Promise<{ seq: number; hash: string }> {
    const head = await this.transaction('read', (tables) => tables.headRow());
    return head ? { seq: head.seq, hash: head.hash } : { seq: 0, hash: GENESIS_HASH };
  }

  /**
   * Walks the chain oldest first and reports every break: each entry that was changed, deleted,
   * moved or inserted, a head that does not match the newest entry, and a head its anchor does
   * not vouch for. After a break the walk carries on from the entry found there, so one
   * tampering is reported once and a later one is reported too.
   */
  verify(): Promise<AuditVerification> {
    return this.transaction('read', async (tables): Promise<AuditVerification> => {
      const entries = await tables.count();
      const breaks: AuditBreak[] = [];
      const unverified = { count: 0, seqs: [] as number[] };
      let prev = GENESIS_HASH;
      let expected = 1;
      // How far seqs were shifted by a deletion whose later entries were renumbered to hide it.
      let shift = 0;
      for await (const row of tables.rows(0)) {
        if (row.seq !== expected || row.prev_hash !== prev || !rowHashMatches(row, row.seq + shift)) {
          const found = await this.diagnose(tables, row, expected, prev, shift, breaks.length < DIAGNOSED_BREAKS);
          breaks.push({ seq: found.seq, reason: found.reason });
          shift = found.shift ?? shift;
        }
        if (row.actor_verified === 0 && ++unverified.count <= LISTED_UNVERIFIED) unverified.seqs.push(row.seq);
        prev = row.hash;
        expected = row.seq + 1;
      }
      const last = expected - 1;
      const head = await tables.headRow();
      if (!head) {
        breaks.push({ seq: last + 1, reason: 'the head record is missing, so entries cut off the end of the log would go unnoticed' });
      } else {
        const written = last + shift;
        if (head.seq > written) {
          const missing = head.seq === written + 1 ? `entry ${head.seq} is missing` : `entries ${written + 1} to ${head.seq} are missing`;
          breaks.push({
            seq: last + 1,
            reason: `${missing}: the head records entry ${head.seq} but the log ends at entry ${last} (the newest entries were deleted)`,
          });
        } else if (head.seq < written) {
          breaks.push({
            seq: head.seq + 1,
            reason: `entry ${head.seq + 1} was added outside the audit store: the head records entry ${head.seq} as the newest`,
          });
        } else if (head.hash !== prev) {
          breaks.push({ seq: last, reason: `entry ${last} was replaced: its hash does not match the one the head recorded for it` });
        }
        const anchorProblem = this.anchorProblem(head);
        if (anchorProblem) breaks.push({ seq: head.seq, reason: anchorProblem });
      }
      const anchor =
        head?.mac_key_id != null && head.anchored_since != null ? { key_id: head.mac_key_id, since_seq: head.anchored_since } : null;
      return { ok: breaks.length === 0, entries, breaks, first_broken: breaks[0] ?? null, unverified_actors: unverified, anchor };
    });
  }

  /**
   * Says what happened at an entry that does not fit: `row` sits where entry `expected` should
   * be, entry `expected - 1` (hash `prev`) was the last to fit, and entries were written `shift`
   * seqs higher than they now sit. `search`: look for where the entry came from (costly).
   * Returns a new shift when this entry shows later ones were renumbered.
   */
  private async diagnose(
    tables: AuditTables,
    row: AuditRow,
    expected: number,
    prev: string,
    shift: number,
    search: boolean,
  ): Promise<AuditBreak & { shift?: number }> {
    if (row.seq !== expected) {
      const missing = row.seq === expected + 1 ? `entry ${expected} is missing` : `entries ${expected} to ${row.seq - 1} are missing`;
      return { seq: expected, reason: `${missing}: the log jumps from entry ${expected - 1} to entry ${row.seq} (deleted)` };
    }
    const n = row.seq;
    if (rowHashMatches(row, n + shift)) {
      // Intact as written at this seq, yet written after a different entry n-1.
      return { seq: n - 1, reason: `entry ${n - 1} was replaced or inserted: entry ${n} was written after a different entry ${n - 1}` };
    }
    if (!search) return { seq: n, reason: `entry ${n} does not fit the chain: it was changed, moved or inserted` };
    // The entry that was written right after entry n-1, if it is still in the log somewhere else.
    const successor = await tables.successor(prev, n);
    const writtenAs = await this.originalSeq(tables, row);
    if (writtenAs !== null && writtenAs > n + shift) {
      if (successor !== undefined) {
        return {
          seq: n,
          reason: `entries were reordered: seq ${n} holds the entry written as entry ${writtenAs}, and entry ${n} is now at seq ${successor}`,
        };
      }
      const deleted = writtenAs === n + shift + 1 ? `entry ${n} was deleted` : `entries ${n} to ${writtenAs - shift - 1} were deleted`;
      return {
        seq: n,
        reason: `${deleted} and the later entries renumbered: seq ${n} holds the entry written as entry ${writtenAs}`,
        shift: writtenAs - n,
      };
    }
    if (writtenAs !== null && writtenAs < n + shift) {
      return {
        seq: writtenAs - shift,
        reason: `entry ${writtenAs - shift} was inserted: the entry now at seq ${n} was written as entry ${writtenAs}`,
      };
    }
    if (successor !== undefined) {
      return { seq: n, reason: `entry ${n} was inserted: the entry written after entry ${n - 1} is now at seq ${successor}` };
    }
    return { seq: n, reason: `entry ${n} was changed: its contents no longer match its hash` };
  }

  /**
   * The seq an intact entry was written with, when it now sits elsewhere; null when its contents
   * match its hash at no seq (it was changed). Only runs once a break is found.
   */
  private async originalSeq(tables: AuditTables, row: AuditRow): Promise<number | null> {
    const fields = rowFields(row);
    if (!fields) return null;
    // Entries renumbered after a deletion were written with larger seqs than the log now holds.
    const upTo = Math.max(await tables.lastSeq(), (await tables.headRow())?.seq ?? 0) + (await tables.count());
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
  exportJsonl(write: (line: string) => void, opts: { after_seq?: number } = {}): Promise<number> {
    return this.transaction('read', async (tables): Promise<number> => {
      let count = 0;
      for await (const row of tables.rows(opts.after_seq ?? 0)) {
        write(canonicalJson(toEntry(row)));
        count += 1;
      }
      return count;
    });
  }
}

const SQLITE_COLUMNS = AUDIT_COLUMNS.join(', ');
/** What a log written before actors were checked gives for the same columns. */
const SQLITE_LEGACY_COLUMNS = SQLITE_COLUMNS.replace('actor_verified', 'NULL AS actor_verified');
const SQLITE_HEAD = 'SELECT seq, hash, mac, mac_key_id, anchored_since FROM head WHERE id = 1';
/** What a head written before anchors gives for the same columns. */
const SQLITE_LEGACY_HEAD = 'SELECT seq, hash, NULL AS mac, NULL AS mac_key_id, NULL AS anchored_since FROM head WHERE id = 1';

/**
 * How to read a file's entries and head, settled when it is opened (a writer upgrades the file
 * first; a reader takes it as it is), not on every append.
 */
interface SqliteReads {
  /** What SELECTs entries' columns: a log older than actor checks lacks actor_verified. */
  columns: string;
  /** What SELECTs the head; null for a log older than heads, which has none. */
  head: string | null;
}

/** The log in a SQLite file under the data dir: the embedded back end. */
class SqliteAuditStore extends AuditStore {
  /**
   * One transaction at a time per file in this process: an await inside one must not let another
   * in on this connection, and another connection to the file would wait for the write lock
   * synchronously, blocking the event loop the holder needs to commit.
   */
  private static readonly queues = new Map<string, SerialQueue>();
  private readonly queue: SerialQueue;

  private constructor(
    private readonly db: Database.Database,
    opts: AuditStoreOptions,
    private readonly reads: SqliteReads,
  ) {
    super(opts);
    const file = db.memory ? undefined : resolve(db.name);
    this.queue = file === undefined ? new SerialQueue() : (SqliteAuditStore.queues.get(file) ?? new SerialQueue());
    if (file !== undefined) SqliteAuditStore.queues.set(file, this.queue);
  }

  static override open(path: string, opts: AuditStoreOptions): SqliteAuditStore {
    if (opts.readonly) {
      const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 10_000 });
      return new SqliteAuditStore(db, opts, {
        columns: hasColumn(db, 'entries', 'actor_verified') ? SQLITE_COLUMNS : SQLITE_LEGACY_COLUMNS,
        head: !hasColumn(db, 'head', 'seq') ? null : hasColumn(db, 'head', 'mac') ? SQLITE_HEAD : SQLITE_LEGACY_HEAD,
      });
    }
    const db = openSqliteDatabase(
      path,
      `
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
    `,
      // Writers in other processes wait for the write lock instead of failing at once.
      { timeout: 10_000 },
    );
    // An acknowledged audit entry survives a power cut, not only a crash.
    db.pragma('synchronous = FULL');
    // upgrade() adds what an older log lacks before anything is read.
    const store = new SqliteAuditStore(db, opts, { columns: SQLITE_COLUMNS, head: SQLITE_HEAD });
    store.upgrade();
    return store;
  }

  /**
   * Adds what an older log lacks: actor_verified, and the head's anchor. A log that had no anchor
   * column is anchored as it stands (its `since` says from which entry on the anchor vouches); a
   * head without an anchor once the column exists is never anchored here, as that is what
   * someone who rewrote the log would leave: verify reports it, and appends refuse.
   */
  private upgrade(): void {
    this.db
      .transaction(() => {
        if (!hasColumn(this.db, 'entries', 'actor_verified')) this.db.exec('ALTER TABLE entries ADD COLUMN actor_verified INTEGER');
        const anchorColumnAdded = !hasColumn(this.db, 'head', 'mac');
        if (anchorColumnAdded)
          this.db.exec(
            'ALTER TABLE head ADD COLUMN mac TEXT; ALTER TABLE head ADD COLUMN mac_key_id TEXT; ALTER TABLE head ADD COLUMN anchored_since INTEGER',
          );
        const head = this.headRow()!;
        if (head.mac === null && (anchorColumnAdded || head.seq === 0)) this.writeHead(this.anchoredHead(head, head.seq));
      })
      .immediate();
  }

  async close(): Promise<void> {
    await this.queue.run(async () => this.db.close());
  }

  protected transaction<T>(mode: 'append' | 'read', fn: (tables: AuditTables) => Promise<T>): Promise<T> {
    return this.queue.run(async () => {
      // IMMEDIATE takes the write lock first, so appends from other processes queue behind it.
      this.db.exec(mode === 'append' ? 'BEGIN IMMEDIATE' : 'BEGIN');
      try {
        const result = await fn(this.tables);
        this.db.exec('COMMIT');
        return result;
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      }
    });
  }

  private headRow(): AuditHeadRow | undefined {
    return this.reads.head === null ? undefined : (this.db.prepare(this.reads.head).get() as AuditHeadRow | undefined);
  }

  private writeHead(head: Parameters<AuditTables['writeHead']>[0]): void {
    this.db
      .prepare('UPDATE head SET seq = ?, hash = ?, mac = ?, mac_key_id = ?, anchored_since = ? WHERE id = 1')
      .run(head.seq, head.hash, head.mac, head.mac_key_id, head.anchored_since);
  }

  private readonly tables: AuditTables = {
    entryByKey: async (key) => this.db.prepare(`SELECT ${SQLITE_COLUMNS} FROM entries WHERE key = ?`).get(key) as AuditRow | undefined,
    headRow: async () => this.headRow(),
    lastSeq: async () => (this.db.prepare('SELECT MAX(seq) AS seq FROM entries').get() as { seq: number | null }).seq ?? 0,
    count: async () => (this.db.prepare('SELECT COUNT(*) AS n FROM entries').get() as { n: number }).n,
    insert: async (row) => {
      this.db
        .prepare(`INSERT INTO entries (${SQLITE_COLUMNS}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`)
        .run(...AUDIT_COLUMNS.map((c) => row[c]));
    },
    writeHead: async (head) => this.writeHead(head),
    rows: (afterSeq) =>
      this.db.prepare(`SELECT ${this.reads.columns} FROM entries WHERE seq > ? ORDER BY seq`).iterate(afterSeq) as Iterable<AuditRow>,
    successor: async (prevHash, notSeq) =>
      (
        this.db.prepare('SELECT seq FROM entries WHERE prev_hash = ? AND seq != ? ORDER BY seq LIMIT 1').get(prevHash, notSeq) as
          { seq: number } | undefined
      )?.seq,
    list: async ({ where, since, until, before_seq, limit }) => {
      const clauses = where.map(({ column }) => `${column} = ?`);
      const params: unknown[] = where.map(({ value }) => value);
      if (since !== undefined) {
        clauses.push('at >= ?');
        params.push(since);
      }
      if (until !== undefined) {
        clauses.push('at < ?');
        params.push(until);
      }
      if (before_seq !== undefined) {
        clauses.push('seq < ?');
        params.push(before_seq);
      }
      const sql = `SELECT ${this.reads.columns} FROM entries ${clauses.length ? `WHERE ${clauses.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT ?`;
      return this.db.prepare(sql).all(...params, limit) as AuditRow[];
    },
  };
}
