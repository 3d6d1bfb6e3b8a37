/**
 * Encrypted payloads on a real Temporal dev server: what the server stores (the history fetched
 * raw over gRPC) holds no command text, output or failure message, only binary/encrypted payloads;
 * the codec server shows them to a viewer and to nobody without a key; an altered payload is
 * refused; a plaintext workflow is refused by the workers unless migration allows plaintext;
 * search attributes and workflow ids carry no command text.
 */
import { createEmergencyActivities } from '../../activities/emergency.js';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter, type Payload } from '@temporalio/common';
import proto from '@temporalio/proto';
import { NativeConnection, Worker } from '@temporalio/worker';
import { createDataConverter } from '../../domain/data-converter.js';
import { ENCRYPTED_ENCODING } from '../../domain/payload-codec.js';
import { admitAgentUpdate, capacityQuery, CONTROL_TASK_QUEUE, SearchAttributes } from '../../workflows/definitions.js';
import { approveWith, startStack, submitShell, testPayloadCodec, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

const { History } = proto.temporal.api.history.v1;
type Stack = Awaited<ReturnType<typeof startStack>>;
type JsonPayload = { metadata: Record<string, string>; data: string };
type RawFailure = { message?: string; encodedAttributes?: Payload; cause?: RawFailure };

let stack: Stack;
let agentId: string;
let viewer: string;
const tag = uniqueId('canary');
const command = `printf 'out-%s' ${tag}`;
let action: { id: string; params_hash: string };

/** Every event of a workflow's history, as the server sends it (no decoding). */
async function rawHistory(workflowId: string) {
  const events: proto.temporal.api.history.v1.IHistoryEvent[] = [];
  let nextPageToken: Uint8Array | undefined;
  do {
    const res = await stack.client.workflowService.getWorkflowExecutionHistory({
      namespace: 'default',
      execution: { workflowId },
      nextPageToken,
    });
    events.push(...(res.history?.events ?? []));
    nextPageToken = res.nextPageToken?.length ? res.nextPageToken : undefined;
  } while (nextPageToken);
  return { events, bytes: Buffer.from(History.encode({ events }).finish()), plain: History.toObject(History.create({ events })) };
}

/** Every payload (an object with metadata.encoding and data) anywhere in a plain proto object, with where it is. */
function payloadsIn(value: unknown, path = '', found: Array<Payload & { path: string }> = []) {
  if (!value || typeof value !== 'object' || ArrayBuffer.isView(value)) return found;
  const v = value as Record<string, unknown>;
  if (v.metadata && typeof v.metadata === 'object' && 'encoding' in (v.metadata as object)) found.push({ ...(v as Payload), path });
  else for (const [key, child] of Object.entries(v)) payloadsIn(child, `${path}.${key}`, found);
  return found;
}
/**
 * Payloads that are not encrypted, but for two kinds the SDK never passes through a codec: search
 * attributes (indexed by the server, checked below) and the local-activity marker's bookkeeping
 * written by the SDK's core (sequence number, attempt, activity type, times; the result is encrypted).
 */
const plaintextIn = (value: unknown) =>
  payloadsIn(value)
    .filter((p) => encoding(p) !== ENCRYPTED_ENCODING)
    .filter((p) => !/\.searchAttributes\.indexedFields\.(Warden\w+|TemporalChangeVersion)$/.test(p.path))
    // patched(): the SDK core records the patch id (a name in our code, e.g. "alerts") in plaintext.
    .filter((p) => !/\.markerRecordedEventAttributes\.details\.patch-data\./.test(p.path))
    .filter((p) => !(/\.markerRecordedEventAttributes\.details\.data\./.test(p.path) && isLocalActivityBookkeeping(p)))
    .map((p) => p.path);
const isLocalActivityBookkeeping = (p: Payload) =>
  Object.keys(defaultPayloadConverter.fromPayload(p) as object).every((k) =>
    ['seq', 'attempt', 'activity_id', 'activity_type', 'complete_time', 'backoff', 'original_schedule_time'].includes(k),
  );

/** Every failure carried under a `failure` field (with its causes). */
function failuresIn(value: unknown, found: RawFailure[] = []): RawFailure[] {
  if (!value || typeof value !== 'object' || ArrayBuffer.isView(value)) return found;
  for (const [key, child] of Object.entries(value)) {
    if (key === 'failure' && child) for (let f: RawFailure | undefined = child as RawFailure; f; f = f.cause) found.push(f);
    else failuresIn(child, found);
  }
  return found;
}

const encoding = (p: Payload) => Buffer.from(p.metadata!.encoding!).toString();
const toJson = (p: Payload): JsonPayload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])),
  data: Buffer.from(p.data ?? []).toString('base64'),
});
const fromJson = (p: JsonPayload): Payload => ({
  metadata: Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
  data: Buffer.from(p.data, 'base64'),
});

