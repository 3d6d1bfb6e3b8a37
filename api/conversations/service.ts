/**
 * Conversations: the API starts one per request for an agent and a model, signing a conversation
 * grant (the agent, its skill, and the caller as the requester of every action the model's tool
 * calls become) that the workers check; each message the caller sends carries a message grant.
 * Only the conversation's owner, or an admin, may read it or send to it.
 */
import { randomBytes } from 'node:crypto';
import { decodeFromPayloadsAtIndex } from '@temporalio/common/lib/internal-non-workflow/index.js';
import {
  QueryNotRegisteredError,
  WorkflowNotFoundError,
  WorkflowUpdateFailedError,
  type Client,
  type WorkflowExecutionInfo,
} from '@temporalio/client';
import { z } from 'zod';
import type { Conversation, ConversationSummary, Turn } from '../../domain/conversation.js';
import { WardenError } from '../../domain/errors.js';
import { messageHash, type ConversationClaims, type Grants } from '../../domain/grants.js';
import { hasRole, type Identity } from '../../domain/roles.js';
import type { ModelCallProgress } from '../../domain/llm.js';
import type { ProviderRegistry } from '../../llm/registry.js';
import type { conversationWorkflow } from '../../workflows/conversation.js';
import {
  cancelTurnSignal,
  CONTROL_TASK_QUEUE,
  conversationQuery,
  endConversationSignal,
  SearchAttributes,
  sendMessageUpdate,
  turnResultUpdate,
} from '../../workflows/definitions.js';
import { askWorker, workerUnavailable } from '../deadlines.js';
import type { AgentService } from '../agents/service.js';

/** A conversation grant holds this long; revoking the key ends its authority sooner. */
const CONVERSATION_GRANT_MS = 30 * 24 * 3600_000;
const QUERY_DEADLINE_MS = 5_000;
/** A message is accepted once the worker has it: a worker that just restarted may first replay the conversation. */
const UPDATE_DEADLINE_MS = 15_000;

export interface NewConversation {
  agent_id: string;
  provider?: string;
  model?: string;
  max_steps: number;
}

/** A list reads at most this many conversations from visibility to find the caller's own. */
const LIST_SCAN_LIMIT = 1_000;

const OwnerMemoSchema = z.object({ key_id: z.string(), name: z.string() });

/** How many model calls a turn may make unless the conversation says otherwise. */
export const DEFAULT_MAX_STEPS = 10;

