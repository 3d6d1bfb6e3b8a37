/** Updates on the capacity workflow, started on first use: admissions and the lockdown go through it. */
import { WithStartWorkflowOperation, type Client } from '@temporalio/client';
import type { UpdateDefinition } from '@temporalio/common';
import { CAPACITY_WORKFLOW_ID, CONTROL_TASK_QUEUE } from '../../workflows/definitions.js';
import type { capacityWorkflow } from '../../workflows/capacity.js';

export function updateCapacity<Ret, Args extends [unknown, ...unknown[]]>(
  client: Client,
  update: UpdateDefinition<Ret, Args>,
  args: Args,
): Promise<Ret> {
  return client.workflow.executeUpdateWithStart(update, {
    args,
    startWorkflowOperation: new WithStartWorkflowOperation<typeof capacityWorkflow>('capacityWorkflow', {
      workflowId: CAPACITY_WORKFLOW_ID,
      taskQueue: CONTROL_TASK_QUEUE,
      workflowIdConflictPolicy: 'USE_EXISTING',
      args: [{ admitted: {} }],
    }),
  });
}
