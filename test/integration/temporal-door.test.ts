/**
 * Temporal's port is not a way around roles: an attacker who reaches the frontend (and, worst case,
 * can encrypt payloads as Warden's own clients do) forges approvals, workflow inputs, exec updates
 * and undecodable messages. None of them runs a command, approves anything or wedges a workflow:
 * what grants authority carries the API's signature, checked by the workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { PassThrough } from 'node:stream';
import { Client, Connection, WorkflowUpdateFailedError } from '@temporalio/client';
import type { ActionRecord } from '../../domain/action.js';
import { Grants } from '../../domain/grants.js';
import { Keyring } from '../../domain/keyring.js';
import { tmpdir } from 'node:os';
import {
  approveSignal,
  approveUpdate,
  CONTROL_TASK_QUEUE,
  execUpdate,
  stopSignal,
  type ActionWorkflowInput,
} from '../../workflows/definitions.js';
import { prepareCommand } from '../../skills/index.js';
import { docker, startStack, submitShell, submitShellAs, testPayloadCodec, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { SANDBOX_GID, SANDBOX_UID } from '../../sandbox/spec.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let agentId: string;
let operator: string;
let alice: string;
let plain: Client;
let plainConnection: Connection;
const CANARY = `canary-${randomBytes(8).toString('hex')}`;

async function action(id: string): Promise<ActionRecord> {
  return (await stack.api('GET', `/api/actions/${id}`)).body as ActionRecord;
}
const finished = (id: string) => waitFor(`action ${id} to finish`, async () => ((await action(id)).completed_at ? action(id) : undefined));

/** Runs a command in the agent's container straight through the engine (not through Warden). */
async function inSandbox(cmd: string): Promise<string> {
  const exec = await docker.getContainer(`warden-agent-${agentId}`).exec({
    Cmd: ['sh', '-c', cmd],
    User: `${SANDBOX_UID}:${SANDBOX_GID}`,
    AttachStdout: true,
    AttachStderr: true,
  });
  const stream = await exec.start({ hijack: true, stdin: false });
  const out = new PassThrough();
  const chunks: Buffer[] = [];
  out.on('data', (c: Buffer) => chunks.push(c));
  docker.modem.demuxStream(stream, out, out);
  await new Promise((resolve) => (stream.on('end', resolve), stream.on('close', resolve)));
  return Buffer.concat(chunks).toString('utf8');
}

const kinds = async (id: string) => (await stack.audit.list({ action_id: id, limit: 100 })).reverse().map((e) => e.kind);

beforeAll(async () => {
  stack = await startStack();
  operator = await stack.keyFor('operator');
  alice = (await stack.keys.create('alice', 'approver', null)).key;
  expect((await stack.api('PUT', '/api/secrets/DOOR_TOKEN', { value: CANARY })).status).toBeLessThan(300);
  agentId = uniqueId('door');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  plainConnection = await Connection.connect({ address: stack.config.temporalAddress });
  plain = new Client({ connection: plainConnection }); // no codec: plaintext payloads
});
afterAll(async () => {
  await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await plainConnection?.close();
  await stack?.stop();
});

const submitAs = (key: string, command: string) => submitShellAs(stack, key, agentId, command);

