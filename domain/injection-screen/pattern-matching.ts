/** How pattern rules run: cheap gates on the whole text, or windows around trigger words. */
import type { InjectionCategory } from './findings.js';
import { isSpace, type View } from './tokens.js';
import { words } from './vocabulary.js';

export interface PatternRule {
  id: string;
  category: InjectionCategory;
  weight: number;
  /** Words every match contains: the pattern runs only around them. */
  triggers?: Set<string>;
  /** Cheap pre-check on the whole text; the pattern runs only when it passes. */
  when: Gate;
  /** Evidence when the rule fires. */
  match: (v: View) => string | null;
}

/**
 * Lower-case pattern rule (patterns are written in lower case, no `i` flag needed). With trigger
 * words (a word every match contains), the pattern runs only on the text around them; with a
 * gate, on the whole text when the gate passes.
 */
export function lowerRule(id: string, category: InjectionCategory, weight: number, on: string | Gate, re: RegExp): PatternRule {
  if (typeof on !== 'string') return { id, category, weight, when: on, match: (v) => re.exec(v.lower)?.[0] ?? null };
  return { id, category, weight, triggers: words(on), when: always, match: (v) => matchAround(v, v.triggers!.get(id), re) };
}

type Gate = (v: View) => boolean;
const always: Gate = () => true;
/** The text has one of these words. */
export function anyWord(list: string): Gate {
  const wanted = [...words(list)];
  return (v) => wanted.some((w) => v.vocabulary.has(w));
}
export const anyText =
  (...needles: string[]): Gate =>
  (v) =>
    needles.some((n) => v.lower.includes(n));
export const hasCjk: Gate = (v) => /[\u3040-\u30ff\u4e00-\u9fff]/.test(v.lower);
export const hasSpecialToken = anyText('<|', 'inst]', '<<', '</s>', '_of_turn>', 'of_text', 'of_sentence');
export const hasEndMarkerWord: Gate = (v) => v.lower.includes('</') || ['end', 'close', 'closing', 'stop'].some((w) => v.vocabulary.has(w));

/** How far a triggered pattern may reach before and after its trigger word. */
const WINDOW_BEFORE = 200;
const WINDOW_AFTER = 300;
/** Beyond this many trigger words, scanning the whole text once is cheaper than windows. */
export const MAX_WINDOWS = 256;

/** First match of re in the windows around the trigger offsets ('all': the whole text). */
function matchAround(v: View, offsets: number[] | 'all' | undefined, re: RegExp): string | null {
  if (offsets === undefined) return null;
  if (offsets === 'all') return re.exec(v.lower)?.[0] ?? null;
  const text = v.lower;
  for (let i = 0; i < offsets.length; i++) {
    let from = Math.max(0, offsets[i] - WINDOW_BEFORE);
    let to = Math.min(text.length, offsets[i] + WINDOW_AFTER);
    while (i + 1 < offsets.length && offsets[i + 1] - WINDOW_BEFORE <= to) to = Math.min(text.length, offsets[++i] + WINDOW_AFTER);
    // Start at a line or word boundary, so that ^ and \b mean what they mean in the whole text.
    const lineStart = text.lastIndexOf('\n', from - 1) + 1;
    if (from - lineStart <= 80) from = lineStart;
    else while (from < offsets[i] && !isSpace(text.charCodeAt(from - 1))) from += 1;
    const scope = (from === lineStart ? '' : '\u0000') + text.slice(from, to);
    const m = re.exec(scope);
    if (m) return m[0];
  }
  return null;
}
