/**
 * Property-based fuzzing of every route in the OpenAPI document against the real stack (Temporal,
 * workers, Docker): requests generated from each route's schemas, valid and mutated (wrong types,
 * unknown fields, huge and unicode strings, odd path parameters, junk queries), malformed JSON,
 * wrong content types, oversized bodies, missing and weak keys. Every answer is a declared status
 * of that route with a body that validates against the declared schema; never a 5xx; no
 * unhandled rejection anywhere in the process. Actions with parameters generated from the skills' own
 * schemas run on a live agent, and the records they leave match the document.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { arbitraryOf, deref, validate, type JsonSchema, type OpenApiDocument } from '../support/openapi-schema.js';
import { startStack, stopLiveAgents, waitFor, waitForStatus } from '../support/helpers.js';
import { ACTION_TYPES, type ActionRecord } from '../../domain/action.js';
import { APPROVALS_REQUIRED } from '../../domain/policy.js';
import { riskRank, type RiskLevel } from '../../domain/risk.js';

const MAX_BODY = 64 * 1024;
const RUNS = Number(process.env.WARDEN_FUZZ_RUNS ?? 80);

const rejections: unknown[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);
process.on('unhandledRejection', onRejection);

let stack: Awaited<ReturnType<typeof startStack>>;
let doc: OpenApiDocument;
const keys: Record<'admin' | 'viewer', string> = { admin: '', viewer: '' };

beforeAll(async () => {
  // Few agents (each is a container); generous rate limits so the handlers, not the limiter, answer.
  stack = await startStack({
    config: { maxAgents: 2, maxBodyBytes: MAX_BODY, rateLimits: 'read=100000/s,write=100000/s,approve=100000/s,auth_failure=100000/s' },
  });
  keys.admin = await stack.keyFor('admin');
  keys.viewer = await stack.keyFor('viewer');
  doc = (await (await stack.realApp.request('/openapi.json')).json()) as OpenApiDocument;
});

afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  if (!stack) return;
  // Whatever agents the fuzzer created: stopped, and their containers gone.
  await stopLiveAgents(stack.api);
  await stack.stop();
});

interface Operation {
  method: string;
  path: string;
  spec: { parameters?: Array<{ name: string; in: string; schema: JsonSchema }>; requestBody?: any; responses: Record<string, any> };
}

function operations(): Operation[] {
  return Object.entries(doc.paths).flatMap(([path, item]) =>
    Object.entries(item).map(([method, spec]) => ({ method: method.toUpperCase(), path, spec })),
  );
}

interface FuzzRequest {
  params: Record<string, string>;
  query: Array<[string, string]>;
  body?: { text: string; contentType?: string };
  auth: 'admin' | 'viewer' | 'none' | 'garbage';
}

// Path segments a URL parser turns into another path (".", "..") or that name a sibling route.
const SIBLINGS = new Set(['pending', 'verify', 'export']);
const routable = (raw: string) => raw !== '' && !/^(\.|%2e){1,2}$/i.test(raw) && !SIBLINGS.has(raw);

// Lone surrogates cannot be percent-encoded: replace them, as a browser would.
const wellFormed = (s: string) => s.replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD');

/** Path parameter values: valid ones, unicode, huge, control characters, and raw broken escapes. */
const pathValue = (schema: JsonSchema) =>
  fc
    .oneof(
      arbitraryOf(doc, schema).map((v) => encodeURIComponent(String(v))),
      fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }).map((v) => encodeURIComponent(wellFormed(v))),
      fc.string({ unit: 'binary', minLength: 1, maxLength: 30 }).map((v) => encodeURIComponent(wellFormed(v))),
      fc.constantFrom('%', '%zz', '%E0%A4%A', '%00', 'a%2Fb', '%2e%2e%2fetc', 'x'.repeat(3000), "'%20OR%201=1", '%F0%9F%92%A5'),
    )
    .filter(routable);

const junk = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'grapheme', maxLength: 20 }),
  fc.constantFrom('-1', '0', '1e309', 'NaN', 'null', 'true', '[]', '{}', '9'.repeat(400)),
);

