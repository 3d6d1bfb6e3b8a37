/**
 * API keys, stored hashed: in SQLite under the data dir, or in PostgreSQL
 * (stores/postgres/key-store.ts). A key is `wk_` + 32 random bytes
 * (base64url); only its SHA-256 is kept (a random 256-bit secret needs no slow hash), looked up
 * by that hash and compared in constant time. A key is shown once, when it is created.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import Database from 'better-sqlite3';
import type { Identity, Role } from '../domain/roles.js';
import { hasColumn, openSqliteDatabase } from './sqlite-database.js';

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

const digest = (key: string) => createHash('sha256').update(key, 'utf8').digest();

/** A key's row as both back ends store it. */
export type KeyRow = Omit<ApiKeyInfo, 'person' | 'counts_as'> & { person: string | null };
export const KEY_COLUMNS = ['id', 'name', 'role', 'person', 'created_at', 'created_by', 'confirmed_by', 'revoked_at'] as const;

/** What a back end reads and writes; the rules (who a key counts as, who may confirm it) are the contract's. */
export interface KeyTables {
  row(id: string): Promise<KeyRow | undefined>;
  /** The key whose secret has this SHA-256, with the stored hash. */
  byHash(hash: Buffer): Promise<(KeyRow & { hash: Buffer }) | undefined>;
  insert(row: KeyRow & { hash: Buffer }): Promise<void>;
  setConfirmedBy(id: string, by: string): Promise<void>;
  /** Sets revoked_at unless it is set already, and deletes the key's console sessions. */
  revoke(id: string, at: string): Promise<void>;
  /** Every key, oldest first. */
  all(): Promise<KeyRow[]>;
  hasActiveAdmin(): Promise<boolean>;
}

/** A console session as the key store keeps it: the SHA-256 of its id (never the id itself), whose key, and until when. */
export interface ConsoleSessionRow {
  id_hash: Buffer;
  key_id: string;
  /** Milliseconds since the epoch. */
  expires_at: number;
}

/**
 * Console sessions, kept beside the keys they stand for so that every API process sharing the
 * keys shares them too; their rules (hashing the id, expiry, the key's identity) are
 * api/console/sessions.ts's.
 */
export interface ConsoleSessionTable {
  insert(row: ConsoleSessionRow): Promise<void>;
  byHash(idHash: Buffer): Promise<ConsoleSessionRow | undefined>;
  delete(idHash: Buffer): Promise<void>;
  /** Deletes every session that expired by `now` (milliseconds since the epoch). */
  deleteExpired(now: number): Promise<void>;
}

/** API keys' contract, whichever database holds them. */
export abstract class KeyStore {
  protected constructor(
    private readonly tables: KeyTables,
    readonly consoleSessions: ConsoleSessionTable,
  ) {}

  /** Opens (and creates) the keys in a SQLite file; ':memory:' for a store that lives as long as the process. */
  static open(path: string): KeyStore {
    return SqliteKeyStore.open(path);
  }

  abstract close(): Promise<void>;

  /** Creates a key; the returned secret is never stored and cannot be shown again. */
  async create(name: string, role: Role, createdBy: string | null, options: { secret?: string; person?: string } = {}) {
    const secret = options.secret ?? `wk_${randomBytes(32).toString('base64url')}`;
    const id = `key_${randomBytes(6).toString('hex')}`;
    await this.tables.insert({
      id,
      name,
      role,
      person: options.person ?? name,
      hash: digest(secret),
      created_at: new Date().toISOString(),
      created_by: createdBy,
      confirmed_by: null,
      revoked_at: null,
    });
    return { ...(await this.get(id))!, key: secret };
  }

  async get(id: string): Promise<ApiKeyInfo | null> {
    const row = await this.tables.row(id);
    return row ? this.info(row) : null;
  }

  /**
   * The person approvals count a key as. A key made on the host, or confirmed by an admin who is
   * a different person from its maker, is its holder's own; any other key counts as the person of
   * the admin who made it: one admin who mints keys for made-up names is still one person.
   */
  async countsAs(id: string): Promise<string> {
    const row = await this.tables.row(id);
    return row ? this.personOf(row) : id;
  }

