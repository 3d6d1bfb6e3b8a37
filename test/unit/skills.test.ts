/** Skill manifests: path and parameter schemas, JSON Schema export, look-up errors, and argv built without interpolation. */
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { maxRisk, riskRank, RISK_LEVELS } from '../../domain/risk.js';
import { getOperation, getSkill, prepareCommand, SKILLS, SkillError, toJsonSchema } from '../../skills/index.js';
import { contentChunks, CONTENT_CHUNK_CHARS, MAX_CONTENT_BYTES, toBase64 } from '../../skills/filesystem/content.js';
import { WorkspaceEntrySchema, WorkspacePathSchema } from '../../skills/filesystem/paths.js';
import { FS_SCRIPT_NAME } from '../../skills/filesystem/scripts.js';

const problems = (schema: z.ZodType, value: unknown): string[] => {
  const res = schema.safeParse(value);
  return res.success ? [] : res.error.issues.map((i) => i.message);
};

describe('workspace paths', () => {
  it.each([
    ['', /must not be empty/],
    ['/etc/passwd', /relative to the workspace, not absolute/],
    ['/', /not absolute/],
    ['..', /".." segment/],
    ['../x', /".." segment/],
    ['a/../../etc', /".." segment/],
    ['a/..', /".." segment/],
    ['a\0b', /NUL byte/],
    ['a\nb', /control characters/],
    ['a\tb', /control characters/],
    ['-rf', /must not start with "-"/],
    ['--help', /must not start with "-"/],
    ['~/x', /must not start with "~"/],
    ['a'.repeat(4097), /at most 4096 characters/],
    [`d/${'n'.repeat(256)}`, /at most 255 bytes/],
    [`d/${'é'.repeat(128)}`, /at most 255 bytes/],
  ])('refuses %j, naming the problem', (path, message) => {
    const found = problems(WorkspacePathSchema, path);
    expect(found.length).toBeGreaterThan(0);
    expect(found.join('\n')).toMatch(message);
  });

  it('refuses the workspace itself where an entry is needed', () => {
    for (const path of ['.', './', './/.', '']) {
      expect(problems(WorkspaceEntrySchema, path).join('\n')).toMatch(/must not be empty|not the workspace itself/);
    }
  });

  it.each([
    ['a.txt', 'a.txt'],
    ['./a//b/./c/', 'a/b/c'],
    ['.', '.'],
    ['./', '.'],
    ['./-rf', '-rf'],
    ['a..b/..c/c..', 'a..b/..c/c..'],
    ['dir with spaces/$(id)`x`;"\'', 'dir with spaces/$(id)`x`;"\''],
    ['ünïcödé/ファイル', 'ünïcödé/ファイル'],
  ])('accepts %j as %j', (input, output) => {
    expect(WorkspacePathSchema.parse(input)).toBe(output);
  });

  it('refuses bad paths for every path-taking filesystem operation, before a command is built', () => {
    for (const op of ['read', 'write', 'list', 'stat', 'mkdir', 'delete']) {
      const params = (path: string) => (op === 'write' ? { path, content: 'x' } : { path });
      for (const path of ['/etc/passwd', '../x', 'a/../b', 'a\0b', '-x']) {
        expect(() => prepareCommand('filesystem', op, params(path))).toThrow(SkillError);
      }
    }
  });
});

describe('operation parameters', () => {
  it('are strict: an unknown parameter is refused, naming it', () => {
    expect(() => prepareCommand('filesystem', 'read', { path: 'a', mode: 'x' })).toThrow(/filesystem\.read: Unrecognized key: "mode"/);
    expect(() => prepareCommand('shell', 'exec', { command: 'ls', cwd: '/' })).toThrow(/Unrecognized key: "cwd"/);
    expect(() => prepareCommand('filesystem', 'info', { path: '.' })).toThrow(/Unrecognized key: "path"/);
  });

  it('bound write content at 1 MiB of UTF-8', () => {
    expect(() => prepareCommand('filesystem', 'write', { path: 'a', content: 'x'.repeat(MAX_CONTENT_BYTES) })).not.toThrow();
    expect(() => prepareCommand('filesystem', 'write', { path: 'a', content: 'x'.repeat(MAX_CONTENT_BYTES + 1) })).toThrow(
      /content: content must be at most 1 MiB/,
    );
    expect(() => prepareCommand('filesystem', 'write', { path: 'a', content: 'é'.repeat(MAX_CONTENT_BYTES / 2 + 1) })).toThrow(
      /at most 1 MiB \(1048576 bytes of UTF-8\)/,
    );
    expect(() => prepareCommand('filesystem', 'write', { path: 'a' })).toThrow(/content: /);
  });

  it('bound shell commands at 16 KiB and their timeout', () => {
    expect(() => prepareCommand('shell', 'exec', { command: '' })).toThrow(/command must not be empty/);
    expect(() => prepareCommand('shell', 'exec', { command: 'x'.repeat(16 * 1024 + 1) })).toThrow(/at most 16 KiB/);
    expect(() => prepareCommand('shell', 'exec', { command: 'ls', timeout_ms: 50 })).toThrow(/timeout_ms/);
    expect(() => prepareCommand('shell', 'exec', { command: 'ls', timeout_ms: 1.5 })).toThrow(/timeout_ms/);
  });
});

