/** The Slack channel as the configuration asks for it (Socket Mode or HTTP), or none when no bot token secret is named. */
import type { Config } from '../../domain/config.js';
import type { Vault } from '../../stores/vault.js';
import type { ChannelAdapter } from '../adapter.js';
import type { CardLimits } from '../card.js';
import { vaultToken } from '../vault-token.js';
import { slackAdapter, type SlackDelivery } from './adapter.js';
import { SLACK_LIMITS } from './card.js';

export function slackChannel(
  config: Pick<
    Config,
    | 'slackBotTokenSecret'
    | 'slackMode'
    | 'slackAppTokenSecret'
    | 'slackSigningSecretSecret'
    | 'slackChannelIds'
    | 'slackApiUrl'
    | 'slackRoomAgents'
  >,
  vault: Vault | undefined,
): { adapter: ChannelAdapter; limits: CardLimits } | null {
  const botSecret = config.slackBotTokenSecret;
  // Socket Mode connects with the app-level token; over HTTP, Slack's requests are checked with the signing secret.
  const deliverySecret = config.slackMode === 'http' ? config.slackSigningSecretSecret : config.slackAppTokenSecret;
  if (!botSecret || !deliverySecret) return null;
  const delivery: SlackDelivery =
    config.slackMode === 'http'
      ? { mode: 'http', signingSecret: vaultToken(vault, deliverySecret) }
      : { mode: 'socket', appToken: vaultToken(vault, deliverySecret) };
  const adapter = slackAdapter({
    botToken: vaultToken(vault, botSecret),
    delivery,
    channelIds: config.slackChannelIds,
    apiUrl: config.slackApiUrl,
    roomAgents: config.slackRoomAgents,
  });
  return { adapter, limits: SLACK_LIMITS };
}
