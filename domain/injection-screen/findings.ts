/** What the screen reports: categories, findings and the screen's result. */

export const INJECTION_CATEGORIES = [
  'instruction_override',
  'role_token',
  'delimiter_attack',
  'encoded_payload',
  'obfuscation',
  'exfiltration',
  'jailbreak_persona',
  /** The linear classifier (classifier.ts) finds the text attack-like, whatever the rules say. */
  'classifier',
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

export const EVIDENCE_MAX_CHARS = 80;

export function add(out: Map<string, ScreenFinding>, f: ScreenFinding): void {
  const existing = out.get(f.rule);
  if (!existing || existing.weight < f.weight) out.set(f.rule, f);
}

export function finding(category: InjectionCategory, rule: string, weight: number, evidence: string): ScreenFinding {
  return { category, rule, weight, evidence: clip(evidence) };
}

/** Evidence goes into logs and approval screens: no invisible characters, one line, short. */
export function clip(s: string): string {
  const visible = s
    .replace(
      /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufe00-\ufe0f\ufeff]/g,
      (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
    )
    .replace(/[\u{e0000}-\u{e007f}\u{e0100}-\u{e01ef}]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`)
    .replace(/\s+/g, ' ')
    .trim();
  const chars = Array.from(visible);
  return chars.length <= EVIDENCE_MAX_CHARS ? visible : chars.slice(0, EVIDENCE_MAX_CHARS - 1).join('') + '…';
}