/** A JSON value with one field mutated: replaced by another type, an unknown field added, a string made huge or exotic. */
function mutated(value: unknown): fc.Arbitrary<unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return fc.jsonValue({ maxDepth: 3 });
  const object = value as Record<string, unknown>;
  const fields = Object.keys(object);
  const field = fields.length ? fc.constantFrom(...fields) : fc.constant('x');
  return fc.oneof(
    fc.tuple(field, fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => ({ ...object, [k]: v })),
    fc.tuple(fc.string({ minLength: 1, maxLength: 12 }), fc.jsonValue({ maxDepth: 1 })).map(([k, v]) => ({ ...object, [`${k}_`]: v })),
    fc.tuple(field, fc.integer({ min: 1000, max: 60_000 })).map(([k, n]) => ({ ...object, [k]: 'é'.repeat(n / 2) })),
    fc.tuple(field, fc.string({ unit: 'grapheme', maxLength: 200 })).map(([k, s]) => ({ ...object, [k]: s })),
    fc.tuple(field, fc.constantFrom(null, -1, 1e308, -0, '', [], {}, true)).map(([k, v]) => ({ ...object, [k]: v })),
    fc.jsonValue({ maxDepth: 3 }),
  );
}

const CONTENT_TYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data', 'application/xml', 'application/jsonx'];

function bodyArbitrary(op: Operation): fc.Arbitrary<FuzzRequest['body']> {
  const schema = op.spec.requestBody?.content?.['application/json']?.schema;
  const valid = schema ? arbitraryOf(doc, schema) : fc.jsonValue({ maxDepth: 2 });
  const json = fc.constantFrom('application/json', 'application/json; charset=utf-8');
  return fc.oneof(
    { weight: 4, arbitrary: fc.tuple(valid, json).map(([v, contentType]) => ({ text: JSON.stringify(v), contentType })) },
    {
      weight: 4,
      arbitrary: fc.tuple(valid.chain(mutated), json).map(([v, contentType]) => ({ text: JSON.stringify(v) ?? 'null', contentType })),
    },
    // Malformed JSON: cut short, or not JSON at all.
    {
      weight: 1,
      arbitrary: fc
        .oneof(
          valid.map((v) => JSON.stringify(v).slice(0, -1)),
          fc.string({ maxLength: 50 }),
          fc.constantFrom('', '{', '{"a":}', "{'a':1}", 'NaN'),
        )
        .filter((text) => {
          try {
            JSON.parse(text);
            return false;
          } catch {
            return true;
          }
        })
        .map((text) => ({ text, contentType: 'application/json' })),
    },
    {
      weight: 1,
      arbitrary: fc
        .tuple(valid, fc.constantFrom(...CONTENT_TYPES))
        .map(([v, contentType]) => ({ text: JSON.stringify(v) ?? 'x', contentType })),
    },
    { weight: 1, arbitrary: valid.map((v) => ({ text: JSON.stringify(v) ?? 'x' })) },
    // Larger than the limit.
    {
      weight: 1,
      arbitrary: fc
        .integer({ min: MAX_BODY + 1, max: 4 * MAX_BODY })
        .map((n) => ({ text: JSON.stringify({ pad: 'x'.repeat(n) }), contentType: 'application/json' })),
    },
    { weight: 1, arbitrary: fc.constant(undefined) },
  );
}

function requestArbitrary(op: Operation): fc.Arbitrary<FuzzRequest> {
  const parameters = op.spec.parameters ?? [];
  const params = Object.fromEntries(parameters.filter((p) => p.in === 'path').map((p) => [p.name, pathValue(p.schema)]));
  const query = parameters.filter((p) => p.in === 'query');
  const queryValue = (p: (typeof query)[number]) =>
    fc.oneof(
      arbitraryOf(doc, deref(doc, p.schema)).map((v) => [[p.name, String(v)]] as Array<[string, string]>),
      junk.map((v) => [[p.name, v]] as Array<[string, string]>),
      fc.constant([] as Array<[string, string]>),
    );
  const queries = fc
    .tuple(fc.tuple(...query.map(queryValue)), fc.option(fc.tuple(fc.string({ minLength: 1, maxLength: 8 }), junk), { nil: undefined }))
    .map(([pairs, extra]) => [...pairs.flat(), ...(extra ? [extra] : [])]);
  return fc.record({
    params: fc.record(params),
    query: queries,
    body: op.method === 'GET' ? fc.constant(undefined) : bodyArbitrary(op),
    auth: fc.constantFrom('admin', 'admin', 'admin', 'admin', 'viewer', 'none', 'garbage'),
  });
}

