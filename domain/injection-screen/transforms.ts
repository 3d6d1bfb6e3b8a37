/** Word transforms: leetspeak, ROT13 and reversed text read word by word. */
import type { InjectionCategory } from './findings.js';
import type { Tokens } from './tokens.js';
import { VOCABULARY } from './vocabulary.js';

interface WordTransform {
  name: string;
  category: InjectionCategory;
  rule: string;
  /** Transformed words and their sentence numbers, or null when no word would become a trigger. */
  apply: (t: Tokens) => { words: string[]; clause: Int32Array } | null;
}

const rot13 = (w: string) => w.replace(/[a-z]/g, (c) => String.fromCharCode(((c.charCodeAt(0) - 97 + 13) % 26) + 97));
const reverse = (w: string) => Array.from(w).reverse().join('');
/** Digits and symbols read as letters ("1gn0r3", "pr3v10u5", "5y5t3m"). */
const LEET: Record<string, string> = { '0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '8': 'b', '@': 'a', $: 's' };

function hasDigitAndLetter(w: string): boolean {
  let digit = false;
  let letter = false;
  for (let i = 0; i < w.length; i++) {
    const c = w.charCodeAt(i);
    if (c >= 48 && c <= 57) digit = true;
    else if (c >= 97 && c <= 122) letter = true;
  }
  return digit && letter;
}

/**
 * The rules' words of four letters or more, transformed. A text is read transformed only when
 * three different words of it are in this set: one chance hit ("liam" is "mail" reversed) is not
 * an encoded sentence, and reading a megabyte twice more for nothing is not free.
 */
function transformedVocabulary(map: (w: string) => string): Set<string> {
  return new Set(
    [...VOCABULARY]
      .filter((w) => w.length >= 4)
      .map(map)
      .filter((t) => !VOCABULARY.has(t)),
  );
}

function threeHits(words: readonly string[], triggers: Set<string>): boolean {
  const seen = new Set<string>();
  for (const w of words) if (triggers.has(w) && !seen.has(w) && seen.add(w).size >= 3) return true;
  return false;
}

let rot13Triggers: Set<string> | undefined;
let reversedTriggers: Set<string> | undefined;

export const WORD_TRANSFORMS: WordTransform[] = [
  {
    // Leetspeak hides a rule's words from the text rules: read words with digits as letters.
    name: 'leetspeak',
    category: 'obfuscation',
    rule: 'obfuscation.leetspeak',
    apply: (t) => {
      let words: string[] | null = null;
      for (let i = 0; i < t.words.length; i++) {
        const w = t.words[i];
        if (w.length < 3 || !hasDigitAndLetter(w)) continue;
        const plain = w.replace(/[0-9@$]/g, (c) => LEET[c] ?? c);
        if (!VOCABULARY.has(plain)) continue;
        words ??= t.words.slice();
        words[i] = plain;
      }
      return words && { words, clause: t.clause };
    },
  },
  {
    // ROT13 keeps word lengths and spaces, so a rotated attack is still an attack word by word.
    name: 'rot13',
    category: 'encoded_payload',
    rule: 'encoded.rot13',
    apply: (t) => {
      rot13Triggers ??= transformedVocabulary(rot13);
      return threeHits(t.words, rot13Triggers) ? { words: t.words.map(rot13), clause: t.clause } : null;
    },
  },
  {
    // Text written backwards (and shown forwards with a bidi override) reads right once reversed.
    name: 'reversed',
    category: 'encoded_payload',
    rule: 'encoded.reversed',
    apply: (t) => {
      reversedTriggers ??= transformedVocabulary(reverse);
      return threeHits(t.words, reversedTriggers) ? { words: t.words.map(reverse).reverse(), clause: t.clause.slice().reverse() } : null;
    },
  },
];
