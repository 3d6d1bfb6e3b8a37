/**
 * The Conversations pages: the conversations the signed-in key may read (its own; an admin's:
 * everyone's), a form to start one, and each conversation's transcript (the messages, the model's
 * text, each tool call with its parameters, its action's approval state and its result), with a
 * message box and Cancel turn / End for its owner or an admin. Everything goes through the API's
 * own conversation service and role checks. While the conversation can change, the page follows
 * its event stream (the API's own, behind the session): the model's text as it is generated, and
 * a fetch of the transcript on every other event; without the stream, the transcript is fetched
 * on a timer.
 */
import { Hono } from 'hono';
import type { Child } from 'hono/jsx';
import type { ActionRecord } from '../../domain/action.js';
import { operationOfTool, type Conversation, type ConversationSummary, type ToolAction } from '../../domain/conversation.js';
import { WardenError } from '../../domain/errors.js';
import type { ChatMessage, ToolCall } from '../../domain/llm.js';
import { hasRole } from '../../domain/roles.js';
import { SKILLS } from '../../skills/index.js';
import type { ActionService } from '../actions/service.js';
import type { AgentService } from '../agents/service.js';
import type { ConversationEvents } from '../conversations/events.js';
import { ConversationIdSchema, MessageSchema, NewConversationSchema } from '../conversations/routes.js';
import type { ConversationService } from '../conversations/service.js';
import { requireRole } from '../middleware/auth.js';
import { Badge, CsrfField, Empty, Problem, Table, Time, WorkflowLink } from './layout.js';
import { problem, renderPage, respond, type ConsoleLinks } from './render.js';
import { CONSOLE_PATH, type ConsoleEnv, type ConsoleSessions } from './sessions.js';

/** How often a conversation that has not ended is fetched again while its event stream is not open. */
const REFRESH = 'every 2s';
/** Where a failed refresh says so: inside what a refresh replaces, so the next one that succeeds takes it away. */
const REFRESH_NOTICE = 'conversation-refresh-notice';
/** Statuses after which a tool call's action changes no more (refused: it never became one). */
const SETTLED = new Set(['completed', 'failed', 'rejected', 'expired', 'cancelled', 'refused']);

const operator = requireRole('operator');