function codec(path: '/codec/decode' | '/codec/encode', payloads: JsonPayload[], headers: Record<string, string> = {}) {
  return stack.realApp.request(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-namespace': 'default', ...headers },
    body: JSON.stringify({ payloads }),
  });
}
/** The payloads a workflow was started with, as the Web UI sends them to the codec server. */
async function startInput(workflowId: string): Promise<JsonPayload[]> {
  const { events } = await rawHistory(workflowId);
  return events[0]!.workflowExecutionStartedEventAttributes!.input!.payloads!.map((p) => toJson(p as Payload));
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

beforeAll(async () => {
  stack = await startStack();
  viewer = await stack.keyFor('viewer');
  agentId = uniqueId('enc');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
  const submitted = await submitShell(stack.api, agentId, command);
  expect(submitted.status).toBe(202);
  action = { id: submitted.body.action_id, params_hash: submitted.body.params_hash };
  expect(await approveWith(stack, await stack.keyFor('approver'), action)).toBe(200);
  const done = await waitFor('the action to complete', async () => {
    const res = await stack.api('GET', `/api/actions/${action.id}`);
    return res.body.completed_at ? res.body : undefined;
  });
  // The client decrypted the result: the command ran and its output came back.
  expect(done.status).toBe('completed');
  expect(done.result.stdout).toBe(`out-${tag}`);
});
afterAll(async () => {
  await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await stack?.stop();
});

it('keeps command text and output out of the histories the server stores: every payload is binary/encrypted', async () => {
  for (const workflowId of [action.id, agentId]) {
    const { bytes, plain } = await rawHistory(workflowId);
    expect(bytes.includes(command), `${workflowId}: command text`).toBe(false);
    expect(bytes.includes(`out-${tag}`), `${workflowId}: output`).toBe(false);
    expect(bytes.includes(tag), `${workflowId}: the canary`).toBe(false);
    expect(payloadsIn(plain).length).toBeGreaterThan(3);
    expect(plaintextIn(plain)).toEqual([]);
  }
});

it('puts no command text in workflow ids, search attributes or memos; search attribute values are ids and states', async () => {
  for (const workflowId of [action.id, agentId]) {
    const { raw } = await stack.client.workflow.getHandle(workflowId).describe();
    expect(JSON.stringify(raw)).not.toContain(tag);
    expect(workflowId).not.toContain(tag);
    const indexed = raw.workflowExecutionInfo?.searchAttributes?.indexedFields ?? {};
    const ours = Object.values(SearchAttributes).map((k) => k.name);
    for (const [name, payload] of Object.entries(indexed)) {
      if (!ours.includes(name)) continue;
      // Search attributes are indexed in plaintext: only short ids and state names may go there.
      expect(defaultPayloadConverter.fromPayload(payload), name).toMatch(/^[A-Za-z0-9@._-]{1,64}$/);
    }
    for (const payload of Object.values(raw.workflowExecutionInfo?.memo?.fields ?? {})) expect(encoding(payload)).toBe(ENCRYPTED_ENCODING);
  }
});

it('decodes for a viewer through POST /codec/decode; 401 without a key or with a revoked one', async () => {
  const input = await startInput(action.id);

  const res = await codec('/codec/decode', input, bearer(viewer));
  expect(res.status).toBe(200);
  const decoded = ((await res.json()) as { payloads: JsonPayload[] }).payloads.map(fromJson);
  expect(encoding(decoded[0]!)).toBe('json/plain');
  expect(JSON.stringify(defaultPayloadConverter.fromPayload(decoded[0]!))).toContain(command);

  const anonymous = await codec('/codec/decode', input);
  expect(anonymous.status).toBe(401);
  expect(JSON.stringify(await anonymous.json())).not.toContain(tag);

  const revokedKey = await stack.keys.create('soon revoked', 'viewer', null);
  expect((await codec('/codec/decode', input, bearer(revokedKey.key))).status).toBe(200);
  await stack.keys.revoke(revokedKey.id);
  const revoked = await codec('/codec/decode', input, bearer(revokedKey.key));
  expect(revoked.status).toBe(401);
  expect(((await revoked.json()) as { error: { message: string } }).error.message).toMatch(/unknown or revoked/);
});

it('gives the Web UI its key by an HttpOnly cookie limited to /codec, from a form on its own origin only', async () => {
  const input = await startInput(action.id);
  const form = (origin: string, key: string) =>
    stack.realApp.request('http://127.0.0.1:8080/codec/session', {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', origin },
      body: new URLSearchParams({ api_key: key }).toString(),
    });
  expect((await form('http://evil.example', viewer)).status).toBe(403);
  // Behind a proxy that changes the host name, the browser's own Sec-Fetch-Site vouches for the form.
  const proxied = await stack.realApp.request('http://internal:8080/codec/session', {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', origin: 'https://warden.example', 'sec-fetch-site': 'same-origin' },
    body: new URLSearchParams({ api_key: viewer }).toString(),
  });
  expect(proxied.status).toBe(200);
  expect((await form('http://127.0.0.1:8080', 'wk_not-a-key')).status).toBe(401);
  const signedIn = await form('http://127.0.0.1:8080', viewer);
  expect(signedIn.status).toBe(200);
  // A person reads what to do next: the Web UI's settings, with this API's endpoint.
  expect(signedIn.headers.get('content-type')).toMatch(/^text\/html/);
  const page = await signedIn.text();
  expect(page).toContain('Signed in as test viewer (viewer)');
  expect(page).toContain('<code>http://127.0.0.1:8080/codec</code>');
  expect(page).toContain('Include cross-origin credentials');
  const cookie = signedIn.headers.get('set-cookie')!;
  expect(cookie).toMatch(/^warden_codec_key=wk_[^;]+; Max-Age=43200; Path=\/codec; HttpOnly; SameSite=Strict$/);
  const res = await codec('/codec/decode', input, { cookie: cookie.split(';')[0]! });
  expect(res.status).toBe(200);
  // The cookie opens the codec routes only, never the rest of the API.
  expect((await stack.realApp.request('/api/agents', { headers: { cookie: cookie.split(';')[0]! } })).status).toBe(401);
  // Without a form, the session route answers JSON (curl, scripts).
  const json = await stack.realApp.request('/codec/session', { method: 'POST', headers: bearer(viewer) });
  expect(await json.json()).toEqual({ name: 'test viewer', role: 'viewer', expires_in_seconds: 43200 });
  // A wrong key in the form: the sign-in page again, saying why.
  const wrong = await form('http://127.0.0.1:8080', 'wk_not-a-key');
  expect(wrong.headers.get('content-type')).toMatch(/^text\/html/);
  expect(await wrong.text()).toContain('the API key is unknown or revoked');

  const signOut = (origin: string) =>
    stack.realApp.request('http://127.0.0.1:8080/codec/sign-out', { method: 'POST', headers: { origin } });
  expect((await signOut('http://evil.example')).status).toBe(403);
  const signedOut = await signOut('http://127.0.0.1:8080');
  expect(signedOut.status).toBe(200);
  expect(signedOut.headers.get('set-cookie')).toMatch(/^warden_codec_key=; Max-Age=0; Path=\/codec/);
  expect(await signedOut.text()).toContain('Signed out');
});

it('serves the sign-in pages with a CSP that lets their forms post to this origin, and a Referrer-Policy that keeps the origin', async () => {
  for (const res of [
    await stack.realApp.request('/codec/login'),
    await stack.realApp.request('/codec/session', { method: 'POST', headers: bearer(viewer) }),
  ]) {
    expect(res.headers.get('content-security-policy')).toBe(
      "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    // Under no-referrer, a browser posts the form with `Origin: null`, which the session route refuses.
    expect(res.headers.get('referrer-policy')).toBe('same-origin');
  }
  expect((await stack.realApp.request('/codec/decode', { method: 'POST' })).headers.get('content-security-policy')).toContain(
    "form-action 'none'",
  );
});

it('encodes for an admin only; a viewer or an operator may encode an empty list, which the Temporal CLI sends as {}', async () => {
  const raw = (path: string, body: string, key: string) =>
    stack.realApp.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...bearer(key) }, body });
  const forged = [toJson(defaultPayloadConverter.toPayload({ approved: true })!)];
  for (const role of ['viewer', 'operator', 'approver'] as const) {
    const key = await stack.keyFor(role);
    const refused = await codec('/codec/encode', forged, bearer(key));
    expect(refused.status, role).toBe(403);
    expect(await refused.json()).toEqual({
      error: { code: 'forbidden', message: `this needs the admin role; the key test ${role} has ${role}` },
    });
    for (const path of ['/codec/encode', '/codec/decode']) {
      for (const body of ['{}', '{"payloads":[]}']) {
        const empty = await raw(path, body, key);
        expect(empty.status, `${role} ${path} ${body}`).toBe(200);
        expect(await empty.json()).toEqual({ payloads: [] });
      }
    }
  }
  // No body at all is a mistake, not an empty list.
  const bodiless = await stack.realApp.request('/codec/decode', { method: 'POST', headers: bearer(viewer) });
  expect(bodiless.status).toBe(400);
  expect(((await bodiless.json()) as { error: { message: string } }).error.message).toMatch(/or \{\} for none/);

  const encoded = await codec('/codec/encode', forged, bearer(await stack.keyFor('admin')));
  expect(encoded.status).toBe(200);
  const [payload] = ((await encoded.json()) as { payloads: JsonPayload[] }).payloads;
  expect(encoding(fromJson(payload!))).toBe(ENCRYPTED_ENCODING);
});

