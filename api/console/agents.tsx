/**
 * The Agents pages: the list (status, runtime, limits and live usage, refreshed on their own) and
 * each agent's detail with its actions and audit trail; pause, resume and stop for operators,
 * through the API's own agent service.
 */
import { Hono } from 'hono';
import { AgentIdSchema, type AgentRecord } from '../../domain/agent.js';
import type { AuditEntry } from '../../domain/audit-entry.js';
import { WardenError } from '../../domain/errors.js';
import { hasRole, type Identity } from '../../domain/roles.js';
import type { AuditStore } from '../../stores/audit-store.js';
import type { KeyStore } from '../../stores/key-store.js';
import type { AgentService } from '../agents/service.js';
import type { AgentStats } from '../agents/stats.js';
import type { UsageSummary } from '../../sandbox/container-usage.js';
import type { ConversationService } from '../conversations/service.js';
import { requireRole } from '../middleware/auth.js';
import { AuditTable, keyNames } from './audit.js';
import { ConversationList } from './conversations.js';
import { Badge, CsrfField, Empty, Problem, Table, Time, WorkflowLink } from './layout.js';
import { problem, renderPage, respond, type ConsoleLinks } from './render.js';
import { CONSOLE_PATH, type ConsoleEnv } from './sessions.js';

const MiB = 1024 * 1024;

export function agentsRouter(deps: {
  agents: AgentService;
  stats: AgentStats;
  audit: AuditStore;
  keys: KeyStore;
  conversations: ConversationService;
  links: ConsoleLinks;
}) {
  const { agents, stats, audit, keys, conversations, links } = deps;
  const app = new Hono<ConsoleEnv>();

  app.get('/agents', async (c) => {
    const listed = await agents.listAgents({ limit: 200 }).catch(problem);
    return renderPage(
      c,
      'agents',
      'Agents',
      listed instanceof WardenError ? (
        <Problem>Could not list the agents: {listed.message}</Problem>
      ) : listed.length === 0 ? (
        <Empty>No agents yet. Create one with POST /api/agents or the warden CLI.</Empty>
      ) : (
        <Table headings={['Agent', 'Status', 'Skill', 'Runtime', 'Limits and usage', 'Created', 'Workflow']}>
          {listed.map((agent) => (
            <tr>
              <td>
                <a href={`${CONSOLE_PATH}/agents/${agent.id}`}>{agent.id}</a>
              </td>
              <td>
                <Badge value={agent.status} />
              </td>
              <td>{agent.skill_id}</td>
              <td>{agent.sandbox_runtime ?? '—'}</td>
              <td
                hx-get={`${CONSOLE_PATH}/agents/${agent.id}/usage`}
                hx-trigger={agent.workflow_status === 'RUNNING' ? 'load, every 5s' : 'load'}
                hx-swap="innerHTML"
              >
                <span class="muted">…</span>
              </td>
              <td>
                <Time at={agent.created_at} />
              </td>
              <td>
                <WorkflowLink ui={links.temporalUi} namespace={links.namespace} workflowId={agent.id} />
              </td>
            </tr>
          ))}
        </Table>
      ),
    );
  });

  app.get('/agents/:id/usage', async (c) => {
    const agent = await agents.getAgent(agentId(c.req.param('id')));
    return c.html(<LimitsAndUsage agent={agent} usage={await stats.usageSummary(agent)} />);
  });

  app.get('/agents/:id', async (c) => {
    const agent = await agents.getAgent(agentId(c.req.param('id')));
    const trail = await audit.list({ agent_id: agent.id, limit: 100 });
    const identity = c.get('identity');
    return renderPage(
      c,
      'agents',
      `Agent ${agent.id}`,
      <>
        <p>
          <WorkflowLink ui={links.temporalUi} namespace={links.namespace} workflowId={agent.id} />
        </p>
        <section id="agent-state" hx-get={`${CONSOLE_PATH}/agents/${agent.id}/state`} hx-trigger="every 3s" hx-swap="innerHTML">
          <AgentState agent={agent} usage={await stats.usageSummary(agent)} />
        </section>
        <div id="agent-message" aria-live="polite"></div>
        <Controls agent={agent} identity={identity} csrfToken={c.get('session').csrfToken} />
        <h2>Conversations</h2>
        {hasRole(identity.role, 'operator') ? (
          <ConversationList
            listed={await conversations.listConversations(identity, { agent_id: agent.id, limit: 50 }).catch(problem)}
            links={links}
            withAgent={false}
          />
        ) : (
          <p class="muted">Conversations are read by their owner (operators and up) or an admin; what the agent did is its actions.</p>
        )}
        <h2>Actions</h2>
        <ActionList entries={trail.filter((e) => e.kind === 'action.submitted')} links={links} />
        <h2>Audit trail</h2>
        <AuditTable entries={trail} nameOf={await keyNames(keys)} />
      </>,
    );
  });

  app.get('/agents/:id/state', async (c) => {
    const agent = await agents.getAgent(agentId(c.req.param('id')));
    return c.html(<AgentState agent={agent} usage={await stats.usageSummary(agent)} />);
  });

  for (const what of ['pause', 'resume', 'stop'] as const) {
    app.post(`/agents/:id/${what}`, requireRole('operator'), async (c) => {
      const id = agentId(c.req.param('id'));
      const force = what === 'stop' && (await c.req.parseBody()).force === 'on';
      let message;
      try {
        const before = await agents.signalAgent(id, what, force, c.get('identity'));
        message = (
          <p class="verdict" role="status">
            {what === 'stop' ? (force ? 'Force stop' : 'Stop') : what === 'pause' ? 'Pause' : 'Resume'} sent to {id} (it was {before.status}
            ).
          </p>
        );
      } catch (err) {
        if (!(err instanceof WardenError)) throw err;
        message = <Problem>Not done: {err.message}</Problem>;
      }
      return respond(c, 'agents', `Agent ${id}`, message);
    });
  }
  return app;
}

