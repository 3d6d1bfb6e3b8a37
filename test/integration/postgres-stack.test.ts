/**
 * The whole stack on PostgreSQL: the API in this process and two worker processes (control, and
 * this host's sandbox worker), each with its own empty data dir and WARDEN_DATABASE_URL, so the
 * audit log, the keys and the vault can only be shared through the database. An agent is created,
 * a command that reads a vault secret runs after an approval, and the audit chain read back and
 * verified through the API is one chain, written by the API and the control worker together.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import type { AuditEntry } from '../../domain/audit-entry.js';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import { approveWith, startStack, uniqueId, waitFor, waitForStatus } from '../support/helpers.js';
import { createTestDatabase } from '../support/postgres.js';
import { killWorkers, signalWorker, startWorker } from '../support/worker-process.js';

let stack: Awaited<ReturnType<typeof startStack>>;
let databaseUrl: string;
// A Temporal server of its own: on the shared one, these worker processes would also take other
// test files' workflow tasks on `warden-control`, and write those files' entries into this log.
let server: DevServer;
const dir = mkdtempSync(join(tmpdir(), 'warden-pg-stack-'));

beforeAll(async () => {
  databaseUrl = await createTestDatabase(inject('postgresAdminUrl'));
  server = await startDevServer({
    dbFile: join(dir, 'temporal.db'),
    port: await freePort(),
    uiPort: 0,
    ui: false,
    logFile: join(dir, 'temporal.log'),
  });
  stack = await startStack({ workers: false, config: { databaseUrl, temporalAddress: server.address } });
}, 120_000);
afterAll(async () => {
  killWorkers();
  await stack?.stop();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('creates an agent, runs an approved command with a vault secret, and the chain verifies through the API', async () => {
  const ownDataDir = () => mkdtempSync(join(tmpdir(), 'warden-pg-worker-'));
  const workers = [
    startWorker({
      TEMPORAL_ADDRESS: server.address,
      WARDEN_DATABASE_URL: databaseUrl,
      WARDEN_WORKER_ROLES: 'control',
      WARDEN_DATA_DIR: ownDataDir(),
    }),
    startWorker({
      TEMPORAL_ADDRESS: server.address,
      WARDEN_DATABASE_URL: databaseUrl,
      WARDEN_WORKER_ROLES: 'sandbox',
      WARDEN_DATA_DIR: ownDataDir(),
    }),
  ];
  await Promise.all(workers.map((w) => w.ready));

  // Written by the API process, read by the sandbox worker process.
  expect((await stack.api('PUT', '/api/secrets/GREETING', { value: 'hello from postgres' })).status).toBe(201);
  const approver = await stack.keyFor('approver');
  const id = uniqueId('pg');
  expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
  await waitForStatus(stack.api, id, ['running'], 90_000);
  const submitted = await stack.api('POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'shell',
    operation: 'exec',
    agent_id: id,
    parameters: { command: 'printf "%s" "$GREETING" | wc -c', secrets: ['GREETING'] },
  });
  expect(submitted.status).toBe(202);
  if (submitted.body.status === 'pending') expect(await approveWith(stack, approver, submitted.body)).toBe(200);
  const done = await waitFor(
    'the action to complete',
    async () => {
      const res = await stack.api('GET', `/api/actions/${submitted.body.id}`);
      return res.body.completed_at ? res.body : undefined;
    },
    90_000,
  );
  expect(done).toMatchObject({ status: 'completed', result: { exit_code: 0, stdout: `${'hello from postgres'.length}\n` } });
  // The action's last entry is written after its result is given out: once its workflow ended, all are in.
  await stack.client.workflow.getHandle(submitted.body.id).result();

  const verified = await stack.api('GET', '/api/audit-logs/verify');
  expect(verified.body).toMatchObject({ ok: true, breaks: [], unverified_actors: { count: 0 } });
  const { entries } = (await stack.api('GET', '/api/audit-logs?limit=1000')).body as { entries: AuditEntry[] };
  expect(entries.length).toBe(verified.body.entries);
  // One chain: consecutive seqs, each linked to the one before, whichever process wrote it.
  const oldestFirst = [...entries].reverse();
  oldestFirst.forEach((e, i) => expect(e.seq).toBe(i + 1));
  for (let i = 1; i < oldestFirst.length; i++) expect(oldestFirst[i]!.prev_hash).toBe(oldestFirst[i - 1]!.hash);
  const kinds = oldestFirst.filter((e) => e.action_id === submitted.body.id).map((e) => e.kind);
  expect(kinds).toEqual(expect.arrayContaining(['action.submitted', 'policy.decided', 'execution.started', 'execution.completed']));
  // The API wrote the secret's entry; the control worker wrote the action's, and knew the operator's key from the database.
  expect(oldestFirst.find((e) => e.kind === 'secret.stored')).toBeDefined();
  const submittedEntry = oldestFirst.find((e) => e.kind === 'action.submitted' && e.action_id === submitted.body.id)!;
  expect(submittedEntry.actor_verified).toBe(true);
  const exported = await stack.realApp.request('/api/audit-logs/export', {
    headers: { authorization: `Bearer ${await stack.keyFor('viewer')}` },
  });
  expect((await exported.text()).trimEnd().split('\n')).toHaveLength(entries.length);

  // Nothing reached the workers' data dirs: the rows are in the database.
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    expect(Number((await client.query('SELECT count(*) FROM audit.entries')).rows[0].count)).toBe(entries.length);
    expect((await client.query('SELECT name FROM vault.secrets')).rows).toEqual([{ name: 'GREETING' }]);
  } finally {
    await client.end();
  }

  await stack.api('POST', `/api/agents/${id}/stop`, { force: true });
  await waitForStatus(stack.api, id, ['stopped'], 60_000);
  for (const worker of workers) signalWorker(worker, 'SIGTERM');
  for (const worker of workers) expect(await worker.exited).toBe(0);
}, 300_000);
