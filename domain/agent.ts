/**
 * The agent domain: what an agent is, the limits it runs under, and the record every caller
 * (API, CLI, Web UI query) sees. Zod schemas are the single source of truth for validation,
 * TypeScript types and the OpenAPI document.
 */
import { z } from 'zod';
import { SkillIdSchema } from './skill.js';
import { AgentBudgetSchema } from './budget.js';
import { DOCKER_HOST_ID } from './host-capacity.js';

export const AGENT_STATUSES = ['provisioning', 'running', 'paused', 'stopping', 'stopped', 'error'] as const;
export const AgentStatusSchema = z.enum(AGENT_STATUSES);
export type AgentStatus = z.infer<typeof AgentStatusSchema>;

/** Container runtimes Warden knows, strongest isolation first. */
export const SANDBOX_RUNTIMES = ['runsc', 'kata', 'runc'] as const;
export const SandboxRuntimeSchema = z.enum(SANDBOX_RUNTIMES);
export type SandboxRuntime = z.infer<typeof SandboxRuntimeSchema>;

/**
 * Memory a sandbox's tmpfs mounts can fill besides /workspace (disk_mb): /tmp and /dev/shm
 * (sandbox/spec.ts mounts them at these sizes). Every tmpfs counts towards memory_mb, so
 * disk_mb + /tmp + /dev/shm must leave at least SANDBOX_PROCESS_ROOM_MB for the processes.
 */
export const SANDBOX_TMP_MB = 16;
export const SANDBOX_SHM_MB = 4;
export const SANDBOX_PROCESS_ROOM_MB = 8;
const DEFAULT_DISK_MB = 256;
const DEFAULT_MEMORY_MB = 512;
/** The largest /workspace that fits in this memory limit. */
export const maxDiskMb = (memoryMb: number): number => memoryMb - SANDBOX_TMP_MB - SANDBOX_SHM_MB - SANDBOX_PROCESS_ROOM_MB;

/** Each limit with its hard maximum (an admin's ceiling; operators have lower ones, domain/config.ts). */
const LIMIT_FIELDS = {
  cpu_cores: z.number().min(0.05).max(64).describe('CPU cores the sandbox may use (CFS quota).'),
  memory_mb: z
    .number()
    .int()
    .min(32)
    .max(65536)
    .describe(
      `Memory limit in MiB; no swap. It holds the tmpfs mounts too: /workspace (disk_mb), /tmp (${SANDBOX_TMP_MB} MiB) and /dev/shm (${SANDBOX_SHM_MB} MiB).`,
    ),
  disk_mb: z
    .number()
    .int()
    .min(1)
    .max(65536)
    .describe(
      `Size of the writable /workspace (a size-limited tmpfs owned by the sandbox user; it counts towards memory): at most memory_mb - ${SANDBOX_TMP_MB + SANDBOX_SHM_MB + SANDBOX_PROCESS_ROOM_MB}. Default ${DEFAULT_DISK_MB}, or less when memory_mb cannot hold that.`,
    ),
  network_enabled: z.boolean().describe('false: no network interface but loopback.'),
  max_processes: z.number().int().min(8).max(32768).describe('pids limit of the sandbox.'),
};

export const ResourceLimitsSchema = z
  .object({
    cpu_cores: LIMIT_FIELDS.cpu_cores.default(1),
    memory_mb: LIMIT_FIELDS.memory_mb.default(DEFAULT_MEMORY_MB),
    disk_mb: LIMIT_FIELDS.disk_mb.default(DEFAULT_DISK_MB),
    network_enabled: LIMIT_FIELDS.network_enabled.default(false),
    max_processes: LIMIT_FIELDS.max_processes.default(128),
  })
  .strict();
/** Limits as asked for: what is absent is filled in by completeLimits. */
export const AskedLimitsSchema = z.object(LIMIT_FIELDS).partial().strict();
export type ResourceLimits = z.infer<typeof ResourceLimitsSchema>;

/** The limits asked for, completed: an absent disk_mb is the default, or what memory_mb has room for. */
export function completeLimits(asked: z.infer<typeof AskedLimitsSchema> = {}): ResourceLimits {
  const memory = asked.memory_mb ?? DEFAULT_MEMORY_MB;
  return ResourceLimitsSchema.parse({ ...asked, disk_mb: asked.disk_mb ?? Math.max(1, Math.min(DEFAULT_DISK_MB, maxDiskMb(memory))) });
}