describe('commands', () => {
  const HOSTILE = `x'; rm -rf / #"$(reboot)\`id\`\${IFS}`;

  it('pass user values only as positional arguments after a constant script', () => {
    const cases: [string, Record<string, unknown>][] = [
      ['read', { path: HOSTILE }],
      ['write', { path: HOSTILE, content: HOSTILE }],
      ['list', { path: HOSTILE }],
      ['stat', { path: HOSTILE }],
      ['mkdir', { path: HOSTILE }],
      ['delete', { path: HOSTILE, recursive: true }],
    ];
    for (const [op, params] of cases) {
      const { argv } = prepareCommand('filesystem', op, params);
      expect(argv.slice(0, 2)).toEqual(['/usr/bin/perl', '-e']);
      expect(argv[3]).toBe('--');
      expect(argv[4]).toBe(HOSTILE);
      // The script is the same whatever the parameters, and holds none of them.
      expect(argv[2]).toBe(prepareCommand('filesystem', op, { ...params, path: 'other' }).argv[2]);
      expect(argv[2]).not.toContain(HOSTILE);
      expect(argv[2]).not.toContain('reboot');
    }
    expect(prepareCommand('filesystem', 'info', {}).argv.slice(3)).toEqual([FS_SCRIPT_NAME]);
  });

  it('read and delete pass their options as fixed words', () => {
    expect(prepareCommand('filesystem', 'read', { path: 'a' }).argv.slice(4)).toEqual(['a', String(1024 * 1024)]);
    expect(prepareCommand('filesystem', 'read', { path: 'a', max_bytes: 10 })).toMatchObject({ max_output_bytes: 10 });
    expect(prepareCommand('filesystem', 'delete', { path: 'a' }).argv.slice(4)).toEqual(['a', 'single']);
    expect(prepareCommand('filesystem', 'delete', { path: 'a', recursive: true }).argv.slice(4)).toEqual(['a', 'recursive']);
  });

  it('write sends its content as base64 pieces, each far below the 128 KiB argv limit', () => {
    const content = 'é'.repeat(MAX_CONTENT_BYTES / 2);
    const { argv } = prepareCommand('filesystem', 'write', { path: 'f', content });
    const pieces = argv.slice(5);
    expect(pieces.length).toBe(Math.ceil((4 * Math.ceil(MAX_CONTENT_BYTES / 3)) / CONTENT_CHUNK_CHARS));
    expect(pieces.every((p) => p.length <= CONTENT_CHUNK_CHARS && /^[A-Za-z0-9+/=]+$/.test(p))).toBe(true);
    expect(Buffer.from(pieces.join(''), 'base64').toString('utf8')).toBe(content);
    expect(argv.reduce((n, a) => n + a.length + 1, 0)).toBeLessThan(1.5 * 1024 * 1024);
    expect(contentChunks('')).toEqual([]);
  });

  it('toBase64 agrees with Buffer on every padding length', () => {
    for (const s of ['', 'a', 'ab', 'abc', 'abcd', '\u0000\u00ff', 'ünïcödé ファイル']) {
      const bytes = new TextEncoder().encode(s);
      expect(toBase64(bytes)).toBe(Buffer.from(bytes).toString('base64'));
    }
  });

  it('shell passes the names of the secrets it needs, never values; names are validated and unique', () => {
    expect(prepareCommand('shell', 'exec', { command: 'env', secrets: ['DB_PASSWORD', 'API_TOKEN'] })).toEqual({
      argv: ['/bin/sh', '-c', 'env'],
      secrets: ['DB_PASSWORD', 'API_TOKEN'],
    });
    expect(() => prepareCommand('shell', 'exec', { command: 'env', secrets: ['db-password'] })).toThrow(
      /secrets\.0: a secret name is 1-64 characters/,
    );
    expect(() => prepareCommand('shell', 'exec', { command: 'env', secrets: ['A', 'A'] })).toThrow(/each secret may be named once/);
    expect(() => prepareCommand('shell', 'exec', { command: 'env', secrets: [] })).toThrow(/at least one secret/);
    expect(() => prepareCommand('shell', 'exec', { command: 'env', secrets: ['WARDEN_EXEC_ID'] })).toThrow(/reserved for Warden/);
    expect(() => prepareCommand('filesystem', 'read', { path: 'a', secrets: ['A'] })).toThrow(/Unrecognized key: "secrets"/);
  });

  it('shell runs the command line as given, with its timeout and output bound', () => {
    const cmd = prepareCommand('shell', 'exec', { command: HOSTILE, timeout_ms: 1000, max_output_bytes: 10 });
    expect(cmd).toEqual({ argv: ['/bin/sh', '-c', HOSTILE], timeout_ms: 1000, max_output_bytes: 10 });
  });
});

