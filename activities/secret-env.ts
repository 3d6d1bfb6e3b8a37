/**
 * How an action's secrets reach its command: the sandbox activity reads the values from the vault
 * at execution time and writes them to the exec's stdin, where a small loader script exports each
 * as the environment variable of its name and then runs the command (with stdin from /dev/null).
 * The values are never in the exec's or the container's configuration (`docker inspect` shows
 * neither), nor in the workflow's history: only the names travel through Temporal.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Vault } from '../stores/vault.js';
import { VaultError } from '../stores/vault.js';
import { FailureType } from '../domain/failure-types.js';

// One line per name, in order: the value as a single-quoted shell word, with each newline outside
// the quotes as "$nl" so the word fits on one line. Builtins only: under gVisor, forking a
// decoder per secret cost about a hundred milliseconds each. The names (validated: A-Z, 0-9, _)
// come as arguments, ended by --.
const LOADER = [
  "nl='",
  "'",
  'while [ "$1" != -- ]; do',
  '  IFS= read -r word || exit 125',
  '  eval "v=$word"',
  '  export "$1=$v"',
  '  shift',
  'done',
  'shift',
  'unset nl word v',
  'exec "$@" < /dev/null',
].join('\n');

/** The argv that exports the secrets read from stdin, then runs `argv`. */
export function withSecretsFromStdin(names: readonly string[], argv: string[]): string[] {
  return ['/bin/sh', '-c', LOADER, 'warden-secrets', ...names, '--', ...argv];
}

/** A value as one line of shell: single-quoted (where only the quote itself is special), newlines as "$nl". */
export function shellWord(value: string): string {
  return `'${value.replaceAll("'", `'\\''`).replaceAll('\n', `'"$nl"'`)}'`;
}

/** What the activity writes to the exec's stdin for withSecretsFromStdin. */
export function secretsStdin(names: readonly string[], values: ReadonlyMap<string, string>): Buffer {
  return Buffer.from(names.map((n) => `${shellWord(values.get(n)!)}\n`).join(''), 'utf8');
}

/** The values of the named secrets, or a non-retryable failure naming what is wrong (never a value). */
export async function resolveSecrets(vault: Vault | undefined, names: readonly string[]): Promise<Map<string, string>> {
  if (!vault) {
    throw ApplicationFailure.create({
      type: FailureType.VaultUnavailable,
      message: `the action needs secrets (${names.join(', ')}) but this sandbox worker has no vault`,
      nonRetryable: true,
    });
  }
  try {
    return await vault.reveal(names);
  } catch (err) {
    if (!(err instanceof VaultError)) throw err;
    throw ApplicationFailure.create({
      type: err.code === 'secret_not_found' ? FailureType.SecretNotFound : FailureType.SecretUnreadable,
      message: err.message,
      nonRetryable: true,
    });
  }
}

/**
 * The values of the secrets an agent used earlier, to redact from its output. Best effort: a secret
 * deleted since (or a worker without a vault) has no value to redact, and must not fail the command.
 */
export async function secretsToRedact(vault: Vault | undefined, names: readonly string[]): Promise<Map<string, string>> {
  const stored = vault ? await Promise.all(names.map((name) => vault.has(name))) : [];
  const known = names.filter((_, i) => stored[i]);
  try {
    return known.length ? await vault!.reveal(known) : new Map();
  } catch (err) {
    if (err instanceof VaultError && err.code === 'secret_not_found') return new Map(); // deleted meanwhile
    throw err;
  }
}
