/** The Telegram channel as the configuration asks for it (long polling or webhook), or none when no bot token secret is named. */
import type { Config } from '../../domain/config.js';
import type { Vault } from '../../stores/vault.js';
import type { ChannelAdapter } from '../adapter.js';
import type { CardLimits } from '../card.js';
import { vaultToken } from '../vault-token.js';
import { telegramAdapter } from './adapter.js';
import { TELEGRAM_LIMITS } from './card.js';

export function telegramChannel(
  config: Pick<
    Config,
    | 'telegramBotTokenSecret'
    | 'telegramChatIds'
    | 'telegramApiUrl'
    | 'telegramMode'
    | 'telegramWebhookUrl'
    | 'telegramWebhookSecretSecret'
    | 'telegramRoomAgents'
  >,
  vault: Vault | undefined,
): { adapter: ChannelAdapter; limits: CardLimits } | null {
  const { telegramBotTokenSecret: secret, telegramWebhookUrl: url, telegramWebhookSecretSecret: webhookSecret } = config;
  if (!secret) return null;
  const webhook =
    config.telegramMode === 'webhook' && url && webhookSecret ? { url, secretToken: vaultToken(vault, webhookSecret) } : undefined;
  if (config.telegramMode === 'webhook' && !webhook) return null;
  const adapter = telegramAdapter({
    token: vaultToken(vault, secret),
    chatIds: config.telegramChatIds,
    apiRoot: config.telegramApiUrl,
    webhook,
    roomAgents: config.telegramRoomAgents,
  });
  return { adapter, limits: TELEGRAM_LIMITS };
}
