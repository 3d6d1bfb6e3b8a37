import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activityEnv,
  containersOf,
  docker,
  recordHistory,
  startStack,
  TEST_HOST,
  uniqueId,
  waitFor,
  waitForStatus,
} from '../support/helpers.js';
import { agentStatusQuery, execUpdate } from '../../workflows/definitions.js';
import type { AgentRecord, ExecResult } from '../../domain/agent.js';
import { createSandboxActivities } from '../../activities/sandbox.js';

/** Runs a command in the agent's sandbox through the exec activity (commands reach agents only as actions). */
function runIn(agentId: string, command: string[]): Promise<ExecResult> {
  return activityEnv().run(createSandboxActivities(docker).execInSandbox, { agentId, command, timeout_ms: 5000, max_output_bytes: 1000 });
}

let stack: Awaited<ReturnType<typeof startStack>>;
beforeAll(async () => {
  stack = await startStack();
});
// WARDEN_RECORD_HISTORIES=1 saves each test's agent history for the replay test (test/histories/).
const recorded = new Map<string, string>();

/** A filesystem action (low or medium risk: it runs at once), answered when it is done. */
const files = (agentId: string, operation: string, parameters: Record<string, unknown>) =>
  stack.api('POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'filesystem',
    operation,
    agent_id: agentId,
    parameters,
    wait_seconds: 30,
  });
afterAll(async () => {
  for (const [name, id] of recorded) await recordHistory(name, id);
  await stack?.stop();
});

