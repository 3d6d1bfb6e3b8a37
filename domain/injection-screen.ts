/**
 * Prompt-injection screen for untrusted text (tool output, documents, web pages, emails, user
 * requests) before it reaches a model or drives an action.
 *
 * How it works:
 *   1. The text is screened as it is. It is then normalised (NFKC, invisible and bidi controls
 *      removed, look-alike letters mapped to ASCII in mixed-script words, spaced-out letters
 *      joined) and the lines that changed are screened again. A rule that fires only on the
 *      normalised text means someone hid it: an `obfuscation` finding of its own.
 *   2. Leetspeak, ROT13 and reversed text are read word by word, when enough of their words turn
 *      into words the rules know.
 *   3. Encoded payloads (base64, hex, percent/HTML/\u/\x escapes, Unicode tag characters,
 *      variation-selector bytes, and JSON string escapes) are decoded and screened recursively:
 *      at most MAX_DECODE_DEPTH levels and MAX_DECODED_CHARS characters in all.
 *   4. Rules are regular expressions without nested quantifiers, run around their trigger words,
 *      and word-window rules (a trigger word with companion words a few words away in the same
 *      sentence). The work is linear in the input; `test/bench/injection-rates.ts` measures it.
 *
 * Score: every rule has a weight w in (0, 1], roughly the chance that the rule firing alone means
 * an attack. Findings combine as a noisy OR, score = 1 - prod(1 - w) over distinct rules (a rule
 * counts once however often it matches), so independent weak signals add up and one strong signal
 * is enough. Verdict: score >= INJECTION_SCORE is 'injection', >= SUSPICIOUS_SCORE 'suspicious',
 * else 'clean'. The policy raises an action's risk on 'suspicious' and denies (or asks a human) on
 * 'injection'.
 *
 * Pure TypeScript with no Node imports: usable from the API, activities and workflow bundles.
 */

export const INJECTION_CATEGORIES = [
  'instruction_override',
  'role_token',
  'delimiter_attack',
  'encoded_payload',
  'obfuscation',
  'exfiltration',
  'jailbreak_persona',
] as const;
export type InjectionCategory = (typeof INJECTION_CATEGORIES)[number];

export type ScreenVerdict = 'clean' | 'suspicious' | 'injection';

export interface ScreenFinding {
  category: InjectionCategory;
  /** Stable id of the rule that fired, e.g. `override.verb_prior_target`. */
  rule: string;
  /** The rule's weight in the score. */
  weight: number;
  /** Short excerpt of what matched (at most EVIDENCE_MAX_CHARS), invisible characters escaped. */
  evidence: string;
}

export interface ScreenResult {
  verdict: ScreenVerdict;
  /** 0..1, see the module comment. */
  score: number;
  /** Categories of all findings, in INJECTION_CATEGORIES order (weak ones included). */
  categories: InjectionCategory[];
  /** Strongest first. */
  findings: ScreenFinding[];
}

/** Score from which the verdict is 'suspicious': the policy raises the risk level. */
export const SUSPICIOUS_SCORE = 0.4;
/** Score from which the verdict is 'injection': the policy denies or asks a human. */
export const INJECTION_SCORE = 0.75;
/** Decoding levels below the input (base64 inside base64 inside the text is depth 2). */
export const MAX_DECODE_DEPTH = 3;
/** Decoded text screened per call, all levels together; the rest is not decoded. */
export const MAX_DECODED_CHARS = 256 * 1024;
/** Longest single encoded run decoded (longer runs are decoded from their start only). */
const MAX_CANDIDATE_CHARS = 64 * 1024;
/** Encoded runs looked at per text; a text made of thousands of them is not decoded further. */
const MAX_CANDIDATES = 256;
export const EVIDENCE_MAX_CHARS = 80;

// ---------------------------------------------------------------------------------------------
// Entry point

export function screenText(text: string): ScreenResult {
  const found = new Map<string, ScreenFinding>();
  screenInto(text, 0, { decodedChars: 0 }, found);
  const findings = [...found.values()].sort((a, b) => b.weight - a.weight || a.rule.localeCompare(b.rule));
  const score = combine(findings);
  const present = new Set(findings.map((f) => f.category));
  return {
    verdict: score >= INJECTION_SCORE ? 'injection' : score >= SUSPICIOUS_SCORE ? 'suspicious' : 'clean',
    score,
    categories: INJECTION_CATEGORIES.filter((c) => present.has(c)),
    findings,
  };
}

/** Noisy OR of the findings' weights, rounded to 3 decimals. */
function combine(findings: readonly ScreenFinding[]): number {
  let keep = 1;
  for (const f of findings) keep *= 1 - f.weight;
  return Math.round((1 - keep) * 1000) / 1000;
}

interface Budget {
  decodedChars: number;
}

function screenInto(text: string, depth: number, budget: Budget, out: Map<string, ScreenFinding>): void {
  const raw = makeView(text);
  const rawHits = runRules(raw);
  rawHits.forEach((f) => add(out, f));

  const norm = normalise(text);
  norm.signals.forEach((f) => add(out, f));
  const views = [raw];
  const changed = changedLines(raw, norm.text);
  if (changed !== null) {
    const view = makeView(changed);
    views.push(view);
    for (const [id, f] of runRules(view)) {
      if (rawHits.has(id)) continue;
      add(out, f);
      // A rule that fires only once the text is normalised was hidden on purpose.
      add(out, finding('obfuscation', 'obfuscation.revealed_by_normalisation', 0.5, `${id}: ${f.evidence}`));
    }
  }

  // Leetspeak, ROT13 and reversed text keep word boundaries: the word-window rules read them
  // word by word, and only when a word of theirs looks like a rule's trigger.
  for (const view of views) {
    for (const transform of WORD_TRANSFORMS) {
      const read = transform.apply(view.tokens);
      if (!read) continue;
      const { words, clause } = read;
      const excerpt = (lo: number, hi: number) => words.slice(lo, hi + 1).join(' ');
      for (const f of runWindowRules({ ...view.tokens, words, clause, excerpt })) {
        if (out.has(f.rule)) continue;
        add(out, { ...f, evidence: clip(`[${transform.name}] ${f.evidence}`) });
        add(out, finding(transform.category, transform.rule, 0.5, `${transform.name}: ${f.evidence}`));
      }
    }
  }

  if (depth >= MAX_DECODE_DEPTH) return;
  for (const payload of encodedPayloads(text, norm.hidden)) {
    const room = MAX_DECODED_CHARS - budget.decodedChars;
    if (room <= 0) return;
    const decoded = payload.text.slice(0, room);
    budget.decodedChars += decoded.length;
    const inner = new Map<string, ScreenFinding>();
    screenInto(decoded, depth + 1, budget, inner);
    // Weak findings in decoded data (a JWT's JSON, a data URI's text) are noise, not a payload.
    if (![...inner.values()].some((f) => f.weight >= 0.3)) continue;
    for (const f of inner.values()) add(out, { ...f, evidence: clip(`[${payload.kind}] ${f.evidence}`) });
    // JSON string escapes are how tool output is written, not a disguise; the others are.
    if (payload.kind !== 'json_string') add(out, finding('encoded_payload', `encoded.${payload.kind}`, 0.5, `${payload.kind}: ${decoded}`));
  }
}

/**
 * The normalised lines that differ from the raw ones, with a line of context on each side (the
 * rest was screened already, as it is the same text). Chunks are separated by blank lines, so no
 * rule joins two of them; a chunk that sits in a fenced code block is fenced again.
 */
function changedLines(raw: View, normText: string): string | null {
  if (normText === raw.text) return null;
  const before = raw.text.split('\n');
  const after = normText.split('\n');
  if (before.length !== after.length) return normText;
  raw.fences ??= fenceOffsets(raw.lower);
  const lineOffsets: number[] = [];
  for (let i = 0, offset = 0; i < before.length; offset += before[i].length + 1, i++) lineOffsets.push(offset);
  const differs = (i: number) => i < after.length && before[i] !== after[i];
  const chunks: string[] = [];
  for (let i = 0; i < after.length; i++) {
    if (!differs(i)) continue;
    const from = Math.max(0, i - 1);
    let to = i;
    while (differs(to + 1) || differs(to + 2)) to += 1;
    to = Math.min(after.length - 1, to + 1);
    const chunk = after.slice(from, to + 1).join('\n');
    const fenced = raw.fences.filter((f) => f < lineOffsets[from]).length % 2 === 1;
    chunks.push(fenced ? '```\n' + chunk + '\n```' : chunk);
    i = to;
  }
  return chunks.join('\n\n');
}

function add(out: Map<string, ScreenFinding>, f: ScreenFinding): void {
  const existing = out.get(f.rule);
  if (!existing || existing.weight < f.weight) out.set(f.rule, f);
}

function finding(category: InjectionCategory, rule: string, weight: number, evidence: string): ScreenFinding {
  return { category, rule, weight, evidence: clip(evidence) };
}

