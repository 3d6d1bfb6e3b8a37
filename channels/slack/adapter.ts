/**
 * Slack through Bolt, in Socket Mode (the app holds a WebSocket to Slack, no public URL) or over
 * HTTP (Slack posts signed requests to the API's route, which hands them here). Cards are posted
 * with chat.postMessage and edited with chat.update. A button press arrives as block_actions,
 * acknowledged at once; the verdict goes to the presser alone (chat.postEphemeral). The presser is
 * the payload's user, as Slack says. With channels that talk to agents, it also hands on the
 * messages people (never bots, nor Warden itself) write there, from `message` events; the writer
 * is the event's user, as Slack says.
 */
import { App, LogLevel } from '@slack/bolt';
import { WardenError } from '../../domain/errors.js';
import type { ButtonClick, ChannelAdapter, PlainMessage } from '../adapter.js';
import type { ApprovalCard } from '../card.js';
import { fitText } from '../room-text.js';
import { escapeSlack, slackCardMessage } from './card.js';
import { deliveredRequests } from '../delivered-requests.js';
import {
  API_ROUTE_RECEIVER,
  assertFirstDelivery,
  assertSignedBySlack,
  dispatchToBolt,
  slackRequestBody,
  urlVerificationAnswer,
} from './http-requests.js';

/** How presses reach Warden, with the secret that mode needs, read from the vault when connecting. */
export type SlackDelivery =
  /** The app-level token (xapp-, connections:write) Socket Mode connects with. */
  | { mode: 'socket'; appToken: () => Promise<string | undefined> }
  /** The signing secret every request Slack posts is checked against. */
  | { mode: 'http'; signingSecret: () => Promise<string | undefined> };

export interface SlackSettings {
  /** The bot token (xoxb-), read when connecting. */
  botToken: () => Promise<string | undefined>;
  delivery: SlackDelivery;
  /** The ids of the channels cards go to. */
  channelIds: string[];
  /** Slack's Web API base (`https://slack.com/api/` when unset). */
  apiUrl?: string;
  /** Channel id → the agent people talk with there. */
  roomAgents?: Record<string, string>;
}

/** Slack shows a message's first 4000 characters and folds the rest. */
const MESSAGE_LIMIT = 4000;

/** The fields of a `message` event Warden reads; the subtypes (edits, joins, bots' posts) are not people writing. */
interface MessageEvent {
  subtype?: string;
  bot_id?: string;
  user?: string;
  channel: string;
  ts: string;
  text?: string;
}

export function slackAdapter(settings: SlackSettings): ChannelAdapter {
  const { delivery } = settings;
  let app: App | undefined;
  let connected = false;
  /** Over HTTP, once connected: the app requests are handed to and the secret they are checked against. */
  let requests: { app: App; signingSecret: string } | undefined;
  /** Over HTTP: the requests taken in the last 5 minutes, each taken once. */
  const delivered = deliveredRequests('Slack');
  const roomAgents = settings.roomAgents ?? {};
  const talking = Object.keys(roomAgents).length > 0;

  async function receive(request: Request): Promise<Response> {
    const current = requests;
    if (!current) throw new WardenError('channel_unavailable', 'Slack is not connected yet; Slack retries', 503);
    const raw = await request.text();
    assertSignedBySlack(current.signingSecret, request.headers, raw);
    assertFirstDelivery(delivered, request.headers);
    const body = slackRequestBody(request.headers.get('content-type'), raw);
    return urlVerificationAnswer(body) ?? dispatchToBolt(current.app, body);
  }

  return {
    name: 'slack',
    rooms: settings.channelIds,
    ...(delivery.mode === 'http' ? { receive } : {}),
    async connect(onClick, onLost, onMessage) {
      const [botToken, secret] = await Promise.all([
        settings.botToken(),
        delivery.mode === 'socket' ? delivery.appToken() : delivery.signingSecret(),
      ]);
      const needs = delivery.mode === 'socket' ? 'app token' : 'signing secret';
      if (!botToken || !secret) throw new Error(`no bot token or ${needs}: the vault has no secret of the configured names`);
      const current = new App({
        token: botToken,
        ...(delivery.mode === 'socket' ? { appToken: secret, socketMode: true } : { receiver: API_ROUTE_RECEIVER }),
        logLevel: LogLevel.ERROR,
        ...(settings.apiUrl ? { clientOptions: { slackApiUrl: settings.apiUrl } } : {}),
      });
      app = current;
      current.action(/^warden-(approve|reject)$/, async ({ ack, body, action, client }) => {
        const channel = 'channel' in body ? body.channel?.id : undefined;
        const click: ButtonClick = {
          platform_user: `slack:${body.user.id}`,
          data: 'value' in action && typeof action.value === 'string' ? action.value : '',
          ignore: async () => void (await ack()),
          defer: async () => void (await ack()),
          answer: async (text) => {
            if (channel) await client.chat.postEphemeral({ channel, user: body.user.id, text });
          },
        };
        // Not awaited: Bolt's listener returns once the envelope is acknowledged.
        void onClick(click);
      });
      // Bolt acknowledges an event before its listener runs, and drops the app's own messages.
      current.event('message', async ({ event }) => {
        const message = event as MessageEvent;
        if (!onMessage || message.subtype || message.bot_id || !message.user || !Object.hasOwn(roomAgents, message.channel)) return;
        void onMessage({
          room: message.channel,
          platform_user: `slack:${message.user}`,
          message_id: message.ts,
          text: message.text ?? '',
        }).catch(() => undefined);
      });
      current.error(async (err) => onLost(err));
      await current.start();
      if (delivery.mode === 'http') {
        // Nothing else reaches Slack before the first press: a bad bot token shows now, not at a click.
        await current.client.auth.test();
        requests = { app: current, signingSecret: secret };
      }
      connected = true;
    },
    async disconnect() {
      const current = app;
      app = undefined;
      requests = undefined;
      connected = false;
      await current?.stop().catch(() => undefined);
    },
    isConnected: () => connected && app !== undefined,
    async postCard(room: string, card: ApprovalCard) {
      if (!app) throw new Error('Slack is not connected');
      const res = await app.client.chat.postMessage({ channel: room, ...slackCardMessage(card) });
      if (!res.ts) throw new Error(`Slack did not say which message it posted in ${room}`);
      return res.ts;
    },
    async editCard(room: string, messageId: string, card: ApprovalCard) {
      if (!app) throw new Error('Slack is not connected');
      await app.client.chat.update({ channel: room, ts: messageId, ...slackCardMessage(card) });
    },
    ...(talking
      ? {
          conversations: {
            agents: roomAgents,
            async postMessage(room: string, message: PlainMessage) {
              if (!app) throw new Error('Slack is not connected');
              const post = { channel: room, text: fitText(message, MESSAGE_LIMIT, escapeSlack), mrkdwn: false, unfurl_links: false };
              // A reply goes in the message's thread and, broadcast, in the channel too.
              const res = await (message.replyTo
                ? app.client.chat.postMessage({ ...post, thread_ts: message.replyTo, reply_broadcast: true })
                : app.client.chat.postMessage(post));
              if (!res.ts) throw new Error(`Slack did not say which message it posted in ${room}`);
              return res.ts;
            },
          },
        }
      : {}),
  };
}
