/**
 * Budgets end to end on real Temporal and Docker, the model played by the local fake through the
 * real openai client: a call that would go over the conversation's or the agent's day budget is
 * never sent (the fake records every request), a call that is sent is capped (max_tokens) at what
 * the budget has left, the person is told why, usage and cost show on the
 * API, the audit log and /metrics; the day budget spans the agent's conversations; a money budget
 * refuses an unpriced model; a turn stops at its tool-call limit; only an admin may give an
 * agent more than the configured budget; and at Temporal's port, neither an altered grant nor a
 * workflow started with its spending wiped gets past the budget.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Conversation } from '../../domain/conversation.js';
import { Grants, messageHash, type ConversationClaims } from '../../domain/grants.js';
import { sendMessageUpdate, turnResultUpdate } from '../../workflows/definitions.js';
import { SYSTEM_PROMPT } from '../../domain/conversation.js';
import { ANSWER_RESERVE_TOKENS, estimateCall } from '../../llm/token-estimate.js';
import { toolsOf } from '../../activities/model.js';
import { handStartConversation } from '../support/conversation-port.js';
import { openaiCompletion, startFakeLlm, type FakeLlm, type RecordedRequest } from '../support/fake-llm.js';
import { recordHistory, startStack, testPayloadCodec, uniqueId, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let fake: FakeLlm;
const agents: string[] = [];
const ROUTE = 'POST /v1/chat/completions';
/** $1 per thousand tokens, in and out: small scripted usages cost whole cents. */
const PRICE = { input_per_million: 1000, output_per_million: 1000 };
const USAGE = { prompt_tokens: 50, completion_tokens: 60, total_tokens: 110 };
/** What the first call of a conversation with the filesystem agent is estimated at, as the control worker counts it. */
const firstCall = (message: string) => {
  const e = estimateCall(
    [
      { role: 'system', content: SYSTEM_PROMPT },
      { role: 'user', content: message },
    ],
    toolsOf('filesystem'),
  );
  return e.prompt_tokens + e.answer_tokens;
};

async function newAgent(name: string, budget?: object): Promise<string> {
  const id = uniqueId(name);
  const created = await stack.api('POST', '/api/agents', {
    skill_id: 'filesystem',
    agent_id: id,
    runtime: 'runc',
    ...(budget ? { budget } : {}),
  });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
  agents.push(id);
  await waitForStatus(stack.api, id, ['running']);
  return id;
}

async function converse(agentId: string, extra: object = {}): Promise<string> {
  const created = await stack.api('POST', '/api/conversations', { agent_id: agentId, ...extra });
  expect(created.status).toBe(201);
  return created.body.id as string;
}

const say = async (id: string, message: string) => {
  const sent = await stack.api('POST', `/api/conversations/${id}/messages`, { message, wait_seconds: 120 });
  expect(sent.status).toBe(202);
  return sent.body as {
    status: string;
    reply: string | null;
    error: string | null;
    actions: Array<{ tool: string; status: string; error: string | null; action_id: string | null }>;
  };
};

const sentSince = (before: number): RecordedRequest[] => fake.to(ROUTE).slice(before);

beforeAll(async () => {
  fake = await startFakeLlm();
  stack = await startStack({
    config: { llmBaseUrl: `${fake.origin}/v1`, llmModel: 'fake-model', modelPrices: { 'fake-model': PRICE }, budgetDayUsd: 100 },
  });
}, 120_000);

// Each test's agent is stopped when it ends: the whole suite shares one host's capacity.
afterEach(async () => {
  const ended = agents.splice(0);
  for (const id of ended) await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  for (const id of ended) await waitForStatus(stack.api, id, ['stopped']);
});

afterAll(async () => {
  await stack?.stop();
  await fake?.close();
});

