/** warden status | sandbox | emergency-stop | resume: the whole system at a glance, and the big red button. */
import { CliError, EXIT, type ApiClient } from './api-client.js';
import type { Command } from './command.js';
import { fields, print, printJson, table, type Row } from './output.js';

interface Component {
  ok: boolean;
  state: 'up' | 'degraded' | 'down';
  latency_ms: number;
  detail: string | null;
}

/** One host of GET /api/sandbox's `hosts`, as far as the CLI shows it. */
interface PlacementHost {
  host: string;
  sandbox_worker: Component;
  engine: { version: string | null; runtime: string | null };
  agents: Row[];
  capacity: { memory_bytes: { free: number | null } };
}

/** The lockdown, or null when there is none. */
async function lockdown(api: ApiClient): Promise<Row | null> {
  const lock = await api.call<Row & { locked: boolean }>('GET', '/api/system/lockdown');
  return lock.locked ? lock : null;
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
        api.call<{ components: Record<string, Component>; agents: Record<string, number> | null; max_agents: number }>(
          'GET',
          '/api/status',
        ),
        lockdown(api),
      ]);
      if (json) return printJson({ ...status, ...(lock ? { lockdown: lock } : {}) });
      const rows = Object.entries(status.components).map(([name, c]) => ({
        component: name,
        state: c.state === 'down' ? 'DOWN' : c.state,
        latency: `${c.latency_ms} ms`,
        detail: c.detail,
      }));
      print(table(rows, ['component', 'state', 'latency', 'detail']));
      const counts = status.agents
        ? Object.entries(status.agents)
            .map(([s, n]) => `${s} ${n}`)
            .join(', ')
        : 'unknown (Temporal is down)';
      print(`\nagents: ${counts} (capacity ${status.max_agents})`);
      if (lock) print(`\nlockdown:\n${fields(lock)}`);
      return rows.some((r) => r.state === 'DOWN') ? EXIT.failed : 0;
    },
  },
  sandbox: {
    usage: 'warden sandbox',
    summary: 'the Docker host: runtime, capacity and the running agents; and every host agents are placed on',
    async run({ api, json }) {
      const info = await api.call<Row & { agents: Row[]; hosts: PlacementHost[] }>('GET', '/api/sandbox');
      if (json) return printJson(info);
      const { agents, hosts, ...rest } = info;
      print(fields(rest));
      print(`\n${table(agents, ['id', 'status', 'sandbox_runtime'])}`);
      const rows = hosts.map((h) => ({
        host: h.host,
        worker: h.sandbox_worker.state,
        engine: h.engine.version,
        runtime: h.engine.runtime,
        agents: h.agents.length,
        memory_free_mib: h.capacity.memory_bytes.free === null ? null : Math.floor(h.capacity.memory_bytes.free / 2 ** 20),
      }));
      print(`\nhosts agents are placed on:\n${table(rows, ['host', 'worker', 'engine', 'runtime', 'agents', 'memory_free_mib'])}`);
    },
  },
  'emergency-stop': {
    usage: 'warden emergency-stop --reason "why"',
    summary: 'admin: lock down (refuse new agents and actions), cancel pending approvals, force-stop every agent',
    options: reasonOption,
    async run({ api, json, values }) {
      const result = await api.call<{ completed: boolean; stop_workflow_id: string; report: { counts: Row } | null }>(
        'POST',
        '/api/system/emergency-stop',
        {
          reason: reasonOf(values, 'emergency-stop'),
        },
      );
      if (json) return printJson(result);
      const done = result.completed ? 'emergency stop done' : `emergency stop still running (workflow ${result.stop_workflow_id})`;
      print(`${done}; nothing new is accepted until \`warden resume\``);
      if (result.report) print(fields(result.report.counts));
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
