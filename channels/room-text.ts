/** Plain text for a room message: escaped for its platform and cut to fit, with a note saying how much was left out. */
import type { PlainMessage } from './adapter.js';

export function fitText(message: PlainMessage, max: number, escape: (text: string) => string): string {
  const whole = escape(message.text);
  if (whole.length <= max) return whole;
  const chars = [...message.text];
  const withNote = (kept: number) => `${escape(chars.slice(0, kept).join(''))}\n${escape(message.cutNote(chars.length - kept))}`;
  // Escaping a longer start never gives shorter text: the longest start that fits is found by halving.
  let low = 0;
  let high = chars.length;
  while (low < high) {
    const mid = Math.ceil((low + high) / 2);
    if (withNote(mid).length <= max) low = mid;
    else high = mid - 1;
  }
  return withNote(low);
}
