import { randomUUID } from 'node:crypto';
/** What the integration tests share: a client and in-process workers on the suite's dev server. */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { HISTORIES_DIR, historyFolder } from './histories.js';
import Docker from 'dockerode';
import { execFileSync } from 'node:child_process';
import pino, { type Logger } from 'pino';
import { inject } from 'vitest';
import { Client, Connection } from '@temporalio/client';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { MockActivityEnvironment } from '@temporalio/testing';
import { ConfigSchema, type Config } from '../../domain/config.js';
import type { AgentRecord, AgentStatus } from '../../domain/agent.js';
import type { ActionRecord } from '../../domain/action.js';
import { createApp } from '../../api/app.js';
import { ConsoleSessions } from '../../api/console/sessions.js';
import { KeyStore } from '../../stores/key-store.js';
import { AuditStore } from '../../stores/audit-store.js';
import { loadPolicy } from '../../domain/policy.js';
import { SKILLS } from '../../skills/index.js';
import type { Role } from '../../domain/roles.js';
import { createWorkers, sandboxPoolSettings } from '../../workers/create-workers.js';
import { modelBudgetSettings } from '../../activities/budget.js';
import { ensureReaperSchedule } from '../../workers/reaper-schedule.js';
import { temporalCli } from '../../scripts/dev-server.js';
import { openVault, type Vault } from '../../stores/vault.js';
import type { ChannelStore } from '../../stores/channel-store.js';
import { ModelCallLedger } from '../../stores/model-call-ledger.js';
import { openStores } from '../../stores/open-stores.js';
import { createDataConverter, loadPayloadCodec } from '../../domain/data-converter.js';
import { Keyring } from '../../domain/keyring.js';
import { PayloadEncryptionCodec } from '../../domain/payload-codec.js';
import { containerName } from '../../sandbox/spec.js';
import { loadProviderConfigs } from '../../domain/model-providers.js';
import { ProviderRegistry } from '../../llm/registry.js';

/** This suite run's Docker host id: its containers carry it, so concurrent runs never touch each other's. */
export const TEST_HOST = inject('testHost');
export const docker = new Docker();

/** The components /api/status and /readyz report, by name, sorted. */
export const STATUS_COMPONENTS = [
  'audit_store',
  'channels',
  'control_worker',
  'docker',
  'embedded_model',
  'runtimes',
  'sandbox_worker',
  'temporal',
];

let runtimeInstalled = false;
/** Installs the SDK runtime once per test file: quiet, or every line to `logger` when one is given. */
function quietRuntime(logger?: Logger) {
  if (runtimeInstalled) return;
  runtimeInstalled = true;
  const noop = () => undefined;
  Runtime.install({
    logger: logger
      ? {
          log: (level, m, meta) => logger[level.toLowerCase() as 'info'](meta ?? {}, m),
          trace: (m, meta) => logger.trace(meta ?? {}, m),
          debug: (m, meta) => logger.debug(meta ?? {}, m),
          info: (m, meta) => logger.info(meta ?? {}, m),
          warn: (m, meta) => logger.warn(meta ?? {}, m),
          error: (m, meta) => logger.error(meta ?? {}, m),
        }
      : { log: noop, trace: noop, debug: noop, info: noop, warn: noop, error: (m) => console.error(m) },
  });
}

/**
 * The master key of every test process (and of the recorded histories in test/histories/, which the
 * replay test decrypts with it). A test key, public in this repository: never use it anywhere else.
 */
export const TEST_MASTER_KEY = Buffer.from('warden-TEST-ONLY-master-key-0001').toString('base64');

/** A test's audit store: anchored under the test master key; actors checked against `keys` when given. */
export const testAuditOptions = (keys?: KeyStore) => ({
  keyring: Keyring.load({ masterKey: TEST_MASTER_KEY, dataDir: tmpdir() }),
  isKnownKeyId: (id: string) => keys?.has(id) ?? false,
});

/** The payload codec and data converter of the test processes (the key above; plaintext refused). */
export const testPayloadCodec = (options: { allowPlaintext?: boolean } = {}) =>
  new PayloadEncryptionCodec(Keyring.load({ masterKey: TEST_MASTER_KEY, dataDir: tmpdir() }), options);
export const testDataConverter = () => createDataConverter(testPayloadCodec());

export function testConfig(overrides: Partial<Config> = {}): Config {
  return ConfigSchema.parse({
    temporalAddress: inject('temporalAddress'),
    dockerHostId: TEST_HOST,
    sandboxImage: inject('sandboxImage'),
    logLevel: 'silent',
    stopGraceSeconds: 2,
    masterKey: TEST_MASTER_KEY,
    // Suites run hundreds of requests (and 401s) from one in-process address; test/rate-limit*.test.ts set limits.
    rateLimits: 'off',
    // Suites ask for runc agents (with the admin key) to stay fast on hosts without gVisor; the default is on.
    requireSandbox: false,
    ...overrides,
  });
}