export function conversationsRouter(deps: {
  conversations: ConversationService;
  events: ConversationEvents;
  sessions: Pick<ConsoleSessions, 'find'>;
  agents: AgentService;
  actions: ActionService;
  links: ConsoleLinks;
}) {
  const { conversations, events, sessions, agents, actions, links } = deps;
  const app = new Hono<ConsoleEnv>();

  app.get('/conversations', async (c) => {
    const identity = c.get('identity');
    if (!hasRole(identity.role, 'operator'))
      return renderPage(
        c,
        'conversations',
        'Conversations',
        <Empty>Conversations are their owners' (operators and up) and admins' to read; you are {identity.role}.</Empty>,
      );
    const [listed, startable] = await Promise.all([
      conversations.listConversations(identity, { limit: 100 }).catch(problem),
      agents.listAgents({ limit: 200 }).catch(problem),
    ]);
    return renderPage(
      c,
      'conversations',
      'Conversations',
      <>
        <p class="lede">
          Talk with a model about an agent's work. Every tool call it makes is an action of yours: judged by the policy, and held for
          someone else's approval where its level asks.
        </p>
        {startable instanceof WardenError ? (
          <Problem>Could not list the agents to start a conversation with: {startable.message}</Problem>
        ) : (
          <NewConversation
            agentIds={startable.filter((a) => a.workflow_status === 'RUNNING' && a.status !== 'error').map((a) => a.id)}
            csrfToken={c.get('session').csrfToken}
          />
        )}
        <h2>{hasRole(identity.role, 'admin') ? 'Every conversation' : 'Your conversations'}</h2>
        <ConversationList listed={listed} links={links} />
      </>,
    );
  });

  app.post('/conversations', operator, async (c) => {
    const form = await c.req.parseBody();
    try {
      const request = NewConversationSchema.safeParse({ agent_id: form.agent_id });
      if (!request.success) throw new WardenError('invalid_request', 'choose an agent', 400);
      const started = await conversations.createConversation(request.data, c.get('identity'));
      return c.redirect(`${CONSOLE_PATH}/conversations/${started.id}`, 303);
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      return respond(c, 'conversations', 'New conversation', <Problem>Not started: {err.message}</Problem>);
    }
  });

  app.get('/conversations/:id', operator, async (c) => {
    const conversation = await conversations.getConversation(conversationId(c.req.param('id')), c.get('identity'));
    const { csrfToken } = c.get('session');
    return renderPage(
      c,
      'conversations',
      `Conversation ${conversation.id}`,
      <>
        <p>
          With agent <a href={`${CONSOLE_PATH}/agents/${conversation.agent_id}`}>{conversation.agent_id}</a>, owned by{' '}
          {conversation.owner.name} · <WorkflowLink ui={links.temporalUi} namespace={links.namespace} workflowId={conversation.id} />
        </p>
        <div id="conversation-notice" aria-live="polite"></div>
        <Live conversation={conversation} actions={await unsettledActions(actions, conversation)} csrfToken={csrfToken} />
        <SendArea conversation={conversation} csrfToken={csrfToken} />
      </>,
    );
  });

  app.get('/conversations/:id/live', operator, async (c) => {
    const conversation = await conversations.getConversation(conversationId(c.req.param('id')), c.get('identity')).catch(problem);
    if (conversation instanceof WardenError) {
      // The transcript shown stays, and so does its refreshing: a worker that is back answers the next one.
      c.header('hx-reswap', 'none');
      return c.html(
        <div id={REFRESH_NOTICE} hx-swap-oob="true">
          <Problem>Could not refresh the conversation: {conversation.message}</Problem>
        </div>,
      );
    }
    const { csrfToken } = c.get('session');
    return c.html(
      <>
        <Live conversation={conversation} actions={await unsettledActions(actions, conversation)} csrfToken={csrfToken} />
        {/* Once it has ended, the message box goes too. */}
        {conversation.status === 'ended' && <SendArea conversation={conversation} csrfToken={csrfToken} outOfBand />}
      </>,
    );
  });

  // The API's stream of the conversation's events, for the session's key (its places count against the key's),
  // ended with the session or when the session's key no longer holds the role.
  app.get('/conversations/:id/events', operator, async (c) => {
    const { id: sessionId } = c.get('session');
    const stillAllowed = async () => {
      const session = await sessions.find(sessionId);
      return session !== null && hasRole(session.identity.role, 'operator');
    };
    return events.open(c, conversationId(c.req.param('id')), c.get('identity'), c.req.header('last-event-id'), stillAllowed);
  });

  app.post('/conversations/:id/messages', operator, async (c) => {
    const id = conversationId(c.req.param('id'));
    const form = await c.req.parseBody();
    const text = typeof form.message === 'string' ? form.message : '';
    let notice;
    try {
      const message = MessageSchema.safeParse(text.trim());
      if (!message.success) throw new WardenError('invalid_request', message.error.issues.map((i) => i.message).join('; '), 400);
      const turn = await conversations.sendMessage(id, message.data, c.get('identity'), 0);
      // Sent: the box is emptied for the next message; the transcript shows the turn as it runs.
      return respond(
        c,
        'conversations',
        `Conversation ${id}`,
        <MessageForm id={id} csrfToken={c.get('session').csrfToken} notice={<p role="status">Sent: turn {turn.turn} is running.</p>} />,
      );
    } catch (err) {
      if (!(err instanceof WardenError)) throw err;
      notice = <Problem>Not sent: {err.message}</Problem>;
    }
    return respond(
      c,
      'conversations',
      `Conversation ${id}`,
      <MessageForm id={id} csrfToken={c.get('session').csrfToken} notice={notice} kept={text} />,
    );
  });

  for (const what of ['cancel', 'end'] as const) {
    app.post(`/conversations/:id/${what}`, operator, async (c) => {
      const id = conversationId(c.req.param('id'));
      let notice;
      try {
        await conversations.stop(id, what, c.get('identity'));
        notice = (
          <p class="verdict" role="status">
            {what === 'cancel' ? 'Cancelling the running turn' : 'Ending the conversation'}: its actions awaiting approval are cancelled.
          </p>
        );
      } catch (err) {
        if (!(err instanceof WardenError)) throw err;
        notice = <Problem>Not done: {err.message}</Problem>;
      }
      return respond(c, 'conversations', `Conversation ${id}`, notice);
    });
  }
  return app;
}

