/**
 * The secrets vault: named secrets in SQLite under the data dir (`vault.db`) or in PostgreSQL
 * (stores/postgres/vault.ts), each encrypted on its
 * own with AES-256-GCM under the vault key of a master key (Keyring.derive('vault', id)). Each row
 * records the id of the master key it is encrypted under, and the secret's name is bound to the
 * ciphertext as additional authenticated data, so a ciphertext copied to another name does not
 * decrypt. A wrong key or a changed byte fails with a VaultError, never with garbage.
 *
 * The API writes (put, delete, rotate); the sandbox worker reads values at execution time. Values
 * never leave this module except through reveal().
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Keyring, KeyringError, type KeyringOptions } from '../domain/keyring.js';
import { SecretNameSchema, SecretValueSchema } from '../domain/secret.js';
import { openSqliteDatabase } from './sqlite-database.js';

const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretInfo {
  name: string;
  key_id: string;
  created_at: string;
  updated_at: string;
}

/**
 * What went wrong, as a code: secret_not_found, invalid_secret (a bad name or value),
 * decryption_failed (wrong key or tampered ciphertext), key_unavailable (the master key it was
 * encrypted under is not in this process's keyring).
 */
export type VaultErrorCode = 'secret_not_found' | 'invalid_secret' | 'decryption_failed' | 'key_unavailable';

