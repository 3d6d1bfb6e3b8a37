/**
 * What every chat channel implements (one folder per platform under channels/): connect, post and
 * edit approval cards in its rooms, and hand button clicks to the channel service; optionally, hand
 * it the messages people write in rooms that talk to an agent, and post plain text there. The
 * adapter knows its platform; what a click or a message means, and who may send it, is the service's.
 */
import type { ApprovalCard } from './card.js';

export interface ChannelAdapter {
  /** The channel's name in /api/channels and in pairings' platform user ids (`<name>:<user id>`). */
  readonly name: string;
  /** The rooms (channel ids, chats) its cards go to. */
  readonly rooms: readonly string[];
  /**
   * Connects and resolves once clicks (and, with `conversations`, room messages) can arrive; rejects
   * when it cannot (the service retries). Neither handler is awaited by the platform's event loop.
   */
  connect(
    onClick: (click: ButtonClick) => Promise<void>,
    onLost: (error: Error) => void,
    onMessage?: (message: RoomMessage) => Promise<void>,
  ): Promise<void>;
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
  /** Conversations in rooms, on a platform that has them and when some room talks to an agent. */
  readonly conversations?: RoomConversations;
}

/** The rooms of a channel where people talk with agents, and the plain messages Warden posts there. */
export interface RoomConversations {
  /** Room id → the id of the agent it talks to; a room not here ignores messages. */
  readonly agents: Readonly<Record<string, string>>;
  /**
   * Posts text in a room, shown literally (escaped: nothing in it formats, links or pings), as a
   * reply to a message when given; text past the platform's limit is cut, ending with `cutNote`
   * of the characters left out. Answers the posted message's id.
   */
  postMessage(room: string, message: PlainMessage): Promise<string>;
}

export interface PlainMessage {
  text: string;
  replyTo?: string | null;
  cutNote: (missing: number) => string;
}

/** A message someone wrote in a room that talks to an agent, as the platform delivered it. */
export interface RoomMessage {
  room: string;
  /** `<channel>:<user id>`, from the platform's event, never from the text. */
  platform_user: string;
  message_id: string;
  /** Untrusted. */
  text: string;
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
