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
import { PROJECT_ROOT } from '../scripts/dev-server.js';
import { startStack, stopLiveAgents } from './helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let server: ServerType;
let url: string;

beforeAll(async () => {
  stack = await startStack({ config: { maxAgents: 2, rateLimits: 'read=100000/s,write=100000/s,approve=100000/s,auth_failure=100000/s' } });
  url = await new Promise<string>((resolve) => {
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: 0 }, (info) => resolve(`http://127.0.0.1:${info.port}`));
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
    WARDEN_API_KEY: stack.keyFor('admin'),
    NO_COLOR: '1',
  });
  // Every operation of the document was selected and tested.
  const [, selected, total] = /Operations:\s+(\d+) selected \/ (\d+) total/.exec(output) ?? [];
  expect(Number(selected)).toBeGreaterThanOrEqual(20);
  expect(selected).toBe(total);
  expect(output).toMatch(new RegExp(`Tested: ${selected}\\b`));
  expect(code, output.slice(-6000)).toBe(0);
}, 600_000);