export function createConversationService(
  client: Client,
  grants: Grants,
  providers: ProviderRegistry,
  agents: AgentService,
  /** Refuses new conversations and messages during the emergency lockdown (their actions are refused then anyway). */
  assertOpen: (what: 'conversation', who: Identity) => Promise<void>,
) {
  const handle = (id: string) => client.workflow.getHandle<typeof conversationWorkflow>(id);
  const noWorker = (id: string) => `no worker answered for conversation ${id}; is the Warden worker running?`;

  async function createConversation(request: NewConversation, requester: Identity): Promise<Conversation> {
    const provider = request.provider ?? providers.list()[0]?.config.name;
    // A state of the configuration, not a passing failure: 409, as for an agent that cannot take one.
    if (!provider)
      throw new WardenError(
        'no_provider',
        'no model provider is configured: an admin sets WARDEN_LLM_BASE_URL or WARDEN_PROVIDERS_FILE (see docs/models.md)',
        409,
      );
    if (!providers.get(provider))
      throw new WardenError('unknown_provider', `no model provider is named ${provider}; GET /api/providers lists them`, 422);
    await assertOpen('conversation', requester);
    const agent = await agents.getAgent(request.agent_id);
    if (agent.status === 'stopped' || agent.status === 'error')
      throw new WardenError('agent_not_active', `agent ${agent.id} is ${agent.status}; a conversation needs a live agent`, 409);
    const id = `cnv-${randomBytes(8).toString('hex')}`;
    const now = new Date();
    const grant = grants.sign<ConversationClaims>({
      kind: 'conversation',
      conversation_id: id,
      agent_id: agent.id,
      skill_id: agent.skill_id,
      ...(agent.budget ? { budget: agent.budget } : {}),
      requester,
      issued_at: now.toISOString(),
      expires_at: new Date(now.getTime() + CONVERSATION_GRANT_MS).toISOString(),
    });
    await client.workflow.start<typeof conversationWorkflow>('conversationWorkflow', {
      workflowId: id,
      taskQueue: CONTROL_TASK_QUEUE,
      args: [
        {
          grant,
          agent_id: agent.id,
          owner: { key_id: requester.key_id, name: requester.name },
          provider,
          ...(request.model ? { model: request.model } : {}),
          max_steps: request.max_steps,
          created_at: now.toISOString(),
        },
      ],
      typedSearchAttributes: [{ key: SearchAttributes.agentId, value: agent.id }],
      // Read by the list without asking a worker; the memo is encrypted like every payload.
      memo: { owner: { key_id: requester.key_id, name: requester.name } },
    });
    return {
      id,
      agent_id: agent.id,
      provider,
      model: request.model ?? null,
      owner: { key_id: requester.key_id, name: requester.name },
      status: 'idle',
      turns: [],
      transcript: [],
      usage: { input_tokens: 0, output_tokens: 0, cached_tokens: 0 },
      cost_usd: 0,
      created_at: now.toISOString(),
    };
  }

  /** The conversation, to its owner or an admin; anyone else is told it does not exist. */
  async function getConversation(id: string, who: Identity): Promise<Conversation> {
    let conversation: Conversation;
    try {
      conversation = await askWorker(client, QUERY_DEADLINE_MS, () => handle(id).query(conversationQuery), noWorker(id));
    } catch (err) {
      if (err instanceof WorkflowNotFoundError || err instanceof QueryNotRegisteredError) throw notFound(id);
      throw err;
    }
    if (conversation?.id !== id || (conversation.owner.key_id !== who.key_id && !hasRole(who.role, 'admin'))) throw notFound(id);
    return conversation;
  }

  /**
   * Starts a turn with the message; with wait_seconds, waits that long for the turn to end. The
   * answer is the turn as it stands: its reply once the model gave one, and the actions so far.
   */
  async function sendMessage(id: string, message: string, sender: Identity, waitSeconds: number): Promise<Turn> {
    await getConversation(id, sender);
    await assertOpen('conversation', sender);
    const grant = grants.sign({
      kind: 'message',
      conversation_id: id,
      message_hash: messageHash(message),
      sender,
      issued_at: new Date().toISOString(),
    });
    let turn: number;
    try {
      ({ turn } = await askWorker(
        client,
        UPDATE_DEADLINE_MS,
        () => handle(id).executeUpdate(sendMessageUpdate, { args: [{ message, grant }] }),
        noWorker(id),
      ));
    } catch (err) {
      if (err instanceof WorkflowUpdateFailedError)
        throw new WardenError('conversation_busy', (err.cause as Error | undefined)?.message ?? 'the message was refused', 409);
      if (err instanceof WorkflowNotFoundError) throw new WardenError('conversation_ended', `conversation ${id} has ended`, 409);
      throw err;
    }
    if (waitSeconds > 0) {
      const ended = await Promise.race([
        handle(id).executeUpdate(turnResultUpdate, { args: [{ turn }] }),
        new Promise<null>((resolve) => setTimeout(() => resolve(null), waitSeconds * 1000)),
      ]).catch(() => null);
      if (ended) return ended;
    }
    const now = await getConversation(id, sender);
    return now.turns.find((t) => t.turn === turn)!;
  }

  /**
   * The conversations the caller may read, newest first: their own, or every one for an admin. Who
   * owns one comes from its memo; one without (started before the memo was kept) is an admin's only.
   * A running one is asked for its state and its last turn; an ended one needs no worker.
   */
  async function listConversations(who: Identity, filter: { agent_id?: string; limit: number }): Promise<ConversationSummary[]> {
    const clauses = [`WorkflowType = 'conversationWorkflow'`];
    if (filter.agent_id) clauses.push(`${SearchAttributes.agentId.name} = '${filter.agent_id}'`);
    const everyone = hasRole(who.role, 'admin');
    const mine: WorkflowExecutionInfo[] = [];
    let scanned = 0;
    for await (const info of client.workflow.list({ query: clauses.join(' AND '), pageSize: 100 })) {
      if (++scanned > LIST_SCAN_LIMIT || mine.length >= filter.limit) break;
      const owner = OwnerMemoSchema.safeParse(info.memo?.owner);
      if (everyone || (owner.success && owner.data.key_id === who.key_id)) mine.push(info);
    }
    return Promise.all(mine.map((info) => summarize(info)));
  }

  async function summarize(info: WorkflowExecutionInfo): Promise<ConversationSummary> {
    const owner = OwnerMemoSchema.safeParse(info.memo?.owner);
    const summary: ConversationSummary = {
      id: info.workflowId,
      agent_id: info.typedSearchAttributes.get(SearchAttributes.agentId) ?? null,
      owner: owner.success ? owner.data : null,
      status: 'ended',
      turns: null,
      last_activity_at: (info.closeTime ?? info.startTime).toISOString(),
      created_at: info.startTime.toISOString(),
      workflow_status: info.status.name,
    };
    if (info.status.name !== 'RUNNING') return summary;
    try {
      const now = await askWorker(
        client,
        QUERY_DEADLINE_MS,
        () => handle(info.workflowId).query(conversationQuery),
        noWorker(info.workflowId),
      );
      const last = now.turns.at(-1);
      return {
        ...summary,
        owner: now.owner,
        status: now.status,
        turns: now.turns.length,
        last_activity_at: last?.ended_at ?? last?.started_at ?? now.created_at,
      };
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      // One unanswered query leaves that row's state unknown, not the whole list unshown.
      return { ...summary, status: null };
    }
  }

  /** Cancels the running turn, or ends the conversation. */
  async function stop(id: string, what: 'cancel' | 'end', who: Identity): Promise<void> {
    await getConversation(id, who);
    try {
      await handle(id).signal(what === 'cancel' ? cancelTurnSignal : endConversationSignal, { by: who.key_id });
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) throw new WardenError('conversation_ended', `conversation ${id} has ended`, 409);
      throw workerUnavailable(err, noWorker(id));
    }
  }

  /**
   * The text so far of the answer the conversation's model call is receiving (from a provider that
   * streams), read from the call's heartbeat details; null when no answer is coming in. The caller
   * has checked who may read the conversation.
   */
  async function answerSoFar(id: string): Promise<{ call: string; text: string } | null> {
    const { raw } = await handle(id).describe();
    const call = raw.pendingActivities?.find((a) => a.activityType?.name === 'callModel' && a.heartbeatDetails?.payloads?.length);
    if (!call) return null;
    const progress = await decodeFromPayloadsAtIndex<ModelCallProgress | undefined>(
      client.options.loadedDataConverter,
      0,
      call.heartbeatDetails!.payloads,
    );
    return progress?.text && progress.attempt === call.attempt ? { call: `${call.activityId}:${call.attempt}`, text: progress.text } : null;
  }

  return { createConversation, getConversation, listConversations, sendMessage, stop, answerSoFar };
}

export type ConversationService = ReturnType<typeof createConversationService>;

const notFound = (id: string) => new WardenError('not_found', `conversation ${id} not found`, 404);