it('answers the Web UI preflight without a key, for the configured UI origins only', async () => {
  const uiOrigin = `http://localhost:${stack.config.devServerUiPort}`;
  const preflight = (origin: string) =>
    stack.realApp.request('/codec/decode', {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,content-type,x-namespace',
      },
    });
  const ok = await preflight(uiOrigin);
  expect(ok.status).toBe(204);
  expect(ok.headers.get('access-control-allow-origin')).toBe(uiOrigin);
  expect(ok.headers.get('access-control-allow-credentials')).toBe('true');
  expect(
    ok.headers
      .get('access-control-allow-headers')!
      .split(',')
      .map((h) => h.trim().toLowerCase())
      .sort(),
  ).toEqual(['authorization', 'content-type', 'x-namespace']);
  expect(ok.headers.get('access-control-allow-methods')).toContain('POST');
  expect((await preflight(`http://127.0.0.1:${stack.config.devServerUiPort}`)).headers.get('access-control-allow-origin')).toBe(
    `http://127.0.0.1:${stack.config.devServerUiPort}`,
  );
  expect((await preflight('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
  const post = await codec('/codec/encode', [], { origin: uiOrigin, ...bearer(viewer) });
  expect(post.status).toBe(200);
  expect(post.headers.get('access-control-allow-origin')).toBe(uiOrigin);
});

it('refuses a payload with a flipped byte with a 422 that says it failed authentication', async () => {
  const encoded = await codec(
    '/codec/encode',
    [toJson(defaultPayloadConverter.toPayload({ command })!)],
    bearer(await stack.keyFor('admin')),
  );
  expect(encoded.status).toBe(200);
  const [payload] = ((await encoded.json()) as { payloads: JsonPayload[] }).payloads;
  const data = Buffer.from(payload!.data, 'base64');
  data[20]! ^= 0x80;
  const res = await codec(
    '/codec/decode',
    [toJson(defaultPayloadConverter.toPayload('untouched')!), { ...payload!, data: data.toString('base64') }],
    bearer(viewer),
  );
  expect(res.status).toBe(422);
  expect(await res.json()).toEqual({
    error: {
      code: 'undecodable_payload',
      message: expect.stringMatching(
        /^payloads\[1\]: a payload encrypted under key [0-9a-f]{16} failed authentication: it was altered or damaged$/,
      ),
    },
  });
  const malformed = await codec('/codec/decode', [{ metadata: { encoding: 'not base64!' }, data: '' }], bearer(viewer));
  expect(malformed.status).toBe(400);
});

it('encrypts failure messages: an update refused by the workflow leaves only an encoded failure in the history', async () => {
  const workflowId = uniqueId('capacity-enc');
  const handle = await stack.client.workflow.start('capacityWorkflow', {
    workflowId,
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ admitted: {} }],
  });
  try {
    await handle.executeUpdate(admitAgentUpdate, { args: [{ agentId: tag, maxAgents: 5 }] });
    // The client decodes the failure: the caller still reads the message.
    await expect(handle.executeUpdate(admitAgentUpdate, { args: [{ agentId: tag, maxAgents: 5 }] })).rejects.toMatchObject({
      cause: { message: `agent ${tag} already exists`, type: 'AgentExists' },
    });
    const { bytes, plain } = await rawHistory(workflowId);
    expect(bytes.includes('already exists')).toBe(false);
    expect(bytes.includes(tag)).toBe(false);
    const failures = failuresIn(plain);
    expect(failures.length).toBeGreaterThan(0);
    for (const failure of failures) {
      expect(failure.message).toBe('Encoded failure');
      expect(encoding(failure.encodedAttributes!)).toBe(ENCRYPTED_ENCODING);
    }
    // The codec server shows the message to a viewer.
    const res = await codec('/codec/decode', [toJson(failures[0]!.encodedAttributes!)], bearer(viewer));
    const [attributes] = ((await res.json()) as { payloads: JsonPayload[] }).payloads.map(fromJson);
    expect(defaultPayloadConverter.fromPayload(attributes!)).toMatchObject({ message: `agent ${tag} already exists` });
  } finally {
    await handle.terminate();
  }
});

