/** warden secrets list | put NAME | delete NAME | rotate: the vault, admin only. Values come from stdin, never argv. */
import { CliError, EXIT } from './api-client.js';
import type { Command } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

const secretPath = (name: string) => `/api/secrets/${encodeURIComponent(name)}`;

/** The value on stdin, without the one newline `echo` or a file adds. */
async function readValue(): Promise<string> {
  if (process.stdin.isTTY)
    throw new CliError('pipe the value on stdin, e.g. `warden secrets put NAME < file` (never on the command line)', EXIT.usage);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const value = Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
  if (!value) throw new CliError('the value on stdin is empty', EXIT.usage);
  return value;
}

export const secretCommands: Record<string, Command> = {
  'secrets list': {
    usage: 'warden secrets list',
    summary: 'admin: secret names (never values)',
    async run({ api, json }) {
      const res = await api.call<{ secrets: Row[] }>('GET', '/api/secrets');
      if (json) return printJson(res);
      const rows = res.secrets ?? [];
      print(table(rows, [...new Set(rows.flatMap((r) => Object.keys(r)))]));
    },
  },
  'secrets put': {
    usage: 'warden secrets put NAME < value',
    summary: 'admin: store a secret, the value read from stdin',
    args: 1,
    async run({ api, json, args }) {
      const res = await api.call('PUT', secretPath(args[0]!), { value: await readValue() });
      if (json) return printJson(res);
      print(`secret ${args[0]} stored`);
    },
  },
  'secrets delete': {
    usage: 'warden secrets delete NAME',
    summary: 'admin: delete a secret',
    args: 1,
    async run({ api, json, args }) {
      const res = await api.call('DELETE', secretPath(args[0]!));
      if (json) return printJson(res);
      print(`secret ${args[0]} deleted`);
    },
  },
  'secrets rotate': {
    usage: 'warden secrets rotate',
    summary: 'admin: re-encrypt every secret under the current master key',
    async run({ api, json }) {
      const res = await api.call('POST', '/api/secrets/rotate', {});
      if (json) return printJson(res);
      print(`secrets re-encrypted\n${fields(res)}`);
    },
  },
};
