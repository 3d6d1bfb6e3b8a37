/**
 * The capacity workflow: one long-running workflow that admits agents up to max_agents. Its
 * update handlers run one at a time, so N+k concurrent creates with room for N admit exactly N.
 * Agent workflows release their slot when they end; slots of agents that ended without doing so
 * (terminated workflows, an API that died between admission and start) are reclaimed when the
 * capacity is full.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  proxyActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities/control.js';
import { admitAgentUpdate, capacityQuery, releaseAgentSignal, type CapacityState } from './definitions.js';

const { closedAgents } = proxyActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** A freshly admitted agent gets this long to start its workflow before its slot can be reclaimed. */
export const ADMISSION_GRACE_MS = 60_000;

export async function capacityWorkflow(state: CapacityState = { admitted: {} }): Promise<void> {
  const admitted = new Map(Object.entries(state.admitted));
  let tail: Promise<unknown> = Promise.resolve();
  const oneAtATime = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };

  setHandler(capacityQuery, () => ({ admitted: Object.fromEntries(admitted) }));
  setHandler(releaseAgentSignal, ({ agentId }) => void admitted.delete(agentId));
  setHandler(
    admitAgentUpdate,
    ({ agentId, maxAgents }) =>
      oneAtATime(async () => {
        if (admitted.has(agentId)) {
          throw ApplicationFailure.create({ type: 'AgentExists', message: `agent ${agentId} already exists`, nonRetryable: true });
        }
        if (admitted.size >= maxAgents) {
          const now = Date.now();
          const settled = [...admitted].filter(([, at]) => now - Date.parse(at) > ADMISSION_GRACE_MS).map(([id]) => id);
          if (settled.length > 0) for (const id of await closedAgents(settled)) admitted.delete(id);
        }
        if (admitted.size >= maxAgents) {
          throw ApplicationFailure.create({
            type: 'CapacityExceeded',
            message: `capacity reached: ${admitted.size} of ${maxAgents} agents are running; stop one or raise WARDEN_MAX_AGENTS`,
            nonRetryable: true,
          });
        }
        admitted.set(agentId, new Date().toISOString());
        return { admitted: admitted.size, max_agents: maxAgents };
      }),
    {
      validator: ({ agentId, maxAgents }) => {
        if (typeof agentId !== 'string' || agentId.length === 0) throw new Error('agentId is required');
        if (!Number.isInteger(maxAgents) || maxAgents < 1) throw new Error('maxAgents must be a positive integer');
      },
    },
  );

  await condition(() => workflowInfo().continueAsNewSuggested && allHandlersFinished());
  await continueAsNew<typeof capacityWorkflow>({ admitted: Object.fromEntries(admitted) });
}
