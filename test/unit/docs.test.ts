/**
 * The README and docs/ hold together: every relative link reaches a file and, with an anchor, a
 * heading in it; and every patched() marker in workflows/ is in docs/workflow-versioning.md.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';

const pages = [
  'README.md',
  ...readdirSync(join(PROJECT_ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
];
const read = (page: string) => readFileSync(join(PROJECT_ROOT, page), 'utf8');

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
const slug = (heading: string) =>
  heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s-]/gu, '')
    .replace(/\s/g, '-');
const anchors = (page: string) => new Set([...read(page).matchAll(/^#{1,6} (.+)$/gm)].map((m) => slug(m[1]!)));

describe('README.md and docs/', () => {
  it('links only to files and headings that exist', () => {
    const broken: string[] = [];
    for (const page of pages) {
      for (const [, target] of read(page).matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/.test(target!)) continue;
        const [path, anchor] = target!.split('#') as [string, string | undefined];
        const file = path === '' ? page : relative(PROJECT_ROOT, join(PROJECT_ROOT, dirname(page), path));
        if (!existsSync(join(PROJECT_ROOT, file))) broken.push(`${page}: ${target} (no file ${file})`);
        else if (anchor && file.endsWith('.md') && !anchors(file).has(anchor))
          broken.push(`${page}: ${target} (no heading #${anchor} in ${file})`);
      }
    }
    expect(broken).toEqual([]);
  });

  it('lists every patched() marker of workflows/ in docs/workflow-versioning.md', () => {
    const doc = read('docs/workflow-versioning.md');
    const markers = readdirSync(join(PROJECT_ROOT, 'workflows'))
      .filter((f) => f.endsWith('.ts'))
      .flatMap((f) => [...read(`workflows/${f}`).matchAll(/patched\('([^']+)'\)/g)].map((m) => m[1]!));
    expect(markers.length).toBeGreaterThan(0);
    for (const marker of markers) expect(doc, marker).toContain(`| \`${marker}\` |`);
  });
});
