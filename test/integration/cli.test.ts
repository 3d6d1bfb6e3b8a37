/**
 * The `warden` CLI as a real process against a real API served over HTTP (real Temporal and
 * Docker behind it): status, sandbox, agents list/show/stop, approvals, channel pairings, audit
 * tail/verify, emergency-stop and resume, secrets, and the errors a person meets (a bad key, a role too low, an unknown agent, the
 * API down).
 */
import { execFile, spawn } from 'node:child_process';
import type { AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { serve } from '@hono/node-server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditStore } from '../../stores/audit-store.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import { startStack, uniqueId, waitFor, waitForStatus, testAuditOptions, TEST_MASTER_KEY } from '../support/helpers.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs bin/warden.ts as its own process (asynchronously: the API answering it lives in this one). */
function warden(args: string[], env: Record<string, string>, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'bin/warden.ts', ...args], {
      cwd: PROJECT_ROOT,
      env: { ...process.env, WARDEN_API_KEY: '', WARDEN_DATA_DIR: '/nonexistent', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.stdin.end(input ?? '');
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

describe('against the real API', () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let server: ReturnType<typeof serve>;
  let env: Record<string, string>;
  const auditFile = join(mkdtempSync(join(tmpdir(), 'warden-cli-')), 'audit.db');

  beforeAll(async () => {
    stack = await startStack({ audit: AuditStore.open(auditFile, testAuditOptions()) });
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    env = { WARDEN_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, WARDEN_API_KEY: await stack.keyFor('admin') };
  });
  afterAll(async () => {
    await new Promise((r) => server?.close(r));
    await stack?.stop();
    await stack?.audit.close();
  });

  it('status shows every component and the agent counts; sandbox shows the host', async () => {
    // Workers that have just started are up once they have polled their task queues.
    await waitFor('every component to be up', async () => (await stack.api('GET', '/readyz')).status === 200);
    const status = await warden(['status'], env);
    expect(status.stderr).toBe('');
    expect(status.code).toBe(0);
    for (const component of ['temporal', 'docker', 'control_worker', 'sandbox_worker'])
      expect(status.stdout).toMatch(new RegExp(`^${component}\\s+up\\s+\\d+ ms`, 'm'));
    expect(status.stdout).toMatch(/^agents: provisioning \d+, running \d+/m);

    const json = await warden(['status', '--json'], env);
    expect(JSON.parse(json.stdout)).toMatchObject({ components: { temporal: { ok: true } }, max_agents: stack.config.maxAgents });

    const sandbox = await warden(['sandbox'], env);
    expect(sandbox.code).toBe(0);
    expect(sandbox.stdout).toMatch(new RegExp(`^host\\s+${stack.config.dockerHostId}$`, 'm'));
    expect(sandbox.stdout).toMatch(/^max_agents\s+\d+$/m);
    // The stack places agents on its own host alone: one row, its worker up.
    expect(sandbox.stdout).toMatch(new RegExp(`^${stack.config.dockerHostId}\\s+up\\s`, 'm'));
  });

  it('lists, shows and stops an agent', async () => {
    const id = uniqueId('cli');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
    await waitForStatus(stack.api, id, ['running'], 90_000);

    const list = await warden(['agents', 'list', '--status', 'running'], env);
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+STATUS\s+SKILL_ID\s+SANDBOX_RUNTIME\s+HOST\s+CREATED_AT$/);
    expect(list.stdout).toMatch(new RegExp(`^${id}\\s+running\\s+shell\\s+runc\\s`, 'm'));
    const listed = JSON.parse((await warden(['agents', 'list', '--json'], env)).stdout);
    expect(listed.agents.map((a: { id: string }) => a.id)).toContain(id);

    const show = await warden(['agents', 'show', id], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(/^status\s+running$/m);
    expect(show.stdout).toMatch(/^sandbox_runtime\s+runc$/m);

    const stop = await warden(['agents', 'stop', id, '--force'], env);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toContain(`force stop requested for ${id}`);
    const stopped = await waitForStatus(stack.api, id, ['stopped'], 60_000);
    expect(stopped.exit_code).toBe(137); // SIGKILL: the --force reached the workflow

    const missing = await warden(['agents', 'show', 'agt-000000000000'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^warden: not found: agent agt-000000000000/);
  });

  it('tails and verifies the audit log through the API, and from its file', async () => {
    const tail = await warden(['audit', 'tail', '-n', '3'], env);
    expect(tail.code).toBe(0);
    const lines = tail.stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(3);
    const seqs = lines.map((l) => Number(/^#(\d+) /.exec(l)![1]));
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b)); // oldest first, like tail
    expect(seqs.at(-1)).toBe((await stack.audit.head()).seq);

    const verify = await warden(['audit', 'verify'], env);
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^audit log intact: \d+ entries$/m);
    // The file alone: the master key checks the anchor of its head.
    const offline = await warden(['audit', 'verify', '--db', auditFile], { WARDEN_MASTER_KEY: TEST_MASTER_KEY });
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain(`head #${(await stack.audit.head()).seq} ${(await stack.audit.head()).hash}`);
    // The key from a file, as a Compose secret gives it, checks the same anchor; no key checks none.
    const keyFile = join(dirname(auditFile), 'master-key');
    writeFileSync(keyFile, `${TEST_MASTER_KEY}\n`, { mode: 0o600 });
    const fromFile = await warden(['audit', 'verify', '--db', auditFile], { WARDEN_MASTER_KEY: '', WARDEN_MASTER_KEY_FILE: keyFile });
    expect(fromFile).toMatchObject({ code: 0, stdout: offline.stdout });
    const keyless = await warden(['audit', 'verify', '--db', auditFile], { WARDEN_MASTER_KEY: '' });
    expect(keyless.stdout).not.toBe(offline.stdout);
  });

  it('approvals: lists, shows and decides an action from the terminal, bound to what it showed', async () => {
    const operator = (await stack.keys.create('cli operator', 'operator', null)).key;
    const approver = { ...env, WARDEN_API_KEY: (await stack.keys.create('cli approver', 'approver', null)).key };
    const submit = async (command: string) =>
      (
        await stack.realApp.request('/api/actions', {
          method: 'POST',
          headers: { authorization: `Bearer ${operator}`, 'content-type': 'application/json' },
          body: JSON.stringify({
            action_type: 'skill_execution',
            skill_id: 'shell',
            operation: 'exec',
            agent_id: 'agt-0123456789ab',
            parameters: { command },
          }),
        })
      ).json() as Promise<{ action_id: string; params_hash: string; status: string }>;
    const action = await submit('echo reviewed');
    expect(action.status).toBe('pending');
    await waitFor('visibility to list the action', async () =>
      (await warden(['approvals', 'list'], env)).stdout.includes(action.action_id),
    );

    const show = await warden(['approvals', 'show', action.action_id], env);
    expect(show.code).toBe(0);
    expect(show.stdout).toMatch(new RegExp(`^params_hash\\s+${action.params_hash}$`, 'm'));
    expect(show.stdout).toContain('"command": "echo reviewed"');

    // Bound to another action's hash: refused, and the action still waits.
    const other = await submit('echo other');
    const wrong = await warden(['approvals', 'approve', action.action_id, '--params-hash', other.params_hash], approver);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/the parameters hash does not match/);
    const low = await warden(['approvals', 'approve', action.action_id], { ...env, WARDEN_API_KEY: await stack.keyFor('operator') });
    expect(low.code).toBe(4);

    const rejected = await warden(['approvals', 'reject', action.action_id, '--comment', 'not today'], approver);
    expect(rejected.code).toBe(0);
    expect(rejected.stdout).toContain(`rejected ${action.action_id} (now rejected)`);
    const again = await warden(['approvals', 'approve', action.action_id], approver);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/not awaiting approval/);
    await warden(['approvals', 'reject', other.action_id], approver);
  });

  it('channels: an admin pairs a chat user, the key confirms it, the admin revokes it', async () => {
    const holder = await stack.keys.create('cli holder', 'approver', null);
    const pair = await warden(['channels', 'pair', 'discord:930000000000000001', holder.id], env);
    expect(pair.code).toBe(0);
    expect(pair.stdout).toContain('warden channels confirm discord:930000000000000001');
    const byAdmin = await warden(['channels', 'confirm', 'discord:930000000000000001'], env);
    expect(byAdmin.code).toBe(4);
    const confirm = await warden(['channels', 'confirm', 'discord:930000000000000001'], { ...env, WARDEN_API_KEY: holder.key });
    expect(confirm.code).toBe(0);
    const listed = await warden(['channels', 'pairings'], env);
    expect(listed.stdout).toMatch(new RegExp(`^discord:930000000000000001\\s+${holder.id}\\s`, 'm'));
    expect((await warden(['channels', 'unpair', 'discord:930000000000000001'], env)).code).toBe(0);
    expect((await warden(['channels', 'unpair', 'discord:930000000000000001'], env)).code).toBe(1);
    const channels = await warden(['channels', 'list'], env);
    expect(channels.stdout.trim()).toBe('(none)');
  });

  it('says what is wrong with the key, the role or the usage, with its exit code', async () => {
    const bad = await warden(['status'], { ...env, WARDEN_API_KEY: 'wk_not-a-key' });
    expect(bad.code).toBe(4);
    expect(bad.stderr).toMatch(/the API refused the key: the API key is unknown or revoked \(set WARDEN_API_KEY/);

    const viewer = await warden(['agents', 'stop', 'agt-000000000000'], { ...env, WARDEN_API_KEY: await stack.keyFor('viewer') });
    expect(viewer.code).toBe(4);
    expect(viewer.stderr).toMatch(/not allowed: this needs the operator role; the key .* has viewer/);

    const none = await warden(['status'], { WARDEN_API_URL: env.WARDEN_API_URL! });
    expect(none.code).toBe(4);
    expect(none.stderr).toContain('no API key: set WARDEN_API_KEY');

    expect((await warden(['agents', 'show'], env)).code).toBe(2);
    expect((await warden(['agents', 'list', '--frobnicate'], env)).code).toBe(2);
    expect((await warden(['reboot'], env)).code).toBe(2);
  });
});

it('says when the API cannot be reached', async () => {
  const port = await freePort(); // free: nothing listens there
  const down = await warden(['agents', 'list'], { WARDEN_API_URL: `http://127.0.0.1:${port}`, WARDEN_API_KEY: 'wk_whatever' });
  expect(down.code).toBe(3);
  expect(down.stderr).toContain(`cannot reach the Warden API at http://127.0.0.1:${port} (ECONNREFUSED)`);
});

it('runs as ./bin/warden.ts and as npx warden', async () => {
  for (const [file, args] of [
    ['./bin/warden.ts', ['--help']],
    ['npx', ['warden', '--help']],
  ] as const) {
    const { stdout } = await promisify(execFile)(file, [...args], { cwd: PROJECT_ROOT });
    expect(stdout).toContain('warden agents stop <id> [--force]');
  }
});

/** Emergency stop and secrets: the routes come from other slices; here their request shapes are checked. */
describe('emergency stop and secrets, against the real API', () => {
  let stack: Awaited<ReturnType<typeof startStack>>;
  let server: ReturnType<typeof serve>;
  let env: Record<string, string>;

  beforeAll(async () => {
    stack = await startStack();
    server = serve({ fetch: stack.realApp.fetch, hostname: '127.0.0.1', port: 0 });
    await new Promise((r) => server.once('listening', r));
    env = { WARDEN_API_URL: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, WARDEN_API_KEY: await stack.keyFor('admin') };
  });
  afterAll(async () => {
    // The lockdown lives in the suite's shared capacity workflow: never leave it on.
    const lock = await stack?.api('GET', '/api/system/lockdown');
    if (lock?.body.locked) await stack.api('POST', '/api/system/resume', { reason: 'cli test cleanup' });
    await new Promise((r) => server?.close(r));
    await stack?.stop();
  });

  it('emergency-stop stops the agents and locks down; status shows it; resume lifts it', async () => {
    const id = uniqueId('cli-stop');
    expect((await stack.api('POST', '/api/agents', { skill_id: 'shell', agent_id: id, runtime: 'runc' })).status).toBe(201);
    await waitForStatus(stack.api, id, ['running']);

    const noReason = await warden(['emergency-stop'], env);
    expect(noReason.code).toBe(2);
    expect(noReason.stderr).toContain('needs --reason');
    expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false); // nothing was sent

    const stop = await warden(['emergency-stop', '--reason', 'agent exfiltrating data'], env);
    expect(stop.stderr).toBe('');
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(/^emergency stop done; nothing new is accepted until `warden resume`$/m);
    expect(Number(stop.stdout.match(/^agents_stopped\s+(\d+)$/m)?.[1])).toBeGreaterThanOrEqual(1);
    await waitForStatus(stack.api, id, ['stopped']);

    const status = await warden(['status'], env);
    expect(status.stdout).toMatch(/^lockdown:$/m);
    expect(status.stdout).toMatch(/^reason\s+agent exfiltrating data$/m);
    const reading = await warden(['agents', 'list'], env); // reading still works during the lockdown
    expect(reading.code).toBe(0);

    const resume = await warden(['resume', '--reason', 'contained'], env);
    expect(resume.code).toBe(0);
    expect(resume.stdout).toMatch(/^lockdown lifted$/m);
    expect((await stack.api('GET', '/api/system/lockdown')).body.locked).toBe(false);
    expect((await warden(['resume', '--reason', 'again'], env)).code).toBe(1); // 409: not locked
  });

  it('secrets: the value goes from stdin into the vault, and is printed nowhere', async () => {
    const value = 'sk-canary-0123456789abcdef';
    const put = await warden(['secrets', 'put', 'CLI_OPENAI_KEY'], env, `${value}\n`);
    expect(put.code).toBe(0);
    expect((await stack.vault.reveal(['CLI_OPENAI_KEY'])).get('CLI_OPENAI_KEY')).toBe(value);
    expect(put.stdout + put.stderr).not.toContain(value);
    expect((await warden(['secrets', 'put', 'CLI_OPENAI_KEY'], env, '')).code).toBe(2); // empty stdin

    const list = await warden(['secrets', 'list'], env);
    expect(list.stdout).toMatch(/^CLI_OPENAI_KEY\s/m);
    expect(list.stdout).not.toContain(value);
    const rotate = await warden(['secrets', 'rotate', '--json'], env);
    expect(rotate.code, rotate.stderr).toBe(0);
    expect(JSON.parse(rotate.stdout)).toMatchObject({ reencrypted: 1, total: 1 });
    expect((await stack.vault.reveal(['CLI_OPENAI_KEY'])).get('CLI_OPENAI_KEY')).toBe(value);
    expect((await warden(['secrets', 'delete', 'CLI_OPENAI_KEY'], env)).code).toBe(0);
    expect(await stack.vault.has('CLI_OPENAI_KEY')).toBe(false);

    const missing = await warden(['secrets', 'delete', 'NOPE'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/NOPE/);
  });
});
