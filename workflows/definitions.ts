/**
 * Messages, search attributes and task queues shared by the workflows and their callers
 * (API, workers, tests). Workflow-safe: no Node, Docker or I/O imports.
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { IdentitySchema } from '../domain/action.js';
import type { AgentRecord, ExecRequest, ExecResult, ResourceLimits, RestartPolicy, SandboxRuntime } from '../domain/agent.js';
import type { AgentBudget } from '../domain/budget.js';
import type { ActionRecord } from '../domain/action.js';
import type { ApprovalAttempt, ApprovalVerdict } from './approval.js';
import type { Lockdown, LockdownActor } from '../domain/lockdown.js';
import type { HostBudget, HostReservation } from '../domain/host-capacity.js';
import type { ContainerUsage } from '../sandbox/container-usage.js';
import type { EngineFacts } from '../sandbox/docker-engine.js';
import type { ConversationClaims, Grant, MessageClaims } from '../domain/grants.js';
import type { Conversation, Turn } from '../domain/conversation.js';
import { SearchAttributes } from '../domain/search-attributes.js';

/** Workflows and non-sandbox activities. */
export const CONTROL_TASK_QUEUE = 'warden-control';
/** Sandbox activities run on the worker attached to the agent's Docker host. */
export const sandboxTaskQueue = (host: string): string => `warden-sandbox@${host}`;
/**
 * The watches of the host's sandboxes (one long activity per agent): a worker of their own, with
 * slots of their own, so that idle agents never take the slots commands run in.
 */
export const sandboxWatchTaskQueue = (host: string): string => `warden-sandbox-watch@${host}`;

export const CAPACITY_WORKFLOW_ID = 'warden-capacity';

export { SearchAttributes };

export interface AgentWorkflowInput {
  agentId: string;
  skillId: string;
  host: string;
  image: string;
  limits: ResourceLimits;
  /** Runtime asked for, or 'auto' for the strongest the host has. */
  runtime: SandboxRuntime | 'auto';
  requireSandbox: boolean;
  idleTtlSeconds: number;
  stopGraceSeconds: number;
  /** Absent (agents made before restart policies): never. */
  restartPolicy?: RestartPolicy;
  /** How many times on-failure re-provisions the sandbox (the API fills in the default). */
  maxRestarts?: number;
  /** The agent's own conversation budget, as asked for at creation. */
  budget?: AgentBudget;
  createdAt: string;
  /** The key id of whoever created the agent, for the audit log. */
  requestedBy?: string;
  /** Set when the workflow continues as new: the record carried over. */
  carried?: AgentRecord;
  /** Set when the workflow continues as new: the secrets its actions have used (agentSecretsQuery). */
  secretsUsed?: string[];
}

/** The record of an agent that has just been asked for: provisioning, nothing started yet. */
export function newAgentRecord(input: AgentWorkflowInput): AgentRecord {
  return {
    id: input.agentId,
    skill_id: input.skillId,
    host: input.host,
    sandbox_runtime: null,
    sandbox_warning: null,
    status: 'provisioning',
    created_at: input.createdAt,
    started_at: null,
    stopped_at: null,
    container_id: null,
    resource_limits: input.limits,
    idle_ttl_seconds: input.idleTtlSeconds,
    restart_policy: input.restartPolicy ?? 'never',
    max_restarts: input.restartPolicy === 'on-failure' ? (input.maxRestarts ?? 0) : 0,
    restarts: 0,
    ...(input.budget ? { budget: input.budget } : {}),
    exit_code: null,
    error_message: null,
  };
}

export const agentStatusQuery = defineQuery<AgentRecord>('status');
/** Names of the vault secrets the agent's actions have used: later outputs of the agent redact their values. */
export const agentSecretsQuery = defineQuery<string[]>('secretsUsed');

