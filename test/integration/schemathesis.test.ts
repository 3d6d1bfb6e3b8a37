/**
 * Schemathesis (PyPI) against the real API over HTTP, with workers on the suite's Temporal server
 * and the real Docker engine: every operation in /openapi.json with generated valid and invalid
 * data; it finds no server error, no undeclared status or content type, no response off its
 * schema, and no invalid request accepted. At most two agents exist at a time (each is a
 * container); whatever the run created is stopped and removed afterwards.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { serve, type ServerType } from '@hono/node-server';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { ROLES, type Role } from '../../domain/roles.js';
import { startStack, stopLiveAgents } from '../support/helpers.js';
import { documentedRoutes, leastRoles, routeOf } from '../support/route-roles.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let server: ServerType;
let url: string;
/** Every request the API answered during the runs: who asked (by key), what, and the status. */
const answered: Array<{ key: string; method: string; path: string; status: number }> = [];

beforeAll(async () => {
  stack = await startStack({ config: { maxAgents: 2, rateLimits: 'read=100000/s,write=100000/s,approve=100000/s,auth_failure=100000/s' } });
  url = await new Promise<string>((resolve) => {
    const fetch = async (req: Request) => {
      const res = await stack.realApp.fetch(req);
      const key = req.headers.get('authorization')?.replace(/^Bearer /, '') ?? '';
      answered.push({ key, method: req.method, path: new URL(req.url).pathname, status: res.status });
      return res;
    };
    server = serve({ fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve(`http://127.0.0.1:${info.port}`));
  });
});

afterAll(async () => {
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  if (!stack) return;
  await stopLiveAgents(stack.api);
  await stack.stop();
});

/** Runs a command without blocking this process (the API under test answers from it). */
function run(command: string, args: string[], env: NodeJS.ProcessEnv) {
  return new Promise<{ code: number | null; output: string }>((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, output }));
  });
}

it('Schemathesis finds no failure in any operation', async () => {
  const { code, output } = await run('bash', [join(PROJECT_ROOT, 'scripts/schemathesis.sh'), url, '--seed', '1'], {
    ...process.env,
    WARDEN_API_KEY: await stack.keyFor('admin'),
    NO_COLOR: '1',
  });
  // Every operation of the document was selected and tested.
  const [, selected, total] = /Operations:\s+(\d+) selected \/ (\d+) total/.exec(output) ?? [];
  expect(Number(selected)).toBeGreaterThanOrEqual(20);
  expect(selected).toBe(total);
  expect(output).toMatch(new RegExp(`Tested: ${selected}\\b`));
  expect(code, output.slice(-6000)).toBe(0);
}, 600_000);

/**
 * The lower roles, with the same phases and examples: no failure of Schemathesis' checks, no 5xx,
 * and every write the role may not do (by the matrix in test/support/route-roles.ts) refused with a 403
 * (or, before the key is read, a 413 or 415), never done.
 */
it.each(['viewer', 'operator'] as const)(
  'as %s: no failure, and every write above the role is a 403',
  async (role: Role) => {
    const key = await stack.keyFor(role);
    const from = answered.length;
    const { code, output } = await run('bash', [join(PROJECT_ROOT, 'scripts/schemathesis.sh'), url, '--seed', '1'], {
      ...process.env,
      WARDEN_API_KEY: key,
      NO_COLOR: '1',
    });
    expect(code, output.slice(-6000)).toBe(0);
    const doc = (await (await stack.realApp.request('/openapi.json')).json()) as { paths: Record<string, Record<string, unknown>> };
    const documented = documentedRoutes(doc);
    const least = leastRoles(documented);
    const mine = answered.slice(from).filter((a) => a.key === key);
    const aboveRole = mine.filter((a) => {
      if (['GET', 'HEAD', 'OPTIONS'].includes(a.method)) return false;
      const route = routeOf(documented, a.method, a.path);
      const needs = route && least.get(route.route);
      return needs !== undefined && ROLES.indexOf(needs) > ROLES.indexOf(role);
    });
    expect(aboveRole.length, `${role}: Schemathesis sent writes above the role`).toBeGreaterThan(0);
    // 413 and 415: the body-size and content-type checks answer before anything reads the key.
    const notRefused = aboveRole.filter((a) => ![403, 413, 415].includes(a.status)).map((a) => `${a.method} ${a.path}: ${a.status}`);
    expect(notRefused).toEqual([]);
    expect(mine.filter((a) => a.status >= 500).map((a) => `${a.method} ${a.path}: ${a.status}`)).toEqual([]);
  },
  900_000,
);
