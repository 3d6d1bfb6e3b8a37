/** Markers of forged structure (special tokens, role lines, fake ends of data) and whether they sit in code. */
import type { View } from './tokens.js';

export const AI_WORDS =
  "ai llm llms assistant assistants agent agents model models chatbot chatbots bot bots gpt copilot claude ki ia l'ia language";

export const AI = String.raw`(?:ai|llm|llms|language models?|(?:ai |coding |automated |screening |virtual )?(?:assistants?|agents?|models?|chatbots?|bots?)|gpt|copilot|claude|ki|ia|l'ia)`;

/** Chat-template and special tokens of the common model families. */
export const SPECIAL_TOKEN =
  /<\|[a-z_][\w.-]{0,30}\|>|\[\/?inst\]|<<\/?sys>>|<\/s>\s*<s>|<s>\s*\[inst\]|<(?:start|end)_of_turn>|<\|?(?:begin|end)[_▁]of[_▁](?:text|sentence)\|?>/g;
/** The same tokens opening a system turn: a forged system message. */
export const FORGED_SYSTEM_TURN = /(?:<\|im_start\|>|<\|start_header_id\|>|<start_of_turn>)\s*system\b|<\|system\|>|<<sys>>/g;
/** Tags that claim system or admin authority inside data. */
export const AUTHORITY_TAG =
  /<\s*(?:system|system_message|system_prompt|sys|admin|administrator|developer|root|sudo|instructions?|override)\b[^<>\n]{0,80}>/g;
/** Lines that start a conversation turn: "Human:", "### Assistant:", "system:". */
const ROLE_LINE = /^[ \t>]*(?:#{1,4}[ \t]*)?(system|user|human|assistant|ai|bot|model)[ \t]*:/gm;
const ALPACA_LINE = /^[ \t]*#{2,4}[ \t]*(instruction|response|input)[ \t]*:/gm;
/** "[SYSTEM OVERRIDE]", "IMPORTANT SYSTEM NOTICE:", "=== BEGIN SYSTEM INSTRUCTIONS ===". */
export const AUTHORITY_HEADER =
  /(?:^|[.!?]\s+|[[<({=*#|>\-]\s*)(?:important\s+|urgent\s+|priority\s+|begin\s+|start\s+|new\s+)?(?:system|admin|administrator|developer|operator|root|security)\s+(?:override|notice|message|instructions?|alert|update|command|directive|announcement)s?\s*[\]:)>}=*!|-]/gm;
/** Fake end of the data: "---END OF USER INPUT---", "[end of data]", "### END OF TICKET TEXT", "</document>". */
export const END_MARKER =
  /(?:^|[-=#*_[<(|~"`]{2,}|\[|<|\()[ \t]*(?:end|close|closing|stop)(?:[ \t_-]+of)?(?:[ \t_-]+[a-z]+){0,2}?[ \t_-]+(?:input|data|document|documents|context|text|message|content|prompt|query|email|file|conversation|transcript|instructions|results?|output|review|article|page|snippet|section)\b|<\/[ \t]*(?:document|documents|doc|context|data|input|user_input|user_query|user|untrusted|untrusted_input|content|text|email|article|tool_output|tool_result|tool_response|function_results|function_result|search_results|search_result|result|results|system|prompt|query|transcript|message|conversation|source|retrieved|snippet|webpage|file)[ \t]*>/gm;
/** What follows a fake end marker or authority header in an attack: orders for the model. */
const INSTRUCTIVE =
  /\byou\s+(?:must|should|shall|will|are\s+(?:to|now|required)|need\s+to|have\s+to)\b|\byour\s+(?:new\s+|real\s+|actual\s+|true\s+|next\s+|only\s+)?(?:task|job|instructions?|goal|mission|role|orders)\b|\b(?:new|real|actual|updated|additional)\s+(?:system\s+)?(?:task|instructions?|orders|prompt|rules)\b|\b(?:the\s+)?(?:assistant|ai|model|agent)\s+(?:must|should|shall|will|is\s+to|needs\s+to|has\s+to)\b|\byou\s+are\s+(?:now\s+)?(?:an?|the|in)\b|\bnow\b[ \t,]*(?:as\s+the\s+\w+[ \t,]*)?(?:i\s+instruct|you|do|perform|execute|run|send|reply|respond|output|print|say|write|delete|remove|transfer|email|forward|call|reveal|show)\b|(?:^|\n)[ \t]*(?:system|assistant|ai|admin)[ \t]*[:,]|<\s*(?:system|instructions?|admin)|\b(?:ignore|disregard|override)\b|\bsystem\s+(?:override|notice|message|instructions?)\b/;
const MAX_MARKERS = 32;

/** Offsets of the lines that open or close a fenced code block. */
export function fenceOffsets(text: string): number[] {
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
export function quotedAware(re: RegExp, v: View): { spoken: string | null; quoted: string | null } {
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

export function roleLines(lower: string, min: number): string | null {
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
export function followedByOrders(marker: RegExp, lower: string, needOrders: boolean): string | null {
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
