/** Normalisation: the text a human would read, and signals of what was hidden in it. */
import { decodeUtf8 } from './decoders.js';
import { finding, type ScreenFinding } from './findings.js';
import { isWordCode } from './tokens.js';
import { VOCABULARY } from './vocabulary.js';

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
  а: 'a',
  в: 'b',
  е: 'e',
  ё: 'e',
  к: 'k',
  м: 'm',
  н: 'h',
  о: 'o',
  р: 'p',
  с: 'c',
  т: 't',
  у: 'y',
  х: 'x',
  і: 'i',
  ї: 'i',
  ј: 'j',
  ѕ: 's',
  ԁ: 'd',
  ӏ: 'l',
  һ: 'h',
  ԛ: 'q',
  ԝ: 'w',
  ɡ: 'g',
  ь: 'b',
  А: 'A',
  В: 'B',
  Е: 'E',
  К: 'K',
  М: 'M',
  Н: 'H',
  О: 'O',
  Р: 'P',
  С: 'C',
  Т: 'T',
  Х: 'X',
  У: 'Y',
  І: 'I',
  Ј: 'J',
  Ѕ: 'S',
  Ԁ: 'D',
  Ԛ: 'Q',
  Ԝ: 'W',
  // Greek
  α: 'a',
  ο: 'o',
  ι: 'i',
  ν: 'v',
  υ: 'u',
  κ: 'k',
  ρ: 'p',
  τ: 't',
  χ: 'x',
  ε: 'e',
  γ: 'y',
  Α: 'A',
  Β: 'B',
  Ε: 'E',
  Ζ: 'Z',
  Η: 'H',
  Ι: 'I',
  Κ: 'K',
  Μ: 'M',
  Ν: 'N',
  Ο: 'O',
  Ρ: 'P',
  Τ: 'T',
  Υ: 'Y',
  Χ: 'X',
  // Armenian and Latin look-alikes
  օ: 'o',
  ս: 'u',
  ց: 'g',
  հ: 'h',
  ո: 'n',
  ı: 'i',
  ɑ: 'a',
  ɩ: 'i',
  ʏ: 'y',
  ɪ: 'i',
  ʀ: 'r',
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
const ATTACK_STEMS = [
  'ignore',
  'disregard',
  'forget',
  'override',
  'bypass',
  'instruction',
  'systemprompt',
  'jailbreak',
  'reveal',
  'password',
  'prompt',
  'developermode',
];
const OVERRIDE_STEMS = ['ignore', 'disregard', 'forget', 'override', 'bypass'];
const TARGET_STEMS = ['instruction', 'prompt', 'rules', 'guideline', 'directive'];

export interface Normalised {
  text: string;
  /** Text smuggled in tag characters or variation selectors, decoded; screened as a payload. */
  hidden: { kind: string; text: string }[];
  signals: ScreenFinding[];
}

/** The text a human would read, in plain ASCII where it pretends to be ASCII. */
export function normaliseText(text: string): string {
  return normalise(text).text;
}

export function normalise(input: string): Normalised {
  const signals: ScreenFinding[] = [];
  const hidden: Normalised['hidden'] = [];
  let text = input.normalize('NFKC');
  if (text !== input && /[\uff01-\uff5e]{3,}|[\u{1d400}-\u{1d7ff}]{3,}|[\u24b6-\u24e9]{3,}/u.test(input)) {
    // Fullwidth, mathematical and circled letters spell ASCII words in another costume.
    signals.push(
      finding(
        'obfuscation',
        'obfuscation.styled_letters',
        0.2,
        input.match(/[\uff01-\uff5e\u{1d400}-\u{1d7ff}\u24b6-\u24e9][^\n]{0,60}/u)?.[0] ?? '',
      ),
    );
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
