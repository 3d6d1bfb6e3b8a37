/**
 * The agent domain: what an agent is, the limits it runs under, and the record every caller
 * (API, CLI, Web UI query) sees. Zod schemas are the single source of truth for validation,
 * TypeScript types and the OpenAPI document.
 */
import { z } from 'zod';

export const AGENT_STATUSES = ['provisioning', 'running', 'paused', 'stopping', 'stopped', 'error'] as const;
export const AgentStatusSchema = z.enum(AGENT_STATUSES);
export type AgentStatus = z.infer<typeof AgentStatusSchema>;

/** Container runtimes Warden knows, strongest isolation first. */
export const SANDBOX_RUNTIMES = ['runsc', 'kata', 'runc'] as const;
export const SandboxRuntimeSchema = z.enum(SANDBOX_RUNTIMES);
export type SandboxRuntime = z.infer<typeof SandboxRuntimeSchema>;

export const ResourceLimitsSchema = z
  .object({
    cpu_cores: z.number().min(0.05).max(64).default(1).describe('CPU cores the sandbox may use (CFS quota).'),
    memory_mb: z.number().int().min(32).max(65536).default(512).describe('Memory limit in MiB; no swap.'),
    disk_mb: z
      .number()
      .int()
      .min(1)
      .max(65536)
      .default(256)
      .describe('Size of the writable /workspace (a size-limited tmpfs owned by the sandbox user; it counts towards memory).'),
    network_enabled: z.boolean().default(false).describe('false: no network interface but loopback.'),
    max_processes: z.number().int().min(8).max(32768).default(128).describe('pids limit of the sandbox.'),
  })
  .strict();
export type ResourceLimits = z.infer<typeof ResourceLimitsSchema>;

export const AGENT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{2,62}$/;
export const AgentIdSchema = z
  .string()
  .regex(AGENT_ID_PATTERN, 'agent id: 3-63 characters of a-z, 0-9 and "-", starting with a letter or digit');

/** What happens when an agent's container is lost while it runs (removed, killed, out of memory, engine restart). */
export const RESTART_POLICIES = ['never', 'on-failure'] as const;
export const RestartPolicySchema = z.enum(RESTART_POLICIES);
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;
export const DEFAULT_MAX_RESTARTS = 3;

export const CreateAgentRequestSchema = z
  .object({
    skill_id: z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, 'skill_id: a lower-case name such as "shell"'),
    agent_id: AgentIdSchema.optional().describe('Optional; generated when absent. Creating an existing id is refused.'),
    resource_limits: ResourceLimitsSchema.partial().strict().optional(),
    runtime: SandboxRuntimeSchema.optional().describe('Ask for one runtime; default: the strongest the host has.'),
    idle_ttl_seconds: z.number().int().min(10).max(30 * 24 * 3600).optional().describe('Auto-stop after this long without activity.'),
    restart_policy: RestartPolicySchema.optional().describe(
      'never (default): a lost container puts the agent in error. on-failure: a new sandbox is made in its place (a fresh workspace), up to max_restarts times.',
    ),
    max_restarts: z
      .number()
      .int()
      .min(1)
      .max(10)
      .optional()
      .describe(`With restart_policy on-failure: how many times the sandbox is re-provisioned (default ${DEFAULT_MAX_RESTARTS}).`),
  })
  .strict()
  .refine((r) => r.max_restarts === undefined || r.restart_policy === 'on-failure', {
    path: ['max_restarts'],
    message: 'max_restarts needs restart_policy "on-failure"',
  });
export type CreateAgentRequest = z.infer<typeof CreateAgentRequestSchema>;

export const AgentRecordSchema = z.object({
  id: z.string(),
  skill_id: z.string(),
  host: z.string().describe('The Docker host (worker) that runs the sandbox.'),
  sandbox_runtime: SandboxRuntimeSchema.nullable(),
  sandbox_warning: z.string().nullable(),
  status: AgentStatusSchema,
  created_at: z.string(),
  started_at: z.string().nullable(),
  stopped_at: z.string().nullable(),
  container_id: z.string().nullable(),
  resource_limits: ResourceLimitsSchema,
  idle_ttl_seconds: z.number(),
  restart_policy: RestartPolicySchema,
  max_restarts: z.number().describe('0 under restart_policy never.'),
  restarts: z.number().describe('Times the sandbox was re-provisioned after its container was lost.'),
  exit_code: z.number().nullable(),
  error_message: z.string().nullable(),
});
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

export const StopAgentRequestSchema = z.object({ force: z.boolean().default(false) }).strict();

export const ExecRequestSchema = z
  .object({
    command: z.array(z.string()).min(1).max(256),
    timeout_ms: z.number().int().min(100).max(3_600_000).default(60_000),
    max_output_bytes: z.number().int().min(1).max(1 << 20).default(64 * 1024),
  })
  .strict();
export type ExecRequest = z.infer<typeof ExecRequestSchema>;

export interface ExecResult {
  exit_code: number;
  stdout: string;
  stderr: string;
  /** Bytes dropped beyond max_output_bytes, per stream. */
  stdout_truncated_bytes: number;
  stderr_truncated_bytes: number;
  timed_out: boolean;
  /** The memory limit's OOM killer ended a process of this exec. */
  oom_killed: boolean;
  duration_ms: number;
}
