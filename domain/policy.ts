/**
 * The zero-trust policy: a declarative file, validated at start-up, whose rules give each action
 * a security level (low: runs at once; medium: runs at once, flagged in the audit log; high: one
 * human approval; critical: two approvals by two different people) or deny it. Rules are tried in
 * order and the first that matches decides; an action no rule matches is denied by the implicit
 * rule "default-deny". Before any rule, the implicit rule "skill-fit" denies an action whose type
 * does not fit its skill (only skill_execution runs a skill, and only a real one). Every decision
 * names the rule that made it.
 *
 * judge() is pure (no I/O, no clock), so workflow code may call it with a policy parsed elsewhere;
 * loadPolicy() reads a file and belongs to process start-up. Whether a command is destructive is
 * shell-analysis.ts's question.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { maxRisk, RISK_LEVELS, riskRank, RiskLevelSchema, type RiskLevel } from './risk.js';
import { destructivePattern } from './shell-analysis.js';

import { ACTION_TYPES, ActionTypeSchema, type ActionType } from './action.js';
import type { SkillManifests } from './skill.js';

export { ACTION_TYPES, ActionTypeSchema, type ActionType } from './action.js';

export const INJECTION_VERDICTS = ['clean', 'suspicious', 'injection'] as const;
export type InjectionVerdict = (typeof INJECTION_VERDICTS)[number];

/** The implicit last rule: whatever the policy does not name is denied. */
export const DEFAULT_DENY_RULE = 'default-deny';

/** The implicit first rule: an action whose type does not fit its skill is denied (skillFitProblem). */
export const SKILL_FIT_RULE = 'skill-fit';

/** The policy shipped with Warden (domain/policy.default.json). */
export const DEFAULT_POLICY_FILE = fileURLToPath(new URL('./policy.default.json', import.meta.url));

/** Human approvals each level needs before the action runs. */
export const APPROVALS_REQUIRED: Readonly<Record<RiskLevel, 0 | 1 | 2>> = { low: 0, medium: 0, high: 1, critical: 2 };

const RegexSourceSchema = z
  .string()
  .min(1, 'a pattern must not be empty')
  .superRefine((source, ctx) => {
    try {
      new RegExp(source);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}` });
    }
  });

const RuleWhenSchema = z
  .strictObject({
    action_types: z.array(ActionTypeSchema).min(1).optional(),
    skills: z.array(z.string().min(1)).min(1).optional(),
    operations: z.array(z.string().min(1)).min(1).optional(),
    /** JavaScript regular expressions tried against the action's command (parameters.command); any may match. */
    command_matches: z.array(RegexSourceSchema).min(1).optional(),
    injection: z
      .array(z.enum(['suspicious', 'injection']))
      .min(1)
      .optional(),
    /** true: the command matches a destructive pattern (isDestructive); false: it does not. */
    destructive: z.boolean().optional(),
    uses_secrets: z.boolean().optional(),
  })
  .describe('Conditions that must all hold; an empty object matches every action.');

const RuleThenSchema = z
  .strictObject({
    deny: z.literal(true).optional(),
    reason: z.string().min(1).optional(),
    level: z.enum([...RISK_LEVELS, 'skill_default']).optional(),
    at_least: RiskLevelSchema.optional(),
  })
  .superRefine((then, ctx) => {
    if (then.deny) {
      if (!then.reason) ctx.addIssue({ code: 'custom', path: ['reason'], message: 'a deny needs a reason, shown to whoever asked' });
      if (then.level || then.at_least) ctx.addIssue({ code: 'custom', message: 'a deny takes no level or at_least' });
    } else {
      if (!then.level) {
        ctx.addIssue({
          code: 'custom',
          path: ['level'],
          message: 'give either {"deny": true, "reason": ...} or a level (low, medium, high, critical or skill_default)',
        });
      }
      if (then.reason) ctx.addIssue({ code: 'custom', path: ['reason'], message: 'reason goes with "deny": true only' });
    }
  })
  .transform((then): RuleOutcome => (then.deny ? { deny: true, reason: then.reason! } : { level: then.level!, at_least: then.at_least }));

export type RuleOutcome = { deny: true; reason: string } | { level: RiskLevel | 'skill_default'; at_least?: RiskLevel };

const names = (list: Iterable<string>): string => [...list].map((n) => `"${n}"`).join(', ');

/** A rule, checked against the skills it may name. */
const ruleSchema = (skills: SkillManifests) =>
  z
    .strictObject({
      id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a rule id is 1-64 characters of a-z, 0-9, ".", "_" and "-"'),
      description: z.string().min(1, 'say what the rule is for'),
      when: RuleWhenSchema,
      then: RuleThenSchema,
    })
    .superRefine((rule, ctx) => {
      // A misspelt skill or operation would silently never match: refuse it.
      rule.when.skills?.forEach((skill, j) => {
        if (!Object.hasOwn(skills, skill)) {
          ctx.addIssue({
            code: 'custom',
            path: ['when', 'skills', j],
            message: `unknown skill "${skill}"; known skills: ${names(Object.keys(skills))}`,
          });
        }
      });
      const listed = (rule.when.skills ?? Object.keys(skills)).filter((s) => Object.hasOwn(skills, s)).map((s) => skills[s]!);
      const known = new Set(listed.flatMap((s) => Object.keys(s.operations)));
      rule.when.operations?.forEach((op, j) => {
        if (!known.has(op)) {
          ctx.addIssue({
            code: 'custom',
            path: ['when', 'operations', j],
            message: `no ${rule.when.skills ? 'listed ' : ''}skill has an operation "${op}"; known: ${names(known)}`,
          });
        }
      });
      // A fixed level written without skills would also decide shell.exec and filesystem.delete,
      // below their default risks: a rule that may decide skill executions must say for which skills.
      const then = rule.then;
      const decidesSkills = (rule.when.action_types ?? ACTION_TYPES).includes('skill_execution');
      if (decidesSkills && !rule.when.skills && !('deny' in then) && then.level !== 'skill_default') {
        const level = then.at_least ? maxRisk(then.level, then.at_least) : then.level;
        if (level !== 'critical') {
          ctx.addIssue({
            code: 'custom',
            path: ['when', 'skills'],
            message: `the rule gives skill_execution actions level ${level} without naming their skills: list them in when.skills, leave skill_execution out of when.action_types, or use the level "skill_default"`,
          });
        }
      }
    });
export type PolicyRule = z.infer<ReturnType<typeof ruleSchema>>;

/** A policy document, its rules checked against these skills. */
const policySchema = (skills: SkillManifests) =>
  z.strictObject({
    version: z.literal(1, 'the only policy version is 1'),
    rules: z.array(ruleSchema(skills)).superRefine(
      (rules, ctx) => {
        const seen = new Map<string, number>();
        rules.forEach((rule, i) => {
          const id = (rule as { id?: unknown } | undefined)?.id;
          if (typeof id !== 'string') return;
          const first = seen.get(id);
          if (first !== undefined)
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate rule id "${id}" (also rules[${first}])` });
          else seen.set(id, i);
          if (id === DEFAULT_DENY_RULE)
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `"${DEFAULT_DENY_RULE}" is the implicit last rule's id` });
          if (id === SKILL_FIT_RULE)
            ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `"${SKILL_FIT_RULE}" is the implicit first rule's id` });
        });
      },
      // Ids are checked even when other parts of the rules are invalid, so one run reports every problem.
      { when: (payload) => Array.isArray(payload.value) },
    ),
  });
