/**
 * Recovery from real failures with several things in flight at once: agents being created,
 * commands running (each appends its own line to a workspace file), an action awaiting approval.
 * 1. The worker process is SIGKILLed; a new one starts: every workflow completes, every command
 *    ran exactly once, no container is left behind.
 * 2. The Temporal dev server is stopped and started again on the same SQLite file while the
 *    workers keep running: nothing is lost, every command ran once.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import {
  approveWith,
  containersOf,
  startStack,
  submitShell,
  uniqueId,
  waitFor,
  waitForStatus,
  testAuditOptions,
} from '../support/helpers.js';
import { killWorkers, signalWorker, startWorker, workspaceLines } from '../support/worker-process.js';

type Stack = Awaited<ReturnType<typeof startStack>>;
const stacks: Stack[] = [];
const dir = mkdtempSync(join(tmpdir(), 'warden-recovery-'));
let server: DevServer | undefined;
afterAll(async () => {
  killWorkers();
  for (const s of stacks) await s.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** A command that records its run with its own line, stays busy a while, and answers its name. */
const recorded = (name: string, seconds: number) => `echo ${name} >> ran.txt; sleep ${seconds}; echo ${name}`;

async function createAgent(stack: Stack, prefix: string): Promise<string> {
  const id = uniqueId(prefix);
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  return id;
}

interface Submitted {
  id: string;
  params_hash: string;
  agentId: string;
  name: string;
}

async function submit(stack: Stack, agentId: string, name: string, seconds: number): Promise<Submitted> {
  const res = await submitShell(stack.api, agentId, recorded(name, seconds));
  expect(res.body.status).toBe('pending');
  return { id: res.body.id, params_hash: res.body.params_hash, agentId, name };
}

/** Every action completes with its own output, and its line is in the agent's file exactly once. */
async function expectEachRanOnce(stack: Stack, actions: Submitted[]) {
  for (const action of actions) {
    const done = await waitFor(
      `action ${action.name} to finish`,
      async () => {
        const res = await stack.api('GET', `/api/actions/${action.id}`);
        return res.status === 200 && res.body.completed_at ? res.body : undefined;
      },
      180_000,
    );
    expect(done, `${action.name}: ${done.error}`).toMatchObject({
      status: 'completed',
      result: { exit_code: 0, stdout: `${action.name}\n` },
    });
    expect(await workspaceLines(action.agentId, 'ran.txt', action.name), action.name).toBe(1);
  }
}

/** Stops the agents and checks that none of their containers is left. */
async function expectNoLeaks(stack: Stack, agentIds: string[]) {
  for (const id of agentIds) await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  for (const id of agentIds) {
    await waitForStatus(stack.api, id, ['stopped'], 90_000);
    expect(await containersOf(id), id).toHaveLength(0);
  }
}

it('SIGKILL the worker with agents being created, commands running and an approval pending: all complete, each ran once, nothing leaks', async () => {
  const stack = await startStack({ workers: false });
  stacks.push(stack);
  const approver = (await stack.keys.create('approver', 'approver', null)).key;
  await startWorker().ready;

  const [x, y] = [await createAgent(stack, 'rec-x'), await createAgent(stack, 'rec-y')];
  await Promise.all([x, y].map((id) => waitForStatus(stack.api, id, ['running'], 90_000)));
  const running = [await submit(stack, x, 'x1', 6), await submit(stack, x, 'x2', 6), await submit(stack, y, 'y1', 6)];
  for (const action of running) expect(await approveWith(stack, approver, action)).toBe(200);
  const waiting = await submit(stack, y, 'y2', 0);
  await waitFor('the three commands to be running', async () => {
    for (const a of running) if ((await workspaceLines(a.agentId, 'ran.txt', a.name)) !== 1) return false;
    return true;
  });
  const creating = [await createAgent(stack, 'rec-new'), await createAgent(stack, 'rec-new')];

  killWorkers();
  await startWorker().ready;

  expect(await approveWith(stack, approver, waiting)).toBe(200);
  for (const id of creating) await waitForStatus(stack.api, id, ['running'], 120_000);
  await expectEachRanOnce(stack, [...running, waiting]);
  for (const id of [x, y, ...creating]) expect(await containersOf(id), id).toHaveLength(1);
  await expectNoLeaks(stack, [x, y, ...creating]);

  // Finished actions and stopped agents answer from their workflows' results: no worker is left to replay them.
  killWorkers();
  for (const action of [...running, waiting]) {
    const res = await stack.api('GET', `/api/actions/${action.id}`);
    expect(res.body, action.name).toMatchObject({ status: 'completed', result: { stdout: `${action.name}\n` } });
  }
  for (const id of [x, y]) expect((await stack.api('GET', `/api/agents/${id}`)).body).toMatchObject({ id, status: 'stopped' });
  const stopAgain = await stack.api('POST', `/api/agents/${x}/stop`, {});
  expect(stopAgain.body.error).toMatchObject({ code: 'agent_not_active', message: expect.stringMatching(/is stopped/) });
}, 420_000);

it('restart the Temporal server mid-run with agents being created and commands running: nothing lost, each ran once', async () => {
  killWorkers(); // the first test's worker must not poll this server's queues (different server, but be sure)
  const port = await freePort();
  const serve = () => startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  server = await serve();
  // In-process workers that live through the restart: their connection reconnects by itself.
  const stack = await startStack({
    config: { temporalAddress: server.address },
    audit: AuditStore.open(join(dir, 'audit.db'), testAuditOptions()),
  });
  stacks.push(stack);
  const approver = (await stack.keys.create('approver', 'approver', null)).key;

  const x = await createAgent(stack, 'rst-x');
  await waitForStatus(stack.api, x, ['running'], 90_000);
  const running = [await submit(stack, x, 'r1', 8), await submit(stack, x, 'r2', 8)];
  for (const action of running) expect(await approveWith(stack, approver, action)).toBe(200);
  await waitFor('both commands to be running', async () => {
    for (const a of running) if ((await workspaceLines(a.agentId, 'ran.txt', a.name)) !== 1) return false;
    return true;
  });
  const creating = [await createAgent(stack, 'rst-new'), await createAgent(stack, 'rst-new')];

  await server.stop();
  server = await serve();

  for (const id of creating) await waitForStatus(stack.api, id, ['running'], 120_000);
  await expectEachRanOnce(stack, running);
  for (const id of [x, ...creating]) expect(await containersOf(id), id).toHaveLength(1);
  // An action submitted after the restart runs too.
  const after = await submit(stack, x, 'r3', 0);
  expect(await approveWith(stack, approver, after)).toBe(200);
  await expectEachRanOnce(stack, [after]);
  await expectNoLeaks(stack, [x, ...creating]);
  expect((await stack.audit.verify()).ok).toBe(true);
}, 420_000);
