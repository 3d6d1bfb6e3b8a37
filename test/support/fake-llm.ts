/**
 * A local model provider speaking the real wire protocols, for the real client libraries to talk
 * to: OpenAI's POST /v1/chat/completions (JSON or SSE) and GET /v1/models, Anthropic's POST
 * /v1/messages (JSON or SSE) and GET /v1/models. Each test scripts the replies of a route in order
 * and reads back every request it received, with its headers, body and arrival time.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  /** The body as sent. */
  raw: string;
  /** The body parsed, when it is JSON. */
  body: unknown;
  /** Arrival, in ms since the epoch. */
  at: number;
}

export type Reply =
  | { status?: number; headers?: Record<string, string>; json: unknown }
  /** Server-sent events: a string is sent as `data: <string>`, an object as `[event: <event>\n]data: <json>`. */
  | {
      status?: number;
      headers?: Record<string, string>;
      sse: Array<string | { event?: string; data: unknown }>;
      /** A pause before each event after the first, as a model generating its answer. */
      pauseMs?: number;
    }
  /** The connection is cut without an answer. */
  | { hangUp: true }
  /** Answered with the reply this promise gives, once it does: a model still thinking. */
  | { held: Promise<Reply> };

export interface FakeLlm {
  /** http://127.0.0.1:<port> */
  origin: string;
  requests: RecordedRequest[];
  /** Queues replies for `METHOD /path`, answered in order; an unscripted /v1/models lists `fake-model`. */
  script(route: string, ...replies: Reply[]): void;
  /** The requests to one route. */
  to(route: string): RecordedRequest[];
  close(): Promise<void>;
}

export async function startFakeLlm(): Promise<FakeLlm> {
  const queues = new Map<string, Reply[]>();
  const requests: RecordedRequest[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let body: unknown = undefined;
      try {
        body = raw ? JSON.parse(raw) : undefined;
      } catch {
        body = undefined;
      }
      const path = new URL(req.url ?? '/', 'http://fake').pathname;
      requests.push({ method: req.method ?? '', path, headers: req.headers, raw, body, at: Date.now() });
      const route = `${req.method} ${path}`;
      void answer(queues.get(route)?.shift() ?? defaultReply(route));
    });
    async function answer(reply: Reply): Promise<void> {
      if ('held' in reply) return answer(await reply.held);
      if ('hangUp' in reply) return void req.socket.destroy();
      const status = reply.status ?? 200;
      if ('json' in reply) {
        res.writeHead(status, { 'content-type': 'application/json', ...reply.headers });
        return void res.end(JSON.stringify(reply.json));
      }
      res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...reply.headers });
      for (const [i, event] of reply.sse.entries()) {
        if (i > 0 && reply.pauseMs) await new Promise((resolve) => setTimeout(resolve, reply.pauseMs));
        if (typeof event === 'string') res.write(`data: ${event}\n\n`);
        else res.write(`${event.event ? `event: ${event.event}\n` : ''}data: ${JSON.stringify(event.data)}\n\n`);
      }
      res.end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    origin,
    requests,
    script: (route, ...replies) => queues.set(route, [...(queues.get(route) ?? []), ...replies]),
    to: (route) => requests.filter((r) => `${r.method} ${r.path}` === route),
    close: () => new Promise<void>((resolve) => (server.closeAllConnections(), server.close(() => resolve()))),
  };
}

/**
 * A WARDEN_PROVIDERS_FILE of two providers played by the fake: `default` answers in one piece
 * (POST /v1/chat/completions), `streaming` streams its answers (POST /streaming/v1/chat/completions).
 */
export function fakeProvidersFile(fake: Pick<FakeLlm, 'origin'>): string {
  const file = join(mkdtempSync(join(tmpdir(), 'warden-providers-')), 'providers.json');
  writeFileSync(
    file,
    JSON.stringify({
      providers: [
        { name: 'default', kind: 'openai', base_url: `${fake.origin}/v1`, default_model: 'fake-model' },
        { name: 'streaming', kind: 'openai', base_url: `${fake.origin}/streaming/v1`, default_model: 'fake-model', stream: true },
      ],
    }),
  );
  return file;
}

function defaultReply(route: string): Reply {
  if (route === 'GET /v1/models') {
    return {
      json: {
        object: 'list',
        data: [
          {
            id: 'fake-model',
            object: 'model',
            created: 0,
            owned_by: 'fake',
            type: 'model',
            display_name: 'Fake',
            created_at: '2026-01-01T00:00:00Z',
          },
        ],
        has_more: false,
        first_id: 'fake-model',
        last_id: 'fake-model',
      },
    };
  }
  return { status: 500, json: { error: { message: `the fake has no reply scripted for ${route}`, type: 'server_error' } } };
}

/** An OpenAI chat completion. */
export function openaiCompletion(
  message: { content?: string | null; tool_calls?: Array<{ id: string; name: string; arguments: string }> },
  opts: { finish_reason?: string; usage?: Record<string, unknown>; model?: string } = {},
) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion',
    created: 1,
    model: opts.model ?? 'fake-model',
    choices: [
      {
        index: 0,
        message: {
          role: 'assistant',
          content: message.content ?? null,
          ...(message.tool_calls
            ? {
                tool_calls: message.tool_calls.map((tc) => ({
                  id: tc.id,
                  type: 'function',
                  function: { name: tc.name, arguments: tc.arguments },
                })),
              }
            : {}),
        },
        finish_reason: opts.finish_reason ?? (message.tool_calls ? 'tool_calls' : 'stop'),
      },
    ],
    usage: opts.usage ?? { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
  };
}

/** An OpenAI chat completion chunk (streaming). */
export function openaiChunk(
  delta: Record<string, unknown> | null,
  opts: { finish_reason?: string | null; usage?: Record<string, unknown> } = {},
) {
  return {
    id: 'chatcmpl-fake',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'fake-model',
    choices: delta === null ? [] : [{ index: 0, delta, finish_reason: opts.finish_reason ?? null }],
    ...(opts.usage ? { usage: opts.usage } : {}),
  };
}

/** An Anthropic message. */
export function anthropicMessage(content: unknown[], opts: { stop_reason?: string; usage?: Record<string, unknown>; model?: string } = {}) {
  return {
    id: 'msg_fake',
    type: 'message',
    role: 'assistant',
    model: opts.model ?? 'fake-claude',
    content,
    stop_reason: opts.stop_reason ?? 'end_turn',
    stop_sequence: null,
    usage: opts.usage ?? { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  };
}
