/**
 * How a command reaches a sandbox: a sandbox Warden creates runs each command through its executor
 * (PID 1), with no `docker exec`, once per activity (a retry, on this worker or another one, gets
 * the first attempt's result) and ended at once when the activity is cancelled; a sandbox created
 * before the executor (no executor label) still runs its commands through `docker exec`. A command
 * sent to a paused agent is refused at once; an image without the executor is refused at creation.
 */
import { execFileSync } from 'node:child_process';
import Docker from 'dockerode';
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, inject, it, onTestFinished } from 'vitest';
import { createSandboxActivities } from '../../activities/sandbox.js';
import { ResourceLimitsSchema, type ExecResult } from '../../domain/agent.js';
import { FailureType } from '../../domain/failure-types.js';
import { ContainerEvents, type ContainerAction } from '../../sandbox/container-events.js';
import { containerName, LABELS, SANDBOX_EXECUTOR, SANDBOX_GID } from '../../sandbox/spec.js';
import { activityEnv, docker, startStack, TEST_HOST, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { startSandboxWithoutExecutor } from '../support/sandbox-without-executor.js';

const limits = ResourceLimitsSchema.parse({ memory_mb: 128, disk_mb: 16, max_processes: 64 });
const sandbox = createSandboxActivities(docker);
const exec = (activities: typeof sandbox, agentId: string, command: string, env = activityEnv()): Promise<ExecResult> =>
  env.run(activities.execInSandbox, { agentId, command: ['/bin/sh', '-c', command], timeout_ms: 10_000, max_output_bytes: 4096 });

/** The `docker exec` sessions the engine created in this container since `sinceMs`. */
async function execsCreated(agentId: string, sinceMs: number): Promise<number> {
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { container: [containerName(agentId)] },
  })) as unknown as NodeJS.ReadableStream;
  let events = '';
  for await (const chunk of stream) events += String(chunk);
  return events
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as { Action?: string; timeNano: number })
    .filter((e) => (e.Action ?? '').startsWith('exec_create') && e.timeNano >= sinceMs * 1e6).length;
}

/** How many processes run `sleep 60` in the agent's sandbox (the pattern does not match the probe). */
const sleepers = async (agentId: string) =>
  Number((await exec(sandbox, agentId, 'cat /proc/[0-9]*/cmdline 2>/dev/null | tr "\\0" " " | grep -o "sleep 6[0]" | wc -l')).stdout);

