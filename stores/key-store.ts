/**
 * API keys, stored hashed in SQLite under the data dir. A key is `wk_` + 32 random bytes
 * (base64url); only its SHA-256 is kept (a random 256-bit secret needs no slow hash), looked up
 * by that hash and compared in constant time. A key is shown once, when it is created.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Database from 'better-sqlite3';
import { preparePrivateDatabase } from '../domain/private-files.js';
import type { Identity, Role } from '../domain/roles.js';

export interface ApiKeyInfo {
  id: string;
  name: string;
  role: Role;
  /** Who holds the key (the name, unless told otherwise). */
  person: string;
  created_at: string;
  created_by: string | null;
  /** The admin key (or "host") that confirmed the key as its holder's own; null until then. */
  confirmed_by: string | null;
  revoked_at: string | null;
  /** The person approvals count the key as (see KeyStore.countsAs). */
  counts_as: string;
}

const HOST = 'host';
/** Who made a key when no API key did: the first start, WARDEN_ADMIN_API_KEY, the host's scripts. */
const madeOnTheHost = (createdBy: string | null) => createdBy === null || !createdBy.startsWith('key_');

type KeyRow = Omit<ApiKeyInfo, 'person' | 'counts_as'> & { person: string | null };
const COLUMNS = 'id, name, role, person, created_at, created_by, confirmed_by, revoked_at';

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

export class KeyStore {
  private constructor(private readonly db: Database.Database) {}

  static open(path: string): KeyStore {
    preparePrivateDatabase(path);
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec(`CREATE TABLE IF NOT EXISTS api_keys (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      hash BLOB NOT NULL UNIQUE,
      created_at TEXT NOT NULL,
      created_by TEXT,
      revoked_at TEXT
    )`);
    // Keys from before persons: each is its holder's, named by the key's name.
    const columns = new Set((db.prepare('PRAGMA table_info(api_keys)').all() as { name: string }[]).map((c) => c.name));
    if (!columns.has('person')) db.exec('ALTER TABLE api_keys ADD COLUMN person TEXT');
    if (!columns.has('confirmed_by')) db.exec('ALTER TABLE api_keys ADD COLUMN confirmed_by TEXT');
    return new KeyStore(db);
  }

  close(): void {
    this.db.close();
  }

  /** Creates a key; the returned secret is never stored and cannot be shown again. */
  create(name: string, role: Role, createdBy: string | null, options: { secret?: string; person?: string } = {}) {
    const secret = options.secret ?? `wk_${randomBytes(32).toString('base64url')}`;
    const id = `key_${randomBytes(6).toString('hex')}`;
    this.db
      .prepare('INSERT INTO api_keys (id, name, role, person, hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?, ?)')
      .run(id, name, role, options.person ?? name, digest(secret), new Date().toISOString(), createdBy);
    return { ...this.get(id)!, key: secret };
  }

