/**
 * A stack with chat channels configured (their tokens in the vault), an operator key, an approver
 * key "alice" paired to a chat user on each and confirmed, and a running shell agent: what each
 * platform's approval test starts from.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ActionRecord } from '../../domain/action.js';
import type { Config } from '../../domain/config.js';
import { openVault } from '../../stores/vault.js';
import { startStack, uniqueId, waitFor, waitForStatus } from './helpers.js';

type StackOptions = NonNullable<Parameters<typeof startStack>[0]>;

export async function startChannelStack(opts: {
  secrets: Record<string, string>;
  config: Partial<Config>;
  /** Alice's platform user on each channel configured (`<channel>:<user id>`). */
  alice: string | string[];
  /** More of the stack's options, e.g. workers: false for a test whose workers are processes it kills. */
  stack?: Omit<StackOptions, 'vault' | 'config'>;
  /** Starts those worker processes, once the stack is up and before the agent is made. */
  startWorkers?: () => Promise<unknown>;
  /** The shell agent's id, when the configuration names it (a room that talks to it). */
  agentId?: string;
}) {
  const vault = openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-vault-')) });
  for (const [name, value] of Object.entries(opts.secrets)) await vault.put(name, value);
  const stack = await startStack({ ...opts.stack, vault, config: { ...opts.config, channelPollSeconds: 0.5 } });
  await opts.startWorkers?.();
  const operator = await stack.keys.create('operator', 'operator', null);
  const alice = await stack.keys.create('alice', 'approver', null);
  /** A request to the API with this key. */
  const as = async (key: string, method: string, path: string, body?: unknown) => {
    const headers: Record<string, string> = { authorization: `Bearer ${key}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await stack.realApp.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, body: (await res.json()) as any };
  };
  for (const user of [opts.alice].flat()) {
    expect((await stack.api('POST', '/api/channels/pairings', { platform_user: user, key_id: alice.id })).status).toBe(201);
    expect((await as(alice.key, 'POST', `/api/channels/pairings/${user}/confirm`)).status).toBe(200);
  }
  const agentId = opts.agentId ?? uniqueId('channel');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  await waitFor('the channels to be connected', async () =>
    (await stack.api('GET', '/api/channels')).body.channels.every((c: { connected: boolean }) => c.connected),
  );
  return {
    stack,
    operator,
    alice,
    agentId,
    as,
    /** The operator submits a shell command (high: one approval). */
    submit: (command: string) =>
      as(operator.key, 'POST', '/api/actions', {
        action_type: 'skill_execution',
        skill_id: 'shell',
        operation: 'exec',
        agent_id: agentId,
        parameters: { command },
      }),
    /** The action ran once (its command counts its runs), approved by alice alone, through this channel. */
    async expectRanOnceApprovedByAlice(id: string, channel: string) {
      const done = (await stack.api('GET', `/api/actions/${id}`)).body as ActionRecord;
      expect(done.result?.stdout.trim()).toBe('1');
      expect(done.approvals.map((a) => [a.approver.key_id, a.comment])).toEqual([[alice.id, `via ${channel}`]]);
    },
    async stop() {
      await stack.api('POST', `/api/agents/${agentId}/stop`, { force: true });
      await stack.stop();
      await vault.close();
    },
  };
}
