/**
 * Secrets end to end on real Temporal and Docker: the admin routes, the vault's rotation, shell
 * actions that name secrets (under runc and runsc), their redacted output, and the canary sweep:
 * a secret value used and echoed by an action appears nowhere it must not be.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { temporal } from '@temporalio/proto';
import type { ActionRecord } from '../../domain/action.js';
import { loadPolicy } from '../../domain/policy.js';
import { SKILLS } from '../../skills/index.js';
import { AuditStore } from '../../stores/audit-store.js';
import { openVault } from '../../stores/vault.js';
import { createApp } from '../../api/app.js';
import { createLogger } from '../../telemetry/logger.js';
import {
  approveWith,
  docker,
  startStack,
  testPayloadCodec,
  uniqueId,
  waitFor,
  waitForStatus,
  testAuditOptions,
} from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
const dataDir = mkdtempSync(join(tmpdir(), 'warden-secrets-'));
const auditFile = join(dataDir, 'audit.db');
const agents: Record<'runc' | 'runsc', string> = { runc: uniqueId('sec'), runsc: uniqueId('sec') };
const key: Record<'operator' | 'approver' | 'viewer', string> = {} as never;

// The canary: a value that must never appear outside the vault and the sandbox.
const CANARY = `canary-${randomBytes(16).toString('hex')}`;
/** A value that breaks naive quoting. */
const TRICKY = "it's a\n'multi-line' $value \\ `id` $(id)\n\n";
/** Every log line of the API and of the SDK runtime (workers, activities, workflows). */
const logLines: string[] = [];
/** Every response body this file received. */
const responses: string[] = [];

