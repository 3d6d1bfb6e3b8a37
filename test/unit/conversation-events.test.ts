/**
 * The events a conversation's stream derives from its record: their order, their ids (the same on
 * every read, led by a transcript position), where a resumed stream starts, and the parsing of a
 * text/event-stream answer the CLI and the tests read it with.
 */
import { describe, expect, it } from 'vitest';
import { conversationEvents, openActionIds, resumePosition } from '../../api/conversations/events.js';
import { readServerSentEvents } from '../../bin/commands/server-sent-events.js';
import type { ActionRecord } from '../../domain/action.js';
import type { Conversation, Turn } from '../../domain/conversation.js';

const turn = (n: number, message: string, rest: Partial<Turn> = {}): Turn => ({
  turn: n,
  message,
  status: 'running',
  reply: null,
  actions: [],
  steps: 1,
  error: null,
  started_at: '2026-12-07T00:00:00.000Z',
  ended_at: null,
  ...rest,
});

const conversation = (rest: Partial<Conversation>): Conversation => ({
  id: 'cnv-0123456789abcdef',
  agent_id: 'agt-1',
  provider: 'default',
  model: null,
  owner: { key_id: 'key_owner', name: 'owner' },
  status: 'running',
  turns: [],
  transcript: [],
  usage: { input_tokens: 0, output_tokens: 0, cached_tokens: 0 },
  created_at: '2026-12-07T00:00:00.000Z',
  ...rest,
});

const pending = (id: string, approvals: ActionRecord['approvals'] = []): ActionRecord =>
  ({
    id,
    status: 'pending',
    security_level: 'high',
    rule: 'filesystem-delete',
    approvals_required: 1,
    approvals,
    requester: { key_id: 'key_owner', name: 'owner', role: 'operator' },
    params_hash: 'a'.repeat(64),
    parameters: { path: 'x' },
    expires_at: null,
    error: null,
  }) as unknown as ActionRecord;

/** Two calls in one answer: the first ran, the second waits for approval. */
const twoCalls = conversation({
  turns: [
    turn(1, 'tidy up', {
      actions: [
        { tool_call_id: 'c1', tool: 'filesystem_list', action_id: 'act-1', status: 'completed', error: null },
        { tool_call_id: 'c2', tool: 'filesystem_delete', action_id: 'act-2', status: 'started', error: null },
      ],
    }),
  ],
  transcript: [
    { role: 'user', content: 'tidy up' },
    {
      role: 'assistant',
      content: 'Looking.',
      tool_calls: [
        { id: 'c1', name: 'filesystem_list', arguments: {} },
        { id: 'c2', name: 'filesystem_delete', arguments: { path: 'x' } },
      ],
    },
    { role: 'tool', tool_call_id: 'c1', content: 'x' },
  ],
});

describe('the events of a conversation', () => {
  it("follow what happened in order, each call's events after the results of the calls before it", () => {
    const events = conversationEvents(twoCalls, new Map([['act-2', pending('act-2')]]));
    expect(events.map((e) => e.id)).toEqual([
      '0:message',
      '1:text',
      '1:tool_call:c1',
      '1:tool_call:c2',
      '1:action:c1:completed',
      '2:tool_result:c1',
      '2:approval_request:act-2',
    ]);
    expect(events.at(-1)!.data).toMatchObject({
      action_id: 'act-2',
      who: 'one approval by an approver or admin other than owner',
    });
  });

  it('have the same ids on every read, and only open actions are read again', () => {
    const records = new Map([['act-2', pending('act-2')]]);
    expect(conversationEvents(twoCalls, records)).toEqual(conversationEvents(structuredClone(twoCalls), records));
    expect(openActionIds(twoCalls)).toEqual(['act-2']);
  });

  it('report each decision, a refused call, a failed turn with its error, and the end', () => {
    const ended = conversation({
      status: 'ended',
      turns: [
        turn(1, 'delete x', {
          status: 'failed',
          error: 'the model could not be reached',
          ended_at: '2026-12-07T00:01:00.000Z',
          actions: [
            { tool_call_id: 'c1', tool: 'filesystem_delete', action_id: 'act-1', status: 'rejected', error: 'rejected by alice: no' },
            { tool_call_id: 'c2', tool: 'nope', action_id: null, status: 'refused', error: 'no tool is named nope' },
          ],
        }),
      ],
      transcript: [
        { role: 'user', content: 'delete x' },
        {
          role: 'assistant',
          content: '',
          tool_calls: [
            { id: 'c1', name: 'filesystem_delete', arguments: { path: 'x' } },
            { id: 'c2', name: 'nope', arguments: {} },
          ],
        },
        { role: 'tool', tool_call_id: 'c1', content: 'rejected' },
        { role: 'tool', tool_call_id: 'c2', content: 'refused' },
      ],
    });
    const decided = {
      ...pending('act-1', [{ approver: { key_id: 'k', name: 'alice', role: 'approver' }, approved: false, comment: 'no', at: '' }]),
    };
    const events = conversationEvents(ended, new Map([['act-1', { ...decided, status: 'rejected' } as ActionRecord]]));
    expect(events.map((e) => e.id)).toEqual([
      '0:message',
      '1:tool_call:c1',
      '1:tool_call:c2',
      '1:approval_request:act-1',
      '1:approval:act-1:0',
      '1:action:c1:rejected',
      '2:tool_result:c1',
      '2:action:c2:refused',
      '3:tool_result:c2',
      '3:error:1',
      '3:turn_end:1',
      '3:end',
    ]);
    expect(events.find((e) => e.event === 'approval')!.data).toMatchObject({ approved: false, by: 'alice', comment: 'no' });
    expect(events.find((e) => e.id === '2:action:c2:refused')!.data).toMatchObject({ action_id: null, error: 'no tool is named nope' });
    expect(events.find((e) => e.event === 'turn_end')!.data).toMatchObject({ status: 'failed', error: 'the model could not be reached' });
  });

  it('leave out a turn whose message the workers refused (it is not in the transcript)', () => {
    const forged = conversation({
      turns: [turn(1, 'slipped in', { status: 'failed', ended_at: 'x' }), turn(2, 'hello')],
      transcript: [{ role: 'user', content: 'hello' }],
    });
    expect(conversationEvents(forged, new Map())).toEqual([{ id: '0:message', event: 'message', data: { turn: 2, text: 'hello' } }]);
  });

  it('resume from the position of a Last-Event-ID; any other id starts from the beginning', () => {
    expect(resumePosition('12:tool_result:c1')).toBe(12);
    expect(resumePosition(undefined)).toBe(0);
    expect(resumePosition('garbage')).toBe(0);
    expect(resumePosition('99999999999999:x')).toBe(0);
  });
});

describe('reading a text/event-stream', () => {
  it('parses events, multi-line data, ids that carry over, comments and CRLF, across chunk boundaries', async () => {
    const text =
      ': hello\r\nid: 1:a\r\nevent: text\r\ndata: {"a":\r\ndata: 1}\r\n\r\nevent: text_delta\ndata: x\n\nid: 2:b\ndata: plain\n\n';
    const bytes = new TextEncoder().encode(text);
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < bytes.length; i += 7) controller.enqueue(bytes.slice(i, i + 7));
        controller.close();
      },
    });
    const events = [];
    for await (const e of readServerSentEvents(body)) events.push(e);
    expect(events).toEqual([
      { event: 'text', data: '{"a":\n1}', id: '1:a', lastEventId: '1:a' },
      { event: 'text_delta', data: 'x', lastEventId: '1:a' },
      { event: 'message', data: 'plain', id: '2:b', lastEventId: '2:b' },
    ]);
  });
});
