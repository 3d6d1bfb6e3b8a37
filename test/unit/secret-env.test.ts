/**
 * The loader that turns an exec's stdin into environment variables, run by the host's /bin/sh
 * (dash on Debian, as in the sandbox image): every value arrives exactly, and nothing in a value
 * is ever executed.
 */
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { secretsStdin, withSecretsFromStdin } from '../../activities/secret-env.js';

/** Runs the loader with these secrets and a command that prints each variable, NUL-separated. */
function seen(secrets: Record<string, string>): string[] {
  const names = Object.keys(secrets);
  const print = names.map((n) => `printf '%s\\0' "$${n}"`).join('; ');
  const [cmd, ...args] = withSecretsFromStdin(names, ['/bin/sh', '-c', `${print}; [ -z "\${nl+x}\${word+x}\${v+x}" ] || echo leftover`]);
  const run = spawnSync(cmd!, args, { input: secretsStdin(names, new Map(Object.entries(secrets))), env: {} });
  expect(run.status, run.stderr.toString()).toBe(0);
  return run.stdout.toString('utf8').split('\0').slice(0, -1);
}

describe('secret loader', () => {
  it('delivers values with quotes, newlines, backslashes, $, backticks and command substitutions exactly, running none of them', () => {
    const tricky = {
      QUOTES: `it's "quoted" '' \\'`,
      NEWLINES: '\nline one\n\nline two\n\n',
      SHELL: '$(touch /tmp/pwned) `id` ${HOME} $1 \\n \\ ; | & * ? [a] ~',
      SPACES: '  leading and trailing  \t\r',
      UNICODE: 'γειά σου 🌍 ✓',
    };
    expect(seen(tricky)).toEqual(Object.values(tricky));
  });

  it('delivers any value without a NUL byte exactly (property)', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc
            .string({ unit: 'binary', minLength: 1, maxLength: 200 })
            .filter((s) => !s.includes('\0') && Buffer.from(s, 'utf8').toString('utf8') === s),
          { minLength: 1, maxLength: 4 },
        ),
        (values) => {
          const secrets = Object.fromEntries(values.map((v, i) => [`S${i}`, v]));
          expect(seen(secrets)).toEqual(values);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('hands the command /dev/null, not the rest of stdin', () => {
    const [cmd, ...args] = withSecretsFromStdin(['A'], ['/bin/sh', '-c', 'cat; echo "[$A]"']);
    const run = spawnSync(cmd!, args, { input: "'a'\nmore input the command must not see\n", env: {} });
    expect(run.stdout.toString()).toBe('[a]\n');
  });
});
