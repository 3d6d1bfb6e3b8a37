/**
 * What the sandbox runs for an action: the skill's command under the execution journal, with the
 * timeout and output bound it asks for or the defaults. The action workflow builds it, and the
 * sandbox worker builds it again from the signed action to check that it runs nothing else.
 * Workflow-safe.
 */
import { journaledCommand } from './journal.js';
import type { SkillCommand } from './skill.js';

export const DEFAULT_ACTION_TIMEOUT_MS = 60_000;
export const DEFAULT_ACTION_MAX_OUTPUT = 64 * 1024;

export interface ActionExec {
  command: string[];
  timeout_ms: number;
  max_output_bytes: number;
  /** Names of vault secrets the command gets; the values are read by the sandbox activity. */
  secrets?: string[];
}

export function actionExec(actionId: string, command: SkillCommand): ActionExec {
  const maxOutput = command.max_output_bytes ?? DEFAULT_ACTION_MAX_OUTPUT;
  return {
    command: journaledCommand(actionId, command.argv, maxOutput),
    timeout_ms: command.timeout_ms ?? DEFAULT_ACTION_TIMEOUT_MS,
    max_output_bytes: maxOutput,
    ...(command.secrets ? { secrets: command.secrets } : {}),
  };
}
