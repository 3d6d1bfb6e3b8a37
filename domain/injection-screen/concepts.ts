/**
 * Word classes the classifier reads beside its n-grams: what a word means to an attack (an
 * instruction, a claim of authority, a permission, a secret, a covert step...). "Approvals are
 * waived" and "the confirmation step has been retired" share no n-gram but the same classes, so
 * what the model learns from one carries to the other. Every class present in a window is a
 * feature, and so is every pair of classes present together: an attack is a combination (someone
 * with authority + a check switched off), where each part alone is ordinary.
 */
import { fold } from './tokens.js';
import {
  CHECK_NOUNS,
  DISABLE_VERBS,
  INSTRUCTION_NOUNS,
  NEW_WORDS,
  OVERRIDE_VERBS,
  PRIOR,
  REVEAL_VERBS,
  RULE_NOUNS,
  SECRET_NOUNS,
  SEND_VERBS,
  VOID_WORDS,
  words,
} from './vocabulary.js';

/**
 * Words and two-word phrases of each class; a phrase is looked up as "previous-word word". The
 * classifier's words split at apostrophes, so "don't mention" is found as "t mention".
 */
const CLASSES: readonly (readonly string[])[] = [
  // Someone talks to the model.
  [
    ...words(`assistant assistants ai model models agent agents bot bots llm llms gpt chatgpt claude copilot chatbot chatbots
      gemini summariser summarizer summarising assistente asistente assistent ki ia модель`),
    'language model',
    'automated agent',
    'machine readers',
  ],
  // The model's instructions and limits.
  [
    ...INSTRUCTION_NOUNS,
    ...RULE_NOUNS,
    ...words('setup brief framework configured programmed initialised initialized launched deployed loaded safeguards'),
  ],
  [...PRIOR, ...words('start beginning startup first standing')],
  // Throwing the instructions away.
  [
    ...OVERRIDE_VERBS,
    ...VOID_WORDS,
    ...words('lifted suspended retired lapse lapsed unlearn disobey erase replaced void ended deprecated'),
    'set aside',
    'put aside',
    'no longer',
    't apply',
    'not apply',
    'never happened',
  ],
  [...CHECK_NOUNS, ...words('approve approving sign-off signoff consent permission confirm reviewer checks gate filters two-person')],
  // Checks switched off, or said to be unneeded.
  [
    ...DISABLE_VERBS,
    ...words('waived waive exempt exemption exempted suspend'),
    'no need',
    'not required',
    'not needed',
    'without asking',
    'without confirmation',
    'without approval',
    'without review',
    'turn off',
    'switch off',
    't ask',
  ],
  // Claims of authority.
  [
    ...words(`admin administrator administrators owner operator operators developer developers creator creators management
      cto ceo cfo legal compliance supervisor root headquarters board maintainer maintainers sysadmin officer director
      governance administrateur direction administrador amministratore beheerder администратор`),
    'security team',
    'it department',
  ],
  // Permission granted.
  [
    ...words(`authorised authorized authorise authorize authorising authorizing granted grant permitted allowed cleared
      pre-approved preapproved clearance elevated superuser unrestricted sanctioned autorisé autorizado autorizzato`),
    'full access',
  ],
  [...REVEAL_VERBS, ...words('verbatim exactly unfiltered'), 'word for', 'for word'],
  [...SEND_VERBS, ...words('share sync transfer copy export tweet publish')],
  [...SECRET_NOUNS, ...words('configuration config hidden confidential vault private ssh passwords')],
  // A step the user is not to know about.
  [
    ...words('quietly silently secretly covertly unnoticed invisible nobody'),
    't mention',
    'not mention',
    'without telling',
    't tell',
    'not tell',
    't notice',
    'between us',
    'the background',
    't say',
    'never reveal',
  ],
  [...words('delete deleting remove wipe destroy drop purge truncate rm erase kill')],
  [...words('you your yourself yours')],
  [...words('now immediately henceforth anymore onward onwards today'), 'from now', 'from here'],
  // Somewhere outside: the classifier's words split addresses, so http and the mail domain stand for them.
  [...words('external outside personal http https gmail outlook')],
  [...NEW_WORDS, ...words('updated update revised changed effective')],
  [
    ...words(`data database customer customers records files file folder mailbox emails inbox contacts table backup backups
      ledger salary payroll history`),
  ],
];

/** Word or phrase -> bit mask of its classes. */
const CLASSES_OF = new Map<string, number>();
/** First words of the two-word phrases: only after one of them is a phrase looked up. */
const PHRASE_STARTS = new Set<string>();
CLASSES.forEach((members, c) => {
  for (const m of members) {
    CLASSES_OF.set(m, (CLASSES_OF.get(m) ?? 0) | (1 << c));
    if (m.includes(' ')) PHRASE_STARTS.add(m.slice(0, m.indexOf(' ')));
  }
});

export const CLASS_COUNT = CLASSES.length;

/** The classes of a word (folded: lower case, no diacritics), given the word before it. */
export function classesOf(previous: string, folded: string): number {
  const own = CLASSES_OF.get(folded) ?? 0;
  return PHRASE_STARTS.has(previous) ? own | (CLASSES_OF.get(`${previous} ${folded}`) ?? 0) : own;
}
