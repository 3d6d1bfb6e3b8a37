/** What the integration tests share: a client and in-process workers on the suite's dev server. */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import pino from 'pino';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { Runtime } from '@temporalio/worker';
import { ConfigSchema, type Config } from '../domain/config.js';
import type { AgentRecord, AgentStatus } from '../domain/agent.js';
import { createApp } from '../api/app.js';
import { KeyStore } from '../api/key-store.js';
import { AuditStore } from '../activities/audit-store.js';
import { loadPolicy } from '../domain/policy.js';
import type { Role } from '../domain/roles.js';
import { createWorkers } from '../workers/create-workers.js';
import { temporalCli } from '../scripts/dev-server.js';

/** This suite run's Docker host id: its containers carry it, so concurrent runs never touch each other's. */
export const TEST_HOST = inject('testHost');
export const docker = new Docker();

let runtimeInstalled = false;
function quietRuntime() {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const noop = () => undefined;
  Runtime.install({
    logger: { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: (m) => console.error(m) },
  });
}

export function testConfig(overrides: Partial<Config> = {}): Config {
  return ConfigSchema.parse({
    temporalAddress: inject('temporalAddress'),
    dockerHostId: TEST_HOST,
    sandboxImage: inject('sandboxImage'),
    logLevel: 'silent',
    stopGraceSeconds: 2,
    ...overrides,
  });
}

/** A Temporal client, the API app, and (unless workers: false) running control and sandbox workers. */
export async function startStack(opts: { config?: Partial<Config>; workers?: boolean; audit?: AuditStore; docker?: Docker } = {}) {
  quietRuntime();
  const config = testConfig(opts.config);
  const connection = await Connection.connect({ address: config.temporalAddress });
  const client = new Client({ connection });
  const keys = KeyStore.open(':memory:');
  const audit = opts.audit ?? AuditStore.open(join(mkdtempSync(join(tmpdir(), 'warden-audit-')), 'audit.db'));
  const adminKey = keys.create('test admin', 'admin', null).key;
  const realApp = createApp({ client, docker: opts.docker ?? docker, config, logger: pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' }), keys, audit, policy: loadPolicy(config.policyFile) });
  /** The app, as an admin: requests without an Authorization header get the admin key. */
  const app = {
    request(path: string, init: RequestInit = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${adminKey}`);
      return realApp.request(path, { ...init, headers });
    },
  };
  const keyFor = (role: Role) => keys.create(`test ${role}`, role, null).key;
  const workers =
    opts.workers === false
      ? undefined
      : await createWorkers({
          temporalAddress: config.temporalAddress,
          namespace: 'default',
          dockerHostId: TEST_HOST,
          roles: ['control', 'sandbox'],
          audit,
          docker,
          workflowBundle: { codePath: inject('workflowBundlePath') },
          shutdownGraceTime: '2 seconds',
        });
  const running = workers?.run();
  const api = async (method: string, path: string, body?: unknown) => {
    const res = await app.request(path, {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null };
  };
  return {
    config,
    client,
    app,
    realApp,
    keys,
    keyFor,
    audit,
    api,
    async stop() {
      workers?.shutdown();
      await running;
      await connection.close();
      keys.close();
      if (!opts.audit) audit.close();
    },
  };
}

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined | null | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Polls GET /api/agents/{id} until the agent reaches one of these statuses. */
export async function waitForStatus(
  api: Awaited<ReturnType<typeof startStack>>['api'],
  id: string,
  statuses: AgentStatus[],
  timeoutMs = 60_000,
): Promise<AgentRecord> {
  return waitFor(`agent ${id} to be ${statuses.join('|')}`, async () => {
    const res = await api('GET', `/api/agents/${id}`);
    return res.status === 200 && statuses.includes(res.body.status) ? (res.body as AgentRecord) : undefined;
  }, timeoutMs);
}

export const uniqueId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

/** Containers on the engine that carry this agent's label. */
export async function containersOf(agentId: string) {
  return docker.listContainers({ all: true, filters: { label: [`dev.warden.agent-id=${agentId}`] } });
}

/** With WARDEN_RECORD_HISTORIES=1, saves a workflow's history for the replay test (test/histories/). */
export async function recordHistory(name: string, workflowId: string) {
  if (process.env.WARDEN_RECORD_HISTORIES !== '1') return;
  // The CLI writes the proto3 JSON that historyFromJSON reads back.
  const json = execFileSync(await temporalCli(), [
    'workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', inject('temporalAddress'),
  ]);
  mkdirSync('test/histories', { recursive: true });
  writeFileSync(`test/histories/${name}.json`, json);
}

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Submits a shell command as an action (high risk: it waits for one approval). */
export function submitShell(api: Stack['api'], agentId: string, command: string) {
  return api('POST', '/api/actions', { action_type: 'skill_execution', skill_id: 'shell', operation: 'exec', agent_id: agentId, parameters: { command } });
}

/** Approves an action over the API with this key, bound to the parameters hash it was shown. */
export async function approveWith(stack: Stack, key: string, action: { id: string; params_hash: string }): Promise<number> {
  const res = await stack.realApp.request(`/api/actions/${action.id}/approve`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({ approved: true, params_hash: action.params_hash }),
  });
  return res.status;
}
