/** The reaper's decisions, alone: which containers are orphans, which agents lost their container. */
import { describe, expect, it } from 'vitest';
import { planReaping, type SandboxContainer } from '../../domain/reaping.js';

const box = (agent_id: string, state: string, exit_code: number | null = null): SandboxContainer => ({
  container_id: `c-${agent_id}`,
  agent_id,
  state,
  exit_code,
});

describe('planReaping', () => {
  it('removes containers whose agent workflow is not running, whatever their state, and keeps the others', () => {
    const plan = planReaping({
      agents: [{ agent_id: 'live', status: 'running' }],
      containers: [box('live', 'running'), box('killed', 'running'), box('gone', 'exited', 0), box('never', 'created')],
      owners: { live: 'RUNNING', killed: 'TERMINATED', gone: 'COMPLETED', never: 'NOT_FOUND' },
    });
    expect(plan.orphans.map((o) => o.container.agent_id)).toEqual(['killed', 'gone', 'never']);
    expect(plan.orphans[0]!.reason).toBe('the workflow of agent killed is terminated: nothing owns this container');
    expect(plan.orphans[2]!.reason).toBe('the workflow of agent never does not exist: nothing owns this container');
    expect(plan.lost).toEqual([]);
  });

  it('never removes a container whose owner it could not look up', () => {
    expect(planReaping({ agents: [], containers: [box('unknown', 'running')], owners: {} }).orphans).toEqual([]);
  });

  it('finds running and paused agents whose container is gone or stopped', () => {
    const plan = planReaping({
      agents: [
        { agent_id: 'removed', status: 'running' },
        { agent_id: 'stopped', status: 'paused' },
        { agent_id: 'fine', status: 'running' },
        { agent_id: 'frozen', status: 'paused' },
      ],
      containers: [box('stopped', 'exited', 0), box('fine', 'running'), box('frozen', 'paused')],
      owners: { stopped: 'RUNNING', fine: 'RUNNING', frozen: 'RUNNING' },
    });
    expect(plan.lost).toEqual([
      {
        agent_id: 'removed',
        exit_code: null,
        reason: 'sandbox container removed outside Warden (the reaper found none for this running agent)',
      },
      {
        agent_id: 'stopped',
        exit_code: 0,
        reason: 'sandbox container exited outside Warden (exit code 0), as after `docker stop` or a Docker engine shutdown or restart',
      },
    ]);
    expect(plan.orphans).toEqual([]);
  });

  it('leaves agents that are provisioning, stopping or ended to their own workflow', () => {
    const plan = planReaping({
      agents: [
        { agent_id: 'new', status: 'provisioning' },
        { agent_id: 'ending', status: 'stopping' },
        { agent_id: 'failed', status: 'error' },
      ],
      containers: [box('ending', 'exited', 0)],
      owners: { ending: 'RUNNING' },
    });
    expect(plan).toEqual({ orphans: [], lost: [] });
  });
});