function agentId(id: string): string {
  if (!AgentIdSchema.safeParse(id).success) throw new WardenError('not_found', `there is no agent ${id}`, 404);
  return id;
}

function AgentState(props: { agent: AgentRecord; usage: UsageSummary | null }) {
  const { agent } = props;
  return (
    <dl class="facts">
      <dt>Status</dt>
      <dd>
        <Badge value={agent.status} />
        {agent.error_message && <span class="problem-text"> {agent.error_message}</span>}
      </dd>
      <dt>Skill</dt>
      <dd>{agent.skill_id}</dd>
      <dt>Runtime</dt>
      <dd>
        {agent.sandbox_runtime ?? '—'} on host {agent.host}
        {agent.sandbox_warning && <span class="muted"> ({agent.sandbox_warning})</span>}
      </dd>
      <dt>Limits and usage</dt>
      <dd>
        <LimitsAndUsage agent={agent} usage={props.usage} />
      </dd>
      <dt>Created</dt>
      <dd>
        <Time at={agent.created_at} />
      </dd>
      <dt>Started</dt>
      <dd>
        <Time at={agent.started_at} />
      </dd>
      <dt>Stopped</dt>
      <dd>
        <Time at={agent.stopped_at} />
        {agent.exit_code !== null && <> (exit code {agent.exit_code})</>}
      </dd>
      <dt>Restarts</dt>
      <dd>
        {agent.restarts} of {agent.max_restarts} ({agent.restart_policy}); idle after {agent.idle_ttl_seconds} s
      </dd>
    </dl>
  );
}

function LimitsAndUsage(props: { agent: AgentRecord; usage: UsageSummary | null }) {
  const limits = props.agent.resource_limits;
  const { usage } = props;
  return (
    <span class="usage">
      {limits.cpu_cores} CPU, {limits.memory_mb} MiB, {limits.disk_mb} MiB disk, {limits.max_processes} processes, network{' '}
      {limits.network_enabled ? 'on' : 'off'}
      {usage && (
        <>
          <br />
          using {Math.round(usage.memory_bytes / MiB)} of {Math.round(usage.memory_limit_bytes / MiB)} MiB, {usage.cpu_seconds.toFixed(1)}{' '}
          CPU s, {usage.pids} tasks, up {Math.round(usage.uptime_seconds)} s
        </>
      )}
    </span>
  );
}

function Controls(props: { agent: AgentRecord; identity: Identity; csrfToken: string }) {
  const { agent } = props;
  if (!hasRole(props.identity.role, 'operator')) return <p class="muted">Pausing, resuming and stopping need the operator role.</p>;
  if (agent.status === 'stopped' || agent.status === 'error') return null;
  const post = (what: string) => ({
    method: 'post' as const,
    action: `${CONSOLE_PATH}/agents/${agent.id}/${what}`,
    'hx-post': `${CONSOLE_PATH}/agents/${agent.id}/${what}`,
    'hx-target': '#agent-message',
    'hx-swap': 'innerHTML',
  });
  return (
    <div class="controls">
      <form {...post('pause')}>
        <CsrfField token={props.csrfToken} />
        <button type="submit">Pause</button>
      </form>
      <form {...post('resume')}>
        <CsrfField token={props.csrfToken} />
        <button type="submit">Resume</button>
      </form>
      <form {...post('stop')}>
        <CsrfField token={props.csrfToken} />
        <label>
          <input type="checkbox" name="force" /> force (SIGKILL at once)
        </label>{' '}
        <button type="submit" class="reject">
          Stop
        </button>
      </form>
    </div>
  );
}

function ActionList(props: { entries: AuditEntry[]; links: ConsoleLinks }) {
  if (props.entries.length === 0) return <Empty>No actions yet.</Empty>;
  return (
    <ul class="actions">
      {props.entries.map((e) => (
        <li>
          <a href={`${CONSOLE_PATH}/actions/${e.action_id}`}>{e.action_id}</a>{' '}
          <span class="muted">
            {String(e.details.skill_id)}.{String(e.details.operation)}
          </span>{' '}
          <Time at={e.at} /> · <WorkflowLink ui={props.links.temporalUi} namespace={props.links.namespace} workflowId={e.action_id ?? ''} />
        </li>
      ))}
    </ul>
  );
}