/** A Temporal client, the API app, and (unless workers: false) running control and sandbox workers. */
export async function startStack(
  opts: {
    config?: Partial<Config>;
    workers?: boolean;
    audit?: AuditStore;
    /** The vault of the API and the sandbox worker; a fresh one in a temporary dir by default. */
    vault?: Vault;
    /** The API's logger, also given the SDK runtime's lines when it is the first stack of the file. */
    logger?: Logger;
    /** Make this host's reaper Schedule, as a worker process does (deleted by stop()). */
    reaper?: boolean;
    /** The API's Docker client (a stand-in engine or proxy); the real engine by default. */
    docker?: Docker;
    /** How often the warm pool reconciles itself (5 s by default): a test that triggers the reaper's reconcile keeps it out of the way. */
    poolReconcileMs?: number;
    /** The chat channels' pairings and cards; in memory by default. */
    channelStore?: ChannelStore;
    /** The key store's file (a worker process reads it: WARDEN_DATA_DIR/warden.db); in memory by default. */
    keysFile?: string;
    /** Now, in milliseconds, as the console's sessions see it (a test moves it to expire them); the system clock by default. */
    consoleClock?: () => number;
  } = {},
) {
  quietRuntime(opts.logger);
  const config = testConfig(opts.config);
  const payloadCodec = loadPayloadCodec(config, { warn: () => undefined });
  const dataConverter = createDataConverter(payloadCodec);
  const connection = await Connection.connect({ address: config.temporalAddress });
  const client = new Client({ connection, dataConverter });
  // With config.databaseUrl, the API's stores are in that PostgreSQL database, as api/main.ts opens them.
  const shared = config.databaseUrl
    ? await openStores(config, Keyring.load({ masterKey: TEST_MASTER_KEY, dataDir: tmpdir() }), {
        keys: true,
        audit: true,
        vault: true,
        modelCalls: true,
      })
    : undefined;
  const spentModelCalls =
    shared?.modelCalls ?? ModelCallLedger.open(join(mkdtempSync(join(tmpdir(), 'warden-model-calls-')), 'model-calls.db'));
  const keys = shared?.keys ?? KeyStore.open(opts.keysFile ?? ':memory:');
  const auditFile = join(mkdtempSync(join(tmpdir(), 'warden-audit-')), 'audit.db');
  const audit = opts.audit ?? shared?.audit ?? AuditStore.open(auditFile, testAuditOptions(keys));
  const adminKey = (await keys.create('test admin', 'admin', null)).key;
  const vault = opts.vault ?? shared?.vault ?? openVault({ dataDir: mkdtempSync(join(tmpdir(), 'warden-vault-')) });
  const logger = opts.logger ?? pino({ level: process.env.WARDEN_TEST_LOG ?? 'silent' });
  /** The API app on this stack's stores; each call is another API process, as after a restart. */
  const newApp = () =>
    createApp({
      client,
      docker: opts.docker ?? docker,
      config,
      logger,
      keys,
      audit,
      policy: loadPolicy(SKILLS, config.policyFile),
      vault,
      payloadCodec,
      channelStore: opts.channelStore,
      consoleSessions: opts.consoleClock && new ConsoleSessions(keys, opts.consoleClock),
    });
  const realApp = newApp();
  /** The app, as an admin: requests without an Authorization header get the admin key. */
  const app = {
    request(path: string, init: RequestInit = {}) {
      const headers = new Headers(init.headers);
      if (!headers.has('authorization')) headers.set('authorization', `Bearer ${adminKey}`);
      return realApp.request(path, { ...init, headers });
    },
  };
  const keyFor = async (role: Role) => (await keys.create(`test ${role}`, role, null)).key;
  const workers =
    opts.workers === false
      ? undefined
      : await createWorkers({
          temporal: { address: config.temporalAddress },
          namespace: 'default',
          dockerHostId: TEST_HOST,
          roles: ['control', 'sandbox', 'model'],
          payloadCodec,
          // As a worker process's key directory answers: a key it does not know stands behind nothing.
          conversations: {
            isRevoked: async (id) => !(await keys.has(id)) || (await keys.isRevoked(id)),
            approvalExpirySeconds: config.approvalExpirySeconds,
            budget: modelBudgetSettings(config, loadProviderConfigs(config)),
          },
          providers: new ProviderRegistry({ configs: loadProviderConfigs(config), vault, logger }),
          spentModelCalls,
          policy: loadPolicy(SKILLS, config.policyFile),
          audit,
          vault,
          docker,
          workflowBundle: { codePath: inject('workflowBundlePath') },
          shutdownGraceTime: '2 seconds',
          alerts: { webhooks: config.alertWebhooks, secret: config.alertSecret },
          pool: { ...sandboxPoolSettings(config), intervalMs: opts.poolReconcileMs },
        });
  const running = workers?.run();
  // With reaper: this host's reaper Schedule, as a worker process makes it (deleted by stop()).
  const reaperSchedule = opts.reaper
    ? (await ensureReaperSchedule(client, { host: TEST_HOST, intervalSeconds: config.reaperIntervalSeconds || 3600 })).handle
    : undefined;
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
    newApp,
    keys,
    keyFor,
    audit,
    /** The audit store's file, when the stack opened it in SQLite (no `audit` given). */
    auditFile: opts.audit || shared ? undefined : auditFile,
    vault,
    api,
    reaperSchedule,
    /** The sandbox worker's warm pool (none kept unless config.sandboxPoolSize is set). */
    pool: workers?.pool,
    async stop() {
      await reaperSchedule?.delete();
      await realApp.channels.stop();
      workers?.shutdown();
      await running;
      await connection.close();
      if (shared) return shared.close();
      await spentModelCalls.close();
      await keys.close();
      if (!opts.audit) await audit.close();
      if (!opts.vault) await vault.close();
    },
  };
}