function conversationId(id: string): string {
  if (!ConversationIdSchema.safeParse(id).success) throw new WardenError('not_found', `conversation ${id} not found`, 404);
  return id;
}

/** The actions of tool calls still in flight, fetched for their approval state; a settled call's entry says enough. */
async function unsettledActions(actions: ActionService, conversation: Conversation): Promise<Map<string, ActionRecord>> {
  const ids = conversation.turns.flatMap((t) => t.actions).flatMap((a) => (a.action_id && !SETTLED.has(a.status) ? [a.action_id] : []));
  const records = await Promise.all(ids.map((id) => actions.getAction(id).catch(() => null)));
  return new Map(records.flatMap((r) => (r ? [[r.id, r] as const] : [])));
}

/** A list of conversations, as the Conversations page and an agent's page show them. */
export function ConversationList(props: { listed: ConversationSummary[] | WardenError; links: ConsoleLinks; withAgent?: boolean }) {
  const { listed, links } = props;
  if (listed instanceof WardenError) return <Problem>Could not list the conversations: {listed.message}</Problem>;
  if (listed.length === 0) return <Empty>No conversations yet.</Empty>;
  return (
    <Table headings={['Conversation', ...(props.withAgent === false ? [] : ['Agent']), 'Owner', 'State', 'Last activity', 'Workflow']}>
      {listed.map((conversation) => (
        <tr>
          <td>
            <a href={`${CONSOLE_PATH}/conversations/${conversation.id}`}>{conversation.id}</a>
          </td>
          {props.withAgent !== false && (
            <td>{conversation.agent_id ? <a href={`${CONSOLE_PATH}/agents/${conversation.agent_id}`}>{conversation.agent_id}</a> : '—'}</td>
          )}
          <td>{conversation.owner?.name ?? <span class="muted">unknown</span>}</td>
          <td>
            <Badge value={conversation.status} />
            {conversation.turns !== null && (
              <span class="muted">
                {' '}
                {conversation.turns} {conversation.turns === 1 ? 'turn' : 'turns'}
              </span>
            )}
          </td>
          <td>
            <Time at={conversation.last_activity_at} />
          </td>
          <td>
            <WorkflowLink ui={links.temporalUi} namespace={links.namespace} workflowId={conversation.id} />
          </td>
        </tr>
      ))}
    </Table>
  );
}

function NewConversation(props: { agentIds: string[]; csrfToken: string }) {
  if (props.agentIds.length === 0) return <Empty>No agent is running: start one to talk with it.</Empty>;
  return (
    <form class="controls" method="post" action={`${CONSOLE_PATH}/conversations`}>
      <CsrfField token={props.csrfToken} />
      <label for="new-agent">Agent</label>
      <select id="new-agent" name="agent_id" required>
        {props.agentIds.map((id) => (
          <option value={id}>{id}</option>
        ))}
      </select>
      <button type="submit">New conversation</button>
    </form>
  );
}

