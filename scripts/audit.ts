/**
 * The audit log from the command line:
 *
 *   npx tsx scripts/audit.ts verify [--db PATH]             exit 0 when intact, 1 with the first broken link
 *   npx tsx scripts/audit.ts export [--db PATH]             every entry as JSON Lines on stdout, oldest first
 *   npx tsx scripts/audit.ts tail   [--db PATH] [--limit N] the newest N entries (20), one readable line each
 *
 * The default log is `${WARDEN_DATA_DIR:-.warden/data}/audit.db`. The file is opened read-only.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { AuditStore, type AuditEntry } from '../activities/audit-store.js';

const USAGE = 'usage: npx tsx scripts/audit.ts verify|export|tail [--db PATH] [--limit N]';

function fail(message: string): never {
  process.stderr.write(`${message}\n`);
  process.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { db: { type: 'string' }, limit: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
  });
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`);
}
const { values, positionals } = parsed;
if (values.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const command = positionals[0];
if (positionals.length !== 1 || !['verify', 'export', 'tail'].includes(command)) fail(USAGE);

const limit = Number(values.limit ?? 20);
if (!Number.isInteger(limit) || limit < 1 || limit > 1000) fail(`--limit must be a whole number from 1 to 1000, not ${values.limit}`);

const dbPath = values.db ?? join(process.env.WARDEN_DATA_DIR || '.warden/data', 'audit.db');
if (!existsSync(dbPath)) fail(`no audit log at ${dbPath} (pass --db PATH, or set WARDEN_DATA_DIR)`);

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

const store = AuditStore.open(dbPath, { readonly: true });
let code = 0;
try {
  if (command === 'verify') {
    const result = store.verify();
    if (result.ok) {
      const head = store.head();
      process.stdout.write(`audit log intact: ${result.entries} entries, head #${head.seq} ${head.hash}\n`);
    } else {
      process.stdout.write(`audit log BROKEN at entry ${result.first_broken?.seq}: ${result.first_broken?.reason}\n`);
      code = 1;
    }
  } else if (command === 'export') {
    store.exportJsonl((line) => process.stdout.write(`${line}\n`));
  } else {
    for (const entry of store.list({ limit }).reverse()) process.stdout.write(`${readable(entry)}\n`);
  }
} finally {
  store.close();
}
process.exitCode = code;
