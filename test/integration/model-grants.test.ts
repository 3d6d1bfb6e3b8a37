/**
 * The model worker's own check, on real Temporal with the model played by the local fake through
 * the real openai client: workflow code an attacker runs on a worker of their own (they reach
 * Temporal's port, and hold a genuine conversation and message grant) schedules callModel on the
 * model queue, and no call without the control worker's model-call grant for exactly that call
 * reaches the model: none, a forged one, an expired one, one for another conversation or model, or
 * a genuine one shown a second time. And two conversations of one agent calling at once at the
 * edge of its day: the room is reserved in the audit log, so one call runs and the other is refused.
 */
import { fileURLToPath } from 'node:url';
import { NativeConnection, Worker } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { ModelCallInput } from '../../activities/model.js';
import { SYSTEM_PROMPT } from '../../domain/conversation.js';
import { Grants, messageHash, transcriptHash, type ModelCallClaims } from '../../domain/grants.js';
import { createWorkerDataConverter } from '../../domain/data-converter.js';
import { estimateCall } from '../../llm/token-estimate.js';
import { toolsOf } from '../../activities/model.js';
import { openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { recordHistory, startStack, testPayloadCodec, uniqueId, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let fake: FakeLlm;
let rogue: { worker: Worker; connection: NativeConnection; running: Promise<void> };
const ROGUE_QUEUE = 'rogue-model-calls';
const ROUTE = 'POST /v1/chat/completions';
const USAGE = { prompt_tokens: 50, completion_tokens: 60, total_tokens: 110 };

beforeAll(async () => {
  fake = await startFakeLlm();
  stack = await startStack({ config: { llmBaseUrl: `${fake.origin}/v1`, llmModel: 'fake-model' } });
  const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  const worker = await Worker.create({
    connection,
    taskQueue: ROGUE_QUEUE,
    workflowsPath: fileURLToPath(new URL('../support/rogue-model-calls.ts', import.meta.url)),
    // The attacker copies payloads as the API encrypted them: here, made with the test's key.
    dataConverter: createWorkerDataConverter(testPayloadCodec()),
  });
  rogue = { worker, connection, running: worker.run() };
}, 180_000);

afterAll(async () => {
  rogue?.worker.shutdown();
  await rogue?.running;
  await rogue?.connection.close();
  await stack?.stop();
  await fake?.close();
});

describe('a model call scheduled on the model queue by workflow code the attacker runs', () => {
  // The API's signing key: what an attacker does not have, used here to make "genuine" grants.
  const grants = new Grants(testPayloadCodec().keyring);
  const AGENT = 'agent-rogue';
  const text = 'hello';
  const messages = [{ role: 'user' as const, content: text }];
  const requester = async () => {
    const admin = (await stack.keys.list()).find((k) => k.role === 'admin' && !k.revoked_at)!;
    return { key_id: admin.id, name: admin.name, role: admin.role };
  };
  const now = () => new Date().toISOString();
  const callClaims = (conversation: string, over: Partial<ModelCallClaims> = {}): ModelCallClaims => ({
    kind: 'model_call',
    call_id: `${conversation}:1:1`,
    conversation_id: conversation,
    agent_id: AGENT,
    provider: 'default',
    model: null,
    transcript_hash: transcriptHash(messages),
    max_tokens: 512,
    estimated_tokens: 600,
    estimated_usd: null,
    issued_at: now(),
    expires_at: new Date(Date.now() + 600_000).toISOString(),
    ...over,
  });
  /** callModel's input with genuine conversation and message grants for the workflow id the attacker picked. */
  const callInput = async (conversation: string, callGrant?: unknown): Promise<ModelCallInput> => ({
    grant: grants.sign({
      kind: 'conversation',
      conversation_id: conversation,
      agent_id: AGENT,
      skill_id: 'filesystem',
      requester: await requester(),
      issued_at: now(),
      expires_at: new Date(Date.now() + 3600_000).toISOString(),
    }),
    provider: 'default',
    message: {
      text,
      grant: grants.sign({
        kind: 'message',
        conversation_id: conversation,
        message_hash: messageHash(text),
        sender: await requester(),
        issued_at: now(),
      }),
    },
    messages,
    ...(callGrant === undefined ? {} : { call_grant: callGrant }),
  });
  const rogueCalls = (conversation: string, inputs: ModelCallInput[]) =>
    stack.client.workflow.execute('rogueModelCalls', { workflowId: conversation, taskQueue: ROGUE_QUEUE, args: [inputs] }) as Promise<
      string[]
    >;

  it("reaches no model without a model-call grant, or with a forged, expired, or another call's one", async () => {
    const id = uniqueId('cnv-rogue');
    const genuine = grants.sign(callClaims(id));
    const before = fake.to(ROUTE).length;
    const outcomes = await rogueCalls(id, [
      await callInput(id),
      await callInput(id, { ...genuine, claims: { ...genuine.claims, max_tokens: 100_000 } }),
      await callInput(id, grants.sign(callClaims(id, { expires_at: new Date(Date.now() - 1000).toISOString() }))),
      await callInput(id, grants.sign(callClaims('cnv-someone-else'))),
      await callInput(id, grants.sign(callClaims(id, { model: 'gpt-expensive' }))),
      await callInput(id, grants.sign(callClaims(id, { transcript_hash: transcriptHash([]) }))),
    ]);
    expect(outcomes).toEqual([
      expect.stringMatching(/^refused: no model was called: the call carries no model-call grant/),
      expect.stringMatching(/^refused: no model was called: the model_call grant's signature does not match/),
      expect.stringMatching(/^refused: no model was called: the model-call grant expired/),
      expect.stringMatching(/^refused: no model was called: the model-call grant is for conversation cnv-someone-else/),
      expect.stringMatching(/^refused: no model was called: the model-call grant is for default\/gpt-expensive/),
      expect.stringMatching(/^refused: no model was called: the transcript differs/),
    ]);
    expect(fake.to(ROUTE).length).toBe(before);
  }, 120_000);

  it('reaches the model once with a genuine grant: shown again by another call, in this run or another, it is spent', async () => {
    const id = uniqueId('cnv-replay');
    const genuine = grants.sign(callClaims(id));
    fake.script(ROUTE, { json: openaiCompletion({ content: 'Hi.' }, { usage: USAGE }) });
    const before = fake.to(ROUTE).length;
    const input = await callInput(id, genuine);
    expect(await rogueCalls(id, [input, input])).toEqual([
      'answered: Hi.',
      expect.stringMatching(/^refused: no model was called: the model-call grant for call .* was spent by another call/),
    ]);
    // The same workflow id started anew (a new run) with the same grant.
    expect(await rogueCalls(id, [input])).toEqual([expect.stringMatching(/was spent by another call/)]);
    expect(fake.to(ROUTE).length).toBe(before + 1);
    // The one call that ran was held to its grant's answer cap.
    expect((fake.to(ROUTE).at(-1)!.body as { max_tokens?: number }).max_tokens).toBe(512);
  }, 120_000);
});

describe("two conversations of one agent calling at once at the edge of the agent's day", () => {
  it('reserve the room in the audit log: one call runs, the other is refused before it is sent', async () => {
    const message = 'what is in the workspace?';
    const estimate = estimateCall(
      [
        { role: 'system', content: SYSTEM_PROMPT },
        { role: 'user', content: message },
      ],
      toolsOf('filesystem'),
    );
    const firstCall = estimate.prompt_tokens + estimate.answer_tokens;
    const id = uniqueId('budget-race');
    const created = await stack.api('POST', '/api/agents', {
      skill_id: 'filesystem',
      agent_id: id,
      runtime: 'runc',
      budget: { day_tokens: firstCall + 100 },
    });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    try {
      await waitForStatus(stack.api, id, ['running']);
      const conversations = await Promise.all(
        [1, 2].map(async () => (await stack.api('POST', '/api/conversations', { agent_id: id })).body.id as string),
      );
      // The model answers both at once, should both calls get to it.
      fake.script(ROUTE, ...[1, 2].map(() => ({ json: openaiCompletion({ content: 'Nothing yet.' }, { usage: USAGE }) })));
      const before = fake.to(ROUTE).length;
      const turns = await Promise.all(
        conversations.map(
          async (c) =>
            (await stack.api('POST', `/api/conversations/${c}/messages`, { message, wait_seconds: 120 })).body as {
              status: string;
              error: string | null;
            },
        ),
      );
      expect(turns.map((t) => t.status).sort()).toEqual(['answered', 'over_budget']);
      expect(turns.find((t) => t.status === 'over_budget')!.error).toMatch(
        // The other's reservation, or what it reported once it was recorded: whichever the check saw.
        new RegExp(`token budget: the agent's conversations today \\(UTC\\) spent (${firstCall}|110) of ${firstCall + 100} tokens`),
      );
      expect(fake.to(ROUTE).length).toBe(before + 1);
      // The call that ran reserved its estimate, and its model.call replaced the reservation in the day's sum.
      const reserved = await stack.audit.list({ kind: 'model.reserve', agent_id: id, limit: 10 });
      expect(reserved.map((e) => e.details.estimated_tokens)).toEqual([firstCall]);
      const answered = conversations[turns.findIndex((t) => t.status === 'answered')]!;
      await recordHistory('conversation-model-call-granted', answered);
      await recordHistory('conversation-day-reserved-elsewhere', conversations[turns.findIndex((t) => t.status === 'over_budget')]!);
    } finally {
      await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    }
  }, 240_000);
});