/** A Docker host that runs only the sandbox and watch workers, as a sandbox-only host's process does. */
export async function startSandboxHost(host: string, engine: Docker) {
  const workers = await createWorkers({
    temporal: { address: inject('temporalAddress') },
    namespace: 'default',
    dockerHostId: host,
    roles: ['sandbox'],
    payloadCodec: testPayloadCodec(),
    docker: engine,
    shutdownGraceTime: '2 seconds',
  });
  const running = workers.run();
  return {
    async stop() {
      workers.shutdown();
      await running;
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
  return waitFor(
    `agent ${id} to be ${statuses.join('|')}`,
    async () => {
      const res = await api('GET', `/api/agents/${id}`);
      return res.status === 200 && statuses.includes(res.body.status) ? (res.body as AgentRecord) : undefined;
    },
    timeoutMs,
  );
}

export const uniqueId = (prefix: string) => `${prefix}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;

/** Containers on the engine that are this agent's: made for it (its label), or a warm pool member claimed for it (its name). */
export async function containersOf(agentId: string) {
  const [labelled, named] = await Promise.all([
    docker.listContainers({ all: true, filters: { label: [`dev.warden.agent-id=${agentId}`] } }),
    docker.listContainers({ all: true, filters: { label: ['dev.warden.pool'], name: [`^/${containerName(agentId)}$`] } }),
  ]);
  return [...labelled, ...named.filter((c) => !labelled.some((l) => l.Id === c.Id))];
}

/**
 * With WARDEN_RECORD_HISTORIES=1, saves a workflow's history for the replay test (test/histories/<workflow type>/).
 * A history already there is kept (test/integration/history-checksums.test.ts pins it): to record anew, give
 * the new history a new name beside the old.
 */
export async function recordHistory(name: string, workflowId: string) {
  if (process.env.WARDEN_RECORD_HISTORIES !== '1') return;
  // The CLI writes the proto3 JSON that historyFromJSON reads back.
  const json = execFileSync(
    await temporalCli(),
    ['workflow', 'show', '--workflow-id', workflowId, '--output', 'json', '--address', inject('temporalAddress')],
    { maxBuffer: 512 * 1024 * 1024 },
  );
  const type = JSON.parse(json.toString('utf8')).events[0].workflowExecutionStartedEventAttributes.workflowType.name as string;
  const file = `${HISTORIES_DIR}/${historyFolder(type)}/${name}.json`;
  if (existsSync(file)) {
    console.warn(`${file} kept: recorded histories are never overwritten; record under a new name`);
    return;
  }
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, json);
}

type Stack = Awaited<ReturnType<typeof startStack>>;

/** Submits a shell command as an action (high risk: it waits for one approval). */
export function submitShell(api: Stack['api'], agentId: string, command: string) {
  return api('POST', '/api/actions', {
    action_type: 'skill_execution',
    skill_id: 'shell',
    operation: 'exec',
    agent_id: agentId,
    parameters: { command },
  });
}

/** Submits a shell command as an action with this API key (its holder is the requester). */
export async function submitShellAs(stack: Stack, key: string, agentId: string, command: string): Promise<ActionRecord> {
  const res = await stack.realApp.request('/api/actions', {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      action_type: 'skill_execution',
      skill_id: 'shell',
      operation: 'exec',
      agent_id: agentId,
      parameters: { command },
    }),
  });
  return (await res.json()) as ActionRecord;
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

/** Force-stops every agent on this suite's host whose workflow still runs, and waits until its container is gone. */
export async function stopLiveAgents(api: Stack['api']) {
  const listed = await api('GET', `/api/agents?host=${TEST_HOST}&limit=1000`);
  const live = (listed.body?.agents ?? []).filter((a: { workflow_status: string }) => a.workflow_status === 'RUNNING');
  for (const agent of live) await api('POST', `/api/agents/${agent.id}/stop`, { force: true });
  for (const agent of live) await waitFor(`agent ${agent.id}'s container to go`, async () => (await containersOf(agent.id)).length === 0);
}

/**
 * An environment to run one activity in, with an activity id of its own as each activity a
 * workflow schedules has: the sandbox executor runs a command once per id.
 */
export const activityEnv = (): MockActivityEnvironment =>
  new MockActivityEnvironment({ activityId: `test-${randomUUID()}` }, { logger: new DefaultLogger('ERROR') });