describe('a sandbox Warden creates', () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let agentId: string;
  beforeAll(async () => {
    stack = await startStack();
    agentId = uniqueId('path');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' })).status).toBe(201);
    await waitForStatus(stack.api, agentId, ['running']);
  });
  afterAll(async () => {
    await stack?.api('POST', `/api/agents/${agentId}/stop`, { force: true });
    await stack?.stop();
  });

  it('runs its commands through the executor, its PID 1: an action creates no docker exec', async () => {
    const info = await docker.getContainer(containerName(agentId)).inspect();
    expect(info.Config.Labels[LABELS.executor]).toBe('1');
    expect(await exec(sandbox, agentId, 'tr "\\0" " " < /proc/1/cmdline')).toMatchObject({ exit_code: 0, stdout: `${SANDBOX_EXECUTOR} ` });

    const since = Date.now();
    const action = await stack.api('POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'filesystem',
      operation: 'write',
      agent_id: agentId,
      parameters: { path: 'note', content: 'through the executor' },
      wait_seconds: 30,
    });
    expect(action.body).toMatchObject({ status: 'completed', result: { exit_code: 0 } });
    expect(await execsCreated(agentId, since)).toBe(0);
  });

  it('runs a command once per activity: a retry, on this worker or another, gets the first result', async () => {
    const info = { activityId: 'exec-1', workflowExecution: { workflowId: uniqueId('act'), runId: 'run-1' } };
    const count = 'echo run >> /workspace/runs; sleep 2; wc -l < /workspace/runs';
    const first = new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') });
    const leaving = exec(sandbox, agentId, count, first);
    await new Promise((r) => setTimeout(r, 500));
    // The worker shuts down mid-command: the command runs on, and the activity is handed back.
    first.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
    await expect(leaving).rejects.toMatchObject({ type: FailureType.WorkerShutdown });

    // The retry runs on another worker (its own executor client) and collects the result.
    const retried = await exec(
      createSandboxActivities(docker),
      agentId,
      count,
      new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') }),
    );
    expect(retried).toMatchObject({ exit_code: 0, stdout: '1\n' });
    // That attempt made the executor forget the result: one more (its completion lost) is refused.
    await expect(
      exec(sandbox, agentId, count, new MockActivityEnvironment(info, { logger: new DefaultLogger('ERROR') })),
    ).rejects.toMatchObject({
      type: FailureType.ExecResultCollected,
      nonRetryable: true,
    });
    // Another activity is another run.
    expect(await exec(sandbox, agentId, count)).toMatchObject({ stdout: '2\n' });
  });

  it('asks the engine nothing before a command: a pause by another worker is heard from the events stream', async () => {
    // The real engine, with its container state reads counted.
    let inspects = 0;
    const counting = new Docker();
    const getContainer = counting.getContainer.bind(counting);
    counting.getContainer = (id: string) => {
      const c = getContainer(id);
      const inspect = c.inspect.bind(c);
      c.inspect = ((...args: Parameters<typeof inspect>) => (inspects++, inspect(...args))) as typeof c.inspect;
      return c;
    };
    const events = new ContainerEvents(counting);
    const name = containerName(agentId);
    const heard: ContainerAction[] = [];
    const connected = new Promise<void>((resolve) => {
      const stop = events.listen(name, (notice, action) => {
        if (notice === 'resync') resolve();
        if (action) heard.push(action);
      });
      onTestFinished(stop);
    });
    await connected;
    const activities = createSandboxActivities(counting, { events });
    expect(await exec(activities, agentId, 'true')).toMatchObject({ exit_code: 0 }); // attaches: reads the state once
    inspects = 0;
    for (let i = 0; i < 3; i++) expect(await exec(activities, agentId, 'echo ok')).toMatchObject({ stdout: 'ok\n' });
    expect(inspects).toBe(0);

    // Paused outside these activities: the events stream tells them (this listener hears it after theirs).
    await docker.getContainer(name).pause();
    try {
      await waitFor('the pause event', async () => heard.includes('pause'));
      await expect(exec(activities, agentId, 'echo ran > /workspace/paused-elsewhere')).rejects.toMatchObject({
        type: FailureType.AgentNotRunning,
      });
    } finally {
      await docker.getContainer(name).unpause();
    }
    await waitFor('the unpause event', async () => heard.includes('unpause'));
    expect(await exec(activities, agentId, 'cat /workspace/paused-elsewhere 2>&1; true')).toMatchObject({
      stdout: expect.stringContaining('No such file'),
    });
    expect(inspects).toBe(0);
  });

  it('refuses a command at once while the agent is paused', async () => {
    await docker.getContainer(containerName(agentId)).pause();
    try {
      const started = Date.now();
      await expect(exec(sandbox, agentId, 'echo ran > /workspace/paused')).rejects.toMatchObject({
        type: FailureType.AgentNotRunning,
        nonRetryable: true,
        message: expect.stringContaining('paused'),
      });
      expect(Date.now() - started).toBeLessThan(2_000);
    } finally {
      await docker.getContainer(containerName(agentId)).unpause();
    }
    expect(await exec(sandbox, agentId, 'cat /workspace/paused 2>&1; true')).toMatchObject({
      stdout: expect.stringContaining('No such file'),
    });
  });

  it('ends a command at once when its activity is cancelled, with what it started', async () => {
    const env = activityEnv();
    const started = Date.now();
    const running = exec(sandbox, agentId, 'setsid sleep 60 & sleep 60', env);
    await waitFor('the command to start', async () => (await sleepers(agentId)) >= 2);
    env.cancel();
    await expect(running).rejects.toThrow();
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(await sleepers(agentId)).toBe(0);
  });
});

describe('a sandbox created before the executor', () => {
  const agentId = uniqueId('legacy');
  beforeAll(() => startSandboxWithoutExecutor(agentId, limits));
  afterAll(async () => {
    await docker.getContainer(containerName(agentId)).remove({ force: true, v: true });
  });

  it('runs its commands through docker exec, as before', async () => {
    const since = Date.now();
    const res = await exec(sandbox, agentId, 'echo hi; id -g; echo data > f; cat f');
    expect(res).toMatchObject({ exit_code: 0, stdout: `hi\n${SANDBOX_GID}\ndata\n`, timed_out: false });
    expect(await execsCreated(agentId, since)).toBeGreaterThan(0);
    const slow = await activityEnv().run(sandbox.execInSandbox, {
      agentId,
      command: ['sleep', '30'],
      timeout_ms: 500,
      max_output_bytes: 100,
    });
    expect(slow).toMatchObject({ exit_code: 124, timed_out: true });
  });
});

describe('a sandbox image built before the executor', () => {
  const image = `warden-sandbox:no-executor-${uniqueId('img')}`;
  beforeAll(() => {
    // The current image with the executor's label emptied: what the check reads, as an old image lacks it.
    execFileSync('docker', ['build', '-q', '-t', image, '-'], {
      input: `FROM ${inject('sandboxImage')}\nLABEL ${LABELS.executorSha256}=""\n`,
      stdio: ['pipe', 'ignore', 'ignore'],
    });
  });
  afterAll(async () => {
    await docker.getImage(image).remove({ force: true });
  });

  it('is refused before any container is made, with a message saying to run make image', async () => {
    const agentId = uniqueId('oldimage');
    await expect(
      activityEnv().run(sandbox.createSandbox, {
        agentId,
        host: TEST_HOST,
        image,
        limits,
        runtime: 'runc' as const,
        requireSandbox: false,
      }),
    ).rejects.toMatchObject({
      type: FailureType.ImageMissing,
      nonRetryable: true,
      message: expect.stringMatching(/predates the sandbox executor.*make image/),
    });
    await expect(docker.getContainer(containerName(agentId)).inspect()).rejects.toMatchObject({ statusCode: 404 });
  });
});
