/**
 * Control activities: the few things the control workflows need from Temporal itself.
 */
import { WorkflowNotFoundError, type Client } from '@temporalio/client';

export function createControlActivities(client: Client) {
  /** Of these agent ids, the ones whose workflow is no longer running (or never started). */
  async function closedAgents(agentIds: string[]): Promise<string[]> {
    const closed: string[] = [];
    for (const id of agentIds) {
      try {
        const description = await client.workflow.getHandle(id).describe();
        if (description.status.name !== 'RUNNING') closed.push(id);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) closed.push(id);
        else throw err;
      }
    }
    return closed;
  }
  return { closedAgents };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
