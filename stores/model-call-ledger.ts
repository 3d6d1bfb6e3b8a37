/**
 * The model calls that spent their grants: a model-call grant is single-use, and the model workers
 * of every process and host must agree on which calls already spent one. The first scheduled call
 * that shows a grant claims it; Temporal's retries of that same call (the same run, activity and
 * scheduling time) may call again, anything else showing it is refused. Nothing secret is stored:
 * the call's id and which activity spent it.
 *
 * The embedded back end is SQLite under the data dir (`ModelCallLedger.open`); the shared one is
 * PostgreSQL (stores/postgres/model-call-ledger.ts).
 */
import type Database from 'better-sqlite3';
import { openSqliteDatabase } from './sqlite-database.js';

/** The scheduled activity that shows a grant: retries keep all three, a new scheduling changes them. */
export interface ModelCallSpender {
  run_id: string;
  activity_id: string;
  /** When the activity was first scheduled (the same for every attempt of it), in milliseconds. */
  scheduled_ms: number;
}

export abstract class ModelCallLedger {
  /** Opens (and creates) the ledger in a SQLite file. */
  static open(path: string): ModelCallLedger {
    return SqliteModelCallLedger.open(path);
  }

  /**
   * Claims the call for this spender: true when it is the first to show the grant, or the same
   * scheduled call again (a retry); false when another call spent it. Atomic across processes.
   */
  async spend(callId: string, spender: ModelCallSpender): Promise<boolean> {
    const holder = await this.claim(callId, spender, new Date().toISOString());
    return holder.run_id === spender.run_id && holder.activity_id === spender.activity_id && holder.scheduled_ms === spender.scheduled_ms;
  }

  /** Inserts the call's row unless it exists; returns the row as stored. */
  protected abstract claim(callId: string, spender: ModelCallSpender, at: string): Promise<ModelCallSpender>;

  abstract close(): Promise<void>;
}

class SqliteModelCallLedger extends ModelCallLedger {
  private constructor(private readonly db: Database.Database) {
    super();
  }

  static override open(path: string): SqliteModelCallLedger {
    const db = openSqliteDatabase(
      path,
      `CREATE TABLE IF NOT EXISTS spent_calls (
        call_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        scheduled_ms INTEGER NOT NULL,
        spent_at TEXT NOT NULL
      );`,
      // Another process's claim holds the write lock for a moment: wait for it instead of failing.
      { timeout: 10_000 },
    );
    return new SqliteModelCallLedger(db);
  }

  protected async claim(callId: string, s: ModelCallSpender, at: string): Promise<ModelCallSpender> {
    // One statement each, and INSERT OR IGNORE is atomic: two processes racing get the same winner.
    this.db
      .prepare('INSERT OR IGNORE INTO spent_calls (call_id, run_id, activity_id, scheduled_ms, spent_at) VALUES (?, ?, ?, ?, ?)')
      .run(callId, s.run_id, s.activity_id, s.scheduled_ms, at);
    return this.db.prepare('SELECT run_id, activity_id, scheduled_ms FROM spent_calls WHERE call_id = ?').get(callId) as ModelCallSpender;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
