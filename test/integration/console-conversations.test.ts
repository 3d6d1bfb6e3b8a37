/**
 * The console's Conversations pages through the app (no browser), on real Temporal and Docker, the
 * model played by the local fake speaking OpenAI's protocol: GET /api/conversations lists a key's
 * own conversations (an admin's: everyone's); the list page and the agent's page link to them; a
 * conversation is started, sent a message, its tool call shown pending with a link to its action,
 * then its result, the answer and the conversation's tokens and cost once approved; model text carrying <script> and htmx attributes
 * arrives as inert text; another operator, a viewer, a post without the token and a post from
 * another origin are refused, a person on a console page always with a console page; cancel and
 * end work, and an ended conversation has no message box. The page's event stream is the API's,
 * behind the session: refused as the API refuses it, bounded per key, and ended with the session.
 */
import { afterAll, beforeAll, expect, it, onTestFinished } from 'vitest';
import { readServerSentEvents } from '../../bin/commands/server-sent-events.js';
import { openaiCompletion, startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
let stack: Stack;
let fake: FakeLlm;
let agentId: string;
const ORIGIN = 'http://localhost';
const ROUTE = 'POST /v1/chat/completions';
const key = {} as Record<'owner' | 'other' | 'viewer' | 'approver' | 'admin', string>;
/** Model output that would run a script or make htmx fetch a page, were it not escaped. */
const HOSTILE = '<script>alert(1)</script><div hx-get="/console/sign-out" hx-trigger="load">click</div>';

beforeAll(async () => {
  fake = await startFakeLlm();
  stack = await startStack({
    config: {
      llmBaseUrl: `${fake.origin}/v1`,
      llmModel: 'fake-model',
      modelPrices: { 'fake-model': { input_per_million: 1000, output_per_million: 1000 } },
    },
  });
  key.owner = (await stack.keys.create('Olga', 'operator', null)).key;
  key.other = (await stack.keys.create('Oscar', 'operator', null)).key;
  key.viewer = (await stack.keys.create('Vera', 'viewer', null)).key;
  key.approver = (await stack.keys.create('Alice', 'approver', null)).key;
  key.admin = (await stack.keys.create('Ada', 'admin', null)).key;
  agentId = uniqueId('agt-console-conv');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, agentId, ['running']);
}, 120_000);

afterAll(async () => {
  if (agentId) await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await stack?.stop();
  await fake?.close();
});

const FORM = 'application/x-www-form-urlencoded';

async function session(apiKey: string) {
  const res = await stack.realApp.request(`${ORIGIN}/console/sign-in`, {
    method: 'POST',
    headers: { 'content-type': FORM, origin: ORIGIN },
    body: new URLSearchParams({ api_key: apiKey }).toString(),
  });
  expect(res.status).toBe(303);
  const cookie = res.headers.get('set-cookie')!.split(';')[0]!;
  const csrf = /name="csrf" value="([^"]+)"/.exec(await (await get({ cookie }, '/console/audit')).text())![1]!;
  return { cookie, csrf };
}

type Who = { cookie: string; csrf?: string };
const get = (who: Who, path: string) => stack.realApp.request(`${ORIGIN}${path}`, { headers: { cookie: who.cookie } });
const post = (who: Who, path: string, fields: Record<string, string>, origin = ORIGIN) =>
  stack.realApp.request(`${ORIGIN}${path}`, {
    method: 'POST',
    headers: { cookie: who.cookie, 'content-type': FORM, origin },
    body: new URLSearchParams(who.csrf ? { ...fields, csrf: who.csrf } : fields).toString(),
  });

async function api(apiKey: string, path: string) {
  const res = await stack.realApp.request(path, { headers: { authorization: `Bearer ${apiKey}` } });
  return { status: res.status, body: (await res.json()) as any };
}

const shellCall = (id: string, command: string) => ({ id, name: 'shell_exec', arguments: JSON.stringify({ command }) });

