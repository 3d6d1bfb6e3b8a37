/**
 * More agents on one host than the SDK's default activity slots (100): every agent holds a watch
 * on its sandbox for as long as it lives, and the watches have a worker and slots of their own,
 * so the agents still get their sandboxes and a command still runs at once in the last of them.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { containersOf, docker, startStack, TEST_HOST, uniqueId, waitFor } from '../support/helpers.js';

const AGENTS = 110;
const BATCH = 10;

let stack: Awaited<ReturnType<typeof startStack>>;
const ids: string[] = [];

beforeAll(async () => {
  stack = await startStack({ config: { maxAgents: 200 } });
});
afterAll(async () => {
  // Whatever the test left running goes, in batches like it came.
  for (let i = 0; i < ids.length; i += BATCH) {
    await Promise.all(ids.slice(i, i + BATCH).map((id) => stack.api('POST', `/api/agents/${id}/stop`, { force: true })));
  }
  await stack?.stop();
});

/** The agents of this test, by status, as the API lists them. */
async function statuses(): Promise<Map<string, string>> {
  const listed = await stack.api('GET', `/api/agents?host=${TEST_HOST}&limit=1000`);
  return new Map((listed.body.agents as { id: string; status: string }[]).filter((a) => ids.includes(a.id)).map((a) => [a.id, a.status]));
}

it(`${AGENTS} idle agents on one host: all run, each watched, and a command in the last runs at once`, async () => {
  const run = uniqueId('many');
  for (let i = 0; i < AGENTS; i += BATCH) {
    const batch = Array.from({ length: Math.min(BATCH, AGENTS - i) }, (_, j) => `${run}-${i + j}`);
    ids.push(...batch);
    const created = await Promise.all(
      batch.map((agent_id) =>
        stack.api('POST', '/api/agents', {
          skill_id: 'shell',
          agent_id,
          runtime: 'runc',
          resource_limits: { cpu_cores: 0.05, memory_mb: 48, disk_mb: 8, max_processes: 16 },
        }),
      ),
    );
    expect(created.map((c) => c.status)).toEqual(batch.map(() => 201));
  }
  await waitFor(
    `all ${AGENTS} agents to run`,
    async () => {
      const now = await statuses();
      return now.size === AGENTS && [...now.values()].every((s) => s === 'running');
    },
    600_000,
  );

  // Every agent's watch runs: more long-lived activities than the SDK's default slot count.
  const watching = await Promise.all(
    ids.map(async (id) => {
      const pending = (await stack.client.workflow.getHandle(id).describe()).raw.pendingActivities ?? [];
      return pending.some((a) => a.activityType?.name === 'awaitSandboxExit' && a.lastStartedTime);
    }),
  );
  expect(watching.filter(Boolean)).toHaveLength(AGENTS);

  const last = ids.at(-1)!;
  const started = Date.now();
  const files = (operation: string, parameters: Record<string, unknown>) =>
    stack.api('POST', '/api/actions', {
      action_type: 'skill_execution',
      skill_id: 'filesystem',
      operation,
      agent_id: last,
      parameters,
      wait_seconds: 30,
    });
  expect((await files('write', { path: 'note', content: 'still served' })).body).toMatchObject({
    status: 'completed',
    result: { exit_code: 0 },
  });
  expect((await files('read', { path: 'note' })).body).toMatchObject({
    status: 'completed',
    result: { exit_code: 0, stdout: 'still served' },
  });
  expect(Date.now() - started).toBeLessThan(30_000);

  for (let i = 0; i < ids.length; i += BATCH) {
    const stopped = await Promise.all(ids.slice(i, i + BATCH).map((id) => stack.api('POST', `/api/agents/${id}/stop`, { force: true })));
    expect(stopped.map((s) => s.status)).toEqual(stopped.map(() => 202));
  }
  await waitFor(
    `all ${AGENTS} agents to stop`,
    async () => {
      const now = await statuses();
      return [...now.values()].every((s) => s === 'stopped');
    },
    300_000,
  );
  for (const id of ids) expect(await containersOf(id)).toHaveLength(0);
  expect(await docker.listContainers({ all: true, filters: { label: [`dev.warden.host=${TEST_HOST}`], name: [run] } })).toHaveLength(0);
}, 1_200_000);