async function as(who: string, method: string, path: string, body?: unknown) {
  const headers: Record<string, string> = { authorization: `Bearer ${who}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await stack.realApp.request(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  responses.push(text);
  return { status: res.status, body: (text ? JSON.parse(text) : null) as any };
}
const admin = (method: string, path: string, body?: unknown) =>
  stack.api(method, path, body).then((res) => (responses.push(JSON.stringify(res.body)), res));

const shell = (agent: string, parameters: Record<string, unknown>) =>
  as(key.operator, 'POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'shell',
    operation: 'exec',
    agent_id: agent,
    parameters,
  });

async function finalAction(id: string): Promise<ActionRecord> {
  return waitFor(`action ${id} to finish`, async () => {
    const res = await as(key.viewer, 'GET', `/api/actions/${id}`);
    return res.status === 200 && res.body.completed_at ? (res.body as ActionRecord) : undefined;
  });
}

/** Submits a shell action naming secrets, approves it (shell with secrets is high) and waits for its end. */
async function runWithSecrets(agent: string, command: string, secrets: string[]): Promise<ActionRecord> {
  const submitted = await shell(agent, { command, secrets });
  expect(submitted.status).toBe(202);
  expect(submitted.body).toMatchObject({ security_level: 'high', rule: 'secrets-skills', status: 'pending' });
  expect(await approveWith(stack, key.approver, submitted.body)).toBe(200);
  return finalAction(submitted.body.id);
}

const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

beforeAll(async () => {
  const logger = createLogger('secrets-test', 'trace', { write: (line: string) => void logLines.push(line) });
  stack = await startStack({ vault: openVault({ dataDir }), audit: AuditStore.open(auditFile, testAuditOptions()), logger });
  key.operator = await stack.keyFor('operator');
  key.approver = await stack.keyFor('approver');
  key.viewer = await stack.keyFor('viewer');
  for (const [runtime, id] of Object.entries(agents)) {
    expect((await admin('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime })).status).toBe(201);
  }
  for (const id of Object.values(agents)) await waitForStatus(stack.api, id, ['running']);
});
afterAll(async () => {
  for (const id of Object.values(agents)) await stack?.api('POST', `/api/agents/${id}/stop`, { force: true });
  await stack?.stop();
  await stack?.audit.close();
});

describe('admin routes', () => {
  it('put (201, then 200 when replaced), list names only, delete (404 when unknown); never a value in an answer', async () => {
    const put = await admin('PUT', '/api/secrets/ROUTE_SECRET', { value: 'route value one' });
    expect(put.status).toBe(201);
    expect(put.body).toEqual({
      name: 'ROUTE_SECRET',
      key_id: expect.any(String),
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const again = await admin('PUT', '/api/secrets/ROUTE_SECRET', { value: 'route value two' });
    expect(again.status).toBe(200);
    expect(again.body.created_at).toBe(put.body.created_at);
    const list = await admin('GET', '/api/secrets');
    expect(list.body.secrets.map((s: { name: string }) => s.name)).toContain('ROUTE_SECRET');
    expect(JSON.stringify([put.body, again.body, list.body])).not.toMatch(/route value/);
    expect((await stack.vault.reveal(['ROUTE_SECRET'])).get('ROUTE_SECRET')).toBe('route value two');

    expect((await admin('DELETE', '/api/secrets/ROUTE_SECRET')).status).toBe(200);
    const gone = await admin('DELETE', '/api/secrets/ROUTE_SECRET');
    expect(gone).toMatchObject({ status: 404, body: { error: { code: 'not_found', message: 'no secret named ROUTE_SECRET' } } });

    const audited = (await stack.audit.list({ limit: 1000 })).filter(
      (e) => e.kind.startsWith('secret.') && e.details.name === 'ROUTE_SECRET',
    );
    expect(audited.map((e) => e.kind).reverse()).toEqual(['secret.stored', 'secret.stored', 'secret.deleted']);
    expect(JSON.stringify(audited)).not.toMatch(/route value/);
  });

  it('refuses bad names and values with a 400 naming the problem', async () => {
    expect((await admin('PUT', '/api/secrets/lower_case', { value: 'x' })).body.error.message).toMatch(
      /param\.name: a secret name is 1-64 characters/,
    );
    expect((await admin('PUT', '/api/secrets/WARDEN_EXEC_ID', { value: 'x' })).body.error.message).toMatch(/reserved for Warden/);
    expect((await admin('PUT', '/api/secrets/EMPTY', { value: '' })).body.error.message).toMatch(
      /json\.value: a secret value must not be empty/,
    );
    expect((await admin('PUT', '/api/secrets/BIG', { value: 'x'.repeat(64 * 1024 + 1) })).body.error.message).toMatch(
      /at most 65536 bytes/,
    );
    expect((await admin('PUT', '/api/secrets/EXTRA', { value: 'x', note: 'y' })).status).toBe(400);
    expect((await admin('DELETE', '/api/secrets/not-a-name')).status).toBe(400);
  });

  it('are for admins only: 403 for an operator, 401 without a key', async () => {
    expect((await as(key.operator, 'PUT', '/api/secrets/NOPE', { value: 'x' })).status).toBe(403);
    expect((await as(key.operator, 'GET', '/api/secrets')).status).toBe(403);
    expect((await as(key.operator, 'DELETE', '/api/secrets/NOPE')).status).toBe(403);
    expect((await as(key.operator, 'POST', '/api/secrets/rotate')).status).toBe(403);
    expect((await as('wk_unknown', 'GET', '/api/secrets')).status).toBe(401);
    expect(await stack.vault.has('NOPE')).toBe(false);
  });

  it('answer 503 saying why when the API has no vault', async () => {
    const bare = createApp({
      client: stack.client,
      docker,
      config: stack.config,
      logger: pino({ level: 'silent' }),
      keys: stack.keys,
      audit: stack.audit,
      policy: loadPolicy(SKILLS),
      payloadCodec: testPayloadCodec(),
    });
    const res = await bare.request('/api/secrets', {
      headers: { authorization: `Bearer ${(await stack.keys.create('admin2', 'admin', null)).key}` },
    });
    expect(res.status).toBe(503);
    expect(await res.json()).toEqual({ error: { code: 'vault_unavailable', message: expect.stringMatching(/secrets vault is not open/) } });
  });

  it('rotation makes a new master key, re-encrypts N of N, and every value still reads back', async () => {
    const values = { ROT_A: 'alpha value', ROT_B: 'beta\nvalue\n', ROT_C: 'γ value' };
    for (const [name, value] of Object.entries(values)) expect((await admin('PUT', `/api/secrets/${name}`, { value })).status).toBe(201);
    const total = (await stack.vault.list()).length;
    const before = new Set((await stack.vault.list()).map((s) => s.key_id));
    const res = await admin('POST', '/api/secrets/rotate');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      reencrypted: total,
      total,
      new_master_key: true,
      message: `${total} of ${total} secrets re-encrypted under master key ${res.body.key_id}`,
    });
    expect(before.has(res.body.key_id)).toBe(false);
    expect(new Set((await stack.vault.list()).map((s) => s.key_id))).toEqual(new Set([res.body.key_id]));
    // A process that opens the vault afresh (as the worker would) reads every value.
    expect(Object.fromEntries(await openVault({ dataDir }).reveal(Object.keys(values)))).toEqual(values);
    expect((await stack.audit.list({ kind: 'vault.rotated' }))[0]!.details).toMatchObject({
      reencrypted: total,
      total,
      key_id: res.body.key_id,
    });
  });
});

describe('shell actions with secrets', () => {
  beforeAll(async () => {
    expect((await admin('PUT', '/api/secrets/CANARY_SECRET', { value: CANARY })).status).toBe(201);
    expect((await admin('PUT', '/api/secrets/TRICKY', { value: TRICKY })).status).toBe(201);
  });

  for (const runtime of ['runc', 'runsc'] as const) {
    it(`${runtime}: each secret is an environment variable of its name; echoed values are redacted`, async () => {
      const action = await runWithSecrets(
        agents[runtime],
        'echo "canary: $CANARY_SECRET"; echo "$CANARY_SECRET" >&2; printf %s "$CANARY_SECRET" | sha256sum; printf %s "$TRICKY" | sha256sum',
        ['CANARY_SECRET', 'TRICKY'],
      );
      expect(action).toMatchObject({ status: 'completed', result: { exit_code: 0 } });
      const lines = action.result!.stdout.split('\n');
      expect(lines[0]).toBe('canary: [REDACTED:CANARY_SECRET]');
      expect(lines[1]).toBe(`${sha256(CANARY)}  -`);
      expect(lines[2]).toBe(`${sha256(TRICKY)}  -`);
      expect(action.result!.stderr).toBe('[REDACTED:CANARY_SECRET]\n');
      expect(action.parameters).toEqual({ command: expect.any(String), secrets: ['CANARY_SECRET', 'TRICKY'] });
    });
  }

  it('a command without secrets sees none of them', async () => {
    const res = await as(key.operator, 'POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'shell',
      operation: 'exec',
      agent_id: agents.runc,
      parameters: { command: 'echo "[${CANARY_SECRET:-unset}]"' },
    });
    expect(await approveWith(stack, key.approver, res.body)).toBe(200);
    expect((await finalAction(res.body.id)).result!.stdout).toBe('[unset]\n');
  });

  it('output cut at its size limit does not end in the beginning of a secret', async () => {
    const action = await runWithSecrets(agents.runc, 'printf "0123456789%s" "$CANARY_SECRET"', ['CANARY_SECRET']);
    expect(action.result!.stdout).toBe('0123456789[REDACTED:CANARY_SECRET]');
    const cut = await shell(agents.runc, {
      command: 'printf "0123456789%s" "$CANARY_SECRET"',
      secrets: ['CANARY_SECRET'],
      max_output_bytes: 20,
    });
    expect(await approveWith(stack, key.approver, cut.body)).toBe(200);
    expect((await finalAction(cut.body.id)).result!.stdout).toBe('0123456789[REDACTED:CANARY_SECRET]');
  });

  it('an unknown secret is refused at submission with a 422 naming it, to an admin (who may list the names)', async () => {
    const res = await admin('POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'shell',
      operation: 'exec',
      agent_id: agents.runc,
      parameters: { command: 'true', secrets: ['CANARY_SECRET', 'NO_SUCH_SECRET'] },
    });
    expect(res).toMatchObject({
      status: 422,
      body: { error: { code: 'unknown_secret', message: expect.stringMatching(/^no secret named NO_SUCH_SECRET in the vault/) } },
    });
    expect((await shell(agents.runc, { command: 'true', secrets: ['bad-name'] })).status).toBe(422);
    expect((await shell(agents.runc, { command: 'true', secrets: ['A', 'A'] })).body.error.message).toMatch(
      /each secret may be named once/,
    );
  });

  it('below admin, a known and an unknown secret name get the same answer: names cannot be probed', async () => {
    const known = await shell(agents.runc, { command: 'true', secrets: ['CANARY_SECRET'] });
    const unknown = await shell(agents.runc, { command: 'true', secrets: ['NO_SUCH_SECRET'] });
    expect([known.status, unknown.status]).toEqual([202, 202]);
    expect(unknown.body).toMatchObject({ status: known.body.status, security_level: known.body.security_level, rule: known.body.rule });
    // The name is checked when the command runs, after a person approved asking for it.
    expect(await approveWith(stack, key.approver, unknown.body)).toBe(200);
    expect(await finalAction(unknown.body.id)).toMatchObject({
      status: 'failed',
      result: null,
      error: 'no secret named NO_SUCH_SECRET in the vault',
    });
    expect(await approveWith(stack, key.approver, known.body)).toBe(200);
    expect((await finalAction(known.body.id)).status).toBe('completed');
  });

  it('a secret deleted before the action runs fails it, naming the secret, and nothing runs', async () => {
    expect((await admin('PUT', '/api/secrets/SOON_GONE', { value: 'short-lived' })).status).toBe(201);
    const res = await shell(agents.runc, { command: 'touch ran.txt', secrets: ['SOON_GONE'] });
    expect(res.status).toBe(202);
    expect((await admin('DELETE', '/api/secrets/SOON_GONE')).status).toBe(200);
    expect(await approveWith(stack, key.approver, res.body)).toBe(200);
    const action = await finalAction(res.body.id);
    expect(action).toMatchObject({ status: 'failed', result: null, error: 'no secret named SOON_GONE in the vault' });
    const check = await as(key.operator, 'POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'filesystem',
      operation: 'stat',
      agent_id: agents.runc,
      parameters: { path: 'ran.txt' },
      wait_seconds: 30,
    });
    expect(check.body.result.exit_code).not.toBe(0);
  });
});

describe('redaction in answers and the audit log', () => {
  it("credentials in an action's error and in audit details are redacted", async () => {
    const res = await shell(agents.runc, { command: 'true' });
    const rejected = await as(key.approver, 'POST', `/api/actions/${res.body.id}/approve`, {
      approved: false,
      comment: 'use postgres://app:hunter2-pw@db/app instead',
      params_hash: res.body.params_hash,
    });
    expect(rejected.status).toBe(200);
    const action = await finalAction(res.body.id);
    expect(action.error).toBe(`rejected by test approver: use postgres://app:[REDACTED:password]@db/app instead`);
    const entry = (await stack.audit.list({ action_id: res.body.id, kind: 'approval.rejected' }))[0]!;
    expect(entry.details.comment).toBe('use postgres://app:[REDACTED:password]@db/app instead');
    expect((await stack.audit.verify()).ok).toBe(true);
  });
});

