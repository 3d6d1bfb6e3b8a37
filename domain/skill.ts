/**
 * What a skill is: a manifest of operations, each with a zod schema for its parameters, a default
 * risk, and the argv that runs it inside the agent's sandbox. The skills themselves live in
 * skills/, which builds on these types; the domain's decisions receive the registry as a
 * parameter (SkillRegistry) rather than importing skills/ back. Skills use no Node API, so
 * workflow code may import them (the policy judges and builds commands deterministically).
 */
import { z } from 'zod';
import type { RiskLevel } from './risk.js';

/** A skill's id as requests name it: agents, actions and the filters that list them. */
export const SkillIdSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'skill_id: a lower-case name such as "shell"');

/** What the sandbox runs for one operation (through execInSandbox, as the sandbox user in /workspace). */
export interface SkillCommand {
  argv: string[];
  /** Not used by the skills here: execInSandbox has no stdin, so content travels in argv. */
  stdin?: string;
  /** The exec timeout this call asks for; the caller's default when absent. */
  timeout_ms?: number;
  /** The output bound this call asks for; the caller's default when absent. */
  max_output_bytes?: number;
  /** Names of vault secrets passed to the command as environment variables (values are resolved in the sandbox activity). */
  secrets?: string[];
}

export interface SkillOperation<S extends z.ZodType = z.ZodType> {
  description: string;
  /** A strict object schema: unknown parameters are refused. */
  schema: S;
  /** The default risk; the policy may raise it or deny the operation. */
  risk: RiskLevel;
  /** Builds the argv from validated parameters. User values are only ever separate argv elements. */
  command(params: z.infer<S>): SkillCommand;
}

export interface SkillManifest {
  id: string;
  description: string;
  operations: Record<string, SkillOperation>;
}

/** The skills by id (skills/index.ts's SKILLS). */
export type SkillManifests = Readonly<Record<string, SkillManifest>>;

/** What the domain's decisions ask of the skill registry (skills/index.ts's SKILL_REGISTRY). */
export interface SkillRegistry {
  readonly manifests: SkillManifests;
  /** The skill; an unknown one throws a typed error naming the known skills. */
  getSkill(skillId: string): SkillManifest;
  /** Validates the parameters and builds the sandbox command; bad parameters throw a typed error naming each problem. */
  prepareCommand(skillId: string, operation: string, params: unknown): SkillCommand;
}