  /** countsAs for a row already read; `lookup` reads the keys that made it (the store, or rows read together). */
  private async personOf(key: KeyRow, lookup = (id: string) => this.tables.row(id)): Promise<string> {
    const seen = new Set<string>();
    let row: KeyRow | undefined = key;
    while (row && !madeOnTheHost(row.created_by) && !row.confirmed_by && !seen.has(row.id)) {
      seen.add(row.id);
      row = await lookup(row.created_by!);
    }
    return row ? (row.person ?? row.name) : key.id;
  }

  /**
   * Confirms a key as its holder's own: by an admin who counts as another person than the key's
   * maker (or by the host, which holds the data dir). Returns why not, or null when done.
   */
  async confirm(id: string, by: Identity | typeof HOST): Promise<string | null> {
    const row = await this.tables.row(id);
    if (!row) return `no API key ${id}`;
    if (row.revoked_at) return `key ${id} is revoked`;
    if (row.confirmed_by || madeOnTheHost(row.created_by))
      return `key ${id} is already its holder's own (${row.confirmed_by ? `confirmed by ${row.confirmed_by}` : 'made on the host'})`;
    if (by !== HOST) {
      const maker = await this.countsAs(row.created_by!);
      if (by.person === maker || by.key_id === id) {
        return `the key was made by ${maker}, whom your key counts as: a second admin, another person, must confirm it`;
      }
    }
    await this.tables.setConfirmedBy(id, by === HOST ? HOST : by.key_id);
    return null;
  }

  /** The identity behind a presented key, or null when it is unknown or revoked. */
  async authenticate(presented: string): Promise<Identity | null> {
    const hash = digest(presented);
    const row = await this.tables.byHash(hash);
    if (!row || !timingSafeEqual(row.hash, hash) || row.revoked_at) return null;
    return this.identity(row);
  }

  /** The identity a key id stands for while the key is not revoked (a paired chat user acts as it), else null. */
  async identityOf(id: string): Promise<Identity | null> {
    const row = await this.tables.row(id);
    return row && !row.revoked_at ? this.identity(row) : null;
  }

  private async identity(row: KeyRow): Promise<Identity> {
    return { key_id: row.id, name: row.name, role: row.role, person: await this.personOf(row) };
  }

  private async info(row: KeyRow, lookup?: (id: string) => Promise<KeyRow | undefined>): Promise<ApiKeyInfo> {
    return { ...row, person: row.person ?? row.name, counts_as: await this.personOf(row, lookup) };
  }

  /** Makes sure a key with this secret exists (WARDEN_ADMIN_API_KEY); true when it was added. */
  async ensure(name: string, role: Role, secret: string): Promise<boolean> {
    if (await this.tables.byHash(digest(secret))) return false;
    await this.create(name, role, 'system', { secret });
    return true;
  }

  /** Whether a key with this id was ever made (revoked ones too). */
  async has(id: string): Promise<boolean> {
    return (await this.tables.row(id)) !== undefined;
  }

  /** Whether the key with this id was revoked (false for an unknown id). */
  async isRevoked(id: string): Promise<boolean> {
    return Boolean((await this.tables.row(id))?.revoked_at);
  }

  /** These keys as a worker asks about them (KeyIds): an id this store does not know counts as revoked, as in KeyIdDirectory. */
  readonly ids: KeyIds = {
    has: (id) => this.has(id),
    isRevoked: async (id) => {
      const row = await this.tables.row(id);
      return !row || row.revoked_at !== null;
    },
  };

  hasActiveAdmin(): Promise<boolean> {
    return this.tables.hasActiveAdmin();
  }

  async list(): Promise<ApiKeyInfo[]> {
    const rows = await this.tables.all();
    // Every key's maker is among them (a maker is made first): who each counts as needs no further reads.
    const byId = new Map(rows.map((row) => [row.id, row]));
    return Promise.all(rows.map((row) => this.info(row, async (id) => byId.get(id))));
  }

  /** Revokes a key and ends its console sessions; null when no such key exists. Revoking twice keeps the first time. */
  async revoke(id: string): Promise<ApiKeyInfo | null> {
    await this.tables.revoke(id, new Date().toISOString());
    return this.get(id);
  }
}

const SQLITE_COLUMNS = KEY_COLUMNS.join(', ');

