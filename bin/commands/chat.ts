/**
 * warden chat <agent>: a conversation in the terminal. Each line read is a message; what the turn
 * does is shown from the conversation's event stream as it happens: the model's text, its tool
 * calls, the approvals they wait for (who must approve, and the action id to approve) and what
 * became of them, and after each turn the tokens and cost spent so far. /exit or Ctrl-D ends the
 * conversation; Ctrl-C cancels the running turn.
 */
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Conversation } from '../../domain/conversation.js';
import type { ApiClient } from './api-client.js';
import type { Command } from './command.js';
import { print } from './output.js';
import { readServerSentEvents } from './server-sent-events.js';

/** A tool result is shown up to this many lines: the model reads all of it. */
const RESULT_LINES = 12;
/** After /exit, how long the conversation's end may take to show before the command leaves anyway. */
const END_WAIT_MS = 15_000;

type EventData = Record<string, unknown> & { turn?: number };

/** What a person reads for one event of the stream; nothing for those they already see (their own message). */
export function describeEvent(event: string, d: EventData): string | null {
  switch (event) {
    case 'text':
      return `model: ${String(d.text)}`;
    case 'tool_call':
      return `tool call ${String(d.tool)} ${JSON.stringify(d.arguments)}`;
    case 'approval_request':
      return [
        `waiting for approval: action ${String(d.action_id)} (${String(d.security_level)}, rule ${String(d.rule)}) needs ${String(d.who)}`,
        `  approve: warden approvals approve ${String(d.action_id)}   reject: warden approvals reject ${String(d.action_id)}`,
      ].join('\n');
    case 'approval':
      return `${d.approved ? 'approved' : 'rejected'} by ${String(d.by)}${d.comment ? `: ${String(d.comment)}` : ''} (action ${String(d.action_id)})`;
    case 'action':
      return d.action_id
        ? `action ${String(d.action_id)} ${String(d.status)}${d.error ? `: ${String(d.error)}` : ''}`
        : `call ${String(d.tool)} ${String(d.status)}: ${String(d.error)}`;
    case 'tool_result': {
      const lines = String(d.content).split('\n');
      const shown = lines.slice(0, RESULT_LINES).map((l) => `  ${l}`);
      if (lines.length > RESULT_LINES) shown.push(`  [${lines.length - RESULT_LINES} more lines]`);
      return `result of ${String(d.tool_call_id)}:\n${shown.join('\n')}`;
    }
    case 'error':
      return `error: ${String(d.message)}`;
    case 'turn_end':
      return d.status === 'answered' ? null : `turn ${d.turn} ${String(d.status)}${d.error ? `: ${String(d.error)}` : ''}`;
    case 'end':
      return 'the conversation has ended';
    default:
      return null;
  }
}

/** The conversation's spending so far, as a person reads it after each turn. */
function describeSpending(c: Pick<Conversation, 'usage' | 'cost_usd'>): string {
  const { input_tokens, output_tokens, cached_tokens } = c.usage;
  return `so far: ${input_tokens} tokens in, ${output_tokens} out, ${cached_tokens} cached · cost $${(c.cost_usd ?? 0).toFixed(4)}`;
}

/**
 * Follows the conversation's events until it ends or `signal` aborts, reconnecting from the last
 * event seen when the stream closes; `onEvent` sees each one once.
 */
async function followEvents(api: ApiClient, id: string, signal: AbortSignal, onEvent: (event: string, data: EventData) => void) {
  let lastEventId = '';
  /** A resumed stream sends the events at its position again: each is shown once. */
  const shown = new Set<string>();
  while (!signal.aborted) {
    try {
      const res = await api.open(`/api/conversations/${id}/events`, lastEventId ? { 'last-event-id': lastEventId } : {}, signal);
      for await (const e of readServerSentEvents(res.body!)) {
        lastEventId = e.lastEventId;
        if (e.id !== undefined && shown.has(e.id)) continue;
        if (e.id !== undefined) shown.add(e.id);
        onEvent(e.event, JSON.parse(e.data) as EventData);
        if (e.event === 'end') return;
      }
    } catch (err) {
      if (signal.aborted) return;
      print(`(the event stream broke: ${(err as Error).message}; reconnecting)`);
    }
    await sleep(1_000, undefined, { signal }).catch(() => undefined);
  }
}

