/** The skill registry: look-ups that fail with a typed error naming what exists, and JSON Schema export. */
import { z } from 'zod';
import { WardenError } from '../domain/errors.js';
import { filesystemSkill } from './filesystem/manifest.js';
import { shellSkill } from './shell/manifest.js';
import type { SkillCommand, SkillManifest, SkillManifests, SkillOperation, SkillRegistry } from './types.js';

export * from './types.js';

export const SKILLS: SkillManifests = Object.freeze({
  [filesystemSkill.id]: filesystemSkill,
  [shellSkill.id]: shellSkill,
});

/** An unknown skill or operation (code unknown_skill / unknown_operation), or invalid parameters (invalid_parameters). */
export class SkillError extends WardenError {
  constructor(code: 'unknown_skill' | 'unknown_operation' | 'invalid_parameters', message: string) {
    super(code, message, 422);
    this.name = 'SkillError';
  }
}

const names = (keys: string[]): string => keys.map((k) => `"${k}"`).join(', ');

export function getSkill(skillId: string): SkillManifest {
  const skill = Object.hasOwn(SKILLS, skillId) ? SKILLS[skillId] : undefined;
  if (!skill) throw new SkillError('unknown_skill', `unknown skill "${skillId}"; known skills: ${names(Object.keys(SKILLS))}`);
  return skill;
}

export function getOperation(skillId: string, operation: string): SkillOperation {
  const skill = getSkill(skillId);
  const op = Object.hasOwn(skill.operations, operation) ? skill.operations[operation] : undefined;
  if (!op) {
    throw new SkillError(
      'unknown_operation',
      `skill "${skillId}" has no operation "${operation}"; its operations: ${names(Object.keys(skill.operations))}`,
    );
  }
  return op;
}

/** Validates the parameters and builds the sandbox command; bad parameters throw a SkillError naming each problem. */
export function prepareCommand(skillId: string, operation: string, params: unknown): SkillCommand {
  const op = getOperation(skillId, operation);
  const parsed = op.schema.safeParse(params);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.length ? `${i.path.join('.')}: ` : ''}${i.message}`);
    throw new SkillError('invalid_parameters', `${skillId}.${operation}: ${problems.join('; ')}`);
  }
  return op.command(parsed.data);
}

/** The registry as the domain's decisions receive it: the policy, admission and assessment take it as a parameter. */
export const SKILL_REGISTRY: SkillRegistry = Object.freeze({ manifests: SKILLS, getSkill, prepareCommand });

/** The operation's parameters as JSON Schema (draft 2020-12), as an LLM tool's input schema. */
export function toJsonSchema(skillId: string, operation: string): Record<string, unknown> {
  return z.toJSONSchema(getOperation(skillId, operation).schema, { io: 'input' }) as Record<string, unknown>;
}