describe('forged approvals', () => {
  it('an approval signal without the API grant, with a made-up approver, approves nothing', async () => {
    const pending = await submitAs(operator, 'touch /workspace/forged-approval');
    expect(pending.status).toBe('pending');
    const madeUp = { key_id: 'key_madeup', name: 'mallory', role: 'admin' as const };
    await stack.client.workflow
      .getHandle(pending.id)
      .signal(approveSignal, { approver: madeUp, approved: true, params_hash: pending.params_hash });
    const refused = await waitFor(
      'the refusal',
      async () => (await stack.audit.list({ action_id: pending.id, kind: 'approval.refused' }))[0],
    );
    expect(refused.actor).toBe('unverified');
    expect(refused.details.reason).toMatch(/no approval grant/);
    expect((await action(pending.id)).status).toBe('pending');
    // The update door refuses it the same way, and says why.
    const update = stack.client.workflow.getHandle(pending.id).executeUpdate(approveUpdate, {
      args: [{ approver: madeUp, approved: true, params_hash: pending.params_hash }],
    });
    await expect(update).resolves.toMatchObject({ ok: false, reason: expect.stringMatching(/no approval grant/) });
    expect((await action(pending.id)).status).toBe('pending');
    expect(await inSandbox('test -e /workspace/forged-approval && echo yes || echo no')).toBe('no\n');
  });

  it('a grant signed with another master key, or for another action, or for another version of it, counts for nothing', async () => {
    const pending = await submitAs(operator, 'touch /workspace/other-key');
    const other = await submitAs(operator, 'touch /workspace/other-action');
    const approver = (await stack.keys.authenticate(alice))!;
    const claims = (id: string, hash: string) => ({
      kind: 'approval' as const,
      action_id: id,
      action_hash: hash,
      approver,
      approved: true,
      comment: null,
      issued_at: new Date().toISOString(),
    });
    const foreign = new Grants(Keyring.load({ masterKey: randomBytes(32).toString('base64'), dataDir: tmpdir() }));
    const genuine = new Grants(testPayloadCodec().keyring);
    const attempts = [
      foreign.sign(claims(pending.id, pending.params_hash)),
      genuine.sign(claims(other.id, other.params_hash)),
      genuine.sign(claims(pending.id, 'f'.repeat(64))),
    ];
    for (const grant of attempts) {
      const verdict = await stack.client.workflow
        .getHandle(pending.id)
        .executeUpdate(approveUpdate, { args: [{ approver, approved: true, params_hash: pending.params_hash, grant }] });
      expect(verdict.ok).toBe(false);
    }
    const reasons = (await stack.audit.list({ action_id: pending.id, kind: 'approval.refused' })).reverse().map((e) => e.details.reason);
    expect(reasons).toEqual([
      expect.stringMatching(/names a master key this worker does not have/),
      expect.stringMatching(/is for action .*, not /),
      expect.stringMatching(/parameters hash does not match/),
    ]);
    expect((await action(pending.id)).status).toBe('pending');
  });

  it('the same command on two agents has two hashes: one approval cannot serve both', async () => {
    const second = uniqueId('door2');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: second, runtime: 'runc' })).status).toBe(201);
    const a = await submitShell(stack.api, agentId, 'echo same');
    const b = await submitShell(stack.api, second, 'echo same');
    expect(a.body.params_hash).not.toBe(b.body.params_hash);
    await stack.api('POST', `/api/agents/${second}/stop`, { force: true });
  });
});

