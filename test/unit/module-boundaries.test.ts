/**
 * Each folder means one thing, and the imports keep it so: domain/ is the shared ground and
 * imports none of the folders built on it (the skill registry is passed to it, not imported), the
 * API imports no activity module (what it shares with the workers lives in domain/, stores/,
 * sandbox/, telemetry/ and llm/), and workflow code takes nothing from Node, Docker, logging, stores, the
 * sandbox spec, telemetry, the model providers' clients or the activities but types (the bundler would refuse it, or worse,
 * replay would diverge).
 * Imports are read with the TypeScript parser: static, re-exports, dynamic import() and require().
 */
import { readdirSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface Import {
  /** As written in the file. */
  specifier: string;
  /** `import type` / `export type`: erased at compile time. */
  typeOnly: boolean;
  line: number;
}

/** Every import of a TypeScript source. */
function importsOf(source: string, fileName = 'source.ts'): Import[] {
  const file = ts.createSourceFile(fileName, source, ts.ScriptTarget.Latest, true);
  const found: Import[] = [];
  const add = (literal: ts.Expression, typeOnly: boolean) => {
    if (!ts.isStringLiteralLike(literal)) return;
    found.push({ specifier: literal.text, typeOnly, line: file.getLineAndCharacterOfPosition(literal.getStart()).line + 1 });
  };
  const visit = (node: ts.Node) => {
    if (ts.isImportDeclaration(node)) add(node.moduleSpecifier, node.importClause?.isTypeOnly ?? false);
    else if (ts.isExportDeclaration(node) && node.moduleSpecifier) add(node.moduleSpecifier, node.isTypeOnly);
    else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.isTypeOnly);
    } else if (ts.isCallExpression(node) && node.arguments.length > 0) {
      const callee = node.expression;
      if (callee.kind === ts.SyntaxKind.ImportKeyword || (ts.isIdentifier(callee) && callee.text === 'require'))
        add(node.arguments[0]!, false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal as ts.Expression, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(file);
  return found;
}

/** The .ts and .tsx files under a folder of the repository, recursively, as paths from the root. */
function sourcesIn(folder: string): string[] {
  return readdirSync(join(ROOT, folder), { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const path = join(folder, entry.name);
      if (entry.isDirectory()) return sourcesIn(path);
      return entry.isFile() && /\.tsx?$/.test(entry.name) ? [path] : [];
    });
}

/** Where an import leads: a path from the root for a relative one, else the package name (node: builtins with their prefix). */
function target(fromFile: string, specifier: string): string {
  if (specifier.startsWith('.')) return relative(ROOT, resolve(ROOT, dirname(fromFile), specifier));
  if (builtinModules.includes(specifier.split('/')[0]!)) return `node:${specifier}`;
  return specifier;
}

/** Each import of the files in `folder` that `forbidden` refuses, as `file:line -> target`. */
function violations(folder: string, forbidden: (target: string, imp: Import) => boolean): string[] {
  return sourcesIn(folder).flatMap((file) =>
    importsOf(readFileSync(join(ROOT, file), 'utf8'), file)
      .filter((imp) => forbidden(target(file, imp.specifier), imp))
      .map((imp) => `${file}:${imp.line} -> ${imp.specifier}${imp.typeOnly ? ' (type)' : ''}`),
  );
}

const under = (folder: string) => (path: string) => path === folder || path.startsWith(`${folder}/`);

/** What workflow code may take only types from. */
const WORKFLOW_UNSAFE = [
  (t: string) => t.startsWith('node:'),
  (t: string) => t === 'dockerode' || t === 'pino' || t === 'better-sqlite3',
  under('stores'),
  under('sandbox'),
  under('telemetry'),
  under('activities'),
  under('llm'),
];

/** The imports, types included, between the files of these folders: file -> the files it imports. */
function importGraph(folders: string[]): Map<string, string[]> {
  const files = folders.flatMap(sourcesIn);
  return new Map(
    files.map((file) => [
      file,
      importsOf(readFileSync(join(ROOT, file), 'utf8'), file)
        .map((imp) => target(file, imp.specifier).replace(/\.js$/, '.ts'))
        .filter((t) => files.includes(t)),
    ]),
  );
}

/** Each import from one folder into the other that the imported file leads back from, as `a -> b -> ... -> a`. */
function crossFolderCycles(graph: Map<string, string[]>): string[] {
  const folderOf = (file: string) => file.split('/')[0];
  const pathBack = (from: string, to: string): string[] | null => {
    const seen = new Set([from]);
    const queue: string[][] = [[from]];
    for (let path = queue.shift(); path; path = queue.shift()) {
      for (const next of graph.get(path.at(-1)!) ?? []) {
        if (next === to) return [...path, next];
        if (!seen.has(next)) (seen.add(next), queue.push([...path, next]));
      }
    }
    return null;
  };
  return [...graph].flatMap(([file, imports]) =>
    imports
      .filter((imported) => folderOf(imported) !== folderOf(file))
      .flatMap((imported) => {
        const back = pathBack(imported, file);
        return back ? [[file, ...back].join(' -> ')] : [];
      }),
  );
}

describe('module boundaries', () => {
  it('reads every kind of import, and tells type-only ones apart', () => {
    const source = [
      "import a from './a.js';",
      "import type { B } from '../b.js';",
      "import { type C } from 'c';",
      "import {\n  d,\n  type D,\n} from 'node:fs';",
      "export { e } from './e.js';",
      "export type { F } from './f.js';",
      "const g = await import('./g.js');",
      "const h = require('h');",
      "let i: import('./i.js').I;",
    ].join('\n');
    expect(importsOf(source).map((i) => [i.specifier, i.typeOnly])).toEqual([
      ['./a.js', false],
      ['../b.js', true],
      ['c', false],
      ['node:fs', false],
      ['./e.js', false],
      ['./f.js', true],
      ['./g.js', false],
      ['h', false],
      ['./i.js', true],
    ]);
    expect(target('api/middleware/auth.ts', '../../activities/audit.js')).toBe('activities/audit.js');
    expect(target('workflows/agent.ts', 'fs/promises')).toBe('node:fs/promises');
  });

  it('domain/ imports nothing from skills/, api/, activities/, workflows/ or workers/, not even types', () => {
    expect(sourcesIn('domain')).toContain('domain/injection-screen/screen.ts');
    const above = ['skills', 'api', 'activities', 'workflows', 'workers'].map(under);
    expect(violations('domain', (t) => above.some((folder) => folder(t)))).toEqual([]);
  });

  it('the API imports no activity module', () => {
    expect(sourcesIn('api').length).toBeGreaterThan(10);
    expect(sourcesIn('api')).toContain('api/middleware/auth.ts');
    expect(violations('api', under('activities'))).toEqual([]);
  });

  it('workflows take nothing from Node, Docker, logging, stores, the sandbox spec, telemetry, model clients or activities but types', () => {
    const workflowImports = sourcesIn('workflows').flatMap((file) => importsOf(readFileSync(join(ROOT, file), 'utf8')));
    // The check sees the type imports it lets through.
    expect(workflowImports.some((imp) => imp.typeOnly && imp.specifier.startsWith('../activities/'))).toBe(true);
    expect(violations('workflows', (t, imp) => !imp.typeOnly && WORKFLOW_UNSAFE.some((unsafe) => unsafe(t)))).toEqual([]);
  });

  it('no import cycle runs between workflows and activities: activities take message definitions, workflows take activity types', () => {
    const graph = importGraph(['workflows', 'activities']);
    // The check sees imports both ways.
    expect(graph.get('activities/control.ts')).toContain('workflows/definitions.ts');
    expect(graph.get('workflows/agent.ts')).toContain('activities/sandbox.ts');
    expect(
      crossFolderCycles(
        new Map([
          ['workflows/a.ts', ['activities/b.ts']],
          ['activities/b.ts', ['workflows/a.ts']],
        ]),
      ),
    ).toEqual(['workflows/a.ts -> activities/b.ts -> workflows/a.ts', 'activities/b.ts -> workflows/a.ts -> activities/b.ts']);
    expect(crossFolderCycles(graph)).toEqual([]);
  });
});
