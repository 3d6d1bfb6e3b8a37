/**
 * A conversation's event stream and `warden chat`, over real HTTP against a real API (real
 * Temporal and Docker behind it), the model played by the local fake through the real openai
 * client: the stream shows a tool call held for approval, then the decision, the result and the
 * answer, and ends with the conversation; it resumes from Last-Event-ID; it is refused to those
 * who may not read the conversation; a key's streams are bounded and a closed one frees its place.
 * The CLI is driven as a real process with piped stdin, approvals given meanwhile by another person.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { readServerSentEvents } from '../../bin/commands/server-sent-events.js';
import type { ActionRecord } from '../../domain/action.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { openaiChunk, openaiCompletion, startFakeLlm, fakeProvidersFile, type FakeLlm } from '../support/fake-llm.js';
import { startStack, testPayloadCodec, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let server: ReturnType<typeof serve>;
let url: string;
let fake: FakeLlm;
let agent: string;
const key: Record<'owner' | 'other' | 'viewer' | 'alice' | 'admin' | 'limited', string> = {} as never;
const ROUTE = 'POST /v1/chat/completions';
const STREAMING_ROUTE = 'POST /streaming/v1/chat/completions';
const ANSWER_PIECES = ['The ', 'files ', 'are ', 'all ', 'here, ', 'safe ', 'and ', 'sound.'];

/** The streaming provider's answer, a piece at a time, as a model generating it. */
const streamedAnswer = () => ({
  pauseMs: 600,
  sse: [
    ...ANSWER_PIECES.map((content) => ({ data: openaiChunk({ content }) })),
    { data: openaiChunk({}, { finish_reason: 'stop' }) },
    '[DONE]',
  ],
});

const call = (id: string, name: string, args: Record<string, unknown>) => ({ id, name, arguments: JSON.stringify(args) });