async function send(op: Operation, req: FuzzRequest) {
  const path = op.path.replace(/\{(\w+)\}/g, (_, name: string) => req.params[name]!);
  const search = req.query.length ? `?${new URLSearchParams(req.query)}` : '';
  const headers: Record<string, string> = {};
  if (req.auth === 'admin' || req.auth === 'viewer') headers.authorization = `Bearer ${keys[req.auth]}`;
  if (req.auth === 'garbage') headers.authorization = 'Bearer wk_\u00e9 \t x';
  if (req.body?.contentType) headers['content-type'] = req.body.contentType;
  const res = await stack.realApp.request(`${path}${search}`, { method: op.method, headers, body: req.body?.text });
  return {
    url: `${op.method} ${path}${search}`,
    status: res.status,
    contentType: res.headers.get('content-type') ?? '',
    text: await res.text(),
  };
}

/** What is wrong with this answer under the document: an undeclared status, a body off its schema, a 5xx. */
function nonConformance(op: Operation, res: Awaited<ReturnType<typeof send>>): string[] {
  if (res.status >= 500) return [`${res.status}: ${res.text.slice(0, 300)}`];
  const declared = op.spec.responses[String(res.status)] ?? op.spec.responses.default;
  if (!declared) return [`status ${res.status} is not declared (declared: ${Object.keys(op.spec.responses)}): ${res.text.slice(0, 200)}`];
  const schema = declared.content?.['application/json']?.schema;
  if (!schema) return [];
  // A route may declare more than JSON (the codec sign-in answers a form with a page): any declared type.
  const type = res.contentType.split(';')[0]!.trim();
  if (type !== 'application/json') {
    return declared.content?.[type] ? [] : [`content type ${res.contentType}, declared ${Object.keys(declared.content ?? {}).join(', ')}`];
  }
  let body: unknown;
  try {
    body = JSON.parse(res.text);
  } catch {
    return [`a body that is not JSON: ${res.text.slice(0, 100)}`];
  }
  return validate(doc, schema, body).map((p) => `${res.status} body ${p}`);
}