/** Evidence goes into logs and approval screens: no invisible characters, one line, short. */
function clip(s: string): string {
  const visible = s
    .replace(/[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]/g, (c) =>
      `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    )
    .replace(/[\u{e0000}-\u{e007f}\u{e0100}-\u{e01ef}]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
    .replace(/\s+/g, ' ')
    .trim();
  const chars = Array.from(visible);
  return chars.length <= EVIDENCE_MAX_CHARS ? visible : chars.slice(0, EVIDENCE_MAX_CHARS - 1).join('') + '…';
}

// ---------------------------------------------------------------------------------------------
// Normalisation

/** Zero-width and other invisible characters (soft hyphen included: web text is full of it). */
const INVISIBLE = /[\u00ad\u034f\u115f\u1160\u180e\u200b-\u200d\u2060-\u2064\u3164\ufeff\uffa0]/g;
/** Zero-width characters between two ASCII letters: nothing legitimate puts them there. */
const INVISIBLE_IN_WORD = /[A-Za-z][\u034f\u180e\u200b-\u200d\u2060-\u2064\ufeff]+[A-Za-z]/;
/** Bidi embeddings, overrides and isolates: they reorder what a reviewer sees. */
const BIDI_OVERRIDES = /[\u202a-\u202e\u2066-\u2069]/g;
/** Marks that only set direction (LRM, RLM, ALM): ordinary in Arabic and Hebrew text. */
const BIDI_MARKS = /[\u200e\u200f\u061c]/g;
/** A subdivision flag is a black flag, tag letters and a cancel tag; those tags are fine. */
const FLAG_TAG_SEQUENCE = /\u{1f3f4}[\u{e0020}-\u{e007e}]+\u{e007f}/gu;
const TAG_CHARACTERS = /[\u{e0000}-\u{e007f}]+/gu;
/** Variation selectors 17-256 can carry one byte each ("emoji smuggling"). */
const VARIATION_SELECTOR_BYTES = /[\u{e0100}-\u{e01ef}]+/gu;
const VARIATION_SELECTORS = /[\ufe00-\ufe0f]/g;
/** Cyrillic, Greek, Armenian, Cherokee and letter-like symbols: where look-alikes come from. */
const CONFUSABLE_SCRIPTS = /[\u0250-\u02af\u0370-\u058f\u13a0-\u13ff\u0131]/;

/** Look-alikes of ASCII letters (UTS #39 confusables, the common subset). */
const CONFUSABLES: Record<string, string> = {
  // Cyrillic
  а: 'a', в: 'b', е: 'e', ё: 'e', к: 'k', м: 'm', н: 'h', о: 'o', р: 'p', с: 'c', т: 't', у: 'y', х: 'x',
  і: 'i', ї: 'i', ј: 'j', ѕ: 's', ԁ: 'd', ӏ: 'l', һ: 'h', ԛ: 'q', ԝ: 'w', ɡ: 'g', ь: 'b',
  А: 'A', В: 'B', Е: 'E', К: 'K', М: 'M', Н: 'H', О: 'O', Р: 'P', С: 'C', Т: 'T', Х: 'X', У: 'Y',
  І: 'I', Ј: 'J', Ѕ: 'S', Ԁ: 'D', Ԛ: 'Q', Ԝ: 'W',
  // Greek
  α: 'a', ο: 'o', ι: 'i', ν: 'v', υ: 'u', κ: 'k', ρ: 'p', τ: 't', χ: 'x', ε: 'e', γ: 'y',
  Α: 'A', Β: 'B', Ε: 'E', Ζ: 'Z', Η: 'H', Ι: 'I', Κ: 'K', Μ: 'M', Ν: 'N', Ο: 'O', Ρ: 'P', Τ: 'T', Υ: 'Y', Χ: 'X',
  // Armenian and Latin look-alikes
  օ: 'o', ս: 'u', ց: 'g', հ: 'h', ո: 'n', ı: 'i', ɑ: 'a', ɩ: 'i', ʏ: 'y', ɪ: 'i', ʀ: 'r',
};

/**
 * Maps look-alikes to ASCII in words that also contain ASCII letters. Words are found around each
 * look-alike character, so text without them costs one scan and a Russian text costs one pass.
 */
function mapMixedScriptWords(text: string): { text: string; example: string } {
  const parts: string[] = [];
  let copied = 0;
  let example = '';
  const find = new RegExp(CONFUSABLE_SCRIPTS.source, 'g');
  for (let m = find.exec(text); m; m = find.exec(text)) {
    let from = m.index;
    let to = m.index + 1;
    while (from > copied && isWordCode(text.charCodeAt(from - 1))) from -= 1;
    while (to < text.length && isWordCode(text.charCodeAt(to))) to += 1;
    find.lastIndex = to;
    const word = text.slice(from, to);
    if (!/[A-Za-z]/.test(word)) continue;
    let mapped = '';
    for (const c of word) mapped += CONFUSABLES[c] ?? c;
    if (mapped === word) continue;
    example ||= word;
    parts.push(text.slice(copied, from), mapped);
    copied = to;
  }
  if (copied === 0) return { text, example };
  parts.push(text.slice(copied));
  return { text: parts.join(''), example };
}

/** Single letters joined by single separators: "i g n o r e", "I-G-N-O-R-E" (ASCII: look-alikes are mapped by then). */
const SPACED_LETTERS = /\b[A-Za-z0-9](?:[ .\-_*·|/][A-Za-z0-9]){2,}\b/g;
/** Words an attacker spaces out to get past keyword filters. */
const ATTACK_STEMS = ['ignore', 'disregard', 'forget', 'override', 'bypass', 'instruction', 'systemprompt', 'jailbreak', 'reveal', 'password', 'prompt', 'developermode'];
const OVERRIDE_STEMS = ['ignore', 'disregard', 'forget', 'override', 'bypass'];
const TARGET_STEMS = ['instruction', 'prompt', 'rules', 'guideline', 'directive'];

interface Normalised {
  text: string;
  /** Text smuggled in tag characters or variation selectors, decoded; screened as a payload. */
  hidden: { kind: string; text: string }[];
  signals: ScreenFinding[];
}

/** The text a human would read, in plain ASCII where it pretends to be ASCII. */
export function normaliseText(text: string): string {
  return normalise(text).text;
}

function normalise(input: string): Normalised {
  const signals: ScreenFinding[] = [];
  const hidden: Normalised['hidden'] = [];
  let text = input.normalize('NFKC');
  if (text !== input && /[\uff01-\uff5e]{3,}|[\u{1d400}-\u{1d7ff}]{3,}|[\u24b6-\u24e9]{3,}/u.test(input)) {
    // Fullwidth, mathematical and circled letters spell ASCII words in another costume.
    signals.push(finding('obfuscation', 'obfuscation.styled_letters', 0.2, input.match(/[\uff01-\uff5e\u{1d400}-\u{1d7ff}\u24b6-\u24e9][^\n]{0,60}/u)?.[0] ?? ''));
  }

  if (/[\u{e0000}-\u{e01ef}]/u.test(text)) {
    text = text.replace(FLAG_TAG_SEQUENCE, '\u{1f3f4}');
    text = text.replace(TAG_CHARACTERS, (run) => {
      const decoded = Array.from(run, (c) => String.fromCharCode(c.codePointAt(0)! - 0xe0000)).join('');
      hidden.push({ kind: 'tag_characters', text: decoded });
      // Tag characters are invisible: text in them is meant for the model, not the reader.
      signals.push(finding('obfuscation', 'obfuscation.tag_characters', 0.5, decoded));
      return '';
    });
    text = text.replace(VARIATION_SELECTOR_BYTES, (run) => {
      if (run.length >= 4) {
        const bytes = Uint8Array.from(Array.from(run, (c) => c.codePointAt(0)! - 0xe0100 + 16));
        const decoded = decodeUtf8(bytes);
        if (decoded !== null) hidden.push({ kind: 'variation_selectors', text: decoded });
        // Runs of invisible selectors carry bytes; emoji need one selector, not dozens.
        signals.push(finding('obfuscation', 'obfuscation.variation_selector_bytes', 0.4, decoded ?? `${run.length} selectors`));
      }
      return '';
    });
  }

  const inWord = INVISIBLE_IN_WORD.exec(text);
  // Zero-width characters inside an ASCII word split it for filters and keep it for the model.
  if (inWord) signals.push(finding('obfuscation', 'obfuscation.zero_width_in_word', 0.3, inWord[0]));
  text = text.replace(INVISIBLE, '');
  const bidi = BIDI_OVERRIDES.exec(text);
  BIDI_OVERRIDES.lastIndex = 0;
  if (bidi) {
    // Bidi overrides make the displayed order differ from the order the model reads.
    signals.push(finding('obfuscation', 'obfuscation.bidi_override', 0.3, text.slice(bidi.index, bidi.index + 60)));
    text = text.replace(BIDI_OVERRIDES, '');
  }
  text = text.replace(BIDI_MARKS, '').replace(VARIATION_SELECTORS, '');

  if (CONFUSABLE_SCRIPTS.test(text)) {
    const mixed = mapMixedScriptWords(text);
    // One word mixing Latin with Cyrillic or Greek look-alikes is spoofing, not spelling.
    if (mixed.example) signals.push(finding('obfuscation', 'obfuscation.mixed_script_word', 0.3, mixed.example));
    text = mixed.text;
  }

  let spacedSeen = false;
  text = text.replace(SPACED_LETTERS, (run) => {
    const word = run.replace(/[ .\-_*·|/]/g, '');
    const squashed = word.toLowerCase();
    if (ATTACK_STEMS.some((s) => squashed.includes(s))) {
      if (!spacedSeen) {
        spacedSeen = true;
        // A keyword spelled out letter by letter is written for a model, not for people.
        signals.push(finding('obfuscation', 'obfuscation.spaced_letters', 0.4, run));
      }
      // "i g n o r e a l l p r e v i o u s i n s t r u c t i o n s" has no word breaks left to read.
      if (OVERRIDE_STEMS.some((s) => squashed.includes(s)) && TARGET_STEMS.some((s) => squashed.includes(s))) {
        signals.push(finding('instruction_override', 'override.spaced_out', 0.7, run));
      }
      return word;
    }
    // Other spaced words ("y o u r") matter only as parts of a phrase the rules know.
    return VOCABULARY.has(squashed) ? word : run;
  });

  return { text, hidden, signals };
}

// ---------------------------------------------------------------------------------------------
// Views and tokens

interface View {
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

interface Tokens {
  /** Lower-case words with diacritics removed ("précédentes" -> "precedentes"). */
  words: string[];
  /** Offsets of each word in the source text, for evidence. */
  starts: Int32Array;
  ends: Int32Array;
  /** Sentence number of each word: window rules never cross a sentence end or a blank line. */
  clause: Int32Array;
  excerpt: (lo: number, hi: number) => string;
}

function makeView(text: string): View {
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
const ASCII_WORD = Uint8Array.from({ length: 128 }, (_, c) => Number((c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 95 || (c >= 65 && c <= 90)));

function isWordCode(c: number): boolean {
  if (c < 128) return ASCII_WORD[c] === 1;
  let known = wordCharCache[c];
  if (known === 0) {
    known = c < 0xd800 || c > 0xdfff ? (WORD_CHAR.test(String.fromCharCode(c)) ? 1 : 2) : 2;
    wordCharCache[c] = known;
  }
  return known === 1;
}

const isSpace = (c: number) => c === 32 || c === 9 || c === 10 || c === 13 || c === 0x3000 || c === 0xa0;
const IPV4 = /\d{1,3}(?:\.\d{1,3}){3}/y;

function fold(word: string): string {
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
  return new Set([...VOCABULARY].filter((w) => w.length >= 4).map(map).filter((t) => !VOCABULARY.has(t)));
}

function threeHits(words: readonly string[], triggers: Set<string>): boolean {
  const seen = new Set<string>();
  for (const w of words) if (triggers.has(w) && !seen.has(w) && seen.add(w).size >= 3) return true;
  return false;
}

let rot13Triggers: Set<string> | undefined;
let reversedTriggers: Set<string> | undefined;

const WORD_TRANSFORMS: WordTransform[] = [
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

// ---------------------------------------------------------------------------------------------
// Word classes (written naturally, folded at load: lower case, no diacritics)

function words(list: string): Set<string> {
  return new Set(list.trim().split(/\s+/).map((w) => fold(w.toLowerCase())));
}

/** Verbs that throw away earlier instructions, in the languages attacks arrive in. */
const OVERRIDE_VERBS = words(`
  ignore ignores ignoring ignored disregard disregards disregarding disregarded forget forgetting forgot
  override overriding overwrite bypass bypassing discard abandon dismiss neglect nevermind scrap
  ignorez ignorer oublie oubliez oublier oublies négligez outrepasse outrepassez
  ignoriere ignorier ignorieren ignoriert vergiss vergesse vergessen vergesst missachte missachten missachtet übergehe verwirf
  ignora ignorar ignores olvida olvide olvidar olvides omite descarta desestima desatiende
  ignorare dimentica dimenticare trascura tralascia esqueça esquecer desconsidere desconsiderar
  negeer negeren vergeet игнорируй игнорируйте проигнорируй забудь забудьте отбрось zignoruj ignoruj zapomnij`);
/** What an override targets: the model's instructions. */
const INSTRUCTION_NOUNS = words(`
  instructions instruction directives directive guidelines guideline guidance prompt prompts programming guardrails safeguards
  systemprompt preprompt consignes consigne indications anweisungen anweisung instruktionen vorgaben systemvorgaben richtlinien
  systemanweisungen instrucciones instrucción indicaciones directrices directivas istruzioni indicazioni direttive
  instruções instrução orientações diretrizes instructies richtlijnen aanwijzingen инструкции инструкций указания промпт
  instrukcje polecenia`);
/** Weaker targets: they also name ordinary things ("ignore the lint rules"), so need a stronger qualifier. */
const RULE_NOUNS = words(`
  rules rule directions constraints restrictions policies policy context commands orders limits limitations training ethics filters
  règles regeln befehle reglas normas órdenes regole regras regels правила zasady`);
/** "previous", "above", "your"...: the qualifiers that point an override at the model's own setup. */
const PRIOR = words(`
  previous prior above earlier preceding original initial old former foregoing existing given your yours system developer
  before previously
  précédentes précédente précédents antérieures antérieurs dessus initiales initiaux originales anciennes tes vos ton votre système avant auparavant
  vorherigen vorherige vorigen bisherigen bisherige obigen obige ursprünglichen früheren alten deine deinen deiner dein vorher bisher zuvor
  anteriores anterior previas previos originales iniciales antiguas tus sus sistema antes
  precedenti precedente originali iniziali tue tuoi sopra prima originais iniciais suas seus
  vorige eerdere oorspronkelijke jouw предыдущие предыдущих прежние твои ваши системные poprzednie wcześniejsze`);
/** "all", "any": qualify an override only when the target is unambiguous. */
const ALL = words('all any every toutes tous alle todas todos tutte tutti todas все wszystkie');
const EVERYTHING = words('everything all tout alles todo tutto tudo всё все wszystko');
const TOLD = words(`told said taught learned instructed given received got dit dite appris t'a t'ont gesagt beigebracht dijeron dicho enseñado detto dito сказали`);
/** Verbs of obeying, for "do not follow your instructions". */
const FOLLOW_VERBS = words(`
  follow following obey heed adhere respect comply listen suivre suis suivez respecte respectez obéis obéissez
  befolge befolgen beachte beachten folge sigas siga seguir sigue obedezcas obedecer respetes seguire segui obbedire volg volgen следуй`);
const NEGATIONS = words(`not don't dont never no stop longer ne pas plus nicht kein keine nie niemals nunca non mai niet не`);
/** Words that declare earlier instructions dead. */
const VOID_WORDS = words(`
  void obsolete cancelled canceled revoked outdated invalid invalidated superseded supersede supersedes overridden null
  rescinded expired nichtig ungültig aufgehoben annulées caduques obsolètes anuladas obsoletas inválidas annullate`);
const NEW_WORDS = words('new nouvelle nouvelles nouveau nouveaux neue neuen neues nueva nuevas nuevo nuova nuove nova novas nieuwe новые новая');
const TASK_NOUNS = words(`
  instructions instruction consignes anweisung anweisungen aufgabe instrucciones tarea misión mission task istruzioni compito
  instruções tarefa instructies taak инструкции задача orders directives`);
const YOUR = words('your ta ton tes votre vos deine dein deinen tu tus tua tuo sua je jouw твоя твои');

/** Verbs that make the model hand over what it holds. */
const REVEAL_VERBS = words(`
  reveal print show output repeat display tell give share leak dump disclose expose recite quote echo spell paste
  révèle révélez affiche affichez montre montrez donne donnez répète répétez imprime dis
  zeige zeig gib verrate wiederhole drucke ausgeben nenne
  revela muestra muéstrame dime imprime repite enseña stampa mostra rivela ripeti revele mostre imprima diga
  выведи покажи раскрой`);
/** What is secret about the model itself. */
const PROMPT_NOUNS = words(`
  prompt systemprompt preprompt instructions instruction guidelines directives rules consignes anweisungen instrucciones
  istruzioni instruções промпт инструкции`);
const SECRET_QUALIFIERS = words(`
  your system initial hidden secret original full exact entire confidential internal ton tes votre vos système initiales cachées
  dein deine deinen deiner system versteckten geheimen tu tus su sus ocultas secretas sistema iniziali nascoste tuo tue
  suas системный скрытые`);
/** Verbs that move data out. */
const SEND_VERBS = words(`
  send post upload forward exfiltrate exfiltrating transmit leak email e-mail mail append attach submit curl wget fetch
  envoie envoyez envoyer transfère schick schicke sende senden übermittle envía envia manda mande enviar invia inviare
  отправь`);
/** What must not leave. */
const SECRET_NOUNS = words(`
  key keys apikey secret secrets token tokens password passwords passwd credentials credential environment .env .ssh .aws .netrc
  .npmrc .pypirc .git-credentials .kube id_rsa id_ed25519
  cookies cookie session history conversation transcript database contraseña clave claves passwort zugangsdaten mot historial
  conversación пароль`);
/** Where data would go: a URL, an address, a listener. */
const isDestination = (w: string) => w === '@' || w.startsWith('http') || /^\d{1,3}(?:\.\d{1,3}){3}$/.test(w) || w === 'webhook' || w === 'nc' || w === 'netcat';
const isSecret = (w: string) => SECRET_NOUNS.has(w) || /(?:^|_)(?:api_?key|key|token|secret|password|passwd|pwd|credentials?)(?:_|$)/.test(w);
/** A credential right after "Bearer" or "Authorization" is being used to call an API, not sent away. */
const AUTH_HEADER_WORDS = words('bearer authorization basic');
const isSentSecret = (w: string, ws: readonly string[], i: number) => isSecret(w) && !AUTH_HEADER_WORDS.has(ws[i - 1]);

const DISABLE_VERBS = words('disable skip bypass deactivate circumvent desactiva desactive désactive désactivez deaktiviere deaktivieren disattiva omite salta umgehe');
const CHECK_NOUNS = words(`
  approval approvals confirmation confirmations verification review security safety audit logging validation
  freigabeprüfung freigabe prüfung sicherheitsprüfung verificación confirmación aprobación vérification contrôle controlli verifica`);

/** Words that can start a window rule. */
const ANCHORS = new Set([
  ...OVERRIDE_VERBS, ...FOLLOW_VERBS, ...INSTRUCTION_NOUNS, ...RULE_NOUNS, ...NEW_WORDS, ...DISABLE_VERBS, ...REVEAL_VERBS,
  ...SEND_VERBS, ...SECRET_NOUNS,
]);
/** Every word the rules know: spaced-out or leetspeak words are read as words only if they are one of these. */
const VOCABULARY = new Set([
  ...ANCHORS, ...PRIOR, ...ALL, ...EVERYTHING, ...TOLD, ...NEGATIONS, ...VOID_WORDS, ...TASK_NOUNS, ...YOUR, ...PROMPT_NOUNS,
  ...SECRET_QUALIFIERS, ...CHECK_NOUNS, ...words('the a an and to me you my of then now all print this that it is are'),
]);

// ---------------------------------------------------------------------------------------------
// Window rules: a trigger word and companions within a few words in the same sentence

type WordTest = Set<string> | ((w: string, words: readonly string[], i: number) => boolean);

interface WindowRule {
  id: string;
  category: InjectionCategory;
  weight: number;
  /** Words that may start the rule (the anchor test then decides). */
  anchorWords: Set<string>;
  anchor: (words: readonly string[], i: number) => boolean;
  needs: [WordTest, number][];
  /** Companions must come after the anchor (and in the order listed). */
  ordered?: boolean;
}

const has = (test: WordTest, ws: readonly string[], i: number) => (typeof test === 'function' ? test(ws[i], ws, i) : test.has(ws[i]));
const anyOf = (...tests: WordTest[]) => (w: string, ws: readonly string[], i: number) => tests.some((t) => has(t, ws, i));

/** Idioms that mean "ignore" in two words: "set aside", "pay no attention", "haz caso omiso", "ne tiens pas compte". */
function isOverrideVerb(ws: readonly string[], i: number): boolean {
  const w = ws[i];
  if (OVERRIDE_VERBS.has(w)) return true;
  if (w === 'aside') return ['set', 'put', 'lay', 'leave'].includes(ws[i - 1]);
  if (w === 'omiso') return ws[i - 1] === 'caso';
  if (w === 'compte') return ['tiens', 'tenez', 'tenir', 'tiennes', 'tient'].some((x) => ws.slice(Math.max(0, i - 3), i).includes(x));
  if (w === 'abstraction') return ['fais', 'faites', 'faire'].includes(ws[i - 1]);
  if (w === 'attention') return ws[i - 1] === 'no' && ['pay', 'paying'].includes(ws[i - 2]);
  return false;
}
/** A rule starts at words of this set (and passes the test, when there is one). */
const at = (set: Set<string>, test?: (ws: readonly string[], i: number) => boolean) => ({
  anchorWords: set,
  anchor: test ?? ((ws: readonly string[], i: number) => set.has(ws[i])),
});
const OVERRIDE_ANCHORS = new Set([...OVERRIDE_VERBS, 'aside', 'omiso', 'compte', 'abstraction', 'attention']);
const TARGET_NOUNS = new Set([...INSTRUCTION_NOUNS, ...RULE_NOUNS]);

const WINDOW_RULES: WindowRule[] = [
  // "ignore all previous instructions" in any order and language: verb, target and a qualifier that points at the model.
  { id: 'override.verb_prior_target', category: 'instruction_override', weight: 0.8, ...at(OVERRIDE_ANCHORS, isOverrideVerb), needs: [[TARGET_NOUNS, 7], [anyOf(PRIOR, TOLD), 7]] },
  // "disregard all instructions": "all" is enough when the target can only be the model's instructions.
  { id: 'override.verb_all_instructions', category: 'instruction_override', weight: 0.7, ...at(OVERRIDE_ANCHORS, isOverrideVerb), needs: [[INSTRUCTION_NOUNS, 7], [ALL, 7]] },
  // "forget everything you were told".
  { id: 'override.forget_everything', category: 'instruction_override', weight: 0.7, ...at(OVERRIDE_ANCHORS, isOverrideVerb), needs: [[EVERYTHING, 3], [anyOf(TOLD, PRIOR), 8]] },
  // "do not follow your original instructions", "beachte die vorherigen Anweisungen nicht".
  { id: 'override.do_not_follow', category: 'instruction_override', weight: 0.7, ...at(FOLLOW_VERBS), needs: [[NEGATIONS, 4], [TARGET_NOUNS, 6], [PRIOR, 7]] },
  // "the earlier directives are obsolete".
  { id: 'override.declared_void', category: 'instruction_override', weight: 0.7, ...at(TARGET_NOUNS), needs: [[PRIOR, 3], [VOID_WORDS, 5]] },
  // "new instructions:", "nouvelles consignes": common in attacks, but also in ordinary mail, hence weak.
  { id: 'override.new_instructions', category: 'instruction_override', weight: 0.3, ...at(NEW_WORDS), needs: [[TASK_NOUNS, 2]] },
  // "your new task is": a new job handed to the model itself.
  { id: 'override.your_new_task', category: 'instruction_override', weight: 0.45, ...at(NEW_WORDS), needs: [[TASK_NOUNS, 2], [YOUR, 2]] },
  // "skip the approval step", "deaktiviere die Freigabeprüfung": switching off the controls around the model.
  { id: 'override.disable_checks', category: 'instruction_override', weight: 0.35, ...at(DISABLE_VERBS), needs: [[CHECK_NOUNS, 3]] },
  // "print your system prompt", "révèle ton prompt système".
  { id: 'exfil.reveal_prompt', category: 'exfiltration', weight: 0.75, ...at(REVEAL_VERBS), needs: [[PROMPT_NOUNS, 6], [SECRET_QUALIFIERS, 6]] },
  // "send the .env file to https://...": a secret moving to a destination named after the verb.
  { id: 'exfil.send_secret', category: 'exfiltration', weight: 0.75, ...at(SEND_VERBS), needs: [[isSentSecret, 10], [isDestination, 14]], ordered: true },
  // "take the API key ... and append it to https://...": the secret named before the verb.
  { id: 'exfil.secret_then_send', category: 'exfiltration', weight: 0.75, ...at(SECRET_NOUNS, (ws, i) => isSentSecret(ws[i], ws, i)), needs: [[SEND_VERBS, 12], [isDestination, 16]], ordered: true },
];

function windowMatch(t: Tokens, rule: WindowRule, i: number): [number, number] | null {
  const { words: ws, clause } = t;
  let lo = i;
  let hi = i;
  let from = i + 1;
  for (const [test, span] of rule.needs) {
    let hit = -1;
    const start = rule.ordered ? from : Math.max(0, i - span);
    const end = Math.min(ws.length - 1, i + span);
    for (let j = start; j <= end; j++) {
      if (j === i || clause[j] !== clause[i]) continue;
      if (has(test, ws, j)) {
        hit = j;
        break;
      }
    }
    if (hit < 0) return null;
    lo = Math.min(lo, hit);
    hi = Math.max(hi, hit);
    from = hit + 1;
  }
  return [lo, hi];
}

/** Anchor word -> the window rules it may start; read once per text instead of once per rule. */
const ANCHOR_INDEX = new Map<string, WindowRule[]>();
for (const rule of WINDOW_RULES) {
  for (const w of rule.anchorWords) ANCHOR_INDEX.set(w, [...(ANCHOR_INDEX.get(w) ?? []), rule]);
}
const IDENTIFIER_SECRET_RULES = WINDOW_RULES.filter((r) => r.anchorWords === SECRET_NOUNS);

function runWindowRules(t: Tokens): ScreenFinding[] {
  const out: ScreenFinding[] = [];
  const done = new Set<string>();
  const ws = t.words;
  for (let i = 0; i < ws.length && done.size < WINDOW_RULES.length; i++) {
    // Secrets also hide in identifiers: OPENAI_API_KEY, db_password.
    const rules = ANCHOR_INDEX.get(ws[i]) ?? (ws[i].includes('_') && isSecret(ws[i]) ? IDENTIFIER_SECRET_RULES : undefined);
    if (!rules) continue;
    for (const rule of rules) {
      if (done.has(rule.id) || !rule.anchor(ws, i)) continue;
      const span = windowMatch(t, rule, i);
      if (!span) continue;
      done.add(rule.id);
      out.push(finding(rule.category, rule.id, rule.weight, t.excerpt(span[0], span[1])));
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Pattern rules

interface PatternRule {
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
function lowerRule(id: string, category: InjectionCategory, weight: number, on: string | Gate, re: RegExp): PatternRule {
  if (typeof on !== 'string') return { id, category, weight, when: on, match: (v) => re.exec(v.lower)?.[0] ?? null };
  return { id, category, weight, triggers: words(on), when: always, match: (v) => matchAround(v, v.triggers!.get(id), re) };
}

type Gate = (v: View) => boolean;
const always: Gate = () => true;
/** The text has one of these words. */
function anyWord(list: string): Gate {
  const wanted = [...words(list)];
  return (v) => wanted.some((w) => v.vocabulary.has(w));
}
const anyText = (...needles: string[]): Gate => (v) => needles.some((n) => v.lower.includes(n));
const hasCjk: Gate = (v) => /[\u3040-\u30ff\u4e00-\u9fff]/.test(v.lower);
const hasSpecialToken = anyText('<|', 'inst]', '<<', '</s>', '_of_turn>', 'of_text', 'of_sentence');
const hasEndMarkerWord: Gate = (v) => v.lower.includes('</') || ['end', 'close', 'closing', 'stop'].some((w) => v.vocabulary.has(w));

/** How far a triggered pattern may reach before and after its trigger word. */
const WINDOW_BEFORE = 200;
const WINDOW_AFTER = 300;
/** Beyond this many trigger words, scanning the whole text once is cheaper than windows. */
const MAX_WINDOWS = 256;

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

const AI_WORDS = "ai llm llms assistant assistants agent agents model models chatbot chatbots bot bots gpt copilot claude ki ia l'ia language";

const AI = String.raw`(?:ai|llm|llms|language models?|(?:ai |coding |automated |screening |virtual )?(?:assistants?|agents?|models?|chatbots?|bots?)|gpt|copilot|claude|ki|ia|l'ia)`;

/** Chat-template and special tokens of the common model families. */
const SPECIAL_TOKEN = /<\|[a-z_][\w.-]{0,30}\|>|\[\/?inst\]|<<\/?sys>>|<\/s>\s*<s>|<s>\s*\[inst\]|<(?:start|end)_of_turn>|<\|?(?:begin|end)[_▁]of[_▁](?:text|sentence)\|?>/g;
/** The same tokens opening a system turn: a forged system message. */
const FORGED_SYSTEM_TURN = /(?:<\|im_start\|>|<\|start_header_id\|>|<start_of_turn>)\s*system\b|<\|system\|>|<<sys>>/g;
/** Tags that claim system or admin authority inside data. */
const AUTHORITY_TAG = /<\s*(?:system|system_message|system_prompt|sys|admin|administrator|developer|root|sudo|instructions?|override)\b[^<>\n]{0,80}>/g;
/** Lines that start a conversation turn: "Human:", "### Assistant:", "system:". */
const ROLE_LINE = /^[ \t>]*(?:#{1,4}[ \t]*)?(system|user|human|assistant|ai|bot|model)[ \t]*:/gm;
const ALPACA_LINE = /^[ \t]*#{2,4}[ \t]*(instruction|response|input)[ \t]*:/gm;
/** "[SYSTEM OVERRIDE]", "IMPORTANT SYSTEM NOTICE:", "=== BEGIN SYSTEM INSTRUCTIONS ===". */
const AUTHORITY_HEADER = /(?:^|[.!?]\s+|[[<({=*#|>\-]\s*)(?:important\s+|urgent\s+|priority\s+|begin\s+|start\s+|new\s+)?(?:system|admin|administrator|developer|operator|root|security)\s+(?:override|notice|message|instructions?|alert|update|command|directive|announcement)s?\s*[\]:)>}=*!|-]/gm;
/** Fake end of the data: "---END OF USER INPUT---", "[end of data]", "### END OF TICKET TEXT", "</document>". */
const END_MARKER = /(?:^|[-=#*_[<(|~"`]{2,}|\[|<|\()[ \t]*(?:end|close|closing|stop)(?:[ \t_-]+of)?(?:[ \t_-]+[a-z]+){0,2}?[ \t_-]+(?:input|data|document|documents|context|text|message|content|prompt|query|email|file|conversation|transcript|instructions|results?|output|review|article|page|snippet|section)\b|<\/[ \t]*(?:document|documents|doc|context|data|input|user_input|user_query|user|untrusted|untrusted_input|content|text|email|article|tool_output|tool_result|tool_response|function_results|function_result|search_results|search_result|result|results|system|prompt|query|transcript|message|conversation|source|retrieved|snippet|webpage|file)[ \t]*>/gm;
/** What follows a fake end marker or authority header in an attack: orders for the model. */
const INSTRUCTIVE = /\byou\s+(?:must|should|shall|will|are\s+(?:to|now|required)|need\s+to|have\s+to)\b|\byour\s+(?:new\s+|real\s+|actual\s+|true\s+|next\s+|only\s+)?(?:task|job|instructions?|goal|mission|role|orders)\b|\b(?:new|real|actual|updated|additional)\s+(?:system\s+)?(?:task|instructions?|orders|prompt|rules)\b|\b(?:the\s+)?(?:assistant|ai|model|agent)\s+(?:must|should|shall|will|is\s+to|needs\s+to|has\s+to)\b|\byou\s+are\s+(?:now\s+)?(?:an?|the|in)\b|\bnow\b[ \t,]*(?:as\s+the\s+\w+[ \t,]*)?(?:i\s+instruct|you|do|perform|execute|run|send|reply|respond|output|print|say|write|delete|remove|transfer|email|forward|call|reveal|show)\b|(?:^|\n)[ \t]*(?:system|assistant|ai|admin)[ \t]*[:,]|<\s*(?:system|instructions?|admin)|\b(?:ignore|disregard|override)\b|\bsystem\s+(?:override|notice|message|instructions?)\b/;
const MAX_MARKERS = 32;

/** Offsets of the lines that open or close a fenced code block. */
function fenceOffsets(text: string): number[] {
  const out: number[] = [];
  for (const m of text.matchAll(/^[ \t]*(?:```|~~~)/gm)) out.push(m.index);
  return out;
}

/** Inside a code block, an inline code span or an indented code line: quoted, not spoken. */
function inCode(text: string, index: number, fences: number[]): boolean {
  let open = 0;
  for (const f of fences) if (f < index) open += 1;
  if (open % 2 === 1) return true;
  // Look back at most a few lines' worth: a megabyte-long line must not be rescanned per match.
  const from = Math.max(0, index - 2000);
  const lineStart = text.lastIndexOf('\n', index - 1) + 1;
  const before = text.slice(Math.max(lineStart, from), index);
  if (lineStart >= from && /^(?: {4}|\t)/.test(before)) return true;
  return (before.match(/`/g)?.length ?? 0) % 2 === 1;
}

/** First match outside code, and the first match inside code. */
function quotedAware(re: RegExp, v: View): { spoken: string | null; quoted: string | null } {
  let quoted: string | null = null;
  let n = 0;
  re.lastIndex = 0;
  for (const m of v.lower.matchAll(re)) {
    v.fences ??= fenceOffsets(v.lower);
    const excerpt = v.lower.slice(m.index, m.index + 60);
    if (!inCode(v.lower, m.index, v.fences)) return { spoken: excerpt, quoted };
    quoted ??= excerpt;
    if (++n >= MAX_MARKERS) break;
  }
  return { spoken: null, quoted };
}

const PATTERN_RULES: PatternRule[] = [
  // ---- instruction_override
  // "ignore the above and say...": the target is implied by "above".
  lowerRule('override.ignore_the_above', 'instruction_override', 0.7, 'ignore disregard forget', /\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+)?(?:of\s+)?(?:the\s+|what(?:'s|\s+is|\s+was)\s+)?(?:above|preceding|foregoing)(?:\s+(?:and|then)\b|\s*[,.;:!\n])/),
  // "forget everything you've been told", "ignore all that came before".
  lowerRule('override.everything_before', 'instruction_override', 0.7, 'ignore disregard forget', /\b(?:forget|ignore|disregard)\s+(?:about\s+)?(?:everything|all(?:\s+that)?|anything)\s+(?:you(?:'ve|\s+have)?\s+(?:been\s+)?(?:told|taught|given|learned|instructed)|(?:came|said|written|stated)\s+(?:before|above|earlier)|(?:above|before|previously|so\s+far|earlier|up\s+to\s+(?:this|now)))/),
  // "never mind what the developer told you": someone else's instructions waved away (not "what I told you").
  lowerRule('override.never_mind_what_told', 'instruction_override', 0.6, 'mind nevermind ignore disregard forget', /\b(?:never\s?mind|forget|ignore|disregard)\s+(?:what|whatever|anything)\s+(?:the\s+\w+|your\s+\w+|you(?:'ve|\s+have|\s+were)?|they|someone|anyone|others)\s+(?:\w+\s+)?(?:told|said\s+to|instructed|asked|taught)\s+you\b/),
  // "safety rules are off": declaring the model's limits gone.
  lowerRule('override.safety_off', 'instruction_override', 0.55, 'safety content ethical security', /\b(?:safety|content|ethical|security)\s+(?:rules|filters|checks|guidelines|policies|restrictions|guardrails|measures)\s+(?:(?:are|is|have\s+been|has\s+been)\s+)?(?:now\s+)?(?:off|disabled|lifted|suspended|removed|deactivated|turned\s+off|waived)\b/),
  // "your instructions have changed", "the usual rules do not apply": the model's setup declared gone.
  lowerRule('override.rules_changed', 'instruction_override', 0.6, 'instructions rules guidelines directives restrictions policies filters programming', /\byour\s+(?:instructions|rules|guidelines|directives|orders|programming)\s+(?:have|has)\s+(?:changed|been\s+(?:changed|updated|replaced|revoked|cancelled|canceled|overridden|lifted))\b|\b(?:usual|normal|standard|previous|your|the)\s+(?:rules|guidelines|restrictions|policies|filters|instructions)\s+(?:do\s+not|don't|no\s+longer|doesn't|does\s+not)\s+apply\b/),
  // "ignore X and instead": common in attacks, but people say it to agents too, hence weak.
  lowerRule('override.ignore_and_instead', 'instruction_override', 0.35, 'ignore disregard forget', /\b(?:ignore|disregard|forget)\b[^.\n]{0,60}\b(?:and|,)\s+(?:instead|rather)\b/),
  // Chinese and Japanese have no spaces for the word rules: "忽略之前的指令", "指示を無視".
  lowerRule('override.cjk', 'instruction_override', 0.8, hasCjk, /(?:忽略|无视|無視|忘记|忘掉|不要理会|不理会)[^。！？\n]{0,12}(?:指令|指示|说明|說明|提示|规则|規則|命令|设定|設定)|(?:指令|指示|规则|規則|ルール|命令)[^。！？\n]{0,12}(?:忽略|无视|無視|忘れ)/),
  // Text that talks to the model reading it has a reader in mind that is not the human.
  lowerRule('override.addressed_to_ai', 'instruction_override', 0.55, AI_WORDS, new RegExp(
    String.raw`\b(?:note|message|instructions?|p\.?\s?s\.?|reminder|hint|notice|hinweis|nota|remarque)\s+(?:to|for|für|pour|para|per)\s+(?:the\s+|any\s+|all\s+|die\s+|l'|la\s+|el\s+)?${AI}\b` +
      String.raw`|\b(?:if|when)\s+you(?:'re|\s+are)\s+(?:an?\s+)?${AI}\b` +
      String.raw`|\b${AI}\s+(?:reading|processing|summari[sz]ing|parsing|analy[sz]ing|crawling|viewing|indexing)\s+(?:this|the)\b` +
      String.raw`|(?:^|[.!?]\s+|\(|\[)(?:attention|dear|hey|important|note)[,:!]?\s+${AI}\b` +
      String.raw`|(?:^|[.!?]\s+|\(|\[|#|//|<!--)\s*(?:ai|llm|language model|(?:ai|coding|automated|screening)\s+(?:assistants?|agents?|models?))\s*[:,]` +
      // Code comments have no conversation turns: "# Assistant:" there speaks to a coding agent.
      String.raw`|(?:#|//|<!--|/\*|--)[ \t]*(?:(?:ai|llm|coding)[ -])?(?:assistant|agent|ai|llm|model|bot)s?[ \t]*[:,]`,
    'm',
  )),
  // Telling the model to hide what it does from the person it works for.
  lowerRule('override.conceal_from_user', 'instruction_override', 0.5, 'user human operator owner recipient customer mention quietly secretly silently covertly', /\b(?:do\s+not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|alert(?:ing)?|mention(?:ing)?|show(?:ing)?|let(?:ting)?)\s+(?:this\s+to\s+|it\s+to\s+)?(?:the\s+)?(?:user|human|operator|owner|recipient|customer)\b|\b(?:do\s+not|don't|never)\s+mention\s+(?:this|it|that)\b|\bso\s+(?:that\s+)?the\s+(?:user|human|recipient)\s+(?:does\s+not|doesn't|won't|will\s+not|cannot|can't)\s+(?:see|notice|know|find)\b|\b(?:quietly|secretly|silently|covertly)\s+(?:append|add|send|forward|include|insert|copy|upload|post|email|delete|remove)\b/),
  // Claims of authority over the model ("I am your developer") arrive with attacks, not with work.
  lowerRule('override.authority_claim', 'instruction_override', 0.35, 'developer developers creator creators administrator administrators admin admins operator operators owner owners maker makers security sysadmin supervisor programmer approved preapproved pre authorizing authorising', /\b(?:i\s+am|i'm|this\s+is)\s+(?:your|the)\s+(?:new\s+|real\s+)?(?:developer|creator|administrator|admin|operator|owner|system\s+administrator|sysadmin|supervisor|programmer)\b|\b(?:operator|administrator|admin|developer|security\s+team|owner)\s+(?:has|have)\s+(?:authori[sz]ed|approved|pre-?approved|allowed|granted)\b|\bpre-?approved\s+by\b|\bauthori[sz]ing\s+you\s+to\b|\b(?:message|note|instructions?|order|update)\s+from\s+(?:your|the)\s+(?:developers?|creators?|administrators?|admins?|operators?|makers?|owners?)\b/),
  // ---- role_token
  { id: 'role.forged_system_turn', category: 'role_token', weight: 0.8, when: anyText('<|', '<<sys', '_of_turn>'), match: (v) => quotedAware(FORGED_SYSTEM_TURN, v).spoken },
  { id: 'role.special_token', category: 'role_token', weight: 0.6, when: hasSpecialToken, match: (v) => quotedAware(SPECIAL_TOKEN, v).spoken },
  // Quoted in code, tokens are documentation; still worth a note.
  { id: 'role.special_token_quoted', category: 'role_token', weight: 0.15, when: hasSpecialToken, match: (v) => quotedAware(SPECIAL_TOKEN, v).quoted },
  { id: 'role.authority_tag', category: 'role_token', weight: 0.5, when: anyText('<'), match: (v) => quotedAware(AUTHORITY_TAG, v).spoken },
  // A header claiming system authority followed by orders for the model.
  { id: 'role.authority_header_then_orders', category: 'role_token', weight: 0.6, when: anyWord('system admin administrator developer operator root security'), match: (v) => followedByOrders(AUTHORITY_HEADER, v.lower, true) },
  // A bare authority header is also how real operators announce maintenance.
  { id: 'role.authority_header', category: 'role_token', weight: 0.3, when: anyWord('system admin administrator developer operator root security'), match: (v) => followedByOrders(AUTHORITY_HEADER, v.lower, false) },
  // Two speakers at line starts: the text carries a conversation of its own (turn forging, or a few-shot dataset).
  { id: 'role.turn_lines', category: 'role_token', weight: 0.35, when: anyText(':'), match: (v) => roleLines(v.lower, 2) },
  // A fake assistant turn that starts complying ("Assistant: Sure, here they are") primes the model to go on.
  lowerRule('role.prefilled_answer', 'role_token', 0.45, 'assistant ai bot', /^[ \t]*(?:assistant|ai|bot)[ \t]*:[ \t]*(?:sure|of\s+course|certainly|absolutely|okay|ok|understood|here\s+(?:is|are)|i\s+will|i'll)\b/m),
  // A lone "System:" line is weaker: logs and bug reports have those too.
  { id: 'role.system_line', category: 'role_token', weight: 0.35, when: anyText('system'), match: (v) => (/^[ \t>]*(?:#{1,4}[ \t]*)?system[ \t]*:/m.exec(v.lower)?.[0] ?? null) },
  // ---- delimiter_attack
  { id: 'delimiter.end_marker_then_orders', category: 'delimiter_attack', weight: 0.6, when: hasEndMarkerWord, match: (v) => followedByOrders(END_MARKER, v.lower, true) },
  // A bare fake end marker is unusual in data, but documents and prompts use them too.
  { id: 'delimiter.end_marker', category: 'delimiter_attack', weight: 0.2, when: hasEndMarkerWord, match: (v) => followedByOrders(END_MARKER, v.lower, false) },
  // ---- exfiltration
  // "repeat the text above starting with 'You are'": the classic prompt leak.
  lowerRule('exfil.repeat_above', 'exfiltration', 0.7, 'above preceding before prior', /\b(?:repeat|print|output|show|display|copy|echo|write\s+out|spell\s+out|reproduce)\s+(?:me\s+)?(?:all\s+|everything\s+|the\s+)?(?:text|words|content|messages?|lines?|everything|all|instructions|prompt)?\s*(?:above|before\s+this|prior\s+to\s+this|preceding)\b/),
  // "what were your instructions", "the instructions you were given".
  lowerRule('exfil.ask_instructions', 'exfiltration', 0.6, 'your you', /\bwhat\s+(?:are|were|is|was)\s+your\s+(?:\w+\s+){0,2}(?:instructions|prompt|rules|guidelines|directives)\b|\b(?:instructions|prompt|rules|guidelines)\s+(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been)\s+(?:given|told|provided)\b/),
  // "output everything you were told": the prompt asked for without naming it.
  lowerRule('exfil.everything_told', 'exfiltration', 0.6, 'everything all', /\b(?:output|print|repeat|show|tell|list|write|give)\s+(?:me\s+)?(?:everything|all)\s+(?:that\s+)?you\s+(?:were|have\s+been|'ve\s+been)\s+(?:told|given|instructed|taught)\b/),
  // A markdown image whose URL carries a placeholder leaks data the moment it renders.
  lowerRule('exfil.image_url_placeholder', 'exfiltration', 0.75, anyText('![', '<img'), /!\[[^\]\n]{0,100}\]\(\s*https?:\/\/[^\s)]{0,300}[?&][^\s)=]{1,40}=[^\s)&]{0,40}(?:\{|\[|<|\$|%7b|%5b)|<img\b[^>]{0,200}\bsrc\s*=\s*["']?https?:\/\/[^\s"'>]{0,300}[?&][^\s"'>=]{1,40}=[^\s"'>&]{0,40}(?:\{|\[|<|\$|%7b|%5b)/),
  // The environment or a key file piped to a network tool.
  lowerRule('exfil.pipe_to_network', 'exfiltration', 0.7, 'curl wget nc ncat netcat socat telnet ssh', /\b(?:env|printenv|history|cat\s+[^\n|;]{0,80})\s*\|\s*(?:curl|wget|nc|ncat|netcat|socat|telnet|ssh)\b|\b(?:curl|wget)\b[^\n]{0,200}(?:-d|--data(?:-binary|-raw|-urlencode)?|-f|--form|-t|--upload-file)\s*@?[^\s]{0,40}(?:\.env\b|id_rsa|\.ssh|\.aws|\.netrc|\.npmrc|\.pypirc|\.git-credentials|\.kube|credentials|passwd|shadow|@-)/),
  // Reading a private key, cloud credentials or the password database has no business in an agent's task.
  lowerRule('exfil.read_private_key', 'exfiltration', 0.45, 'cat less more head tail type base64 xxd strings cp scp', /\b(?:cat|less|more|head|tail|type|base64|xxd|strings|cp|scp)\s+[^\n;|]{0,40}(?:id_rsa|id_ed25519|id_ecdsa|id_dsa|\/etc\/shadow|\.aws\/credentials|\.netrc|\.git-credentials|\.kube\/config)(?!\.pub)\b/),
  // Chinese and Japanese: "输出系统提示".
  lowerRule('exfil.cjk', 'exfiltration', 0.75, hasCjk, /(?:输出|显示|告诉|打印|透露|泄露|给我|教えて|表示)[^。\n]{0,12}(?:系统提示|系統提示|システムプロンプト|提示词)|(?:系统提示|系統提示|システムプロンプト|提示词)[^。\n]{0,12}(?:输出|显示|告诉|打印|透露|泄露|教えて|表示)/),
  // ---- jailbreak_persona
  { id: 'persona.dan', category: 'jailbreak_persona', weight: 0.8, when: anyWord('dan anything'), match: (v) => (/\bdo anything now\b/.exec(v.lower) ?? /\b(?:you are|act as|answer as|respond as|pretend to be|become|called|named)\s+["']?DAN\b|\bDAN\s+(?:mode|can|has|is)\b/.exec(v.text))?.[0] ?? null },
  // "developer mode" talking to the model (not "enable developer mode on my phone").
  lowerRule('persona.special_mode', 'jailbreak_persona', 0.6, 'mode modus entwicklermodus modo', /\b(?:god|jailbreak|jailbroken|unrestricted|unfiltered|uncensored|opposite|evil|chaos|dan)\s+mode\b|\b(?:you(?:'re|\s+are|\s+will\s+be)?\s+(?:now\s+)?in|enter|entering|activate|enable|switch\s+to)\s+(?:the\s+)?"?(?:developer|dev|debug|admin|sudo|maintenance)\s+mode\b(?![^.\n]{0,20}\bon\s+(?:my|your|the|an?)\s+(?:phone|device|android|iphone|chromebook|laptop|pc|computer|browser|mac|tablet))|\b(?:developer|dev|admin|sudo|maintenance)\s+mode\s+(?:enabled|activated|on)\b(?!\s+(?:my|your|the|an?|this)\b)|\bin\s+(?:developer|dev|debug|admin|sudo|maintenance)\s+mode,?\s+you\b|\bmode\s+d[ée]veloppeur\b|\bentwicklermodus\b|\bmodo\s+(?:desarrollador|programador|dios)\b/),
  // "you are no longer bound by", "freed from the typical confines".
  lowerRule('persona.unbound', 'jailbreak_persona', 0.7, 'bound restricted limited constrained governed freed free released liberated unshackled abide follow comply obey', /\b(?:no\s+longer|not|never)\s+(?:bound|restricted|limited|constrained|governed)\s+by\b|\b(?:freed|free|released|liberated|unshackled)\s+from\b[^.\n]{0,40}\b(?:confines|rules|restrictions|limitations|policies|guidelines|constraints)\b|\bdoes\s+not\s+have\s+to\s+(?:abide|follow|comply|obey)\b/),
  // A model persona defined by having no limits.
  lowerRule('persona.unrestricted_ai', 'jailbreak_persona', 0.6, 'unrestricted unfiltered uncensored jailbroken amoral unaligned restrictions filters limits rules morals ethics guardrails guidelines principles boundaries', /\b(?:unrestricted|unfiltered|uncensored|jailbroken|amoral|unaligned)\s+(?:ai|model|assistant|version|chatbot|llm|language\s+model)\b|\b(?:ai|model|assistant|chatbot|llm|bot)\s+(?:with\s+no|that\s+has\s+no|who\s+has\s+no|without(?:\s+any)?)\s+(?:(?:ethical|moral)\s+(?:(?:or|and)\s+(?:ethical|moral)\s+)?)?(?:guidelines|restrictions|filters|limits|rules|morals|ethics|guardrails|principles|boundaries)\b/),
  // "you have been jailbroken", "jailbreak successful": telling the model its limits are already gone.
  lowerRule('persona.jailbroken', 'jailbreak_persona', 0.7, 'jailbroken jailbreak unlocked liberated', /\byou\s+(?:have\s+been|are\s+now|are|'ve\s+been)\s+(?:jailbroken|unlocked|liberated)\b|\bjailbreak\s+(?:successful|succeeded|complete|enabled|activated)\b/),
  // "without any restrictions", "ohne Einschränkungen": asks for the limits to go, in a few languages.
  lowerRule('persona.without_limits', 'jailbreak_persona', 0.35, 'without with free sans ohne sin senza sem', /\b(?:without|with\s+no|free\s+of)\s+(?:any\s+)?(?:restrictions|filters|censorship|ethical\s+(?:guidelines|constraints)|content\s+polic(?:y|ies)|guardrails)\b|\bsans\s+(?:aucune?\s+)?(?:restrictions?|limites?|filtres?)\b|\bohne\s+(?:jegliche\s+)?(?:einschränkungen|regeln|filter|grenzen)\b|\bsin\s+(?:ninguna\s+)?(?:restricciones|límites|filtros|reglas)\b|\bsenza\s+(?:restrizioni|limiti|filtri)\b|\bsem\s+(?:restrições|limites|filtros)\b/),
  // Refusal removal and character lock-in are the mechanics of role-play jailbreaks.
  lowerRule('persona.never_refuse', 'jailbreak_persona', 0.35, 'refuse refuses refusals character policy policies', /\bnever\s+refuses?\b|\bno\s+refusals\b|\bstay\s+in\s+character\b|\bcontent\s+polic(?:y|ies)\s+(?:does\s+not|doesn't|do\s+not|don't)\s+apply\b/),
  // Persona reassignment: "from now on you are", "ab jetzt bist du".
  lowerRule('persona.you_are_now', 'jailbreak_persona', 0.3, 'now maintenant désormais jetzt nun ahora poi agora теперь pretend', /\b(?:from\s+now\s+on,?\s+you\s+(?:are|will\s+be|will\s+act)|you\s+are\s+now\s+(?:a|an|the|my|in|called|named)\b|pretend\s+(?:that\s+)?you(?:'re|\s+are)\s+(?:an?\s+)?(?:ai|model|assistant|chatbot))|(?:à\s+partir\s+de\s+maintenant|désormais),?\s+(?:tu\s+es|vous\s+êtes)|\btu\s+es\s+maintenant\b|\b(?:ab\s+jetzt|von\s+nun\s+an)\s+bist\s+du\b|\bdu\s+bist\s+(?:jetzt|nun)\b|\b(?:a\s+partir\s+de\s+ahora|desde\s+ahora),?\s+eres\b|\bahora\s+eres\b|\bd'ora\s+in\s+poi\s+sei\b|\bagora\s+voc[êe]\s+é\b|\bтеперь\s+ты\b/),
  // ---- encoded_payload
  // Asking the model to decode something and obey it: the wrapper of every encoded attack.
  lowerRule('encoded.decode_and_obey', 'encoded_payload', 0.45, 'decode decrypt deobfuscate unescape rot13 rot reverse process parse interpret execute run follow obey', /\b(?:decode|decrypt|deobfuscate|unescape|apply\s+rot-?13|rot-?13|reverse|process|parse|interpret)\b[^.\n]{0,60}\b(?:and\s+(?:then\s+)?(?:follow|obey|execute|run|do(?!\s+not\b|n't)|comply|act\s+on|carry\s+out|perform|apply)\b|(?:follow|obey|execute)\s+(?:it|them|the\s+(?:result|instructions?|decoded))\b|do\s+what\s+it\s+says)|\b(?:execute|run|follow|obey)\s+(?:the\s+)?(?:following\s+|this\s+)?(?:base64|hex|encoded|rot13)(?:-encoded)?\b/),
];

function roleLines(lower: string, min: number): string | null {
  const roles = new Set<string>();
  let first = '';
  for (const re of [ROLE_LINE, ALPACA_LINE]) {
    re.lastIndex = 0;
    let n = 0;
    for (const m of lower.matchAll(re)) {
      roles.add(m[1] === 'human' ? 'user' : m[1]);
      first ||= m[0];
      if (++n >= MAX_MARKERS) break;
    }
  }
  return roles.size >= min ? `${[...roles].join('/')} turns: ${first}` : null;
}

/** First marker (with the orders after it, when needOrders) of a global pattern. */
function followedByOrders(marker: RegExp, lower: string, needOrders: boolean): string | null {
  marker.lastIndex = 0;
  let n = 0;
  for (const m of lower.matchAll(marker)) {
    const after = lower.slice(m.index + m[0].length, m.index + m[0].length + 400);
    if (!needOrders) return m[0];
    if (INSTRUCTIVE.test(after)) return `${m[0]} ${after}`;
    if (++n >= MAX_MARKERS) break;
  }
  return null;
}

/** Trigger word -> ids of the pattern rules it triggers. */
const TRIGGER_INDEX = new Map<string, string[]>();
for (const rule of PATTERN_RULES) {
  for (const w of rule.triggers ?? []) TRIGGER_INDEX.set(w, [...(TRIGGER_INDEX.get(w) ?? []), rule.id]);
}

function findTriggers(t: Tokens): Map<string, number[] | 'all'> {
  const found = new Map<string, number[] | 'all'>();
  for (let i = 0; i < t.words.length; i++) {
    const ids = TRIGGER_INDEX.get(t.words[i]);
    if (!ids) continue;
    for (const id of ids) {
      const offsets = found.get(id);
      if (offsets === undefined) found.set(id, [t.starts[i]]);
      else if (offsets !== 'all') {
        if (offsets.length >= MAX_WINDOWS) found.set(id, 'all');
        else offsets.push(t.starts[i]);
      }
    }
  }
  return found;
}

function runRules(v: View): Map<string, ScreenFinding> {
  const out = new Map<string, ScreenFinding>();
  v.triggers = findTriggers(v.tokens);
  for (const rule of PATTERN_RULES) {
    if (rule.triggers ? !v.triggers.has(rule.id) : !rule.when(v)) continue;
    const evidence = rule.match(v);
    if (evidence !== null) out.set(rule.id, finding(rule.category, rule.id, rule.weight, evidence));
  }
  for (const f of runWindowRules(v.tokens)) out.set(f.rule, f);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoded payloads

interface Payload {
  kind: string;
  text: string;
}

/** Base64 runs (standard or URL-safe, MIME line breaks allowed). */
const BASE64_RUN = /[A-Za-z0-9+/_-]{16,}(?:={1,2}|(?:\r?\n[A-Za-z0-9+/]{16,})+={0,2})?/g;
const HEX_RUN = /\b(?:[0-9a-fA-F]{2}){12,}\b|\b[0-9a-fA-F]{2}(?:[ :,-][0-9a-fA-F]{2}){11,}\b|(?:\\x[0-9a-fA-F]{2}){6,}|(?:0x[0-9a-fA-F]{2}[ ,]*){6,}/g;
/** Every escape decoded in place on the lines that have them: percent, HTML numeric, \u, \x, JSON. */
const ESCAPE = /%[0-9a-fA-F]{2}|&#(?:x[0-9a-fA-F]{1,6}|[0-9]{1,7});|\\u[0-9a-fA-F]{4}|\\x[0-9a-fA-F]{2}|\\[nrt"]/g;

function* encodedPayloads(text: string, hidden: Normalised['hidden']): Generator<Payload> {
  yield* hidden;
  let candidates = 0;
  for (const m of text.matchAll(BASE64_RUN)) {
    if (++candidates > MAX_CANDIDATES) break;
    const run = m[0].replace(/\s+/g, '');
    // Base64 of text mixes cases or has digits; plain words and identifiers do not.
    if (!/[A-Z]/.test(run) || !/[a-z0-9]/.test(run) || run.length % 4 === 1) continue;
    const decoded = decodeText(decodeBase64(run.slice(0, MAX_CANDIDATE_CHARS)));
    if (decoded !== null) yield { kind: 'base64', text: decoded };
  }
  candidates = 0;
  for (const m of text.matchAll(HEX_RUN)) {
    if (++candidates > MAX_CANDIDATES) break;
    const digits = m[0].replace(/\\x|0x|[ :,-]/g, '').slice(0, MAX_CANDIDATE_CHARS);
    const bytes = new Uint8Array(digits.length >> 1);
    for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(digits.slice(2 * i, 2 * i + 2), 16);
    const decoded = decodeText(bytes);
    if (decoded !== null) yield { kind: 'hex', text: decoded };
  }
  for (const unescaped of unescapeLines(text)) yield unescaped;
}

/**
 * The lines that contain escapes, decoded: as 'escapes' when there are at least four encoding
 * escapes (a disguise), else as 'json_string' when JSON escapes are there (plain tool output).
 */
function unescapeLines(text: string): Payload[] {
  ESCAPE.lastIndex = 0;
  let encoding = 0;
  let json = 0;
  const lines: number[] = [];
  // Line starts are found moving forward only: linear however many escapes share a line.
  let lineStart = 0;
  let nextBreak = text.indexOf('\n');
  for (const m of text.matchAll(ESCAPE)) {
    if (m[0].length === 2) json += 1;
    else encoding += 1;
    while (nextBreak >= 0 && nextBreak < m.index) {
      lineStart = nextBreak + 1;
      nextBreak = text.indexOf('\n', lineStart);
    }
    if (lines[lines.length - 1] !== lineStart) lines.push(lineStart);
    if (lines.length > MAX_CANDIDATES || encoding + json > MAX_CANDIDATE_CHARS) break;
  }
  if (encoding < 4 && json === 0) return [];
  let out = '';
  for (const start of lines) {
    const end = text.indexOf('\n', start);
    out += decodeEscapes(text.slice(start, end < 0 ? Math.min(text.length, start + MAX_CANDIDATE_CHARS) : end).slice(0, MAX_CANDIDATE_CHARS)) + '\n';
    if (out.length > MAX_CANDIDATE_CHARS) break;
  }
  return [{ kind: encoding >= 4 ? 'escapes' : 'json_string', text: out }];
}

function decodeEscapes(line: string): string {
  // Percent escapes are bytes of UTF-8; collect runs of them before decoding.
  const withPercent = line.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    const bytes = Uint8Array.from(run.slice(1).split('%'), (h) => parseInt(h, 16));
    return decodeUtf8(bytes) ?? run;
  });
  return withPercent
    .replace(/&#x([0-9a-fA-F]{1,6});/g, (_, h: string) => safeCodePoint(parseInt(h, 16)))
    .replace(/&#([0-9]{1,7});/g, (_, d: string) => safeCodePoint(parseInt(d, 10)))
    .replace(/\\u([0-9a-fA-F]{4})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/\\x([0-9a-fA-F]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)))
    .replace(/\\([nrt"])/g, (_, c: string) => (c === 'n' ? '\n' : c === 'r' ? '\r' : c === 't' ? '\t' : '"'));
}

function safeCodePoint(cp: number): string {
  return cp > 0 && cp <= 0x10ffff ? String.fromCodePoint(cp) : '';
}

const BASE64_VALUE: Int16Array = (() => {
  const table = new Int16Array(128).fill(-1);
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  for (let i = 0; i < 64; i++) table[alphabet.charCodeAt(i)] = i;
  table['-'.charCodeAt(0)] = 62;
  table['_'.charCodeAt(0)] = 63;
  return table;
})();

/** Standard or URL-safe base64, padding optional; stops at the first character outside it. */
function decodeBase64(s: string): Uint8Array {
  const out = new Uint8Array(Math.floor((s.length * 3) / 4));
  let bits = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? BASE64_VALUE[c] : -1;
    if (v < 0) break;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (acc >> bits) & 0xff;
    }
  }
  return out.subarray(0, n);
}

/** Strict UTF-8 decoding; null on any malformed sequence (binary data is not text). */
function decodeUtf8(bytes: Uint8Array): string | null {
  let out = '';
  let chunk: number[] = [];
  for (let i = 0; i < bytes.length; ) {
    const b = bytes[i];
    let cp: number;
    let need: number;
    if (b < 0x80) {
      cp = b;
      need = 0;
    } else if (b >= 0xc2 && b <= 0xdf) {
      cp = b & 0x1f;
      need = 1;
    } else if (b >= 0xe0 && b <= 0xef) {
      cp = b & 0x0f;
      need = 2;
    } else if (b >= 0xf0 && b <= 0xf4) {
      cp = b & 0x07;
      need = 3;
    } else return null;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined || (c & 0xc0) !== 0x80) return null;
      cp = (cp << 6) | (c & 0x3f);
    }
    if ((need === 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) || (need === 3 && (cp < 0x10000 || cp > 0x10ffff))) return null;
    chunk.push(cp);
    if (chunk.length >= 4096) {
      out += String.fromCodePoint(...chunk);
      chunk = [];
    }
    i += need + 1;
  }
  return out + String.fromCodePoint(...chunk);
}

const PRINTABLE = /[\p{L}\p{N}\p{P}\p{S}\p{Zs}]/u;

/** Decoded bytes that read as text: valid UTF-8, mostly printable. */
function decodeText(bytes: Uint8Array): string | null {
  if (bytes.length < 6) return null;
  const text = decodeUtf8(bytes);
  if (text === null) return null;
  let printable = 0;
  let total = 0;
  for (const ch of text) {
    total += 1;
    const c = ch.charCodeAt(0);
    if ((c >= 0x20 && c < 0x7f) || c === 0x0a || c === 0x0d || c === 0x09 || (c > 0x9f && PRINTABLE.test(ch))) printable += 1;
  }
  return printable / total >= 0.9 ? text : null;
}
