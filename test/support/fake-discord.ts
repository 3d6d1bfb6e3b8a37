/**
 * A local Discord for discord.js to talk to: the REST API v10 (GET /gateway/bot, channels, message
 * create and edit, interaction callbacks, the interaction's original response) and a WebSocket
 * gateway (HELLO, IDENTIFY, READY, GUILD_CREATE, heartbeats and their ACKs, INTERACTION_CREATE
 * for a button click, and MESSAGE_CREATE for a message someone writes, sent as Discord does: only
 * to sessions that asked for GuildMessages, its content blank unless they asked for MessageContent). discord.js reaches it through `rest: { api: <origin>/api }` and the gateway
 * URL GET /gateway/bot answers. One guild with the text channels it is given.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';

const BOT_ID = '100000000000000001';
const APP_ID = '100000000000000002';
const GUILD_ID = '100000000000000003';
/** Gateway intents: message events, and the privileged one that fills in their content. */
const GUILD_MESSAGES = 1 << 9;
const MESSAGE_CONTENT = 1 << 15;

let nextSnowflake = 200000000000000000n;
const snowflake = () => String(nextSnowflake++);

export interface FakeMessage {
  id: string;
  channel_id: string;
  content: string;
  embeds: Array<{ title?: string; description?: string; fields?: Array<{ name: string; value: string }> }>;
  components: Array<{ type: number; components: Array<{ type: number; custom_id: string; label: string; style: number }> }>;
  /** Every body the message was created or edited with, in order. */
  versions: unknown[];
}

export interface Click {
  /** The interaction callback's type: 6 acknowledged silently (deferUpdate), 5 a private answer to follow. */
  acknowledged: Promise<number>;
  /** The private answer's text, once written (never, after a silent acknowledgement). */
  answer: Promise<string>;
}

export interface FakeDiscord {
  /** http://127.0.0.1:<port>/api: what discord.js's `rest.api` is given. */
  apiBase: string;
  token: string;
  channelIds: string[];
  messages: Map<string, FakeMessage>;
  /** Messages in one channel, oldest first. */
  messagesIn(channelId: string): FakeMessage[];
  /** Open gateway sessions (identified bots). */
  sessions(): number;
  /** A user clicks a button of a message: INTERACTION_CREATE with that component's custom_id. */
  click(userId: string, message: FakeMessage, customId: string): Click;
  /** Someone writes in a text channel: MESSAGE_CREATE. Answers the message's id. */
  write(userId: string, channelId: string, content: string, opts?: { bot?: boolean }): string;
  /** Refuses (true) or accepts new gateway connections and REST calls, as an outage would. */
  setDown(down: boolean): void;
  close(): Promise<void>;
}

