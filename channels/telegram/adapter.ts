/**
 * Telegram through grammY, by long polling: the bot posts cards to its chats and edits them, and
 * a button press arrives as a callback query. The clicker is the query's `from`, as Telegram says.
 * The verdict is the query's answer, shown to the clicker alone.
 */
import { Bot, type Context } from 'grammy';
import type { ButtonClick, ChannelAdapter } from '../adapter.js';
import type { ApprovalCard } from '../card.js';
import { telegramCardMessage } from './card.js';

export interface TelegramSettings {
  /** The bot token, read when connecting (from the vault); undefined when the secret is missing. */
  token: () => Promise<string | undefined>;
  /** The ids of the chats cards go to. */
  chatIds: string[];
  /** The Bot API's root (Telegram's own when unset). */
  apiRoot?: string;
  /** How long the first calls may take before the connection counts as failed. */
  readyTimeoutMs?: number;
}

export function telegramAdapter(settings: TelegramSettings): ChannelAdapter {
  let bot: Bot | undefined;
  let polling = false;

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
    async connect(onClick, onLost) {
      const token = await settings.token();
      if (!token) throw new Error('no bot token: the vault has no secret of the configured name');
      const current = new Bot(token, settings.apiRoot ? { client: { apiRoot: settings.apiRoot } } : {});
      bot = current;
      // Not awaited: a slow decision must not hold the next update back.
      current.on('callback_query:data', (ctx) => void onClick(clickOf(ctx)));
      current.catch((err) => onLost(err.error instanceof Error ? err.error : new Error(String(err.error))));
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error('the Telegram Bot API did not answer in time'));
          void current.stop().catch(() => undefined);
        }, settings.readyTimeoutMs ?? 30_000);
        current.start({ allowed_updates: ['callback_query'], onStart: () => (clearTimeout(timer), (polling = true), resolve()) }).then(
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
      if (current?.isRunning()) await current.stop().catch(() => undefined);
    },
    isConnected: () => polling && bot?.isRunning() === true,
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
  };
}