it('a workflow started without encryption is refused by the workers, and runs only where migration allows plaintext', async () => {
  const plainClient = new Client({ connection: stack.client.connection });
  const legacy = { admitted: { 'legacy-agent': new Date().toISOString() } };

  // Fail closed: the worker will not run it; the workflow task fails, saying why.
  const refusedId = uniqueId('plaintext');
  const refused = await plainClient.workflow.start('capacityWorkflow', {
    workflowId: refusedId,
    taskQueue: CONTROL_TASK_QUEUE,
    args: [legacy],
  });
  try {
    const failure = await waitFor('the workflow task to fail', async () => {
      const { events } = await rawHistory(refusedId);
      return events.find((e) => e.workflowTaskFailedEventAttributes)?.workflowTaskFailedEventAttributes?.failure;
    });
    const [attributes] = await testPayloadCodec().decode([failure.encodedAttributes!]);
    expect((defaultPayloadConverter.fromPayload(attributes!) as { message: string }).message).toMatch(
      /refused a payload that is not encrypted \(encoding "json\/plain"\)/,
    );
  } finally {
    await refused.terminate();
  }

  // Migration: a worker and client with WARDEN_PAYLOAD_ALLOW_PLAINTEXT read it, and write encrypted.
  const migrating = createDataConverter(testPayloadCodec({ allowPlaintext: true }));
  const taskQueue = uniqueId('migration');
  const connection = await NativeConnection.connect({ address: inject('temporalAddress') });
  try {
    // The capacity workflow restores the lockdown from the audit log when it starts: the one activity it needs.
    const { recordedLockdownState } = createEmergencyActivities(stack.client, stack.audit);
    const worker = await Worker.create({
      connection,
      taskQueue,
      workflowBundle: { codePath: inject('workflowBundlePath') },
      dataConverter: migrating,
      activities: { recordedLockdownState },
    });
    await worker.runUntil(async () => {
      const handle = await plainClient.workflow.start('capacityWorkflow', { workflowId: uniqueId('migrated'), taskQueue, args: [legacy] });
      const client = new Client({ connection: stack.client.connection, dataConverter: migrating });
      expect(await client.workflow.getHandle(handle.workflowId).query(capacityQuery)).toMatchObject(legacy);
      const update = await client.workflow
        .getHandle(handle.workflowId)
        .executeUpdate(admitAgentUpdate, { args: [{ agentId: 'new-agent', maxAgents: 5 }] });
      expect(update).toEqual({ admitted: 2, max_agents: 5 });
      // Only the legacy input is plaintext: what the migrating worker wrote is encrypted.
      expect(plaintextIn((await rawHistory(handle.workflowId)).plain)).toEqual([
        '.events.0.workflowExecutionStartedEventAttributes.input.payloads.0',
      ]);
      await handle.terminate();
    });
  } finally {
    await connection.close();
  }
});
