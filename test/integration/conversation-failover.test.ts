/**
 * A conversation whose provider stays down: the model worker fails over to the next provider of
 * its fallback list, here one speaking Anthropic's protocol through the real @anthropic-ai/sdk
 * client, the turn carries on, and each switch is on the audit log.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { anthropicMessage, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let fake: FakeLlm;
let agent: string;
const PRIMARY = 'POST /primary/v1/chat/completions';
const BACKUP = 'POST /backup/v1/messages';

beforeAll(async () => {
  fake = await startFakeLlm();
  const providersFile = join(mkdtempSync(join(tmpdir(), 'warden-providers-')), 'providers.json');
  writeFileSync(
    providersFile,
    JSON.stringify({
      providers: [
        { name: 'primary', kind: 'openai', base_url: `${fake.origin}/primary/v1`, default_model: 'fake-model', fallback: ['backup'] },
        {
          name: 'backup',
          kind: 'anthropic',
          base_url: `${fake.origin}/backup`,
          default_model: 'fake-claude',
          api_key_secret: 'BACKUP_KEY',
        },
      ],
    }),
  );
  stack = await startStack({ config: { providersFile } });
  expect((await stack.api('PUT', '/api/secrets/BACKUP_KEY', { value: 'sk-ant-test-0123456789abcdef' })).status).toBe(201);
  agent = uniqueId('conv-failover');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'filesystem', agent_id: agent, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agent, ['running']);
}, 120_000);

afterAll(async () => {
  if (agent) await stack?.api('POST', `/api/agents/${agent}/stop`, { force: true });
  await stack?.stop();
  await fake?.close();
});

it('a provider that stays down is replaced by its fallback for each model call, the turn completes, and each switch is audited', async () => {
  const down = { status: 503, json: { error: { message: 'overloaded', type: 'server_error' } } };
  // Every attempt of the primary fails (the provider layer tries 4 times) for both model calls.
  fake.script(PRIMARY, ...Array(8).fill(down));
  fake.script(
    BACKUP,
    { json: anthropicMessage([{ type: 'tool_use', id: 'toolu_list', name: 'filesystem_list', input: {} }], { stop_reason: 'tool_use' }) },
    { json: anthropicMessage([{ type: 'text', text: 'The workspace is empty.' }]) },
  );
  const created = await stack.api('POST', '/api/conversations', { agent_id: agent, provider: 'primary' });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const sent = await stack.api('POST', `/api/conversations/${id}/messages`, { message: 'what is in the workspace?', wait_seconds: 120 });
  expect(sent.body).toMatchObject({
    status: 'answered',
    reply: 'The workspace is empty.',
    actions: [{ tool: 'filesystem_list', status: 'completed' }],
  });

  expect(fake.to(PRIMARY)).toHaveLength(8);
  const [first, second] = fake.to(BACKUP);
  // Anthropic's protocol: the tools as tool definitions, the action's outcome as a tool_result block.
  expect((first!.body as { tools: Array<{ name: string }> }).tools.map((t) => t.name)).toContain('filesystem_list');
  const lastTurn = (second!.body as { messages: Array<{ role: string; content: unknown }> }).messages.at(-1)!;
  expect(lastTurn).toMatchObject({ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_list' }] });
  expect(JSON.stringify(lastTurn.content)).toMatch(/\(low\) completed/);

  const switches = await waitFor('both switches on the log', async () => {
    const entries = (await stack.audit.list({ kind: 'model.failover', limit: 10 })).filter((e) => e.details.conversation_id === id);
    return entries.length === 2 ? entries : undefined;
  });
  for (const entry of switches) {
    expect(entry.details).toMatchObject({ answered_by: 'backup', failed: [{ provider: 'primary', kind: 'unavailable' }] });
  }
}, 180_000);
