/** Window rules: a trigger word and companions within a few words in the same sentence. */
import { finding, type InjectionCategory, type ScreenFinding } from './findings.js';
import type { Tokens } from './tokens.js';
import {
  ALL,
  CHECK_NOUNS,
  DISABLE_VERBS,
  EVERYTHING,
  FOLLOW_VERBS,
  INSTRUCTION_NOUNS,
  isDestination,
  isSecret,
  isSentSecret,
  NEGATIONS,
  NEW_WORDS,
  OVERRIDE_VERBS,
  PRIOR,
  PROMPT_NOUNS,
  REVEAL_VERBS,
  RULE_NOUNS,
  SECRET_NOUNS,
  SECRET_QUALIFIERS,
  SEND_VERBS,
  TASK_NOUNS,
  TOLD,
  VOID_WORDS,
  YOUR,
} from './vocabulary.js';

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
const anyOf =
  (...tests: WordTest[]) =>
  (w: string, ws: readonly string[], i: number) =>
    tests.some((t) => has(t, ws, i));

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
  {
    id: 'override.verb_prior_target',
    category: 'instruction_override',
    weight: 0.8,
    ...at(OVERRIDE_ANCHORS, isOverrideVerb),
    needs: [
      [TARGET_NOUNS, 7],
      [anyOf(PRIOR, TOLD), 7],
    ],
  },
  // "disregard all instructions": "all" is enough when the target can only be the model's instructions.
  {
    id: 'override.verb_all_instructions',
    category: 'instruction_override',
    weight: 0.7,
    ...at(OVERRIDE_ANCHORS, isOverrideVerb),
    needs: [
      [INSTRUCTION_NOUNS, 7],
      [ALL, 7],
    ],
  },
  // "forget everything you were told".
  {
    id: 'override.forget_everything',
    category: 'instruction_override',
    weight: 0.7,
    ...at(OVERRIDE_ANCHORS, isOverrideVerb),
    needs: [
      [EVERYTHING, 3],
      [anyOf(TOLD, PRIOR), 8],
    ],
  },
  // "do not follow your original instructions", "beachte die vorherigen Anweisungen nicht".
  {
    id: 'override.do_not_follow',
    category: 'instruction_override',
    weight: 0.7,
    ...at(FOLLOW_VERBS),
    needs: [
      [NEGATIONS, 4],
      [TARGET_NOUNS, 6],
      [PRIOR, 7],
    ],
  },
  // "the earlier directives are obsolete".
  {
    id: 'override.declared_void',
    category: 'instruction_override',
    weight: 0.7,
    ...at(TARGET_NOUNS),
    needs: [
      [PRIOR, 3],
      [VOID_WORDS, 5],
    ],
  },
  // "new instructions:", "nouvelles consignes": common in attacks, but also in ordinary mail, hence weak.
  { id: 'override.new_instructions', category: 'instruction_override', weight: 0.3, ...at(NEW_WORDS), needs: [[TASK_NOUNS, 2]] },
  // "your new task is": a new job handed to the model itself.
  {
    id: 'override.your_new_task',
    category: 'instruction_override',
    weight: 0.45,
    ...at(NEW_WORDS),
    needs: [
      [TASK_NOUNS, 2],
      [YOUR, 2],
    ],
  },
  // "skip the approval step", "deaktiviere die Freigabeprüfung": switching off the controls around the model.
  { id: 'override.disable_checks', category: 'instruction_override', weight: 0.35, ...at(DISABLE_VERBS), needs: [[CHECK_NOUNS, 3]] },
  // "print your system prompt", "révèle ton prompt système".
  {
    id: 'exfil.reveal_prompt',
    category: 'exfiltration',
    weight: 0.75,
    ...at(REVEAL_VERBS),
    needs: [
      [PROMPT_NOUNS, 6],
      [SECRET_QUALIFIERS, 6],
    ],
  },
  // "send the .env file to https://...": a secret moving to a destination named after the verb.
  {
    id: 'exfil.send_secret',
    category: 'exfiltration',
    weight: 0.75,
    ...at(SEND_VERBS),
    needs: [
      [isSentSecret, 10],
      [isDestination, 14],
    ],
    ordered: true,
  },
  // "take the API key ... and append it to https://...": the secret named before the verb.
  {
    id: 'exfil.secret_then_send',
    category: 'exfiltration',
    weight: 0.75,
    ...at(SECRET_NOUNS, (ws, i) => isSentSecret(ws[i], ws, i)),
    needs: [
      [SEND_VERBS, 12],
      [isDestination, 16],
    ],
    ordered: true,
  },
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

export function runWindowRules(t: Tokens): ScreenFinding[] {
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
