import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AgentEntity } from '../../workflows/agent-entity.js';
import type { AgentWorkflowInput } from '../../workflows/definitions.js';

const input = (over: Partial<AgentWorkflowInput> = {}): AgentWorkflowInput => ({
  agentId: 'agent-1',
  skillId: 'shell',
  host: 'local',
  image: 'warden-sandbox',
  limits: { cpu_cores: 1, memory_mb: 256, disk_mb: 512, network_enabled: false, max_processes: 64 },
  runtime: 'auto',
  requireSandbox: false,
  idleTtlSeconds: 60,
  stopGraceSeconds: 5,
  createdAt: '2026-01-01T00:00:00.000Z',
  ...over,
});
const running = (over: Partial<AgentWorkflowInput> = {}) => {
  const agent = new AgentEntity(input(over));
  agent.sandboxStarted({ containerId: 'c1', runtime: 'runc', warning: null });
  agent.enter('running');
  return agent;
};

describe('the agent entity', () => {
  beforeEach(() => void vi.useFakeTimers({ now: 0 }));
  afterEach(() => void vi.useRealTimers());

  it('a forced stop upgrades a graceful one, never the reverse', () => {
    const agent = running();
    agent.requestStop(false, 'key-a');
    agent.requestStop(true, 'key-b');
    agent.requestStop(false, 'key-c');
    expect(agent.stopRequest).toEqual({ force: true });
    expect(agent.requestedBy).toBe('key-c');
  });

  it('stops when idle for its TTL, later while an action runs in it', () => {
    const agent = running();
    expect(agent.idleWaitMs()).toBe(60_000);
    agent.actionBusy({ action_id: 'a1', busy_ms: 120_000, secrets: ['TOKEN'] });
    expect(agent.takeRearm()).toBe(true);
    expect(agent.takeRearm()).toBe(false);
    expect(agent.quiet()).toBe(false);
    vi.setSystemTime(61_000);
    expect(agent.stopIfIdle()).toBe(false);
    agent.actionBusy({ action_id: 'a1', busy_ms: 0 });
    expect(agent.quiet()).toBe(true);
    vi.setSystemTime(122_000);
    expect(agent.stopIfIdle()).toBe(true);
    expect(agent.stopRequest).toEqual({ force: false });
    expect(agent.requestedBy).toBe('system (idle timeout)');
    expect([...agent.secretsUsed]).toEqual(['TOKEN']);
  });

  it('accepts a lost container only while running or paused and not stopping', () => {
    const agent = running();
    expect(agent.containerLost('gone', null)).toEqual({ accepted: true, status: 'running' });
    expect(agent.lossReason(agent.exited!)).toBe('gone');
    expect(agent.containerLost('again', 1)).toEqual({ accepted: false, status: 'running' });
    const stopping = running();
    stopping.requestStop(false);
    expect(stopping.containerLost('gone', null).accepted).toBe(false);
  });

  it('restarts a lost sandbox under on-failure until its restarts are used', () => {
    const agent = running({ restartPolicy: 'on-failure', maxRestarts: 1 });
    const exit = { exitCode: 137, oomKilled: false, vanished: false };
    const reason = agent.lossReason(exit);
    expect(reason).toMatch(/killed outside Warden/);
    expect(agent.restartRefusal(reason)).toBeNull();
    expect(agent.beginRestart(exit, reason)).toBe(`${reason}; re-provisioning (restart 1 of 1)`);
    expect(agent.restartBackoffMs()).toBe(1000);
    expect(agent.restartRefusal(reason)).toBe(`${reason}; not re-provisioned: all 1 restarts used`);
    expect(running().restartRefusal(reason)).toBe(reason);
  });

  it('keeps away from a container by its name that is not its own, and from none it never made', () => {
    const agent = running();
    agent.failed('NameConflict: a container named x exists', true);
    expect(agent.ownsContainer).toBe(false);
    const refused = new AgentEntity(input());
    refused.refusedByLockdown = true;
    refused.failed('Lockdown: Warden is in lockdown', false);
    expect(refused.ownsContainer).toBe(false);
    expect(refused.record.error_message).toBe('Lockdown: Warden is in lockdown');
  });
});
