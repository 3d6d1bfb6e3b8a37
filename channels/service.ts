/**
 * The channel service, in the API process: it keeps one card per pending action in every room of
 * every connected channel, edits each card as its action moves on, and turns a paired person's
 * click into a decision through the API's own decideAction (the same grant, checks and audit as
 * POST /api/actions/{id}/approve).
 *
 * In a room that talks to an agent, a paired person's message goes to their conversation with it
 * through the API's own conversation service (the same role, owner rules, grants and budgets as
 * POST /api/conversations and /messages); the turn runs in the background, its answer is posted in
 * the room once it ends, and its actions' cards are posted there as well as in the card rooms.
 *
 * Where cards come from: Temporal visibility's list of pending actions, read every poll interval,
 * as GET /api/actions/pending reads it. It is durable on both sides: the pending actions live in
 * their workflows, the posted cards in channels.db. A restarted API (or a channel that comes back)
 * posts the cards it missed, edits the ones still open and closes those of actions decided
 * meanwhile; nothing has to reach the API process while it is down.
 */
import type { Logger } from 'pino';
import type { ActionRecord } from '../domain/action.js';
import { WardenError } from '../domain/errors.js';
import { hasRole, type Identity } from '../domain/roles.js';
import type { ActionService } from '../api/actions/service.js';
import { DEFAULT_MAX_STEPS, type ConversationService } from '../api/conversations/service.js';
import type { Turn } from '../domain/conversation.js';
import type { CardRecord, ChannelStore, RoomConversation } from '../stores/channel-store.js';
import type { ButtonClick, ChannelAdapter, RoomConversations, RoomMessage } from './adapter.js';
import { approvalCard, cardDigest, parseButtonData, type CardLimits } from './card.js';

export interface ChannelStatus {
  name: string;
  enabled: boolean;
  connected: boolean;
  rooms: string[];
  /** When the channel last connected, posted, edited or took a click. */
  last_event_at: string | null;
  /** Why it is not connected (it is retried with backoff). */
  error: string | null;
}

export interface ChannelServiceOptions {
  adapters: Array<{ adapter: ChannelAdapter; limits: CardLimits }>;
  store: ChannelStore;
  /** The identity behind a key id while the key is not revoked. */
  identityOf: (keyId: string) => Promise<Identity | null>;
  actions: Pick<ActionService, 'pendingActions' | 'getAction' | 'decideAction' | 'temporalReachable'>;
  /** The conversations people hold in rooms that talk to an agent. */
  conversations: Pick<ConversationService, 'createConversation' | 'getConversation' | 'sendMessage' | 'stop'>;
  logger: Pick<Logger, 'info' | 'warn'>;
  pollMs: number;
}

/** The most pending actions a channel shows cards for (visibility lists the newest first). */
const MAX_PENDING_CARDS = 1_000;
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 60_000;
/** What ends a person's conversation in a room: Slack keeps words starting with `/` for its own commands, hence `!end`; Telegram may add `@<bot>`. */
const END_COMMAND = /^[/!]end(@\w+)?$/i;

