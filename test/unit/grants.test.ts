/** Grants and the sandbox worker's last check before a command runs (no engine: the inner activity is a stand-in that records calls). */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { MockActivityEnvironment } from '@temporalio/testing';
import { describe, expect, it } from 'vitest';
import { actionExec } from '../../domain/action-exec.js';
import { actionHash, Grants, type ActionClaims, type ApprovalClaims, type ActionSubject } from '../../domain/grants.js';
import { Keyring } from '../../domain/keyring.js';
import type { Identity } from '../../domain/roles.js';
import { createGrantActivities, guardSandboxActivities, type ExecAuthority } from '../../activities/grants.js';
import type { ActionRecord } from '../../domain/action.js';
import { loadPolicy } from '../../domain/policy.js';
import type { SandboxActivities } from '../../activities/sandbox.js';
import { prepareCommand, SKILLS } from '../../skills/index.js';

const keyring = (key = randomBytes(32)) => Keyring.load({ masterKey: key.toString('base64'), dataDir: tmpdir() });
const grants = new Grants(keyring());
const requester: Identity = { key_id: 'key_op', name: 'op', role: 'operator' };
const alice: Identity = { key_id: 'key_alice', name: 'alice', role: 'approver' };
const bob: Identity = { key_id: 'key_bob', name: 'bob', role: 'approver' };
const ID = `act-${'1'.repeat(16)}`;
const subject: ActionSubject & { id: string } = {
  id: ID,
  action_type: 'skill_execution',
  skill_id: 'shell',
  operation: 'exec',
  agent_id: 'agent-1',
  parameters: { command: 'id' },
};

const actionGrant = (over: Partial<ActionClaims> = {}) =>
  grants.sign<ActionClaims>({
    kind: 'action',
    action_id: ID,
    action_hash: actionHash(subject),
    requester,
    level: 'critical',
    approvals_required: 2,
    expires_at: new Date(Date.now() + 60_000).toISOString(),
    ...over,
  });
const approval = (approver: Identity, over: Partial<ApprovalClaims> = {}) =>
  grants.sign<ApprovalClaims>({
    kind: 'approval',
    action_id: ID,
    action_hash: actionHash(subject),
    approver,
    approved: true,
    comment: null,
    issued_at: new Date().toISOString(),
    ...over,
  });

function guarded() {
  const calls: unknown[] = [];
  const inner = {
    execInSandbox: async (...args: unknown[]) => (calls.push(args), { exit_code: 0 }),
  } as unknown as SandboxActivities;
  return { calls, exec: guardSandboxActivities(grants, inner).execInSandbox };
}
const request = () => ({ agentId: 'agent-1', ...actionExec(ID, prepareCommand('shell', 'exec', subject.parameters)) });
const run = (authority: ExecAuthority | undefined, req = request(), workflowId = ID) => {
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'r' } });
  const { calls, exec } = guarded();
  return { calls, result: env.run(exec, { ...req, ...(authority ? { authority } : {}) } as never) };
};

describe('grants', () => {
  it('verify returns the claims of a genuine grant and refuses an altered, foreign or misplaced one', () => {
    const g = actionGrant();
    expect(grants.verify(g, 'action').action_id).toBe(ID);
    expect(() => grants.verify({ ...g, claims: { ...g.claims, approvals_required: 0 } }, 'action')).toThrow(/signature does not match/);
    expect(() => new Grants(keyring()).verify(g, 'action')).toThrow(/master key this worker does not have/);
    expect(() => grants.verify(g, 'approval')).toThrow(/not a grant of the approval kind/);
    expect(() => grants.verify({ warden_undecodable: 'x' }, 'action')).toThrow(/no action grant/);
  });

  it('the action hash covers the agent, the skill and the operation, not only the parameters', () => {
    const base = actionHash(subject);
    expect(actionHash({ ...subject, agent_id: 'agent-2' })).not.toBe(base);
    expect(actionHash({ ...subject, action_type: 'chat' })).not.toBe(base);
    expect(actionHash({ ...subject, parameters: { command: 'id ' } })).not.toBe(base);
  });
});