// First, while the fuzzer below has not yet taken the agent slots.
describe('actions with generated parameters on a live agent', () => {
  const FINAL = ['completed', 'failed', 'rejected', 'expired', 'cancelled'];
  const submitted: string[] = [];
  let agentId: string;

  beforeAll(async () => {
    // The capacity (2 agents here) is the suite's: agents other test files left running count.
    await stopLiveAgents(stack.api);
    const created = await stack.api('POST', '/api/agents', { skill_id: 'shell', runtime: 'runc', resource_limits: { memory_mb: 128 } });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    agentId = created.body.id;
    await waitForStatus(stack.api, agentId, ['running']);
  });

  afterAll(async () => {
    // Nothing left waiting: pending actions are rejected by an approver (not their requester) and every workflow ends.
    const approver = await stack.keyFor('approver');
    const record = async (id: string) => (await stack.api('GET', `/api/actions/${id}`)).body;
    const settled = () =>
      waitFor(
        'the actions to settle',
        async () => {
          const records = await Promise.all(submitted.map(record));
          return records.every((r) => FINAL.includes(r.status) || r.status === 'pending') && records;
        },
        120_000,
      );
    for (const action of (await settled()).filter((r) => r.status === 'pending')) {
      await stack.realApp.request(`/api/actions/${action.id}/approve`, {
        method: 'POST',
        headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' },
        body: JSON.stringify({ approved: false, params_hash: action.params_hash, comment: 'fuzz clean-up' }),
      });
    }
    await waitFor(
      'every action to end',
      async () => (await Promise.all(submitted.map(record))).every((r) => FINAL.includes(r.status)),
      60_000,
    );
  });

  it('answers as the document declares, and the records it keeps match their schema', async () => {
    const submit = operations().find((op) => op.method === 'POST' && op.path === '/api/actions')!;
    const getAction = operations().find((op) => op.method === 'GET' && op.path === '/api/actions/{id}')!;
    const getAgent = operations().find((op) => op.method === 'GET' && op.path === '/api/agents/{id}')!;
    const skills: Array<{ id: string; operations: Array<{ name: string; risk: RiskLevel; parameters: JsonSchema }> }> = (
      await stack.api('GET', '/api/skills')
    ).body.skills;
    // Every action type with every skill operation: a type that does not fit its skill is refused.
    const requests = fc
      .record({
        action_type: fc.constantFrom(...ACTION_TYPES),
        target: fc.constantFrom(
          ...skills.flatMap((skill) => skill.operations.map((op) => ({ skill: skill.id, op: op.name, schema: op.parameters }))),
        ),
      })
      .chain(({ action_type, target: { skill, op, schema } }) =>
        fc.record({
          action_type: fc.constant(action_type),
          skill_id: fc.constant(skill),
          operation: fc.constant(op),
          agent_id: fc.constant(agentId),
          parameters: fc.oneof(
            { weight: 3, arbitrary: arbitraryOf(doc, schema) },
            { weight: 1, arbitrary: arbitraryOf(doc, schema).chain(mutated) },
          ),
        }),
      );
    const failures: string[] = [];
    await fc.assert(
      fc.asyncProperty(requests, async (body) => {
        const res = await send(submit, {
          params: {},
          query: [],
          body: { text: JSON.stringify(body), contentType: 'application/json' },
          auth: 'admin',
        });
        const problems = nonConformance(submit, res);
        if (problems.length) failures.push(`${res.url} ${JSON.stringify(body).slice(0, 200)}: ${problems.slice(0, 3).join('; ')}`);
        if (res.status === 202) submitted.push(JSON.parse(res.text).id);
      }),
      {
        numRuns: Math.ceil(RUNS / 3),
        // Always among the runs, so the oracle below sees both: one that runs at once, one held for approval.
        examples: [
          [{ action_type: 'skill_execution', skill_id: 'filesystem', operation: 'list', agent_id: agentId, parameters: { path: '.' } }],
          [
            {
              action_type: 'skill_execution',
              skill_id: 'shell',
              operation: 'exec',
              agent_id: agentId,
              parameters: { command: 'echo fuzz' },
            },
          ],
        ],
      },
    );
    expect(failures).toEqual([]);
    expect(submitted.length).toBeGreaterThan(0);
    // The records, as they are now (pending, running, completed, failed, rejected), and the agent's.
    for (const id of submitted)
      expect(nonConformance(getAction, await send(getAction, { params: { id }, query: [], auth: 'viewer' }))).toEqual([]);
    expect(nonConformance(getAgent, await send(getAgent, { params: { id: agentId }, query: [], auth: 'viewer' }))).toEqual([]);

    // The security oracle, once each action has run or waits for a decision (nobody approves here).
    const risk = new Map(skills.flatMap((skill) => skill.operations.map((op) => [`${skill.id}.${op.name}`, op.risk] as const)));
    const records: ActionRecord[] = await waitFor(
      'the actions to settle',
      async () => {
        const now = await Promise.all(submitted.map(async (id) => (await stack.api('GET', `/api/actions/${id}`)).body as ActionRecord));
        return now.every((r) => FINAL.includes(r.status) || r.status === 'pending') && now;
      },
      120_000,
    );
    const breaches = records.flatMap((r) => {
      const found: string[] = [];
      const named = `${r.id} ${r.action_type} ${r.skill_id}.${r.operation} (${r.status}, ${r.security_level})`;
      const granted = r.approvals.filter((a) => a.approved).length;
      const defaultRisk = r.action_type === 'skill_execution' ? risk.get(`${r.skill_id}.${r.operation}`) : undefined;
      if (r.action_type === 'skill_execution' && !defaultRisk) found.push(`${named}: accepted without a known skill operation`);
      if (defaultRisk && riskRank(r.security_level) < riskRank(defaultRisk))
        found.push(`${named}: below the operation's default risk ${defaultRisk}`);
      // (A denial is recorded as rejected at critical with no approvals to wait for.)
      if (r.status !== 'rejected' && r.approvals_required < APPROVALS_REQUIRED[r.security_level])
        found.push(`${named}: needs ${r.approvals_required} approvals, its level ${APPROVALS_REQUIRED[r.security_level]}`);
      if (r.status === 'completed' && granted < r.approvals_required)
        found.push(`${named}: completed with ${granted} of ${r.approvals_required} approvals`);
      if (r.skill_id === 'shell' && r.status === 'completed' && granted === 0)
        found.push(`${named}: a shell command completed without an approval`);
      return found;
    });
    expect(breaches).toEqual([]);
    // The oracle saw both kinds: actions that ran at once and shell commands held for approval.
    expect(records.some((r) => r.status === 'completed')).toBe(true);
    expect(records.some((r) => r.skill_id === 'shell' && r.status === 'pending')).toBe(true);
  });
});

