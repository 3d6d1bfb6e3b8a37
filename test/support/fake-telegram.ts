/**
 * A local Telegram Bot API for grammY to talk to (its `client.apiRoot`): POST /bot<token>/<method>
 * with getMe, setWebhook, deleteWebhook, getUpdates (long polling, held until an update arrives or
 * the timeout; refused while a webhook is set; only the kinds of update the bot asked for, by
 * getUpdates' or setWebhook's allowed_updates), sendMessage, editMessageText and
 * answerCallbackQuery, answering as Telegram does (`{ok, result}` or `{ok: false, error_code,
 * description}`). With a webhook set, an update is posted to its URL as Telegram does: JSON, with
 * the secret token in X-Telegram-Bot-Api-Secret-Token.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeTelegramMessage {
  message_id: number;
  chat_id: string;
  text: string;
  /** The inline keyboard's buttons, as callback data by label. */
  buttons: Array<{ text: string; callback_data: string }>;
  /** Every text the message was sent or edited with, in order. */
  versions: string[];
  /** The message it replies to (reply_parameters), if any. */
  reply_to: number | null;
  /** The parse mode it was sent with, if any. */
  parse_mode: string | null;
}

export interface FakeTelegram {
  apiRoot: string;
  token: string;
  chatIds: string[];
  messagesIn(chatId: string): FakeTelegramMessage[];
  /** A user presses a button: a callback query; resolves with the answer's text ('' for a silent one). */
  press(userId: number, message: FakeTelegramMessage, data: string): Promise<string>;
  /** Someone writes in a chat: a message update. Answers the message's id. */
  write(userId: number, chatId: string, text: string, opts?: { bot?: boolean }): number;
  /** The webhook setWebhook set (with the secret token it was given), or null while long polling. */
  webhook(): { url: string; secret_token?: string; allowed_updates?: string[] } | null;
  /** Posts the last update delivered to the webhook again, as Telegram does when a delivery failed; the status it answered. */
  redeliverLast(): Promise<number>;
  /** The statuses the webhook answered deliveries with, in order. */
  deliveries: number[];
  /** The ids of every callback query answered. */
  answeredQueries: string[];
  close(): Promise<void>;
}

interface Update {
  update_id: number;
  callback_query?: unknown;
  message?: unknown;
}

/** The update's kind, as allowed_updates names it. */
const kindOf = (update: Update) => Object.keys(update).find((k) => k !== 'update_id')!;

