/**
 * A store's SQLite file under the data dir, the embedded back end's counterpart of
 * stores/postgres/database.ts: private to Warden's user (domain/private-files.ts) and in WAL mode,
 * so readers in other processes (the worker reading what the API wrote) do not block the writer.
 */
import Database from 'better-sqlite3';
import { preparePrivateDatabase } from '../domain/private-files.js';

/** Opens (and creates) the file and applies `schema`: statements that leave an existing database as it is. */
export function openSqliteDatabase(path: string, schema: string, options?: Database.Options): Database.Database {
  preparePrivateDatabase(path);
  const db = new Database(path, options);
  db.pragma('journal_mode = WAL');
  db.exec(schema);
  return db;
}

/** Whether the table has the column (an older file may lack what this Warden adds; false when the table is missing). */
export function hasColumn(db: Database.Database, table: string, column: string): boolean {
  return (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as Array<{ name: string }>).some((c) => c.name === column);
}
