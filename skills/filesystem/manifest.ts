/**
 * The filesystem skill: read, write, list, stat, mkdir, delete and info, inside the agent's
 * workspace only. Paths are refused twice: by the schemas before anything runs, and by the
 * sandbox programs, which walk them without letting the kernel follow a symlink (see scripts.ts).
 */
import { z } from 'zod';
import { defineOperation, type SkillCommand, type SkillManifest } from '../types.js';
import { contentChunks, MAX_CONTENT_BYTES, utf8Length } from './content.js';
import { WorkspaceEntrySchema, WorkspacePathSchema } from './paths.js';
import {
  DELETE_SCRIPT,
  FS_SCRIPT_NAME,
  INFO_SCRIPT,
  LIST_SCRIPT,
  MKDIR_SCRIPT,
  READ_SCRIPT,
  STAT_SCRIPT,
  WRITE_SCRIPT,
} from './scripts.js';

/** A program of scripts.ts with its arguments ("--": the first argument is not one of perl's options). */
const run = (program: string, ...args: string[]): SkillCommand => ({ argv: ['/usr/bin/perl', '-e', program, '--', ...args] });

const MiB = 1024 * 1024;

const read = defineOperation({
  description: 'Read a text file of the workspace (at most max_bytes bytes from its start).',
  schema: z.strictObject({
    path: WorkspaceEntrySchema,
    max_bytes: z.number().int().min(1).max(MiB).default(MiB).describe('Bytes to read at most (default and maximum 1 MiB).'),
  }),
  risk: 'low',
  command: (p) => ({ ...run(READ_SCRIPT, p.path, String(p.max_bytes)), max_output_bytes: p.max_bytes }),
});

const write = defineOperation({
  description: 'Create or replace a file of the workspace with the given text. Its directory must exist.',
  schema: z.strictObject({
    path: WorkspaceEntrySchema,
    content: z
      .string()
      .max(MAX_CONTENT_BYTES, 'content must be at most 1 MiB')
      .refine((c) => utf8Length(c) <= MAX_CONTENT_BYTES, `content must be at most 1 MiB (${MAX_CONTENT_BYTES} bytes of UTF-8)`)
      .describe('The whole new content of the file (UTF-8 text, at most 1 MiB).'),
  }),
  risk: 'medium',
  command: (p) => run(WRITE_SCRIPT, p.path, ...contentChunks(p.content)),
});

const list = defineOperation({
  description: 'List a directory of the workspace: each entry with its type, size and modification time.',
  schema: z.strictObject({ path: WorkspacePathSchema.default('.') }),
  risk: 'low',
  command: (p) => ({ ...run(LIST_SCRIPT, p.path), max_output_bytes: MiB }),
});

const stat = defineOperation({
  description: 'Type, size and modification time of a file or directory of the workspace.',
  schema: z.strictObject({ path: WorkspacePathSchema }),
  risk: 'low',
  command: (p) => run(STAT_SCRIPT, p.path),
});

const mkdir = defineOperation({
  description: 'Create a directory of the workspace, with its missing parents.',
  schema: z.strictObject({ path: WorkspaceEntrySchema }),
  risk: 'medium',
  command: (p) => run(MKDIR_SCRIPT, p.path),
});

const remove = defineOperation({
  description:
    'Delete a file, a symlink (not its target) or an empty directory of the workspace; recursive: true deletes a directory with its contents.',
  schema: z.strictObject({
    path: WorkspaceEntrySchema,
    recursive: z.boolean().default(false).describe('Delete a non-empty directory with everything in it.'),
  }),
  risk: 'high',
  command: (p) => run(DELETE_SCRIPT, p.path, p.recursive ? 'recursive' : 'single'),
});

const info = defineOperation({
  description: 'How many files, directories and symlinks the workspace holds, their total size, and its capacity.',
  schema: z.strictObject({}),
  risk: 'low',
  command: () => ({ argv: ['/bin/sh', '-c', INFO_SCRIPT, FS_SCRIPT_NAME] }),
});

export const filesystemSkill: SkillManifest = {
  id: 'filesystem',
  description: "Files of the agent's workspace (/workspace in its sandbox), and nothing outside it.",
  operations: { read, write, list, stat, mkdir, delete: remove, info },
};
