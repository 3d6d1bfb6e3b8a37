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
 * Files: screen.ts (entry point), score.ts, findings.ts, normalise.ts, tokens.ts, transforms.ts,
 * vocabulary.ts, window-rules.ts, pattern-matching.ts, markers.ts, pattern-rules.ts, decoders.ts.
 */

export {
  EVIDENCE_MAX_CHARS,
  INJECTION_CATEGORIES,
  type InjectionCategory,
  type ScreenFinding,
  type ScreenResult,
  type ScreenVerdict,
} from './findings.js';
export { normaliseText } from './normalise.js';
export { INJECTION_SCORE, SUSPICIOUS_SCORE } from './score.js';
export { MAX_DECODE_DEPTH, MAX_DECODED_CHARS, screenText } from './screen.js';
