/**
 * The zero-trust policy: a declarative file, validated at start-up, whose rules give each action
 * a security level (low: runs at once; medium: runs at once, flagged in the audit log; high: one
 * human approval; critical: two approvals by two different people) or deny it. Rules are tried in
 * order and the first that matches decides; an action no rule matches is denied by the implicit
 * rule "default-deny". Before any rule, the implicit rule "skill-fit" denies an action whose type
 * does not fit its skill (only skill_execution runs a skill, and only a real one). Every decision
 * names the rule that made it.
 *
 * judge() and isDestructive() are pure (no I/O, no clock), so workflow code may call them with a
 * policy parsed elsewhere; loadPolicy() reads a file and belongs to process start-up.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { maxRisk, RISK_LEVELS, riskRank, RiskLevelSchema, type RiskLevel } from './risk.js';
import { SKILLS, type SkillManifest } from '../skills/index.js';

import { ACTION_TYPES, ActionTypeSchema, type ActionType } from './action.js';

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
    injection: z.array(z.enum(['suspicious', 'injection'])).min(1).optional(),
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

const RuleSchema = z
  .strictObject({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, 'a rule id is 1-64 characters of a-z, 0-9, ".", "_" and "-"'),
    description: z.string().min(1, 'say what the rule is for'),
    when: RuleWhenSchema,
    then: RuleThenSchema,
  })
  .superRefine((rule, ctx) => {
    // A misspelt skill or operation would silently never match: refuse it.
    rule.when.skills?.forEach((skill, j) => {
      if (!Object.hasOwn(SKILLS, skill)) {
        ctx.addIssue({ code: 'custom', path: ['when', 'skills', j], message: `unknown skill "${skill}"; known skills: ${names(Object.keys(SKILLS))}` });
      }
    });
    const skills = (rule.when.skills ?? Object.keys(SKILLS)).filter((s) => Object.hasOwn(SKILLS, s)).map((s) => SKILLS[s]!);
    const known = new Set(skills.flatMap((s) => Object.keys(s.operations)));
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
export type PolicyRule = z.infer<typeof RuleSchema>;

export const PolicySchema = z.strictObject({
  version: z.literal(1, 'the only policy version is 1'),
  rules: z.array(RuleSchema).superRefine(
    (rules, ctx) => {
      const seen = new Map<string, number>();
      rules.forEach((rule, i) => {
        const id = (rule as { id?: unknown } | undefined)?.id;
        if (typeof id !== 'string') return;
        const first = seen.get(id);
        if (first !== undefined) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `duplicate rule id "${id}" (also rules[${first}])` });
        else seen.set(id, i);
        if (id === DEFAULT_DENY_RULE) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `"${DEFAULT_DENY_RULE}" is the implicit last rule's id` });
        if (id === SKILL_FIT_RULE) ctx.addIssue({ code: 'custom', path: [i, 'id'], message: `"${SKILL_FIT_RULE}" is the implicit first rule's id` });
      });
    },
    // Ids are checked even when other parts of the rules are invalid, so one run reports every problem.
    { when: (payload) => Array.isArray(payload.value) },
  ),
});
export type Policy = z.infer<typeof PolicySchema>;

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
  const field = (parts: PropertyKey[]) =>
    parts.map((p, k) => (typeof p === 'number' ? `[${p}]` : `${k ? '.' : ''}${String(p)}`)).join('');
  if (path[0] === 'rules' && typeof path[1] === 'number') {
    const id = (input as { rules?: { id?: unknown }[] })?.rules?.[path[1]]?.id;
    const rule = typeof id === 'string' ? `rule "${id}" (rules[${path[1]}])` : `rules[${path[1]}]`;
    return path.length > 2 ? `${rule} ${field(path.slice(2))}` : rule;
  }
  return path.length ? field(path) : 'policy';
}

/** Validates a parsed policy document; throws a PolicyError listing every problem. */
export function parsePolicy(input: unknown, source = 'policy'): Policy {
  const parsed = PolicySchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => `${locate(issue.path, input)}: ${issue.message}`);
  throw new PolicyError(`${source} is invalid:\n  ${problems.join('\n  ')}`, problems);
}

