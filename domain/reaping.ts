/**
 * What the reaper decides, from what it saw: pure and workflow-safe, so the decisions are
 * deterministic and testable alone. The reaper workflow (workflows/reaper.ts) acts on them.
 */
import type { AgentStatus } from './agent.js';

/** One of Warden's containers on a Docker host, as the engine lists it. */
export interface SandboxContainer {
  container_id: string;
  agent_id: string;
  /** The engine's state: created, running, paused, restarting, removing, exited or dead. */
  state: string;
  /** For a container that is not running: its exit code. */
  exit_code: number | null;
}

/** Running, paused (frozen by Warden) or restarting: the container is still there for its agent. */
export const containerAlive = (state: string): boolean => state === 'running' || state === 'paused' || state === 'restarting';

export interface ReapingInput {
  /** Agents of the host whose workflow runs, with the status each reported (read before the containers). */
  agents: Array<{ agent_id: string; status: AgentStatus }>;
  containers: SandboxContainer[];
  /** The workflow state of each container's agent: RUNNING, a closed state, or NOT_FOUND. */
  owners: Record<string, string>;
}

export interface ReapingPlan {
  /** Containers no running agent workflow owns: removed. */
  orphans: Array<{ container: SandboxContainer; reason: string }>;
  /** Agents that claim to run while their container is gone or stopped: told so. */
  lost: Array<{ agent_id: string; reason: string; exit_code: number | null }>;
}

export function planReaping({ agents, containers, owners }: ReapingInput): ReapingPlan {
  const orphans = containers
    .filter((c) => owners[c.agent_id] !== undefined && owners[c.agent_id] !== 'RUNNING')
    .map((container) => {
      const state = owners[container.agent_id]!;
      const workflow = state === 'NOT_FOUND' ? 'does not exist' : `is ${state.toLowerCase().replace(/_/g, ' ')}`;
      return { container, reason: `the workflow of agent ${container.agent_id} ${workflow}: nothing owns this container` };
    });
  const lost: ReapingPlan['lost'] = [];
  for (const agent of agents) {
    // Only an agent that says its sandbox runs can have lost it; provisioning and stopping agents
    // are still busy with their container.
    if (agent.status !== 'running' && agent.status !== 'paused') continue;
    const mine = containers.filter((c) => c.agent_id === agent.agent_id);
    if (mine.some((c) => containerAlive(c.state))) continue;
    const stopped = mine[0];
    lost.push(
      stopped
        ? {
            agent_id: agent.agent_id,
            exit_code: stopped.exit_code,
            reason: `sandbox container ${stopped.state} outside Warden (exit code ${stopped.exit_code ?? 'unknown'}), as after \`docker stop\` or a Docker engine shutdown or restart`,
          }
        : {
            agent_id: agent.agent_id,
            exit_code: null,
            reason: 'sandbox container removed outside Warden (the reaper found none for this running agent)',
          },
    );
  }
  return { orphans, lost };
}
