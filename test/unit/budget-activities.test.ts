/**
 * The budget activities on the control worker, with a real audit log: the day is the sum of the
 * agent's model.call entries since midnight UTC (every page of them, no other agent's, nothing from
 * yesterday), the limits come from the signed grant over the configured defaults, a call's cost
 * lands on the log once however often it is recorded, and a worker without its settings or a
 * grant that does not hold calls no model.
 */
import { mkdtempSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import {
  createBudgetActivities,
  type ModelBudgetInput,
  type ModelBudgetSettings,
  type ModelBudgetVerdict,
} from '../../activities/budget.js';
import { dayStart } from '../../domain/budget.js';
import { Grants, type ConversationClaims } from '../../domain/grants.js';
import { Keyring } from '../../domain/keyring.js';
import { AuditStore } from '../../stores/audit-store.js';

const keyring = Keyring.load({ masterKey: randomBytes(32).toString('base64'), dataDir: tmpdir() });
const grants = new Grants(keyring);
const CONVERSATION = 'cnv-00000000000000aa';
const AGENT = 'agent-budget';
const budget: ModelBudgetSettings = {
  defaults: { tool_calls_per_turn: 20 },
  prices: { 'fake-model': { input_per_million: 1000, output_per_million: 1000 } },
  providers: [
    { name: 'default', kind: 'openai', base_url: 'http://127.0.0.1:1/v1', default_model: 'fake-model', fallback: [], stream: false },
  ],
};
const settings = { isRevoked: async () => false, approvalExpirySeconds: 600, budget };

const claims = (over: Partial<ConversationClaims> = {}): ConversationClaims => ({
  kind: 'conversation',
  conversation_id: CONVERSATION,
  agent_id: AGENT,
  skill_id: 'filesystem',
  requester: { key_id: 'key_owner', name: 'owner', role: 'operator' },
  issued_at: new Date().toISOString(),
  expires_at: new Date(Date.now() + 60_000).toISOString(),
  ...over,
});

function setup(workerSettings: typeof settings | Omit<typeof settings, 'budget'> = settings) {
  const audit = AuditStore.open(join(mkdtempSync(join(tmpdir(), 'warden-budget-')), 'audit.db'), { keyring, isKnownKeyId: () => false });
  const activities = createBudgetActivities({ grants, audit, settings: workerSettings });
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId: CONVERSATION, runId: 'run' } });
  const check = async (i: ModelBudgetInput) => (await env.run(activities.checkModelBudget, i)) as ModelBudgetVerdict;
  const record = async (r: Parameters<typeof activities.recordModelCall>[0]) =>
    (await env.run(activities.recordModelCall, r)) as { cost_usd: number | null };
  let n = 0;
  const spent = (agentId: string, tokens: number, cost_usd: number | null, at = new Date()) =>
    audit.append({
      key: `seed:${++n}`,
      kind: 'model.call',
      actor: 'system',
      agent_id: agentId,
      at: at.toISOString(),
      details: { usage: { input_tokens: tokens, output_tokens: 0, cached_tokens: 0 }, cost_usd },
    });
  return { audit, activities, env, spent, check, record };
}

const input = (over: Partial<ModelBudgetInput> = {}): ModelBudgetInput => ({
  grant: grants.sign(claims({ budget: { day_tokens: 3000 } })),
  provider: 'default',
  messages: [{ role: 'user', content: 'hello' }],
  spent: { tokens: 0, usd: 0 },
  ...over,
});

describe('the day', () => {
  it("sums every page of the agent's model calls since midnight UTC, and no other agent's or yesterday's", async () => {
    const { check, spent } = setup();
    // 1001 calls of 2 tokens today: more than one page of the log.
    for (let i = 0; i < 1001; i++) await spent(AGENT, 2, 0.001);
    await spent('another-agent', 100_000, 1);
    await spent(AGENT, 100_000, 1, new Date(Date.parse(dayStart(new Date())) - 1));
    const verdict = await check(input());
    expect(verdict.refusal).toMatch(/the agent's conversations today \(UTC\) spent 2002 of 3000 tokens/);
    expect(verdict.estimated_tokens).toBeGreaterThan(3000 - 2002);
  }, 60_000);

  it('lets the call through when the day has room, and counts dollars too', async () => {
    const { check, spent } = setup();
    await spent(AGENT, 10, 0.5);
    const roomy = input({ grant: grants.sign(claims({ budget: { day_tokens: 100_000, day_usd: 10 } })) });
    const verdict = await check(roomy);
    expect(verdict).toMatchObject({ refusal: null, tool_calls_per_turn: 20 });
    const tight = input({ grant: grants.sign(claims({ budget: { day_usd: 0.6 } })) });
    expect((await check(tight)).refusal).toMatch(/money budget: .* spent \$0\.5000 of \$0\.6000/);
  });
});

describe('the limits', () => {
  it("are the grant's over the worker's defaults, never the workflow's word", async () => {
    const { check } = setup({ ...settings, budget: { ...budget, defaults: { tool_calls_per_turn: 7, conversation_tokens: 1 } } });
    const verdict = await check(input({ grant: grants.sign(claims({ budget: { tool_calls_per_turn: 3 } })) }));
    expect(verdict.tool_calls_per_turn).toBe(3);
    expect(verdict.refusal).toMatch(/this conversation spent 0 of 1 tokens/);
  });

  it('are not read from a grant the API did not sign, nor by a worker without budget settings', async () => {
    const genuine = grants.sign(claims({ budget: { day_tokens: 10 } }));
    const raised = { ...genuine, claims: { ...genuine.claims, budget: { day_tokens: 1_000_000 } } };
    const { activities, env } = setup();
    await expect(env.run(activities.checkModelBudget, input({ grant: raised }))).rejects.toMatchObject({
      type: 'Unauthorized',
      message: expect.stringMatching(/^no model was called: .*signature does not match/),
    });
    const bare = setup({ isRevoked: settings.isRevoked, approvalExpirySeconds: 600 });
    await expect(bare.env.run(bare.activities.checkModelBudget, input())).rejects.toMatchObject({
      type: 'Unauthorized',
      message: 'no model was called: this worker was started without budget settings: it calls no model',
    });
  });
});

describe('a model call on the log', () => {
  it('is priced by the model that answered and written once, however often it is recorded', async () => {
    const { audit, record } = setup();
    const call = {
      grant: grants.sign(claims()),
      turn: 2,
      step: 1,
      provider: 'default',
      model: 'fake-model',
      usage: { input_tokens: 300, output_tokens: 100, cached_tokens: 0 },
      estimated_tokens: 900,
    };
    expect((await record(call)).cost_usd).toBeCloseTo(0.4, 10);
    await record(call);
    const entries = await audit.list({ kind: 'model.call', agent_id: AGENT });
    expect(entries).toHaveLength(1);
    expect(entries[0]!.details).toMatchObject({
      conversation_id: CONVERSATION,
      turn: 2,
      step: 1,
      model: 'fake-model',
      estimated_tokens: 900,
    });
    // A fallback's unpriced model: counted in tokens, no cost.
    expect((await record({ ...call, step: 2, model: 'unpriced' })).cost_usd).toBeNull();
  });
});
