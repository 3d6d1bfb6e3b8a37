/**
 * docs/configuration.md cannot drift from domain/config.ts: its table is what
 * scripts/config-reference.ts generates, and it names every WARDEN_* variable the source reads.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_ENV, ConfigSchema } from '../../domain/config.js';
import { CONFIG_DOC, configReference, withConfigReference } from '../../scripts/config-reference.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';

const doc = () => readFileSync(CONFIG_DOC, 'utf8');

/** Every .ts, .sh and Makefile of the project, but installed packages and local state. */
function sources(dir = PROJECT_ROOT): string[] {
  return readdirSync(dir).flatMap((name) => {
    if (name === 'node_modules' || name.startsWith('.')) return [];
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sources(path);
    return /\.(ts|sh)$/.test(name) || name === 'Makefile' ? [path] : [];
  });
}

describe('docs/configuration.md', () => {
  it('holds the table scripts/config-reference.ts generates (run: npx tsx scripts/config-reference.ts --write)', () => {
    expect(doc()).toBe(withConfigReference(doc()));
  });

  it('describes every setting of the schema', () => {
    for (const [key, schema] of Object.entries(ConfigSchema.shape)) expect(schema.description, key).toMatch(/\S/);
    const table = configReference();
    for (const name of Object.values(CONFIG_ENV)) expect(table).toContain(`| \`${name}\` |`);
  });

  it('names every WARDEN_* variable the source reads', () => {
    const read = new Map<string, string>();
    for (const file of sources()) {
      const text = readFileSync(file, 'utf8');
      // process.env.X, env.X, env['X'] in TypeScript; $X and ${X in shell.
      const pattern = file.endsWith('.ts') ? /\benv(?:\.|\[['"])(WARDEN_[A-Z0-9_]+)/g : /\$\{?(WARDEN_[A-Z0-9_]+)/g;
      for (const [, name] of text.matchAll(pattern)) read.set(name!, relative(PROJECT_ROOT, file));
    }
    expect(read.has('WARDEN_DEMO'), 'the scan finds scripts/up.ts').toBe(true);
    const text = doc();
    const missing = [...read].filter(([name]) => !text.includes(`\`${name}\``)).map(([name, file]) => `${name} (${file})`);
    expect(missing).toEqual([]);
  });
});