describe('a conversation budget', () => {
  it('refuses the call that would go over it before it is sent, tells the person why, and shows usage and cost', async () => {
    const first = 'list the workspace';
    // Room for the first call and no more: what it spends leaves less than the next estimate.
    const agent = await newAgent('budget-conv', { conversation_tokens: firstCall(first) + 100 });
    const id = await converse(agent);
    fake.script(ROUTE, { json: openaiCompletion({ content: 'The workspace is empty.' }, { usage: USAGE }) });
    const before = fake.to(ROUTE).length;

    expect(await say(id, first)).toMatchObject({ status: 'answered', reply: 'The workspace is empty.' });
    const refused = await say(id, 'now write a long report about it');
    expect(refused.status).toBe('over_budget');
    expect(refused.error).toMatch(
      /^The model was not called: this would exceed its token budget: this conversation spent 110 of \d+ tokens/,
    );
    expect(refused.error).toMatch(/Start a new conversation, or ask an admin/);
    // The call over budget never reached the provider.
    expect(sentSince(before)).toHaveLength(1);
    // The call made was held to the answer its budget check reserved: it could not spend past what was left.
    expect((sentSince(before)[0]!.body as { max_tokens?: number }).max_tokens).toBe(ANSWER_RESERVE_TOKENS);

    const conversation = (await stack.api('GET', `/api/conversations/${id}`)).body as Conversation;
    expect(conversation.status).toBe('idle');
    expect(conversation.usage).toEqual({ input_tokens: 50, output_tokens: 60, cached_tokens: 0 });
    expect(conversation.cost_usd).toBeCloseTo(0.11, 10);
    // Nothing is lost: the answered turn and both messages stay.
    expect(conversation.turns.map((t) => t.status)).toEqual(['answered', 'over_budget']);
    expect(conversation.transcript.filter((m) => m.role === 'user').map((m) => m.content)).toEqual([
      first,
      'now write a long report about it',
    ]);

    // One model.call entry for the one call: tokens, estimate and cost, never the text.
    const calls = (await stack.audit.list({ kind: 'model.call', agent_id: agent, limit: 10 })).filter(
      (e) => e.details.conversation_id === id,
    );
    expect(calls).toHaveLength(1);
    expect(calls[0]!.details).toMatchObject({ turn: 1, step: 1, provider: 'default', model: 'fake-model', usage: conversation.usage });
    expect(calls[0]!.details.cost_usd).toBeCloseTo(0.11, 10);
    expect(calls[0]!.details.estimated_tokens).toBe(firstCall(first));
    expect(JSON.stringify(calls[0]!.details)).not.toMatch(/workspace/);
    const turns = (await stack.audit.list({ kind: 'conversation.turn', agent_id: agent, limit: 10 })).filter(
      (e) => e.details.conversation_id === id,
    );
    expect(turns.map((e) => e.details.status).sort()).toEqual(['answered', 'over_budget']);

    const metrics = await (await stack.realApp.request('/metrics')).text();
    expect(metrics).toContain(`warden_model_tokens_total{agent_id="${agent}",provider="default",model="fake-model",type="input"} 50`);
    expect(metrics).toContain(`warden_model_calls_total{agent_id="${agent}",provider="default",model="fake-model"} 1`);
    expect(metrics).toMatch(
      new RegExp(`warden_model_cost_usd_total\\{agent_id="${agent}",provider="default",model="fake-model"\\} 0\\.11`),
    );
    expect(metrics).toContain(`warden_conversation_turns_total{agent_id="${agent}",status="over_budget"} 1`);
    await recordHistory('conversation-over-budget', id);
  }, 180_000);

  it("counts the agent's day across its conversations, from the audit log", async () => {
    const message = 'what is in the workspace?';
    // Dollars for the first call's estimate and a little more: the second conversation's first call no longer fits.
    const dayUsd = (firstCall(message) + 100) / 1000;
    const agent = await newAgent('budget-day', { day_usd: dayUsd });
    fake.script(ROUTE, { json: openaiCompletion({ content: 'Nothing yet.' }, { usage: USAGE }) });
    const before = fake.to(ROUTE).length;
    expect(await say(await converse(agent), message)).toMatchObject({ status: 'answered' });

    const refused = await say(await converse(agent), message);
    expect(refused.status).toBe('over_budget');
    expect(refused.error).toContain(`its money budget: the agent's conversations today (UTC) spent $0.1100 of $${dayUsd.toFixed(4)}`);
    expect(refused.error).toMatch(/midnight UTC/);
    expect(sentSince(before)).toHaveLength(1);
  }, 180_000);

  it('refuses a money budget for a model no one priced, and never calls it', async () => {
    const agent = await newAgent('budget-unpriced', { conversation_usd: 5 });
    const before = fake.to(ROUTE).length;
    const refused = await say(await converse(agent, { model: 'unpriced-model' }), 'hello');
    expect(refused).toMatchObject({ status: 'over_budget' });
    expect(refused.error).toMatch(
      /the model unpriced-model has no price \(add it to WARDEN_MODEL_PRICES, or give the agent a token budget only\)/,
    );
    expect(sentSince(before)).toHaveLength(0);
  }, 180_000);
});

