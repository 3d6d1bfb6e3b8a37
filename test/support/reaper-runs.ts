/** Runs the reaper the way an operator would: trigger its Schedule now, then read the run's report. */
import type { Client, ScheduleHandle } from '@temporalio/client';
import type { ReaperReport } from '../../workflows/definitions.js';
import { waitFor } from './helpers.js';

export async function triggerReaper(client: Client, schedule: ScheduleHandle): Promise<ReaperReport & { workflowId: string }> {
  const before = new Set((await schedule.describe()).info.recentActions.map((a) => a.action.workflow.workflowId));
  // A scheduled run's workflow id ends with the second it started in: a second trigger within the
  // same second as the last run would be refused as a duplicate, so start in a later one.
  await new Promise((r) => setTimeout(r, 1010 - (Date.now() % 1000)));
  await schedule.trigger();
  const workflowId = await waitFor('the triggered reaper run to start', async () => {
    const started = (await schedule.describe()).info.recentActions.map((a) => a.action.workflow.workflowId);
    return started.find((id) => !before.has(id));
  });
  const report: ReaperReport = await client.workflow.getHandle(workflowId).result();
  return { ...report, workflowId };
}
