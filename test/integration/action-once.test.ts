/**
 * An action's command, on both of its paths: in a sandbox with the executor, the sandbox worker
 * runs the action's own argv through the executor, keyed by the action id; in a sandbox without
 * it, the shell execution journal runs it through `docker exec`. Either way it runs once per
 * action (a fresh activity for the same action, on another worker, gets the first result, and so
 * does a retry after the result was collected), and its output cap and timeout mean the same.
 */
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSandboxActivities } from '../../activities/sandbox.js';
import { actionExec } from '../../domain/action-exec.js';
import { ResourceLimitsSchema, type ExecResult } from '../../domain/agent.js';
import { JOURNAL_DIR } from '../../domain/journal.js';
import type { SkillCommand } from '../../domain/skill.js';
import { containerName } from '../../sandbox/spec.js';
import { docker, TEST_HOST, uniqueId } from '../support/helpers.js';
import { startSandboxWithoutExecutor } from '../support/sandbox-without-executor.js';
import { sandboxOutput, workspaceLines } from '../support/worker-process.js';
import { inject } from 'vitest';

const limits = ResourceLimitsSchema.parse({ memory_mb: 128, disk_mb: 16, max_processes: 64 });

const paths = [
  {
    path: 'the executor, natively',
    start: async (agentId: string) => {
      await new MockActivityEnvironment().run(createSandboxActivities(docker).createSandbox, {
        agentId,
        host: TEST_HOST,
        image: inject('sandboxImage'),
        limits,
        runtime: 'runc' as const,
        requireSandbox: false,
      });
    },
    journalFiles: 'none',
    // The executor counts every byte it drops.
    truncated: (printed: number, max: number) => printed - max,
  },
  {
    path: 'the shell journal (a sandbox without the executor)',
    start: (agentId: string) => startSandboxWithoutExecutor(agentId, limits),
    journalFiles: 'some',
    // The journal stops writing at max rounded up to 512-byte blocks: the activity sees only the rest of that block.
    truncated: (_printed: number, max: number) => Math.ceil(max / 512) * 512 - max,
  },
];

describe.each(paths)('an action through $path', ({ start, journalFiles, truncated }) => {
  const agentId = uniqueId('once');
  beforeAll(() => start(agentId));
  afterAll(async () => {
    await docker.getContainer(containerName(agentId)).remove({ force: true, v: true });
  });

  /**
   * Runs the action's command as the action workflow asks for it (the journaled command) and as the
   * guarded activity passes it on, in an activity of its own unless `env` is given.
   */
  const act = (actionId: string, command: SkillCommand, activities = createSandboxActivities(docker), env = activityOf(actionId)) =>
    env.run(
      activities.execInSandbox,
      { agentId, ...actionExec(actionId, command) },
      { action_id: actionId, argv: command.argv },
    ) as Promise<ExecResult>;

  it('cuts each stream at max_output_bytes exactly', async () => {
    const max = 1000;
    const printed = 10_000;
    const res = await act(uniqueId('act'), {
      argv: ['/bin/sh', '-c', `head -c ${printed} /dev/zero | tr '\\0' a; head -c ${printed} /dev/zero | tr '\\0' b >&2; exit 3`],
      max_output_bytes: max,
    });
    expect(res).toMatchObject({
      exit_code: 3,
      timed_out: false,
      stdout: 'a'.repeat(max),
      stderr: 'b'.repeat(max),
      stdout_truncated_bytes: truncated(printed, max),
      stderr_truncated_bytes: truncated(printed, max),
    });
  });

  it('ends a command at its timeout with exit code 124 and the output printed until then', async () => {
    const res = await act(uniqueId('act'), {
      argv: ['/bin/sh', '-c', 'echo before; echo err >&2; sleep 30; echo after'],
      timeout_ms: 1500,
    });
    expect(res).toMatchObject({ exit_code: 124, timed_out: true, stdout: 'before\n', stderr: 'err\n' });
  });

  it('runs once per action: a fresh activity on another worker, and a late retry, get the first result', async () => {
    const actionId = uniqueId('act');
    const count: SkillCommand = { argv: ['/bin/sh', '-c', 'echo run >> /workspace/runs; wc -l < /workspace/runs'] };
    const attempt = activityOf(actionId);
    expect(await act(actionId, count, undefined, attempt)).toMatchObject({ exit_code: 0, stdout: '1\n' });
    // A fresh activity for the same action (another activity id, another worker's executor client).
    expect(await act(actionId, count)).toMatchObject({ exit_code: 0, stdout: '1\n' });
    // A retry of the first activity, whose result the first attempt already held.
    expect(await act(actionId, count, undefined, attempt)).toMatchObject({ exit_code: 0, stdout: '1\n' });
    expect((await sandboxOutput(agentId, 'cat /workspace/runs')).trim()).toBe('run');
    // Another action is another run.
    expect(await act(uniqueId('act'), count)).toMatchObject({ stdout: '2\n' });
    // The shell journal leaves its files in the sandbox's /tmp; the executor keeps its journal in memory.
    const files = (await sandboxOutput(agentId, 'ls "$1" 2>/dev/null | wc -l', JOURNAL_DIR)).trim();
    expect(journalFiles === 'none' ? files === '0' : Number(files) > 0).toBe(true);
  });

  it('collects an action an earlier worker ran under the shell journal, and never runs it again', async () => {
    const actionId = uniqueId('act');
    // What a worker from before actions ran natively leaves: the journal's marker, output and exit code.
    await sandboxOutput(
      agentId,
      'mkdir -p "$1" && cd "$1" && echo "first run" > "$2.out" && : > "$2.err" && echo 0 > "$2.done" && : > "$2.started"',
      JOURNAL_DIR,
      actionId,
    );
    const res = await act(actionId, { argv: ['/bin/sh', '-c', 'echo second run; echo run >> /workspace/journaled'] });
    expect(res).toMatchObject({ exit_code: 0, stdout: 'first run\n' });
    expect(await workspaceLines(agentId, 'journaled')).toBe(0);
  });
});

/** An activity of the action's workflow (whose id is the action id), with an activity id of its own. */
function activityOf(actionId: string): MockActivityEnvironment {
  return new MockActivityEnvironment(
    { activityId: uniqueId('exec'), workflowExecution: { workflowId: actionId, runId: uniqueId('run') } },
    { logger: new DefaultLogger('ERROR') },
  );
}