/** Reads and validates a policy file (JSON). */
export function loadPolicy(path: string = DEFAULT_POLICY_FILE): Policy {
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
  return parsePolicy(json, `policy file ${path}`);
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
  skills: Readonly<Record<string, SkillManifest>> = SKILLS,
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
export function judge(
  policy: Policy,
  request: ActionRequest,
  skills: Readonly<Record<string, SkillManifest>> = SKILLS,
): PolicyDecision {
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
      const op = skill && request.operation !== null && Object.hasOwn(skill.operations, request.operation)
        ? skill.operations[request.operation]
        : undefined;
      if (!op) {
        return denied(rule.id, [...reasons, `${request.skill_id ?? '(no skill)'}.${request.operation ?? '(no operation)'} is not a known skill operation, so it has no default risk`]);
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

// ---------------------------------------------------------------------------------------------
// Destructive commands. A small shell lexer splits the command line into simple commands (quotes,
// escapes, pipelines, separators, redirections, $(...), `...` and <(...)), strips wrappers such
// as sudo, env and timeout, and looks at what each command would do; `sh -c`, `eval` and command
// substitutions are looked into too. Text that is merely printed (echo "rm -rf /") is not a hit.
//
// It fails closed on what it cannot read: text computed at run time ($a as a command name, eval
// or sh -c of an expansion, a decoder piped into a shell), code handed to an interpreter (python -c,
// perl -e, node -e, ...), multi-call binaries (busybox), operands that xargs reads, and a recursive
// delete whose target is an expansion or lies under `cd /` are all destructive. The lexer drops
// quoting, so a `$` even in single quotes counts as an expansion: a false alarm costs an approval.

/** True when the command matches a destructive pattern; see destructivePattern for which. */
export const isDestructive = (command: string): boolean => destructivePattern(command) !== null;

/** What makes the command destructive (e.g. `rm -r on /`), or null. */
export function destructivePattern(command: string): string | null {
  return inspectScript(command, 0);
}

interface SimpleCommand {
  words: string[];
  /** Targets of output redirections (>, >>, >|, &>). */
  outputs: string[];
  /** Bodies of $(...), `...` and <(...) in this command. */
  substitutions: string[];
  /** The previous command of its pipeline. */
  pipedFrom: SimpleCommand | null;
  /** Reads a here-document or here-string (<<, <<<). */
  hereInput: boolean;
}

const FORK_BOMBS = [
  /([A-Za-z_:.][\w:.-]*)\s*\(\s*\)\s*\{[^}]*?(?<![\w:.-])\1\s*\|\s*&?\s*\1\s*&/,
  /function\s+([\w:.-]+)\s*(?:\(\s*\))?\s*\{[^}]*?(?<![\w:.-])\1\s*\|\s*&?\s*\1\s*&/,
];
/** Programs that run a shell script: from -c, a file operand, or standard input. */
const SHELLS = new Set(['sh', 'bash', 'dash', 'zsh', 'ksh', 'mksh', 'ash', 'fish', 'su']);
/** Reserved words that may open a simple command (`then rm -rf /`): the command follows them. */
const KEYWORDS = new Set(['if', 'then', 'else', 'elif', 'do', 'while', 'until', '!']);
/** Binaries that run whichever applet their first operand names (busybox rm -rf /). */
const MULTI_CALL = new Set(['busybox', 'toybox']);
/** Interpreters, each with the option pattern that hands it code on the command line. */
const INTERPRETERS: [name: RegExp, codeOption: RegExp][] = [
  [/^(?:python|pypy)[\d.]*$/, /^-[A-Za-z]*c/],
  [/^perl[\d.]*$/, /^-[A-Za-z]*[eE]/],
  [/^ruby[\d.]*$/, /^-[A-Za-z]*e/],
  [/^(?:node|nodejs|bun)$/, /^(?:-[A-Za-z]*[ep]|--eval|--print)(?:=|$)/],
  [/^php[\d.]*$/, /^-[A-Za-z]*r/],
  [/^(?:lua|luajit)[\d.]*$/, /^-[A-Za-z]*e/],
  [/^Rscript$/, /^(?:-e|--expr)/],
];
const isInterpreter = (name: string): boolean => name === 'deno' || INTERPRETERS.some(([re]) => re.test(name));
/** Text the shell computes at run time: a parameter, a command or a process substitution. */
const isExpansion = (word: string): boolean => /[$`]|[<>]\(/.test(word);
const DOWNLOADERS = new Set(['curl', 'wget', 'fetch', 'nc', 'ncat', 'netcat', 'aria2c']);
const FORMATTERS = /^(?:mkfs(?:\..+)?|mke2fs|mkswap|wipefs|blkdiscard|mkntfs|mkdosfs)$/;
const SYSTEM_DIRS = new Set([
  'bin', 'boot', 'dev', 'etc', 'home', 'lib', 'lib32', 'lib64', 'libx32', 'opt', 'proc', 'root', 'run', 'sbin', 'srv', 'sys', 'usr', 'var',
]);
/** Options that take a separate value, per wrapper command. */
const WRAPPERS: Record<string, Set<string>> = {
  sudo: new Set(['-u', '-g', '-h', '-p', '-C', '-r', '-t', '-U', '-D', '-R']),
  doas: new Set(['-u', '-C']),
  env: new Set(['-u', '-C', '--unset', '--chdir']),
  nice: new Set(['-n', '--adjustment']),
  ionice: new Set(['-c', '-n', '-p', '-t']),
  timeout: new Set(['-s', '-k', '--signal', '--kill-after']),
  xargs: new Set(['-I', '-n', '-P', '-L', '-s', '-d', '-E', '-a', '--arg-file', '--delimiter', '--max-args', '--max-procs']),
  stdbuf: new Set(['-i', '-o', '-e']),
  nohup: new Set(),
  command: new Set(),
  exec: new Set(['-a']),
  builtin: new Set(),
  time: new Set(['-f', '-o']),
  setsid: new Set(),
  watch: new Set(['-n', '-d']),
  strace: new Set(['-e', '-o', '-p', '-s', '-u']),
  flock: new Set(['-w', '-E', '--timeout', '--conflict-exit-code']),
  chrt: new Set(),
  taskset: new Set(),
  chroot: new Set(['--userspec', '--groups']),
  unshare: new Set(),
  setpriv: new Set(['--reuid', '--regid', '--groups', '--inh-caps', '--bounding-set']),
  runuser: new Set(['-u', '-g', '-G']),
};
/** Operands a wrapper takes before the command it runs: timeout's duration, flock's lock file, ... */
const WRAPPER_OPERANDS: Record<string, number> = { timeout: 1, flock: 1, chrt: 1, taskset: 1, chroot: 1 };
/** Standard input named as a file: `python3 /dev/stdin` reads what is fed to it. */
const isStdin = (path: string): boolean => path === '-' || /^(?:\/dev\/stdin|\/dev\/fd\/0|\/proc\/self\/fd\/0)$/.test(path);

const basename = (word: string): string => word.slice(word.lastIndexOf('/') + 1);

function inspectScript(text: string, depth: number): string | null {
  if (depth > 8) return 'commands nested too deep to read';
  if (FORK_BOMBS.some((re) => re.test(text))) return 'fork bomb';
  const scope: Scope = { cwd: '/workspace', written: new Set(), links: new Set() };
  for (const cmd of lexShell(text)) {
    for (const body of cmd.substitutions) {
      const hit = inspectScript(body, depth + 1);
      if (hit) return hit;
    }
    const device = cmd.outputs.find(isDevice);
    if (device) return `output redirected to ${device}`;
    const hit = inspectCommand(cmd, depth, scope);
    if (hit) return hit;
    const [name, ...args] = unwrap(cmd.words);
    if (name === 'cd' || name === 'pushd') scope.cwd = changeDirectory(scope.cwd, args.find((a) => !/^-[LPe@]+$/.test(a)));
    for (const file of [...cmd.outputs, ...(name === 'tee' ? args : [])]) scope.written.add(plainPath(file));
    if (name === 'ln') {
      // ln -s / x: from now on x/ is /.
      const { options, operands } = splitArgs(args);
      const [target, link] = [operands[0], operands.at(-1)];
      const symbolic = hasShortOption(options, 's') || options.includes('--symbolic');
      if (symbolic && operands.length >= 2 && (isExpansion(target!) || isSystemPath(target!, scope.cwd))) scope.links.add(plainPath(link!).replace(/\/+$/, ''));
    }
  }
  return null;
}

/** What a script has done so far that changes how its later commands read. */
interface Scope {
  /** The working directory, followed through cd; null once it cannot be known. */
  cwd: string | null;
  /** Files it wrote (redirections, tee): running one runs text the detector never saw as commands. */
  written: Set<string>;
  /** Symbolic links it made to a system path or an expansion: a path through one is that path. */
  links: Set<string>;
}

const plainPath = (path: string): string => path.replace(/^(?:\.\/+)+/, '');

/** Where `cd TARGET` leads from cwd: a home directory is /home/~; null when it cannot be known. */
function changeDirectory(cwd: string | null, target: string | undefined): string | null {
  if (target === undefined || target === '~' || target.startsWith('~/')) return `/home/~${(target ?? '~').slice(1)}`;
  if (target === '-' || isExpansion(target)) return null;
  if (target.startsWith('/')) return target;
  return cwd === null ? null : `${cwd}/${target}`;
}

/**
 * The command's words with leading reserved words, assignments and wrappers (sudo, env, timeout,
 * xargs, ...) removed; the wrappers' names are added to `wrappers` when given.
 */
function unwrap(words: string[], wrappers: string[] = []): string[] {
  let rest = words;
  for (let guard = 0; guard < 16; guard++) {
    while (rest.length && (KEYWORDS.has(rest[0]!) || /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[0]!))) rest = rest.slice(1);
    const name = rest.length ? basename(rest[0]!) : '';
    const valued = WRAPPERS[name];
    if (!valued) return rest;
    wrappers.push(name);
    rest = rest.slice(1);
    while (rest.length && rest[0]!.startsWith('-') && rest[0] !== '-') {
      const option = rest[0]!;
      rest = rest.slice(valued.has(option) ? 2 : 1);
      if (option === '--') break;
    }
    rest = rest.slice(WRAPPER_OPERANDS[name] ?? 0);
    if (name === 'env') while (rest.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[0]!)) rest = rest.slice(1);
  }
  return rest;
}

/** Options and operands of a command line (after `--`, everything is an operand). */
function splitArgs(args: string[]): { options: string[]; operands: string[] } {
  const options: string[] = [];
  const operands: string[] = [];
  let ended = false;
  for (const arg of args) {
    if (!ended && arg === '--') ended = true;
    else if (!ended && arg.startsWith('-') && arg !== '-') options.push(arg);
    else operands.push(arg);
  }
  return { options, operands };
}

const hasShortOption = (options: string[], letters: string): boolean =>
  options.some((o) => !o.startsWith('--') && [...o.slice(1)].some((c) => letters.includes(c)));

function inspectCommand(cmd: SimpleCommand, depth: number, scope: Scope): string | null {
  if (depth > 8) return 'commands nested too deep to read';
  const wrappers: string[] = [];
  const words = unwrap(cmd.words, wrappers);
  if (!words.length) return null;
  if (isExpansion(words[0]!)) return `a command name computed at run time (${words[0]})`;
  // env -S 'rm -rf /' and the like: a command word holding a whole command line.
  if (/\s/.test(words[0]!)) return inspectScript(words.join(' '), depth + 1);
  const wrote = (file: string | undefined) => file !== undefined && scope.written.has(plainPath(file));
  if (wrote(words[0])) return `${words[0]}, which this command line wrote`;
  const cwd = scope.cwd;
  const name = basename(words[0]!);
  const args = words.slice(1);
  const { options, operands } = splitArgs(args);
  const recursive = hasShortOption(options, 'rR') || options.includes('--recursive');
  const viaXargs = wrappers.includes('xargs');
  /** The command reads its standard input from a pipe, a here-document or a here-string. */
  const fedText = cmd.pipedFrom !== null || cmd.hereInput || viaXargs;
  /** A target a recursive change must not reach: a system path, or one not known until run time. */
  const guarded = (arg: string) => isExpansion(arg) || isSystemPath(arg, cwd) || scope.links.has(plainPath(arg).split('/')[0]!);

  if (MULTI_CALL.has(name)) return `${name} (a multi-call binary: it runs whichever command it is given)`;
  if (SHELLS.has(name) || isInterpreter(name)) {
    for (let from: SimpleCommand | null = cmd.pipedFrom; from; from = from.pipedFrom) {
      const source = unwrap(from.words)[0];
      if (source && DOWNLOADERS.has(basename(source))) return `output of ${basename(source)} piped into ${name}`;
    }
    const fetched = cmd.substitutions.find((body) => lexShell(body).some((c) => DOWNLOADERS.has(basename(unwrap(c.words)[0] ?? ''))));
    if (fetched) return `a download run by ${name}`;
  }
  if (SHELLS.has(name)) {
    // sh -c SCRIPT, sh -ec SCRIPT, ...: the script is the first operand after an option with "c".
    const flag = args.findIndex((a) => /^-[a-z]*c[a-z]*$/.test(a));
    // Otherwise the first operand is a script file (past the values of -o and -O); without one, stdin is the script.
    const script = flag >= 0
      ? args.slice(flag + 1).find((a) => !a.startsWith('-'))
      : args.find((a, i) => !/^[+-]/.test(a) && !/^[+-][oO]$/.test(args[i - 1] ?? ''));
    if (flag >= 0 && script !== undefined) {
      // xargs may put its input anywhere in the script (-I {}), so the script is not all there is to read.
      return isExpansion(script) || viaXargs ? `${name} -c of text computed at run time` : inspectScript(script, depth + 1);
    }
    if (script === undefined || isStdin(script) || hasShortOption(options, 's')) return fedText ? `text fed into ${name} as its script` : null;
    if (wrote(script)) return `${name} running ${script}, which this command line wrote`;
    return isExpansion(script) ? `${name} running a script computed at run time (${script})` : null;
  }
  if (isInterpreter(name)) {
    const codeOption = INTERPRETERS.find(([re]) => re.test(name))?.[1];
    if ((codeOption && options.some((o) => codeOption.test(o))) || (name === 'deno' && args[0] === 'eval')) return `code given to ${name} on the command line`;
    if ((operands.length === 0 || isStdin(operands[0]!)) && fedText) return `code fed into ${name}`;
    return wrote(operands[0]) ? `${name} running ${operands[0]}, which this command line wrote` : null;
  }
  switch (name) {
    case 'eval': {
      const text = args.join(' ');
      if (isExpansion(text) || viaXargs) return 'eval of text computed at run time';
      return inspectScript(text, depth + 1);
    }
    case 'source':
    case '.':
      return operands.some((a) => isExpansion(a) || a.startsWith('/dev/') || wrote(a)) || viaXargs ? `${name} of a script computed at run time` : null;
    case 'rm': {
      if (args.includes('--no-preserve-root')) return 'rm --no-preserve-root';
      // Options computed at run time may be -r: `o=-rf; rm $o /`.
      if (!recursive && !args.some(isExpansion)) return null;
      if (recursive && viaXargs) return 'rm -r on operands xargs reads from its input';
      const target = operands.find(guarded);
      return target ? `rm -r on ${target}` : null;
    }
    case 'chmod':
    case 'chown':
    case 'chgrp': {
      if (recursive && viaXargs) return `${name} -R on operands xargs reads from its input`;
      const target = recursive ? operands.find(guarded) : undefined;
      return target ? `${name} -R on ${target}` : null;
    }
    case 'kill':
      // Process id -1 is every process the user may signal; `kill -1` alone is caught too (fail closed),
      // and so is a process id not known until run time ($! is the last background job's).
      if (args.includes('-1')) return 'kill -1 (every process it may signal)';
      return viaXargs || args.some((a) => isExpansion(a) && a !== '$!') ? 'kill of process ids computed at run time' : null;
    case 'killall5':
      return 'killall5 (signals every process)';
    case 'awk':
    case 'gawk':
    case 'mawk':
    case 'nawk':
      return args.some((a) => /\bsystem\s*\(|\|\s*(?:"|getline)|\|&/.test(a)) ? `${name} program that runs commands` : null;
    case 'dd': {
      const of = args.find((a) => a.startsWith('of=') && (isDevice(a.slice(3)) || isExpansion(a.slice(3))));
      return of ? `dd to ${of.slice(3)}` : null;
    }
    case 'shred':
    case 'tee': {
      const device = operands.find(isDevice);
      return device ? `${name} to ${device}` : null;
    }
    case 'cp':
    case 'mv':
    case 'install': {
      const target = operands.at(-1);
      return target !== undefined && isDevice(target) ? `${name} to ${target}` : null;
    }
    case 'rsync': {
      // --delete makes the destination match the source: an empty source wipes it.
      const target = operands.at(-1);
      return args.some((a) => a.startsWith('--delete')) && target !== undefined && guarded(target) ? `rsync --delete into ${target}` : null;
    }
    case 'find': {
      const start = args.findIndex((a) => a.startsWith('-') || a === '(' || a === '!');
      const roots = start < 0 ? args : args.slice(0, start);
      const deletes = args.includes('-delete') || args.some((a, i) => /^-(exec|execdir|ok)$/.test(a) && basename(args[i + 1] ?? '') === 'rm');
      const root = deletes ? roots.find(guarded) : undefined;
      if (root) return `find deleting under ${root}`;
      // What -exec runs is a command of its own: find . -exec sh -c 'rm -rf /' \;
      for (let i = 0; i < args.length; i++) {
        if (!/^-(?:exec|execdir|ok|okdir)$/.test(args[i]!)) continue;
        let end = i + 1;
        while (end < args.length && args[end] !== ';' && args[end] !== '+') end++;
        const words = args.slice(i + 1, end);
        const hit = inspectCommand({ words, outputs: [], substitutions: [], pipedFrom: null, hereInput: false }, depth + 1, scope);
        if (hit) return hit;
        i = end;
      }
      return null;
    }
    default:
      return FORMATTERS.test(name) ? `${name} (formats or wipes a device)` : null;
  }
}

/**
 * /, a home directory, or a top-level system directory, as a command in cwd would see it (a home
 * directory is /home/~; cwd null: a directory not known until run time, where nothing relative is safe).
 */
function isSystemPath(arg: string, cwd: string | null): boolean {
  if (/^(?:~|\$HOME|\$\{HOME\})(?:\/+\**)?$/.test(arg)) return true;
  if (!arg.startsWith('/') && !arg.startsWith('~') && cwd === null) return true;
  const absolute = arg.startsWith('/') ? arg : arg.startsWith('~') ? `/home/~${arg.slice(1)}` : `${cwd}/${arg}`;
  const segments: string[] = [];
  for (const segment of absolute.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..') segments.pop();
    else segments.push(segment);
  }
  while (segments.length && /^\*+$/.test(segments[segments.length - 1]!)) segments.pop(); // `/*` empties `/`
  // A pattern at the top may name a system directory: /b* is /bin and /boot.
  if (segments.length === 1 && /[*?[{]/.test(segments[0]!)) return true;
  if (segments.length === 2 && segments[0] === 'home') return true;
  return segments.length === 0 || (segments.length === 1 && SYSTEM_DIRS.has(segments[0]!));
}

/** A device file other than the harmless ones (null, zero, the terminal, ...). */
const isDevice = (path: string): boolean =>
  /^\/dev\/./.test(path) && !/^\/dev\/(?:null|zero|full|u?random|stdin|stdout|stderr|tty|fd\/.*|pts\/.*|shm\/.*)$/.test(path);

/** Splits a command line into simple commands. Unbalanced quotes run to the end of the text. */
function lexShell(text: string): SimpleCommand[] {
  const commands: SimpleCommand[] = [];
  const fresh = (pipedFrom: SimpleCommand | null): SimpleCommand => ({ words: [], outputs: [], substitutions: [], pipedFrom, hereInput: false });
  let cmd = fresh(null);
  let word: string | null = null;
  let redirect: 'in' | 'out' | null = null;
  let i = 0;

  const endWord = () => {
    if (word === null) return;
    if (redirect === 'out') cmd.outputs.push(word);
    else if (redirect === null) cmd.words.push(word);
    word = null;
    redirect = null;
  };
  const endCommand = (piped: boolean) => {
    endWord();
    redirect = null;
    const empty = !cmd.words.length && !cmd.outputs.length && !cmd.substitutions.length;
    if (!empty) commands.push(cmd);
    cmd = fresh(piped && !empty ? cmd : null);
  };
  /** The body of a construct opened just before `from`, closed by the matching `)`. */
  const balanced = (from: number): [string, number] => {
    let depth = 1;
    let j = from;
    for (; j < text.length && depth > 0; j++) {
      const c = text[j];
      if (c === '\\') j++;
      else if (c === "'") j = text.indexOf("'", j + 1) < 0 ? text.length : text.indexOf("'", j + 1);
      else if (c === '(') depth++;
      else if (c === ')') depth--;
    }
    return [text.slice(from, depth === 0 ? j - 1 : j), j];
  };
  const backquoted = (from: number): [string, number] => {
    let j = from;
    while (j < text.length && text[j] !== '`') j += text[j] === '\\' ? 2 : 1;
    return [text.slice(from, j), j + 1];
  };
  const append = (s: string) => {
    word = (word ?? '') + s;
  };

  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === ' ' || c === '\t') {
      endWord();
      i++;
    } else if (c === '\n' || c === ';' || c === '(' || c === ')') {
      endCommand(false);
      i++;
    } else if (c === '&') {
      if (next === '>') {
        endWord();
        redirect = 'out';
        i += text[i + 2] === '>' ? 3 : 2;
      } else {
        endCommand(false);
        i += next === '&' ? 2 : 1;
      }
    } else if (c === '|') {
      if (next === '|') {
        endCommand(false);
        i += 2;
      } else {
        endCommand(true);
        i += next === '&' ? 2 : 1;
      }
    } else if ((c === '{' || c === '}') && word === null) {
      endCommand(false);
      i++;
    } else if (c === '#' && word === null) {
      const eol = text.indexOf('\n', i);
      i = eol < 0 ? text.length : eol;
    } else if (c === "'") {
      const close = text.indexOf("'", i + 1);
      append(text.slice(i + 1, close < 0 ? text.length : close));
      i = close < 0 ? text.length : close + 1;
    } else if (c === '"') {
      let j = i + 1;
      let part = '';
      while (j < text.length && text[j] !== '"') {
        const d = text[j]!;
        if (d === '\\' && j + 1 < text.length && '$`"\\\n'.includes(text[j + 1]!)) {
          part += text[j + 1];
          j += 2;
        } else if (d === '$' && text[j + 1] === '(') {
          const [body, end] = balanced(j + 2);
          cmd.substitutions.push(body);
          part += `$(${body})`;
          j = end;
        } else if (d === '`') {
          const [body, end] = backquoted(j + 1);
          cmd.substitutions.push(body);
          part += `\`${body}\``;
          j = end;
        } else {
          part += d;
          j++;
        }
      }
      append(part);
      i = j + 1;
    } else if (c === '\\') {
      if (next !== '\n' && next !== undefined) append(next);
      i += 2;
    } else if (c === '$' && next === '(') {
      const [body, end] = balanced(i + 2);
      cmd.substitutions.push(body);
      append(`$(${body})`);
      i = end;
    } else if (c === '$' && next === '{') {
      const close = text.indexOf('}', i);
      append(text.slice(i, close < 0 ? text.length : close + 1));
      i = close < 0 ? text.length : close + 1;
    } else if (c === '`') {
      const [body, end] = backquoted(i + 1);
      cmd.substitutions.push(body);
      append(`\`${body}\``);
      i = end;
    } else if ((c === '<' || c === '>') && next === '(') {
      const [body, end] = balanced(i + 2);
      cmd.substitutions.push(body);
      append(`${c}(${body})`);
      i = end;
    } else if (c === '<' || c === '>') {
      // A digit-only word right before is the file descriptor (2>), not an argument.
      if (word !== null && /^\d+$/.test(word)) word = null;
      endWord();
      redirect = c === '>' ? 'out' : 'in';
      if (c === '<' && next === '<') cmd.hereInput = true;
      i++;
      while (i < text.length && '<>&|'.includes(text[i]!)) i++;
      // >&2 and <&0 duplicate a descriptor: no file.
      const dup = /^\d+|^-/.exec(text.slice(i));
      if (text[i - 1] === '&' && dup) {
        i += dup[0].length;
        redirect = null;
      }
    } else {
      append(c);
      i++;
    }
  }
  endCommand(false);
  return commands;
}
