/**
 * warden audit tail | verify | export: through the API, or with --db PATH straight from the audit
 * log's SQLite file (read-only), for when the API is down.
 */
import { existsSync } from 'node:fs';
import type { AuditEntry, AuditStore } from '../../activities/audit-store.js';
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

interface Verification {
  ok: boolean;
  entries: number;
  first_broken: { seq: number; reason: string } | null;
  /** The chain's head, read from the file (--db): worth keeping somewhere else as an anchor. */
  head?: { seq: number; hash: string };
}

const dbOption = { db: { type: 'string' } } as const;

/** The audit store at --db, read-only; undefined without --db. */
async function localStore(values: CommandContext['values']): Promise<AuditStore | undefined> {
  if (typeof values.db !== 'string') return undefined;
  if (!existsSync(values.db)) throw new CliError(`no audit log at ${values.db}`, EXIT.usage);
  const { AuditStore } = await import('../../activities/audit-store.js');
  return AuditStore.open(values.db, { readonly: true });
}

/** Runs against the local file with --db, else through the API. */
async function withSource<T>(ctx: CommandContext, local: (store: AuditStore) => T, remote: () => Promise<T>): Promise<T> {
  const store = await localStore(ctx.values);
  if (!store) return remote();
  try {
    return local(store);
  } finally {
    store.close();
  }
}

export const auditCommands: Record<string, Command> = {
  'audit tail': {
    usage: 'warden audit tail [-n N] [--db PATH]',
    summary: 'the newest N audit entries (20), oldest first, one line each',
    options: { lines: { type: 'string', short: 'n' }, ...dbOption },
    async run(ctx) {
      const n = Number(ctx.values.lines ?? 20);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new CliError(`-n must be a whole number from 1 to 1000, not ${ctx.values.lines}`, EXIT.usage);
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
    summary: 'walk the hash chain; exit 1 with the first broken link',
    options: dbOption,
    async run(ctx) {
      const result = await withSource(
        ctx,
        (store) => ({ ...store.verify(), head: store.head() }),
        () => ctx.api.call<Verification>('GET', '/api/audit-logs/verify'),
      );
      if (ctx.json) printJson(result);
      else if (result.ok) print(`audit log intact: ${result.entries} entries${result.head ? `, head #${result.head.seq} ${result.head.hash}` : ''}`);
      else print(`audit log BROKEN at entry ${result.first_broken?.seq}: ${result.first_broken?.reason}`);
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
        (store) => {
          const out: string[] = [];
          store.exportJsonl((line) => out.push(`${line}\n`));
          return out.join('');
        },
        () => ctx.api.text('/api/audit-logs/export'),
      );
      process.stdout.write(lines);
    },
  },
};
