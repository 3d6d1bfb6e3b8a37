/**
 * Telegram through grammY, by long polling or by webhook (Telegram posts updates to the API's
 * route, which hands them here): the bot posts cards to its chats and edits them, and a button
 * press arrives as a callback query. The clicker is the query's `from`, as Telegram says. The
 * verdict is the query's answer, shown to the clicker alone. With chats that talk to agents, it
 * also asks for message updates and hands on the text people (never bots) write there; the writer
 * is the message's `from`, as Telegram says.
 */
import { Bot, type Context } from 'grammy';
import type { Update } from 'grammy/types';
import { WardenError } from '../../domain/errors.js';
import { secretMatches } from '../../domain/secret-match.js';
import type { ButtonClick, ChannelAdapter, PlainMessage } from '../adapter.js';
import { deliveredRequests } from '../delivered-requests.js';
import type { ApprovalCard } from '../card.js';
import { fitText } from '../room-text.js';
import { telegramCardMessage } from './card.js';

/** A message's text holds 4096 characters; sent without a parse mode, nothing in it needs escaping. */
const MESSAGE_LIMIT = 4096;

export interface TelegramSettings {
  /** The bot token, read when connecting (from the vault); undefined when the secret is missing. */
  token: () => Promise<string | undefined>;
  /** The ids of the chats cards go to. */
  chatIds: string[];
  /** The Bot API's root (Telegram's own when unset). */
  apiRoot?: string;
  /** How long the first calls may take before the connection counts as failed. */
  readyTimeoutMs?: number;
  /**
   * Webhook mode (long polling when unset): the public URL Telegram posts updates to, and the
   * secret token it must send with each (read from the vault when connecting).
   */
  webhook?: { url: string; secretToken: () => Promise<string | undefined> };
  /** Chat id → the agent people talk with there. */
  roomAgents?: Record<string, string>;
}

/**
 * How long an update id is remembered in webhook mode: Telegram posts an update again when its
 * delivery failed, retrying for a while; a press it delivers twice is taken once.
 */
const REDELIVERY_WINDOW_MS = 60 * 60 * 1000;