it("starts a conversation from the page, shows a tool call pending with its action, then the result and the model's escaped answer", async () => {
  const owner = await session(key.owner);
  const list = await (await get(owner, '/console/conversations')).text();
  expect(list).toMatch(/<option value="agt-console-conv[^"]*">/);
  expect(list).toMatch(/<button type="submit">New conversation<\/button>/);

  const started = await post(owner, '/console/conversations', { agent_id: agentId });
  expect(started.status).toBe(303);
  const page = started.headers.get('location')!;
  const id = /\/console\/conversations\/(cnv-[0-9a-f]{16})$/.exec(page)![1]!;

  fake.script(
    ROUTE,
    { json: openaiCompletion({ content: `Let me look. ${HOSTILE}`, tool_calls: [shellCall('call_look', 'echo looked-$((40+2))')] }) },
    { json: openaiCompletion({ content: `Done: it printed looked-42. ${HOSTILE}` }) },
  );
  const sent = await post(owner, `${page}/messages`, { message: 'what is <b>there</b>?' });
  expect(sent.status).toBe(200);
  const sentText = await sent.text();
  expect(sentText).toContain('Sent: turn 1 is running.');
  // Emptied for the next message.
  expect(sentText).toMatch(/<textarea[^>]*name="message"[^>]*><\/textarea>/);
  const busy = await post(owner, `${page}/messages`, { message: 'and again' });
  expect(await busy.text()).toMatch(/>and again<\/textarea>[\s\S]*Not sent: a turn is in progress/);

  // The call waits for approval: the page says so and links to the action.
  const pending = await waitFor('the tool call to await approval', async () => {
    const html = await (await get(owner, `${page}/live`)).text();
    return html.includes('Awaiting approval') ? html : undefined;
  });
  const actionId = /href="\/console\/actions\/(act-[0-9a-f]{16})">decide on its page/.exec(pending)![1]!;
  expect(pending).toContain('<code>shell.exec</code>');
  expect(pending).toContain('echo looked-$((40+2))');
  expect(pending).toMatch(/Awaiting approval \(high\): 0 of 1/);
  expect(pending).toContain('what is &lt;b&gt;there&lt;/b&gt;?');
  expect(pending).toContain('hx-trigger="every 2s"');
  const action = (await api(key.approver, `/api/actions/${actionId}`)).body;
  expect(action).toMatchObject({ status: 'pending', origin: { conversation_id: id, turn: 1 } });

  const approve = await stack.realApp.request(`/api/actions/${actionId}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key.approver}`, 'content-type': 'application/json' },
    body: JSON.stringify({ approved: true, params_hash: action.params_hash }),
  });
  expect(approve.status).toBe(200);
  const answered = await waitFor('the answer', async () => {
    const html = await (await get(owner, page)).text();
    return html.includes('Done: it printed looked-42.') ? html : undefined;
  });
  expect(answered).toMatch(/aria-label="Result">action act-[0-9a-f]{16} \(high\) completed\nexit code 0\nstdout:\nlooked-42/);
  expect(answered).toMatch(/badge-answered/);
  // Two model calls of 10 tokens in and 5 out, at $1000 a million.
  expect(answered).toMatch(/<dt>Tokens<\/dt>\s*<dd>\s*20 in, 10 out, 0 cached\s*<\/dd>\s*<dt>Cost<\/dt>\s*<dd>\$0\.0300<\/dd>/);
  // The model's markup arrives as text: no script, no element htmx would act on.
  expect(answered).toContain('&lt;script&gt;alert(1)&lt;/script&gt;&lt;div hx-get=&quot;/console/sign-out&quot;');
  expect(answered).not.toContain('<script>alert');
  expect(answered).not.toContain('hx-get="/console/sign-out"');
  expect(answered).not.toMatch(/<script(?![^>]*\bsrc=)/);
  expect(answered).toMatch(/href="http:\/\/127\.0\.0\.1:\d+\/namespaces\/default\/workflows\/cnv-[0-9a-f]{16}"/);

  // Listed, with its owner and state, on the Conversations page and on the agent's page.
  const listed = await waitFor('the conversation to be listed', async () => {
    const html = await (await get(owner, '/console/conversations')).text();
    return html.includes(`href="/console/conversations/${id}"`) ? html : undefined;
  });
  expect(listed).toContain(`href="/console/conversations/${id}"`);
  expect(listed).toMatch(/<td>Olga<\/td>/);
  expect(await (await get(owner, `/console/agents/${agentId}`)).text()).toContain(`href="/console/conversations/${id}"`);

  // End it: the message box goes.
  const ended = await post(owner, `${page}/end`, {});
  expect(await ended.text()).toContain('Ending the conversation');
  const after = await waitFor('the conversation to end', async () => {
    const html = await (await get(owner, `${page}/live`)).text();
    return html.includes('badge-ended') ? html : undefined;
  });
  expect(after).not.toContain('hx-trigger="every 2s"');
  expect(after).toContain('This conversation has ended');
  expect(after).not.toContain('<textarea');
  expect(await (await post(owner, `${page}/messages`, { message: 'hello?' })).text()).toContain('Not sent: conversation');
});

