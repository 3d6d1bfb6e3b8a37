/** warden agents list | show | stop. */
import { CliError, EXIT } from './api-client.js';
import type { Command } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

const agentPath = (id: string) => `/api/agents/${encodeURIComponent(id)}`;

export const agentCommands: Record<string, Command> = {
  'agents list': {
    usage: 'warden agents list [--status S] [--limit N]',
    summary: 'agents, newest first',
    options: { status: { type: 'string' }, limit: { type: 'string' } },
    async run({ api, json, values }) {
      const query = new URLSearchParams();
      if (values.status) query.set('status', String(values.status));
      if (values.limit) query.set('limit', String(values.limit));
      const { agents } = await api.call<{ agents: Row[] }>('GET', `/api/agents${query.size ? `?${query}` : ''}`);
      if (json) return printJson({ agents });
      print(table(agents, ['id', 'status', 'skill_id', 'sandbox_runtime', 'host', 'created_at']));
    },
  },
  'agents show': {
    usage: 'warden agents show <id>',
    summary: "an agent's full record",
    args: 1,
    async run({ api, json, args }) {
      const agent = await api.call('GET', agentPath(args[0]!));
      if (json) return printJson(agent);
      print(fields(agent));
    },
  },
  'agents stop': {
    usage: 'warden agents stop <id> [--force]',
    summary: 'operator: stop an agent (SIGTERM then SIGKILL after the grace; --force: SIGKILL at once)',
    args: 1,
    options: { force: { type: 'boolean' } },
    async run({ api, json, args, values }) {
      const agent = await api.call<Row>('POST', `${agentPath(args[0]!)}/stop`, { force: values.force === true });
      if (json) return printJson(agent);
      if (!agent.id) throw new CliError('the API answered without the agent', EXIT.failed);
      print(
        `${values.force ? 'force stop' : 'stop'} requested for ${agent.id} (now ${agent.status}); \`warden agents show ${agent.id}\` follows it`,
      );
    },
  },
};
