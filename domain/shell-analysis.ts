/**
 * Destructive commands. A small shell lexer (shell-lexer.ts) splits the command line into simple
 * commands (quotes, escapes, pipelines, separators, redirections, $(...), `...` and <(...)); this
 * module strips wrappers such as sudo, env and timeout, and looks at what each command would do;
 * `sh -c`, `eval` and command substitutions are looked into too. Text that is merely printed
 * (echo "rm -rf /") is not a hit.
 *
 * It fails closed on what it cannot read: text computed at run time ($a as a command name, eval
 * or sh -c of an expansion, a decoder piped into a shell), code handed to an interpreter (python -c,
 * perl -e, node -e, ...), multi-call binaries (busybox), operands that xargs reads, and a recursive
 * delete whose target is an expansion or lies under `cd /` are all destructive. The lexer drops
 * quoting, so a `$` even in single quotes counts as an expansion: a false alarm costs an approval.
 *
 * Pure (no I/O, no clock): the policy's `destructive` condition reads it, in workflows too.
 */
import { lexShell, type SimpleCommand } from './shell-lexer.js';

/** True when the command matches a destructive pattern; see destructivePattern for which. */
export const isDestructive = (command: string): boolean => destructivePattern(command) !== null;

/** What makes the command destructive (e.g. `rm -r on /`), or null. */
export function destructivePattern(command: string): string | null {
  return inspectScript(command, 0);
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
  'bin',
  'boot',
  'dev',
  'etc',
  'home',
  'lib',
  'lib32',
  'lib64',
  'libx32',
  'opt',
  'proc',
  'root',
  'run',
  'sbin',
  'srv',
  'sys',
  'usr',
  'var',
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
    if (name === 'cd' || name === 'pushd')
      scope.cwd = changeDirectory(
        scope.cwd,
        args.find((a) => !/^-[LPe@]+$/.test(a)),
      );
    for (const file of [...cmd.outputs, ...(name === 'tee' ? args : [])]) scope.written.add(plainPath(file));
    if (name === 'ln') {
      // ln -s / x: from now on x/ is /.
      const { options, operands } = splitArgs(args);
      const [target, link] = [operands[0], operands.at(-1)];
      const symbolic = hasShortOption(options, 's') || options.includes('--symbolic');
      if (symbolic && operands.length >= 2 && (isExpansion(target!) || isSystemPath(target!, scope.cwd)))
        scope.links.add(plainPath(link!).replace(/\/+$/, ''));
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
    const script =
      flag >= 0
        ? args.slice(flag + 1).find((a) => !a.startsWith('-'))
        : args.find((a, i) => !/^[+-]/.test(a) && !/^[+-][oO]$/.test(args[i - 1] ?? ''));
    if (flag >= 0 && script !== undefined) {
      // xargs may put its input anywhere in the script (-I {}), so the script is not all there is to read.
      return isExpansion(script) || viaXargs ? `${name} -c of text computed at run time` : inspectScript(script, depth + 1);
    }
    if (script === undefined || isStdin(script) || hasShortOption(options, 's'))
      return fedText ? `text fed into ${name} as its script` : null;
    if (wrote(script)) return `${name} running ${script}, which this command line wrote`;
    return isExpansion(script) ? `${name} running a script computed at run time (${script})` : null;
  }
  if (isInterpreter(name)) {
    const codeOption = INTERPRETERS.find(([re]) => re.test(name))?.[1];
    if ((codeOption && options.some((o) => codeOption.test(o))) || (name === 'deno' && args[0] === 'eval'))
      return `code given to ${name} on the command line`;
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
      return operands.some((a) => isExpansion(a) || a.startsWith('/dev/') || wrote(a)) || viaXargs
        ? `${name} of a script computed at run time`
        : null;
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
      const deletes =
        args.includes('-delete') || args.some((a, i) => /^-(exec|execdir|ok)$/.test(a) && basename(args[i + 1] ?? '') === 'rm');
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