it('lists through GET /api/conversations only what a key may read, and refuses every other door to a conversation', async () => {
  const created = await stack.realApp.request('/api/conversations', {
    method: 'POST',
    headers: { authorization: `Bearer ${key.owner}`, 'content-type': 'application/json' },
    body: JSON.stringify({ agent_id: agentId }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const ids = async (apiKey: string, query = '') =>
    ((await api(apiKey, `/api/conversations${query}`)).body.conversations as Array<{ id: string }>).map((c) => c.id);
  // Visibility lists a new workflow a moment after its start.
  await waitFor('the new conversation to be listed', async () => (await ids(key.owner)).includes(id));
  expect((await api(key.owner, `/api/conversations?agent_id=${agentId}`)).body.conversations[0]).toMatchObject({
    id,
    agent_id: agentId,
    owner: { name: 'Olga' },
    status: 'idle',
    turns: 0,
  });
  expect(await ids(key.owner, '?agent_id=agt-no-such-agent')).toEqual([]);
  expect(await ids(key.admin)).toContain(id);
  expect(await ids(key.other)).not.toContain(id);
  expect((await api(key.viewer, '/api/conversations')).status).toBe(403);
  expect((await api(key.owner, "/api/conversations?agent_id=x' OR 1=1")).status).toBe(400);

  const page = `/console/conversations/${id}`;
  const [owner, other, viewer, admin] = [
    await session(key.owner),
    await session(key.other),
    await session(key.viewer),
    await session(key.admin),
  ];
  const message = { message: 'list the files' };
  // Another operator is told it does not exist, on the page and when posting to it.
  expect((await get(other, page)).status).toBe(404);
  expect(await (await get(other, '/console/conversations')).text()).not.toContain(id);
  expect(await (await post(other, `${page}/messages`, message)).text()).toContain(`Not sent: conversation ${id} not found`);
  expect(await (await post(other, `${page}/end`, {})).text()).toContain(`Not done: conversation ${id} not found`);
  // A viewer has no page, no list and no message box; a post with the viewer's own token is refused by role.
  const refusedPage = await get(viewer, page);
  expect(refusedPage.status).toBe(403);
  expect(refusedPage.headers.get('content-type')).toMatch(/^text\/html/);
  const refusedHtml = await refusedPage.text();
  expect(refusedHtml).toContain('<title>Not allowed · Warden</title>');
  expect(refusedHtml).toContain('aria-current="page">Conversations</a>');
  expect(refusedHtml).toMatch(/<p class="problem" role="alert">this needs the operator role; the key Vera has viewer<\/p>/);
  const viewersList = await (await get(viewer, '/console/conversations')).text();
  expect(viewersList).not.toContain('New conversation</button>');
  expect(viewersList).not.toContain('<textarea');
  const refusedPost = await post(viewer, `${page}/messages`, message);
  expect(refusedPost.status).toBe(403);
  expect(await refusedPost.text()).toMatch(/^<html lang="en">[\s\S]*this needs the operator role/);
  expect((await post(viewer, '/console/conversations', { agent_id: agentId })).status).toBe(403);
  // To htmx, only the words, with the status: the page's htmx is set to show them where the answer goes.
  const refusedPartial = await stack.realApp.request(`${ORIGIN}${page}/cancel`, {
    method: 'POST',
    headers: { cookie: viewer.cookie, 'hx-request': 'true', 'x-csrf-token': viewer.csrf!, origin: ORIGIN },
  });
  expect(refusedPartial.status).toBe(403);
  expect(await refusedPartial.text()).toBe('<p class="problem" role="alert">this needs the operator role; the key Vera has viewer</p>');
  expect(refusedHtml).toContain('{&quot;code&quot;:&quot;[45]..&quot;,&quot;swap&quot;:true,&quot;error&quot;:true}');
  expect(await (await get(viewer, `/console/agents/${agentId}`)).text()).not.toContain(`/console/conversations/${id}`);
  // The owner's browser driven by another site: no token, or another origin.
  const tokenless = await post({ cookie: owner.cookie }, `${page}/messages`, message);
  expect(tokenless.status).toBe(403);
  expect(await tokenless.text()).toMatch(/<p class="problem" role="alert">refused: the form has no valid CSRF token/);
  expect((await post(owner, `${page}/messages`, message, 'https://evil.example')).status).toBe(403);
  expect((await post({ ...owner, csrf: admin.csrf }, `${page}/messages`, message)).status).toBe(403);
  expect((await api(key.owner, `/api/conversations/${id}`)).body.turns).toEqual([]);
  expect(fake.to(ROUTE).filter((r) => JSON.stringify(r.body).includes('list the files'))).toEqual([]);
  // An admin reads it and may end it.
  expect(await (await get(admin, page)).text()).toContain('owned by Olga');
  expect(await (await post(admin, `${page}/end`, {})).text()).toContain('Ending the conversation');
  await waitFor('the conversation to end', async () => (await api(key.owner, `/api/conversations/${id}`)).body.status === 'ended');
  // A refresh that fails says why beside the transcript, and leaves the transcript and its refreshing in place.
  const failed = await stack.realApp.request(`${ORIGIN}/console/conversations/cnv-0000000000000000/live`, {
    headers: { cookie: owner.cookie, 'hx-request': 'true' },
  });
  expect(failed.headers.get('hx-reswap')).toBe('none');
  expect(await failed.text()).toMatch(
    /^<div id="conversation-refresh-notice" hx-swap-oob="true"><p class="problem" role="alert">Could not refresh the conversation: conversation cnv-0{16} not found/,
  );
  // The next refresh that succeeds replaces the part that holds that notice with one that is empty.
  const refreshed = await stack.realApp.request(`${ORIGIN}${page}/live`, { headers: { cookie: owner.cookie, 'hx-request': 'true' } });
  expect(await refreshed.text()).toMatch(
    /^<section id="conversation-live"><div id="conversation-refresh-notice" aria-live="polite"><\/div>/,
  );
  // A malformed id is a missing page, never a query.
  const missing = await get(owner, '/console/conversations/cnv-x');
  expect(missing.status).toBe(404);
  expect(await missing.text()).toContain('<title>Not found · Warden</title>');
  // A body over the limit, and a session that is over, are told on pages too.
  const huge = await post(owner, `${page}/messages`, { message: 'x'.repeat(stack.config.maxBodyBytes + 1) });
  expect(huge.status).toBe(413);
  expect(await huge.text()).toMatch(/<title>Too large · Warden<\/title>[\s\S]*the request body is larger than the limit/);
  const over = await post({ cookie: 'warden_console=gone', csrf: owner.csrf }, `${page}/end`, {});
  expect(over.status).toBe(401);
  expect(await over.text()).toMatch(/<title>Signed out · Warden<\/title>[\s\S]*sign in first[\s\S]*href="\/console\/sign-in"/);
});

/** The page's event stream, as the browser's EventSource opens it (the session cookie, no key). */
async function openStream(who: Who, id: string) {
  const res = await stack.realApp.request(`${ORIGIN}/console/conversations/${id}/events`, {
    headers: { cookie: who.cookie, accept: 'text/event-stream' },
  });
  const events = res.status === 200 ? readServerSentEvents(res.body!) : null;
  // Cancelling the body is the reader going away, as a closed page's stream does.
  const close = async () => void (events ? await events.return(undefined) : res.bodyUsed || (await res.body?.cancel()));
  onTestFinished(close);
  return {
    res,
    /** The kinds of the events read until the stream ends. */
    async untilEnd(): Promise<string[]> {
      const kinds = [];
      for await (const event of events!) kinds.push(event.event);
      return kinds;
    },
    next: () => events!.next(),
    close,
  };
}

it("streams a conversation's events to its page as the API does, bounded per key, and ends them with the session", async () => {
  const streamer = await stack.keys.create('Sam', 'operator', null);
  const sam = await session(streamer.key);
  const started = await post(sam, '/console/conversations', { agent_id: agentId });
  const id = started.headers.get('location')!.split('/').at(-1)!;
  const first = await openStream(sam, id);
  expect(first.res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  fake.script(ROUTE, { json: openaiCompletion({ content: 'Hello from the model.' }) });
  await post(sam, `/console/conversations/${id}/messages`, { message: 'hello' });
  const seen: string[] = [];
  for (let next = await first.next(); !next.done; next = await first.next()) {
    seen.push(next.value.event);
    if (next.value.event === 'turn_end') break;
  }
  expect(seen).toEqual(['message', 'text', 'turn_end']);

  // Refused as the API refuses it: another operator is told it does not exist, a viewer is not allowed, both on pages.
  const [other, viewer] = [await session(key.other), await session(key.viewer)];
  const notTheirs = await openStream(other, id);
  expect(notTheirs.res.status).toBe(404);
  expect(await notTheirs.res.text()).toContain('<title>Not found · Warden</title>');
  expect((await openStream(viewer, id)).res.status).toBe(403);
  expect((await openStream({ cookie: 'warden_console=forged' }, id)).res.status).toBe(303);

  // A key holds at most four streams, its API streams and its pages' together.
  const more = [await openStream(sam, id), await openStream(sam, id)];
  const byKey = await stack.realApp.request(`/api/conversations/${id}/events`, { headers: { authorization: `Bearer ${streamer.key}` } });
  onTestFinished(() => byKey.body?.cancel());
  expect(byKey.status).toBe(200);
  const fifth = await openStream(sam, id);
  expect(fifth.res.status).toBe(429);
  expect(await fifth.res.text()).toMatch(/<title>Too many requests · Warden<\/title>[\s\S]*already has 4 event streams open/);

  // Signing out ends this session's streams; revoking the key ends the streams of all its sessions and of the key itself.
  const second = await session(streamer.key);
  await byKey.body!.cancel();
  const secondStream = await waitFor('a stream place to be given back', async () => {
    const s = await openStream(second, id);
    return s.res.status === 200 ? s : undefined;
  });
  await post(sam, '/console/sign-out', {});
  for (const s of [first, ...more]) await s.untilEnd();
  await stack.keys.revoke(streamer.id);
  expect(await secondStream.untilEnd()).not.toContain('end');
  await stack.api('POST', `/api/conversations/${id}/end`);
});

it('cancels a running turn from the page: its action awaiting approval is cancelled', async () => {
  const owner = await session(key.owner);
  const started = await post(owner, '/console/conversations', { agent_id: agentId });
  const page = started.headers.get('location')!;
  fake.script(ROUTE, { json: openaiCompletion({ tool_calls: [shellCall('call_wait', 'echo never')] }) });
  expect(await (await post(owner, `${page}/messages`, { message: 'run it' })).text()).toContain('Sent: turn 1 is running.');
  await waitFor('the tool call to await approval', async () =>
    (await (await get(owner, `${page}/live`)).text()).includes('Awaiting approval'),
  );
  expect(await (await get(owner, page)).text()).toMatch(/<button type="submit">Cancel turn<\/button>/);
  expect(await (await post(owner, `${page}/cancel`, {})).text()).toContain('Cancelling the running turn');
  const html = await waitFor('the turn to be cancelled', async () => {
    const live = await (await get(owner, `${page}/live`)).text();
    return live.includes('<p class="turn-state"><span class="badge badge-cancelled">') ? live : undefined;
  });
  expect(html).toMatch(/cancelled by key_[0-9a-f]{12}/);
  expect(html).not.toContain('Cancel turn');
  expect(html).not.toContain('Awaiting approval');
  expect(html).toMatch(/<code>shell.exec<\/code> <span class="badge badge-cancelled">/);
  await post(owner, `${page}/end`, {});
});
