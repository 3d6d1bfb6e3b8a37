/**
 * The audit log fold behind /metrics: every way an action can end lands in the right status and
 * histogram, with durations taken from the entries' times, and folding is incremental (a second
 * scrape never counts an entry twice).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import type { AuditAppendInput } from '../../domain/audit-entry.js';
import { createAuditMetrics } from '../../api/metrics/audit-metrics.js';
import { Keyring } from '../../domain/keyring.js';

const T0 = Date.parse('2026-11-28T00:00:00.000Z');

function setup() {
  const keyring = Keyring.load({ masterKey: Buffer.from('audit-metrics-TEST-ONLY-master-k').toString('base64'), dataDir: tmpdir() });
  const audit = AuditStore.open(join(mkdtempSync(join(tmpdir(), 'warden-audit-metrics-')), 'audit.db'), {
    keyring,
    isKnownKeyId: () => false,
  });
  const registry = new Registry();
  const fold = createAuditMetrics(registry, audit);
  let n = 0;
  /** An entry `seconds` after T0. */
  const add = (seconds: number, entry: Omit<AuditAppendInput, 'key' | 'at' | 'actor'>) =>
    audit.append({ ...entry, key: `k${++n}`, actor: 'system', at: new Date(T0 + seconds * 1000).toISOString() });
  const submit = async (id: string, at: number, level: string, allowed = true) => {
    await add(at, { kind: 'action.submitted', action_id: id, details: { action_type: 'skill_execution' } });
    await add(at, { kind: 'policy.decided', action_id: id, details: { level, allowed } });
  };
  /** Scrapes: folds new entries, then reads one series (undefined when absent). */
  const value = async (name: string, labels: Record<string, string> = {}) => {
    await fold.catchUp();
    const metrics = await registry.getMetricsAsJSON();
    for (const metric of metrics) {
      for (const v of metric.values as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>) {
        const series = v.metricName ?? metric.name;
        if (
          series === name &&
          Object.entries(labels).every(([k, l]) => String(v.labels[k]) === l) &&
          Object.keys(v.labels).length === Object.keys(labels).length
        )
          return v.value;
      }
    }
    return undefined;
  };
  return { add, submit, value };
}

