/**
 * A conversation's events, as GET /api/conversations/{id}/events streams them: what the person
 * said, the model's text, its tool calls, what became of each (an approval request, the decisions,
 * the action's status), the tool results, the end of each turn, and the end of the conversation.
 *
 * The events are derived from the conversation as its workflow's query shows it, and from the
 * records of its actions that are still open: nothing is written to history for a reader. Each
 * event is anchored at a transcript position (the entry it shows, or the last entry before it
 * happened) and its id is `<position>:<kind>[:<what>]`, the same on every read, so a reader that
 * reconnects with Last-Event-ID gets every event from that position on (those at the position
 * itself again, with the ids it has seen). A streaming model's text comes as `text_delta` events,
 * read from its call's heartbeat details, without ids: the whole answer's `text` event follows.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Context } from 'hono';
import { streamSSE } from 'hono/streaming';
import type { ActionRecord } from '../../domain/action.js';
import type { Conversation, ToolAction, Turn } from '../../domain/conversation.js';
import { WardenError } from '../../domain/errors.js';
import type { Identity } from '../../domain/roles.js';
import type { ConversationService } from './service.js';

export const CONVERSATION_EVENT_KINDS = [
  'message',
  'text_delta',
  'text',
  'tool_call',
  'approval_request',
  'approval',
  'action',
  'tool_result',
  'error',
  'turn_end',
  'end',
] as const;
export type ConversationEventKind = (typeof CONVERSATION_EVENT_KINDS)[number];

export interface ConversationEvent {
  /** Absent on what is no event of the conversation's record: a streamed answer's text, a stream's failed read. */
  id?: string;
  event: ConversationEventKind;
  data: Record<string, unknown>;
}

/** The order of events anchored at one transcript position (the sort keeps the order of equals). */
const RANKS: Record<ConversationEventKind, number> = {
  message: 0,
  text_delta: 0,
  text: 0,
  tool_call: 0,
  tool_result: 0,
  approval_request: 1,
  approval: 1,
  action: 1,
  error: 2,
  turn_end: 2,
  end: 3,
};

/** Statuses a tool call's action ends in (refused: it never became one). */
const FINAL_STATUSES = new Set(['refused', 'completed', 'failed', 'rejected', 'expired', 'cancelled']);
/** The conversation's own steps in between, which say nothing a reader acts on. */
const UNSHOWN_STATUSES = new Set(['preparing', 'started', 'pending']);

/** The transcript position a Last-Event-ID names; 0 (from the start) for none or one not ours. */
export function resumePosition(lastEventId: string | undefined): number {
  const position = /^(\d{1,9}):/.exec(lastEventId ?? '')?.[1];
  return position === undefined ? 0 : Number(position);
}

/** Action ids of the conversation whose records may still change: those of calls not ended. */
export function openActionIds(conversation: Conversation): string[] {
  return conversation.turns.flatMap((t) => t.actions).flatMap((a) => (a.action_id && !FINAL_STATUSES.has(a.status) ? [a.action_id] : []));
}

/**
 * Every event the conversation has had so far, in order, from what its query shows and the
 * records of its open actions.
 */