/** What changes while the conversation runs: its state, the transcript, Cancel turn and End. Fetched again until it has ended. */
function Live(props: { conversation: Conversation; actions: Map<string, ActionRecord>; csrfToken: string }) {
  const { conversation } = props;
  const path = `${CONSOLE_PATH}/conversations/${conversation.id}`;
  const following =
    conversation.status === 'ended'
      ? {}
      : { 'hx-get': `${path}/live`, 'hx-trigger': REFRESH, 'hx-swap': 'outerHTML', 'data-events': `${path}/events` };
  const { input_tokens, output_tokens, cached_tokens } = conversation.usage;
  const post = (what: string) => ({
    method: 'post' as const,
    action: `${path}/${what}`,
    'hx-post': `${path}/${what}`,
    'hx-target': '#conversation-notice',
    'hx-swap': 'innerHTML',
  });
  return (
    <section id="conversation-live" {...following}>
      <div id={REFRESH_NOTICE} aria-live="polite"></div>
      <dl class="facts">
        <dt>State</dt>
        <dd>
          <Badge value={conversation.status} /> {conversation.turns.length} {conversation.turns.length === 1 ? 'turn' : 'turns'} · started{' '}
          <Time at={conversation.created_at} />
        </dd>
        <dt>Model</dt>
        <dd>
          {conversation.model ?? 'default model'} of {conversation.provider}
        </dd>
        <dt>Tokens</dt>
        <dd>
          {input_tokens} in, {output_tokens} out, {cached_tokens} cached
        </dd>
        <dt>Cost</dt>
        <dd>${(conversation.cost_usd ?? 0).toFixed(4)}</dd>
        {conversation.taint && (
          <>
            <dt>Flagged content</dt>
            <dd class="problem-text">
              A tool result in turn {conversation.taint.turn} ({conversation.taint.tool}) looked like instructions: every later action waits
              for a person.
            </dd>
          </>
        )}
      </dl>
      <Transcript conversation={conversation} actions={props.actions} />
      {conversation.status !== 'ended' && (
        <div class="controls">
          {conversation.status === 'running' && (
            <form {...post('cancel')}>
              <CsrfField token={props.csrfToken} />
              <button type="submit">Cancel turn</button>
            </form>
          )}
          <form {...post('end')}>
            <CsrfField token={props.csrfToken} />
            <button type="submit" class="reject">
              End conversation
            </button>
          </form>
        </div>
      )}
    </section>
  );
}

/**
 * Each turn: the message sent, then what the model said and the tool calls it made, in order.
 * A turn's part of the transcript starts at its message (a message the model worker refused is not
 * in the transcript, and a turn just accepted has not reached it yet).
 */
function Transcript(props: { conversation: Conversation; actions: Map<string, ActionRecord> }) {
  const { conversation } = props;
  if (conversation.turns.length === 0) return <Empty>No messages yet. Send the first one below.</Empty>;
  const { transcript } = conversation;
  let cursor = 0;
  return (
    <ol class="transcript">
      {conversation.turns.map((turn) => {
        const start = transcript.findIndex((m, i) => i >= cursor && m.role === 'user' && m.content === turn.message);
        let said: ChatMessage[] = [];
        if (start >= 0) {
          const next = transcript.findIndex((m, i) => i > start && m.role === 'user');
          const end = next < 0 ? transcript.length : next;
          said = transcript.slice(start + 1, end);
          cursor = end;
        }
        const results = new Map(said.flatMap((m) => (m.role === 'tool' ? [[m.tool_call_id, m.content] as const] : [])));
        return (
          <li class="turn" id={`turn-${turn.turn}`}>
            <div class="said user">
              <p class="speaker">
                {conversation.owner.name} · turn {turn.turn} · <Time at={turn.started_at} />
              </p>
              <p class="text">{turn.message}</p>
            </div>
            {said.map((m) =>
              m.role === 'assistant' ? (
                <div class="said model">
                  {m.content && (
                    <>
                      <p class="speaker">model</p>
                      <p class="text">{m.content}</p>
                    </>
                  )}
                  {(m.tool_calls ?? []).map((call) => (
                    <ToolCallCard
                      call={call}
                      entry={turn.actions.find((a) => a.tool_call_id === call.id)}
                      actions={props.actions}
                      result={results.get(call.id)}
                    />
                  ))}
                </div>
              ) : null,
            )}
            {turn.status === 'running' && (
              // Where console.js writes the model's text as its event stream brings it, until the transcript holds the whole.
              <div class="said model answer-so-far" data-answer-turn={String(turn.turn)} hidden>
                <p class="speaker">model, writing</p>
                <p class="text"></p>
              </div>
            )}
            <p class="turn-state">
              <Badge value={turn.status} /> {turn.steps} model {turn.steps === 1 ? 'call' : 'calls'}
              {turn.error && <span class="problem-text"> {turn.error}</span>}
            </p>
          </li>
        );
      })}
    </ol>
  );
}

