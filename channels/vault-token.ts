/** A channel's bot token, read from the vault each time the channel connects: a rotated token is used at the next retry. */
import type { Vault } from '../stores/vault.js';

export const vaultToken =
  (vault: Vault | undefined, secret: string): (() => Promise<string | undefined>) =>
  async () =>
    vault && (await vault.has(secret)) ? (await vault.reveal([secret])).get(secret) : undefined;