describe('manifests and registry', () => {
  it('carry the default risk of every operation', () => {
    const risks = Object.fromEntries(
      Object.values(SKILLS).flatMap((s) => Object.entries(s.operations).map(([op, o]) => [`${s.id}.${op}`, o.risk])),
    );
    expect(risks).toEqual({
      'filesystem.read': 'low',
      'filesystem.write': 'medium',
      'filesystem.list': 'low',
      'filesystem.stat': 'low',
      'filesystem.mkdir': 'medium',
      'filesystem.delete': 'high',
      'filesystem.info': 'low',
      'shell.exec': 'high',
    });
  });

  it('every operation has a description and a strict object schema', () => {
    for (const skill of Object.values(SKILLS)) {
      expect(skill.description).not.toBe('');
      for (const op of Object.values(skill.operations)) {
        expect(op.description).not.toBe('');
        expect(op.schema).toBeInstanceOf(z.ZodObject);
        expect(
          toJsonSchema(
            skill.id,
            Object.keys(skill.operations).find((k) => skill.operations[k] === op)!,
          ),
        ).toMatchObject({
          type: 'object',
          additionalProperties: false,
        });
      }
    }
  });

  it('unknown skills and operations fail with a typed error naming what exists', () => {
    expect(() => getSkill('browser')).toThrow(SkillError);
    expect(() => getSkill('browser')).toThrow('unknown skill "browser"; known skills: "filesystem", "shell"');
    expect(() => getSkill('toString')).toThrow(/unknown skill "toString"/);
    expect(() => getOperation('filesystem', 'chmod')).toThrow(
      'skill "filesystem" has no operation "chmod"; its operations: "read", "write", "list", "stat", "mkdir", "delete", "info"',
    );
    const err = (() => {
      try {
        getOperation('shell', 'run');
      } catch (e) {
        return e;
      }
    })();
    expect(err).toMatchObject({ code: 'unknown_operation', status: 422 });
  });

  it('risk levels are ordered', () => {
    expect(RISK_LEVELS.map(riskRank)).toEqual([0, 1, 2, 3]);
    expect(maxRisk('low', 'high')).toBe('high');
    expect(maxRisk('critical', 'medium')).toBe('critical');
  });
});

describe('JSON Schema export', () => {
  it('describes filesystem.write for an LLM tool', () => {
    expect(toJsonSchema('filesystem', 'write')).toEqual({
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      properties: {
        path: { type: 'string', minLength: 1, maxLength: 4096, description: expect.stringMatching(/relative to the agent workspace/) },
        content: { type: 'string', maxLength: MAX_CONTENT_BYTES, description: expect.stringMatching(/at most 1 MiB/) },
      },
      required: ['path', 'content'],
      additionalProperties: false,
    });
  });

  it('marks parameters with defaults as optional and shows the defaults', () => {
    const list = toJsonSchema('filesystem', 'list');
    expect(list).toMatchObject({ properties: { path: { type: 'string', default: '.' } } });
    expect(list.required ?? []).toEqual([]);
    const shell = toJsonSchema('shell', 'exec');
    expect(shell).toMatchObject({
      required: ['command'],
      properties: {
        command: { type: 'string', maxLength: 16 * 1024 },
        timeout_ms: { type: 'integer', minimum: 100, maximum: 3_600_000 },
      },
    });
  });

  it('fails for an unknown operation like the look-ups do', () => {
    expect(() => toJsonSchema('shell', 'spawn')).toThrow(/no operation "spawn"/);
  });
});