export async function startFakeTelegram(opts: { chatIds?: string[] } = {}): Promise<FakeTelegram> {
  const token = `123456:${randomBytes(12).toString('base64url')}`;
  const chatIds = opts.chatIds ?? ['-1001000000001'];
  const messages: FakeTelegramMessage[] = [];
  const updates: Update[] = [];
  const waiting = new Set<() => void>();
  const answers = new Map<string, (text: string) => void>();
  let nextUpdate = 1;
  let nextMessage = 1;
  let webhook: { url: string; secret_token?: string; allowed_updates?: string[] } | null = null;
  /** What the last getUpdates or setWebhook asked for; Telegram keeps it until it is asked again. */
  let allowed: string[] | undefined;
  const deliveries: number[] = [];
  let lastDelivered: Update | undefined;
  /** Posts an update to the webhook as Telegram does: JSON, with the secret token it was given. */
  const postToWebhook = async (update: Update) => {
    lastDelivered = update;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (webhook!.secret_token) headers['x-telegram-bot-api-secret-token'] = webhook!.secret_token;
    const res = await fetch(webhook!.url, { method: 'POST', headers, body: JSON.stringify(update) });
    await res.arrayBuffer();
    deliveries.push(res.status);
    return res.status;
  };
  const answeredQueries: string[] = [];
  const bot = { id: 123456, is_bot: true, first_name: 'Warden', username: 'warden_bot' };

  const buttonsOf = (markup: unknown) =>
    ((markup as { inline_keyboard?: Array<Array<{ text: string; callback_data: string }>> } | undefined)?.inline_keyboard ?? []).flat();
  const messageObject = (m: FakeTelegramMessage) => ({
    message_id: m.message_id,
    date: Math.floor(Date.now() / 1000),
    chat: { id: Number(m.chat_id), type: 'supergroup', title: 'approvals' },
    from: bot,
    text: m.text,
    reply_markup: { inline_keyboard: m.buttons.length ? [m.buttons] : [] },
  });

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ok = (result: unknown) => (
        res.writeHead(200, { 'content-type': 'application/json' }),
        res.end(JSON.stringify({ ok: true, result }))
      );
      const fail = (code: number, description: string) => (
        res.writeHead(code, { 'content-type': 'application/json' }),
        res.end(JSON.stringify({ ok: false, error_code: code, description }))
      );
      const match = /^\/bot([^/]+)\/(\w+)$/.exec(new URL(req.url ?? '/', 'http://fake').pathname);
      if (!match) return fail(404, 'Not Found');
      if (match[1] !== token) return fail(401, 'Unauthorized');
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = (raw ? JSON.parse(raw) : {}) as Record<string, unknown>;
      switch (match[2]) {
        case 'getMe':
          return ok({ ...bot, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false });
        case 'setWebhook': {
          const secret = body.secret_token === undefined ? undefined : String(body.secret_token);
          if (secret !== undefined && !/^[A-Za-z0-9_-]{1,256}$/.test(secret))
            return fail(400, 'Bad Request: secret token contains unallowed characters');
          webhook = { url: String(body.url), secret_token: secret, allowed_updates: body.allowed_updates as string[] | undefined };
          if (body.allowed_updates) allowed = body.allowed_updates as string[];
          return ok(true);
        }
        case 'deleteWebhook':
          webhook = null;
          return ok(true);
        case 'getUpdates': {
          if (webhook)
            return fail(
              409,
              "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
            );
          const offset = Number(body.offset ?? 0);
          if (body.allowed_updates) allowed = body.allowed_updates as string[];
          while (updates.length && updates[0]!.update_id < offset) updates.shift();
          if (updates.length || !body.timeout) return ok(updates.slice(0, Number(body.limit ?? 100)));
          const timer = setTimeout(() => release(), Number(body.timeout) * 1000);
          const release = () => {
            clearTimeout(timer);
            waiting.delete(release);
            if (!res.writableEnded) ok(updates.slice(0, Number(body.limit ?? 100)));
          };
          waiting.add(release);
          req.socket.once('close', () => (clearTimeout(timer), waiting.delete(release)));
          return;
        }
        case 'sendMessage': {
          const chat = String(body.chat_id);
          if (!chatIds.includes(chat)) return fail(400, 'Bad Request: chat not found');
          const m: FakeTelegramMessage = {
            message_id: nextMessage++,
            chat_id: chat,
            text: String(body.text),
            buttons: buttonsOf(body.reply_markup),
            versions: [String(body.text)],
            reply_to: (body.reply_parameters as { message_id?: number } | undefined)?.message_id ?? null,
            parse_mode: body.parse_mode === undefined ? null : String(body.parse_mode),
          };
          messages.push(m);
          return ok(messageObject(m));
        }
        case 'editMessageText': {
          const m = messages.find((x) => x.chat_id === String(body.chat_id) && x.message_id === Number(body.message_id));
          if (!m) return fail(400, 'Bad Request: message to edit not found');
          m.text = String(body.text);
          m.buttons = buttonsOf(body.reply_markup);
          m.versions.push(m.text);
          return ok(messageObject(m));
        }
        case 'answerCallbackQuery':
          answeredQueries.push(String(body.callback_query_id));
          answers.get(String(body.callback_query_id))?.(String(body.text ?? ''));
          return ok(true);
        default:
          return fail(404, `Not Found: method ${match[2]}`);
      }
    });
  });
  /** To the webhook, or into the queue getUpdates reads; an update of a kind the bot did not ask for is dropped, as Telegram does. */
  function deliver(update: Update) {
    if (allowed && !allowed.includes(kindOf(update))) return;
    if (webhook) {
      void postToWebhook(update);
    } else {
      updates.push(update);
      for (const release of [...waiting]) release();
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiRoot: origin,
    token,
    chatIds,
    messagesIn: (chatId) => messages.filter((m) => m.chat_id === chatId),
    press(userId, message, data) {
      const id = randomBytes(8).toString('hex');
      const answered = new Promise<string>((resolve) => answers.set(id, resolve));
      const update: Update = {
        update_id: nextUpdate++,
        callback_query: {
          id,
          from: { id: userId, is_bot: false, first_name: `user${userId}` },
          message: messageObject(message),
          chat_instance: '1',
          data,
        },
      };
      deliver(update);
      return answered;
    },
    write(userId, chatId, text, opts = {}) {
      const message_id = nextMessage++;
      const from = { id: userId, is_bot: opts.bot ?? false, first_name: `user${userId}` };
      const chat =
        Number(chatId) < 0
          ? { id: Number(chatId), type: 'supergroup', title: 'room' }
          : { id: Number(chatId), type: 'private', first_name: from.first_name };
      deliver({ update_id: nextUpdate++, message: { message_id, date: Math.floor(Date.now() / 1000), chat, from, text } });
      return message_id;
    },
    webhook: () => webhook,
    redeliverLast: () => postToWebhook(lastDelivered!),
    deliveries,
    answeredQueries,
    async close() {
      for (const release of [...waiting]) release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
