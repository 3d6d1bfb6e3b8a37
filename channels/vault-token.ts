/** A channel's bot token, read from the vault each time the channel connects: a rotated token is used at the next retry. */
import type { Vault } from '../stores/vault.js';

export const vaultToken =
  (vault: Vault | undefined, secret: string): (() => string | undefined) =>
  () =>
    vault?.has(secret) ? vault.reveal([secret]).get(secret) : undefined;