export function conversationEvents(conversation: Conversation, records: ReadonlyMap<string, ActionRecord>): ConversationEvent[] {
  const { transcript } = conversation;
  const events: Array<ConversationEvent & { position: number; rank: number }> = [];
  const at = (position: number, event: ConversationEventKind, what: string | null, data: Record<string, unknown>) =>
    events.push({ id: `${position}:${event}${what === null ? '' : `:${what}`}`, event, data, position, rank: RANKS[event] });

  // Each user entry opens a turn: the next one with its text (a message the workers refused is not in the transcript).
  let turnIndex = 0;
  let turn: Turn | undefined;
  /** How many calls with each id this turn has made: a model may use one id twice. */
  let callsSeen = new Map<string, number>();
  const endTurn = (position: number) => {
    if (!turn?.ended_at) return;
    if (turn.status === 'failed') at(position, 'error', String(turn.turn), { turn: turn.turn, message: turn.error });
    at(position, 'turn_end', String(turn.turn), { turn: turn.turn, status: turn.status, reply: turn.reply, error: turn.error });
  };

  transcript.forEach((entry, position) => {
    if (entry.role === 'user') {
      const next = conversation.turns.findIndex((t, i) => i >= turnIndex && t.message === entry.content);
      if (next < 0) return;
      turn = conversation.turns[next];
      turnIndex = next + 1;
      callsSeen = new Map();
      at(position, 'message', null, { turn: turn!.turn, text: entry.content });
    } else if (entry.role === 'assistant' && turn) {
      if (entry.content) at(position, 'text', null, { turn: turn.turn, text: entry.content });
      for (const call of entry.tool_calls ?? [])
        at(position, 'tool_call', call.id, { turn: turn.turn, tool_call_id: call.id, tool: call.name, arguments: call.arguments });
      // Calls run one at a time: the i-th happens after the results of those before it.
      entry.tool_calls?.forEach((call, i) => {
        const seen = callsSeen.get(call.id) ?? 0;
        callsSeen.set(call.id, seen + 1);
        const made = turn!.actions.filter((a) => a.tool_call_id === call.id)[seen];
        if (made) actionEvents(position + i, turn!, made, made.action_id ? records.get(made.action_id) : undefined);
      });
    } else if (entry.role === 'tool' && turn) {
      at(position, 'tool_result', entry.tool_call_id, { turn: turn.turn, tool_call_id: entry.tool_call_id, content: entry.content });
    }
    if (transcript[position + 1]?.role === 'user' || position === transcript.length - 1) endTurn(position);
  });
  if (conversation.status === 'ended') at(Math.max(transcript.length - 1, 0), 'end', null, { conversation_id: conversation.id });
  // At one position, what the entry shows happened first, then what became of the call made after it.
  return events.sort((a, b) => a.position - b.position || a.rank - b.rank).map(({ id, event, data }) => ({ id, event, data }));

  function actionEvents(position: number, turn: Turn, made: ToolAction, record: ActionRecord | undefined) {
    const about = { turn: turn.turn, tool_call_id: made.tool_call_id, tool: made.tool, action_id: made.action_id };
    if (record && record.approvals_required > 0 && (record.status === 'pending' || record.approvals.length > 0)) {
      at(position, 'approval_request', made.action_id, {
        ...about,
        security_level: record.security_level,
        rule: record.rule,
        approvals_required: record.approvals_required,
        requester: record.requester.name,
        who:
          record.approvals_required === 1
            ? `one approval by an approver or admin other than ${record.requester.name}`
            : `${record.approvals_required} approvals by different approvers or admins other than ${record.requester.name}`,
        params_hash: record.params_hash,
        parameters: record.parameters,
        expires_at: record.expires_at,
      });
      record.approvals.forEach((a, i) =>
        at(position, 'approval', `${made.action_id}:${i}`, { ...about, approved: a.approved, by: a.approver.name, comment: a.comment }),
      );
    }
    const status = FINAL_STATUSES.has(made.status) ? made.status : (record?.status ?? made.status);
    if (!UNSHOWN_STATUSES.has(status))
      at(position, 'action', `${made.tool_call_id}:${status}`, {
        ...about,
        status,
        error: FINAL_STATUSES.has(made.status) ? made.error : (record?.error ?? null),
      });
  }
}

/** How often an open stream reads the conversation again. */
const POLL_MS = 500;
/** After a failed read, the next one waits this long. */
const RETRY_MS = 3_000;

export interface ConversationEventsOptions {
  /** Streams one key may hold open at once. */
  maxStreamsPerKey: number;
  /** A stream closes after this long at most: the reader reconnects with Last-Event-ID. */
  maxStreamMs: number;
}

/**
 * The event streams of conversations: each reads the conversation (as its owner or an admin may)
 * and its open actions until the conversation ends, the reader goes away, or its time is up.
 */
