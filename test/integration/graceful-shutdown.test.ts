/**
 * Graceful shutdown with real processes: SIGTERM to a worker lets an activity in flight finish
 * within the grace period and exits 0; past the grace the command runs on in the sandbox and the
 * next worker collects its outcome (it ran once); an agent being created when the worker is told
 * to stop ends with exactly one container, owned by its workflow. SIGTERM to the API lets a
 * request in flight finish while new connections are refused.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import type { temporal } from '@temporalio/proto';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import {
  approveWith,
  containersOf,
  startStack,
  submitShell,
  TEST_MASTER_KEY,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import { killWorkers, sandboxOutput, signalWorker, startWorker, workspaceLines, type WorkerProcess } from '../support/worker-process.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let approver: string;

beforeAll(async () => {
  stack = await startStack({ workers: false });
  approver = (await stack.keys.create('approver', 'approver', null)).key;
});
afterAll(async () => {
  killWorkers();
  await stack?.stop();
});

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const history = async (workflowId: string): Promise<HistoryEvent[]> =>
  (await stack.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];

/** The started events of the action's exec activity, one per attempt the server handed out. */
const execAttempts = (events: HistoryEvent[]) => {
  const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'execInSandbox');
  return events.filter(
    (e) =>
      e.activityTaskStartedEventAttributes && String(e.activityTaskStartedEventAttributes.scheduledEventId) === String(scheduled?.eventId),
  );
};

async function finalAction(id: string) {
  return waitFor(
    `action ${id} to finish`,
    async () => {
      const res = await stack.api('GET', `/api/actions/${id}`);
      return res.status === 200 && res.body.completed_at ? res.body : undefined;
    },
    120_000,
  );
}

/** Starts a worker and an agent on it; resolves when the agent runs. */
async function runningAgent(prefix: string, env: Record<string, string>) {
  const worker = startWorker(env);
  await worker.ready;
  const id = uniqueId(prefix);
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, id, ['running'], 90_000);
  return { worker, id };
}

async function startCommand(agentId: string, command: string) {
  const submitted = await submitShell(stack.api, agentId, command);
  expect(await approveWith(stack, approver, submitted.body)).toBe(200);
  await waitFor('the command to start', async () => (await workspaceLines(agentId, 'count.txt')) === 1);
  return submitted.body.id as string;
}

/** Stops the agent (its container goes) and then its worker, which exits 0. */
async function stopBoth(agentId: string, worker: WorkerProcess) {
  await stack.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await waitForStatus(stack.api, agentId, ['stopped'], 60_000);
  expect(await containersOf(agentId)).toHaveLength(0);
  signalWorker(worker, 'SIGTERM');
  expect(await worker.exited).toBe(0);
}

it('SIGTERM while an agent is being created: one container, adopted by its workflow', async () => {
  const worker = startWorker({ WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS: '20' });
  await worker.ready;
  const id = uniqueId('term-create');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  await waitFor('the container to be created', async () => (await containersOf(id)).length > 0);
  signalWorker(worker, 'SIGTERM');
  expect(await worker.exited).toBe(0);

  const next = startWorker();
  const agent = await waitForStatus(stack.api, id, ['running'], 90_000);
  const containers = await containersOf(id);
  expect(containers).toHaveLength(1);
  expect(containers[0]!.Id).toBe(agent.container_id);
  await stopBoth(id, next);
}, 240_000);

it('SIGTERM during a command: it finishes within the grace, its result is handed in, the worker exits 0', async () => {
  const { worker, id } = await runningAgent('term-exec', { WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS: '30' });
  const actionId = await startCommand(id, 'echo run >> count.txt; sleep 3; echo done');
  signalWorker(worker, 'SIGTERM');
  expect(await worker.exited).toBe(0);

  // Before any other worker runs: the exec's first and only attempt completed on the leaving worker.
  const events = await history(actionId);
  expect(execAttempts(events)).toHaveLength(1);
  expect(events.some((e) => e.activityTaskCompletedEventAttributes)).toBe(true);

  const next = startWorker();
  expect(await finalAction(actionId)).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'done\n' } });
  expect(await workspaceLines(id, 'count.txt')).toBe(1);
  await stopBoth(id, next);
}, 240_000);