/** The arguments the agent's signals must carry (see ApprovalAttemptSchema for why every handler checks). */
export const AgentSignalSchemas = {
  pause: z.strictObject({ by: z.string().optional() }).optional(),
  resume: z.strictObject({ by: z.string().optional() }).optional(),
  stop: z.strictObject({ force: z.boolean().optional(), by: z.string().optional() }),
  touch: z.strictObject({ action_id: z.string().min(1), busy_ms: z.number().min(0), secrets: z.array(z.string()).optional() }),
} as const;
/** `by`: the key id of whoever asked, for the audit log (absent: the system). */
export const pauseSignal = defineSignal<[{ by?: string }?]>('pause');
export const resumeSignal = defineSignal<[{ by?: string }?]>('resume');
export const stopSignal = defineSignal<[{ force?: boolean; by?: string }]>('stop');
/**
 * An action runs in the agent for up to busy_ms (0: it has ended): the idle timer waits for it.
 * `secrets`: the names of the vault secrets it runs with (see agentSecretsQuery).
 */
export const touchSignal = defineSignal<[{ action_id: string; busy_ms: number; secrets?: string[] }]>('touch');
/**
 * Reads the live usage of the agent's container on its Docker host's sandbox worker, so that it
 * reads for any host, and behind a Docker proxy that shows the API no container; only while the
 * agent is running or paused. Reading it is not using the agent: its idle timer goes on.
 */
export const agentUsageUpdate = defineUpdate<ContainerUsage, []>('readUsage');
/** Runs a command in the agent's sandbox; only while the agent is running. */
export const execUpdate = defineUpdate<ExecResult, [ExecRequest]>('exec');

export interface AdmitRequest {
  agentId: string;
  maxAgents: number;
  /** Raise a capacity alert when admissions reach this percentage of maxAgents (alerts configured). */
  alertPercent?: number;
  /** What the agent reserves on its Docker host, and what that host can hold (absent from older callers: not checked). */
  reservation?: HostReservation;
  hostBudget?: HostBudget;
}
export interface CapacityState {
  /** Admitted agent ids, with the time they were admitted (ISO). */
  admitted: Record<string, string>;
  /** The emergency lockdown, while it holds. */
  lockdown?: Lockdown | null;
  /** Emergency stops so far: the next one is number stops + 1. */
  stops?: number;
  /** What each admitted agent reserves on its Docker host (agents admitted with a reservation). */
  reserved?: Record<string, HostReservation>;
}
/**
 * Reads a Docker host's engine (version, runtimes, cores, memory) on that host's sandbox worker,
 * for placing agents and for GET /api/sandbox; fails within seconds when no worker of the host
 * takes it. It changes nothing in the capacity workflow's state.
 */
export const describeHostUpdate = defineUpdate<EngineFacts, [{ host: string }]>('describeHost');
/** Reserves a slot for an agent; fails with CapacityExceeded when max_agents are admitted. */
export const admitAgentUpdate = defineUpdate<{ admitted: number; max_agents: number }, [AdmitRequest]>('admitAgent');
export const releaseAgentSignal = defineSignal<[{ agentId: string }]>('releaseAgent');
export const capacityQuery = defineQuery<CapacityState>('capacity');
/** Locks Warden down (or keeps the lockdown) and starts an emergency stop workflow that stops everything. */
export const lockdownUpdate = defineUpdate<{ lockdown: Lockdown; already_locked: boolean; stop_workflow_id: string }, [LockdownActor]>(
  'lockdown',
);
/** Lifts the lockdown; fails with NotLocked when there is none. */
export const liftLockdownUpdate = defineUpdate<{ lifted: Lockdown; resumed_at: string }, [LockdownActor]>('liftLockdown');
export const lockdownQuery = defineQuery<Lockdown | null>('lockdown');

export type { ActionWorkflowInput } from '../domain/action-submission.js';

/**
 * How every action's workflow is started, by the API or by a conversation as its child: its id is
 * the action id, on the control queue, with the search attributes visibility lists actions by.
 */
export function actionStartOptions(action: ActionRecord) {
  return {
    workflowId: action.id,
    taskQueue: CONTROL_TASK_QUEUE,
    typedSearchAttributes: [
      { key: SearchAttributes.actionId, value: action.id },
      { key: SearchAttributes.actionStatus, value: action.status },
      { key: SearchAttributes.securityLevel, value: action.security_level },
      { key: SearchAttributes.agentId, value: action.agent_id },
      { key: SearchAttributes.skillId, value: action.skill_id },
    ],
  };
}

export interface EmergencyStopInput {
  stop: number;
  lockdown: Lockdown;
  /** Who asked for this stop, and why (a repeated stop keeps the first lockdown). */
  requested: LockdownActor;
  /** The agents the capacity workflow had admitted when the lockdown began. */
  admitted: string[];
}

