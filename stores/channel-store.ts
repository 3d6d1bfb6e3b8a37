/**
 * The chat channels' own state, in SQLite under the data dir (channels.db): which platform user
 * acts as which API key (pairings), which message on which channel shows which action (cards),
 * so a restarted API edits the cards it posted instead of losing them, and which conversation each
 * person has with a room's agent (room conversations), so a restarted API carries them on.
 */
import Database from 'better-sqlite3';
import { openSqliteDatabase } from './sqlite-database.js';

/** A platform user linked by an admin to an API key: its role and person are the key's. */
export interface Pairing {
  /** `<platform>:<user id on that platform>`, e.g. `discord:80351110224678912`. */
  platform_user: string;
  key_id: string;
  paired_at: string;
  paired_by: string;
  /** When the key's holder, with that key, confirmed the link as theirs; until then it does nothing. */
  confirmed_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
}

/** One message showing one action on one channel's room. */
export interface CardRecord {
  action_id: string;
  channel: string;
  room: string;
  message_id: string;
  /** What the card last showed (a digest of its content): edited only when it changes. */
  shown: string;
  /** Closed once it shows the action's final state: nothing edits it again. */
  closed: boolean;
}

/** A person's conversation with the agent of a chat room: their messages there continue it. */
export interface RoomConversation {
  channel: string;
  room: string;
  /** The paired key that owns the conversation. */
  key_id: string;
  conversation_id: string;
  agent_id: string;
  /** The turn whose answer the room still waits for, or null when none runs. */
  awaiting_turn: number | null;
  /** The message that started that turn: the answer replies to it. */
  reply_to: string | null;
}

const PAIRING_COLUMNS = 'platform_user, key_id, paired_at, paired_by, confirmed_at, revoked_at, revoked_by';

export class ChannelStore {
  private constructor(private readonly db: Database.Database) {}

  static open(path: string): ChannelStore {
    const db = openSqliteDatabase(
      path,
      `CREATE TABLE IF NOT EXISTS pairings (
      platform_user TEXT PRIMARY KEY,
      key_id TEXT NOT NULL,
      paired_at TEXT NOT NULL,
      paired_by TEXT NOT NULL,
      confirmed_at TEXT,
      revoked_at TEXT,
      revoked_by TEXT
    );
    CREATE TABLE IF NOT EXISTS cards (
      action_id TEXT NOT NULL,
      channel TEXT NOT NULL,
      room TEXT NOT NULL,
      message_id TEXT NOT NULL,
      shown TEXT NOT NULL,
      closed INTEGER NOT NULL DEFAULT 0,
      PRIMARY KEY (action_id, channel, room)
    );
    CREATE INDEX IF NOT EXISTS cards_open ON cards (closed, channel);
    CREATE TABLE IF NOT EXISTS room_conversations (
      channel TEXT NOT NULL,
      room TEXT NOT NULL,
      key_id TEXT NOT NULL,
      conversation_id TEXT NOT NULL,
      agent_id TEXT NOT NULL,
      awaiting_turn INTEGER,
      reply_to TEXT,
      PRIMARY KEY (channel, room, key_id)
    );`,
    );
    return new ChannelStore(db);
  }

  close(): void {
    this.db.close();
  }

  /**
   * Links a platform user to a key. A user already paired (and not revoked) is not paired again:
   * the admin revokes first, so a link never changes hands silently. Returns null when refused.
   */
  pair(platformUser: string, keyId: string, by: string): Pairing | null {
    const now = new Date().toISOString();
    const changed = this.db
      .prepare(
        `INSERT INTO pairings (platform_user, key_id, paired_at, paired_by) VALUES (?, ?, ?, ?)
         ON CONFLICT (platform_user) DO UPDATE SET key_id = excluded.key_id, paired_at = excluded.paired_at,
           paired_by = excluded.paired_by, confirmed_at = NULL, revoked_at = NULL, revoked_by = NULL
         WHERE pairings.revoked_at IS NOT NULL`,
      )
      .run(platformUser, keyId, now, by).changes;
    return changed ? this.pairing(platformUser) : null;
  }

  /** Confirms a live pairing to this key; false when there is none to confirm. */
  confirm(platformUser: string, keyId: string): boolean {
    return (
      this.db
        .prepare(
          'UPDATE pairings SET confirmed_at = ? WHERE platform_user = ? AND key_id = ? AND revoked_at IS NULL AND confirmed_at IS NULL',
        )
        .run(new Date().toISOString(), platformUser, keyId).changes === 1
    );
  }

  /** Revokes a pairing; null when there is no live one. */
  unpair(platformUser: string, by: string): Pairing | null {
    const changed = this.db
      .prepare('UPDATE pairings SET revoked_at = ?, revoked_by = ? WHERE platform_user = ? AND revoked_at IS NULL')
      .run(new Date().toISOString(), by, platformUser).changes;
    return changed ? this.pairing(platformUser) : null;
  }

