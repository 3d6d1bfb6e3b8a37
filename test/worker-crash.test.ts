/**
 * Durability: the worker process is SIGKILLed mid-lifecycle, twice; the agent workflow carries on
 * with a new worker, signals sent while no worker ran are not lost, and no container leaks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { inject } from 'vitest';
import { PROJECT_ROOT } from '../scripts/dev-server.js';
import { containersOf, recordHistory, startStack, TEST_HOST, uniqueId, waitFor, waitForStatus } from './helpers.js';

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
      WARDEN_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'inherit', 'inherit'],
    detached: true, // its own process group: SIGKILL reaches tsx and node alike
  });
  workers.push(child);
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
  const first = startWorker();
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);

  // Kill the worker the moment the container exists: createSandbox may be mid-flight.
  await waitFor('the container to be created', async () => (await containersOf(id)).length > 0);
  kill(first);
  // A pause sent while no worker runs waits in the workflow's history.
  expect((await stack.client.workflow.getHandle(id).signal('pause')) ?? true).toBeTruthy();

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