  get(id: string): ApiKeyInfo | null {
    const row = this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).get(id) as KeyRow | undefined;
    return row ? this.info(row) : null;
  }

  /**
   * The person approvals count a key as. A key made on the host, or confirmed by an admin who is
   * a different person from its maker, is its holder's own; any other key counts as the person of
   * the admin who made it: one admin who mints keys for made-up names is still one person.
   */
  countsAs(id: string): string {
    const seen = new Set<string>();
    let row = this.row(id);
    while (row && !madeOnTheHost(row.created_by) && !row.confirmed_by && !seen.has(row.id)) {
      seen.add(row.id);
      row = this.row(row.created_by!);
    }
    return row ? (row.person ?? row.name) : id;
  }

  /**
   * Confirms a key as its holder's own: by an admin who counts as another person than the key's
   * maker (or by the host, which holds the data dir). Returns why not, or null when done.
   */
  confirm(id: string, by: Identity | typeof HOST): string | null {
    const row = this.row(id);
    if (!row) return `no API key ${id}`;
    if (row.revoked_at) return `key ${id} is revoked`;
    if (row.confirmed_by || madeOnTheHost(row.created_by))
      return `key ${id} is already its holder's own (${row.confirmed_by ? `confirmed by ${row.confirmed_by}` : 'made on the host'})`;
    if (by !== HOST) {
      const maker = this.countsAs(row.created_by!);
      if (by.person === maker || by.key_id === id) {
        return `the key was made by ${maker}, whom your key counts as: a second admin, another person, must confirm it`;
      }
    }
    this.db.prepare('UPDATE api_keys SET confirmed_by = ? WHERE id = ?').run(by === HOST ? HOST : by.key_id, id);
    return null;
  }

  /** The identity behind a presented key, or null when it is unknown or revoked. */
  authenticate(presented: string): Identity | null {
    const hash = digest(presented);
    const row = this.db.prepare('SELECT id, name, role, hash, revoked_at FROM api_keys WHERE hash = ?').get(hash) as
      { id: string; name: string; role: Role; hash: Buffer; revoked_at: string | null } | undefined;
    if (!row || !timingSafeEqual(row.hash, hash) || row.revoked_at) return null;
    return this.identityOf(row.id);
  }

  /** The identity a key id stands for while the key is not revoked (a paired chat user acts as it), else null. */
  identityOf(id: string): Identity | null {
    const row = this.row(id);
    if (!row || row.revoked_at) return null;
    return { key_id: row.id, name: row.name, role: row.role, person: this.countsAs(row.id) };
  }

  private row(id: string): KeyRow | undefined {
    return this.db.prepare(`SELECT ${COLUMNS} FROM api_keys WHERE id = ?`).get(id) as KeyRow | undefined;
  }

  private info(row: KeyRow): ApiKeyInfo {
    return { ...row, person: row.person ?? row.name, counts_as: this.countsAs(row.id) };
  }

  /** Makes sure a key with this secret exists (WARDEN_ADMIN_API_KEY); true when it was added. */
  ensure(name: string, role: Role, secret: string): boolean {
    if (this.db.prepare('SELECT 1 FROM api_keys WHERE hash = ?').get(digest(secret))) return false;
    this.create(name, role, 'system', { secret });
    return true;
  }

  /** Whether a key with this id was ever made (revoked ones too). */
  has(id: string): boolean {
    return Boolean(this.db.prepare('SELECT 1 FROM api_keys WHERE id = ?').get(id));
  }

  /** Whether the key with this id was revoked (false for an unknown id). */
  isRevoked(id: string): boolean {
    return Boolean(this.db.prepare('SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NOT NULL').get(id));
  }

  hasActiveAdmin(): boolean {
    return Boolean(this.db.prepare("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL").get());
  }

  list(): ApiKeyInfo[] {
    return (this.db.prepare(`SELECT ${COLUMNS} FROM api_keys ORDER BY created_at, id`).all() as KeyRow[]).map((row) => this.info(row));
  }

  /** Revokes a key; false when no such key exists. Revoking twice keeps the first time. */
  revoke(id: string): ApiKeyInfo | null {
    this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id);
    return this.get(id);
  }
}

/**
 * Which key ids exist, read-only, for a process that does not own the key store (the worker's
 * audit store checks actors with it, the conversation activities whether their requester's key
 * was revoked). Revoked keys count: an action a key started may be recorded
 * after the key was revoked. The file is opened when first asked, as the API may not have made it
 * yet; until then no key id is known.
 */
export class KeyIdDirectory {
  private db: Database.Database | undefined;

  constructor(private readonly path: string) {}

  has(id: string): boolean {
    return this.ask('SELECT 1 FROM api_keys WHERE id = ?', id) ?? false;
  }

  /** Whether the key was revoked; true when the key store cannot say (fail closed: an unknown key stands behind nothing). */
  isRevoked(id: string): boolean {
    return !(this.ask('SELECT 1 FROM api_keys WHERE id = ? AND revoked_at IS NULL', id) ?? false);
  }

  /** Whether the query finds a row; null when there is no key store yet (no file, or no table) or it cannot be read. */
  private ask(sql: string, id: string): boolean | null {
    try {
      this.db ??= new Database(this.path, { readonly: true, fileMustExist: true, timeout: 10_000 });
      return Boolean(this.db.prepare(sql).get(id));
    } catch (err) {
      if (err instanceof Database.SqliteError) return null;
      throw err;
    }
  }

  close(): void {
    this.db?.close();
  }
}
