/**
 * A local Slack for Bolt: the Web API (`<origin>/api/<method>`, form or JSON bodies, bearer tokens:
 * auth.test, apps.connections.open with the app token, chat.postMessage, chat.update,
 * chat.postEphemeral); the Socket Mode WebSocket (hello, pings, `interactive` envelopes carrying
 * block_actions, `events_api` envelopes carrying message events, and the client's acknowledgements
 * by envelope id); and HTTP mode, posting the same
 * block_actions to a Request URL as Slack does: a form field `payload`, signed with the app's
 * signing secret (`X-Slack-Signature: v0=<HMAC-SHA256 of "v0:<timestamp>:<body>">`), and the
 * signed `url_verification` Slack sends when a Request URL is set.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

export interface FakeSlackMessage {
  ts: string;
  channel: string;
  blocks: Array<{ type: string; elements?: Array<{ action_id?: string; value?: string }> }>;
  /** Every body the message was posted or updated with, in order (its blocks as JSON). */
  versions: string[];
  /** Its text, as posted. */
  text: string;
  /** The thread it was posted in, if any. */
  thread_ts: string | null;
  /** Whether Slack's formatting applies to its text (`mrkdwn`, true unless posted with false). */
  mrkdwn: boolean;
}

/** How a request to the Request URL is signed: as Slack does by default, or as a forger might. */
export interface SlackSigning {
  /** The secret it is signed with (default: the app's). */
  secret?: string;
  /** X-Slack-Request-Timestamp, in seconds (default: now). */
  timestamp?: number;
  /** Sent with no X-Slack-Signature at all. */
  unsigned?: boolean;
}

export interface FakeSlack {
  apiUrl: string;
  botToken: string;
  appToken: string;
  signingSecret: string;
  channelIds: string[];
  messagesIn(channel: string): FakeSlackMessage[];
  /** Open Socket Mode connections. */
  sockets(): number;
  /** Someone writes in a channel: a `message` event over Socket Mode. Answers the message's ts; `acked` once its envelope is acknowledged. */
  write(userId: string, channel: string, text: string): { ts: string; acked: Promise<void> };
  /** A user presses a button; `acked` once the envelope is acknowledged, `ephemeral` with the private answer's text. */
  press(userId: string, message: FakeSlackMessage, value: string): { acked: Promise<void>; ephemeral: Promise<string> };
  /**
   * The same press in HTTP mode, posted to the Request URL: `status` is the HTTP answer's
   * (Slack counts a press delivered on a 200 within 3 s), `ephemeral` the private answer's text;
   * `replay` posts the very same request (headers and body) again, as one who captured it would.
   */
  pressOverHttp(
    requestUrl: string,
    userId: string,
    message: FakeSlackMessage,
    value: string,
    signing?: SlackSigning,
  ): { status: Promise<number>; ephemeral: Promise<string>; replay(): Promise<number> };
  /** Slack's check of a Request URL: a url_verification with this challenge; the answer's status and body. */
  verifyUrl(requestUrl: string, challenge: string, signing?: SlackSigning): Promise<{ status: number; body: string }>;
  close(): Promise<void>;
}

/** The value of a card's Approve or Reject button. */
export const buttonValue = (message: FakeSlackMessage, actionId: 'warden-approve' | 'warden-reject') =>
  message.blocks.flatMap((b) => b.elements ?? []).find((e) => e.action_id === actionId)!.value!;

/** Whether the card's last version shows the action completed, its buttons gone. */
export const showsCompleted = (message: FakeSlackMessage) => {
  const last = message.versions.at(-1)!;
  return !last.includes('warden-approve') && /completed \(exit code 0\)/.test(last);
};

