/**
 * The seed system's own security test prompts (test/fixtures/injection/seed.jsonl): every injection
 * must be flagged and every safe prompt must pass clean.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { screenText } from '../../domain/injection-screen/index.js';

interface Sample {
  text: string;
  label: 'attack' | 'benign';
}

const seed = readFileSync(join(import.meta.dirname, '..', 'fixtures', 'injection', 'seed.jsonl'), 'utf8')
  .split('\n')
  .filter((line) => line.trim() !== '')
  .map((line) => JSON.parse(line) as Sample);

describe('the seed system’s injection prompts', () => {
  const attacks = seed.filter((s) => s.label === 'attack');

  it('are all in the set', () => {
    expect(attacks).toHaveLength(11);
  });

  for (const { text } of attacks) {
    it(`flags ${JSON.stringify(text)}`, () => {
      expect(screenText(text).verdict).not.toBe('clean');
    });
  }
});

describe('the seed system’s safe prompts', () => {
  const safe = seed.filter((s) => s.label === 'benign');

  it('are all in the set', () => {
    expect(safe).toHaveLength(4);
  });

  for (const { text } of safe) {
    it(`passes ${JSON.stringify(text)} clean`, () => {
      expect(screenText(text).verdict).toBe('clean');
    });
  }
});
