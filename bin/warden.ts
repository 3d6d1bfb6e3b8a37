#!/usr/bin/env -S npx tsx
/**
 * warden: the operator's command line. It talks to the REST API only (WARDEN_API_URL, default
 * http://127.0.0.1:8080) with WARDEN_API_KEY or `make up`'s admin key file.
 *
 * Exit codes: 0 done, 1 the request failed (or the audit chain is broken, or a component is down),
 * 2 bad usage, 3 the API cannot be reached, 4 no key, a refused key or a role too low.
 */
import { parseArgs } from 'node:util';
import { agentCommands } from './commands/agents.js';
import { apiClient, CliError, EXIT } from './commands/api-client.js';
import { approvalCommands } from './commands/approvals.js';
import { auditCommands } from './commands/audit.js';
import { channelCommands } from './commands/channels.js';
import { chatCommands } from './commands/chat.js';
import type { Command } from './commands/command.js';
import { secretCommands } from './commands/secrets.js';
import { systemCommands } from './commands/system.js';

const COMMANDS: Record<string, Command> = {
  ...systemCommands,
  ...agentCommands,
  ...approvalCommands,
  ...chatCommands,
  ...channelCommands,
  ...auditCommands,
  ...secretCommands,
};

function usage(): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length));
  return [
    'usage: warden <command> [--json]',
    '',
    ...Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}  ${c.summary}`),
    '',
    'WARDEN_API_URL (http://127.0.0.1:8080) and WARDEN_API_KEY (else .warden/data/admin-key) say where and who.',
    "--json prints the API's answer as it is. Exit codes: 1 failed, 2 usage, 3 API unreachable, 4 key refused or role too low.",
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h') {
    process.stdout.write(`${usage()}\n`);
    return argv.length === 0 ? EXIT.usage : 0;
  }
  // The command is its first one or two words ("status", "agents list"); options follow.
  const name = [argv.slice(0, 2).join(' '), argv[0]!].find((n) => COMMANDS[n]);
  if (!name) throw new CliError(`unknown command "${argv.slice(0, 2).join(' ')}"\n${usage()}`, EXIT.usage);
  const command = COMMANDS[name]!;
  const rest = argv.slice(name.split(' ').length);
  let parsed;
  try {
    parsed = parseArgs({
      args: rest,
      allowPositionals: true,
      options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, ...command.options },
    });
  } catch (err) {
    throw new CliError(`${(err as Error).message}\nusage: ${command.usage}`, EXIT.usage);
  }
  if (parsed.values.help) {
    process.stdout.write(`usage: ${command.usage}\n  ${command.summary}\n`);
    return 0;
  }
  if (parsed.positionals.length !== (command.args ?? 0)) throw new CliError(`usage: ${command.usage}`, EXIT.usage);
  const code = await command.run({ api: apiClient(), json: parsed.values.json === true, args: parsed.positionals, values: parsed.values });
  return code ?? 0;
}

main(process.argv.slice(2)).then(
  (code) => (process.exitCode = code),
  (err) => {
    process.stderr.write(`warden: ${err instanceof CliError ? err.message : ((err as Error).stack ?? err)}\n`);
    process.exitCode = err instanceof CliError ? err.exitCode : EXIT.failed;
  },
);