export class VaultError extends Error {
  override name = 'VaultError';
  constructor(
    readonly code: VaultErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface SecretRow {
  name: string;
  key_id: string;
  nonce: Buffer;
  ciphertext: Buffer;
  created_at: string;
  updated_at: string;
}

const aad = (name: string) => Buffer.from(`warden vault v1\0${name}`, 'utf8');

/** A secret as it is sealed: the master key's id, the nonce, and the ciphertext with its tag. */
export interface SealedSecret {
  key_id: string;
  nonce: Buffer;
  ciphertext: Buffer;
}

/** What a back end reads and writes; the sealing (and every check) is the contract's. */
export interface SecretTables {
  row(name: string): Promise<SecretRow | undefined>;
  /** Inserts or replaces, keeping the first created_at; says whether it was new. */
  upsert(name: string, sealed: SealedSecret, now: string): Promise<{ created_at: string; created: boolean }>;
  list(): Promise<SecretInfo[]>;
  delete(name: string): Promise<boolean>;
  /** Re-seals every secret in one transaction: all or nothing. Returns how many rows changed, and how many there were. */
  resealAll(reseal: (row: SecretRow) => SealedSecret): Promise<{ reencrypted: number; total: number }>;
}

/** The vault's contract, whichever database holds the sealed secrets. */
export abstract class Vault {
  protected constructor(
    private readonly tables: SecretTables,
    private readonly keyring: Keyring,
  ) {}

  /** Opens (and creates) the vault in a SQLite file. */
  static open(path: string, keyring: Keyring): Vault {
    return SqliteVault.open(path, keyring);
  }

  abstract close(): Promise<void>;

  /** Stores a secret under the current master key; `created` is false when it replaced one. */
  async put(name: string, value: string): Promise<SecretInfo & { created: boolean }> {
    checkName(name);
    const checked = SecretValueSchema.safeParse(value);
    if (!checked.success) throw new VaultError('invalid_secret', `secret ${name}: ${checked.error.issues[0]!.message}`);
    const now = new Date().toISOString();
    const sealed = this.seal(name, value);
    const { created_at, created } = await this.tables.upsert(name, sealed, now);
    return { name, key_id: sealed.key_id, created_at, updated_at: now, created };
  }

  /** Names and times, never values. */
  list(): Promise<SecretInfo[]> {
    return this.tables.list();
  }

  async has(name: string): Promise<boolean> {
    return (await this.tables.row(name)) !== undefined;
  }

  /** Removes a secret; false when there was none. */
  delete(name: string): Promise<boolean> {
    checkName(name);
    return this.tables.delete(name);
  }

  /** The values of these secrets; a missing one fails with secret_not_found naming every missing name. */
  async reveal(names: readonly string[]): Promise<Map<string, string>> {
    names.forEach(checkName);
    const rows = await Promise.all(names.map((name) => this.tables.row(name)));
    const missing = names.filter((_, i) => !rows[i]);
    if (missing.length) throw new VaultError('secret_not_found', `no secret named ${missing.join(', ')} in the vault`);
    return new Map(rows.map((row) => [row!.name, this.open(row!)]));
  }

  /**
   * Re-encrypts every secret under the current master key, in one transaction: all or nothing.
   * With a key file, a new master key is made first (`newKey`); with WARDEN_MASTER_KEY, the
   * current key is the one the operator just set.
   */
  async rotate(): Promise<{ key_id: string; reencrypted: number; total: number; new_master_key: boolean }> {
    const newKey = this.keyring.rotatable;
    if (newKey) this.keyring.rotate();
    const { reencrypted, total } = await this.tables.resealAll((row) => this.seal(row.name, this.open(row)));
    return { key_id: this.keyring.currentId, reencrypted, total, new_master_key: newKey };
  }

  private seal(name: string, value: string): SealedSecret {
    const keyId = this.keyring.currentId;
    const nonce = randomBytes(NONCE_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.keyring.derive('vault', keyId), nonce);
    cipher.setAAD(aad(name));
    const ciphertext = Buffer.concat([cipher.update(value, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return { key_id: keyId, nonce, ciphertext };
  }

  private open(row: SecretRow): string {
    let key: Buffer;
    try {
      key = this.keyring.derive('vault', row.key_id);
    } catch (err) {
      if (err instanceof KeyringError) throw new VaultError('key_unavailable', `secret ${row.name}: ${err.message}`);
      throw err;
    }
    try {
      if (row.ciphertext.length < TAG_BYTES) throw new Error('too short');
      const decipher = createDecipheriv('aes-256-gcm', key, row.nonce);
      decipher.setAAD(aad(row.name));
      decipher.setAuthTag(row.ciphertext.subarray(-TAG_BYTES));
      return Buffer.concat([decipher.update(row.ciphertext.subarray(0, -TAG_BYTES)), decipher.final()]).toString('utf8');
    } catch {
      throw new VaultError(
        'decryption_failed',
        `secret ${row.name} does not decrypt under master key ${row.key_id}: the key is wrong or the stored secret was changed`,
      );
    }
  }
}

/** The vault in a SQLite file under the data dir (`vault.db`): the embedded back end. */
class SqliteVault extends Vault {
  private constructor(
    private readonly db: Database.Database,
    keyring: Keyring,
  ) {
    const row = (name: string) => db.prepare('SELECT * FROM secrets WHERE name = ?').get(name) as SecretRow | undefined;
    super(
      {
        row: async (name) => row(name),
        upsert: async (name, sealed, now) =>
          db
            .transaction(() => {
              const existing = row(name);
              db.prepare(
                `INSERT INTO secrets (name, key_id, nonce, ciphertext, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)
                 ON CONFLICT (name) DO UPDATE SET key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at`,
              ).run(name, sealed.key_id, sealed.nonce, sealed.ciphertext, existing?.created_at ?? now, now);
              return { created_at: existing?.created_at ?? now, created: !existing };
            })
            .immediate(),
        list: async () => db.prepare('SELECT name, key_id, created_at, updated_at FROM secrets ORDER BY name').all() as SecretInfo[],
        delete: async (name) => db.prepare('DELETE FROM secrets WHERE name = ?').run(name).changes > 0,
        resealAll: async (reseal) =>
          db
            .transaction(() => {
              const rows = db.prepare('SELECT * FROM secrets ORDER BY name').all() as SecretRow[];
              const update = db.prepare('UPDATE secrets SET key_id = ?, nonce = ?, ciphertext = ? WHERE name = ?');
              let reencrypted = 0;
              for (const row of rows) {
                const sealed = reseal(row);
                reencrypted += update.run(sealed.key_id, sealed.nonce, sealed.ciphertext, row.name).changes;
              }
              return { reencrypted, total: rows.length };
            })
            .immediate(),
      },
      keyring,
    );
  }

  static override open(path: string, keyring: Keyring): SqliteVault {
    const db = openSqliteDatabase(
      path,
      `CREATE TABLE IF NOT EXISTS secrets (
      name TEXT PRIMARY KEY,
      key_id TEXT NOT NULL,
      nonce BLOB NOT NULL,
      ciphertext BLOB NOT NULL,
      created_at TEXT NOT NULL,
      updated_at TEXT NOT NULL
    )`,
      // The API writes while the sandbox worker reads: wait for the lock instead of failing.
      { timeout: 10_000 },
    );
    return new SqliteVault(db, keyring);
  }

  async close(): Promise<void> {
    this.db.close();
  }
}

function checkName(name: string): void {
  const checked = SecretNameSchema.safeParse(name);
  if (!checked.success) throw new VaultError('invalid_secret', `secret name "${name}": ${checked.error.issues[0]!.message}`);
}

/** Opens `<dataDir>/vault.db` with the master keys from the environment or the key file. */
export function openVault(opts: KeyringOptions): Vault {
  return Vault.open(join(resolve(opts.dataDir), 'vault.db'), Keyring.load(opts));
}
