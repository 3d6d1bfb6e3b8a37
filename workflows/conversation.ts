/**
 * The conversation workflow: one per conversation, its id the conversation id, bound to one agent.
 * A turn starts with a message (the sendMessage update) and loops: the model is called (an
 * activity on the model worker, whose whole answer is recorded, so a replay never calls the model
 * again); each tool call it makes becomes an action, prepared and signed by the control worker for
 * the conversation's requester and run as a child action workflow, which judges it, waits for its
 * approvals (durably: hours if need be) and runs it once; the action's outcome, whatever it is,
 * goes back to the model as the call's result. The turn ends when the model answers, at the step
 * limit, or when a person cancels it.
 */
import {
  allHandlersFinished,
  CancellationScope,
  condition,
  continueAsNew,
  isCancellation,
  ParentClosePolicy,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  startChild,
  workflowInfo,
} from '@temporalio/workflow';
import type { ActionRecord } from '../domain/action.js';
import { spentTokens } from '../domain/budget.js';
import { addUsage, toolResultText, type Conversation, type Turn, type ToolAction } from '../domain/conversation.js';
import type { ToolCall } from '../domain/llm.js';
import { refuseUndecodableInput } from '../domain/undecodable.js';
import type { BudgetActivities, ModelBudgetVerdict } from '../activities/budget.js';
import type { ConversationActivities } from '../activities/conversation.js';
import type { ModelActivities } from '../activities/model.js';
import type { actionWorkflow } from './action.js';
import { FailureType } from '../domain/failure-types.js';
import { failureText, failureType } from './failures.js';
import { auditTrail } from './local-activities.js';
import {
  actionStartOptions,
  cancelTurnSignal,
  conversationQuery,
  endConversationSignal,
  MODEL_TASK_QUEUE,
  sendMessageUpdate,
  turnResultUpdate,
  type ConversationMessage,
  type ConversationWorkflowInput,
} from './definitions.js';

const { callModel } = proxyActivities<ModelActivities>({
  taskQueue: MODEL_TASK_QUEUE,
  // The provider layer retries and fails over inside one attempt; this covers a worker lost mid-call.
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { maximumAttempts: 3, initialInterval: '2 seconds' },
});
const { prepareToolCall } = proxyActivities<ConversationActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5 },
});

const { screenToolResult, checkModelBudget, recordModelCall } = proxyLocalActivities<
  Pick<ConversationActivities, 'screenToolResult'> & BudgetActivities
>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumInterval: '30 seconds' },
});

/** Past this many events a conversation continues as new between turns, carrying its transcript. */
const MAX_HISTORY_EVENTS = 10_000;

