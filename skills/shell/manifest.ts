/**
 * The shell skill: one command line, run by /bin/sh in the agent's sandbox as the sandbox user in
 * /workspace, under a timeout, with bounded output and its exit code. What the command can reach
 * is what the sandbox allows, which is why its default risk is high.
 */
import { z } from 'zod';
import { defineOperation, type SkillManifest } from '../types.js';
import { utf8Length } from '../filesystem/content.js';
import { SecretNamesSchema } from '../../domain/secret.js';

export const MAX_COMMAND_BYTES = 16 * 1024;

const exec = defineOperation({
  description: 'Run a shell command line (POSIX sh) in the sandbox; returns its exit code, stdout and stderr.',
  schema: z.strictObject({
    command: z
      .string()
      .min(1, 'command must not be empty')
      .max(MAX_COMMAND_BYTES, 'command must be at most 16 KiB')
      .refine((c) => utf8Length(c) <= MAX_COMMAND_BYTES, `command must be at most 16 KiB (${MAX_COMMAND_BYTES} bytes of UTF-8)`)
      .refine((c) => !c.includes('\0'), 'command must not contain a NUL byte')
      .describe('The command line, run as `/bin/sh -c COMMAND` in /workspace.'),
    timeout_ms: z
      .number()
      .int()
      .min(100)
      .max(3_600_000)
      .optional()
      .describe('Kill the command (and everything it started) after this long; default 60 s.'),
    max_output_bytes: z
      .number()
      .int()
      .min(1)
      // Both streams at their most, escaped as JSON, must still travel through Temporal (2 MiB a payload).
      .max(512 * 1024)
      .optional()
      .describe('Keep at most this many bytes of stdout and of stderr (at most 512 KiB each); default 64 KiB.'),
    secrets: SecretNamesSchema.optional().describe(
      'Vault secrets the command needs: each reaches it as the environment variable of that name; output that echoes a value is redacted.',
    ),
  }),
  risk: 'high',
  command: (p) => ({
    argv: ['/bin/sh', '-c', p.command],
    timeout_ms: p.timeout_ms,
    max_output_bytes: p.max_output_bytes,
    secrets: p.secrets,
  }),
});

export const shellSkill: SkillManifest = {
  id: 'shell',
  description: "Run shell commands in the agent's sandbox.",
  operations: { exec },
};