/** Why these limits cannot hold their own tmpfs mounts, or null when they can. */
export function sandboxMemoryProblem(limits: ResourceLimits): string | null {
  if (limits.disk_mb <= maxDiskMb(limits.memory_mb)) return null;
  return (
    `resource_limits: disk_mb ${limits.disk_mb} does not fit in memory_mb ${limits.memory_mb}: the tmpfs mounts (/workspace ${limits.disk_mb} MiB, ` +
    `/tmp ${SANDBOX_TMP_MB} MiB, /dev/shm ${SANDBOX_SHM_MB} MiB) count towards memory and at least ${SANDBOX_PROCESS_ROOM_MB} MiB must be left for processes; ` +
    `ask for disk_mb at most ${maxDiskMb(limits.memory_mb)} or memory_mb at least ${limits.disk_mb + SANDBOX_TMP_MB + SANDBOX_SHM_MB + SANDBOX_PROCESS_ROOM_MB}`
  );
}

export const AGENT_ID_PATTERN = /^[a-z0-9][a-z0-9-]{2,62}$/;
/** Any agent id that may exist: lookups accept ids made before some prefixes were reserved. */
export const AgentIdSchema = z
  .string()
  .regex(AGENT_ID_PATTERN, 'agent id: 3-63 characters of a-z, 0-9 and "-", starting with a letter or digit');

/**
 * Workflow id prefixes that belong to Warden and Temporal (warden-capacity, warden-emergency-stop-…,
 * warden-alert-…, warden-reaper-…, actions' act-<16 hex>, Temporal's own temporal-sys-…). An agent's
 * workflow id is its agent id, so a new agent may take none of them, present or future.
 */
export const RESERVED_ID_PREFIXES = ['warden-', 'act-', 'temporal-'] as const;
export const isReservedId = (id: string): boolean => RESERVED_ID_PREFIXES.some((prefix) => id.startsWith(prefix));

/** The id of an agent being created: never one of the reserved prefixes. */
export const NewAgentIdSchema = AgentIdSchema.refine((id) => !isReservedId(id), {
  message: `agent id: ids starting with ${RESERVED_ID_PREFIXES.map((p) => `"${p}"`).join(', ')} are reserved for Warden's own workflows; choose another`,
});

/** What happens when an agent's container is lost while it runs (removed, killed, out of memory, engine restart). */
export const RESTART_POLICIES = ['never', 'on-failure'] as const;
export const RestartPolicySchema = z.enum(RESTART_POLICIES);
export type RestartPolicy = z.infer<typeof RestartPolicySchema>;
export const DEFAULT_MAX_RESTARTS = 3;

export const CreateAgentRequestSchema = z
  .object({
    skill_id: SkillIdSchema,
    agent_id: NewAgentIdSchema.optional().describe(
      `Optional; generated when absent. Creating an existing id is refused, and so is one starting with ${RESERVED_ID_PREFIXES.map((p) => `"${p}"`).join(', ')}.`,
    ),
    resource_limits: AskedLimitsSchema.optional().describe(
      'Operators may ask up to the WARDEN_OPERATOR_MAX_* limits and no network; beyond them, or network_enabled, an admin must create the agent.',
    ),
    runtime: SandboxRuntimeSchema.optional().describe(
      'Ask for one runtime; default: the strongest the host has. runc (no sandbox kernel) only for an admin, and only with WARDEN_REQUIRE_SANDBOX off.',
    ),
    idle_ttl_seconds: z
      .number()
      .int()
      .min(10)
      .max(30 * 24 * 3600)
      .optional()
      .describe('Auto-stop after this long without activity.'),
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
    budget: AgentBudgetSchema.optional().describe(
      "The agent's conversation budget, each limit in place of the configured default (WARDEN_BUDGET_*); below admin, only at or under it.",
    ),
    host: z
      .string()
      .regex(DOCKER_HOST_ID)
      .optional()
      .describe(
        'The Docker host to run it on, one of WARDEN_DOCKER_HOSTS (GET /api/sandbox lists them); default: the one with the most memory left for agents. Another host is a 400.',
      ),
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
  budget: AgentBudgetSchema.optional().describe("The agent's own conversation budget; the configured defaults for what it leaves out."),
  exit_code: z.number().nullable(),
  error_message: z.string().nullable(),
});
export type AgentRecord = z.infer<typeof AgentRecordSchema>;

export const StopAgentRequestSchema = z.object({ force: z.boolean().default(false) }).strict();

export const ExecRequestSchema = z
  .object({
    command: z.array(z.string()).min(1).max(256),
    timeout_ms: z.number().int().min(100).max(3_600_000).default(60_000),
    max_output_bytes: z
      .number()
      .int()
      .min(1)
      .max(512 * 1024)
      .default(64 * 1024),
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
