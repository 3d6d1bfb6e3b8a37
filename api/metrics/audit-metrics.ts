/**
 * Metrics derived from the audit log: actions by type, status and level, the latencies of
 * approvals, actions, execs and sandbox creation, and conversations' model calls (tokens and cost
 * per agent and model) and turns. The API folds the log's new entries in at each
 * scrape (oldest first, from the last seq it saw), so the numbers cover every worker, survive
 * restarts of any process, and a test can compare them with what it did. The exec duration is
 * the one the sandbox worker measured (an execution entry's duration_ms); the others are the
 * time between two entries of one action or agent.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { AuditStore } from '../../stores/audit-store.js';
import { SerialQueue } from '../../stores/serial-queue.js';
import type { AuditEntry } from '../../domain/audit-entry.js';

/** An action not yet in a final state, as far as the log has told. */
interface OpenAction {
  type: string;
  level: string;
  status: string;
  submittedAt: number;
  approvalRequestedAt: number | null;
}

const APPROVAL_LEVELS = new Set(['high', 'critical']);

export function createAuditMetrics(registry: Registry, audit: AuditStore) {
  const folding = new SerialQueue();
  const counts = new Map<string, { type: string; status: string; level: string; n: number }>();
  new Gauge({
    name: 'warden_actions',
    help: 'Actions by action type, current status and security level (from the audit log)',
    labelNames: ['type', 'status', 'level'],
    registers: [registry],
    collect() {
      this.reset();
      for (const c of counts.values()) this.set({ type: c.type, status: c.status, level: c.level }, c.n);
    },
  });
  const approvalWait = new Histogram({
    name: 'warden_approval_wait_seconds',
    help: 'From the approval request to the decision: approved, rejected or expired',
    labelNames: ['outcome'],
    buckets: [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 86_400],
    registers: [registry],
  });
  const actionDuration = new Histogram({
    name: 'warden_action_duration_seconds',
    help: 'From submission to the final status (completed, failed, rejected, expired, cancelled)',
    labelNames: ['status'],
    buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 3600],
    registers: [registry],
  });
  const execDuration = new Histogram({
    name: 'warden_exec_duration_seconds',
    help: "An action's command in the sandbox, as the sandbox worker measured it",
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const sandboxCreate = new Histogram({
    name: 'warden_sandbox_create_seconds',
    help: "From an agent's creation to its sandbox running",
    buckets: [0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [registry],
  });

  const poolClaims = new Counter({
    name: 'warden_sandbox_pool_claims_total',
    help: 'New sandboxes by where they came from: hit (a warm pool member was taken), miss (the pool keeps the profile but had none idle), none (no pool keeps it)',
    labelNames: ['outcome'],
    registers: [registry],
  });

  const modelLabels = ['agent_id', 'provider', 'model'];
  const modelCalls = new Counter({
    name: 'warden_model_calls_total',
    help: "Conversations' model calls, by agent and the provider and model that answered",
    labelNames: modelLabels,
    registers: [registry],
  });
  const modelTokens = new Counter({
    name: 'warden_model_tokens_total',
    help: 'Tokens the providers reported, by agent, provider, model and type: input (the whole prompt), cached (the part of it read from cache), output',
    labelNames: [...modelLabels, 'type'],
    registers: [registry],
  });
  const modelCost = new Counter({
    name: 'warden_model_cost_usd_total',
    help: 'What the model calls cost in US dollars, priced by the price table and WARDEN_MODEL_PRICES (unpriced models add nothing)',
    labelNames: modelLabels,
    registers: [registry],
  });
  const conversationTurns = new Counter({
    name: 'warden_conversation_turns_total',
    help: 'Ended conversation turns by agent and status (answered, step_limit, over_budget, tool_limit, cancelled, failed)',
    labelNames: ['agent_id', 'status'],
    registers: [registry],
  });

  const open = new Map<string, OpenAction>();
  const provisioning = new Map<string, number>();
  let seen = 0;

  const count = (a: OpenAction, delta: number) => {
    const key = `${a.type}\u0000${a.status}\u0000${a.level}`;
    const c = counts.get(key) ?? { type: a.type, status: a.status, level: a.level, n: 0 };
    c.n += delta;
    counts.set(key, c);
  };
  const move = (a: OpenAction, status: string) => {
    count(a, -1);
    a.status = status;
    count(a, 1);
  };
  const finish = (id: string, a: OpenAction, status: string, at: number) => {
    move(a, status);
    actionDuration.observe({ status }, at - a.submittedAt);
    open.delete(id);
  };
  const decideApproval = (a: OpenAction, outcome: string, at: number) => {
    if (a.approvalRequestedAt !== null) approvalWait.observe({ outcome }, at - a.approvalRequestedAt);
  };

  function apply(e: AuditEntry) {
    const at = Date.parse(e.at) / 1000;
    const d = e.details;
    if (e.kind === 'agent.created' && e.agent_id) provisioning.set(e.agent_id, at);
    if ((e.kind === 'agent.status_changed' || e.kind === 'agent.stopped') && e.agent_id && d.from === 'provisioning') {
      const created = provisioning.get(e.agent_id);
      if (created !== undefined && d.to === 'running') sandboxCreate.observe(at - created);
      provisioning.delete(e.agent_id);
    }
    if (e.kind === 'agent.status_changed' && d.to === 'running' && typeof d.sandbox_pool === 'string') {
      poolClaims.inc({ outcome: d.sandbox_pool });
    }
    if (e.kind === 'model.call' && e.agent_id) {
      const labels = { agent_id: e.agent_id, provider: String(d.provider), model: String(d.model) };
      const usage = d.usage as { input_tokens: number; output_tokens: number; cached_tokens: number };
      modelCalls.inc(labels);
      modelTokens.inc({ ...labels, type: 'input' }, usage.input_tokens);
      modelTokens.inc({ ...labels, type: 'cached' }, usage.cached_tokens);
      modelTokens.inc({ ...labels, type: 'output' }, usage.output_tokens);
      if (typeof d.cost_usd === 'number') modelCost.inc(labels, d.cost_usd);
    }
    if (e.kind === 'conversation.turn' && e.agent_id) conversationTurns.inc({ agent_id: e.agent_id, status: String(d.status) });
    if (!e.action_id) return;
    const id = e.action_id;
    if (e.kind === 'action.submitted') {
      open.set(id, { type: String(d.action_type), level: 'unknown', status: 'submitted', submittedAt: at, approvalRequestedAt: null });
      return;
    }
    const a = open.get(id);
    if (!a) return; // an entry about an action already final, or submitted before the log began
    switch (e.kind) {
      case 'policy.decided':
        a.level = String(d.level);
        a.status = d.allowed ? (APPROVAL_LEVELS.has(a.level) ? 'pending' : 'approved') : 'rejected';
        count(a, 1);
        if (!d.allowed) {
          actionDuration.observe({ status: 'rejected' }, at - a.submittedAt);
          open.delete(id);
        }
        break;
      case 'approval.requested':
        a.approvalRequestedAt = at;
        break;
      case 'approval.granted':
        if (Number(d.approvals) >= Number(d.required)) {
          move(a, 'approved');
          decideApproval(a, 'approved', at);
        }
        break;
      case 'approval.rejected':
        decideApproval(a, 'rejected', at);
        finish(id, a, 'rejected', at);
        break;
      case 'action.expired':
        decideApproval(a, 'expired', at);
        finish(id, a, 'expired', at);
        break;
      case 'execution.started':
        move(a, 'executing');
        break;
      case 'execution.completed':
      case 'execution.failed':
        if (typeof d.duration_ms === 'number') execDuration.observe(d.duration_ms / 1000);
        finish(id, a, e.kind === 'execution.completed' ? 'completed' : 'failed', at);
        break;
      case 'action.cancelled':
        finish(id, a, 'cancelled', at);
        break;
      case 'action.abandoned':
        finish(id, a, String(d.status), at);
        break;
    }
  }

  /** Folds in the entries written since the last call; scrapes at once each wait for the one before. */
  function catchUp(): Promise<number> {
    return folding.run(() =>
      audit.exportJsonl(
        (line) => {
          const entry = JSON.parse(line) as AuditEntry;
          seen = entry.seq;
          apply(entry);
        },
        { after_seq: seen },
      ),
    );
  }

  return { catchUp };
}
