/**
 * Warden's master keys. The secrets vault, the payload codec and the audit log's anchor each derive
 * their own 256-bit key from a master key (HKDF-SHA256 with a purpose label), so one secret
 * protects all three and no derived key can be used for another's data.
 *
 * Where the keys come from:
 * - WARDEN_MASTER_KEY (base64 of 32 bytes) is the current key; WARDEN_MASTER_KEY_PREVIOUS
 *   (comma-separated, same form) are older keys kept to decrypt what they encrypted. Rotation is the
 *   operator's: move the old key to _PREVIOUS, set the new one, then rotate the vault.
 * - Otherwise a key file, `<dataDir>/master-keys.json`, created on first start with mode 0600;
 *   `rotate()` adds a new current key to it and keeps the old ones.
 *
 * A key id (a fingerprint, never the key) names each key, so encrypted data records which key to use.
 */
import { createHash, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, mkdirSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** vault: secrets; payload: Temporal payloads; audit-head: the MAC that anchors the audit log's head; grant: the API's signature on actions and approvals. */
export type KeyPurpose = 'vault' | 'payload' | 'audit-head' | 'grant';

const KEY_BYTES = 32;

export class KeyringError extends Error {
  override name = 'KeyringError';
}

interface KeyFile {
  current: string;
  keys: Record<string, string>;
}

/** The fingerprint that names a master key in encrypted data. */
export function keyId(key: Buffer): string {
  return createHash('sha256').update('warden master key id\0').update(key).digest('hex').slice(0, 16);
}

/** Parses a base64 master key, refusing anything that is not exactly 32 bytes. */
export function parseMasterKey(text: string, name = 'master key'): Buffer {
  const key = Buffer.from(text.trim(), 'base64');
  if (key.length !== KEY_BYTES || key.toString('base64').replace(/=+$/, '') !== text.trim().replace(/=+$/, '')) {
    throw new KeyringError(`${name} must be ${KEY_BYTES} random bytes in base64 (for example: openssl rand -base64 32)`);
  }
  return key;
}

export interface KeyringOptions {
  /** WARDEN_MASTER_KEY. */
  masterKey?: string;
  /** WARDEN_MASTER_KEY_PREVIOUS, comma-separated. */
  previousMasterKeys?: string;
  /** Where the key file lives when no key is given in the environment. */
  dataDir: string;
  /** Told once when a key file is created, so the operator knows where the key is. */
  onKeyFileCreated?: (path: string) => void;
}

export class Keyring {
  private constructor(
    private keys: Map<string, Buffer>,
    private current: string,
    /** Set in key-file mode: the file is re-read when another process rotated it. */
    private readonly file: string | undefined,
  ) {}

  static load(opts: KeyringOptions): Keyring {
    if (opts.masterKey) {
      const keys = new Map<string, Buffer>();
      const current = parseMasterKey(opts.masterKey, 'WARDEN_MASTER_KEY');
      keys.set(keyId(current), current);
      for (const [i, text] of (opts.previousMasterKeys ?? '')
        .split(',')
        .filter((t) => t.trim())
        .entries()) {
        const key = parseMasterKey(text, `WARDEN_MASTER_KEY_PREVIOUS[${i}]`);
        keys.set(keyId(key), key);
      }
      return new Keyring(keys, keyId(current), undefined);
    }
    const file = join(resolve(opts.dataDir), 'master-keys.json');
    if (!existsSync(file)) {
      const key = randomBytes(KEY_BYTES);
      // The API and the worker may start together: only one creates the file, the other reads it.
      if (writeKeyFile(file, { current: keyId(key), keys: { [keyId(key)]: key.toString('base64') } }, { exclusive: true })) {
        opts.onKeyFileCreated?.(file);
      }
    }
    const { keys, current } = readKeyFile(file);
    return new Keyring(keys, current, file);
  }

  /** The id of the key new data is encrypted under. */
  get currentId(): string {
    return this.current;
  }

  /** Key-file mode: rotate() can make a new key (with WARDEN_MASTER_KEY the operator rotates). */
  get rotatable(): boolean {
    return this.file !== undefined;
  }

  /** Every key id this keyring can decrypt. */
  ids(): string[] {
    return [...this.keys.keys()];
  }

  /** The AES-256 key for one purpose under a master key (the current one when no id is given). */
  derive(purpose: KeyPurpose, id: string = this.current): Buffer {
    let master = this.keys.get(id);
    if (!master && this.file) {
      // Another process (the API) may have rotated the shared key file since this one read it.
      ({ keys: this.keys, current: this.current } = readKeyFile(this.file));
      master = this.keys.get(id);
    }
    if (!master) throw new KeyringError(`no master key with id ${id}: it was removed, or this process has a different WARDEN_MASTER_KEY`);
    return Buffer.from(hkdfSync('sha256', master, Buffer.alloc(0), `warden ${purpose} v1`, KEY_BYTES));
  }

  /** Key-file mode: makes a new current master key, keeping the old ones to decrypt old data. */
  rotate(): string {
    if (!this.file) {
      throw new KeyringError(
        'the master key comes from WARDEN_MASTER_KEY: set a new one there and move the old one to WARDEN_MASTER_KEY_PREVIOUS',
      );
    }
    const key = randomBytes(KEY_BYTES);
    const keys: Record<string, string> = {};
    for (const [id, k] of this.keys) keys[id] = k.toString('base64');
    keys[keyId(key)] = key.toString('base64');
    writeKeyFile(this.file, { current: keyId(key), keys });
    ({ keys: this.keys, current: this.current } = readKeyFile(this.file));
    return this.current;
  }
}

function readKeyFile(file: string): { keys: Map<string, Buffer>; current: string } {
  let parsed: KeyFile;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8')) as KeyFile;
  } catch (err) {
    throw new KeyringError(`cannot read the master key file ${file}: ${(err as Error).message}`);
  }
  const keys = new Map<string, Buffer>();
  for (const [id, text] of Object.entries(parsed.keys ?? {})) {
    const key = parseMasterKey(text, `key ${id} in ${file}`);
    if (keyId(key) !== id) throw new KeyringError(`key ${id} in ${file} does not match its id: the file was edited`);
    keys.set(id, key);
  }
  if (!keys.has(parsed.current)) throw new KeyringError(`the current key ${parsed.current} is missing from ${file}`);
  return { keys, current: parsed.current };
}

/**
 * Written whole to a temporary file and renamed, so a crash never leaves half a key file.
 * `exclusive`: linked instead, so an existing file is never replaced; false when one existed.
 */
function writeKeyFile(file: string, content: KeyFile, opts: { exclusive?: boolean } = {}): boolean {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(content, null, 2) + '\n', { mode: 0o600 });
  chmodSync(tmp, 0o600);
  if (!opts.exclusive) {
    renameSync(tmp, file);
    return true;
  }
  try {
    linkSync(tmp, file);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(tmp);
  }
}
