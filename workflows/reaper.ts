/**
 * The reaper: one run per tick of a Docker host's Schedule (`warden-reaper@<host>`). It removes
 * Warden's containers that no running agent workflow owns (a workflow terminated by force runs
 * no cleanup), tells agents whose container is gone or stopped that they lost it (the agent's own
 * watcher normally notices first: this is the safety net), and frees capacity slots still held
 * by agents whose workflow has ended. Every decision goes to the audit log, and the run returns
 * its report.
 */
import { getExternalWorkflowHandle, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ReaperControlActivities, ReaperSandboxActivities } from '../activities/reaper.js';
import type { RecordAuditInput } from '../activities/audit.js';
import { planReaping } from '../domain/reaping.js';
import { failureText } from './failures.js';
import { auditTrail, raiseAlert } from './local-activities.js';
import { ADMISSION_GRACE_MS } from './capacity.js';
import { CAPACITY_WORKFLOW_ID, releaseAgentSignal, sandboxTaskQueue, type ReaperInput, type ReaperReport } from './definitions.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import { FailureType } from '../domain/failure-types.js';

const control = proxyActivities<ReaperControlActivities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 5, maximumInterval: '30 seconds' },
});

export async function reaperWorkflow(input: ReaperInput): Promise<ReaperReport> {
  refuseUndecodableInput(input);
  const { host } = input;
  // A run that cannot reach the host's engine fails; the next tick tries again.
  const onHost = proxyActivities<ReaperSandboxActivities>({
    taskQueue: sandboxTaskQueue(host),
    // No sandbox worker polling the host's queue is a failure too, not a run that waits forever.
    scheduleToStartTimeout: '2 minutes',
    startToCloseTimeout: '2 minutes',
    heartbeatTimeout: '30 seconds',
    retry: { maximumAttempts: 5, maximumInterval: '30 seconds', nonRetryableErrorTypes: [FailureType.NotOurContainer] },
  });
  const trail = auditTrail(workflowInfo().runId);
  const audit = (kind: RecordAuditInput['kind'], agentId: string, details: Record<string, unknown>) =>
    trail({ kind, actor: 'reaper', agent_id: agentId, details: { host, ...details } });

  // Agents before containers: an agent that reported running had its container before we
  // listed them, so a container missing from the list is really gone.
  const agents = await control.runningAgentsOnHost(host);
  let containers;
  try {
    containers = await onHost.listSandboxContainers(host);
  } catch (err) {
    // The host's engine or its sandbox worker is down: alert, and fail this run (the next tick tries again).
    await raiseAlert({
      id: `component-down-${host}-${workflowInfo().runId}`,
      type: 'component.down',
      time: new Date().toISOString(),
      severity: 'critical',
      summary: `Docker host ${host}: the reaper cannot reach its Docker engine or its sandbox worker`,
      details: { host, component: 'docker_host', error: failureText(err).slice(0, 500) },
    });
    throw err;
  }
  const owners = await control.agentWorkflowStates([...new Set(containers.map((c) => c.agent_id))]);
  const plan = planReaping({ agents, containers, owners });

  const report: ReaperReport = {
    host,
    containers_seen: containers.length,
    agents_checked: agents.length,
    containers_removed: [],
    agents_lost: [],
    slots_released: [],
  };
  for (const { container, reason } of plan.orphans) {
    const outcome = await onHost.removeOrphanContainer({ containerId: container.container_id, agentId: container.agent_id, host });
    if (outcome === 'gone') continue; // removed by someone else meanwhile: nothing was done
    await audit('reaper.container_removed', container.agent_id, { container_id: container.container_id, state: container.state, reason });
    report.containers_removed.push({ container_id: container.container_id, agent_id: container.agent_id, state: container.state, reason });
  }
  for (const lost of plan.lost) {
    // The agent decides: one that began stopping since we looked refuses, and nothing changes.
    const { accepted, status } = await control.reportContainerLost({
      agentId: lost.agent_id,
      reason: lost.reason,
      exitCode: lost.exit_code,
    });
    await audit('reaper.agent_lost', lost.agent_id, { reason: lost.reason, accepted, status_then: status });
    report.agents_lost.push({ agent_id: lost.agent_id, reason: lost.reason, accepted });
  }
  // Patch guards reconciling the host's warm pool; deprecatePatch once no open reaper run predates it: reaper does.
  if (patched('sandbox-pool')) {
    const pool = await onHost.reconcileSandboxPool();
    for (const member of pool.removed) {
      await trail({ kind: 'reaper.pool_member_removed', actor: 'reaper', details: { host, ...member } });
    }
    report.pool_members_removed = pool.removed;
    report.pool_idle = pool.idle;
  }
  for (const agentId of await control.staleCapacitySlots(ADMISSION_GRACE_MS)) {
    await getExternalWorkflowHandle(CAPACITY_WORKFLOW_ID).signal(releaseAgentSignal, { agentId });
    await audit('reaper.slot_released', agentId, { reason: `the workflow of agent ${agentId} ended without releasing its capacity slot` });
    report.slots_released.push(agentId);
  }
  return report;
}