/** A tool call: the skill and operation, the exact parameters, its action's approval state, and its result. */
function ToolCallCard(props: { call: ToolCall; entry: ToolAction | undefined; actions: Map<string, ActionRecord>; result?: string }) {
  const { call, entry } = props;
  const action = entry?.action_id ? props.actions.get(entry.action_id) : undefined;
  const status = action?.status ?? entry?.status ?? 'preparing';
  return (
    <article class="card tool-call" id={`call-${call.id}`}>
      <p>
        <code>{skillOperationOf(call.name)}</code> <Badge value={status} />{' '}
        {entry?.action_id && (
          <>
            action <a href={`${CONSOLE_PATH}/actions/${entry.action_id}`}>{entry.action_id}</a>
          </>
        )}
      </p>
      <pre class="params" aria-label="Parameters">
        {JSON.stringify(call.arguments, null, 2)}
      </pre>
      {action?.status === 'pending' && (
        <p class="approval">
          Awaiting approval ({action.security_level}): {action.approvals.filter((a) => a.approved).length} of {action.approvals_required} ·{' '}
          <a href={`${CONSOLE_PATH}/actions/${action.id}`}>decide on its page</a>
        </p>
      )}
      {action && action.approvals.length > 0 && action.status !== 'pending' && (
        <p class="muted">Approved by {action.approvals.map((a) => a.approver.name).join(', ')}</p>
      )}
      {entry?.status === 'refused' && <p class="problem-text">Not an action: {entry.error}</p>}
      {props.result !== undefined && (
        <pre class="output" aria-label="Result">
          {props.result}
        </pre>
      )}
    </article>
  );
}

/** "shell.exec" for the tool shell_exec: the skill and operation it names. */
function skillOperationOf(tool: string): string {
  for (const skill of Object.values(SKILLS)) {
    const operation = operationOfTool(skill.id, Object.keys(skill.operations), tool);
    if (operation) return `${skill.id}.${operation}`;
  }
  return tool;
}

function SendArea(props: { conversation: Conversation; csrfToken: string; outOfBand?: boolean }) {
  const { conversation } = props;
  return (
    <div id="send-area" {...(props.outOfBand ? { 'hx-swap-oob': 'true' } : {})}>
      {conversation.status === 'ended' ? (
        <p class="muted">This conversation has ended; start a new one from the Conversations page.</p>
      ) : (
        <MessageForm id={conversation.id} csrfToken={props.csrfToken} />
      )}
    </div>
  );
}

/** The message box; sent, it comes back empty (refused, with the text kept) and says what happened. */
function MessageForm(props: { id: string; csrfToken: string; notice?: Child; kept?: string }) {
  const path = `${CONSOLE_PATH}/conversations/${props.id}/messages`;
  return (
    <form class="send" id="send-message" method="post" action={path} hx-post={path} hx-swap="outerHTML">
      <CsrfField token={props.csrfToken} />
      <label for="message">Message</label>
      <textarea id="message" name="message" rows={3} maxlength={32000} required>
        {props.kept ?? ''}
      </textarea>
      <button type="submit">Send</button>
      {props.notice}
    </form>
  );
}