describe('the canary sweep', () => {
  /** The canary in base64 at each of the three alignments it could have inside a longer encoding. */
  const base64Forms = [0, 1, 2].map((k) => {
    const enc = Buffer.concat([Buffer.alloc(k), Buffer.from(CANARY)]).toString('base64');
    return enc.slice(k ? 4 : 0, -4);
  });
  const leaks = (bytes: Buffer) => [CANARY, ...base64Forms].filter((form) => bytes.includes(form));

  it('the canary was used: the runs above saw it (otherwise the sweep proves nothing)', async () => {
    expect((await stack.vault.reveal(['CANARY_SECRET'])).get('CANARY_SECRET')).toBe(CANARY);
    expect(responses.some((r) => r.includes(sha256(CANARY)))).toBe(true);
  });

  it('is not in docker inspect of the containers, nor of their execs, nor in a container log', async () => {
    // An action that holds the secret while we look at the engine's view of it: the executor runs
    // it, so the engine sees no exec of it at all.
    const running = await shell(agents.runsc, { command: 'sleep 5; echo "$CANARY_SECRET"', secrets: ['CANARY_SECRET'] });
    expect(await approveWith(stack, key.approver, running.body)).toBe(200);
    await waitFor(
      'the command to run',
      async () => (await stack.api('GET', `/api/actions/${running.body.id}`)).body?.status === 'executing',
    );
    await new Promise((r) => setTimeout(r, 1000));
    for (const id of Object.values(agents)) {
      const info = await docker.getContainer(`warden-agent-${id}`).inspect();
      expect(leaks(Buffer.from(JSON.stringify(info)))).toEqual([]);
      expect(info.HostConfig.LogConfig?.Type).toBe('none');
      for (const exec of info.ExecIDs ?? []) expect(leaks(Buffer.from(JSON.stringify(await docker.getExec(exec).inspect())))).toEqual([]);
    }
    expect((await finalAction(running.body.id)).result!.stdout).toBe('[REDACTED:CANARY_SECRET]\n');
  });

  it('is in no Temporal history: raw bytes, base64, or any payload or failure decoded with the codec', async () => {
    // Every payload is encrypted, so the raw bytes alone would hide a canary in any activity input or
    // result: each payload (failure attributes included, which the failure converter encrypts) is
    // decrypted and its plaintext swept too.
    const codec = testPayloadCodec({ allowPlaintext: true });
    const decoded: Buffer[] = [];
    const failureAttributes: string[] = [];
    let encrypted = 0;
    const sweep = (node: unknown, field = ''): void => {
      if (!node || typeof node !== 'object' || node instanceof Uint8Array) return;
      const payload = node as { metadata?: Record<string, Uint8Array>; data?: Uint8Array | null };
      if (payload.metadata && payload.metadata.encoding instanceof Uint8Array) {
        if (Buffer.from(payload.metadata.encoding).toString() === 'binary/encrypted') encrypted++;
        const plain = codec.decrypt({ metadata: payload.metadata, data: payload.data ?? undefined });
        decoded.push(...Object.values(plain.metadata ?? {}).map((v) => Buffer.from(v)), Buffer.from(plain.data ?? []));
        if (field === 'encodedAttributes') failureAttributes.push(Buffer.from(plain.data ?? []).toString());
        return;
      }
      for (const [key, value] of Object.entries(node)) sweep(value, key);
    };
    const raw: Buffer[] = [];
    let histories = 0;
    for await (const wf of stack.client.workflow.list()) {
      let nextPageToken: Uint8Array | undefined;
      do {
        const page = await stack.client.workflowService.getWorkflowExecutionHistory({
          namespace: 'default',
          execution: { workflowId: wf.workflowId, runId: wf.runId },
          nextPageToken,
        });
        const bytes = Buffer.from(temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(page).finish());
        expect(leaks(bytes), `history of ${wf.workflowId}`).toEqual([]);
        raw.push(bytes);
        const before = decoded.length;
        sweep(page.history?.events);
        expect(leaks(Buffer.concat(decoded.slice(before))), `decoded payloads of ${wf.workflowId}`).toEqual([]);
        nextPageToken = page.nextPageToken?.length ? page.nextPageToken : undefined;
      } while (nextPageToken);
      histories++;
    }
    expect(histories).toBeGreaterThan(5);
    expect(encrypted).toBeGreaterThan(histories);
    // The positive control: text of an action's parameters is hidden in the raw bytes and found
    // once decoded, so a canary inside any payload would have been found too.
    const known = 'canary: $CANARY_SECRET';
    expect(Buffer.concat(raw).includes(known)).toBe(false);
    expect(Buffer.concat(decoded).includes(known)).toBe(true);
    // And failures: the activity failure of the deleted secret is read from its encrypted attributes.
    expect(Buffer.concat(raw).includes('no secret named SOON_GONE')).toBe(false);
    expect(failureAttributes.some((f) => f.includes('no secret named SOON_GONE'))).toBe(true);
  });

  it('is in no log line', async () => {
    expect(logLines.length).toBeGreaterThan(0);
    expect(logLines.filter((line) => leaks(Buffer.from(line)).length)).toEqual([]);
  });

  it('is not in the audit database file, nor in the vault file in plain text', async () => {
    const bytes = (file: string) => Buffer.concat([file, `${file}-wal`].filter(existsSync).map((f) => readFileSync(f)));
    const audit = bytes(auditFile);
    expect(audit.includes('CANARY_SECRET')).toBe(true); // the names are there, so the file was read
    expect(leaks(audit)).toEqual([]);
    expect(leaks(bytes(join(dataDir, 'vault.db')))).toEqual([]);
  });

  it('is in no API response body', async () => {
    expect(responses.length).toBeGreaterThan(20);
    expect(responses.filter((body) => leaks(Buffer.from(body)).length)).toEqual([]);
  });
});
