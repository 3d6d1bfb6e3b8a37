/** What a skill is (domain/skill.ts), and how a skill declares its operations. */
import type { z } from 'zod';
import type { SkillOperation } from '../domain/skill.js';

export type { SkillCommand, SkillManifest, SkillManifests, SkillOperation, SkillRegistry } from '../domain/skill.js';

/** Declares an operation with its parameter type inferred from its schema. */
export const defineOperation = <S extends z.ZodType>(op: SkillOperation<S>): SkillOperation<S> => op;
