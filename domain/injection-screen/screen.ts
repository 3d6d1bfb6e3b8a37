/** The entry point: screen the text as it is, normalised, transformed and decoded. */
import { attackProbability, CLASSIFIER_THRESHOLD } from './classifier.js';
import { encodedPayloads } from './decoders.js';
import { add, clip, finding, INJECTION_CATEGORIES, type ScreenFinding, type ScreenResult } from './findings.js';
import { fenceOffsets } from './markers.js';
import { normalise } from './normalise.js';
import { runRules } from './pattern-rules.js';
import { combine, INJECTION_SCORE, SUSPICIOUS_SCORE } from './score.js';
import { makeView, type View } from './tokens.js';
import { WORD_TRANSFORMS } from './transforms.js';
import { runWindowRules } from './window-rules.js';

/** Decoding levels below the input (base64 inside base64 inside the text is depth 2). */
export const MAX_DECODE_DEPTH = 3;
/** Decoded text screened per call, all levels together; the rest is not decoded. */
export const MAX_DECODED_CHARS = 256 * 1024;
/** The classifier's weight: on its own it makes the verdict 'suspicious', never 'injection'. */
export const CLASSIFIER_WEIGHT = SUSPICIOUS_SCORE;

export function screenText(text: string): ScreenResult {
  const found = new Map<string, ScreenFinding>();
  const rawHits = screenInto(text, 0, { decodedChars: 0 }, found);
  discountQuotedExamples(text, rawHits, found);
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

/** Passages in double quotes or guillemets, on one line. */
const QUOTED = /"[^"\n]{4,300}"|“[^”\n]{4,300}”|«[^»\n]{4,300}»|„[^“”\n]{4,300}[“”]/g;
/** Words of a text that talks about attacks (a security write-up, a test plan) rather than makes one. */
const DISCUSSES_ATTACKS =
  /\b(?:for\s+example|examples?|such\s+as|e\.g\.|attacks?|attackers?|injections?|test\s+cases?|phrases?|payloads?|red[-\s]team(?:ed|ing|ers?)?|jailbreaks?|phishing|scammers?)\b/i;
/** What a rule's weight keeps when all it matched is a quoted example in such a text. */
const QUOTED_EXAMPLE_WEIGHT = 0.2;

/**
 * Security write-ups quote the attacks they discuss ("phrases like \"ignore previous
 * instructions\""). A rule that fires only inside quotes, in a text that talks about attacks,
 * keeps a fraction of its weight. The classifier still reads the whole text, so an attack that
 * dresses itself up as a quoted example is left to it and to the approvals.
 */
function discountQuotedExamples(text: string, rawHits: Map<string, ScreenFinding>, found: Map<string, ScreenFinding>): void {
  if (rawHits.size === 0 || !DISCUSSES_ATTACKS.test(text)) return;
  const unquoted = text.replace(QUOTED, (q) => ' '.repeat(q.length));
  if (unquoted === text) return;
  const outsideQuotes = runRules(makeView(unquoted));
  for (const [id, f] of found) {
    if (!rawHits.has(id) || outsideQuotes.has(id)) continue;
    found.set(id, {
      ...f,
      weight: Math.round(f.weight * QUOTED_EXAMPLE_WEIGHT * 1000) / 1000,
      evidence: clip(`[quoted example] ${f.evidence}`),
    });
  }
}

interface Budget {
  decodedChars: number;
}

/** Screens the text into out; returns what the rules found in the text as it is. */
function screenInto(text: string, depth: number, budget: Budget, out: Map<string, ScreenFinding>): Map<string, ScreenFinding> {
  const raw = makeView(text);
  const rawHits = runRules(raw);
  rawHits.forEach((f) => add(out, f));

  const norm = normalise(text);
  norm.signals.forEach((f) => add(out, f));
  if (depth === 0) {
    // Decoded payloads are left to the rules: the classifier was trained on text as people write it.
    const p = attackProbability(norm.text);
    if (p >= CLASSIFIER_THRESHOLD)
      add(out, finding('classifier', 'classifier.linear', CLASSIFIER_WEIGHT, `attack probability ${p.toFixed(2)}`));
  }
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

  if (depth >= MAX_DECODE_DEPTH) return rawHits;
  for (const payload of encodedPayloads(text, norm.hidden)) {
    const room = MAX_DECODED_CHARS - budget.decodedChars;
    if (room <= 0) return rawHits;
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
  return rawHits;
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