describe('forged workflow input', () => {
  it('a hand-started action claiming approval, no approvals needed and a vault secret never runs, and the secret stays in the vault', async () => {
    const template = await submitAs(operator, 'echo template');
    const id = `act-${randomBytes(8).toString('hex')}`;
    const forged: ActionRecord = {
      ...template,
      id,
      parameters: { command: 'echo "$DOOR_TOKEN" | base64 > /workspace/loot', secrets: ['DOOR_TOKEN'] },
      status: 'approved',
      security_level: 'low',
      approvals_required: 0,
    };
    // With the template's genuine grant (copied from its history), and with none at all.
    const inputs: ActionWorkflowInput[] = [
      {
        action: forged,
        command: prepareCommand('shell', 'exec', forged.parameters),
        expirySeconds: 60,
        grant: (await grantOf(template.id))!,
      },
      { action: { ...forged, id: `${id.slice(0, -1)}0` }, command: prepareCommand('shell', 'exec', forged.parameters), expirySeconds: 60 },
    ];
    for (const input of inputs) {
      const handle = await stack.client.workflow.start('actionWorkflow', {
        taskQueue: CONTROL_TASK_QUEUE,
        workflowId: input.action.id,
        args: [input],
      });
      const done = (await handle.result()) as ActionRecord;
      expect(done.status).toBe('rejected');
      expect(done.error).toMatch(/^refused: /);
      expect(await kinds(input.action.id)).toEqual(['action.refused']);
    }
    expect(await inSandbox('cat /workspace/loot 2>/dev/null; echo end')).toBe('end\n');
  });

  it('an input that claims approval for a genuinely signed action is decided again: it waits for approval', async () => {
    const rejected = await submitAs(operator, 'touch /workspace/second-life');
    await stack.realApp.request(`/api/actions/${rejected.id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ approved: false, params_hash: rejected.params_hash }),
    });
    await finished(rejected.id);
    // The closed workflow's id may be used again: its genuine grant, an input claiming approval.
    const input: ActionWorkflowInput = {
      action: { ...rejected, status: 'approved', approvals_required: 0, approvals: [], completed_at: null, error: null },
      command: prepareCommand('shell', 'exec', rejected.parameters),
      expirySeconds: 60,
      grant: (await grantOf(rejected.id))!,
    };
    const handle = await stack.client.workflow.start('actionWorkflow', {
      taskQueue: CONTROL_TASK_QUEUE,
      workflowId: rejected.id,
      args: [input],
    });
    await waitFor(
      'the re-decided action to wait',
      async () => (await action(rejected.id)).status === 'pending' && (await action(rejected.id)).approvals_required === 1,
    );
    expect(await inSandbox('test -e /workspace/second-life && echo yes || echo no')).toBe('no\n');
    await handle.terminate('test over');
  });
});

describe('the agent has no command door', () => {
  it('an exec update to an agent is refused: commands run only as actions', async () => {
    const update = stack.client.workflow
      .getHandle(agentId)
      .executeUpdate(execUpdate, { args: [{ command: ['touch', '/workspace/exec-door'], timeout_ms: 5000, max_output_bytes: 100 }] });
    await expect(update).rejects.toBeInstanceOf(WorkflowUpdateFailedError);
    expect(await inSandbox('test -e /workspace/exec-door && echo yes || echo no')).toBe('no\n');
  });
});

describe('undecodable and invalid messages', () => {
  it('a plaintext approve signal is refused and recorded; the action still answers and can still be approved', async () => {
    const pending = await submitAs(operator, 'echo after junk');
    await plain.workflow.getHandle(pending.id).signal('approve', { junk: 1 });
    await waitFor('the refusal', async () => (await stack.audit.list({ action_id: pending.id, kind: 'message.refused' }))[0]);
    expect((await action(pending.id)).status).toBe('pending');
    const approve = await stack.realApp.request(`/api/actions/${pending.id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${alice}`, 'content-type': 'application/json' },
      body: JSON.stringify({ approved: true, params_hash: pending.params_hash }),
    });
    expect(approve.status).toBe(200);
    expect(await finished(pending.id)).toMatchObject({ status: 'completed', result: { stdout: 'after junk\n' } });
  });

  it('a plaintext stop signal does not stop the agent, and the agent still answers', async () => {
    await plain.workflow.getHandle(agentId).signal('stop', { force: true });
    await waitFor('the refusal', async () => (await stack.audit.list({ agent_id: agentId, kind: 'message.refused' }))[0]);
    // An honest signal of the wrong shape is refused the same way.
    await stack.client.workflow.getHandle(agentId).signal(stopSignal, { force: 'yes' } as never);
    await waitFor('the second refusal', async () => (await stack.audit.list({ agent_id: agentId, kind: 'message.refused' })).length >= 2);
    expect((await stack.api('GET', `/api/agents/${agentId}`)).body.status).toBe('running');
  });
});

/** The grant an action's workflow was started with, read back from its history (as anyone with the codec could). */
async function grantOf(id: string): Promise<ActionWorkflowInput['grant']> {
  const history = await stack.client.workflow.getHandle(id).fetchHistory();
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  const [payload] = await testPayloadCodec().decode(started!.input!.payloads!.map((p) => ({ metadata: p.metadata!, data: p.data! })));
  return (JSON.parse(Buffer.from(payload!.data!).toString('utf8')) as ActionWorkflowInput).grant;
}
