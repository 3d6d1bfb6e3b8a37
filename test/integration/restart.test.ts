/**
 * A pending approval survives a restart of everything: the workers stop, the Temporal dev server
 * stops and starts again on the same SQLite file, a new API and new workers come up, and the
 * approval given afterwards runs the action.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import { approveWith, startStack, submitShell, uniqueId, waitFor, waitForStatus, testAuditOptions } from '../support/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'warden-restart-'));
let server: DevServer | undefined;
afterAll(async () => {
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

it('approves an action after the workers and the Temporal server were restarted', async () => {
  const port = await freePort();
  const serve = () => startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  const audit = AuditStore.open(join(dir, 'audit.db'), testAuditOptions());
  server = await serve();
  let stack = await startStack({ config: { temporalAddress: server.address }, audit });
  const agentId = uniqueId('restart');
  await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: agentId, runtime: 'runc' });
  const before = await waitForStatus(stack.api, agentId, ['running']);
  const submitted = await submitShell(stack.api, agentId, 'echo after the restart');
  expect(submitted.body.status).toBe('pending');

  await stack.stop();
  await server.stop();
  server = await serve();
  stack = await startStack({ config: { temporalAddress: server.address }, audit });

  const pending = await waitFor('the pending action to be listed again', async () => {
    const res = await stack.api('GET', '/api/actions/pending');
    return res.body.actions?.find((a: { id: string }) => a.id === submitted.body.id);
  });
  expect(pending).toMatchObject({ agent_id: agentId, security_level: 'high', status: 'pending' });
  const after = await waitForStatus(stack.api, agentId, ['running']);
  expect(after.container_id).toBe(before.container_id);

  const approver = (await stack.keys.create('approver after restart', 'approver', null)).key;
  expect(await approveWith(stack, approver, submitted.body)).toBe(200);
  const done = await waitFor('the action to run', async () => {
    const r = await stack.api('GET', `/api/actions/${submitted.body.id}`);
    return r.body.completed_at ? r.body : undefined;
  });
  expect(done).toMatchObject({ status: 'completed', result: { stdout: 'after the restart\n' } });
  expect((await audit.verify()).ok).toBe(true);

  await stack.api('POST', `/api/agents/${agentId}/stop`, { force: true });
  await waitForStatus(stack.api, agentId, ['stopped']);
  await stack.stop();
  await audit.close();
}, 240_000);