  pairing(platformUser: string): Pairing | null {
    return (this.db.prepare(`SELECT ${PAIRING_COLUMNS} FROM pairings WHERE platform_user = ?`).get(platformUser) as Pairing) ?? null;
  }

  /** The key a live pairing links this platform user to, or null (unknown, unconfirmed or revoked). */
  pairedKey(platformUser: string): string | null {
    const row = this.db
      .prepare('SELECT key_id FROM pairings WHERE platform_user = ? AND confirmed_at IS NOT NULL AND revoked_at IS NULL')
      .get(platformUser) as { key_id: string } | undefined;
    return row?.key_id ?? null;
  }

  pairings(): Pairing[] {
    return this.db.prepare(`SELECT ${PAIRING_COLUMNS} FROM pairings ORDER BY paired_at, platform_user`).all() as Pairing[];
  }

  saveCard(card: CardRecord): void {
    this.db
      .prepare(
        `INSERT INTO cards (action_id, channel, room, message_id, shown, closed) VALUES (?, ?, ?, ?, ?, ?)
         ON CONFLICT (action_id, channel, room) DO UPDATE SET message_id = excluded.message_id, shown = excluded.shown, closed = excluded.closed`,
      )
      .run(card.action_id, card.channel, card.room, card.message_id, card.shown, card.closed ? 1 : 0);
  }

  /** Closes every card of an action, as they are: nothing edits them again. */
  closeCards(actionId: string): void {
    this.db.prepare('UPDATE cards SET closed = 1 WHERE action_id = ?').run(actionId);
  }

  cardsOf(actionId: string): CardRecord[] {
    return this.cards('SELECT * FROM cards WHERE action_id = ?', actionId);
  }

  /** The cards of a channel still showing an action that was not final when last shown. */
  openCards(channel: string): CardRecord[] {
    return this.cards('SELECT * FROM cards WHERE closed = 0 AND channel = ?', channel);
  }

  roomConversation(channel: string, room: string, keyId: string): RoomConversation | null {
    return (
      (this.db
        .prepare('SELECT * FROM room_conversations WHERE channel = ? AND room = ? AND key_id = ?')
        .get(channel, room, keyId) as RoomConversation) ?? null
    );
  }

  /** Links (or re-links) a person's conversation in a room; a turn awaited there is recorded with it. */
  saveRoomConversation(link: RoomConversation): void {
    this.db
      .prepare(
        `INSERT INTO room_conversations (channel, room, key_id, conversation_id, agent_id, awaiting_turn, reply_to) VALUES (?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (channel, room, key_id) DO UPDATE SET conversation_id = excluded.conversation_id, agent_id = excluded.agent_id,
           awaiting_turn = excluded.awaiting_turn, reply_to = excluded.reply_to`,
      )
      .run(link.channel, link.room, link.key_id, link.conversation_id, link.agent_id, link.awaiting_turn, link.reply_to);
  }

  /** Unlinks a person's conversation in a room (it ended): their next message starts another. */
  endRoomConversation(channel: string, room: string, keyId: string): void {
    this.db.prepare('DELETE FROM room_conversations WHERE channel = ? AND room = ? AND key_id = ?').run(channel, room, keyId);
  }

  /** The room has its answer to this turn: nothing waits any more (unless a newer turn started meanwhile). */
  turnAnswered(link: RoomConversation): void {
    this.db
      .prepare(
        `UPDATE room_conversations SET awaiting_turn = NULL, reply_to = NULL
         WHERE channel = ? AND room = ? AND key_id = ? AND conversation_id = ? AND awaiting_turn = ?`,
      )
      .run(link.channel, link.room, link.key_id, link.conversation_id, link.awaiting_turn);
  }

  /** A channel's room conversations whose room waits for a turn's answer. */
  awaitedTurns(channel: string): RoomConversation[] {
    return this.db
      .prepare('SELECT * FROM room_conversations WHERE channel = ? AND awaiting_turn IS NOT NULL')
      .all(channel) as RoomConversation[];
  }

  /** The rooms of a channel a conversation talks in: its actions' cards go there too. */
  roomsOfConversation(channel: string, conversationId: string): string[] {
    return (
      this.db
        .prepare('SELECT DISTINCT room FROM room_conversations WHERE channel = ? AND conversation_id = ?')
        .all(channel, conversationId) as Array<{
        room: string;
      }>
    ).map((r) => r.room);
  }

  private cards(sql: string, ...args: string[]): CardRecord[] {
    return (this.db.prepare(sql).all(...args) as Array<Omit<CardRecord, 'closed'> & { closed: number }>).map((r) => ({
      ...r,
      closed: r.closed === 1,
    }));
  }
}