describe('agent lifecycle', () => {
  it('creates, pauses, resumes and stops an agent, removing its container', async () => {
    const id = uniqueId('life');
    recorded.set('lifecycle', id);
    const created = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, resource_limits: { memory_mb: 128 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ id, status: 'provisioning', skill_id: 'shell', host: TEST_HOST });
    // The workspace is a tmpfs counted in memory_mb: absent, it is what 128 MiB has room for.
    expect(created.body.resource_limits).toEqual({
      cpu_cores: 1,
      memory_mb: 128,
      disk_mb: 100,
      network_enabled: false,
      max_processes: 128,
    });

    const running = await waitForStatus(stack.api, id, ['running']);
    expect(running.container_id).toMatch(/^[0-9a-f]{64}$/);
    expect(['runsc', 'kata', 'runc']).toContain(running.sandbox_runtime);
    expect(running.started_at).not.toBeNull();
    const inspect = await docker.getContainer(running.container_id!).inspect();
    expect(inspect.State.Running).toBe(true);

    expect((await stack.api('POST', `/api/agents/${id}/pause`)).status).toBe(202);
    await waitForStatus(stack.api, id, ['paused']);
    expect((await docker.getContainer(running.container_id!).inspect()).State.Paused).toBe(true);

    // The agent's own exec door is gone: commands run only as actions.
    const handle = stack.client.workflow.getHandle(id);
    await expect(
      handle.executeUpdate(execUpdate, { args: [{ command: ['true'], timeout_ms: 5000, max_output_bytes: 100 }] }),
    ).rejects.toMatchObject({
      cause: { message: expect.stringMatching(/No registered handler for update: exec/) },
    });

    // Actions are refused while paused, with the reason.
    const paused = await files(id, 'write', { path: 'note', content: 'hi' });
    expect(paused.body).toMatchObject({ status: 'failed', error: expect.stringMatching(/is paused; actions run only in a running agent/) });

    expect((await stack.api('POST', `/api/agents/${id}/resume`)).status).toBe(202);
    await waitForStatus(stack.api, id, ['running']);
    expect((await files(id, 'write', { path: 'note', content: 'hi' })).body).toMatchObject({
      status: 'completed',
      result: { exit_code: 0 },
    });
    expect((await files(id, 'read', { path: 'note' })).body).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: 'hi' } });
    // Each command runs as a uid of its own, in the sandbox group (10001).
    const echo = await runIn(id, ['sh', '-c', 'echo hi; id -g; id -u']);
    expect(echo).toMatchObject({
      exit_code: 0,
      stdout: expect.stringMatching(/^hi\n10001\n\d{7,10}\n$/),
      timed_out: false,
      oom_killed: false,
    });

    expect((await stack.api('POST', `/api/agents/${id}/stop`, { force: false })).status).toBe(202);
    const stopped = await waitForStatus(stack.api, id, ['stopped']);
    expect(stopped.stopped_at).not.toBeNull();
    expect(stopped.exit_code).toBe(0); // PID 1 left on SIGTERM, not SIGKILL
    expect(await containersOf(id)).toHaveLength(0);

    // Every step is on the audit log, with who asked for it.
    const trail = (await stack.audit.list({ agent_id: id, limit: 100 })).reverse().filter((e) => e.kind.startsWith('agent.')); // the actions have their own
    expect(trail.map((e) => [e.kind, e.details.to ?? null])).toEqual([
      ['agent.created', null],
      ['agent.status_changed', 'running'],
      ['agent.status_changed', 'paused'],
      ['agent.status_changed', 'running'],
      ['agent.status_changed', 'stopping'],
      ['agent.stopped', 'stopped'],
    ]);
    expect(trail[0]!.actor).toMatch(/^key_/); // the admin key the test used
    expect(trail[2]!.actor).toBe(trail[0]!.actor);
    expect((await stack.audit.verify()).ok).toBe(true);

    // A stopped agent can no longer be driven.
    const again = await stack.api('POST', `/api/agents/${id}/pause`);
    expect(again.status).toBe(409);
    expect(again.body.error.message).toMatch(/stopped/);
  });

  it('force stop kills at once and the agent list shows the final status', async () => {
    const id = uniqueId('force');
    recorded.set('force-stop', id);
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
    await waitForStatus(stack.api, id, ['running']);
    expect((await stack.api('POST', `/api/agents/${id}/stop`, { force: true })).status).toBe(202);
    const stopped = await waitForStatus(stack.api, id, ['stopped']);
    expect(stopped.exit_code).toBe(137);
    expect(await containersOf(id)).toHaveLength(0);
    const listed = await waitFor('list to show the stopped agent, its workflow completed', async () => {
      const res = await stack.api('GET', '/api/agents?status=stopped');
      const agent = res.body.agents.find((a: { id: string }) => a.id === id);
      return agent?.workflow_status === 'COMPLETED' ? agent : undefined;
    });
    expect(listed).toMatchObject({ id, status: 'stopped', skill_id: 'shell', host: TEST_HOST, workflow_status: 'COMPLETED' });
  });

  it('a cancelled agent workflow still removes its container', async () => {
    const id = uniqueId('cancel');
    recorded.set('cancelled', id);
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
    await waitForStatus(stack.api, id, ['running']);
    const handle = stack.client.workflow.getHandle(id);
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow(/cancel/i);
    expect(await containersOf(id)).toHaveLength(0);
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    const record = await handle.query(agentStatusQuery);
    expect(record).toMatchObject({ status: 'stopped', exit_code: 137 });
    expect(record.stopped_at).not.toBeNull();
  });

  it('stops an idle agent on its TTL timer', async () => {
    const id = uniqueId('idle');
    recorded.set('idle-ttl', id);
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, idle_ttl_seconds: 10 });
    await waitForStatus(stack.api, id, ['running']);
    const stopped = await waitForStatus(stack.api, id, ['stopped'], 40_000);
    expect(stopped.stopped_at).not.toBeNull();
    expect(await containersOf(id)).toHaveLength(0);
  });

  it('moves to error with the reason when the container vanishes', async () => {
    const id = uniqueId('vanish');
    recorded.set('vanished-container', id);
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
    const running = await waitForStatus(stack.api, id, ['running']);
    await docker.getContainer(running.container_id!).remove({ force: true });
    const failed = await waitForStatus(stack.api, id, ['error']);
    expect(failed.error_message).toMatch(/exited unexpectedly|disappeared|killed outside Warden/);
    expect(failed).toMatchObject({ restart_policy: 'never', max_restarts: 0, restarts: 0 });
    // Recorded for the replay test once closed: its teardown is part of the story.
    await stack.client.workflow
      .getHandle(id)
      .result()
      .catch(() => undefined);
  });

  it("notices a container killed outside Warden in seconds, from the engine's events", async () => {
    const id = uniqueId('killed');
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id });
    const running = await waitForStatus(stack.api, id, ['running']);
    await waitFor('the sandbox watch to run', async () => {
      const pending = (await stack.client.workflow.getHandle(id).describe()).raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === 'awaitSandboxExit' && a.lastStartedTime);
    });
    // Past the watch's own checks (when it begins, and within 5 s of a stream connecting): from
    // here only the events stream is fast, the backstop poll comes every 15 to 45 s.
    await new Promise((r) => setTimeout(r, 6000));
    const killed = Date.now();
    await docker.getContainer(running.container_id!).kill({ signal: 'SIGKILL' });
    const failed = await waitForStatus(stack.api, id, ['error'], 30_000);
    expect(Date.now() - killed).toBeLessThan(8_000); // the backstop poll comes 9 s after the kill at the earliest
    expect(failed.error_message).toMatch(/killed outside Warden/);
    expect(failed.exit_code).toBe(137);
    await stack.client.workflow
      .getHandle(id)
      .result()
      .catch(() => undefined);
    expect(await containersOf(id)).toHaveLength(0);
  });

  it('re-provisions a lost sandbox under restart_policy on-failure, until its restarts are used', async () => {
    const id = uniqueId('restart');
    recorded.set('restart-on-failure', id);
    const created = await stack.api('POST', '/api/agents', {
      skill_id: 'shell',
      agent_id: id,
      restart_policy: 'on-failure',
      max_restarts: 1,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ restart_policy: 'on-failure', max_restarts: 1, restarts: 0 });
    const first = await waitForStatus(stack.api, id, ['running']);
    const handle = stack.client.workflow.getHandle(id);
    expect((await files(id, 'write', { path: 'note', content: 'kept' })).body).toMatchObject({
      status: 'completed',
      result: { exit_code: 0 },
    });

    await docker.getContainer(first.container_id!).remove({ force: true });
    const again = await waitFor('the agent to run in a new sandbox', async () => {
      const res = await stack.api('GET', `/api/agents/${id}`);
      const agent = res.body as AgentRecord;
      return agent.status === 'running' && agent.container_id !== first.container_id ? agent : undefined;
    });
    expect(again).toMatchObject({ restarts: 1, exit_code: null, error_message: null });
    expect((await docker.getContainer(again.container_id!).inspect()).State.Running).toBe(true);
    expect(await containersOf(id)).toHaveLength(1);
    // A new sandbox: commands run again, in a fresh workspace.
    expect((await files(id, 'list', {})).body).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: '' } });
    const { entries } = (await stack.api('GET', `/api/audit-logs?agent_id=${id}`)).body as {
      entries: { kind: string; details: Record<string, unknown> }[];
    };
    const restart = entries.find((e) => e.details.to === 'provisioning' && e.details.from === 'running');
    expect(restart?.details.reason).toMatch(
      /outside Warden.*; re-provisioning \(restart 1 of 1\)$|disappeared.*; re-provisioning \(restart 1 of 1\)$/,
    );

    // Lost again with no restart left: error, with both reasons.
    await docker.getContainer(again.container_id!).remove({ force: true });
    const failed = await waitForStatus(stack.api, id, ['error']);
    expect(failed.restarts).toBe(1);
    expect(failed.error_message).toMatch(/; not re-provisioned: all 1 restarts used$/);
    await stack.client.workflow
      .getHandle(id)
      .result()
      .catch(() => undefined);
    expect(await containersOf(id)).toHaveLength(0);
  });

  it('stops without a new sandbox when asked to stop while re-provisioning', async () => {
    const id = uniqueId('restart-stop');
    await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, restart_policy: 'on-failure' });
    const running = await waitForStatus(stack.api, id, ['running']);
    await docker.getContainer(running.container_id!).remove({ force: true });
    await waitForStatus(stack.api, id, ['provisioning']); // backing off for 1 s before the new sandbox
    expect((await stack.api('POST', `/api/agents/${id}/stop`, {})).status).toBe(202);
    const stopped = await waitForStatus(stack.api, id, ['stopped', 'error']);
    expect(stopped).toMatchObject({ status: 'stopped', restarts: 1 });
    const { entries } = (await stack.api('GET', `/api/audit-logs?agent_id=${id}`)).body as {
      entries: { kind: string; details: Record<string, unknown> }[];
    };
    const path = entries
      .reverse()
      .filter((e) => e.kind === 'agent.status_changed' || e.kind === 'agent.stopped')
      .map((e) => e.details.to);
    expect(path).toEqual(['running', 'provisioning', 'stopping', 'stopped']);
    expect(await containersOf(id)).toHaveLength(0);
  });

  it('refuses a restart policy it cannot honour, and gives on-failure 3 restarts by default', async () => {
    for (const [body, field] of [
      [{ max_restarts: 2 }, 'max_restarts'],
      [{ restart_policy: 'on-failure', max_restarts: 0 }, 'max_restarts'],
      [{ restart_policy: 'on-failure', max_restarts: 11 }, 'max_restarts'],
      [{ restart_policy: 'always' }, 'restart_policy'],
    ] as const) {
      const res = await stack.api('POST', '/api/agents', { skill_id: 'shell', ...body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(JSON.stringify(res.body), JSON.stringify(body)).toContain(field);
    }
    const id = uniqueId('norestart');
    const created = await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, restart_policy: 'on-failure' });
    expect(created.body).toMatchObject({ restart_policy: 'on-failure', max_restarts: 3, restarts: 0 });
    await waitForStatus(stack.api, id, ['running']);
    await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
    await waitForStatus(stack.api, id, ['stopped']);
  });
});
