/** Parsers for what the filesystem skill's programs print (see scripts.ts for the formats). */

export type EntryType = 'file' | 'directory' | 'symlink' | 'other';

export interface ListEntry {
  name: string;
  type: EntryType;
  size: number;
  /** ISO 8601. */
  mtime: string;
}

export interface StatResult {
  type: Exclude<EntryType, 'symlink'>;
  size: number;
  mtime: string;
  /** The path itself is a symlink (inside the workspace); type, size and mtime are its target's. */
  symlink: boolean;
}

export interface WorkspaceInfo {
  files: number;
  directories: number;
  symlinks: number;
  /** Sum of the sizes of the regular files. */
  bytes: number;
  capacity_bytes: number;
  free_bytes: number;
}

const FIND_TYPES: Record<string, EntryType> = { f: 'file', d: 'directory', l: 'symlink' };

const isoFromEpoch = (seconds: string): string => new Date(Math.floor(Number(seconds)) * 1000).toISOString();

const lines = (stdout: string): string[] => stdout.split('\n').filter((l) => l !== '');

/** `list`'s output. Names holding a newline or tab show "?" in their place. */
export function parseListing(stdout: string): ListEntry[] {
  return lines(stdout).map((line) => {
    const [name, type, size, mtime] = line.split('\t');
    return { name: name!, type: FIND_TYPES[type!] ?? 'other', size: Number(size), mtime: isoFromEpoch(mtime!) };
  });
}

/** `stat`'s output. */
export function parseStat(stdout: string): StatResult {
  const [type, size, mtime, link] = stdout.trim().split('\t');
  return { type: type as StatResult['type'], size: Number(size), mtime: isoFromEpoch(mtime!), symlink: link === 'yes' };
}

/** `info`'s output. */
export function parseInfo(stdout: string): WorkspaceInfo {
  const values = Object.fromEntries(lines(stdout).map((l) => l.split('\t') as [string, string]));
  const n = (key: keyof WorkspaceInfo) => Number(values[key] ?? 0);
  return {
    files: n('files'),
    directories: n('directories'),
    symlinks: n('symlinks'),
    bytes: n('bytes'),
    capacity_bytes: n('capacity_bytes'),
    free_bytes: n('free_bytes'),
  };
}
