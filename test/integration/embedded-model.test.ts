/**
 * The embedded default model, for real: llama.cpp's server from the `xllamacpp` wheel with
 * SmolLM2-135M (scripts/setup-llm.sh installs both), reached through the real openai client,
 * on real Temporal and Docker. The deterministic flows are in conversations.test.ts with the
 * scripted fake; this proves the same path against a server nobody here wrote.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Conversation, Turn } from '../../domain/conversation.js';
import { EMBEDDED_MODEL, EMBEDDED_PROVIDER } from '../../domain/model-providers.js';
import { startEmbeddedModel, type EmbeddedModel } from '../../scripts/embedded-model.js';
import { freePort } from '../support/global-setup.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let model: EmbeddedModel;
let stack: Stack;
let agentId: string;
let shellAgent: string;
let operator: string;
let approver: string;

async function as(who: string, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${who}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await stack.realApp.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as any };
}

const conversation = async (id: string) => (await as(operator, 'GET', `/api/conversations/${id}`)).body as Conversation;

/** A turn of this model may take minutes on a busy machine. */
const endedTurn = (id: string): Promise<Turn> =>
  waitFor(
    'the turn to end',
    async () => {
      const turn = (await conversation(id)).turns.at(-1);
      return turn?.ended_at ? turn : undefined;
    },
    600_000,
  );

beforeAll(async () => {
  model = await startEmbeddedModel({ port: await freePort(), logFile: join(mkdtempSync(join(tmpdir(), 'warden-model-')), 'model.log') });
  stack = await startStack({ config: { embeddedModelUrl: model.baseUrl } });
  operator = (await stack.keys.create('operator', 'operator', null)).key;
  approver = (await stack.keys.create('approver', 'approver', null)).key;
  agentId = uniqueId('embedded-files');
  shellAgent = uniqueId('embedded-shell');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'filesystem', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: shellAgent, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  await waitForStatus(stack.api, shellAgent, ['running']);
}, 180_000);

afterAll(async () => {
  for (const id of [agentId, shellAgent]) if (id) await stack?.api('POST', `/api/agents/${id}/stop`, { force: true });
  await stack?.stop();
  await model?.stop();
});

describe('the embedded default model', () => {
  it('is the only provider when none is configured, and a component of the status', async () => {
    const providers = await stack.api('GET', '/api/providers');
    expect(providers.body.providers).toMatchObject([{ name: EMBEDDED_PROVIDER, kind: 'openai', default_model: EMBEDDED_MODEL }]);
    const models = await stack.api('GET', `/api/providers/${EMBEDDED_PROVIDER}/models`);
    expect(models.body.models.map((m: { id: string }) => m.id)).toContain(EMBEDDED_MODEL);
    const status = await stack.api('GET', '/api/status');
    expect(status.body.components.embedded_model).toMatchObject({ ok: true, state: 'up', detail: `${EMBEDDED_MODEL} at ${model.baseUrl}` });
  });

  it('lists the files through a tool call that becomes an action, runs once in the sandbox, and answers', async () => {
    const created = await as(operator, 'POST', '/api/conversations', { agent_id: agentId, max_steps: 2 });
    expect(created).toMatchObject({ status: 201, body: { provider: EMBEDDED_PROVIDER } });
    const id = created.body.id as string;
    const sent = await as(operator, 'POST', `/api/conversations/${id}/messages`, { message: 'List the files in the workspace.' });
    expect(sent.status).toBe(202);
    const turn = await endedTurn(id);

    const [first] = turn.actions;
    expect(first).toMatchObject({ tool: 'filesystem_list', status: 'completed', error: null });
    const action = (await as(operator, 'GET', `/api/actions/${first!.action_id}`)).body;
    expect(action).toMatchObject({ operation: 'list', security_level: 'low', origin: { conversation_id: id, turn: 1 } });
    const entries = await stack.audit.list({ action_id: first!.action_id!, limit: 100 });
    expect(entries.filter((e) => e.kind === 'execution.started')).toHaveLength(1);
    // What the model read back is the listing the sandbox made, and the model said something after it.
    const conversation = (await as(operator, 'GET', `/api/conversations/${id}`)).body as Conversation;
    const result = conversation.transcript.find((m) => m.role === 'tool' && m.tool_call_id === first!.tool_call_id);
    expect(result?.content).toMatch(/\(low\) completed/);
    expect(turn).toMatchObject({ status: 'answered', steps: 2, reply: expect.stringMatching(/\S/) });
    expect(conversation.usage.output_tokens).toBeGreaterThan(0);
  }, 900_000);

  it('asks for a shell command that waits for a second person, and runs it once they approve', async () => {
    const id = (await as(operator, 'POST', '/api/conversations', { agent_id: shellAgent, max_steps: 2 })).body.id as string;
    expect((await as(operator, 'POST', `/api/conversations/${id}/messages`, { message: 'Show the disk usage with df -h.' })).status).toBe(
      202,
    );
    const held = await waitFor(
      'the shell call to await approval',
      async () => {
        const turn = ((await as(operator, 'GET', `/api/conversations/${id}`)).body as Conversation).turns.at(-1);
        const actionId = turn?.actions.find((a) => a.tool === 'shell_exec')?.action_id;
        if (!actionId) return undefined;
        if ((await stack.audit.list({ action_id: actionId, kind: 'approval.requested' })).length === 0) return undefined;
        const action = (await as(operator, 'GET', `/api/actions/${actionId}`)).body;
        return action.status === 'pending' ? action : undefined;
      },
      600_000,
    );
    expect(held).toMatchObject({ security_level: 'high', operation: 'exec', origin: { conversation_id: id, turn: 1 } });
    // Nothing ran before the approval; the requester cannot give it.
    expect((await stack.audit.list({ action_id: held.id, kind: 'execution.started' })).length).toBe(0);
    const own = await as(operator, 'POST', `/api/actions/${held.id}/approve`, { approved: true, params_hash: held.params_hash });
    expect(own.status).toBe(403);
    expect((await as(approver, 'POST', `/api/actions/${held.id}/approve`, { approved: true, params_hash: held.params_hash })).status).toBe(
      200,
    );
    const turn = await endedTurn(id);
    expect(turn.actions.find((a) => a.action_id === held.id)).toMatchObject({ tool: 'shell_exec', status: 'completed' });
    expect((await stack.audit.list({ action_id: held.id, kind: 'execution.started' })).length).toBe(1);
  }, 1_200_000);

  it('is degraded in the status once its server is gone, and the API stays ready: actions need no model', async () => {
    await model.stop();
    const status = await stack.api('GET', '/api/status');
    expect(status.body.components.embedded_model).toMatchObject({
      ok: true,
      state: 'degraded',
      detail: expect.stringMatching(/^not answering: /),
    });
    const ready = await stack.realApp.request('/readyz');
    expect(ready.status).toBe(200);
  });
});
