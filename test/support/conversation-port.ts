/** Conversations started straight at Temporal's port, as an attacker who reaches it would: no API in between. */
import type { Client } from '@temporalio/client';
import { CONTROL_TASK_QUEUE, type ConversationWorkflowInput } from '../../workflows/definitions.js';

export function handStartConversation(
  client: Client,
  workflowId: string,
  input: { grant: unknown; agent_id: string } & Partial<Pick<ConversationWorkflowInput, 'carried'>>,
) {
  return client.workflow.start('conversationWorkflow', {
    workflowId,
    taskQueue: CONTROL_TASK_QUEUE,
    args: [{ owner: { key_id: 'x', name: 'x' }, provider: 'default', max_steps: 3, created_at: new Date().toISOString(), ...input }],
  });
}