export type Policy = z.infer<ReturnType<typeof policySchema>>;

/** A policy file that cannot be used: every problem, each naming the rule id and the field. */
export class PolicyError extends Error {
  constructor(
    message: string,
    readonly problems: string[],
  ) {
    super(message);
    this.name = 'PolicyError';
  }
}

/** rules[2].when.command_matches[0] → `rule "id" (rules[2]) when.command_matches[0]`. */
function locate(path: PropertyKey[], input: unknown): string {
  const field = (parts: PropertyKey[]) => parts.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k ? '.' : ''}${String(p)}`)).join('');
  if (path[0] === 'rules' && typeof path[1] === 'number') {
    const id = (input as { rules?: { id?: unknown }[] })?.rules?.[path[1]]?.id;
    const rule = typeof id === 'string' ? `rule "${id}" (rules[${path[1]}])` : `rules[${path[1]}]`;
    return path.length > 2 ? `${rule} ${field(path.slice(2))}` : rule;
  }
  return path.length ? field(path) : 'policy';
}

/** Validates a parsed policy document against the skills it may name; throws a PolicyError listing every problem. */
export function parsePolicy(input: unknown, skills: SkillManifests, source = 'policy'): Policy {
  const parsed = policySchema(skills).safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${locate(issue.path, input)}: ${issue.message}`);
  throw new PolicyError(`${source} is invalid:\n  ${problems.join('\n  ')}`, problems);
}

/** Reads and validates a policy file (JSON) against the skills it may name. */
export function loadPolicy(skills: SkillManifests, path: string = DEFAULT_POLICY_FILE): Policy {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PolicyError(`cannot read policy file ${path}: ${(err as Error).message}`, [(err as Error).message]);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new PolicyError(`policy file ${path} is not valid JSON: ${(err as Error).message}`, [(err as Error).message]);
  }
  return parsePolicy(json, skills, `policy file ${path}`);
}

export interface ActionRequest {
  action_type: ActionType;
  skill_id: string | null;
  operation: string | null;
  parameters: Record<string, unknown>;
  injection: InjectionVerdict;
  uses_secrets: boolean;
}

export interface PolicyDecision {
  allowed: boolean;
  /** The security level; a denied action reports critical. */
  level: RiskLevel;
  /** The rule that decided: a rule id of the policy, or "default-deny". */
  rule: string;
  /** Why, for the requester and the audit log: the rule, the conditions that held, the level's origin. */
  reasons: string[];
  approvals_required: 0 | 1 | 2;
}