describe('the audit log fold', () => {
  it('rejected, approved-then-failed, expired, cancelled and denied actions', async () => {
    const { add, submit, value } = setup();
    await submit('a', 0, 'high');
    await add(1, { kind: 'approval.requested', action_id: 'a', details: { required: 1 } });
    await add(11, { kind: 'approval.rejected', action_id: 'a', details: { approvals: 1, required: 1 } });

    await submit('b', 100, 'critical');
    await add(100, { kind: 'approval.requested', action_id: 'b', details: { required: 2 } });
    await add(110, { kind: 'approval.granted', action_id: 'b', details: { approvals: 1, required: 2 } });
    await add(130, { kind: 'approval.granted', action_id: 'b', details: { approvals: 2, required: 2 } });
    await add(131, { kind: 'execution.started', action_id: 'b', details: {} });
    await add(133, { kind: 'execution.failed', action_id: 'b', details: { exit_code: 1, duration_ms: 2500 } });

    await submit('c', 200, 'high');
    await add(200, { kind: 'approval.requested', action_id: 'c', details: { required: 1 } });
    await add(2000, { kind: 'action.expired', action_id: 'c', details: {} });
    await add(2001, { kind: 'approval.refused', action_id: 'c', details: {} }); // after the end: changes nothing

    await submit('d', 300, 'low');
    await add(301, { kind: 'execution.started', action_id: 'd', details: {} });
    await add(305, { kind: 'action.cancelled', action_id: 'd', details: {} });

    await submit('e', 400, 'critical', false);

    const actions = (status: string, level: string) => value('warden_actions', { type: 'skill_execution', status, level });
    expect(await actions('rejected', 'high')).toBe(1);
    expect(await actions('failed', 'critical')).toBe(1);
    expect(await actions('expired', 'high')).toBe(1);
    expect(await actions('cancelled', 'low')).toBe(1);
    expect(await actions('rejected', 'critical')).toBe(1);
    expect(await actions('pending', 'high')).toBe(0); // a and c were pending, then moved on

    expect(await value('warden_approval_wait_seconds_sum', { outcome: 'rejected' })).toBe(10);
    expect(await value('warden_approval_wait_seconds_sum', { outcome: 'approved' })).toBe(30);
    expect(await value('warden_approval_wait_seconds_sum', { outcome: 'expired' })).toBe(1800);
    expect(await value('warden_approval_wait_seconds_count', { outcome: 'approved' })).toBe(1);

    expect(await value('warden_action_duration_seconds_sum', { status: 'rejected' })).toBe(11); // a: 11 s, e: 0 s
    expect(await value('warden_action_duration_seconds_count', { status: 'rejected' })).toBe(2);
    expect(await value('warden_action_duration_seconds_sum', { status: 'failed' })).toBe(33);
    expect(await value('warden_action_duration_seconds_sum', { status: 'expired' })).toBe(1800);
    expect(await value('warden_action_duration_seconds_sum', { status: 'cancelled' })).toBe(5);

    expect(await value('warden_exec_duration_seconds_count')).toBe(1);
    expect(await value('warden_exec_duration_seconds_sum')).toBe(2.5);
  });

  it('folds incrementally: an action seen executing, then completed, is counted once', async () => {
    const { add, submit, value } = setup();
    await submit('x', 0, 'medium');
    await add(1, { kind: 'execution.started', action_id: 'x', details: {} });
    expect(await value('warden_actions', { type: 'skill_execution', status: 'executing', level: 'medium' })).toBe(1);
    await add(3, { kind: 'execution.completed', action_id: 'x', details: { exit_code: 0, duration_ms: 1500 } });
    expect(await value('warden_actions', { type: 'skill_execution', status: 'executing', level: 'medium' })).toBe(0);
    expect(await value('warden_actions', { type: 'skill_execution', status: 'completed', level: 'medium' })).toBe(1);
    expect(await value('warden_exec_duration_seconds_count')).toBe(1);
    expect(await value('warden_action_duration_seconds_count', { status: 'completed' })).toBe(1);
  });

  it('sandbox create latency: created to running, not for an agent that failed to provision', async () => {
    const { add, value } = setup();
    await add(0, { kind: 'agent.created', agent_id: 'agt-1', details: {} });
    await add(0.4, { kind: 'agent.status_changed', agent_id: 'agt-1', details: { from: 'provisioning', to: 'running' } });
    await add(10, { kind: 'agent.created', agent_id: 'agt-2', details: {} });
    await add(15, { kind: 'agent.status_changed', agent_id: 'agt-2', details: { from: 'provisioning', to: 'error' } });
    await add(20, { kind: 'agent.status_changed', agent_id: 'agt-1', details: { from: 'running', to: 'paused' } });
    expect(await value('warden_sandbox_create_seconds_count')).toBe(1);
    expect(await value('warden_sandbox_create_seconds_sum')).toBeCloseTo(0.4, 6);
  });

  it("conversations' model calls: tokens and cost per agent and model, and ended turns by status", async () => {
    const { add, value } = setup();
    const call = (agent: string, model: string, usage: object, cost_usd: number | null) =>
      add(0, { kind: 'model.call', agent_id: agent, details: { conversation_id: 'cnv-1', provider: 'openai', model, usage, cost_usd } });
    await call('agt-1', 'gpt-4o', { input_tokens: 1000, output_tokens: 200, cached_tokens: 400 }, 0.004);
    await call('agt-1', 'gpt-4o', { input_tokens: 500, output_tokens: 100, cached_tokens: 0 }, 0.00225);
    await call('agt-2', 'local-model', { input_tokens: 50, output_tokens: 5, cached_tokens: 0 }, null);
    await add(1, { kind: 'conversation.turn', agent_id: 'agt-1', details: { status: 'over_budget' } });
    const gpt = { agent_id: 'agt-1', provider: 'openai', model: 'gpt-4o' };
    expect(await value('warden_model_calls_total', gpt)).toBe(2);
    expect(await value('warden_model_tokens_total', { ...gpt, type: 'input' })).toBe(1500);
    expect(await value('warden_model_tokens_total', { ...gpt, type: 'cached' })).toBe(400);
    expect(await value('warden_model_tokens_total', { ...gpt, type: 'output' })).toBe(300);
    expect(await value('warden_model_cost_usd_total', gpt)).toBeCloseTo(0.00625, 10);
    expect(await value('warden_model_tokens_total', { agent_id: 'agt-2', provider: 'openai', model: 'local-model', type: 'input' })).toBe(
      50,
    );
    // An unpriced model's calls are counted in tokens and add no cost.
    expect(await value('warden_model_cost_usd_total', { agent_id: 'agt-2', provider: 'openai', model: 'local-model' })).toBeUndefined();
    expect(await value('warden_conversation_turns_total', { agent_id: 'agt-1', status: 'over_budget' })).toBe(1);
    // A second scrape adds nothing.
    expect(await value('warden_model_calls_total', gpt)).toBe(2);
  });
});
