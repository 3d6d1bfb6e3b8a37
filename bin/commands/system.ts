/** warden status | sandbox | emergency-stop | resume: the whole system at a glance, and the big red button. */
import { CliError, EXIT, type ApiClient } from './api-client.js';
import type { Command } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

interface Component {
  ok: boolean;
  latency_ms: number;
  detail: string | null;
}

/** The lockdown, or null where this API has no emergency stop. */
async function lockdown(api: ApiClient): Promise<Row | null> {
  try {
    return await api.call('GET', '/api/system/lockdown');
  } catch (err) {
    if (err instanceof CliError && /no route/.test(err.message)) return null;
    throw err;
  }
}

const reasonOption = { reason: { type: 'string' } } as const;
const reasonOf = (values: Record<string, unknown>, what: string): string => {
  const reason = typeof values.reason === 'string' ? values.reason.trim() : '';
  if (!reason) throw new CliError(`${what} needs --reason "why" (it goes on the audit log)`, EXIT.usage);
  return reason;
};

export const systemCommands: Record<string, Command> = {
  status: {
    usage: 'warden status',
    summary: 'each component with its state and latency, agents by status, the lockdown',
    async run({ api, json }) {
      const [status, lock] = await Promise.all([
        api.call<{ components: Record<string, Component>; agents: Record<string, number> | null; max_agents: number }>('GET', '/api/status'),
        lockdown(api),
      ]);
      if (json) return printJson({ ...status, ...(lock ? { lockdown: lock } : {}) });
      const rows = Object.entries(status.components).map(([name, c]) => ({
        component: name,
        state: c.ok ? 'ok' : 'DOWN',
        latency: `${c.latency_ms} ms`,
        detail: c.detail,
      }));
      print(table(rows, ['component', 'state', 'latency', 'detail']));
      const counts = status.agents ? Object.entries(status.agents).map(([s, n]) => `${s} ${n}`).join(', ') : 'unknown (Temporal is down)';
      print(`\nagents: ${counts} (capacity ${status.max_agents})`);
      if (lock) print(`\nlockdown:\n${fields(lock)}`);
      return rows.every((r) => r.state === 'ok') ? 0 : EXIT.failed;
    },
  },
  sandbox: {
    usage: 'warden sandbox',
    summary: 'the Docker host: runtime, capacity and the running agents',
    async run({ api, json }) {
      const info = await api.call<Row & { agents: Row[] }>('GET', '/api/sandbox');
      if (json) return printJson(info);
      const { agents, ...rest } = info;
      print(fields(rest));
      print(`\n${table(agents, ['id', 'status', 'sandbox_runtime'])}`);
    },
  },
  'emergency-stop': {
    usage: 'warden emergency-stop --reason "why"',
    summary: 'admin: lock down (refuse new agents and actions), cancel pending approvals, force-stop every agent',
    options: reasonOption,
    async run({ api, json, values }) {
      const report = await api.call('POST', '/api/system/emergency-stop', { reason: reasonOf(values, 'emergency-stop') });
      if (json) return printJson(report);
      print(`emergency stop done; nothing new is accepted until \`warden resume\`\n${fields(report)}`);
    },
  },
  resume: {
    usage: 'warden resume --reason "why"',
    summary: 'admin: lift the lockdown',
    options: reasonOption,
    async run({ api, json, values }) {
      const result = await api.call('POST', '/api/system/resume', { reason: reasonOf(values, 'resume') });
      if (json) return printJson(result);
      print(`lockdown lifted\n${fields(result)}`);
    },
  },
};