export function createConversationEvents(
  conversations: ConversationService,
  getAction: (id: string) => Promise<ActionRecord>,
  /** Whether the reader's key was revoked since it opened the stream: its stream then closes. */
  isRevoked: (keyId: string) => Promise<boolean>,
  options: ConversationEventsOptions,
) {
  const openPerKey = new Map<string, number>();

  /** Holds one of the key's stream places; refused (429) when it holds them all. Returns its release. */
  function admit(who: Identity): () => void {
    const open = openPerKey.get(who.key_id) ?? 0;
    if (open >= options.maxStreamsPerKey)
      throw new WardenError(
        'too_many_streams',
        `this key already has ${open} event streams open (at most ${options.maxStreamsPerKey}); close one first`,
        429,
      );
    openPerKey.set(who.key_id, open + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (openPerKey.get(who.key_id) ?? 1) - 1;
      if (left > 0) openPerKey.set(who.key_id, left);
      else openPerKey.delete(who.key_id);
    };
  }

  /**
   * The conversation's events from the Last-Event-ID's position on, as they happen. Stops reading
   * as soon as `signal` aborts, the reader's key is revoked or `signedIn` says the reader's sign-in
   * ended; a read that fails is reported as an error event and tried again.
   */
  async function* follow(
    first: Conversation,
    who: Identity,
    lastEventId: string | undefined,
    signal: AbortSignal,
    signedIn: () => Promise<boolean> = async () => true,
  ): AsyncGenerator<ConversationEvent> {
    const from = resumePosition(lastEventId);
    const sent = new Set<string>();
    const until = Date.now() + options.maxStreamMs;
    /** Records of ended actions this stream asked approval for: read once more, for the decisions made since. */
    const ended = new Map<string, ActionRecord>();
    const asked = new Set<string>();
    /** The streamed text shown so far, and the model call it came from. */
    let shown = { call: '', text: '' };
    let conversation = first;
    while (!signal.aborted) {
      const records = new Map(ended);
      for (const actionId of new Set([...openActionIds(conversation), ...[...asked].filter((a) => !ended.has(a))])) {
        const record = await getAction(actionId).catch(() => undefined);
        if (record) records.set(actionId, record);
        if (record?.completed_at) ended.set(actionId, record);
      }
      for (const event of conversationEvents(conversation, records)) {
        if (sent.has(event.id!) || resumePosition(event.id) < from) continue;
        sent.add(event.id!);
        if (event.event === 'approval_request') asked.add(String(event.data.action_id));
        yield event;
      }
      if (conversation.status === 'ended' || Date.now() >= until) return;
      if (conversation.status === 'running') {
        const partial = await conversations.answerSoFar(first.id).catch(() => null);
        if (partial && partial.text !== shown.text) {
          const carriesOn = partial.call === shown.call && partial.text.startsWith(shown.text);
          const turn = conversation.turns.at(-1)?.turn;
          yield {
            event: 'text_delta',
            data: { turn, text: carriesOn ? partial.text.slice(shown.text.length) : partial.text, restart: !carriesOn },
          };
          shown = partial;
        }
      }
      try {
        await sleep(POLL_MS, undefined, { signal });
        // Fail closed: a key revoked or a sign-in ended mid-stream reads nothing more (a store that cannot say closes it too).
        if (await isRevoked(who.key_id).catch(() => true)) return;
        if (!(await signedIn().catch(() => false))) return;
        conversation = await conversations.getConversation(first.id, who);
      } catch (err) {
        if (signal.aborted || (err instanceof WardenError && err.status === 404)) return;
        yield { event: 'error', data: { message: `${(err as Error).message}; trying again` } };
        await sleep(RETRY_MS, undefined, { signal }).catch(() => undefined);
      }
    }
  }

  /**
   * The answer to a request for the conversation's event stream: the same door as reading it (its
   * owner or an admin, 404 to anyone else), then one of the key's stream places, held until the
   * stream closes. `signedIn` ends the stream with the reader's sign-in (a console session).
   */
  async function open(
    c: Context,
    conversationId: string,
    who: Identity,
    lastEventId: string | undefined,
    signedIn?: () => Promise<boolean>,
  ): Promise<Response> {
    const first = await conversations.getConversation(conversationId, who);
    const release = admit(who);
    return streamSSE(c, async (stream) => {
      const reader = new AbortController();
      stream.onAbort(() => reader.abort());
      try {
        for await (const event of follow(first, who, lastEventId, reader.signal, signedIn))
          await stream.writeSSE({ ...(event.id ? { id: event.id } : {}), event: event.event, data: JSON.stringify(event.data) });
      } finally {
        reader.abort();
        release();
      }
    });
  }

  return { open };
}

export type ConversationEvents = ReturnType<typeof createConversationEvents>;
