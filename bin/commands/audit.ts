/**
 * warden audit tail | verify | export: through the API, or with --db PATH straight from the audit
 * log's SQLite file (read-only), for when the API is down.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { AuditStore } from '../../stores/audit-store.js';
import type { AuditEntry, AuditVerification } from '../../domain/audit-entry.js';
import { CliError, EXIT } from './api-client.js';
import type { Command, CommandContext } from './command.js';
import { print, printJson } from './output.js';

const readable = (e: AuditEntry): string =>
  [
    `#${e.seq}`,
    e.at,
    e.kind,
    `actor=${e.actor ?? '-'}`,
    ...(e.agent_id ? [`agent=${e.agent_id}`] : []),
    ...(e.action_id ? [`action=${e.action_id}`] : []),
    JSON.stringify(e.details),
  ].join(' ');

type Verification = AuditVerification & {
  /** The chain's head, read from the file (--db): worth keeping somewhere else too. */
  head?: { seq: number; hash: string };
};

const dbOption = { db: { type: 'string' } } as const;

/** The audit store at --db, read-only; undefined without --db. */
async function localStore(values: CommandContext['values']): Promise<AuditStore | undefined> {
  if (typeof values.db !== 'string') return undefined;
  if (!existsSync(values.db)) throw new CliError(`no audit log at ${values.db}`, EXIT.usage);
  const { AuditStore } = await import('../../stores/audit-store.js');
  return AuditStore.open(values.db, { readonly: true, keyring: await masterKeys(values.db) });
}

/**
 * The master keys that check the log's anchor: WARDEN_MASTER_KEY or WARDEN_MASTER_KEY_FILE (and
 * WARDEN_MASTER_KEY_PREVIOUS), or the key file of the data dir the log sits in. Never a new key
 * file: without keys, verify says it could not check the anchor.
 */
async function masterKeys(db: string) {
  const { Keyring } = await import('../../domain/keyring.js');
  const dataDir = dirname(resolve(db));
  const { secretSetting } = await import('../../domain/config.js');
  const masterKey = secretSetting('masterKey');
  if (masterKey) return Keyring.load({ masterKey, previousMasterKeys: process.env.WARDEN_MASTER_KEY_PREVIOUS, dataDir });
  return existsSync(join(dataDir, 'master-keys.json')) ? Keyring.load({ dataDir }) : undefined;
}

/** Runs against the local file with --db, else through the API. */
async function withSource<T>(ctx: CommandContext, local: (store: AuditStore) => Promise<T>, remote: () => Promise<T>): Promise<T> {
  const store = await localStore(ctx.values);
  if (!store) return remote();
  try {
    return await local(store);
  } finally {
    await store.close();
  }
}

export const auditCommands: Record<string, Command> = {
  'audit tail': {
    usage: 'warden audit tail [-n N] [--db PATH]',
    summary: 'the newest N audit entries (20), oldest first, one line each',
    options: { lines: { type: 'string', short: 'n' }, ...dbOption },
    async run(ctx) {
      const n = Number(ctx.values.lines ?? 20);
      if (!Number.isInteger(n) || n < 1 || n > 1000)
        throw new CliError(`-n must be a whole number from 1 to 1000, not ${ctx.values.lines}`, EXIT.usage);
      const entries = await withSource(
        ctx,
        (store) => store.list({ limit: n }),
        async () => (await ctx.api.call<{ entries: AuditEntry[] }>('GET', `/api/audit-logs?limit=${n}`)).entries,
      );
      if (ctx.json) return printJson({ entries });
      for (const entry of entries.reverse()) print(readable(entry));
    },
  },
  'audit verify': {
    usage: 'warden audit verify [--db PATH]',
    summary: 'walk the hash chain and check its anchor; exit 1 listing every break',
    options: dbOption,
    async run(ctx) {
      const result = await withSource(
        ctx,
        async (store) => ({ ...(await store.verify()), head: await store.head() }),
        () => ctx.api.call<Verification>('GET', '/api/audit-logs/verify'),
      );
      if (ctx.json) printJson(result);
      else {
        if (result.ok)
          print(`audit log intact: ${result.entries} entries${result.head ? `, head #${result.head.seq} ${result.head.hash}` : ''}`);
        for (const { seq, reason } of result.breaks) print(`audit log BROKEN at entry ${seq}: ${reason}`);
        const { count, seqs } = result.unverified_actors;
        if (count)
          print(
            `${count} entries record an actor that was not verified when written (not a system actor nor a known API key): #${seqs.join(', #')}${count > seqs.length ? ', …' : ''}`,
          );
      }
      return result.ok ? 0 : EXIT.failed;
    },
  },
  'audit export': {
    usage: 'warden audit export [--db PATH]',
    summary: 'every entry as JSON Lines, oldest first',
    options: dbOption,
    async run(ctx) {
      const lines = await withSource(
        ctx,
        async (store) => {
          const out: string[] = [];
          await store.exportJsonl((line) => out.push(`${line}\n`));
          return out.join('');
        },
        () => ctx.api.text('/api/audit-logs/export'),
      );
      process.stdout.write(lines);
    },
  },
};
