/**
 * Warden's PostgreSQL database: the connection pool every store of a process shares, and the
 * versioned migrations each store brings. Migrations run at start-up in every process (the API and
 * each worker), under one advisory lock held for the whole transaction: processes that start at
 * once queue on it, and each version is applied exactly once, recorded in warden_migrations.
 */
import pg from 'pg';

/** One step of a store's schema; applied in version order, never changed once released. */
export interface Migration {
  version: number;
  description: string;
  sql: string;
}

/** Serialises migrations across processes: any fixed 64-bit number no other lock of Warden's uses. */
const MIGRATION_LOCK = 0x5741_5244_454e_0001n;

/** A pool for WARDEN_DATABASE_URL. The stores never log, so an idle connection's error is left to the next query to report. */
export function openPool(url: string, opts: { max?: number } = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, application_name: 'warden', types: { getTypeParser } });
  // Without a listener, an idle connection the server drops would crash the process.
  pool.on('error', () => undefined);
  return pool;
}

/** BIGINT columns (the audit log's seqs) read as numbers: a seq stays far below 2^53. */
function getTypeParser(oid: number, format?: 'text' | 'binary') {
  if (oid === pg.types.builtins.INT8) return (value: string) => Number(value);
  return pg.types.getTypeParser(oid, format);
}

/** Applies the store's migrations this database lacks, in one transaction; returns the versions applied here. */
export async function migrate(pool: pg.Pool, store: string, migrations: readonly Migration[]): Promise<number[]> {
  return inTransaction(pool, async (client) => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK.toString()]);
    await client.query(`CREATE TABLE IF NOT EXISTS warden_migrations (
      store TEXT NOT NULL,
      version INTEGER NOT NULL,
      description TEXT NOT NULL,
      applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),
      PRIMARY KEY (store, version)
    )`);
    const { rows } = await client.query<{ version: number }>('SELECT version FROM warden_migrations WHERE store = $1', [store]);
    const applied = new Set(rows.map((r) => r.version));
    const newest = Math.max(0, ...applied);
    const known = Math.max(0, ...migrations.map((m) => m.version));
    if (newest > known) {
      throw new Error(
        `the ${store} store in this database is at schema version ${newest}, newer than this Warden knows (${known}): upgrade Warden here too`,
      );
    }
    const done: number[] = [];
    for (const migration of [...migrations].sort((a, b) => a.version - b.version)) {
      if (applied.has(migration.version)) continue;
      await client.query(migration.sql);
      await client.query('INSERT INTO warden_migrations (store, version, description) VALUES ($1, $2, $3)', [
        store,
        migration.version,
        migration.description,
      ]);
      done.push(migration.version);
    }
    return done;
  });
}

/** Runs `fn` on one connection inside BEGIN … COMMIT (`begin` may name an isolation level); rolls back on any error. */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>, begin = 'BEGIN'): Promise<T> {
  const client = await pool.connect();
  let broken: Error | undefined;
  try {
    await client.query(begin);
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    // A connection that cannot even roll back is thrown away, not handed to the next caller.
    await client.query('ROLLBACK').catch((rollbackError: Error) => (broken = rollbackError));
    throw err;
  } finally {
    client.release(broken);
  }
}
