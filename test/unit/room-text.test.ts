import { escapeMarkdown } from 'discord.js';
import { describe, expect, it } from 'vitest';
import { fitText } from '../../channels/room-text.js';

const note = (missing: number) => `[${missing} more characters not shown]`;

describe('a room message', () => {
  it('is escaped whole when it fits', () => {
    expect(fitText({ text: 'a *b*', cutNote: note }, 20, escapeMarkdown)).toBe('a \\*b\\*');
  });

  it('is cut to fit once escaped, ending with the note of what was left out', () => {
    const escapeLt = (t: string) => t.replaceAll('<', '&lt;');
    const fitted = fitText({ text: '<'.repeat(100), cutNote: note }, 60, escapeLt);
    expect(fitted.length).toBeLessThanOrEqual(60);
    // As much as fits: one more escaped character would not.
    expect(fitted).toBe(`${'&lt;'.repeat(7)}\n[93 more characters not shown]`);
  });

  it('never splits a character made of two UTF-16 units', () => {
    const fitted = fitText({ text: '😀'.repeat(50), cutNote: note }, 40, (t) => t);
    expect(fitted.split('\n')[0]).toMatch(/^(😀)+$/u);
    expect(fitted.length).toBeLessThanOrEqual(40);
  });
});
