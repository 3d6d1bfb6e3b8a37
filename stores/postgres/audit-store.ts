/**
 * The audit log in PostgreSQL: the shared back end, for an API and workers on several hosts.
 * Appends from every process make one chain: each takes a transaction-scoped advisory lock
 * first, so they run one at a time and each reads the head the previous one wrote; seq and key
 * are unique, so a retried activity finds its entry and a lost race cannot fork the chain. The
 * database refuses UPDATE, DELETE and TRUNCATE on entries (a trigger, and the privileges revoked
 * from the role that made the table); the chain and the anchored head catch whoever gets past
 * both, as they do in SQLite.
 */
import type pg from 'pg';
import { GENESIS_HASH } from '../../domain/audit-entry.js';
import { AUDIT_COLUMNS, AuditStore, type AuditHeadRow, type AuditRow, type AuditStoreOptions, type AuditTables } from '../audit-store.js';
import { inTransaction, migrate, type Migration } from './database.js';

/** Serialises appends across processes: any fixed 64-bit number no other lock of Warden's uses. */
const APPEND_LOCK = 0x5741_5244_454e_0002n;
/** Rows fetched at a time when the whole log is read (verify, export). */
const PAGE = 1000;

export const AUDIT_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'entries, the anchored head, and the guards that make entries append-only',
    sql: `
      CREATE SCHEMA IF NOT EXISTS audit;
      CREATE TABLE audit.entries (
        seq BIGINT PRIMARY KEY,
        key TEXT NOT NULL UNIQUE,
        at TEXT NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT,
        actor_verified SMALLINT,
        action_id TEXT,
        agent_id TEXT,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
      );
      CREATE INDEX entries_action ON audit.entries (action_id, seq) WHERE action_id IS NOT NULL;
      CREATE INDEX entries_agent ON audit.entries (agent_id, seq) WHERE agent_id IS NOT NULL;
      CREATE INDEX entries_kind ON audit.entries (kind, seq);
      CREATE INDEX entries_prev_hash ON audit.entries (prev_hash);
      CREATE TABLE audit.head (
        id SMALLINT PRIMARY KEY CHECK (id = 1),
        seq BIGINT NOT NULL,
        hash TEXT NOT NULL,
        mac TEXT,
        mac_key_id TEXT,
        anchored_since BIGINT
      );
      INSERT INTO audit.head (id, seq, hash) VALUES (1, 0, '${GENESIS_HASH}');
      CREATE FUNCTION audit.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'the audit log is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
          USING ERRCODE = 'insufficient_privilege'; END $$;
      CREATE TRIGGER entries_append_only BEFORE UPDATE OR DELETE ON audit.entries
        FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
      CREATE TRIGGER entries_no_truncate BEFORE TRUNCATE ON audit.entries
        FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
      CREATE TRIGGER head_kept BEFORE DELETE ON audit.head
        FOR EACH ROW EXECUTE FUNCTION audit.refuse_change();
      CREATE TRIGGER head_no_truncate BEFORE TRUNCATE ON audit.head
        FOR EACH STATEMENT EXECUTE FUNCTION audit.refuse_change();
      -- The role that runs Warden keeps only what appending needs. (As the tables' owner it could
      -- grant the rest back, or drop the triggers: the anchored chain is what catches that.)
      REVOKE ALL ON audit.entries, audit.head FROM PUBLIC;
      REVOKE UPDATE, DELETE, TRUNCATE ON audit.entries FROM CURRENT_USER;
      REVOKE DELETE, TRUNCATE ON audit.head FROM CURRENT_USER;
    `,
  },
];

const COLUMNS = AUDIT_COLUMNS.join(', ');

export class PostgresAuditStore extends AuditStore {
  private constructor(
    private readonly pool: pg.Pool,
    opts: AuditStoreOptions,
  ) {
    super(opts);
  }

  /** Opens the log in the pool's database, migrating it first; anchors a new log's empty head. */
  static async connect(pool: pg.Pool, opts: AuditStoreOptions): Promise<PostgresAuditStore> {
    if (!opts.readonly) await migrate(pool, 'audit', AUDIT_MIGRATIONS);
    const store = new PostgresAuditStore(pool, opts);
    if (!opts.readonly) await store.anchorNewLog();
    return store;
  }