export async function startFakeDiscord(opts: { channelIds?: string[] } = {}): Promise<FakeDiscord> {
  const token = `fake.${randomBytes(12).toString('base64url')}`;
  const channelIds = opts.channelIds ?? [snowflake()];
  const messages = new Map<string, FakeMessage>();
  /** Identified sessions, each with its own dispatch (and sequence). */
  const sockets = new Map<WebSocket, (t: string, d: unknown) => void>();
  /** The intents each identified session asked for. */
  const intents = new Map<WebSocket, number>();
  const interactions = new Map<string, { ack: (type: number) => void; answer: (text: string) => void }>();
  let down = false;
  let origin = '';

  const bot = { id: BOT_ID, username: 'warden', discriminator: '0', global_name: null, avatar: null, bot: true };
  const channelObject = (id: string) => ({
    id,
    type: 0,
    guild_id: GUILD_ID,
    name: `approvals-${id.slice(-4)}`,
    position: 0,
    permission_overwrites: [],
    nsfw: false,
    parent_id: null,
    topic: null,
    last_message_id: null,
    rate_limit_per_user: 0,
  });
  const messageObject = (m: FakeMessage) => ({
    id: m.id,
    channel_id: m.channel_id,
    guild_id: GUILD_ID,
    author: bot,
    content: m.content,
    timestamp: new Date().toISOString(),
    edited_timestamp: null,
    tts: false,
    mention_everyone: false,
    mentions: [],
    mention_roles: [],
    attachments: [],
    embeds: m.embeds,
    components: m.components,
    pinned: false,
    type: 0,
    flags: 0,
  });

  /** MESSAGE_CREATE to the sessions that asked for message events, with the content only for those allowed to read it. */
  const dispatchMessage = (message: ReturnType<typeof messageObject>) => {
    for (const [socket, dispatch] of sockets) {
      const asked = intents.get(socket) ?? 0;
      if (asked & GUILD_MESSAGES) dispatch('MESSAGE_CREATE', { ...message, content: asked & MESSAGE_CONTENT ? message.content : '' });
    }
  };

  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body?: unknown) => {
        res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
        res.end(body === undefined ? undefined : JSON.stringify(body));
      };
      if (down) return void req.socket.destroy();
      const raw = Buffer.concat(chunks).toString('utf8');
      const body = raw ? (JSON.parse(raw) as Record<string, unknown>) : {};
      const path = decodeURIComponent(new URL(req.url ?? '/', 'http://fake').pathname).replace(/^\/api\/v10/, '');
      const route = `${req.method} ${path}`;
      // Interaction callbacks and their webhooks are authorised by the interaction token in the path.
      const interaction = /^POST \/interactions\/(\d+)\/([\w.-]+)\/callback$/.exec(route);
      if (interaction) {
        interactions.get(interaction[2]!)?.ack(Number(body.type));
        return send(204);
      }
      const original = /^PATCH \/webhooks\/\d+\/([\w.-]+)\/messages\/@original$/.exec(route);
      if (original) {
        interactions.get(original[1]!)?.answer(String(body.content ?? ''));
        return send(200, {
          ...messageObject({
            id: snowflake(),
            channel_id: channelIds[0]!,
            content: String(body.content ?? ''),
            embeds: [],
            components: [],
            versions: [],
          }),
          flags: 64,
        });
      }
      if (req.headers.authorization !== `Bot ${token}`) return send(401, { message: '401: Unauthorized', code: 0 });
      if (route === 'GET /gateway/bot') {
        return send(200, {
          url: origin.replace(/^http/, 'ws'),
          shards: 1,
          session_start_limit: { total: 1000, remaining: 1000, reset_after: 0, max_concurrency: 1 },
        });
      }
      const channel = /^GET \/channels\/(\d+)$/.exec(route);
      if (channel)
        return channelIds.includes(channel[1]!)
          ? send(200, channelObject(channel[1]!))
          : send(404, { message: 'Unknown Channel', code: 10003 });
      const create = /^POST \/channels\/(\d+)\/messages$/.exec(route);
      if (create && channelIds.includes(create[1]!)) {
        const m: FakeMessage = {
          id: snowflake(),
          channel_id: create[1]!,
          content: String(body.content ?? ''),
          embeds: (body.embeds as FakeMessage['embeds']) ?? [],
          components: (body.components as FakeMessage['components']) ?? [],
          versions: [body],
        };
        messages.set(m.id, m);
        // Discord tells the bot of its own messages too: a bot that answered itself would loop.
        dispatchMessage(messageObject(m));
        return send(200, messageObject(m));
      }
      const edit = /^PATCH \/channels\/(\d+)\/messages\/(\d+)$/.exec(route);
      if (edit) {
        const m = messages.get(edit[2]!);
        if (!m || m.channel_id !== edit[1]) return send(404, { message: 'Unknown Message', code: 10008 });
        if ('content' in body) m.content = String(body.content ?? '');
        if ('embeds' in body) m.embeds = body.embeds as FakeMessage['embeds'];
        if ('components' in body) m.components = body.components as FakeMessage['components'];
        m.versions.push(body);
        return send(200, messageObject(m));
      }
      send(404, { message: `fake Discord has no route ${route}`, code: 0 });
    });
  });

  const gateway = new WebSocketServer({ server });
  gateway.on('connection', (socket) => {
    if (down) return socket.close(4000, 'down');
    let seq = 0;
    const dispatch = (t: string, d: unknown) => socket.send(JSON.stringify({ op: 0, t, s: ++seq, d }));
    socket.send(JSON.stringify({ op: 10, d: { heartbeat_interval: 41_250 } }));
    socket.on('message', (data) => {
      const { op, d } = JSON.parse(String(data)) as { op: number; d: { token?: string; intents?: number } };
      if (op === 1) return socket.send(JSON.stringify({ op: 11 }));
      if (op !== 2) return;
      if (d.token !== token && d.token !== `Bot ${token}`) return socket.close(4004, 'Authentication failed');
      sockets.set(socket, dispatch);
      intents.set(socket, Number(d.intents ?? 0));
      dispatch('READY', {
        v: 10,
        user: bot,
        guilds: [{ id: GUILD_ID, unavailable: true }],
        session_id: randomBytes(16).toString('hex'),
        resume_gateway_url: origin.replace(/^http/, 'ws'),
        shard: [0, 1],
        application: { id: APP_ID, flags: 0 },
      });
      dispatch('GUILD_CREATE', {
        id: GUILD_ID,
        name: 'Warden test guild',
        icon: null,
        owner_id: '100000000000000009',
        roles: [
          {
            id: GUILD_ID,
            name: '@everyone',
            permissions: '0',
            position: 0,
            color: 0,
            hoist: false,
            managed: false,
            mentionable: false,
            flags: 0,
          },
        ],
        emojis: [],
        stickers: [],
        features: [],
        channels: channelIds.map((id) => channelObject(id)),
        threads: [],
        members: [],
        presences: [],
        voice_states: [],
        stage_instances: [],
        guild_scheduled_events: [],
        soundboard_sounds: [],
        member_count: 2,
        large: false,
        unavailable: false,
        joined_at: new Date().toISOString(),
        preferred_locale: 'en-US',
        afk_timeout: 300,
        verification_level: 0,
        default_message_notifications: 0,
        explicit_content_filter: 0,
        mfa_level: 0,
        nsfw_level: 0,
        premium_tier: 0,
        system_channel_flags: 0,
      });
    });
    socket.on('close', () => (sockets.delete(socket), intents.delete(socket)));
  });

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    apiBase: `${origin}/api`,
    token,
    channelIds,
    messages,
    messagesIn: (channelId) => [...messages.values()].filter((m) => m.channel_id === channelId),
    sessions: () => sockets.size,
    click(userId, message, customId) {
      const interactionToken = `itoken.${randomBytes(16).toString('base64url')}`;
      let ack!: (type: number) => void;
      let answer!: (text: string) => void;
      const acknowledged = new Promise<number>((resolve) => (ack = resolve));
      const answered = new Promise<string>((resolve) => (answer = resolve));
      interactions.set(interactionToken, { ack, answer });
      const user = { id: userId, username: `user${userId.slice(-4)}`, discriminator: '0', global_name: null, avatar: null };
      const payload = {
        id: snowflake(),
        application_id: APP_ID,
        type: 3,
        token: interactionToken,
        version: 1,
        guild_id: GUILD_ID,
        channel_id: message.channel_id,
        channel: channelObject(message.channel_id),
        member: {
          user,
          roles: [],
          joined_at: new Date().toISOString(),
          deaf: false,
          mute: false,
          flags: 0,
          pending: false,
          permissions: '0',
        },
        data: { custom_id: customId, component_type: 2 },
        message: messageObject(message),
        locale: 'en-US',
        guild_locale: 'en-US',
        app_permissions: '0',
        entitlements: [],
        authorizing_integration_owners: { '0': GUILD_ID },
        context: 0,
        attachment_size_limit: 8388608,
      };
      for (const dispatch of sockets.values()) dispatch('INTERACTION_CREATE', payload);
      return { acknowledged, answer: answered };
    },
    write(userId, channelId, content, opts = {}) {
      const id = snowflake();
      const author = {
        id: userId,
        username: `user${userId.slice(-4)}`,
        discriminator: '0',
        global_name: null,
        avatar: null,
        bot: opts.bot ?? false,
      };
      const payload = {
        ...messageObject({ id, channel_id: channelId, content, embeds: [], components: [], versions: [] }),
        author,
        member: { roles: [], joined_at: new Date().toISOString(), deaf: false, mute: false, flags: 0 },
      };
      dispatchMessage(payload);
      return id;
    },
    setDown(value) {
      down = value;
      if (value) for (const socket of sockets.keys()) socket.terminate();
    },
    async close() {
      for (const socket of gateway.clients) socket.terminate();
      gateway.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
