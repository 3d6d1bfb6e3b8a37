/**
 * An approval card as a Telegram message: HTML (every value escaped, the parameters in a <pre>
 * block) with an inline keyboard of Approve and Reject while the action awaits a decision. The
 * buttons carry the first 32 hex digits of the params hash: callback_data holds 64 bytes.
 */
import type { InlineKeyboardMarkup } from 'grammy/types';
import type { ApprovalCard, CardLimits } from '../card.js';

/** Telegram counts a message's 4096 characters after its HTML is parsed: escaping costs nothing. */
export const TELEGRAM_LIMITS: CardLimits = { parameters: 2500, output: 800, hashDigits: 32 };

export const escapeHtml = (text: string): string => text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

export function telegramCardMessage(card: ApprovalCard): { text: string; reply_markup: InlineKeyboardMarkup } {
  const text = [
    `<b>${escapeHtml(card.title)}</b>`,
    escapeHtml(card.state),
    '',
    ...card.facts.map(([label, value]) => `${escapeHtml(label)}: ${escapeHtml(value)}`),
    '',
    'Parameters:',
    `<pre>${escapeHtml(card.parameters)}</pre>`,
    ...(card.parameters_note ? [`<i>${escapeHtml(card.parameters_note)}</i>`] : []),
    ...(card.output ? ['Output:', `<pre>${escapeHtml(card.output)}</pre>`] : []),
  ].join('\n');
  const inline_keyboard = card.buttons
    ? [
        [
          { text: 'Approve', callback_data: card.buttons.approve },
          { text: 'Reject', callback_data: card.buttons.reject },
        ],
      ]
    : [];
  return { text, reply_markup: { inline_keyboard } };
}
