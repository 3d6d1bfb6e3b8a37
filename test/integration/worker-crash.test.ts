/**
 * Durability: the worker process is SIGKILLed mid-lifecycle, twice; the agent workflow carries on
 * with a new worker, signals sent while no worker ran are not lost, and no container leaks. And
 * mid-command, under runc and under runsc when gVisor is installed: the retry collects the result
 * from the sandbox's executor, and the command ran once.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pauseSignal } from '../../workflows/definitions.js';
import { JOURNAL_DIR } from '../../domain/journal.js';
import {
  approveWith,
  containersOf,
  docker,
  recordHistory,
  startStack,
  submitShell,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import { runtimesUnderTest } from '../support/require-or-skip.js';
import { killWorkers, sandboxOutput, signalWorker, startWorker, workspaceLines, type WorkerProcess } from '../support/worker-process.js';

let stack: Awaited<ReturnType<typeof startStack>>;
const kill = (w: WorkerProcess) => signalWorker(w, 'SIGKILL');
const { runtimes } = await runtimesUnderTest(docker);

beforeAll(async () => {
  // The API and client only: the worker runs as a separate process that the test kills.
  stack = await startStack({ workers: false, config: { stopGraceSeconds: 2 } });
});
afterAll(async () => {
  killWorkers();
  await stack?.stop();
});

it('an agent survives its worker being killed while provisioning and while stopping', async () => {
  const id = uniqueId('crash');
  const first = startWorker();
  await first.ready;
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id })).status).toBe(201);

  // Kill the worker the moment the container exists: createSandbox may be mid-flight.
  await waitFor('the container to be created', async () => (await containersOf(id)).length > 0);
  kill(first);
  // A pause sent while no worker runs waits in the workflow's history.
  await stack.client.workflow.getHandle(id).signal(pauseSignal, {});

  const second = startWorker();
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
  kill(second);
  startWorker();
  const stopped = await waitForStatus(stack.api, id, ['stopped'], 90_000);
  expect(stopped.stopped_at).not.toBeNull();
  expect(await containersOf(id)).toHaveLength(0);

  const history = await stack.client.workflow.getHandle(id).fetchHistory();
  const creates = history.events!.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'createSandbox');
  expect(creates).toHaveLength(1); // one activity, retried by the server, not scheduled twice
  // The kill landed mid-create: the attempt that completed it was a retry, on the second worker.
  const createStarted = history.events!.find(
    (e) =>
      e.activityTaskStartedEventAttributes && Number(e.activityTaskStartedEventAttributes.scheduledEventId) === Number(creates[0]!.eventId),
  );
  expect(createStarted?.activityTaskStartedEventAttributes?.attempt).toBeGreaterThan(1);
  await recordHistory('worker-killed', id);
}, 240_000);

it.each(runtimes)(
  'a command whose worker is killed mid-run under %s runs once, and its result still arrives',
  async (runtime) => {
    const id = uniqueId('crash-act');
    killWorkers(); // only this test's worker may run its tasks
    await startWorker().ready;
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime })).status).toBe(201);
    await waitForStatus(stack.api, id, ['running'], 90_000);
    const approver = (await stack.keys.create('approver', 'approver', null)).key;
    const submitted = await submitShell(stack.api, id, 'echo run >> count.txt; sleep 6; echo finished');
    expect(submitted.body.status).toBe('pending');
    expect(await approveWith(stack, approver, submitted.body)).toBe(200);

    // Kill the worker once the command has started in the sandbox.
    const lines = () => workspaceLines(id, 'count.txt');
    await waitFor('the command to start', async () => (await lines()) === 1);
    killWorkers();
    startWorker();

    const done = await waitFor(
      'the action to finish',
      async () => {
        const res = await stack.api('GET', `/api/actions/${submitted.body.id}`);
        return res.status === 200 && res.body.completed_at ? res.body : undefined;
      },
      120_000,
    );
    expect(done).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'finished\n' } });
    expect(await lines()).toBe(1); // ran once, though its activity ran twice
    const history = await stack.client.workflow.getHandle(submitted.body.id).fetchHistory();
    const attempts = history.events!.find((e) => e.activityTaskStartedEventAttributes && e.activityTaskStartedEventAttributes.attempt! > 1);
    expect(attempts).toBeDefined(); // the exec activity was retried after the worker died
    // Through the executor's own journal: the shell journal left no file.
    expect((await sandboxOutput(id, 'ls "$1" 2>/dev/null | wc -l', JOURNAL_DIR)).trim()).toBe('0');

    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped'], 60_000);
  },
  240_000,
);