export async function conversationWorkflow(input: ConversationWorkflowInput): Promise<Conversation> {
  refuseUndecodableInput(input);
  // Decided first, before any marker or local activity (see docs/workflow-versioning.md).
  // Patch guards screening tool results; deprecatePatch once no open conversation predates it: every recorded conversation history before it does.
  const screenResults = patched('screen-tool-results');
  // Patch guards the budget check before each model call, the model.call entries after, and the tool-call limit of a turn.
  const budgets = patched('conversation-budgets');
  // Patch guards the model-call grants: each call is reserved against the agent's day and carries the control worker's grant for it.
  const callGrants = patched('model-call-grants');
  const { workflowId, runId } = workflowInfo();
  const conversation: Conversation = {
    id: workflowId,
    agent_id: input.agent_id,
    provider: input.provider,
    model: input.model ?? null,
    owner: input.owner,
    status: 'idle',
    turns: input.carried?.turns ?? [],
    transcript: input.carried?.transcript ?? [],
    usage: input.carried?.usage ?? { input_tokens: 0, output_tokens: 0, cached_tokens: 0 },
    cost_usd: input.carried?.cost_usd ?? 0,
    taint: input.carried?.taint ?? null,
    created_at: input.created_at,
  };
  const audit = auditTrail(`${workflowId}:${runId}`);
  /** The message of the turn about to run, with its grant (kept out of the query's answer). */
  let queued: ConversationMessage | null = null;
  let turnScope: CancellationScope | null = null;
  let cancelledBy: string | null = null;
  let ended = false;
  let continuing = false;

  setHandler(conversationQuery, () => conversation);
  setHandler(
    sendMessageUpdate,
    (sent) => {
      queued = sent;
      conversation.status = 'running';
      const turn: Turn = {
        turn: conversation.turns.length + 1,
        message: sent.message,
        status: 'running',
        reply: null,
        actions: [],
        steps: 0,
        error: null,
        started_at: new Date().toISOString(),
        ended_at: null,
      };
      conversation.turns.push(turn);
      return { turn: turn.turn };
    },
    {
      validator: (sent) => {
        if (ended) throw new Error(`conversation ${workflowId} has ended; start a new one`);
        if (queued || conversation.status === 'running') throw new Error('a turn is in progress: wait for its answer, or cancel it');
        if (continuing) throw new Error('the conversation is moving to a new run; send the message again in a moment');
        if (typeof sent?.message !== 'string' || sent.message.trim() === '') throw new Error('a message needs some text');
      },
    },
  );
  setHandler(turnResultUpdate, async ({ turn }) => {
    const found = conversation.turns.find((t) => t.turn === turn);
    if (!found) throw new Error(`conversation ${workflowId} has no turn ${turn}`);
    await condition(() => found.ended_at !== null);
    return found;
  });
  // No cancel falls between a message and its turn: the turn's scope is made in the activation that
  // accepts the message (conditions are checked after the handlers), and Temporal orders an update
  // after every signal of its workflow task, so a cancel handled before the scope exists was sent
  // before the message was accepted, when there was no turn to cancel.
  setHandler(cancelTurnSignal, (arg) => {
    cancelledBy = arg?.by ?? 'unknown';
    turnScope?.cancel();
  });
  setHandler(endConversationSignal, (arg) => {
    ended = true;
    cancelledBy = arg?.by ?? 'unknown';
    turnScope?.cancel();
  });

  while (!ended) {
    await condition(() => ended || queued !== null);
    if (queued && !ended) await runTurn(conversation.turns.at(-1)!, queued);
    queued = null;
    if (!ended) conversation.status = 'idle';
    const { historyLength, continueAsNewSuggested } = workflowInfo();
    if (!ended && (continueAsNewSuggested || historyLength > MAX_HISTORY_EVENTS)) {
      continuing = true;
      await condition(allHandlersFinished);
      const { turns, transcript, usage, taint, cost_usd } = conversation;
      await continueAsNew<typeof conversationWorkflow>({ ...input, carried: { turns, transcript, usage, taint, cost_usd } });
    }
  }
  conversation.status = 'ended';
  // A message accepted just before the end never ran: its turn ends too, so no one waits on it for ever.
  for (const turn of conversation.turns.filter((t) => t.ended_at === null)) {
    Object.assign(turn, { status: 'cancelled', error: 'the conversation ended before this turn ran', ended_at: new Date().toISOString() });
  }
  await condition(allHandlersFinished);
  return conversation;

  async function runTurn(turn: Turn, message: ConversationMessage): Promise<void> {
    const scope = new CancellationScope();
    turnScope = scope;
    cancelledBy = null;
    try {
      await scope.run(() => turnSteps(turn, message));
    } catch (err) {
      turn.status = isCancellation(err) ? 'cancelled' : 'failed';
      turn.error = isCancellation(err) ? `cancelled by ${cancelledBy ?? 'the system'}` : failureText(err);
      answerOpenCalls(turn.status === 'cancelled' ? 'the turn was cancelled before this call ran' : `the turn failed: ${turn.error}`);
    } finally {
      turnScope = null;
      turn.ended_at = new Date().toISOString();
    }
    await audit({
      kind: 'conversation.turn',
      actor: 'system',
      agent_id: input.agent_id,
      details: {
        conversation_id: workflowId,
        turn: turn.turn,
        status: turn.status,
        steps: turn.steps,
        actions: turn.actions.map((a) => a.action_id).filter(Boolean),
        usage: conversation.usage,
        cost_usd: conversation.cost_usd,
      },
    });
  }

  async function turnSteps(turn: Turn, message: ConversationMessage): Promise<void> {
    const asked = conversation.transcript.push({ role: 'user', content: message.message }) - 1;
    let calls = 0;
    while (turn.steps < input.max_steps) {
      turn.steps++;
      const { answer, budget } = await modelStep(message, turn).catch((err: unknown) => {
        // A message the workers refused (no API grant) is kept out of what later turns send to a model.
        if (turn.steps === 1 && failureType(err) === FailureType.Unauthorized) conversation.transcript.splice(asked, 1);
        throw err;
      });
      if (!answer) {
        turn.status = 'over_budget';
        turn.error = budget.refusal;
        return;
      }
      conversation.usage = addUsage(conversation.usage, answer.usage);
      if (answer.failed_over.length) {
        await audit({
          kind: 'model.failover',
          actor: 'system',
          agent_id: input.agent_id,
          details: { conversation_id: workflowId, turn: turn.turn, answered_by: answer.provider, failed: answer.failed_over },
        });
      }
      if (budgets) {
        const { cost_usd } = await recordModelCall({
          grant: input.grant,
          turn: turn.turn,
          step: turn.steps,
          provider: answer.provider,
          model: answer.model,
          usage: answer.usage,
          estimated_tokens: budget.estimated_tokens,
        });
        conversation.cost_usd = (conversation.cost_usd ?? 0) + (cost_usd ?? 0);
      }
      conversation.transcript.push({
        role: 'assistant',
        content: answer.text,
        ...(answer.tool_calls.length ? { tool_calls: answer.tool_calls } : {}),
      });
      if (answer.tool_calls.length === 0) {
        turn.status = 'answered';
        turn.reply = answer.text;
        return;
      }
      const allowed = budget.tool_calls_per_turn - calls;
      // One at a time: what an approver is shown may depend on what the calls before it did.
      for (const [i, call] of answer.tool_calls.entries()) {
        const content = i < allowed ? await toolCall(turn, message, call, ++calls) : overToolLimit(turn, call, budget.tool_calls_per_turn);
        conversation.transcript.push({ role: 'tool', tool_call_id: call.id, content });
      }
      if (answer.tool_calls.length > allowed) {
        turn.status = 'tool_limit';
        turn.error = `the model asked for more than the ${budget.tool_calls_per_turn} tool calls a turn may make; the calls beyond them did not run. Send another message to carry on`;
        return;
      }
    }
    turn.status = 'step_limit';
    turn.error = `the model was called ${input.max_steps} times in this turn without giving an answer; send another message to carry on`;
  }

  /** One model call, when the budget allows it: the check comes first, so a refused call is never sent. */
  async function modelStep(message: ConversationMessage, turn: Turn) {
    const budget: ModelBudgetVerdict = budgets
      ? await checkModelBudget({
          grant: input.grant,
          provider: input.provider,
          ...(input.model ? { model: input.model } : {}),
          messages: conversation.transcript,
          spent: { tokens: spentTokens(conversation.usage), usd: conversation.cost_usd ?? 0 },
          ...(callGrants ? { call: { turn: turn.turn, step: turn.steps } } : {}),
        })
      : { refusal: null, estimated_tokens: 0, tool_calls_per_turn: Infinity };
    if (budget.refusal !== null) return { answer: null, budget };
    const answer = await callModel({
      grant: input.grant,
      provider: input.provider,
      ...(input.model ? { model: input.model } : {}),
      message: { text: message.message, grant: message.grant },
      messages: conversation.transcript,
      ...(budget.call_grant ? { call_grant: budget.call_grant } : {}),
    });
    return { answer, budget };
  }

  /** A call past the turn's tool-call limit: it becomes no action, and the model is told why. */
  function overToolLimit(turn: Turn, call: ToolCall, limit: number): string {
    const why = `the turn reached its limit of ${limit} tool calls`;
    turn.actions.push({ tool_call_id: call.id, tool: call.name, action_id: null, status: 'refused', error: why });
    return `this call did not run: ${why}`;
  }

  /** What the model reads as the call's result: the action's outcome, or why the call never became one. */
  async function toolCall(turn: Turn, message: ConversationMessage, call: ToolCall, index: number): Promise<string> {
    const entry: ToolAction = { tool_call_id: call.id, tool: call.name, action_id: null, status: 'preparing', error: null };
    turn.actions.push(entry);
    const prepared = await prepareToolCall({
      grant: input.grant,
      message: { text: message.message, grant: message.grant },
      turn: turn.turn,
      call_index: index,
      call,
      ...(conversation.taint ? { taint: conversation.taint } : {}),
    });
    if (!prepared.ok) {
      entry.status = 'refused';
      entry.error = prepared.reason;
      return `this call did not become an action: ${prepared.reason}`;
    }
    const { action } = prepared.input;
    entry.action_id = action.id;
    entry.status = action.status;
    try {
      const child = await startChild<typeof actionWorkflow>('actionWorkflow', {
        ...actionStartOptions(action),
        args: [prepared.input],
        // Ending the conversation cancels what still waits for approval; a command already running finishes.
        parentClosePolicy: ParentClosePolicy.REQUEST_CANCEL,
      });
      entry.status = 'started';
      const final: ActionRecord = await child.result();
      entry.status = final.status;
      entry.error = final.error;
      const content = toolResultText(final);
      // What the sandbox returned is data: once it looks like instructions, a person looks at every later action.
      if (screenResults && final.result && !conversation.taint) {
        const { verdict, categories } = await screenToolResult({ text: content });
        if (verdict !== 'clean') conversation.taint = { turn: turn.turn, tool_call_id: call.id, tool: call.name, verdict, categories };
      }
      return content;
    } catch (err) {
      if (isCancellation(err)) {
        entry.status = 'cancelled';
        throw err;
      }
      entry.status = 'failed';
      entry.error = failureText(err);
      return `action ${action.id} failed: ${entry.error}`;
    }
  }

  /** Every tool call of the last answer gets a result, so the transcript stays one a model accepts. */
  function answerOpenCalls(why: string): void {
    const { transcript } = conversation;
    let lastAsking = transcript.length - 1;
    while (lastAsking >= 0 && !(transcript[lastAsking]!.role === 'assistant' && 'tool_calls' in transcript[lastAsking]!)) lastAsking--;
    const asking = transcript[lastAsking];
    if (!asking || asking.role !== 'assistant') return;
    const answered = new Set(transcript.slice(lastAsking + 1).flatMap((m) => (m.role === 'tool' ? [m.tool_call_id] : [])));
    for (const call of asking.tool_calls ?? []) {
      if (!answered.has(call.id)) conversation.transcript.push({ role: 'tool', tool_call_id: call.id, content: why });
    }
  }
}