export async function startFakeSlack(opts: { channelIds?: string[] } = {}): Promise<FakeSlack> {
  const botToken = `xoxb-${randomBytes(12).toString('hex')}`;
  const appToken = `xapp-${randomBytes(12).toString('hex')}`;
  const signingSecret = randomBytes(16).toString('hex');
  const channelIds = opts.channelIds ?? ['C0000000001'];
  const messages: FakeSlackMessage[] = [];
  const acks = new Map<string, () => void>();
  const ephemerals = new Map<string, (text: string) => void>();
  let origin = '';
  let nextTs = 1;

  /** A press of the button carrying `value` on `message`, as Slack describes it in block_actions. */
  const blockActions = (userId: string, message: FakeSlackMessage, value: string) => {
    const button = message.blocks.flatMap((b) => b.elements ?? []).find((e) => e.value === value);
    return {
      type: 'block_actions',
      user: { id: userId, username: `user-${userId}`, name: `user-${userId}`, team_id: 'T0000000001' },
      api_app_id: 'A0000000001',
      token: 'verification-token',
      container: { type: 'message', message_ts: message.ts, channel_id: message.channel, is_ephemeral: false },
      trigger_id: `${Date.now()}.trigger`,
      team: { id: 'T0000000001', domain: 'warden' },
      enterprise: null,
      is_enterprise_install: false,
      channel: { id: message.channel, name: 'approvals' },
      message: { type: 'message', ts: message.ts, text: '', blocks: message.blocks, user: 'U0000000BOT', bot_id: 'B0000000001' },
      response_url: `${origin}/response/${randomBytes(8).toString('hex')}`,
      actions: [
        {
          type: 'button',
          action_id: button?.action_id ?? 'warden-approve',
          block_id: 'actions',
          value,
          text: { type: 'plain_text', text: 'Approve' },
          action_ts: `${Date.now() / 1000}`,
        },
      ],
      state: { values: {} },
    };
  };

  /** A POST to the Request URL as Slack signs it (or as `signing` forges it). */
  const signedRequest = (contentType: string, body: string, signing: SlackSigning): RequestInit => {
    const timestamp = String(signing.timestamp ?? Math.floor(Date.now() / 1000));
    const signature = `v0=${createHmac('sha256', signing.secret ?? signingSecret)
      .update(`v0:${timestamp}:${body}`)
      .digest('hex')}`;
    const headers: Record<string, string> = {
      'content-type': contentType,
      'x-slack-request-timestamp': timestamp,
      'user-agent': 'Slackbot 1.0 (+https://api.slack.com/robots)',
      ...(signing.unsigned ? {} : { 'x-slack-signature': signature }),
    };
    return { method: 'POST', headers, body };
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const reply = (body: Record<string, unknown>) => (
        res.writeHead(200, { 'content-type': 'application/json' }),
        res.end(JSON.stringify(body))
      );
      const raw = Buffer.concat(chunks).toString('utf8');
      const body: Record<string, unknown> = (req.headers['content-type'] ?? '').includes('json')
        ? (JSON.parse(raw || '{}') as Record<string, unknown>)
        : Object.fromEntries(new URLSearchParams(raw));
      // Form bodies carry nested values as JSON strings.
      const json = (v: unknown) => (typeof v === 'string' ? JSON.parse(v) : v);
      const method = new URL(req.url ?? '/', 'http://fake').pathname.replace(/^\/api\//, '');
      const token = /^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1] ?? body.token;
      if (method === 'apps.connections.open') {
        if (token !== appToken) return reply({ ok: false, error: 'invalid_auth' });
        return reply({ ok: true, url: `${origin.replace(/^http/, 'ws')}/link/?ticket=${randomBytes(6).toString('hex')}` });
      }
      if (token !== botToken) return reply({ ok: false, error: 'invalid_auth' });
      switch (method) {
        case 'auth.test':
          return reply({
            ok: true,
            url: 'https://fake.slack.com/',
            team: 'Warden',
            user: 'warden',
            team_id: 'T0000000001',
            user_id: 'U0000000BOT',
            bot_id: 'B0000000001',
          });
        case 'chat.postMessage': {
          const channel = String(body.channel);
          if (!channelIds.includes(channel)) return reply({ ok: false, error: 'channel_not_found' });
          const blocks = json(body.blocks) ?? [];
          const m: FakeSlackMessage = {
            ts: `1700000000.${String(nextTs++).padStart(6, '0')}`,
            channel,
            blocks,
            versions: [JSON.stringify(blocks)],
            text: String(body.text ?? ''),
            thread_ts: body.thread_ts === undefined ? null : String(body.thread_ts),
            mrkdwn: json(body.mrkdwn) !== false,
          };
          messages.push(m);
          return reply({ ok: true, channel, ts: m.ts, message: { ts: m.ts, text: body.text, blocks } });
        }
        case 'chat.update': {
          const m = messages.find((x) => x.channel === String(body.channel) && x.ts === String(body.ts));
          if (!m) return reply({ ok: false, error: 'message_not_found' });
          m.blocks = json(body.blocks) ?? [];
          m.versions.push(JSON.stringify(m.blocks));
          return reply({ ok: true, channel: m.channel, ts: m.ts });
        }
        case 'chat.postEphemeral':
          ephemerals.get(String(body.user))?.(String(body.text ?? ''));
          return reply({ ok: true, message_ts: `1700000001.${String(nextTs++).padStart(6, '0')}` });
        default:
          return reply({ ok: false, error: 'unknown_method' });
      }
    });
  });

  const socketServer = new WebSocketServer({ server });
  const connected = new Set<WebSocket>();
  socketServer.on('connection', (socket) => {
    connected.add(socket);
    socket.send(
      JSON.stringify({
        type: 'hello',
        num_connections: 1,
        debug_info: { host: 'fake', approximate_connection_time: 18060 },
        connection_info: { app_id: 'A0000000001' },
      }),
    );
    const ping = setInterval(() => socket.ping(), 2_000);
    socket.on('message', (data) => {
      const { envelope_id } = JSON.parse(String(data)) as { envelope_id?: string };
      if (envelope_id) acks.get(envelope_id)?.();
    });
    socket.on('close', () => (clearInterval(ping), connected.delete(socket)));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiUrl: `${origin}/api/`,
    botToken,
    appToken,
    signingSecret,
    channelIds,
    messagesIn: (channel) => messages.filter((m) => m.channel === channel),
    sockets: () => connected.size,
    write(userId, channel, text) {
      const ts = `1700000000.${String(nextTs++).padStart(6, '0')}`;
      const envelopeId = randomBytes(8).toString('hex');
      const acked = new Promise<void>((resolve) => acks.set(envelopeId, resolve));
      const event = { type: 'message', channel, user: userId, text, ts, event_ts: ts, channel_type: 'channel', team: 'T0000000001' };
      const envelope = {
        envelope_id: envelopeId,
        type: 'events_api',
        accepts_response_payload: false,
        payload: {
          token: 'verification-token',
          team_id: 'T0000000001',
          api_app_id: 'A0000000001',
          event,
          type: 'event_callback',
          event_id: `Ev${randomBytes(5).toString('hex')}`,
          event_time: Math.floor(Date.now() / 1000),
          authorizations: [{ team_id: 'T0000000001', user_id: 'U0000000BOT', is_bot: true }],
        },
      };
      for (const socket of connected) socket.send(JSON.stringify(envelope));
      return { ts, acked };
    },
    press(userId, message, value) {
      const envelopeId = randomBytes(8).toString('hex');
      const acked = new Promise<void>((resolve) => acks.set(envelopeId, resolve));
      const ephemeral = new Promise<string>((resolve) => ephemerals.set(userId, resolve));
      const envelope = {
        envelope_id: envelopeId,
        type: 'interactive',
        accepts_response_payload: false,
        payload: blockActions(userId, message, value),
      };
      for (const socket of connected) socket.send(JSON.stringify(envelope));
      return { acked, ephemeral };
    },
    pressOverHttp(requestUrl, userId, message, value, signing = {}) {
      const ephemeral = new Promise<string>((resolve) => ephemerals.set(userId, resolve));
      const body = new URLSearchParams({ payload: JSON.stringify(blockActions(userId, message, value)) }).toString();
      const request = signedRequest('application/x-www-form-urlencoded', body, signing);
      const post = () => fetch(requestUrl, request).then(async (res) => (await res.arrayBuffer(), res.status));
      return { status: post(), ephemeral, replay: post };
    },
    async verifyUrl(requestUrl, challenge, signing = {}) {
      const body = JSON.stringify({ token: 'verification-token', challenge, type: 'url_verification' });
      const res = await fetch(requestUrl, signedRequest('application/json', body, signing));
      return { status: res.status, body: await res.text() };
    },
    async close() {
      for (const socket of socketServer.clients) socket.terminate();
      socketServer.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