describe('the control worker decides the action again', () => {
  it('denies a chat that names shell.exec, though a genuine grant says low', async () => {
    const chat = { ...subject, action_type: 'chat' as const };
    const grant = actionGrant({ action_hash: actionHash(chat), level: 'low', approvals_required: 0 });
    const { verifyAction } = createGrantActivities({ grants, policy: loadPolicy(SKILLS) });
    const verdict = await verifyAction({ workflowId: ID, action: { ...chat, requester } as ActionRecord, grant });
    expect(verdict).toMatchObject({ ok: true, allowed: false, level: 'critical', rule: 'skill-fit' });
    expect(verdict).not.toHaveProperty('exec');
    expect((verdict as { reasons: string[] }).reasons.join(' ')).toMatch(/a chat action runs no skill, but this one names shell\.exec/);
  });
});

describe('the sandbox worker runs a command only with an authority that holds', () => {
  const full = (): ExecAuthority => ({ action: subject, grant: actionGrant(), approvals: [approval(alice), approval(bob)] });

  it('runs with a genuine grant and enough approvals', async () => {
    const { calls, result } = run(full());
    await expect(result).resolves.toMatchObject({ exit_code: 0 });
    expect(calls).toHaveLength(1);
    const [input, journaled] = calls[0] as [object, unknown];
    expect(input).not.toHaveProperty('authority');
    // The command an executor runs natively is the signed action's, rebuilt here, keyed by its id.
    expect(journaled).toEqual({ action_id: ID, argv: prepareCommand('shell', 'exec', subject.parameters).argv });
  });

  it('takes the command it runs natively from the signed action only, never from the request', async () => {
    const forged = { action_id: 'act-other', argv: ['/bin/sh', '-c', 'curl evil'] };
    const env = new MockActivityEnvironment({ workflowExecution: { workflowId: ID, runId: 'r' } });
    const { calls, exec } = guarded();
    // A second argument, or a field named like the journaled action, in what the workflow sends: neither counts.
    await env.run(exec as (...args: unknown[]) => Promise<unknown>, { ...request(), authority: full(), journaled: forged }, forged);
    expect((calls[0] as unknown[])[1]).toEqual({ action_id: ID, argv: prepareCommand('shell', 'exec', subject.parameters).argv });
  });

  const refusals: Array<[string, () => ReturnType<typeof run>, RegExp]> = [
    ['no authority at all', () => run(undefined), /carries no grant/],
    ['one approval where two are needed', () => run({ ...full(), approvals: [approval(alice)] }), /needs 2 approval/],
    ['the same approver twice', () => run({ ...full(), approvals: [approval(alice), approval(alice)] }), /needs 2 approval/],
    [
      'the requester approving their own action',
      () => run({ ...full(), approvals: [approval(alice), approval(requester)] }),
      /needs 2 approval/,
    ],
    [
      'a viewer approving',
      () => run({ ...full(), approvals: [approval(alice), approval({ key_id: 'k_v', name: 'v', role: 'viewer' })] }),
      /needs 2 approval/,
    ],
    [
      'an approval of another version',
      () => run({ ...full(), approvals: [approval(alice), approval(bob, { action_hash: 'f'.repeat(64) })] }),
      /needs 2 approval/,
    ],
    [
      'a rejection counted as approval',
      () => run({ ...full(), approvals: [approval(alice), approval(bob, { approved: false })] }),
      /needs 2 approval/,
    ],
    [
      'a forged approval',
      () => run({ ...full(), approvals: [approval(alice), { ...approval(bob), mac: '0'.repeat(64) }] }),
      /signature does not match/,
    ],
    [
      'an expired grant',
      () => run({ ...full(), grant: actionGrant({ expires_at: new Date(Date.now() - 1000).toISOString() }) }),
      /expired/,
    ],
    ['another workflow using the grant', () => run(full(), request(), `act-${'2'.repeat(16)}`), /not for this workflow/],
    [
      'other parameters than the signed ones',
      () => run({ ...full(), action: { ...subject, parameters: { command: 'rm -rf /workspace' } } }),
      /differs from what the API signed/,
    ],
    [
      'another command than the signed parameters make',
      () => run(full(), { ...request(), command: ['/bin/sh', '-c', 'cat /proc/1/environ'] }),
      /command differs/,
    ],
    [
      'secrets the signed parameters do not name',
      () => run(full(), { ...request(), secrets: ['DB_PASSWORD'] } as never),
      /command differs/,
    ],
    ['a longer timeout', () => run(full(), { ...request(), timeout_ms: 3_600_000 }), /command differs/],
  ];
  for (const [name, attempt, why] of refusals) {
    it(`refuses ${name}`, async () => {
      const { calls, result } = attempt();
      await expect(result).rejects.toMatchObject({ type: 'Unauthorized', message: expect.stringMatching(why), nonRetryable: true });
      expect(calls).toHaveLength(0);
    });
  }
});
