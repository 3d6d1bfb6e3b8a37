/**
 * The reaper's Temporal Schedule, one per Docker host (`warden-reaper@<host>`), made sure of by
 * every worker process that serves that host. Idempotent: an existing schedule is left as it is,
 * or updated when its interval changed; two processes starting at once do not fail.
 */
import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleHandle } from '@temporalio/client';
import { CONTROL_TASK_QUEUE, reaperScheduleId, type ReaperInput } from '../workflows/definitions.js';
import type { reaperWorkflow } from '../workflows/reaper.js';

export interface ReaperScheduleOptions {
  host: string;
  intervalSeconds: number;
}

/** What happened: the schedule was created, already there as wanted, or updated to the new interval. */
export type ReaperScheduleOutcome = 'created' | 'unchanged' | 'updated';

function scheduleAction(host: string) {
  return {
    type: 'startWorkflow' as const,
    workflowType: 'reaperWorkflow',
    // The Schedule appends each action's time to this id.
    workflowId: `warden-reaper-${host}`,
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ host } satisfies ReaperInput] as Parameters<typeof reaperWorkflow>,
    workflowExecutionTimeout: '1 hour' as const,
  };
}

export async function ensureReaperSchedule(
  client: Client,
  opts: ReaperScheduleOptions,
): Promise<{ handle: ScheduleHandle; outcome: ReaperScheduleOutcome }> {
  const scheduleId = reaperScheduleId(opts.host);
  const spec = { intervals: [{ every: opts.intervalSeconds * 1000 }] };
  try {
    const handle = await client.schedule.create({
      scheduleId,
      spec,
      action: scheduleAction(opts.host),
      // A run still going when the next is due: the next is skipped, never stacked.
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
      state: { note: `Warden reaper for Docker host ${opts.host}` },
    });
    return { handle, outcome: 'created' };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
  }
  const handle = client.schedule.getHandle(scheduleId);
  const current = await handle.describe();
  const every = current.spec.intervals?.[0]?.every;
  if (current.spec.intervals?.length === 1 && every === opts.intervalSeconds * 1000) return { handle, outcome: 'unchanged' };
  await handle.update((previous) => ({ ...previous, spec, action: scheduleAction(opts.host) }));
  return { handle, outcome: 'updated' };
}
