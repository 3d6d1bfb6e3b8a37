/** Every chat channel Warden has, each built from the configuration (one line per platform folder). */
import type { Config } from '../domain/config.js';
import type { Vault } from '../stores/vault.js';
import { discordChannel } from './discord/index.js';
import { slackChannel } from './slack/index.js';
import { telegramChannel } from './telegram/index.js';

export const configuredChannels = (config: Config, vault: Vault | undefined) =>
  [discordChannel(config, vault), slackChannel(config, vault), telegramChannel(config, vault)].filter((c) => c !== null);
