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
  created_at: string;
  created_by: string | null;
  revoked_at: string | null;
}

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
    return new KeyStore(db);
  }

  close(): void {
    this.db.close();
  }

  /** Creates a key; the returned secret is never stored and cannot be shown again. */
  create(name: string, role: Role, createdBy: string | null, secret = `wk_${randomBytes(32).toString('base64url')}`) {
    const info: ApiKeyInfo = {
      id: `key_${randomBytes(6).toString('hex')}`,
      name,
      role,
      created_at: new Date().toISOString(),
      created_by: createdBy,
      revoked_at: null,
    };
    this.db
      .prepare('INSERT INTO api_keys (id, name, role, hash, created_at, created_by) VALUES (?, ?, ?, ?, ?, ?)')
      .run(info.id, name, role, digest(secret), info.created_at, createdBy);
    return { ...info, key: secret };
  }

  /** The identity behind a presented key, or null when it is unknown or revoked. */
  authenticate(presented: string): Identity | null {
    const hash = digest(presented);
    const row = this.db.prepare('SELECT id, name, role, hash, revoked_at FROM api_keys WHERE hash = ?').get(hash) as
      | { id: string; name: string; role: Role; hash: Buffer; revoked_at: string | null }
      | undefined;
    if (!row || !timingSafeEqual(row.hash, hash) || row.revoked_at) return null;
    return { key_id: row.id, name: row.name, role: row.role };
  }

  /** Makes sure a key with this secret exists (WARDEN_ADMIN_API_KEY); true when it was added. */
  ensure(name: string, role: Role, secret: string): boolean {
    if (this.db.prepare('SELECT 1 FROM api_keys WHERE hash = ?').get(digest(secret))) return false;
    this.create(name, role, 'system', secret);
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
    return this.db
      .prepare('SELECT id, name, role, created_at, created_by, revoked_at FROM api_keys ORDER BY created_at, id')
      .all() as ApiKeyInfo[];
  }

  /** Revokes a key; false when no such key exists. Revoking twice keeps the first time. */
  revoke(id: string): ApiKeyInfo | null {
    this.db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(new Date().toISOString(), id);
    return (this.db.prepare('SELECT id, name, role, created_at, created_by, revoked_at FROM api_keys WHERE id = ?').get(id) as ApiKeyInfo) ?? null;
  }
}

/**
 * Which key ids exist, read-only, for a process that does not own the key store (the worker's
 * audit store checks actors with it). Revoked keys count: an action a key started may be recorded
 * after the key was revoked. The file is opened when first asked, as the API may not have made it
 * yet; until then no key id is known.
 */
export class KeyIdDirectory {
  private db: Database.Database | undefined;

  constructor(private readonly path: string) {}

  has(id: string): boolean {
    try {
      this.db ??= new Database(this.path, { readonly: true, fileMustExist: true, timeout: 10_000 });
      return Boolean(this.db.prepare('SELECT 1 FROM api_keys WHERE id = ?').get(id));
    } catch (err) {
      // No key store yet (no file, or no table), or one that cannot be read: the id is not known (fail closed).
      if (err instanceof Database.SqliteError) return false;
      throw err;
    }
  }

  close(): void {
    this.db?.close();
  }
}
