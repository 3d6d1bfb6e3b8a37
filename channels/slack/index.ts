/** The Slack channel as the configuration asks for it, or none when no bot token secret is named. */
import type { Config } from '../../domain/config.js';
import type { Vault } from '../../stores/vault.js';
import type { ChannelAdapter } from '../adapter.js';
import type { CardLimits } from '../card.js';
import { vaultToken } from '../vault-token.js';
import { slackAdapter } from './adapter.js';
import { SLACK_LIMITS } from './card.js';

export function slackChannel(
  config: Pick<Config, 'slackBotTokenSecret' | 'slackAppTokenSecret' | 'slackChannelIds' | 'slackApiUrl'>,
  vault: Vault | undefined,
): { adapter: ChannelAdapter; limits: CardLimits } | null {
  const { slackBotTokenSecret: botSecret, slackAppTokenSecret: appSecret } = config;
  if (!botSecret || !appSecret) return null;
  const bot = vaultToken(vault, botSecret);
  const app = vaultToken(vault, appSecret);
  const adapter = slackAdapter({
    tokens: async () => {
      const [botToken, appToken] = await Promise.all([bot(), app()]);
      return botToken && appToken ? { bot: botToken, app: appToken } : undefined;
    },
    channelIds: config.slackChannelIds,
    apiUrl: config.slackApiUrl,
  });
  return { adapter, limits: SLACK_LIMITS };
}
