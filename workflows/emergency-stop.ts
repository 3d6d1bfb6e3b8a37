/**
 * The emergency stop workflow (id `warden-emergency-stop-<n>`), started by the capacity workflow
 * together with the lockdown: it force-stops every agent, cancels every action awaiting approval,
 * lists the actions in flight, records each step and returns the report. Being a workflow, a
 * crash of the API or a worker mid-stop does not leave half the agents running.
 */
import { proxyActivities, uuid4, workflowInfo } from '@temporalio/workflow';
import type { EmergencyActivities } from '../activities/emergency.js';
import type { EmergencyStopReport } from '../domain/lockdown.js';
import type { EmergencyStopInput } from './definitions.js';
import { auditTrail, raiseAlert } from './local-activities.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';

const { runningAgents, forceStopAgents, actionsInFlight, cancelPendingApprovals } = proxyActivities<EmergencyActivities>({
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumInterval: '10 seconds' },
});

export async function emergencyStopWorkflow(input: EmergencyStopInput): Promise<EmergencyStopReport> {
  refuseUndecodableInput(input);
  const { stop, lockdown, requested, admitted } = input;
  const audit = auditTrail(`${workflowInfo().workflowId}:${workflowInfo().runId}`);

  // Each agent records its own stop (stopping, stopped) with the admin as the actor; each cancelled
  // action records its cancellation with the reason; this workflow records the report.
  // Admitted agents (exact) and running agent workflows (visibility: also those started without admission).
  const agents = [...new Set([...admitted, ...(await runningAgents())])].sort();
  const [{ stopped, ended }, cancelled] = await Promise.all([
    forceStopAgents({ agentIds: agents, by: requested.by }),
    cancelPendingApprovals({ reason: `emergency stop: ${requested.reason}`, by: requested.by }),
  ]);
  const inFlight = await actionsInFlight();

  const report: EmergencyStopReport = {
    stop_workflow_id: workflowInfo().workflowId,
    agents_stopped: stopped,
    agents_already_ended: ended,
    approvals_cancelled: cancelled.sort(),
    actions_in_flight: inFlight.sort(),
    counts: { agents_stopped: stopped.length, approvals_cancelled: cancelled.length, actions_in_flight: inFlight.length },
    completed_at: new Date().toISOString(),
  };
  await audit({
    kind: 'system.emergency_stop',
    actor: requested.by,
    details: { stop, reason: requested.reason, by_name: requested.by_name, locked_since: lockdown.since, ...report },
  });
  await raiseAlert({
    id: `emergency-stop-${uuid4()}`,
    type: 'emergency_stop',
    time: report.completed_at,
    severity: 'critical',
    summary: `emergency stop by ${requested.by_name}: ${requested.reason}; ${stopped.length} agent(s) stopped, ${cancelled.length} approval(s) cancelled`,
    details: {
      stop,
      by: requested.by,
      by_name: requested.by_name,
      reason: requested.reason,
      locked_since: lockdown.since,
      counts: report.counts,
    },
  });
  return report;
}
