/**
 * A conversation's provider failures, through the real clients against the local fake: a provider
 * that stays down is replaced by the next of its fallback list, here one speaking Anthropic's
 * protocol through the real @anthropic-ai/sdk client; the turn carries on, each switch is on the
 * audit log, and the fallback's calls are charged at its own model's price, or not made at all
 * when the agent has a money budget and that model has no price. A 429 is retried after the wait
 * its Retry-After asks; a 400 or a 401 is not retried, and the turn says what went wrong.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { anthropicMessage, openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let fake: FakeLlm;
let agent: string;
const PRIMARY = 'POST /primary/v1/chat/completions';
const BACKUP = 'POST /backup/v1/messages';
const SOLO = 'POST /solo/v1/chat/completions';
const UNPRICED = 'POST /unpriced/v1/chat/completions';
/** The backup's model costs twice the primary's: a failover call is charged at the backup's. */
const PRICES = {
  'fake-model': { input_per_million: 1000, output_per_million: 1000 },
  'fake-claude': { input_per_million: 2000, output_per_million: 2000 },
};
const down = { status: 503, json: { error: { message: 'overloaded', type: 'server_error' } } };

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
        { name: 'solo', kind: 'openai', base_url: `${fake.origin}/solo/v1`, default_model: 'fake-model', fallback: ['unpriced'] },
        { name: 'unpriced', kind: 'openai', base_url: `${fake.origin}/unpriced/v1`, default_model: 'mystery-model' },
      ],
    }),
  );
  stack = await startStack({ config: { providersFile, modelPrices: PRICES } });
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

/** Sends a message and waits for the turn's end. */
async function turnOf(provider: string, message: string, agentId = agent) {
  const created = await stack.api('POST', '/api/conversations', { agent_id: agentId, provider });
  expect(created.status).toBe(201);
  const id = created.body.id as string;
  const sent = await stack.api('POST', `/api/conversations/${id}/messages`, { message, wait_seconds: 120 });
  expect(sent.status).toBe(202);
  return { id, turn: sent.body as { status: string; reply: string | null; error: string | null } };
}

it('a provider that stays down is replaced by its fallback for each model call, the turn completes, and each switch is audited', async () => {
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

  // Each call is charged at the price of the model that answered: 10 tokens in and 5 out at $2000 a million.
  const calls = (await stack.audit.list({ kind: 'model.call', agent_id: agent, limit: 10 })).filter(
    (e) => e.details.conversation_id === id,
  );
  expect(calls.map((e) => [e.details.provider, e.details.model, e.details.cost_usd])).toEqual([
    ['backup', 'fake-claude', 0.03],
    ['backup', 'fake-claude', 0.03],
  ]);
  expect((await stack.api('GET', `/api/conversations/${id}`)).body.cost_usd).toBeCloseTo(0.06, 10);
}, 180_000);

it('with a money budget, a fallback whose model has no price is not called; without one it answers', async () => {
  const budgeted = uniqueId('conv-unpriced');
  expect(
    (
      await stack.api('POST', '/api/agents', {
        skill_id: 'filesystem',
        agent_id: budgeted,
        runtime: 'runc',
        budget: { conversation_usd: 5 },
      })
    ).status,
  ).toBe(201);
  try {
    await waitForStatus(stack.api, budgeted, ['running']);
    fake.script(SOLO, ...Array(4).fill(down));
    const { turn } = await turnOf('solo', 'hello', budgeted);
    expect(turn.status).toBe('failed');
    expect(turn.error).toMatch(/provider solo answered 503/);
    expect(turn.error).toMatch(
      /provider unpriced was not called: its model mystery-model has no price and the agent has a money budget \(add the model to WARDEN_MODEL_PRICES\)$/,
    );
    expect(fake.to(UNPRICED)).toHaveLength(0);

    // The same failover for an agent without a money budget: the unpriced model answers.
    fake.script(SOLO, ...Array(4).fill(down));
    fake.script(UNPRICED, { json: openaiCompletion({ content: 'Hello from the fallback.' }, { model: 'mystery-model' }) });
    expect((await turnOf('solo', 'hello')).turn).toMatchObject({ status: 'answered', reply: 'Hello from the fallback.' });
    expect(fake.to(UNPRICED)).toHaveLength(1);
  } finally {
    await stack.api('POST', `/api/agents/${budgeted}/stop`, { force: true });
  }
}, 180_000);

it('a 429 is retried on the same provider after the wait its Retry-After asks, and the turn completes', async () => {
  const before = { primary: fake.to(PRIMARY).length, backup: fake.to(BACKUP).length };
  fake.script(
    PRIMARY,
    { status: 429, headers: { 'retry-after': '3' }, json: { error: { message: 'slow down', type: 'rate_limit_error' } } },
    { json: openaiCompletion({ content: 'Answered after the wait.' }) },
  );
  const { turn } = await turnOf('primary', 'hello');
  expect(turn).toMatchObject({ status: 'answered', reply: 'Answered after the wait.' });
  // The same request twice, to the provider that asked for the wait; no failover.
  const [limited, retried] = fake.to(PRIMARY).slice(before.primary);
  expect(fake.to(PRIMARY)).toHaveLength(before.primary + 2);
  expect(retried!.raw).toBe(limited!.raw);
  expect(fake.to(BACKUP)).toHaveLength(before.backup);
  // A lower bound only (a loaded machine waits longer, never shorter): without Retry-After the first backoff is under a second.
  expect(retried!.at - limited!.at).toBeGreaterThanOrEqual(3000);
}, 180_000);

it('a 400 or a 401 is not retried, nor sent to a fallback, and the turn says what went wrong', async () => {
  const before = { primary: fake.to(PRIMARY).length, backup: fake.to(BACKUP).length };
  fake.script(PRIMARY, {
    status: 400,
    json: { error: { message: "'tools' is not supported by this model", type: 'invalid_request_error' } },
  });
  const invalid = (await turnOf('primary', 'hello')).turn;
  expect(invalid.status).toBe('failed');
  expect(invalid.error).toBe("provider primary answered 400, the provider refused the request: 400 'tools' is not supported by this model");
  expect(fake.to(PRIMARY)).toHaveLength(before.primary + 1);
  expect(fake.to(BACKUP)).toHaveLength(before.backup);

  fake.script(BACKUP, { status: 401, json: { type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } } });
  const refused = (await turnOf('backup', 'hello')).turn;
  expect(refused.status).toBe('failed');
  expect(refused.error).toBe('provider backup answered 401, the API key was refused; check the vault secret named by api_key_secret');
  expect(fake.to(BACKUP)).toHaveLength(before.backup + 1);
}, 180_000);
