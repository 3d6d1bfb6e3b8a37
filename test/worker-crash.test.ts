/**
 * Durability: the worker process is SIGKILLed mid-lifecycle, twice; the agent workflow carries on
 * with a new worker, signals sent while no worker ran are not lost, and no container leaks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import proto from '@temporalio/proto';
import { inject } from 'vitest';
import { PROJECT_ROOT } from '../scripts/dev-server.js';
import { CONTROL_TASK_QUEUE, pauseSignal } from '../workflows/definitions.js';
import { approveWith, containersOf, docker, recordHistory, startStack, submitShell, TEST_HOST, TEST_MASTER_KEY, uniqueId, waitFor, waitForStatus } from './helpers.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const workers: ChildProcess[] = [];
const dataDir = mkdtempSync(join(tmpdir(), 'warden-crash-'));

function startWorker(): ChildProcess {
  const child = spawn('npx', ['tsx', 'workers/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      WARDEN_DOCKER_HOST_ID: TEST_HOST,
      WARDEN_DATA_DIR: dataDir,
      WARDEN_MASTER_KEY: TEST_MASTER_KEY, // the same keys as the test's client and API
      WARDEN_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true, // its own process group: SIGKILL reaches tsx and node alike
  });
  workers.push(child);
  return child;
}

/** Starts a worker and waits until it polls: under load, its start (bundling the workflows) outlasts the API's admission deadline. */
async function startPollingWorker(): Promise<ChildProcess> {
  const polling = async () => {
    const res = await stack.client.workflowService.describeTaskQueue({ namespace: 'default', taskQueue: { name: CONTROL_TASK_QUEUE }, taskQueueType: proto.temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW });
    return new Set((res.pollers ?? []).map((p) => p.identity));
  };
  const before = await polling();
  const child = startWorker();
  await waitFor('the new worker to poll', async () => [...(await polling())].some((identity) => !before.has(identity)), 120_000);
  return child;
}

function kill(child: ChildProcess) {
  try {
    process.kill(-child.pid!, 'SIGKILL');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err; // already gone
  }
}

beforeAll(async () => {
  // The API and client only: the worker runs as a separate process that the test kills.
  stack = await startStack({ workers: false, config: { stopGraceSeconds: 2 } });
});
afterAll(async () => {
  for (const w of workers) kill(w);
  await stack?.stop();
});

it('an agent survives its worker being killed while provisioning and while stopping', async () => {
  const id = uniqueId('crash');
  const first = await startPollingWorker();
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);

  // Kill the worker the moment the container exists: createSandbox may be mid-flight.
  await waitFor('the container to be created', async () => (await containersOf(id)).length > 0);
  kill(first);
  // A pause sent while no worker runs waits in the workflow's history.
  await stack.client.workflow.getHandle(id).signal(pauseSignal, {});

  startWorker();
  const paused = await waitForStatus(stack.api, id, ['paused'], 90_000);
  expect(paused.container_id).not.toBeNull();
  const containers = await containersOf(id);
  expect(containers).toHaveLength(1); // the retried create adopted its own container
  expect(containers[0]!.Id).toBe(paused.container_id);
  expect(containers[0]!.State).toBe('paused');

  // Stop, and kill the worker again while the stop is under way.
  expect((await stack.api('POST', `/api/agents/${id}/stop`, {})).status).toBe(202);
  await waitFor('the stop to begin', async () => {
    const res = await stack.api('GET', `/api/agents/${id}`);
    return ['stopping', 'stopped'].includes(res.body.status);
  });
  kill(workers.at(-1)!);
  startWorker();
  const stopped = await waitForStatus(stack.api, id, ['stopped'], 90_000);
  expect(stopped.stopped_at).not.toBeNull();
  expect(await containersOf(id)).toHaveLength(0);

  const history = await stack.client.workflow.getHandle(id).fetchHistory();
  const creates = history.events!.filter(
    (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'createSandbox',
  );
  expect(creates).toHaveLength(1); // one activity, retried by the server, not scheduled twice
  await recordHistory('worker-killed', id);
}, 240_000);

it('a command whose worker is killed mid-run runs once, and its result still arrives', async () => {
  const id = uniqueId('crash-act');
  for (const w of workers) kill(w); // only this test's worker may run its tasks
  await startPollingWorker();
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, id, ['running'], 90_000);
  const approver = stack.keys.create('approver', 'approver', null).key;
  const submitted = await submitShell(stack.api, id, 'echo run >> count.txt; sleep 6; echo finished');
  expect(submitted.body.status).toBe('pending');
  expect(await approveWith(stack, approver, submitted.body)).toBe(200);

  // Kill the worker once the command has started in the sandbox.
  const lines = async () => {
    const exec = await docker.getContainer(`warden-agent-${id}`).exec({ Cmd: ['sh', '-c', 'cat count.txt 2>/dev/null | wc -l'], AttachStdout: true });
    const stream = await exec.start({ hijack: true, stdin: false });
    let out = '';
    stream.on('data', (d: Buffer) => (out += d.toString('latin1')));
    await new Promise((resolve) => (stream.on('end', resolve), stream.on('close', resolve)));
    return Number(out.replace(/[^0-9]/g, '') || '0');
  };
  await waitFor('the command to start', async () => (await lines()) === 1);
  for (const w of workers) kill(w);
  startWorker();

  const done = await waitFor('the action to finish', async () => {
    const res = await stack.api('GET', `/api/actions/${submitted.body.id}`);
    return res.status === 200 && res.body.completed_at ? res.body : undefined;
  }, 120_000);
  expect(done).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'finished\n' } });
  expect(await lines()).toBe(1); // ran once, though its activity ran twice
  const history = await stack.client.workflow.getHandle(submitted.body.id).fetchHistory();
  const attempts = history.events!.find((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
  expect(attempts).toBeDefined(); // the exec activity was retried after the worker died

  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped'], 60_000);
}, 240_000);
