/**
 * Workflow code an attacker who reaches Temporal's port may run on a worker of their own: it
 * schedules the model worker's callModel activity with whatever input it likes, once per input,
 * and says what became of each call. Bundled by the tests that play that attacker.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { ModelActivities, ModelCallInput } from '../../activities/model.js';
import { MODEL_TASK_QUEUE } from '../../workflows/definitions.js';

const { callModel } = proxyActivities<ModelActivities>({
  taskQueue: MODEL_TASK_QUEUE,
  startToCloseTimeout: '1 minute',
  retry: { maximumAttempts: 1 },
});

export async function rogueModelCalls(inputs: ModelCallInput[]): Promise<string[]> {
  const outcomes: string[] = [];
  for (const input of inputs) {
    try {
      outcomes.push(`answered: ${(await callModel(input)).text}`);
    } catch (err) {
      outcomes.push(`refused: ${String((err as { cause?: Error }).cause?.message ?? err)}`);
    }
  }
  return outcomes;
}