async function as(who: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${who}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function startConversation(): Promise<string> {
  const res = await as(key.owner, 'POST', '/api/conversations', { agent_id: agent });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

interface Event {
  event: string;
  id: string;
  data: Record<string, any>;
}

/** An open event stream read with fetch, event by event. */
async function openEvents(who: string, conversationId: string, lastEventId?: string) {
  const closer = new AbortController();
  const res = await fetch(`${url}/api/conversations/${conversationId}/events`, {
    headers: { authorization: `Bearer ${who}`, ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
    signal: closer.signal,
  });
  const events = res.ok ? readServerSentEvents(res.body!) : null;
  const seen: Event[] = [];
  return {
    status: res.status,
    contentType: res.headers.get('content-type'),
    seen,
    /** Reads until an event matches (and returns it), or the stream ends (undefined). */
    async until(match: (e: Event) => boolean): Promise<Event | undefined> {
      for (;;) {
        const next = await events!.next();
        if (next.done) return undefined;
        const e = { event: next.value.event, id: next.value.lastEventId, data: JSON.parse(next.value.data) };
        seen.push(e);
        if (match(e)) return e;
      }
    },
    close: () => closer.abort(),
  };
}

beforeAll(async () => {
  fake = await startFakeLlm();
  // The default provider answers in one piece; the second streams its answers, which event streams show as they come.
  stack = await startStack({
    config: {
      providersFile: fakeProvidersFile(fake),
      modelPrices: { 'fake-model': { input_per_million: 1000, output_per_million: 1000 } },
    },
  });
  server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: 0 });
  await new Promise((r) => server.once('listening', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  key.owner = (await stack.keys.create('owner', 'operator', null)).key;
  key.other = (await stack.keys.create('another operator', 'operator', null)).key;
  key.viewer = (await stack.keys.create('viewer', 'viewer', null)).key;
  key.alice = (await stack.keys.create('alice', 'approver', null)).key;
  key.admin = await stack.keyFor('admin');
  key.limited = (await stack.keys.create('limited', 'operator', null)).key;
  agent = uniqueId('conv-events');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'filesystem', agent_id: agent, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agent, ['running']);
}, 120_000);

afterAll(async () => {
  if (agent) await stack?.api('POST', `/api/agents/${agent}/stop`, { force: true });
  await new Promise((r) => server?.close(r));
  await stack?.stop();
  await fake?.close();
});

describe('the event stream', () => {
  it('shows the approval request of a held tool call, then the decision, the result and the answer; it ends with the conversation and resumes from an id', async () => {
    const id = await startConversation();
    fake.script(
      ROUTE,
      { json: openaiCompletion({ tool_calls: [call('call_write', 'filesystem_write', { path: 'report.txt', content: 'numbers' })] }) },
      { json: openaiCompletion({ tool_calls: [call('call_delete', 'filesystem_delete', { path: 'report.txt' })] }) },
      { json: openaiCompletion({ content: 'Written and deleted.' }) },
    );
    const stream = await openEvents(key.owner, id);
    onTestFinished(() => stream.close());
    expect(stream.status).toBe(200);
    expect(stream.contentType).toMatch(/^text\/event-stream/);
    expect((await as(key.owner, 'POST', `/api/conversations/${id}/messages`, { message: 'write the report, then delete it' })).status).toBe(
      202,
    );

    const asked = await stream.until((e) => e.event === 'approval_request');
    expect(asked!.data).toMatchObject({ turn: 1, tool_call_id: 'call_delete', tool: 'filesystem_delete', security_level: 'high' });
    expect(asked!.data.who).toBe('one approval by an approver or admin other than owner');
    // Everything before it, in the order it happened: the medium write ran at once (its action's
    // statuses on the way, as the stream caught them, end with completed).
    const before = stream.seen.filter((e) => e.event !== 'action');
    expect(before.map((e) => [e.event, e.data.tool_call_id ?? null])).toEqual([
      ['message', null],
      ['tool_call', 'call_write'],
      ['tool_result', 'call_write'],
      ['tool_call', 'call_delete'],
      ['approval_request', 'call_delete'],
    ]);
    expect(before[0]!.data).toEqual({ turn: 1, text: 'write the report, then delete it' });
    const written = stream.seen.filter((e) => e.event === 'action');
    expect(written.at(-1)!.data).toMatchObject({ tool_call_id: 'call_write', status: 'completed' });
    expect(stream.seen.indexOf(written.at(-1)!)).toBeLessThan(stream.seen.indexOf(before[2]!));
    expect(before[2]!.data.content).toMatch(/\(medium\) completed/);

    const action = (await as(key.viewer, 'GET', `/api/actions/${asked!.data.action_id}`)).body as ActionRecord;
    expect(action.status).toBe('pending');
    const approved = await as(key.alice, 'POST', `/api/actions/${action.id}/approve`, { approved: true, params_hash: action.params_hash });
    expect(approved.status).toBe(200);

    const end = await stream.until((e) => e.event === 'turn_end');
    expect(end!.data).toMatchObject({ turn: 1, status: 'answered', reply: 'Written and deleted.' });
    const after = stream.seen.slice(stream.seen.indexOf(asked!) + 1);
    expect(after.find((e) => e.event === 'approval')!.data).toMatchObject({ action_id: action.id, approved: true, by: 'alice' });
    expect(after.filter((e) => e.event === 'action').at(-1)!.data).toMatchObject({ action_id: action.id, status: 'completed' });
    expect(after.find((e) => e.event === 'tool_result')!.data.content).toMatch(/\(high\) completed/);
    expect(after.find((e) => e.event === 'text')!.data.text).toBe('Written and deleted.');
    // Ids are unique, and each starts with its transcript position.
    expect(new Set(stream.seen.map((e) => e.id)).size).toBe(stream.seen.length);
    for (const e of stream.seen) expect(e.id).toMatch(/^\d+:/);

    expect((await as(key.owner, 'POST', `/api/conversations/${id}/end`)).status).toBe(202);
    expect(await stream.until((e) => e.event === 'end')).toBeDefined();
    expect(await stream.until(() => true)).toBeUndefined();

    // A reader that reconnects after the first tool result gets what followed, ending with the end.
    const resumeFrom = stream.seen.find((e) => e.event === 'tool_result')!;
    const resumed = await openEvents(key.owner, id, resumeFrom.id);
    expect(await resumed.until(() => false)).toBeUndefined();
    const position = (e: Event) => Number(e.id.split(':')[0]);
    expect(resumed.seen[0]!.id).toBe(resumeFrom.id);
    expect(resumed.seen.every((e) => position(e) >= position(resumeFrom))).toBe(true);
    expect(resumed.seen.map((e) => e.event)).not.toContain('message');
    expect(resumed.seen.map((e) => e.event).slice(-3)).toEqual(['text', 'turn_end', 'end']);
  }, 180_000);

  it("shows a streaming model's text as it is generated, then the whole answer, which alone is in the history", async () => {
    const started = await as(key.owner, 'POST', '/api/conversations', { agent_id: agent, provider: 'streaming' });
    expect(started.status).toBe(201);
    const id = started.body.id as string;
    fake.script(STREAMING_ROUTE, streamedAnswer());
    const stream = await openEvents(key.owner, id);
    onTestFinished(() => stream.close());
    await as(key.owner, 'POST', `/api/conversations/${id}/messages`, { message: 'are my files there?' });
    const whole = await stream.until((e) => e.event === 'text');
    expect(whole!.data.text).toBe(ANSWER_PIECES.join(''));
    // Pieces came before the answer was whole: each carries on the text before it, as generated.
    const pieces = stream.seen.filter((e) => e.event === 'text_delta');
    expect(pieces[0]!.data).toMatchObject({ turn: 1, restart: true });
    expect(pieces[0]!.data.text.length).toBeLessThan(whole!.data.text.length);
    expect(pieces.slice(1).every((e) => e.data.restart === false)).toBe(true);
    expect(whole!.data.text.startsWith(pieces.map((e) => e.data.text).join(''))).toBe(true);
    // They set no id: a reader that reconnects resumes from the answer, not from a piece of it.
    for (const piece of pieces) expect(piece.id).toBe(stream.seen[stream.seen.indexOf(piece) - 1]!.id);
    expect((await stream.until((e) => e.event === 'turn_end'))!.data).toMatchObject({ status: 'answered' });

    // The history holds the assembled answer once, and none of the text as it came.
    const history = await stack.client.workflow.getHandle(id).fetchHistory();
    const completed = history.events!.filter((e) => e.activityTaskCompletedEventAttributes);
    expect(completed).toHaveLength(1);
    const payloads = await testPayloadCodec().decode(completed[0]!.activityTaskCompletedEventAttributes!.result!.payloads!);
    expect(Buffer.from(payloads[0]!.data!).toString('utf8')).toContain(ANSWER_PIECES.join(''));
    await as(key.owner, 'POST', `/api/conversations/${id}/end`);
  }, 120_000);

  it('is refused to those who may not read the conversation: no key, a viewer, another operator; an admin may', async () => {
    const id = await startConversation();
    const noKey = await fetch(`${url}/api/conversations/${id}/events`);
    expect(noKey.status).toBe(401);
    await noKey.body?.cancel();
    const viewer = await openEvents(key.viewer, id);
    expect(viewer.status).toBe(403);
    const other = await openEvents(key.other, id);
    expect(other.status).toBe(404);
    // An owner's stream gives no way into another conversation: a well-formed id that is not theirs is not found.
    expect((await openEvents(key.owner, 'cnv-0000000000000000')).status).toBe(404);
    const admin = await openEvents(key.admin, id);
    expect(admin.status).toBe(200);
    admin.close();
    await as(key.owner, 'POST', `/api/conversations/${id}/end`);
  }, 60_000);

  it("bounds a key's open streams; a closed stream gives its place back; a revoked key's streams end", async () => {
    const started = await as(key.limited, 'POST', '/api/conversations', { agent_id: agent });
    expect(started.status).toBe(201);
    const id = started.body.id as string;
    const open: Array<Awaited<ReturnType<typeof openEvents>>> = [];
    onTestFinished(() => open.forEach((s) => s.close()));
    for (let i = 0; i < 4; i++) {
      const s = await openEvents(key.limited, id);
      expect(s.status).toBe(200);
      open.push(s);
    }
    const refused = await openEvents(key.limited, id);
    expect(refused.status).toBe(429);
    // Another key is not held back by this one's streams.
    const admin = await openEvents(key.admin, id);
    expect(admin.status).toBe(200);
    admin.close();
    open.shift()!.close();
    const reopened = await waitFor('the closed stream to give its place back', async () => {
      const s = await openEvents(key.limited, id);
      return s.status === 200 ? s : undefined;
    });
    expect(reopened.status).toBe(200);
    open.push(reopened);

    // Revoking the key ends its open streams: a stream outlives no one's authority.
    const revoked = (await stack.keys.list()).find((k) => k.name === 'limited')!;
    expect((await as(key.admin, 'DELETE', `/api/keys/${revoked.id}`)).status).toBe(200);
    for (const s of open) expect(await s.until((e) => e.event === 'end')).toBeUndefined();
    await as(key.admin, 'POST', `/api/conversations/${id}/end`);
  }, 60_000);
});

/** bin/warden.ts as its own process, its stdin piped; `output()` is what it printed so far. */
function chat(args: string[], apiKey: string) {
  const child: ChildProcessWithoutNullStreams = spawn(process.execPath, ['--import', 'tsx', 'bin/warden.ts', 'chat', ...args], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, WARDEN_API_URL: url, WARDEN_API_KEY: apiKey, WARDEN_DATA_DIR: '/nonexistent' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  onTestFinished(() => void child.kill());
  return {
    child,
    exited,
    output: () => stdout,
    errors: () => stderr,
    printed: (pattern: RegExp) => waitFor(`warden chat to print ${pattern}`, async () => pattern.exec(stdout) ?? undefined, 90_000),
  };
}

describe('warden chat', () => {
  it('converses: shows tool calls, who must approve which action, the outcome and the answer; Ctrl-C cancels a turn, Ctrl-D ends', async () => {
    fake.script(
      ROUTE,
      { json: openaiCompletion({ tool_calls: [call('call_write', 'filesystem_write', { path: 'notes.txt', content: 'hello' })] }) },
      { json: openaiCompletion({ tool_calls: [call('call_delete', 'filesystem_delete', { path: 'notes.txt' })] }) },
      { json: openaiCompletion({ content: 'Wrote and removed notes.txt.' }) },
      { json: openaiCompletion({ tool_calls: [call('call_again', 'filesystem_delete', { path: 'other.txt' })] }) },
    );
    const cli = chat([agent], key.owner);
    const [, id] = (await cli.printed(/^conversation (cnv-[0-9a-f]{16}) with agent /m))!;
    cli.child.stdin.write('write notes, then remove them\n');

    const [, actionId] = (await cli.printed(
      /^waiting for approval: action (act-\S+) \(high, rule [^)]+\) needs one approval by an approver or admin other than owner$/m,
    ))!;
    expect(cli.output()).toMatch(/^tool call filesystem_write \{"path":"notes.txt","content":"hello"\}$/m);
    expect(cli.output()).toMatch(/^result of call_write:\n {2}action \S+ \(medium\) completed/m);
    expect(cli.output()).toContain(`approve: warden approvals approve ${actionId}`);
    const action = (await as(key.viewer, 'GET', `/api/actions/${actionId}`)).body as ActionRecord;
    expect(action.origin).toEqual({ conversation_id: id, turn: 1 });
    expect(
      (await as(key.alice, 'POST', `/api/actions/${actionId}/approve`, { approved: true, params_hash: action.params_hash })).status,
    ).toBe(200);
    await cli.printed(/^model: Wrote and removed notes\.txt\.$/m);
    expect(cli.output()).toMatch(new RegExp(`^approved by alice \\(action ${actionId}\\)$`, 'm'));
    expect(cli.output()).toMatch(new RegExp(`^action ${actionId} completed$`, 'm'));
    // Three model calls of 10 tokens in and 5 out, at $1000 a million.
    await cli.printed(/^so far: 30 tokens in, 15 out, 0 cached · cost \$0\.0450$/m);

    // A second turn waits for approval; Ctrl-C cancels it, and its action with it.
    cli.child.stdin.write('remove the other file\n');
    const held = await waitFor(
      'a second approval request',
      async () => [...cli.output().matchAll(/^waiting for approval: action (act-\S+)/gm)][1]?.[1],
    );
    expect(held).not.toBe(actionId);
    cli.child.kill('SIGINT');
    await cli.printed(/^turn 2 cancelled: cancelled by key_/m);
    expect(cli.output()).toMatch(new RegExp(`^action ${held} cancelled`, 'm'));

    // Ctrl-D: the conversation ends, and so does the command.
    cli.child.stdin.end();
    expect(await cli.exited).toBe(0);
    expect(cli.output()).toMatch(/^the conversation has ended$/m);
    expect(cli.errors()).toBe('');
    expect((await as(key.owner, 'GET', `/api/conversations/${id}`)).body.status).toBe('ended');
  }, 240_000);

  it("prints a streaming model's answer as it comes; /exit ends the conversation; an agent it may not talk about is refused with why", async () => {
    const refused = chat(['no-such-agent'], key.owner);
    expect(await refused.exited).toBe(1);
    expect(refused.errors()).toMatch(/not found/);

    const viewer = chat([agent], key.viewer);
    expect(await viewer.exited).toBe(4);
    expect(viewer.errors()).toMatch(/not allowed/);

    // A streaming model's answer is printed as it comes, on one line.
    fake.script(STREAMING_ROUTE, streamedAnswer());
    const cli = chat([agent, '--provider', 'streaming'], key.owner);
    const [, id] = (await cli.printed(/^conversation (cnv-[0-9a-f]{16}) with agent \S+ \(streaming\)/m))!;
    cli.child.stdin.write('are my files there?\n');
    await cli.printed(/^model: The files are all here, safe and sound\.$/m);
    cli.child.stdin.write('/exit\n');
    expect(await cli.exited).toBe(0);
    expect((await as(key.owner, 'GET', `/api/conversations/${id}`)).body.status).toBe('ended');
  }, 120_000);
});
