/**
 * The `make up` demo, over the REST API: one agent through its whole life, then (when a model is
 * there: the embedded one, or a configured provider) conversations whose tool calls are actions.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { ActionRecord } from '../domain/action.js';
import type { AgentRecord } from '../domain/agent.js';
import type { Conversation, Turn } from '../domain/conversation.js';
import { PROJECT_ROOT } from './dev-server.js';

type Say = (line: string) => void;

export async function runDemo(api: string, apiKey: string, say: Say, opts: { conversation: boolean }): Promise<void> {
  const call = requester(api, apiKey);
  await agentLifecycle(call, say);
  if (opts.conversation) await conversations(api, call, say);
  else say('demo: no model provider, so no conversation (see docs/models.md)');
}

type Call = (method: string, path: string, body?: unknown) => Promise<any>;

function requester(api: string, apiKey: string): Call {
  return async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${api}${path}`, {
      method,
      headers: { authorization: `Bearer ${apiKey}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const json = await res.json();
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
}

function agentUntil(call: Call) {
  return async (id: string, status: AgentRecord['status']): Promise<AgentRecord> => {
    for (let i = 0; i < 300; i++) {
      const agent = (await call('GET', `/api/agents/${id}`)) as AgentRecord;
      if (agent.status === status) return agent;
      if (agent.status === 'error') throw new Error(`agent ${id} failed: ${agent.error_message}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`agent ${id} did not become ${status}`);
  };
}

async function agentLifecycle(call: Call, say: Say) {
  const until = agentUntil(call);
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

/**
 * A filesystem agent's conversation lists the files and writes a report (low and medium: they run
 * at once); a shell agent's conversation asks for a command (high: it waits until a second person
 * approves, here a key made for the demo and confirmed on the host, then revoked).
 */
async function conversations(api: string, call: Call, say: Say) {
  const until = agentUntil(call);
  const files = (await call('POST', '/api/agents', { skill_id: 'filesystem' })) as AgentRecord;
  const shell = (await call('POST', '/api/agents', { skill_id: 'shell' })) as AgentRecord;
  await until(files.id, 'running');
  await until(shell.id, 'running');
  const approver = await confirmedApprover(call);
  const approved = new Set<string>();

  /** Sends the message and follows the turn to its end, approving what waits with the second key. */
  const converse = async (id: string, message: string) => {
    say(`demo: > ${message}`);
    const started = Date.now();
    await call('POST', `/api/conversations/${id}/messages`, { message });
    let turn: Turn | undefined;
    // A small model on a busy machine may take minutes; a person can cancel a turn at any time.
    for (let i = 0; i < 3600 && !turn?.ended_at; i++) {
      await new Promise((r) => setTimeout(r, 500));
      turn = ((await call('GET', `/api/conversations/${id}`)) as Conversation).turns.at(-1);
      for (const { action_id } of turn?.actions ?? []) {
        if (!action_id || approved.has(action_id)) continue;
        const action = (await call('GET', `/api/actions/${action_id}`)) as ActionRecord;
        if (action.status !== 'pending') continue;
        say(`demo:   action ${action.id} (${action.security_level}) waits for approval: ${JSON.stringify(action.parameters)}`);
        await requester(api, approver.key)('POST', `/api/actions/${action.id}/approve`, {
          approved: true,
          params_hash: action.params_hash,
          comment: 'approved by the demo',
        });
        approved.add(action_id);
        say(`demo:   approved with a second key (${approver.name}): the requester cannot approve their own action`);
      }
    }
    if (!turn?.ended_at) throw new Error(`the turn of conversation ${id} did not end`);
    for (const a of turn.actions)
      say(`demo:   tool call ${a.tool} -> action ${a.action_id ?? '(none)'} ${a.status}${a.error ? `: ${a.error}` : ''}`);
    if (turn.actions.length === 0) say('demo:   (the model called no tool)');
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    say(`demo:   ${turn.status} after ${turn.steps} model call(s) in ${seconds} s: ${JSON.stringify(turn.reply ?? turn.error)}`);
  };

  try {
    const filesTalk = (await call('POST', '/api/conversations', { agent_id: files.id, max_steps: 3 })) as Conversation;
    say(`demo: conversation ${filesTalk.id} with agent ${files.id} (filesystem skill) on ${filesTalk.provider}`);
    await converse(filesTalk.id, 'List the files in the workspace.');
    await converse(filesTalk.id, 'Write a file report.txt that says: all checks passed');
    const shellTalk = (await call('POST', '/api/conversations', { agent_id: shell.id, max_steps: 3 })) as Conversation;
    say(`demo: conversation ${shellTalk.id} with agent ${shell.id} (shell skill)`);
    await converse(shellTalk.id, 'Show the disk usage with df -h.');
  } finally {
    await call('DELETE', `/api/keys/${approver.id}`);
    for (const id of [files.id, shell.id]) await call('POST', `/api/agents/${id}/stop`, { force: true });
  }
  say('demo: each tool call is an action on the audit log (GET /api/audit-logs) with the conversation it came from');
}

/** An approver key that counts as its own person: made with the admin key, confirmed on the host. */
async function confirmedApprover(call: Call): Promise<{ id: string; key: string; name: string }> {
  const made = await call('POST', '/api/keys', { name: 'demo approver', role: 'approver', person: 'demo approver' });
  await promisify(execFile)(process.execPath, ['--import', 'tsx', join(PROJECT_ROOT, 'scripts/confirm-key.ts'), made.id], {
    cwd: PROJECT_ROOT,
  });
  return made;
}
