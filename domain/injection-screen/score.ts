/** The score: a noisy OR of the findings' weights, and the verdicts it maps to. */
import type { ScreenFinding } from './findings.js';

/** Score from which the verdict is 'suspicious': the policy raises the risk level. */
export const SUSPICIOUS_SCORE = 0.4;
/** Score from which the verdict is 'injection': the policy denies or asks a human. */
export const INJECTION_SCORE = 0.75;

/** Noisy OR of the findings' weights, rounded to 3 decimals. */
export function combine(findings: readonly ScreenFinding[]): number {
  let keep = 1;
  for (const f of findings) keep *= 1 - f.weight;
  return Math.round((1 - keep) * 1000) / 1000;
}
