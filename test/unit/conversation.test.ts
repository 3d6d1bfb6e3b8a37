/**
 * The pure pieces of conversations and the checks of their activities, without Temporal: tool
 * names and schemas, what a tool result tells the model, the conversation grant's checks, and a
 * tool call becoming (or not becoming) a signed action for the conversation's requester.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import {
  checkConversationGrant,
  createConversationActivities,
  toolCallActionId,
  type PreparedToolCall,
  type ToolCallInput,
} from '../../activities/conversation.js';
import { createGrantActivities } from '../../activities/grants.js';
import { createModelActivities, toolsOf, type ModelCallInput } from '../../activities/model.js';
import { MAX_TOOL_RESULT_CHARS, operationOfTool, toolName, toolResultText } from '../../domain/conversation.js';
import { Grants, messageHash, transcriptHash, type ConversationClaims, type ModelCallClaims } from '../../domain/grants.js';
import { Keyring } from '../../domain/keyring.js';
import { loadPolicy } from '../../domain/policy.js';
import type { Identity } from '../../domain/roles.js';
import { SKILLS } from '../../skills/index.js';
import type { ProviderRegistry } from '../../llm/registry.js';
import { ModelCallLedger } from '../../stores/model-call-ledger.js';

const keyring = () => Keyring.load({ masterKey: randomBytes(32).toString('base64'), dataDir: tmpdir() });
const grants = new Grants(keyring());
const owner: Identity = { key_id: 'key_owner', name: 'owner', role: 'operator' };
const CONVERSATION = 'cnv-0123456789abcdef';
const settings = { isRevoked: async (id: string) => id === 'key_revoked', approvalExpirySeconds: 600 };

const claims = (over: Partial<ConversationClaims> = {}): ConversationClaims => ({
  kind: 'conversation',
  conversation_id: CONVERSATION,
  agent_id: 'agent-1',
  skill_id: 'filesystem',
  requester: owner,
  issued_at: new Date().toISOString(),
  expires_at: new Date(Date.now() + 60_000).toISOString(),
  ...over,
});
const messageGrant = (text: string, conversationId = CONVERSATION) =>
  grants.sign({ kind: 'message', conversation_id: conversationId, message_hash: messageHash(text), sender: owner, issued_at: '' });

describe('tools', () => {
  it("are the skill's operations, named skill_operation, with their zod schemas as JSON Schema", () => {
    const tools = toolsOf('filesystem');
    expect(tools.map((t) => t.name)).toEqual(Object.keys(SKILLS.filesystem!.operations).map((op) => `filesystem_${op}`));
    const write = tools.find((t) => t.name === 'filesystem_write')!;
    expect(write.parameters).toMatchObject({ type: 'object', required: ['path', 'content'], additionalProperties: false });
    expect(write.description).toBe(SKILLS.filesystem!.operations.write!.description);
  });

  it("name only the conversation's skill's operations", () => {
    const ops = Object.keys(SKILLS.shell!.operations);
    expect(operationOfTool('shell', ops, toolName('shell', 'exec'))).toBe('exec');
    expect(operationOfTool('shell', ops, 'filesystem_read')).toBeNull();
    expect(operationOfTool('shell', ops, 'shell_')).toBeNull();
  });
});

describe('a tool result', () => {
  const base = { id: 'act-1', security_level: 'high' as const, error: null, result: null };
  it('says what became of the action: ran, with its output, or did not run, and why', () => {
    expect(
      toolResultText({
        ...base,
        status: 'completed',
        result: { exit_code: 0, stdout: 'a\n', stderr: '', timed_out: false, duration_ms: 3 },
      }),
    ).toBe('action act-1 (high) completed\nexit code 0\nstdout:\na\n');
    expect(toolResultText({ ...base, status: 'rejected', error: 'rejected by alice: no' })).toBe(
      'action act-1 (high) rejected: rejected by alice: no. It did not run.',
    );
    expect(toolResultText({ ...base, status: 'expired', error: 'no decision within 60 s' })).toMatch(/expired: .*It did not run\.$/);
    expect(
      toolResultText({
        ...base,
        status: 'failed',
        error: 'exited with code 2',
        result: { exit_code: 2, stdout: '', stderr: 'boom', timed_out: false, duration_ms: 1 },
      }),
    ).toBe('action act-1 (high) failed: exited with code 2\nexit code 2\nstdout:\n\nstderr:\nboom');
  });

  it('is cut to a bound, saying how much was left out', () => {
    const long = toolResultText({
      ...base,
      status: 'completed',
      result: { exit_code: 0, stdout: 'x'.repeat(MAX_TOOL_RESULT_CHARS * 2), stderr: '', timed_out: false, duration_ms: 1 },
    });
    expect(long.length).toBeLessThan(MAX_TOOL_RESULT_CHARS + 100);
    expect(long).toMatch(/\[cut: \d+ more characters\]$/);
  });
});

describe('the conversation grant', () => {
  it('holds for its own conversation only, unexpired, while its key stands', async () => {
    expect((await checkConversationGrant(grants, grants.sign(claims()), CONVERSATION, settings)).requester).toEqual(owner);
    await expect(checkConversationGrant(grants, grants.sign(claims()), 'cnv-other', settings)).rejects.toThrow(/is for conversation/);
    const expired = grants.sign(claims({ expires_at: new Date(Date.now() - 1).toISOString() }));
    await expect(checkConversationGrant(grants, expired, CONVERSATION, settings)).rejects.toThrow(/expired/);
    const revoked = grants.sign(claims({ requester: { ...owner, key_id: 'key_revoked' } }));
    await expect(checkConversationGrant(grants, revoked, CONVERSATION, settings)).rejects.toThrow(/was revoked/);
    // A worker that cannot tell revoked keys acts for no conversation.
    await expect(checkConversationGrant(grants, grants.sign(claims()), CONVERSATION, undefined)).rejects.toThrow(
      /cannot tell revoked keys/,
    );
  });

  it('made with another key, altered, or of another kind, does not hold', async () => {
    const other = new Grants(keyring()).sign(claims());
    await expect(checkConversationGrant(grants, other, CONVERSATION, settings)).rejects.toThrow(
      /names a master key this worker does not have/,
    );
    const forged = { ...grants.sign(claims()), mac: '00'.repeat(32) };
    await expect(checkConversationGrant(grants, forged, CONVERSATION, settings)).rejects.toThrow(/signature does not match/);
    const genuine = grants.sign(claims());
    const altered = { ...genuine, claims: { ...genuine.claims, requester: { ...owner, role: 'admin' } } };
    await expect(checkConversationGrant(grants, altered, CONVERSATION, settings)).rejects.toThrow(/signature does not match/);
    await expect(checkConversationGrant(grants, messageGrant('hi'), CONVERSATION, settings)).rejects.toThrow(
      /not a grant of the conversation kind/,
    );
  });
});

describe('a tool call', () => {
  // No action awaits approval: visibility answers with nothing.
  const client = { workflow: { list: async function* () {} } } as unknown as Client;
  const policy = loadPolicy(SKILLS);
  const { prepareToolCall } = createConversationActivities({ client, grants, policy, settings });
  const env = () => new MockActivityEnvironment({ workflowExecution: { workflowId: CONVERSATION, runId: 'run' } });
  const input = (over: Partial<ToolCallInput> = {}): ToolCallInput => ({
    grant: grants.sign(claims()),
    message: { text: 'list the files', grant: messageGrant('list the files') },
    turn: 2,
    call_index: 1,
    call: { id: 'call_1', name: 'filesystem_list', arguments: {} },
    ...over,
  });

  it("becomes an action of the conversation's requester, signed with its origin, its id fixed by the conversation, turn and call", async () => {
    const prepared = (await env().run(prepareToolCall, input())) as PreparedToolCall;
    expect(prepared.ok).toBe(true);
    if (!prepared.ok) return;
    const { action, grant } = prepared.input;
    expect(action).toMatchObject({
      id: toolCallActionId(CONVERSATION, 2, 1),
      skill_id: 'filesystem',
      operation: 'list',
      agent_id: 'agent-1',
      requester: owner,
      status: 'approved',
      origin: { conversation_id: CONVERSATION, turn: 2 },
    });
    expect(grant!.claims.origin).toEqual({ conversation_id: CONVERSATION, turn: 2 });
    expect(toolCallActionId(CONVERSATION, 2, 1)).toMatch(/^act-[0-9a-f]{16}$/);
    expect(toolCallActionId(CONVERSATION, 2, 2)).not.toBe(action.id);
    // The control worker's check of the action accepts it, and refuses it with another origin.
    const { verifyAction } = createGrantActivities({ grants, policy });
    expect(await verifyAction({ workflowId: action.id, action, grant })).toMatchObject({ ok: true, allowed: true });
    const moved = { ...action, origin: { conversation_id: 'cnv-ffffffffffffffff', turn: 2 } };
    expect(await verifyAction({ workflowId: action.id, action: moved, grant })).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/conversation/),
    });
  });

  it('of a conversation that took in flagged content is raised to high, signed so, and the worker that decides again says why', async () => {
    const taint = {
      turn: 1,
      tool_call_id: 'call_read',
      tool: 'filesystem_read',
      verdict: 'suspicious' as const,
      categories: ['exfiltration'],
    };
    const prepared = (await env().run(prepareToolCall, input({ taint }))) as PreparedToolCall;
    if (!prepared.ok) throw new Error(prepared.reason);
    const { action, grant } = prepared.input;
    expect(action).toMatchObject({ security_level: 'high', approvals_required: 1, status: 'pending' });
    expect(grant!.claims).toMatchObject({
      level: 'high',
      approvals_required: 1,
      raised: expect.stringMatching(/call call_read \(filesystem_read\) in turn 1/),
    });
    const { verifyAction } = createGrantActivities({ grants, policy });
    const verdict = await verifyAction({ workflowId: action.id, action, grant });
    expect(verdict).toMatchObject({ ok: true, level: 'high', approvals_required: 1 });
    expect(verdict.ok && verdict.reasons.at(-1)).toMatch(
      /^raised to high by the API at submission \(raised to high: the conversation took in content/,
    );
    // What a query answers before the worker's check reads as what it answers after.
    expect(verdict.ok && verdict.reasons).toEqual(action.reasons);
  });

  it('is refused, saying why, without the message grant of the turn, for another tool, or with arguments that do not fit', async () => {
    const refused = async (over: Partial<ToolCallInput>) => {
      const prepared = (await env().run(prepareToolCall, input(over))) as PreparedToolCall;
      expect(prepared.ok).toBe(false);
      return prepared.ok ? '' : prepared.reason;
    };
    expect(await refused({ message: { text: 'delete everything', grant: messageGrant('list the files') } })).toMatch(
      /^refused: the turn carries no message the API passed on/,
    );
    expect(await refused({ message: { text: 'list the files', grant: messageGrant('list the files', 'cnv-other') } })).toMatch(
      /^refused: the turn carries no message/,
    );
    expect(await refused({ message: { text: 'list the files', grant: undefined } })).toMatch(/^refused: no message grant/);
    expect(await refused({ call: { id: 'c', name: 'shell_exec', arguments: { command: 'id' } } })).toBe(
      'there is no tool named shell_exec',
    );
    expect(await refused({ call: { id: 'c', name: 'filesystem_read', arguments: { path: '/etc/passwd' } } })).toMatch(
      /filesystem\.read: path/,
    );
    expect(
      await refused({ call: { id: 'c', name: 'filesystem_list', arguments: {}, raw_arguments: '{', parse_error: 'not JSON' } }),
    ).toMatch(/could not be read/);
  });
});

describe('a model call', () => {
  // No provider on this worker: a call that passes the grants' checks is refused next, for that.
  const providers = { get: () => undefined } as unknown as ProviderRegistry;
  const ledgerFile = join(mkdtempSync(join(tmpdir(), 'warden-model-calls-')), 'model-calls.db');
  const spentCalls = ModelCallLedger.open(ledgerFile);
  const { callModel } = createModelActivities({ grants, providers, settings, spentCalls });
  /** The activity as Temporal schedules it: `scheduled` tells one scheduled call from another (its retries keep it). */
  const env = (activityId = '1', scheduled = 1000, attempt = 1) =>
    new MockActivityEnvironment({
      workflowExecution: { workflowId: CONVERSATION, runId: 'run' },
      activityId,
      scheduledTimestampMs: scheduled,
      attempt,
    });
  const transcript = (text: string) => [{ role: 'user' as const, content: text }];
  let calls = 0;
  /** The control worker's grant for a new call of this conversation, after its budget check. */
  const callClaims = (text: string, over: Partial<ModelCallClaims> = {}): ModelCallClaims => ({
    kind: 'model_call',
    call_id: `${CONVERSATION}:1:${++calls}`,
    conversation_id: CONVERSATION,
    agent_id: 'agent-1',
    provider: 'default',
    model: null,
    transcript_hash: transcriptHash(transcript(text)),
    max_tokens: 512,
    estimated_tokens: 600,
    estimated_usd: null,
    issued_at: new Date().toISOString(),
    expires_at: new Date(Date.now() + 60_000).toISOString(),
    ...over,
  });
  const input = (message: ModelCallInput['message'], callGrant: unknown = grants.sign(callClaims(message.text))): ModelCallInput => ({
    grant: grants.sign(claims()),
    provider: 'default',
    message,
    messages: transcript(message.text),
    call_grant: callGrant,
  });
  const refused = (why: RegExp) => ({ type: 'Unauthorized', nonRetryable: true, message: expect.stringMatching(why) });

  it("needs the API's grant for the turn's message, in this conversation", async () => {
    const text = 'list the files';
    for (const grant of [undefined, messageGrant('delete everything'), messageGrant(text, 'cnv-other')]) {
      await expect(env().run(callModel, input({ text, grant }))).rejects.toMatchObject(refused(/^no model was called: /));
    }
    await expect(env().run(callModel, input({ text, grant: messageGrant('delete everything') }))).rejects.toThrow(
      'no model was called: the turn carries no message the API passed on to this conversation',
    );
    await expect(env().run(callModel, input({ text, grant: messageGrant(text) }))).rejects.toMatchObject({ type: 'ProviderMisconfigured' });
  });

  it("needs the control worker's grant for exactly this call: genuine, unexpired, for this conversation, agent, model and transcript", async () => {
    const text = 'list the files';
    const message = { text, grant: messageGrant(text) };
    const genuine = grants.sign(callClaims(text));
    const cases: Array<[unknown, RegExp]> = [
      [null, /carries no model-call grant/],
      [{ ...genuine, claims: { ...genuine.claims, max_tokens: 1_000_000 } }, /signature does not match/],
      [new Grants(keyring()).sign(callClaims(text)), /signature does not match|a master key this worker does not have/],
      [grants.sign(claims()), /not a grant of the model_call kind/],
      [grants.sign(callClaims(text, { expires_at: new Date(Date.now() - 1000).toISOString() })), /model-call grant expired/],
      [grants.sign(callClaims(text, { conversation_id: 'cnv-other' })), /for conversation cnv-other, not for this one/],
      [grants.sign(callClaims(text, { agent_id: 'agent-2' })), /for conversation .*not for this one/],
      [grants.sign(callClaims(text, { model: 'gpt-expensive' })), /for default\/gpt-expensive, not for this model/],
      [grants.sign(callClaims(text, { provider: 'other' })), /for other\/its default model, not for this model/],
      [grants.sign(callClaims('a shorter transcript')), /the transcript differs from the one whose cost the budget check estimated/],
    ];
    for (const [callGrant, why] of cases) {
      await expect(env().run(callModel, input(message, callGrant)), String(why)).rejects.toMatchObject(refused(why));
    }
  });

  it('is spent by the first scheduled call that shows it: its retries may call again, another call may not', async () => {
    const text = 'list the files';
    const message = { text, grant: messageGrant(text) };
    const callGrant = grants.sign(callClaims(text));
    const passes = { type: 'ProviderMisconfigured' };
    await expect(env('7', 5000).run(callModel, input(message, callGrant))).rejects.toMatchObject(passes);
    // Temporal's retry of the same scheduled call (a worker lost mid-call).
    await expect(env('7', 5000, 2).run(callModel, input(message, callGrant))).rejects.toMatchObject(passes);
    const spent = /^no model was called: the model-call grant for call .* was spent by another call/;
    // The same grant shown by another activity, by the same activity id scheduled anew, or from another run.
    await expect(env('8', 5000).run(callModel, input(message, callGrant))).rejects.toMatchObject(refused(spent));
    await expect(env('7', 9000).run(callModel, input(message, callGrant))).rejects.toMatchObject(refused(spent));
    const otherRun = new MockActivityEnvironment({
      workflowExecution: { workflowId: CONVERSATION, runId: 'run-2' },
      activityId: '7',
      scheduledTimestampMs: 5000,
    });
    await expect(otherRun.run(callModel, input(message, callGrant))).rejects.toMatchObject(refused(spent));
    // Another process's ledger on the same file knows it too.
    const elsewhere = createModelActivities({ grants, providers, settings, spentCalls: ModelCallLedger.open(ledgerFile) });
    await expect(env('9', 1).run(elsewhere.callModel, input(message, callGrant))).rejects.toMatchObject(refused(spent));
  });

  it('is refused by a worker that cannot tell spent grants', async () => {
    const text = 'list the files';
    const { callModel: withoutLedger } = createModelActivities({ grants, providers, settings });
    await expect(env().run(withoutLedger, input({ text, grant: messageGrant(text) }))).rejects.toMatchObject(
      refused(/cannot tell spent model-call grants/),
    );
  });
});
