/**
 * Recovery from a real restart of the Docker engine, with agents running and paused under runc
 * (and runsc when the engine has it), and one agent whose workflow was terminated by force: no
 * agent claims to be running once its container is gone, each ends in error saying the engine
 * restarted, the reaper removes what is left, and no container leaks.
 *
 * The engine is restarted once per run of this file (it stops every container on the machine,
 * other test runs' included): SIGTERM to dockerd, then scripts/setup-docker.sh starts it again
 * the way it was started. When that engine is not ours to restart (DOCKER_HOST, no dockerd pid
 * file, not root) the file fails saying so, or is skipped under WARDEN_ALLOW_SKIP=1.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import type { AgentRecord } from '../../domain/agent.js';
import { containersOf, docker, startStack, TEST_HOST, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { triggerReaper } from '../support/reaper-runs.js';
import { requireOrSkip } from '../support/require-or-skip.js';

const PID_FILE = '/var/run/docker.pid';
const restartable = !process.env.DOCKER_HOST && existsSync(PID_FILE) && process.getuid?.() === 0;

let stack: Awaited<ReturnType<typeof startStack>>;
beforeAll(async () => {
  // Schedule intervals are aligned to the clock: an hourly one ticks at every :00 and could reap in
  // the middle of a test; a weekly one (Thursdays, 00:00 UTC) stays out of the way.
  stack = await startStack({ reaper: true, config: { reaperIntervalSeconds: 7 * 24 * 3600 } });
});
afterAll(async () => {
  await stack?.stop();
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function restartEngine() {
  const pid = Number(readFileSync(PID_FILE, 'utf8').trim());
  process.kill(pid, 'SIGTERM');
  // dockerd stops every container before it exits: give slow (gVisor) sandboxes their time.
  await waitFor('dockerd to exit', async () => !alive(pid), 180_000);
  execFileSync('bash', [join(PROJECT_ROOT, 'scripts/setup-docker.sh')], { stdio: 'inherit' });
  await waitFor('the engine to answer again', () => docker.ping().then(() => true), 180_000);
}

const ours = requireOrSkip(
  restartable,
  'a Docker engine this run may restart',
  `the engine is not ours to restart (${process.env.DOCKER_HOST ? `DOCKER_HOST is ${process.env.DOCKER_HOST}` : !existsSync(PID_FILE) ? `no ${PID_FILE}` : 'not root'})`,
);

// The test covers runsc agents only when the engine has gVisor: without it, that part is missing, said so.
requireOrSkip(
  Boolean((await docker.info()).Runtimes?.runsc),
  'gVisor (runsc) for the engine-restart test',
  'the Docker engine has no runsc runtime registered (scripts/setup-docker.sh installs it)',
);

it.runIf(ours)(
  'after a Docker engine restart no agent claims to run in a lost container: each ends in error saying the engine stopped it or, under on-failure, runs in a new sandbox; the reaper removes what is left',
  async () => {
    const runtimes = (await docker.info()).Runtimes?.runsc ? (['runc', 'runsc'] as const) : (['runc'] as const);
    const agents: AgentRecord[] = [];
    for (const runtime of runtimes) {
      for (const paused of [false, true]) {
        const id = uniqueId(`eng-${runtime}${paused ? '-p' : ''}`);
        expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime })).status).toBe(201);
        await waitForStatus(stack.api, id, ['running']);
        if (paused) {
          expect((await stack.api('POST', `/api/agents/${id}/pause`)).status).toBe(202);
          await waitForStatus(stack.api, id, ['paused']);
        }
        agents.push((await stack.api('GET', `/api/agents/${id}`)).body);
      }
    }
    // One agent's workflow terminated by force: its container is left for the reaper.
    const orphanId = uniqueId('eng-orphan');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: orphanId, runtime: 'runc' })).status).toBe(201);
    const orphan = await waitForStatus(stack.api, orphanId, ['running']);
    await stack.client.workflow.getHandle(orphanId).terminate('test: terminated by force');

    // One agent under restart_policy on-failure: it runs again in a new sandbox once the engine is back.
    const phoenixId = uniqueId('eng-restart');
    const asked = await stack.api('POST', '/api/agents', {
      skill_id: 'shell',
      agent_id: phoenixId,
      runtime: 'runc',
      restart_policy: 'on-failure',
    });
    expect(asked.status).toBe(201);
    const phoenix = await waitForStatus(stack.api, phoenixId, ['running']);

    await restartEngine();

    // A sandbox made while the engine was still shutting down is stopped with it, and costs one
    // more restart: the agent runs again once one is made on the restarted engine.
    const back = await waitFor(
      'the on-failure agent to run commands in a new sandbox',
      async () => {
        const agent = (await stack.api('GET', `/api/agents/${phoenixId}`)).body as AgentRecord;
        if (agent.status !== 'running' || agent.container_id === phoenix.container_id) return undefined;
        const wrote = await stack.api('POST', '/api/actions', {
          action_type: 'skill_execution',
          skill_id: 'filesystem',
          operation: 'write',
          agent_id: phoenixId,
          parameters: { path: 'back.txt', content: 'back' },
          wait_seconds: 20,
        });
        return wrote.body.status === 'completed' ? agent : undefined;
      },
      180_000,
    );
    expect(back.restarts).toBeGreaterThanOrEqual(1);
    expect(back.restarts).toBeLessThanOrEqual(back.max_restarts);

    // Every agent notices: it ends in error, and says the engine restarted.
    for (const agent of agents) {
      const failed = await waitForStatus(stack.api, agent.id, ['error'], 180_000);
      expect(failed.error_message, agent.id).toMatch(/outside Warden \((SIGTERM|SIGKILL): .*a Docker engine shutdown or restart\)/);
      expect(failed.container_id).toBe(agent.container_id);
    }
    // Their workflows end after removing their containers.
    for (const agent of agents) await stack.client.workflow.getHandle(agent.id).result();
    for (const agent of agents) expect(await containersOf(agent.id), agent.id).toHaveLength(0);
    const claims = await Promise.all(agents.map(async (a) => (await stack.api('GET', `/api/agents/${a.id}`)).body.status));
    expect(claims).toEqual(agents.map(() => 'error'));

    // The engine stopped the orphan's container; nothing but the reaper will remove it.
    expect((await containersOf(orphanId)).map((c) => c.State)).toEqual(['exited']);
    const report = await triggerReaper(stack.client, stack.reaperSchedule!);
    expect(report.containers_removed).toContainEqual({
      container_id: orphan.container_id,
      agent_id: orphanId,
      state: 'exited',
      reason: `the workflow of agent ${orphanId} is terminated: nothing owns this container`,
    });
    expect(await containersOf(orphanId)).toHaveLength(0);
    const removal = await stack.audit.list({ agent_id: orphanId, kind: 'reaper.container_removed' });
    expect(removal).toHaveLength(1);
    expect(removal[0]).toMatchObject({ actor: 'reaper', details: { container_id: orphan.container_id, state: 'exited' } });
    // The reaper left the re-provisioned agent's new container alone: its workflow owns it.
    expect(report.containers_removed.map((c) => c.agent_id)).not.toContain(phoenixId);
    expect((await containersOf(phoenixId)).map((c) => c.State)).toEqual(['running']);
    await stack.api('POST', `/api/agents/${phoenixId}/stop`, { force: true });
    await waitForStatus(stack.api, phoenixId, ['stopped']);
    for (const agent of agents) {
      const changes = await stack.audit.list({ agent_id: agent.id, kind: 'agent.status_changed' });
      expect(
        changes.some(
          (e) =>
            e.details.to === 'error' &&
            /outside Warden \((SIGTERM|SIGKILL): .*a Docker engine shutdown or restart\)/.test(String(e.details.reason)),
        ),
        agent.id,
      ).toBe(true);
    }

    // No container of this run's host is left on the engine.
    expect(await docker.listContainers({ all: true, filters: { label: [`dev.warden.host=${TEST_HOST}`] } })).toEqual([]);
  },
  900_000,
);