it('SIGTERM during a command longer than the grace: the next worker collects the outcome of its one run', async () => {
  const { worker, id } = await runningAgent('term-long', { WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS: '1' });
  const actionId = await startCommand(id, 'echo run >> count.txt; sleep 8; echo finished');
  signalWorker(worker, 'SIGTERM');
  expect(await worker.exited).toBe(0);

  const next = startWorker();
  expect(await finalAction(actionId)).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'finished\n' } });
  expect(await workspaceLines(id, 'count.txt')).toBe(1); // the retry waited for the first run, it did not run again
  // The leaving worker handed the activity back (a retryable WorkerShutdown failure), it did not time out.
  const attempts = execAttempts(await history(actionId));
  expect(attempts).toHaveLength(1); // only the last attempt's started event is recorded
  expect(attempts[0]!.activityTaskStartedEventAttributes!.attempt).toBe(2);
  expect(attempts[0]!.activityTaskStartedEventAttributes!.lastFailure?.applicationFailureInfo?.type).toBe('WorkerShutdown');
  await stopBoth(id, next);
}, 240_000);

it('a cancelled action still kills its command: only a shutdown leaves it running', async () => {
  const { worker, id } = await runningAgent('cancel-exec', {});
  const actionId = await startCommand(id, 'echo run >> count.txt; sleep 120; echo finished');
  await stack.client.workflow.getHandle(actionId).cancel();
  await waitFor('the action to be cancelled', async () => (await stack.api('GET', `/api/actions/${actionId}`)).body.status === 'cancelled');
  // The activity hears of the cancel at its next heartbeat and kills the command's process group:
  // its `sleep 120` goes long before it would end by itself.
  await waitFor(
    'the command to be killed',
    async () => {
      const processes = await sandboxOutput(id, 'for f in /proc/[0-9]*/cmdline; do tr "\\0" " " < "$f"; echo; done');
      return processes.includes('sh -c for f in') && !processes.includes('sleep 120');
    },
    60_000,
  );
  await stopBoth(id, worker);
}, 240_000);

it('SIGTERM to the API: a request in flight still gets its answer, new connections are refused', async () => {
  // A worker answers the API's lockdown check before it starts the action.
  killWorkers();
  await startWorker().ready;
  const port = await freePort();
  const key = `wk_${'t'.repeat(40)}`;
  const api = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      WARDEN_API_PORT: String(port),
      WARDEN_DATA_DIR: mkdtempSync(join(tmpdir(), 'warden-api-')),
      WARDEN_ADMIN_API_KEY: key,
      WARDEN_LOG_LEVEL: 'warn',
      WARDEN_API_SHUTDOWN_GRACE_SECONDS: '30',
      WARDEN_MASTER_KEY: TEST_MASTER_KEY, // the same keys as the test's workers
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true,
  });
  const exited = new Promise<number | string>((resolve) => api.once('exit', (code, signal) => resolve(code ?? signal!)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor('the API to listen', async () => (await fetch(`${url}/healthz`)).ok);

  // A slow request: a high-risk action waits for its approval, and the API waits 4 s for its outcome.
  const agentId = uniqueId('drain');
  const slow = fetch(`${url}/api/actions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      action_type: 'skill_execution',
      skill_id: 'shell',
      operation: 'exec',
      agent_id: agentId,
      parameters: { command: 'true' },
      wait_seconds: 4,
    }),
  });
  // Its workflow exists once the API is inside the wait.
  const started = await waitFor('the action workflow to start', async () => {
    for await (const info of stack.client.workflow.list({ query: `WardenAgentId = '${agentId}'` })) return info.workflowId;
    return undefined;
  });
  process.kill(-api.pid!, 'SIGTERM');
  await waitFor('the API to stop listening', async () =>
    fetch(`${url}/healthz`).then(
      () => false,
      () => true,
    ),
  );

  const res = await slow;
  expect(res.status).toBe(202);
  expect(await res.json()).toMatchObject({ id: started, status: 'pending' });
  expect(await exited).toBe(0);
  await stack.client.workflow.getHandle(started).terminate('test over');
}, 120_000);
