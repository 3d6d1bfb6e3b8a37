/** The spent model calls in PostgreSQL: the shared back end. The rules are the contract's (stores/model-call-ledger.ts). */
import type pg from 'pg';
import { ModelCallLedger, type ModelCallSpender } from '../model-call-ledger.js';
import { migrate, type Migration } from './database.js';

export const MODEL_CALL_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'model calls that spent their single-use grants',
    sql: `
      CREATE SCHEMA IF NOT EXISTS model_calls;
      CREATE TABLE model_calls.spent_calls (
        call_id TEXT PRIMARY KEY,
        run_id TEXT NOT NULL,
        activity_id TEXT NOT NULL,
        scheduled_ms BIGINT NOT NULL,
        spent_at TEXT NOT NULL
      );
      REVOKE ALL ON model_calls.spent_calls FROM PUBLIC;
    `,
  },
];

export class PostgresModelCallLedger extends ModelCallLedger {
  private constructor(private readonly pool: pg.Pool) {
    super();
  }

  /** Opens the ledger in the pool's database, migrating it first. */
  static async connect(pool: pg.Pool): Promise<PostgresModelCallLedger> {
    await migrate(pool, 'model_calls', MODEL_CALL_MIGRATIONS);
    return new PostgresModelCallLedger(pool);
  }

  protected async claim(callId: string, s: ModelCallSpender, at: string): Promise<ModelCallSpender> {
    // The statement that loses a race on the key sees the winner's row in the next one.
    await this.pool.query(
      `INSERT INTO model_calls.spent_calls (call_id, run_id, activity_id, scheduled_ms, spent_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (call_id) DO NOTHING`,
      [callId, s.run_id, s.activity_id, s.scheduled_ms, at],
    );
    const { rows } = await this.pool.query<{ run_id: string; activity_id: string; scheduled_ms: string }>(
      'SELECT run_id, activity_id, scheduled_ms FROM model_calls.spent_calls WHERE call_id = $1',
      [callId],
    );
    const row = rows[0]!;
    return { run_id: row.run_id, activity_id: row.activity_id, scheduled_ms: Number(row.scheduled_ms) };
  }

  /** The pool is the caller's, shared by the process's stores. */
  async close(): Promise<void> {}
}
