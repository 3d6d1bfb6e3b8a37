/**
 * Files only Warden's own user may read: the data dir is 0700, and every database (with its
 * SQLite -wal and -shm files) and log Warden writes there is 0600. Files made by an older Warden
 * with the umask's wider mode are narrowed when they are next opened.
 */
import { chmodSync, closeSync, existsSync, mkdirSync, openSync } from 'node:fs';
import { dirname } from 'node:path';

export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;

/** Makes the directory (and its missing parents) if needed, and narrows it to 0700. */
export function ensurePrivateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  chmodSync(dir, PRIVATE_DIR_MODE);
}

/**
 * Creates the file 0600 if it is missing (so nothing else can open it between its creation and a
 * chmod), or narrows it to 0600; its directory is made private first.
 */
export function ensurePrivateFile(file: string): void {
  ensurePrivateDir(dirname(file));
  closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
  chmodSync(file, PRIVATE_FILE_MODE);
}

/**
 * Before opening a SQLite database: the file 0600 in a 0700 directory. SQLite gives the -wal and
 * -shm files it creates the database file's mode; ones left by an older Warden are narrowed too.
 */
export function preparePrivateDatabase(file: string): void {
  if (file === ':memory:') return;
  ensurePrivateFile(file);
  for (const companion of [`${file}-wal`, `${file}-shm`, `${file}-journal`]) {
    if (existsSync(companion)) chmodSync(companion, PRIVATE_FILE_MODE);
  }
}
