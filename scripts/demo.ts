/** The `make up` demo: one agent through its whole life, over the REST API. */
import type { AgentRecord } from '../domain/agent.js';

export async function runDemo(api: string, apiKey: string, say: (line: string) => void): Promise<void> {
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  const until = async (id: string, status: AgentRecord['status']): Promise<AgentRecord> => {
    for (let i = 0; i < 300; i++) {
      const agent = (await call('GET', `/api/agents/${id}`)) as AgentRecord;
      if (agent.status === status) return agent;
      if (agent.status === 'error') throw new Error(`agent ${id} failed: ${agent.error_message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`agent ${id} did not become ${status}`);
  };

  say('demo: POST /api/agents {skill_id: "shell", resource_limits: {memory_mb: 256, cpu_cores: 0.5}}');
  const created = (await call('POST', '/api/agents', {
    skill_id: 'shell',
    resource_limits: { memory_mb: 256, cpu_cores: 0.5 },
  })) as AgentRecord;
  say(`demo: agent ${created.id} is ${created.status}`);
  const running = await until(created.id, 'running');
  const l = running.resource_limits;
  say(`demo: agent ${running.id} is running in container ${running.container_id?.slice(0, 12)} under ${running.sandbox_runtime}`);
  say(
    `demo:   limits: ${l.cpu_cores} CPU, ${l.memory_mb} MiB memory (no swap), ${l.disk_mb} MiB workspace, ${l.max_processes} processes, network ${l.network_enabled ? 'on' : 'off'}`,
  );
  if (running.sandbox_warning) say(`demo:   warning: ${running.sandbox_warning}`);
  const sandbox = await call('GET', '/api/sandbox');
  say(
    `demo: sandbox: runtime ${sandbox.runtime} (available: ${sandbox.runtimes.join(', ')}), ${sandbox.current_agents} of ${sandbox.max_agents} agents`,
  );
  await call('POST', `/api/agents/${created.id}/pause`);
  say(`demo: paused -> ${(await until(created.id, 'paused')).status}`);
  await call('POST', `/api/agents/${created.id}/resume`);
  say(`demo: resumed -> ${(await until(created.id, 'running')).status}`);
  await call('POST', `/api/agents/${created.id}/stop`, { force: false });
  const stopped = await until(created.id, 'stopped');
  say(`demo: stopped at ${stopped.stopped_at} (exit code ${stopped.exit_code}); its container is removed`);
  say(`demo: its workflow, with every step, is in the Temporal Web UI under workflow id ${created.id}`);
}