describe('the tool calls of a turn', () => {
  it('runs the calls up to the limit, runs none beyond it, ends the turn saying so, and the next message carries on', async () => {
    const agent = await newAgent('budget-tools', { tool_calls_per_turn: 2 });
    const id = await converse(agent);
    const call = (callId: string, name: string, args: object) => ({ id: callId, name, arguments: JSON.stringify(args) });
    fake.script(
      ROUTE,
      {
        json: openaiCompletion({
          tool_calls: [
            call('call_a', 'filesystem_write', { path: 'a.txt', content: 'a' }),
            call('call_b', 'filesystem_write', { path: 'b.txt', content: 'b' }),
            call('call_c', 'filesystem_write', { path: 'c.txt', content: 'c' }),
          ],
        }),
      },
      { json: openaiCompletion({ content: 'Two files were written; the third was not.' }) },
    );
    const before = fake.to(ROUTE).length;
    const turn = await say(id, 'write three files');
    expect(turn.status).toBe('tool_limit');
    expect(turn.error).toMatch(/more than the 2 tool calls a turn may make/);
    expect(turn.actions.map((a) => [a.tool, a.status])).toEqual([
      ['filesystem_write', 'completed'],
      ['filesystem_write', 'completed'],
      ['filesystem_write', 'refused'],
    ]);
    expect(turn.actions[2]).toMatchObject({ action_id: null, error: 'the turn reached its limit of 2 tool calls' });
    expect(sentSince(before)).toHaveLength(1);
    // The third call never became an action.
    const submitted = await stack.audit.list({ kind: 'action.submitted', limit: 1000 });
    expect(submitted.filter((e) => e.details.conversation_id === id)).toHaveLength(2);

    expect(await say(id, 'and the third?')).toMatchObject({ status: 'answered', reply: 'Two files were written; the third was not.' });
    const next = sentSince(before)[1]!.body as { messages: Array<{ role: string; tool_call_id?: string; content: string }> };
    expect(next.messages.find((m) => m.tool_call_id === 'call_c')?.content).toBe(
      'this call did not run: the turn reached its limit of 2 tool calls',
    );
  }, 180_000);
});

