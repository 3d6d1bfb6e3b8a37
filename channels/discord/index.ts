/** The Discord channel as the configuration asks for it, or none when no bot token secret is named. */
import type { Config } from '../../domain/config.js';
import type { Vault } from '../../stores/vault.js';
import type { ChannelAdapter } from '../adapter.js';
import type { CardLimits } from '../card.js';
import { vaultToken } from '../vault-token.js';
import { discordAdapter } from './adapter.js';
import { DISCORD_LIMITS } from './card.js';

export function discordChannel(
  config: Pick<Config, 'discordBotTokenSecret' | 'discordChannelIds' | 'discordApiUrl' | 'discordRoomAgents'>,
  vault: Vault | undefined,
): { adapter: ChannelAdapter; limits: CardLimits } | null {
  const secret = config.discordBotTokenSecret;
  if (!secret) return null;
  const adapter = discordAdapter({
    token: vaultToken(vault, secret),
    channelIds: config.discordChannelIds,
    apiBase: config.discordApiUrl,
    roomAgents: config.discordRoomAgents,
  });
  return { adapter, limits: DISCORD_LIMITS };
}