export function telegramAdapter(settings: TelegramSettings): ChannelAdapter {
  const readyTimeoutMs = settings.readyTimeoutMs ?? 30_000;
  let bot: Bot | undefined;
  let polling = false;
  /** In webhook mode, once connected: the bot updates are handed to and the token they must carry. */
  let webhook: { bot: Bot; secretToken: string } | undefined;
  const delivered = deliveredRequests('Telegram');
  const roomAgents = settings.roomAgents ?? {};
  const talking = Object.keys(roomAgents).length > 0;
  // Telegram sends only the kinds of update asked for: messages only when some chat talks to an agent.
  const allowedUpdates: Array<'callback_query' | 'message'> = talking ? ['callback_query', 'message'] : ['callback_query'];

  async function receive(request: Request): Promise<Response> {
    const current = webhook;
    if (!current) throw new WardenError('channel_unavailable', 'Telegram is not connected yet; Telegram retries', 503);
    if (!secretMatches(request.headers.get('x-telegram-bot-api-secret-token'), current.secretToken)) {
      throw new WardenError('unauthorized', 'not an update from Telegram: X-Telegram-Bot-Api-Secret-Token is missing or wrong', 401);
    }
    const update = (await request.json().catch(() => null)) as Update | null;
    if (typeof update?.update_id !== 'number')
      throw new WardenError('bad_request', 'a Telegram update is a JSON object with an update_id', 400);
    // Acknowledged, so Telegram stops posting it, and ignored: its first delivery was handled.
    if (!delivered.firstDelivery(String(update.update_id), Date.now() + REDELIVERY_WINDOW_MS)) return new Response(null, { status: 200 });
    // Quick: the click handler is not awaited, so Telegram has its answer before any decision.
    await current.bot.handleUpdate(update);
    return new Response(null, { status: 200 });
  }

  /** Webhook mode: Telegram is told where to post, with the secret token; updates then arrive through `receive`. */
  async function setWebhook(current: Bot, hook: NonNullable<TelegramSettings['webhook']>) {
    const secretToken = await hook.secretToken();
    if (!secretToken) throw new Error('no webhook secret token: the vault has no secret of the configured name');
    await current.init();
    await current.api.setWebhook(hook.url, { secret_token: secretToken, allowed_updates: allowedUpdates });
    webhook = { bot: current, secretToken };
  }

  const clickOf = (ctx: Context): ButtonClick => {
    let answered = false;
    const answer = async (text?: string) => {
      if (answered) return;
      answered = true;
      await ctx.answerCallbackQuery(text ? { text: text.slice(0, 200), show_alert: true } : {});
    };
    return {
      platform_user: `telegram:${ctx.from!.id}`,
      data: ctx.callbackQuery?.data ?? '',
      ignore: () => answer(),
      // Telegram keeps the query open until it is answered: the verdict is the answer.
      defer: async () => undefined,
      answer: (text) => answer(text),
    };
  };

  return {
    name: 'telegram',
    rooms: settings.chatIds,
    ...(settings.webhook ? { receive } : {}),
    async connect(onClick, onLost, onMessage) {
      const token = await settings.token();
      if (!token) throw new Error('no bot token: the vault has no secret of the configured name');
      // A webhook's set-up is two plain calls: they fail once past the ready timeout.
      const client = {
        ...(settings.apiRoot ? { apiRoot: settings.apiRoot } : {}),
        ...(settings.webhook ? { timeoutSeconds: readyTimeoutMs / 1000 } : {}),
      };
      const current = new Bot(token, { client });
      bot = current;
      // Not awaited: a slow decision must not hold the next update back.
      current.on('callback_query:data', (ctx) => void onClick(clickOf(ctx)));
      current.on('message:text', (ctx) => {
        const room = String(ctx.chat.id);
        if (!onMessage || ctx.from.is_bot || !Object.hasOwn(roomAgents, room)) return;
        const { message_id, text } = ctx.message;
        void onMessage({ room, platform_user: `telegram:${ctx.from.id}`, message_id: String(message_id), text }).catch(() => undefined);
      });
      current.catch((err) => onLost(err.error instanceof Error ? err.error : new Error(String(err.error))));
      if (settings.webhook) return setWebhook(current, settings.webhook);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('the Telegram Bot API did not answer in time'));
          void current.stop().catch(() => undefined);
        }, readyTimeoutMs);
        current.start({ allowed_updates: allowedUpdates, onStart: () => (clearTimeout(timer), (polling = true), resolve()) }).then(
          () => (polling = false),
          (err: Error) => {
            polling = false;
            clearTimeout(timer);
            reject(err);
            onLost(err);
          },
        );
      });
    },
    async disconnect() {
      const current = bot;
      bot = undefined;
      polling = false;
      // The webhook stays set: Telegram keeps the presses made meanwhile and posts them when Warden is back.
      webhook = undefined;
      if (current?.isRunning()) await current.stop().catch(() => undefined);
    },
    isConnected: () => webhook !== undefined || (polling && bot?.isRunning() === true),
    async postCard(room: string, card: ApprovalCard) {
      if (!bot) throw new Error('Telegram is not connected');
      const { text, reply_markup } = telegramCardMessage(card);
      const message = await bot.api.sendMessage(room, text, {
        parse_mode: 'HTML',
        reply_markup,
        link_preview_options: { is_disabled: true },
      });
      return String(message.message_id);
    },
    async editCard(room: string, messageId: string, card: ApprovalCard) {
      if (!bot) throw new Error('Telegram is not connected');
      const { text, reply_markup } = telegramCardMessage(card);
      await bot.api.editMessageText(room, Number(messageId), text, {
        parse_mode: 'HTML',
        reply_markup,
        link_preview_options: { is_disabled: true },
      });
    },
    ...(talking
      ? {
          conversations: {
            agents: roomAgents,
            async postMessage(room: string, message: PlainMessage) {
              if (!bot) throw new Error('Telegram is not connected');
              const sent = await bot.api.sendMessage(
                room,
                fitText(message, MESSAGE_LIMIT, (text) => text),
                {
                  link_preview_options: { is_disabled: true },
                  ...(message.replyTo
                    ? { reply_parameters: { message_id: Number(message.replyTo), allow_sending_without_reply: true } }
                    : {}),
                },
              );
              return String(sent.message_id);
            },
          },
        }
      : {}),
  };
}