/** The keys in a SQLite file under the data dir (`warden.db`): the embedded back end. */
class SqliteKeyStore extends KeyStore {
  private constructor(private readonly db: Database.Database) {
    super(
      {
        row: async (id) => db.prepare(`SELECT ${SQLITE_COLUMNS} FROM api_keys WHERE id = ?`).get(id) as KeyRow | undefined,
        byHash: async (hash) =>
          db.prepare(`SELECT ${SQLITE_COLUMNS}, hash FROM api_keys WHERE hash = ?`).get(hash) as (KeyRow & { hash: Buffer }) | undefined,
        insert: async (row) => {
          db.prepare(`INSERT INTO api_keys (${SQLITE_COLUMNS}, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`).run(
            ...KEY_COLUMNS.map((c) => row[c]),
            row.hash,
          );
        },
        setConfirmedBy: async (id, by) => {
          db.prepare('UPDATE api_keys SET confirmed_by = ? WHERE id = ?').run(by, id);
        },
        revoke: async (id, at) => {
          db.transaction(() => {
            db.prepare('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id);
            db.prepare('DELETE FROM console_sessions WHERE key_id = ?').run(id);
          })();
        },
        all: async () => db.prepare(`SELECT ${SQLITE_COLUMNS} FROM api_keys ORDER BY created_at, id`).all() as KeyRow[],
        hasActiveAdmin: async () => Boolean(db.prepare("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL").get()),
      },
      {
        insert: async (row) => {
          db.prepare('INSERT INTO console_sessions (id_hash, key_id, expires_at) VALUES (?, ?, ?)').run(
            row.id_hash,
            row.key_id,
            row.expires_at,
          );
        },
        byHash: async (idHash) =>
          db.prepare('SELECT id_hash, key_id, expires_at FROM console_sessions WHERE id_hash = ?').get(idHash) as
            ConsoleSessionRow | undefined,
        delete: async (idHash) => {
          db.prepare('DELETE FROM console_sessions WHERE id_hash = ?').run(idHash);
        },
        deleteExpired: async (now) => {
          db.prepare('DELETE FROM console_sessions WHERE expires_at <= ?').run(now);
        },
      },
    );
  }

  static override open(path: string): SqliteKeyStore {
    const db = openSqliteDatabase(
      path,
      `CREATE TABLE IF NOT EXISTS api_keys (
      id TEXT PRIMARY KEY,
      name TEXT NOT NULL,
      role TEXT NOT NULL,
      hash BLOB NOT NULL UNIQUE,
      created_at TEXT NOT NULL,
      created_by TEXT,
      revoked_at TEXT
    );
    CREATE TABLE IF NOT EXISTS console_sessions (
      id_hash BLOB PRIMARY KEY,
      key_id TEXT NOT NULL,
      expires_at INTEGER NOT NULL
    );
    CREATE INDEX IF NOT EXISTS console_sessions_by_key ON console_sessions (key_id);
    CREATE INDEX IF NOT EXISTS console_sessions_by_expiry ON console_sessions (expires_at);`,
    );
    // Keys from before persons: each is its holder's, named by the key's name.
    if (!hasColumn(db, 'api_keys', 'person')) db.exec('ALTER TABLE api_keys ADD COLUMN person TEXT');
    if (!hasColumn(db, 'api_keys', 'confirmed_by')) db.exec('ALTER TABLE api_keys ADD COLUMN confirmed_by TEXT');
    return new SqliteKeyStore(db);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

/** What a process that does not own the key store asks of it: which key ids exist, and which are revoked. */
export interface KeyIds {
  /** Whether a key with this id was ever made (revoked ones too). */
  has(id: string): Promise<boolean>;
  /** Whether the key was revoked; true when the key store cannot say (fail closed). */
  isRevoked(id: string): Promise<boolean>;
}

/**
 * Which key ids exist, read-only, for a process that does not own the key store (the worker's
 * audit store checks actors with it, the conversation activities whether their requester's key
 * was revoked). Revoked keys count: an action a key started may be recorded
 * after the key was revoked. The file is opened when first asked, as the API may not have made it
 * yet; until then no key id is known.
 */
export class KeyIdDirectory implements KeyIds {
  private db: Database.Database | undefined;

  constructor(private readonly path: string) {}

  async has(id: string): Promise<boolean> {
    return this.ask('SELECT 1 FROM api_keys WHERE id = ?', id) ?? false;
  }

  /** Whether the key was revoked; true when the key store cannot say (fail closed: an unknown key stands behind nothing). */
  async isRevoked(id: string): Promise<boolean> {
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

  async close(): Promise<void> {
    this.db?.close();
  }
}