export const actionStatusQuery = defineQuery<ActionRecord>('actionStatus');
/**
 * Answers with the action once its record is final (what actionStatus answers from then on):
 * the API waits on it for a caller's wait_seconds, sent with the workflow's start.
 */
export const actionResultUpdate = defineUpdate<ActionRecord, []>('actionResult');

/**
 * What an approval signal or update must carry. Anyone who reaches Temporal can send one, and an
 * argument that does not decode arrives as a stand-in object: the handlers check every argument
 * against this before they act, and refuse what does not fit (the grant's checks come after).
 */
export const ApprovalAttemptSchema = z.object({
  approver: IdentitySchema,
  approved: z.boolean(),
  comment: z.string().max(2000).nullish(),
  params_hash: z.string(),
  grant: z.object({ claims: z.record(z.string(), z.unknown()), key_id: z.string(), mac: z.string() }).optional(),
});
/** An approval or rejection from any Temporal client (chat channels, the CLI, the Web UI). */
export const approveSignal = defineSignal<[ApprovalAttempt]>('approve');
/** The same decision, answered at once: the API uses it. */
export const approveUpdate = defineUpdate<ApprovalVerdict & { status: ActionRecord['status'] }, [ApprovalAttempt]>('approveAction');
/** Cancels an action still awaiting approval (the emergency stop); answers what became of it. */
export const cancelActionUpdate = defineUpdate<{ cancelled: boolean; status: ActionRecord['status'] }, [{ reason: string; by: string }]>(
  'cancelAction',
);

/** The reaper found the agent's container gone or stopped; accepted only while the agent runs or is paused. */
export const containerLostUpdate = defineUpdate<
  { accepted: boolean; status: AgentRecord['status'] },
  [{ reason: string; exit_code: number | null }]
>('containerLost');

/** One reaper Schedule per Docker host: its activities touch that host's engine. */
export const reaperScheduleId = (host: string): string => `warden-reaper@${host}`;
export interface ReaperInput {
  host: string;
}
/** What a reaper run did (the workflow's result, shown by the Web UI). */
export interface ReaperReport {
  host: string;
  containers_seen: number;
  agents_checked: number;
  containers_removed: Array<{ container_id: string; agent_id: string; state: string; reason: string }>;
  agents_lost: Array<{ agent_id: string; reason: string; accepted: boolean }>;
  slots_released: string[];
  /** Warm pool members removed (absent in runs from before the warm pool). */
  pool_members_removed?: Array<{ container_id: string; name: string; reason: string }>;
  /** Idle warm pool members per profile after the run. */
  pool_idle?: Record<string, number>;
}

/** Model calls: the model worker, the only one holding the providers' API keys. */
export const MODEL_TASK_QUEUE = 'warden-model';

export interface ConversationWorkflowInput {
  /** The API's conversation grant: the activities check it; the workflow trusts nothing else in this input. */
  grant: Grant<ConversationClaims>;
  agent_id: string;
  owner: { key_id: string; name: string };
  provider: string;
  model?: string;
  /** Model calls a turn may make before it stops without an answer. */
  max_steps: number;
  created_at: string;
  /** Set when the workflow continues as new: what the conversation has been so far. */
  carried?: Pick<Conversation, 'turns' | 'transcript' | 'usage' | 'taint' | 'cost_usd'>;
}

/** A message for the conversation, with the API's grant for it (a message without one leads to no action). */
export interface ConversationMessage {
  message: string;
  grant: Grant<MessageClaims>;
}

export const conversationQuery = defineQuery<Conversation>('conversation');
/** Starts a turn with this message; refused while a turn runs or after the conversation ended. */
export const sendMessageUpdate = defineUpdate<{ turn: number }, [ConversationMessage]>('sendMessage');
/** Answers with the turn once it has ended (answered, stopped at the step limit, cancelled or failed). */
export const turnResultUpdate = defineUpdate<Turn, [{ turn: number }]>('turnResult');
/** Cancels the running turn: its pending actions are cancelled, the model is not called again. */
export const cancelTurnSignal = defineSignal<[{ by?: string }]>('cancelTurn');
/** Ends the conversation (its running turn is cancelled first). */
export const endConversationSignal = defineSignal<[{ by?: string }]>('endConversation');