export const chatCommands: Record<string, Command> = {
  chat: {
    usage: 'warden chat <agent id> [--provider NAME] [--model NAME]',
    summary: 'operator: talk with a model about an agent; its tool calls are actions (shown as they wait and run)',
    args: 1,
    options: { provider: { type: 'string' }, model: { type: 'string' } },
    async run({ api, args, values }) {
      const conversation = await api.call<{ id: string; provider: string; model: string | null }>('POST', '/api/conversations', {
        agent_id: args[0],
        ...(typeof values.provider === 'string' ? { provider: values.provider } : {}),
        ...(typeof values.model === 'string' ? { model: values.model } : {}),
      });
      const path = `/api/conversations/${conversation.id}`;
      print(
        `conversation ${conversation.id} with agent ${args[0]} (${conversation.provider}${conversation.model ? `, ${conversation.model}` : ''}); /exit or Ctrl-D ends, Ctrl-C cancels a turn`,
      );

      const endedTurns = new Set<number>();
      let ended = false;
      /** Wakes whoever waits for a turn's end or the conversation's. */
      let wake = () => {};
      const input = createInterface({ input: process.stdin, output: process.stdout, terminal: process.stdin.isTTY === true });
      const stream = new AbortController();
      /** The model's text shown as it streamed in, on a line not yet ended. */
      let streamed: string | null = null;
      const following = followEvents(api, conversation.id, stream.signal, (event, data) => {
        if (event === 'text_delta') {
          if (data.restart && streamed !== null) process.stdout.write('\n');
          if (data.restart || streamed === null) process.stdout.write('model: ');
          streamed = data.restart || streamed === null ? String(data.text) : streamed + String(data.text);
          process.stdout.write(String(data.text));
          return;
        }
        let text = describeEvent(event, data);
        if (streamed !== null) {
          // The whole answer follows what streamed in: only what did not stream is left to show.
          const rest = event === 'text' && String(data.text).startsWith(streamed) ? String(data.text).slice(streamed.length) : null;
          process.stdout.write(rest === null ? '\n' : `${rest}\n`);
          if (rest !== null) text = null;
          streamed = null;
        }
        if (text !== null) print(text);
        if (event === 'turn_end' && typeof data.turn === 'number') endedTurns.add(data.turn);
        if (event === 'end') {
          ended = true;
          input.close();
        }
        if (event === 'turn_end' || event === 'end') wake();
      });
      const until = (done: () => boolean, ms?: number) =>
        Promise.race([
          (async () => {
            while (!done()) await new Promise<void>((resolve) => (wake = resolve));
          })(),
          ...(ms ? [sleep(ms)] : []),
        ]);

      let runningTurn: number | null = null;
      const interrupt = () => {
        if (runningTurn === null) return print('(nothing to cancel; /exit or Ctrl-D ends the conversation)');
        print(`(cancelling turn ${runningTurn})`);
        api.call('POST', `${path}/cancel`).catch((err: Error) => print(`error: ${err.message}`));
      };
      input.on('SIGINT', interrupt);
      process.on('SIGINT', interrupt);
      const prompt = () => process.stdin.isTTY && input.prompt();
      try {
        prompt();
        for await (const line of input) {
          const message = line.trim();
          if (message === '/exit') break;
          if (message) {
            try {
              const { turn } = await api.call<{ turn: number }>('POST', `${path}/messages`, { message });
              runningTurn = turn;
              await until(() => ended || endedTurns.has(turn));
              print(describeSpending(await api.call<Conversation>('GET', path)));
            } catch (err) {
              print(`error: ${(err as Error).message}`);
            }
            runningTurn = null;
          }
          prompt();
        }
        if (!ended) {
          await api.call('POST', `${path}/end`).catch((err: Error) => print(`error: ${err.message}`));
          await until(() => ended, END_WAIT_MS);
        }
      } finally {
        process.off('SIGINT', interrupt);
        input.close();
        stream.abort();
        await following;
      }
    },
  },
};
