/** A channel's token or secret, read from the vault each time the channel connects: a rotated one is used at the next retry. */
import type { Vault } from '../stores/vault.js';

export const vaultToken =
  (vault: Vault | undefined, secret: string): (() => Promise<string | undefined>) =>
  async () =>
    vault && (await vault.has(secret)) ? (await vault.reveal([secret])).get(secret) : undefined;
