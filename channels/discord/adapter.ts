/**
 * Discord through discord.js: the bot connects to the gateway (the Guilds intent only: button
 * clicks arrive as interactions, which need no privileged intent), posts cards to its channels
 * and edits them through the REST API. The clicker is the interaction's user, as Discord says.
 */
import { Client, Events, GatewayIntentBits, MessageFlags, Status, type ButtonInteraction } from 'discord.js';
import type { ButtonClick, ChannelAdapter } from '../adapter.js';
import type { ApprovalCard } from '../card.js';
import { discordCardMessage } from './card.js';

export interface DiscordSettings {
  /** The bot token, read when connecting (from the vault); undefined when the secret is missing. */
  token: () => Promise<string | undefined>;
  /** The ids of the text channels cards go to. */
  channelIds: string[];
  /** Discord's REST API base (its default when unset). */
  apiBase?: string;
  /** How long the gateway may take to be ready. */
  readyTimeoutMs?: number;
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
    async connect(onClick, onLost) {
      const token = await settings.token();
      if (!token) throw new Error('no bot token: the vault has no secret of the configured name');
      const bot = new Client({
        intents: [GatewayIntentBits.Guilds],
        ...(settings.apiBase ? { rest: { api: settings.apiBase } } : {}),
      });
      client = bot;
      bot.on(Events.InteractionCreate, (interaction) => {
        if (!interaction.isButton()) return;
        void onClick(clickOf(interaction)).catch(() => undefined);
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
  };
}
