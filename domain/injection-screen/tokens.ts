/** Views of a text and its words: the tokenizer the rules read. */

export interface View {
  /** The text, case kept (role tokens and DAN are case-sensitive). */
  text: string;
  lower: string;
  tokens: Tokens;
  /** Every distinct word: rules whose trigger words are all absent are not run at all. */
  vocabulary: Set<string>;
  /** Offsets of fenced-code lines, computed when a rule first asks. */
  fences?: number[];
  /** Per triggered rule, the offsets of its trigger words ('all' when there are too many). */
  triggers?: Map<string, number[] | 'all'>;
}

export interface Tokens {
  /** Lower-case words with diacritics removed ("précédentes" -> "precedentes"). */
  words: string[];
  /** Offsets of each word in the source text, for evidence. */
  starts: Int32Array;
  ends: Int32Array;
  /** Sentence number of each word: window rules never cross a sentence end or a blank line. */
  clause: Int32Array;
  excerpt: (lo: number, hi: number) => string;
}

export function makeView(text: string): View {
  // toLowerCase keeps offsets except for a few letters (İ); evidence then shifts a little.
  const lower = text.toLowerCase();
  const tokens = tokenize(lower);
  return { text, lower, tokens, vocabulary: new Set(tokens.words) };
}

const NON_ASCII = /[^\x00-\x7f]/;
const WORD_CHAR = /[\p{L}\p{M}\p{N}]/u;
/** 0 unknown, 1 word character, 2 not: the Unicode test runs once per distinct character. */
const wordCharCache = new Uint8Array(65536);

/** ASCII letters, digits and "_". */
const ASCII_WORD = Uint8Array.from({ length: 128 }, (_, c) =>
  Number((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || (c >= 65 && c <= 90)),
);

export function isWordCode(c: number): boolean {
  if (c < 128) return ASCII_WORD[c] === 1;
  let known = wordCharCache[c];
  if (known === 0) {
    known = c < 0xd800 || c > 0xdfff ? (WORD_CHAR.test(String.fromCharCode(c)) ? 1 : 2) : 2;
    wordCharCache[c] = known;
  }
  return known === 1;
}

export const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 0x3000 || c === 0xa0;
const IPV4 = /\d{1,3}(?:\.\d{1,3}){3}/y;

export function fold(word: string): string {
  return NON_ASCII.test(word) ? word.normalize('NFD').replace(/\p{M}/gu, '') : word;
}

/**
 * Words (apostrophes inside kept: "you've", "t'a"; a dot before kept: ".env", ".post"), with URLs
 * and IPv4 addresses as single words and "@" as a word (it marks an address). ". ! ? ;" before a
 * space, CJK full stops and blank lines end a sentence. A hand-written scanner: a regex with
 * matchAll is several times slower here.
 */
function tokenize(lower: string): Tokens {
  const n = lower.length;
  const words: string[] = [];
  // At most one word per two characters; typed arrays keep a megabyte's offsets compact.
  const capacity = (n >> 1) + 1;
  const starts = new Int32Array(capacity);
  const ends = new Int32Array(capacity);
  const clause = new Int32Array(capacity);
  let sentence = 0;
  let i = 0;
  while (i < n) {
    let c = lower.charCodeAt(i);
    if (c < 128 ? ASCII_WORD[c] === 1 : isWordCode(c)) {
      const from = i;
      let ascii = c < 128;
      i += 1;
      for (;;) {
        while (i < n) {
          c = lower.charCodeAt(i);
          if (c < 128) {
            if (ASCII_WORD[c] !== 1) break;
          } else if (isWordCode(c)) ascii = false;
          else break;
          i += 1;
        }
        if ((c === 39 || c === 0x2019) && i + 1 < n && isWordCode(lower.charCodeAt(i + 1))) i += 1;
        else break;
      }
      if ((i - from === 4 || i - from === 5) && c === 58 && lower.startsWith('://', i) && lower.startsWith('http', from)) {
        while (i < n && !isSpace(lower.charCodeAt(i)) && !'"\'<>)]'.includes(lower[i])) i += 1;
      } else if (c === 46 && i - from <= 3) {
        IPV4.lastIndex = from;
        if (IPV4.test(lower)) i = IPV4.lastIndex;
      }
      // ".env", "~/.ssh" (dotfiles) and "requests.post" (a member, not a verb) keep their dot.
      const dotted = from > 0 && lower.charCodeAt(from - 1) === 46 && (from < 2 || lower.charCodeAt(from - 2) !== 46);
      const word = lower.slice(dotted ? from - 1 : from, i);
      starts[words.length] = dotted ? from - 1 : from;
      ends[words.length] = i;
      clause[words.length] = sentence;
      words.push(ascii ? word : fold(word));
      continue;
    }
    if (c === 64) {
      starts[words.length] = i;
      ends[words.length] = i + 1;
      clause[words.length] = sentence;
      words.push('@');
    } else if (c === 0x3002 || c === 0xff01 || c === 0xff1f) sentence += 1;
    else if (c === 46 || c === 33 || c === 63 || c === 59) {
      if (i + 1 >= n || isSpace(lower.charCodeAt(i + 1))) sentence += 1;
    } else if (c === 10) {
      let j = i + 1;
      while (j < n && (lower.charCodeAt(j) === 32 || lower.charCodeAt(j) === 9 || lower.charCodeAt(j) === 13)) j += 1;
      if (j < n && lower.charCodeAt(j) === 10) {
        sentence += 1;
        i = j;
      }
    }
    i += 1;
  }
  const count = words.length;
  return {
    words,
    starts: starts.subarray(0, count),
    ends: ends.subarray(0, count),
    clause: clause.subarray(0, count),
    excerpt: (lo, hi) => lower.slice(starts[lo], ends[hi]),
  };
}
