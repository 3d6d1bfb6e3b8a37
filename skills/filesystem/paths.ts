/**
 * Workspace paths, checked before anything runs: relative, no `..` segment, no NUL or control
 * characters, no leading `-` or `~`, bounded length, then normalised (`a//b/./c/` is `a/b/c`; the
 * workspace itself is `.`). The sandbox program checks again as it walks the path (scripts.ts).
 */
import { z } from 'zod';
import { utf8Length } from './content.js';

export const MAX_PATH_LENGTH = 4096;
export const MAX_SEGMENT_BYTES = 255;

/** `a//b/./c/` → `a/b/c`; the workspace itself → `.`. */
export function normaliseWorkspacePath(path: string): string {
  const segments = path.split('/').filter((s) => s !== '' && s !== '.');
  return segments.length === 0 ? '.' : segments.join('/');
}

/** Any path in the workspace, the workspace itself (`.`) included. */
export const WorkspacePathSchema = z
  .string()
  .min(1, 'path must not be empty (use "." for the workspace itself)')
  .max(MAX_PATH_LENGTH, `path must be at most ${MAX_PATH_LENGTH} characters`)
  .refine((p) => !p.includes('\0'), 'path must not contain a NUL byte')
  .refine((p) => !/[\u0001-\u001f\u007f]/.test(p), 'path must not contain control characters (newline, tab, escape, ...)')
  .refine((p) => !p.startsWith('/'), 'path must be relative to the workspace, not absolute: write "notes/a.txt" for /workspace/notes/a.txt')
  .refine((p) => !p.split('/').includes('..'), 'path must not contain a ".." segment: it would leave the directory it names')
  .refine((p) => !p.startsWith('-'), 'path must not start with "-" (write "./-name" for a file whose name starts with "-")')
  .refine((p) => !p.startsWith('~'), 'path must not start with "~": there is no home directory, paths are relative to the workspace')
  .refine(
    (p) => p.split('/').every((s) => utf8Length(s) <= MAX_SEGMENT_BYTES),
    `each name in path must be at most ${MAX_SEGMENT_BYTES} bytes`,
  )
  .overwrite(normaliseWorkspacePath)
  .describe('A path relative to the agent workspace (/workspace), e.g. "notes/a.txt"; "." is the workspace itself.');

/** A path naming an entry inside the workspace (not the workspace itself). */
export const WorkspaceEntrySchema = WorkspacePathSchema.refine(
  (p) => p !== '.',
  'path must name a file or directory inside the workspace, not the workspace itself',
).describe('A path relative to the agent workspace (/workspace), e.g. "notes/a.txt".');
