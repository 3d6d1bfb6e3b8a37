/**
 * What every chat channel implements (one folder per platform under channels/): connect, post and
 * edit approval cards in its rooms, and hand button clicks to the channel service. The adapter
 * knows its platform; what a click means, and who may make it, is the service's.
 */
import type { ApprovalCard } from './card.js';

export interface ChannelAdapter {
  /** The channel's name in /api/channels and in pairings' platform user ids (`<name>:<user id>`). */
  readonly name: string;
  /** The rooms (channel ids, chats) its cards go to. */
  readonly rooms: readonly string[];
  /** Connects and resolves once clicks can arrive; rejects when it cannot (the service retries). */
  connect(onClick: (click: ButtonClick) => Promise<void>, onLost: (error: Error) => void): Promise<void>;
  disconnect(): Promise<void>;
  /** Whether it is connected now (a platform library may be reconnecting on its own). */
  isConnected(): boolean;
  /** Posts a card; answers the message's id. */
  postCard(room: string, card: ApprovalCard): Promise<string>;
  editCard(room: string, messageId: string, card: ApprovalCard): Promise<void>;
  /**
   * In a platform's HTTP mode: a request the platform posted to the API's route for this channel.
   * Anyone can reach that route (no Warden key), so the adapter refuses, with a 401 WardenError,
   * whatever the platform did not sign or authenticate, before reading anything else from it.
   */
  receive?(request: Request): Promise<Response>;
}

/**
 * A button click as the platform delivered it. The adapter answers the platform through one of
 * `ignore` or `defer` at once, within the platform's window, before anything slow happens.
 */
export interface ButtonClick {
  /** `<channel>:<user id>`, from the platform's event, never from the button. */
  platform_user: string;
  /** The button's data as the platform delivered it: untrusted. */
  data: string;
  /** Acknowledges without a word: the clicker sees nothing (strangers learn nothing). */
  ignore(): Promise<void>;
  /** Acknowledges, promising a private answer. */
  defer(): Promise<void>;
  /** The private answer, after `defer`. */
  answer(text: string): Promise<void>;
}
