/**
 * Discord through discord.js: the bot connects to the gateway (the Guilds intent only: button
 * clicks arrive as interactions, which need no privileged intent), posts cards to its channels
 * and edits them through the REST API. The clicker is the interaction's user, as Discord says.
 * With rooms that talk to agents, it also asks for GuildMessages and the privileged MessageContent
 * intent, and hands on the messages people (never bots) write there; the writer is the message's
 * author, as Discord says.
 */
import { Client, escapeMarkdown, Events, GatewayIntentBits, MessageFlags, Status, type ButtonInteraction, type Message } from 'discord.js';
import type { ButtonClick, ChannelAdapter, PlainMessage, RoomMessage } from '../adapter.js';
import type { ApprovalCard } from '../card.js';
import { fitText } from '../room-text.js';
import { discordCardMessage } from './card.js';

/** A message's content holds 2000 characters. */
const MESSAGE_LIMIT = 2000;

export interface DiscordSettings {
  /** The bot token, read when connecting (from the vault); undefined when the secret is missing. */
  token: () => Promise<string | undefined>;
  /** The ids of the text channels cards go to. */
  channelIds: string[];
  /** Discord's REST API base (its default when unset). */
  apiBase?: string;
  /** How long the gateway may take to be ready. */
  readyTimeoutMs?: number;
  /** Text channel id → the agent people talk with there. */
  roomAgents?: Record<string, string>;
}

export function discordAdapter(settings: DiscordSettings): ChannelAdapter {
  let client: Client | undefined;

  const clickOf = (interaction: ButtonInteraction): ButtonClick => ({
    platform_user: `discord:${interaction.user.id}`,
    data: interaction.customId,
    ignore: async () => void (await interaction.deferUpdate()),
    defer: async () => void (await interaction.deferReply({ flags: MessageFlags.Ephemeral })),
    answer: async (text) => void (await interaction.editReply({ content: text, allowedMentions: { parse: [] } })),
  });

  const roomAgents = settings.roomAgents ?? {};
  const talking = Object.keys(roomAgents).length > 0;

  const roomMessageOf = (message: Message): RoomMessage | null =>
    message.author.bot || message.webhookId || message.system || !Object.hasOwn(roomAgents, message.channelId)
      ? null
      : { room: message.channelId, platform_user: `discord:${message.author.id}`, message_id: message.id, text: message.content };

  async function textChannel(room: string) {
    if (!client?.isReady()) throw new Error('Discord is not connected');
    const channel = await client.channels.fetch(room);
    if (!channel?.isSendable() || !channel.isTextBased())
      throw new Error(`Discord channel ${room} is not a text channel the bot can post in`);
    return channel;
  }

  return {
    name: 'discord',
    rooms: settings.channelIds,
    async connect(onClick, onLost, onMessage) {
      const token = await settings.token();
      if (!token) throw new Error('no bot token: the vault has no secret of the configured name');
      const bot = new Client({
        intents: [GatewayIntentBits.Guilds, ...(talking ? [GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent] : [])],
        ...(settings.apiBase ? { rest: { api: settings.apiBase } } : {}),
      });
      client = bot;
      bot.on(Events.InteractionCreate, (interaction) => {
        if (!interaction.isButton()) return;
        void onClick(clickOf(interaction)).catch(() => undefined);
      });
      bot.on(Events.MessageCreate, (message) => {
        const roomMessage = onMessage && roomMessageOf(message);
        if (roomMessage) void onMessage(roomMessage).catch(() => undefined);
      });
      bot.on(Events.Error, (err) => onLost(err));
      bot.on(Events.ShardDisconnect, (event) => onLost(new Error(`the gateway closed (code ${event.code})`)));
      const ready = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error('the Discord gateway did not become ready in time')),
          settings.readyTimeoutMs ?? 30_000,
        );
        bot.once(Events.ClientReady, () => (clearTimeout(timer), resolve()));
      });
      await bot.login(token);
      await ready;
    },
    async disconnect() {
      const bot = client;
      client = undefined;
      await bot?.destroy();
    },
    isConnected: () => client?.isReady() === true && client.ws.status === Status.Ready,
    async postCard(room: string, card: ApprovalCard) {
      const message = await (await textChannel(room)).send(discordCardMessage(card));
      return message.id;
    },
    async editCard(room: string, messageId: string, card: ApprovalCard) {
      await (await textChannel(room)).messages.edit(messageId, discordCardMessage(card));
    },
    ...(talking
      ? {
          conversations: {
            agents: roomAgents,
            async postMessage(room: string, message: PlainMessage) {
              const sent = await (
                await textChannel(room)
              ).send({
                content: fitText(message, MESSAGE_LIMIT, escapeMarkdown),
                allowedMentions: { parse: [] },
                ...(message.replyTo ? { reply: { messageReference: message.replyTo, failIfNotExists: false } } : {}),
              });
              return sent.id;
            },
          },
        }
      : {}),
  };
}