describe('every route in the OpenAPI document', () => {
  it('lists the routes it fuzzes', () => {
    const routes = operations().map((op) => `${op.method} ${op.path}`);
    expect(routes.length).toBeGreaterThanOrEqual(20);
    expect(routes).toEqual(
      expect.arrayContaining(['POST /api/agents', 'POST /api/actions', 'POST /api/actions/{id}/approve', 'DELETE /api/keys/{id}']),
    );
  });

  it('answers generated and mutated requests with a declared status and a body of its schema, never a 5xx', async () => {
    const failures: string[] = [];
    for (const op of operations()) {
      await fc.assert(
        fc.asyncProperty(requestArbitrary(op), async (req) => {
          const res = await send(op, req);
          const problems = nonConformance(op, res);
          if (problems.length)
            failures.push(
              `${res.url.slice(0, 200)} [${req.auth}, ${req.body?.contentType ?? 'no type'}]: ${problems.slice(0, 3).join('; ')}`,
            );
        }),
        { numRuns: op.spec.requestBody ? 2 * RUNS : RUNS },
      );
    }
    expect(failures).toEqual([]);
  });

  it('answers malformed JSON with 400, a wrong content type with 415 and an oversized body with 413, as declared', async () => {
    const withBody = operations().filter((op) => op.spec.requestBody);
    expect(withBody.length).toBeGreaterThanOrEqual(5);
    for (const op of withBody) {
      // A well-formed path parameter, so the body is what gets judged (secret names look like env variables).
      const validParam = (name: string) =>
        name === 'name' ? 'FUZZ_SECRET' : op.path.startsWith('/api/conversations/') ? 'cnv-0000000000000000' : 'act-0000000000000000';
      const params = Object.fromEntries((op.spec.parameters ?? []).filter((p) => p.in === 'path').map((p) => [p.name, validParam(p.name)]));
      const cases: Array<[FuzzRequest['body'], number, string]> = [
        [{ text: '{"a": ', contentType: 'application/json' }, 400, 'bad_request'],
        [{ text: '{}', contentType: 'text/plain' }, 415, 'unsupported_media_type'],
        [{ text: '{}' }, 415, 'unsupported_media_type'],
        [{ text: JSON.stringify({ pad: 'x'.repeat(MAX_BODY) }), contentType: 'application/json' }, 413, 'payload_too_large'],
      ];
      for (const [body, status, code] of cases) {
        const res = await send(op, { params, query: [], body, auth: 'admin' });
        expect(res.status, `${res.url}: ${res.text}`).toBe(status);
        expect(JSON.parse(res.text).error.code, `${res.url}: ${res.text}`).toBe(code);
        expect(nonConformance(op, res)).toEqual([]);
      }
    }
  });

  it('left no unhandled rejection behind', async () => {
    await new Promise((r) => setTimeout(r, 100));
    expect(rejections.map(String)).toEqual([]);
  });
});
