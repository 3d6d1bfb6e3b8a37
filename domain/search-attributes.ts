/**
 * The search attributes Warden sets on its workflows: visibility lists agents and pending actions
 * by them. Workflow-safe; shared by the workflows, the API and the workers.
 */
import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

export const SearchAttributes = {
  agentId: defineSearchAttributeKey('WardenAgentId', SearchAttributeType.KEYWORD),
  agentStatus: defineSearchAttributeKey('WardenAgentStatus', SearchAttributeType.KEYWORD),
  skillId: defineSearchAttributeKey('WardenSkillId', SearchAttributeType.KEYWORD),
  runtime: defineSearchAttributeKey('WardenRuntime', SearchAttributeType.KEYWORD),
  host: defineSearchAttributeKey('WardenHost', SearchAttributeType.KEYWORD),
  actionId: defineSearchAttributeKey('WardenActionId', SearchAttributeType.KEYWORD),
  actionStatus: defineSearchAttributeKey('WardenActionStatus', SearchAttributeType.KEYWORD),
  securityLevel: defineSearchAttributeKey('WardenSecurityLevel', SearchAttributeType.KEYWORD),
} as const;