/** The command an action runs, for command_matches and destructive: its `command` parameter. */
const commandOf = (request: ActionRequest): string | null =>
  typeof request.parameters.command === 'string' ? request.parameters.command : null;

interface Facts {
  command: string | null;
  destructive: string | null;
}

/** The reasons a rule's conditions hold, or null when one does not. */
function matchRule(when: PolicyRule['when'], request: ActionRequest, facts: Facts): string[] | null {
  const reasons: string[] = [];
  if (when.action_types && !when.action_types.includes(request.action_type)) return null;
  if (when.skills && !(request.skill_id !== null && when.skills.includes(request.skill_id))) return null;
  if (when.operations && !(request.operation !== null && when.operations.includes(request.operation))) return null;
  if (when.command_matches) {
    const hit = facts.command === null ? undefined : when.command_matches.find((source) => new RegExp(source).test(facts.command!));
    if (hit === undefined) return null;
    reasons.push(`the command matches /${hit}/`);
  }
  if (when.injection) {
    if (request.injection === 'clean' || !when.injection.includes(request.injection)) return null;
    reasons.push(`the injection screen's verdict is "${request.injection}"`);
  }
  if (when.destructive !== undefined) {
    if ((facts.destructive !== null) !== when.destructive) return null;
    if (facts.destructive) reasons.push(`destructive command: ${facts.destructive}`);
  }
  if (when.uses_secrets !== undefined) {
    if (request.uses_secrets !== when.uses_secrets) return null;
    if (request.uses_secrets) reasons.push('the action uses secrets');
  }
  return reasons;
}

const denied = (rule: string, reasons: string[]): PolicyDecision => ({
  allowed: false,
  level: 'critical',
  rule,
  reasons,
  approvals_required: 0,
});

/**
 * Why the action's type does not fit its skill, or null when it does. Whatever skill operation an
 * action names is what the sandbox runs, so only skill_execution may name one, and it must name a
 * real one; a chat (or any other type) naming shell.exec would run a shell command at a chat's level.
 */
export function skillFitProblem(
  request: Pick<ActionRequest, 'action_type' | 'skill_id' | 'operation'>,
  skills: SkillManifests,
): string | null {
  const { action_type, skill_id, operation } = request;
  const named = `${skill_id ?? '(no skill)'}.${operation ?? '(no operation)'}`;
  if (action_type !== 'skill_execution') {
    if (skill_id === null && operation === null) return null;
    return `a ${action_type} action runs no skill, but this one names ${named}; to run it, submit it as a skill_execution, judged at that operation's risk`;
  }
  const skill = skill_id !== null && Object.hasOwn(skills, skill_id) ? skills[skill_id] : undefined;
  if (!skill || operation === null || !Object.hasOwn(skill.operations, operation)) {
    return `a skill_execution needs a known skill and operation, and ${named} is not one`;
  }
  return null;
}

/** Decides an action: denied when its type does not fit its skill, else the first rule whose conditions all hold, else default-deny. */
export function judge(policy: Policy, request: ActionRequest, skills: SkillManifests): PolicyDecision {
  const misfit = skillFitProblem(request, skills);
  if (misfit) return denied(SKILL_FIT_RULE, [`rule "${SKILL_FIT_RULE}": an action's type must fit the skill it names`, misfit]);
  const command = commandOf(request);
  const facts: Facts = { command, destructive: command === null ? null : destructivePattern(command) };
  for (const rule of policy.rules) {
    const held = matchRule(rule.when, request, facts);
    if (!held) continue;
    const reasons = [`rule "${rule.id}": ${rule.description}`, ...held];
    const outcome = rule.then;
    if ('deny' in outcome) return denied(rule.id, [...reasons, outcome.reason]);
    let level: RiskLevel;
    if (outcome.level === 'skill_default') {
      const skill = request.skill_id !== null && Object.hasOwn(skills, request.skill_id) ? skills[request.skill_id] : undefined;
      const op =
        skill && request.operation !== null && Object.hasOwn(skill.operations, request.operation)
          ? skill.operations[request.operation]
          : undefined;
      if (!op) {
        return denied(rule.id, [
          ...reasons,
          `${request.skill_id ?? '(no skill)'}.${request.operation ?? '(no operation)'} is not a known skill operation, so it has no default risk`,
        ]);
      }
      level = op.risk;
      reasons.push(`default risk of ${request.skill_id}.${request.operation}: ${level}`);
    } else {
      level = outcome.level;
    }
    if (outcome.at_least && riskRank(outcome.at_least) > riskRank(level)) {
      reasons.push(`raised from ${level} to ${outcome.at_least}`);
      level = outcome.at_least;
    }
    return { allowed: true, level, rule: rule.id, reasons, approvals_required: APPROVALS_REQUIRED[level] };
  }
  return denied(DEFAULT_DENY_RULE, ['no rule of the policy matches this action, and whatever the policy does not name is denied']);
}