  /** A new log's head (entry 0) gets its first anchor; a head without one past entry 0 is left for verify to report. */
  private anchorNewLog(): Promise<void> {
    return this.transaction('append', async (tables) => {
      const head = (await tables.headRow())!;
      if (head.mac === null && head.seq === 0) await tables.writeHead(this.anchoredHead(head, 0));
    });
  }

  /** The pool is the caller's, shared by the process's stores. */
  async close(): Promise<void> {}

  protected transaction<T>(mode: 'append' | 'read', fn: (tables: AuditTables) => Promise<T>): Promise<T> {
    if (mode === 'read')
      return inTransaction(this.pool, (client) => fn(tablesOn(client)), 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    return inTransaction(this.pool, async (client) => {
      // Held until COMMIT: the next append, from any process, reads the head this one writes.
      await client.query('SELECT pg_advisory_xact_lock($1)', [APPEND_LOCK.toString()]);
      return fn(tablesOn(client));
    });
  }
}

function tablesOn(client: pg.PoolClient): AuditTables {
  const one = async <R extends pg.QueryResultRow>(sql: string, params: unknown[] = []) => (await client.query<R>(sql, params)).rows[0];
  return {
    entryByKey: (key) => one<AuditRow>(`SELECT ${COLUMNS} FROM audit.entries WHERE key = $1`, [key]),
    headRow: () => one<AuditHeadRow>('SELECT seq, hash, mac, mac_key_id, anchored_since FROM audit.head WHERE id = 1'),
    lastSeq: async () => (await one<{ seq: number }>('SELECT COALESCE(MAX(seq), 0) AS seq FROM audit.entries'))!.seq,
    count: async () => (await one<{ n: number }>('SELECT COUNT(*) AS n FROM audit.entries'))!.n,
    insert: async (row) => {
      await client.query(
        `INSERT INTO audit.entries (${COLUMNS}) VALUES (${AUDIT_COLUMNS.map((_, i) => `$${i + 1}`).join(', ')})`,
        AUDIT_COLUMNS.map((c) => row[c]),
      );
    },
    writeHead: async (head) => {
      await client.query('UPDATE audit.head SET seq = $1, hash = $2, mac = $3, mac_key_id = $4, anchored_since = $5 WHERE id = 1', [
        head.seq,
        head.hash,
        head.mac,
        head.mac_key_id,
        head.anchored_since,
      ]);
    },
    async *rows(afterSeq) {
      for (let after = afterSeq; ;) {
        const { rows } = await client.query<AuditRow>(`SELECT ${COLUMNS} FROM audit.entries WHERE seq > $1 ORDER BY seq LIMIT ${PAGE}`, [
          after,
        ]);
        yield* rows;
        if (rows.length < PAGE) return;
        after = rows[rows.length - 1]!.seq;
      }
    },
    successor: async (prevHash, notSeq) =>
      (
        await one<{ seq: number }>('SELECT seq FROM audit.entries WHERE prev_hash = $1 AND seq <> $2 ORDER BY seq LIMIT 1', [
          prevHash,
          notSeq,
        ])
      )?.seq,
    list: async ({ where, since, until, before_seq, limit }) => {
      const params: unknown[] = where.map(({ value }) => value);
      const clauses = where.map(({ column }, i) => `${column} = $${i + 1}`);
      if (since !== undefined) {
        params.push(since);
        clauses.push(`at >= $${params.length}`);
      }
      if (until !== undefined) {
        params.push(until);
        clauses.push(`at < $${params.length}`);
      }
      if (before_seq !== undefined) {
        params.push(before_seq);
        clauses.push(`seq < $${params.length}`);
      }
      params.push(limit);
      const sql = `SELECT ${COLUMNS} FROM audit.entries ${clauses.length ? `WHERE ${clauses.join(' AND ')}` : ''} ORDER BY seq DESC LIMIT $${params.length}`;
      return (await client.query<AuditRow>(sql, params)).rows;
    },
  };
}