export function createChannelService(options: ChannelServiceOptions) {
  const { store, actions, conversations, logger } = options;
  const channels = options.adapters.map(({ adapter, limits }) => ({
    adapter,
    limits,
    connected: false,
    last_event_at: null as string | null,
    error: null as string | null,
    retryMs: RETRY_FIRST_MS,
    retry: undefined as NodeJS.Timeout | undefined,
  }));
  type Channel = (typeof channels)[number];
  let stopped = false;
  let poll: NodeJS.Timeout | undefined;
  // One sync at a time: two would post the same card twice.
  let syncing: Promise<unknown> = Promise.resolve();
  const serially = <T>(work: () => Promise<T>): Promise<T> => {
    const next = syncing.then(work);
    syncing = next.catch(() => undefined);
    return next;
  };
  /** Per person and room, the message being handled: the next one waits for it. */
  const inRoom = new Map<string, Promise<unknown>>();
  const touched = (channel: Channel) => (channel.last_event_at = new Date().toISOString());

  function connect(channel: Channel) {
    channel.retry = undefined;
    if (stopped) return;
    channel.adapter
      .connect(
        (click) =>
          handleClick(channel, click).catch((err: Error) =>
            logger.warn({ channel: channel.adapter.name, error: err.message }, 'a click could not be answered'),
          ),
        (error) => lost(channel, error),
        (message) =>
          handleMessage(channel, message).catch((err: Error) =>
            logger.warn({ channel: channel.adapter.name, error: err.message }, 'a room message could not be answered'),
          ),
      )
      .then(() => {
        // Stopped while connecting: the connection made meanwhile is closed, not kept.
        if (stopped) return void channel.adapter.disconnect().catch(() => undefined);
        channel.connected = true;
        channel.error = null;
        channel.retryMs = RETRY_FIRST_MS;
        touched(channel);
        logger.info({ channel: channel.adapter.name }, 'channel connected');
        // Cards of still-pending actions are refreshed, those of decided ones closed, missing ones posted.
        void serially(() => sync([channel])).catch((err) => failed(channel, err));
      })
      .catch((err: Error) => lost(channel, err));
  }

  function lost(channel: Channel, error: Error) {
    channel.connected = false;
    channel.error = error.message;
    if (stopped || channel.retry) return;
    logger.warn({ channel: channel.adapter.name, error: error.message, retry_ms: channel.retryMs }, 'channel not connected; retrying');
    void channel.adapter.disconnect().catch(() => undefined);
    channel.retry = setTimeout(() => connect(channel), channel.retryMs);
    channel.retryMs = Math.min(channel.retryMs * 2, RETRY_MAX_MS);
  }

  function failed(channel: Channel, err: unknown) {
    logger.warn({ channel: channel.adapter.name, error: (err as Error).message }, 'channel sync failed; the next poll tries again');
  }

  /**
   * Posts the cards missing in these channels' rooms, edits the open ones that changed and closes
   * those of final actions. Each action is read once, whatever the number of channels showing it:
   * a read is a query the worker answers.
   */
  async function sync(targets: Channel[]) {
    const live = targets.filter((c) => c.connected);
    if (live.length === 0) return;
    const pending = (await actions.pendingActions(MAX_PENDING_CARDS)).map((a) => a.id);
    // Per action, the channels that show it: those where it is pending, or where its card is open.
    const shownOn = new Map<string, Channel[]>();
    for (const channel of live) {
      for (const id of new Set([...pending, ...store.openCards(channel.adapter.name).map((c) => c.action_id)]))
        shownOn.set(id, [...(shownOn.get(id) ?? []), channel]);
    }
    // A channel that failed is left until the next poll, as one warning, not one per action.
    const failing = new Set<Channel>();
    for (const [id, on] of shownOn) {
      const still = on.filter((c) => !failing.has(c));
      if (still.length) await showAction(id, still, failing);
    }
    for (const channel of live) {
      if (!failing.has(channel)) await postAnswers(channel).catch((err) => failed(channel, err));
    }
  }

  /** Brings every card of one action up to date on these channels: posts, edits or closes. */
  async function showAction(id: string, targets: Channel[], failing = new Set<Channel>()) {
    const action = await actions.getAction(id).catch((err) => {
      // Its workflow is gone (past the namespace's retention): its cards would be asked about at every poll, for ever.
      if (err instanceof WardenError && err.code === 'not_found') store.closeCards(id);
      return null;
    });
    if (!action) return;
    const cards = store.cardsOf(id);
    for (const channel of targets) {
      const here = cards.filter((c) => c.channel === channel.adapter.name);
      await showOn(channel, action, here).catch((err) => {
        failed(channel, err);
        failing.add(channel);
      });
    }
  }

  /** One channel's cards of the action (`here`: those it posted), each posted, edited or closed. */
  async function showOn(channel: Channel, action: ActionRecord, here: CardRecord[]) {
    const card = approvalCard(action, channel.limits);
    const shown = cardDigest(card);
    const cards = new Map(here.map((c) => [c.room, c]));
    // A conversation's actions show in the rooms it talks in too, where its owner waits for them.
    const talking = action.origin ? store.roomsOfConversation(channel.adapter.name, action.origin.conversation_id) : [];
    for (const room of new Set([...channel.adapter.rooms, ...talking, ...cards.keys()])) {
      const existing = cards.get(room);
      if (existing?.closed || existing?.shown === shown) continue;
      if (!existing) {
        // A card for an action that is already final is not worth a new message.
        if (card.final) continue;
        const messageId = await channel.adapter.postCard(room, card);
        store.saveCard({ action_id: action.id, channel: channel.adapter.name, room, message_id: messageId, shown, closed: false });
      } else {
        await channel.adapter.editCard(room, existing.message_id, card);
        store.saveCard({ ...existing, shown, closed: card.final });
      }
      touched(channel);
    }
  }

  /** Every connected channel's cards of this action, now (after a click decided it). */
  function refreshAction(id: string) {
    return serially(async () => {
      const connected = channels.filter((c) => c.connected);
      await showAction(id, connected);
    });
  }

  async function handleClick(channel: Channel, click: ButtonClick): Promise<void> {
    touched(channel);
    const choice = parseButtonData(click.data);
    const keyId = store.pairedKey(click.platform_user);
    const identity = keyId ? await options.identityOf(keyId) : null;
    if (!identity) {
      // A stranger, a revoked pairing or a revoked key: acknowledged without a word.
      await click.ignore();
      logger.info({ channel: channel.adapter.name }, 'a click from a user without a live pairing was dropped');
      return;
    }
    await click.defer();
    if (!choice) return click.answer('That button is not one of Warden’s approval buttons; nothing was done.');
    if (!hasRole(identity.role, 'approver')) {
      return click.answer(
        `Not allowed: your key ${identity.name} has the ${identity.role} role; deciding an action needs approver. Nothing was done.`,
      );
    }
    const { action_id: id, approved } = choice;
    // With Temporal down nothing can be recorded, not even the signal: the clicker hears so now,
    // within every platform's window, and the card stays as it was.
    if (!(await actions.temporalReachable())) {
      return click.answer(
        `Not delivered: Warden cannot reach its Temporal server right now, so your ${approved ? 'approval' : 'rejection'} of ${id} was not recorded and the card is unchanged. Try the button again in a minute.`,
      );
    }
    let text: string;
    try {
      const params_hash = await wholeHash(id, choice.params_hash);
      const verdict = await actions.decideAction(
        id,
        identity,
        { approved, params_hash, comment: `via ${channel.adapter.name}` },
        { signalWhenUnanswered: true },
      );
      text = verdict.sent
        ? `Sent: Warden’s worker is not answering right now; your ${approved ? 'approval' : 'rejection'} of ${id} will be checked and applied when it is back, and the card will show it.`
        : verdict.status === 'pending'
          ? `Your approval of ${id} is recorded; it needs another person’s approval too.`
          : approved
            ? `Approved: ${id} is ${verdict.status}.`
            : `Rejected: ${id} will not run.`;
    } catch (err) {
      text = await refusal(id, err);
    }
    await click.answer(text);
    await refreshAction(id);
  }

  /**
   * A message in a room. Whoever is not paired, in a room that talks to no agent, is dropped without
   * a word; a paired person below operator is told why not; anyone else's message starts a turn of
   * their conversation with the room's agent (started first when they have none open), unless one
   * still runs. The turn runs in the workflow: its answer is posted by the next poll once it ends.
   */
  async function handleMessage(channel: Channel, message: RoomMessage): Promise<void> {
    const rooms = channel.adapter.conversations;
    const agentId = rooms && Object.hasOwn(rooms.agents, message.room) ? rooms.agents[message.room] : undefined;
    if (!rooms || !agentId) return;
    touched(channel);
    const keyId = store.pairedKey(message.platform_user);
    const identity = keyId ? await options.identityOf(keyId) : null;
    if (!identity) {
      logger.info({ channel: channel.adapter.name }, 'a room message from a user without a live pairing was dropped');
      return;
    }
    const reply = (text: string) =>
      rooms.postMessage(message.room, {
        text,
        replyTo: message.message_id,
        cutNote: (missing) => `[${missing} more characters not shown]`,
      });
    if (!hasRole(identity.role, 'operator')) {
      await reply(
        `Not allowed: your key ${identity.name} has the ${identity.role} role; talking with an agent needs operator. Nothing was sent.`,
      );
      return;
    }
    // One message at a time per person and room: two sent at once never start two conversations.
    const key = `${channel.adapter.name}\n${message.room}\n${identity.key_id}`;
    const previous = inRoom.get(key) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => converse(channel.adapter.name, rooms, agentId, message, identity, reply));
    inRoom.set(key, next);
    await next.finally(() => inRoom.get(key) === next && inRoom.delete(key));
  }

  async function converse(
    name: string,
    rooms: RoomConversations,
    agentId: string,
    message: RoomMessage,
    identity: Identity,
    reply: (text: string) => Promise<string>,
  ): Promise<void> {
    const text = message.text.trim();
    const link = store.roomConversation(name, message.room, identity.key_id);
    if (END_COMMAND.test(text)) {
      if (!link) return void (await reply('No conversation is open here; write a message to start one.'));
      await conversations.stop(link.conversation_id, 'end', identity).catch((err: unknown) => {
        if (!(err instanceof WardenError && (err.code === 'conversation_ended' || err.code === 'not_found'))) throw err;
      });
      store.endRoomConversation(name, message.room, identity.key_id);
      return void (await reply(`Conversation ${link.conversation_id} ended. Your next message here starts a new one.`));
    }
    if (!text) return;
    if (link?.awaiting_turn != null) return void (await reply(stillWorking(link.conversation_id)));
    let conversationId = link?.agent_id === agentId ? link.conversation_id : null;
    try {
      for (;;) {
        const continuing = conversationId !== null;
        conversationId ??= (await conversations.createConversation({ agent_id: agentId, max_steps: DEFAULT_MAX_STEPS }, identity)).id;
        try {
          const { turn } = await conversations.sendMessage(conversationId, text, identity, 0);
          const started: RoomConversation = {
            channel: name,
            room: message.room,
            key_id: identity.key_id,
            conversation_id: conversationId,
            agent_id: agentId,
            awaiting_turn: turn,
            reply_to: message.message_id,
          };
          store.saveRoomConversation(started);
          return;
        } catch (err) {
          // Ended meanwhile (through the API, or its owner's key changed): the message starts another.
          const gone = err instanceof WardenError && (err.code === 'conversation_ended' || err.code === 'not_found');
          if (!(continuing && gone)) throw err;
          conversationId = null;
        }
      }
    } catch (err) {
      if (err instanceof WardenError && err.code === 'conversation_busy' && conversationId)
        return void (await reply(stillWorking(conversationId)));
      await reply(
        err instanceof WardenError
          ? `Not sent: ${err.message}`
          : `Warden could not take your message (${(err as Error).message}); try again.`,
      );
    }
  }

  const stillWorking = (conversationId: string) =>
    `Still working on the last message (conversation ${conversationId}): its answer comes here when it is done. Send /end to end the conversation.`;

  /** Posts, in each room that waits for one, the answer of a turn that has ended. */
  async function postAnswers(channel: Channel) {
    const rooms = channel.adapter.conversations;
    if (!rooms) return;
    for (const link of store.awaitedTurns(channel.adapter.name)) {
      const owner = await options.identityOf(link.key_id);
      // Its owner's key was revoked: nothing more is read or posted for it.
      if (!owner) {
        store.turnAnswered(link);
        continue;
      }
      const conversation = await conversations.getConversation(link.conversation_id, owner).catch((err: unknown) => {
        if (err instanceof WardenError && err.code === 'not_found') return null;
        throw err;
      });
      const turn = conversation?.turns.find((t) => t.turn === link.awaiting_turn);
      if (conversation && !turn?.ended_at) continue;
      if (turn) {
        await rooms.postMessage(link.room, {
          text: answerText(turn),
          replyTo: link.reply_to,
          cutNote: (missing) =>
            `[${missing} more characters not shown: read the whole answer with \`warden chat\`, or GET /api/conversations/${link.conversation_id}]`,
        });
        touched(channel);
      }
      store.turnAnswered(link);
    }
  }

  /**
   * The params hash a button stands for: a button that carries only the hash's first digits binds
   * to the action's hash when it starts with them (128 bits), else to what it carries, which the
   * workflow refuses as not matching.
   */
  async function wholeHash(id: string, carried: string): Promise<string> {
    if (carried.length === 64) return carried;
    const { params_hash } = await actions.getAction(id);
    return params_hash.startsWith(carried) ? params_hash : carried;
  }

  /** What the clicker is told when the decision was not taken: already decided, expired, or why not. */
  async function refusal(id: string, err: unknown): Promise<string> {
    if (!(err instanceof WardenError)) return `Warden could not record your decision (${(err as Error).message}); try again.`;
    if (err.code !== 'approval_refused') return `Not done: ${err.message}`;
    const action = await actions.getAction(id).catch(() => null);
    if (action && action.status !== 'pending') {
      if (action.status === 'expired') return `Expired: ${id} was not decided in time; nothing was done.`;
      const by = action.approvals.map((a) => `${a.approved ? 'approved' : 'rejected'} by ${a.approver.name}`).join(', ');
      return `Already decided: ${id} is ${action.status}${by ? ` (${by})` : ''}. Your click changed nothing.`;
    }
    return `Not allowed: ${err.message}. Nothing was done.`;
  }

  return {
    start() {
      for (const channel of channels) connect(channel);
      if (channels.length) {
        // Only the channels connected now: one whose library is reconnecting is synced when it is back.
        poll = setInterval(
          () => void serially(() => sync(channels.filter((c) => c.adapter.isConnected()))).catch(() => undefined),
          options.pollMs,
        );
        poll.unref();
      }
    },
    async stop() {
      stopped = true;
      clearInterval(poll);
      for (const channel of channels) clearTimeout(channel.retry);
      await syncing;
      await Promise.allSettled(channels.map((c) => c.adapter.disconnect()));
      for (const channel of channels) channel.connected = false;
    },
    /**
     * A request a platform posted to its channel's route (its HTTP mode), or null when no channel of
     * that name takes requests. A refused one is logged, never its content.
     */
    async receive(name: string, request: Request): Promise<Response | null> {
      const adapter = channels.find((c) => c.adapter.name === name)?.adapter;
      if (!adapter?.receive) return null;
      try {
        return await adapter.receive(request);
      } catch (err) {
        if (err instanceof WardenError && err.status === 401)
          logger.warn({ channel: name, reason: err.message }, 'a channel request was refused');
        throw err;
      }
    },
    status(): ChannelStatus[] {
      return channels.map((c) => ({
        name: c.adapter.name,
        enabled: true,
        connected: c.connected && c.adapter.isConnected(),
        rooms: [...c.adapter.rooms],
        last_event_at: c.last_event_at,
        error: c.error,
      }));
    },
  };
}

export type ChannelService = ReturnType<typeof createChannelService>;

/** What a room is told when a turn ends: the model's answer, or why there is none. */
function answerText(turn: Turn): string {
  if (turn.status === 'answered') return turn.reply || '(the model answered with no text)';
  return `No answer (${turn.status.replace('_', ' ')}): ${turn.error ?? 'the turn ended without one'}`;
}
