/**
 * The action domain: what a person or an agent asks Warden to do, and the record every caller
 * sees while the action workflow judges, waits for approval, runs and records it.
 */
import { z } from 'zod';
import { AgentIdSchema } from './agent.js';
import { RoleSchema } from './roles.js';
import { RiskLevelSchema, type RiskLevel } from './risk.js';
import { SkillIdSchema, type SkillManifests } from './skill.js';

export const ACTION_TYPES = ['chat', 'skill_execution', 'model_switch', 'api_call', 'file_operation', 'config_change'] as const;
export const ActionTypeSchema = z.enum(ACTION_TYPES);
export type ActionType = z.infer<typeof ActionTypeSchema>;

export const ACTION_STATUSES = ['pending', 'approved', 'rejected', 'expired', 'executing', 'completed', 'failed', 'cancelled'] as const;
export const ActionStatusSchema = z.enum(ACTION_STATUSES);
export type ActionStatus = z.infer<typeof ActionStatusSchema>;

/** The security level of an action: the skills' risk levels, as the policy settles them. */
export const SecurityLevelSchema = RiskLevelSchema;
export type SecurityLevel = RiskLevel;

const OperationSchema = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'operation: a lower-case name such as "run"');

/**
 * POST /api/actions' body, for these skills: a seed client may leave out the operation of a skill
 * that has only one.
 */
export const submitActionRequestSchema = (skills: SkillManifests) =>
  z
    .object({
      action_type: ActionTypeSchema.describe(
        'skill_execution runs skill_id.operation. No other type runs a skill, so any other type naming one is rejected by the policy rule skill-fit and never runs.',
      ),
      skill_id: SkillIdSchema,
      operation: OperationSchema.optional().describe(
        "The skill's operation. Seed clients may leave it out: it is then parameters.operation, or the skill's only operation.",
      ),
      agent_id: AgentIdSchema,
      parameters: z.record(z.string(), z.unknown()).default({}),
      wait_seconds: z.number().min(0).max(60).default(0).describe('Wait up to this long for the final result.'),
    })
    .strict()
    .transform((request, ctx) => {
      if (request.operation !== undefined) return { ...request, operation: request.operation };
      // The seed's shape: {action_type, skill_id, agent_id, parameters: {operation, ...}}.
      const { operation: nested, ...parameters } = request.parameters;
      if (nested !== undefined) {
        const parsed = OperationSchema.safeParse(nested);
        if (parsed.success) return { ...request, operation: parsed.data, parameters };
        ctx.addIssue({ code: 'custom', path: ['parameters', 'operation'], message: parsed.error.issues[0]!.message });
        return z.NEVER;
      }
      const skill = Object.hasOwn(skills, request.skill_id) ? skills[request.skill_id] : undefined;
      const operations = skill ? Object.keys(skill.operations) : [];
      if (operations.length === 1) return { ...request, operation: operations[0]! };
      ctx.addIssue({
        code: 'custom',
        path: ['operation'],
        message: `operation: required, at the top level or as parameters.operation${operations.length ? ` (${request.skill_id} has ${operations.join(', ')})` : ''}`,
      });
      return z.NEVER;
    });
export type SubmitActionRequest = z.output<ReturnType<typeof submitActionRequestSchema>>;

export const ApproveActionRequestSchema = z
  .object({
    approved: z.boolean(),
    comment: z.string().max(2000).optional(),
    params_hash: z.string().regex(/^[0-9a-f]{64}$/, 'params_hash: the 64-hex-digit hash shown with the action (what you reviewed)'),
  })
  .strict();

export const IdentitySchema = z.object({ key_id: z.string(), name: z.string(), role: RoleSchema, person: z.string().optional() });

export const ApprovalSchema = z.object({
  approver: IdentitySchema,
  approved: z.boolean(),
  comment: z.string().nullable(),
  at: z.string(),
});
export type Approval = z.infer<typeof ApprovalSchema>;

export const ActionResultSchema = z.object({
  exit_code: z.number(),
  stdout: z.string(),
  stderr: z.string(),
  timed_out: z.boolean(),
  duration_ms: z.number(),
});

/** Where an action came from when a model asked for it: the conversation and its turn. */
export const ActionOriginSchema = z.object({
  conversation_id: z.string(),
  turn: z.number().int().min(1),
});
export type ActionOrigin = z.infer<typeof ActionOriginSchema>;

export const ActionRecordSchema = z.object({
  id: z.string(),
  action_type: ActionTypeSchema,
  skill_id: z.string(),
  operation: z.string(),
  agent_id: z.string(),
  parameters: z.record(z.string(), z.unknown()),
  params_hash: z.string(),
  requester: IdentitySchema,
  status: ActionStatusSchema,
  security_level: SecurityLevelSchema,
  rule: z.string().describe('The policy rule that decided the level.'),
  reasons: z.array(z.string()),
  approvals_required: z.number(),
  approvals: z.array(ApprovalSchema),
  result: ActionResultSchema.nullable(),
  error: z.string().nullable(),
  created_at: z.string(),
  expires_at: z.string().nullable(),
  completed_at: z.string().nullable(),
  origin: ActionOriginSchema.optional().describe('Set when a model asked for the action as a tool call in a conversation.'),
});
export type ActionRecord = z.infer<typeof ActionRecordSchema>;