describe("who sets an agent's budget", () => {
  it('lets an operator only tighten the configured budget; an admin may raise it', async () => {
    const operator = (await stack.keys.create('budget operator', 'operator', null)).key;
    const asOperator = async (budget: object) => {
      const res = await stack.realApp.request('/api/agents', {
        method: 'POST',
        headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
        body: JSON.stringify({ skill_id: 'filesystem', budget }),
      });
      return { status: res.status, body: (await res.json()) as { error?: { message?: string }; id?: string } };
    };
    const above = await asOperator({ day_usd: 1000 });
    expect(above.status).toBe(403);
    expect(JSON.stringify(above.body)).toMatch(/budget\.day_usd 1000, above the configured 100 \(WARDEN_BUDGET_DAY_USD\)/);
    const tighter = await asOperator({ day_usd: 1, tool_calls_per_turn: 5 });
    expect(tighter.status).toBe(201);
    agents.push(tighter.body.id!);
    expect((await stack.api('GET', `/api/agents/${tighter.body.id}`)).body.budget).toEqual({ day_usd: 1, tool_calls_per_turn: 5 });
  }, 120_000);
});

describe("Temporal's port", () => {
  // The API's signing key: what an attacker does not have, used here to make "genuine" grants.
  const grants = new Grants(testPayloadCodec().keyring);
  const requester = async () => {
    const admin = (await stack.keys.list()).find((k) => k.role === 'admin' && !k.revoked_at)!;
    return { key_id: admin.id, name: admin.name, role: admin.role, person: admin.person ?? admin.name };
  };
  const claimsFor = async (id: string, agentId: string, budget: object): Promise<ConversationClaims> => ({
    kind: 'conversation',
    conversation_id: id,
    agent_id: agentId,
    skill_id: 'filesystem',
    budget,
    requester: await requester(),
    issued_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 3600_000).toISOString(),
  });
  /** A conversation started at Temporal's port, claiming it has spent nothing, and the outcome of its first turn. */
  async function handStarted(id: string, grant: unknown, agentId: string, message: string) {
    const handle = await handStartConversation(stack.client, id, {
      grant,
      agent_id: agentId,
      carried: { turns: [], transcript: [], usage: { input_tokens: 0, output_tokens: 0, cached_tokens: 0 }, taint: null, cost_usd: 0 },
    });
    const messageGrant = grants.sign({
      kind: 'message',
      conversation_id: id,
      message_hash: messageHash(message),
      sender: await requester(),
      issued_at: new Date().toISOString(),
    });
    await handle.executeUpdate(sendMessageUpdate, { args: [{ message, grant: messageGrant }] });
    const turn = await handle.executeUpdate(turnResultUpdate, { args: [{ turn: 1 }] });
    await handle.terminate();
    return turn;
  }

  it('a grant whose budget was raised calls no model', async () => {
    const agent = await newAgent('budget-forged', { conversation_tokens: 10 });
    const id = uniqueId('cnv-raised');
    const genuine = grants.sign(await claimsFor(id, agent, { conversation_tokens: 10 }));
    const raised = { ...genuine, claims: { ...genuine.claims, budget: { conversation_tokens: 1_000_000 } } };
    const before = fake.to(ROUTE).length;
    const turn = await handStarted(id, raised, agent, 'hello');
    expect(turn.status).toBe('failed');
    expect(turn.error).toMatch(/^no model was called: .*signature does not match/);
    expect(fake.to(ROUTE).length).toBe(before);
  }, 120_000);

  it("a new workflow that claims to have spent nothing is still held to the agent's day, which the audit log keeps", async () => {
    const message = 'hello';
    const budget = { day_tokens: firstCall(message) + 100 };
    const agent = await newAgent('budget-wiped', budget);
    fake.script(ROUTE, { json: openaiCompletion({ content: 'Hello.' }, { usage: USAGE }) });
    const before = fake.to(ROUTE).length;
    expect(await say(await converse(agent), message)).toMatchObject({ status: 'answered' });
    const id = uniqueId('cnv-wiped');
    const turn = await handStarted(id, grants.sign(await claimsFor(id, agent, budget)), agent, message);
    expect(turn.status).toBe('over_budget');
    expect(turn.error).toMatch(/token budget: the agent's conversations today \(UTC\) spent 110 of/);
    expect(fake.to(ROUTE).length).toBe(before + 1);
  }, 120_000);
});
