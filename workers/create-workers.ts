/**
 * The workers of one Warden process: the control worker (workflows and control activities), the
 * sandbox worker and the watch worker of this process's Docker host, and the model worker (model
 * calls, with the providers' keys). Tests build them the
 * same way.
 */
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import type { TemporalConnectionOptions } from '../domain/temporal-connection.js';
import type { Duration } from '@temporalio/common';
import { NativeConnection, Runtime, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createAuditActivities } from '../activities/audit.js';
import type { AuditStore } from '../stores/audit-store.js';
import { createControlActivities } from '../activities/control.js';
import { createAlertActivities, type AlertSettings } from '../activities/alerts.js';
import { createEmergencyActivities } from '../activities/emergency.js';
import { createSandboxActivities, shareWorkspace } from '../activities/sandbox.js';
import { SandboxPool, type SandboxPoolOptions } from '../sandbox/pool.js';
import { heldLockdown } from '../stores/lockdown-record.js';
import { parsePoolProfiles } from '../domain/sandbox-pool.js';
import type { Config } from '../domain/config.js';
import { createSandboxWatchActivities } from '../activities/sandbox-watch.js';
import { ContainerEvents } from '../sandbox/container-events.js';
import { createGrantActivities, guardSandboxActivities } from '../activities/grants.js';
import { createDataConverter, createWorkerDataConverter } from '../domain/data-converter.js';
import { Grants } from '../domain/grants.js';
import type { PayloadEncryptionCodec } from '../domain/payload-codec.js';
import type { Policy } from '../domain/policy.js';
import type { Vault } from '../stores/vault.js';
import { createReaperControlActivities, createReaperSandboxActivities } from '../activities/reaper.js';
import { CONTROL_TASK_QUEUE, MODEL_TASK_QUEUE, sandboxTaskQueue, sandboxWatchTaskQueue } from '../workflows/definitions.js';
import { createConversationActivities, type ConversationSettings } from '../activities/conversation.js';
import { createModelActivities, MODEL_TEXT_INTERVAL } from '../activities/model.js';
import { createBudgetActivities } from '../activities/budget.js';
import type { ProviderRegistry } from '../llm/registry.js';
import type { ModelCallLedger } from '../stores/model-call-ledger.js';
import { WORKFLOWS_PATH } from './bundle.js';
import { workerTracingOptions, type Tracing } from '../telemetry/tracing.js';

export interface WorkerOptions {
  /** Where and how to reach Temporal's frontend: domain/temporal-connection.ts. */
  temporal: TemporalConnectionOptions;
  namespace: string;
  dockerHostId: string;
  /** Which workers this process runs: a Docker host may run only the sandbox worker (and its watch worker). */
  roles: ReadonlyArray<'control' | 'sandbox' | 'model'>;
  /** Sandbox activities the sandbox worker runs at once (100, the SDK's default, when unset). */
  sandboxSlots?: number;
  /** Sandbox watches the watch worker holds at once, one per agent (10000 when unset). */
  watchSlots?: number;
  /**
   * Warden's payload codec: required, so no worker runs unencrypted. Its master keys also check
   * the API's grants (domain/grants.ts).
   */
  payloadCodec: PayloadEncryptionCodec;
  /** The policy the control worker decides actions with again (required with the control role). */
  policy?: Policy;
  /** The audit log the control worker writes (required with the control role). */
  audit?: AuditStore;
  docker?: Docker;
  /** The secrets vault the sandbox worker reads actions' secrets from; without it, actions naming secrets fail. */
  vault?: Vault;
  workflowBundle?: WorkflowBundleWithSourceMap | { codePath: string };
  /** How long in-flight activities may finish after a shutdown signal. */
  shutdownGraceTime?: Duration;
  /** When a shutdown gives up waiting for activities that ignore their cancellation (no limit by default). */
  shutdownForceTime?: Duration;
  identity?: string;
  /** Alert webhooks and their signing secret (none: no alert is raised). */
  alerts?: AlertSettings;
  /**
   * How the control and model workers act for conversations: revoked keys (the API's key store,
   * read-only) and the approval settings the API prepares actions with. Without it every
   * conversation is refused: no model is called, no tool call becomes an action.
   */
  conversations?: ConversationSettings;
  /** The model providers the model worker calls (required with the model role). */
  providers?: ProviderRegistry;
  /** Which model calls spent their single-use grants, shared by every model worker; without it the model worker calls no model. */
  spentModelCalls?: ModelCallLedger;
  /** OpenTelemetry tracing (telemetry/tracing.ts); the workflows are then bundled with its interceptors, never from workflowBundle. */
  tracing?: Tracing;
  /** The sandbox worker's warm pool (sandbox/pool.ts); none kept when unset (its leftovers are still removed). */
  pool?: Omit<SandboxPoolOptions, 'host' | 'lockedDown' | 'prepare' | 'onError'>;
}

/** The warm pool as the configuration sets it (WARDEN_SANDBOX_POOL_*, and the image and runtime agents get). */
export const sandboxPoolSettings = (
  config: Pick<Config, 'sandboxPoolSize' | 'sandboxPoolProfiles' | 'sandboxImage' | 'sandboxRuntime' | 'requireSandbox'>,
): NonNullable<WorkerOptions['pool']> => ({
  size: config.sandboxPoolSize,
  profiles: parsePoolProfiles(config.sandboxPoolProfiles),
  image: config.sandboxImage,
  defaultRuntime: config.sandboxRuntime,
  requireSandbox: config.requireSandbox,
});

const NO_POOL: NonNullable<WorkerOptions['pool']> = { image: '', size: 0, profiles: [], defaultRuntime: 'auto', requireSandbox: true };

export async function createWorkers(opts: WorkerOptions) {
  const connection = await NativeConnection.connect(opts.temporal);
  const workers: Worker[] = [];
  const grants = new Grants(opts.payloadCodec.keyring);
  const dataConverter = createWorkerDataConverter(opts.payloadCodec);
  const common = {
    connection,
    namespace: opts.namespace,
    dataConverter,
    shutdownGraceTime: opts.shutdownGraceTime ?? '30 seconds',
    ...(opts.identity ? { identity: opts.identity } : {}),
  };
  if (opts.shutdownForceTime) Object.assign(common, { shutdownForceTime: opts.shutdownForceTime });
  // Aborted when shutdown begins: activities that would never end on their own (the sandbox
  // watchers) hand themselves back to Temporal at once instead of holding the grace period.
  const draining = new AbortController();
  let clientConnection: Connection | undefined;
  if (opts.roles.includes('control')) {
    if (!opts.audit) throw new Error('the control worker needs the audit store');
    if (!opts.policy) throw new Error('the control worker needs the policy');
    clientConnection = await Connection.connect(opts.temporal);
    const client = new Client({
      connection: clientConnection,
      namespace: opts.namespace,
      dataConverter: createDataConverter(opts.payloadCodec),
    });
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: CONTROL_TASK_QUEUE,
        ...(opts.workflowBundle && !opts.tracing ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
        activities: {
          ...createControlActivities(client, opts.audit),
          ...createAuditActivities(opts.audit),
          ...createEmergencyActivities(client, opts.audit),
          ...createAlertActivities(client, opts.alerts ?? { webhooks: [] }),
          ...createReaperControlActivities(client),
          ...createGrantActivities({ grants, policy: opts.policy }),
          ...createConversationActivities({ client, grants, policy: opts.policy, settings: opts.conversations }),
          ...createBudgetActivities({ grants, audit: opts.audit, settings: opts.conversations }),
        },
        ...(opts.tracing ? workerTracingOptions(opts.tracing) : {}),
      }),
    );
  }
  let events: ContainerEvents | undefined;
  let pool: SandboxPool | undefined;
  if (opts.roles.includes('sandbox')) {
    const docker = opts.docker ?? new Docker();
    const logger = Runtime.instance().logger;
    // The pool stops under a lockdown: it asks the capacity workflow, which holds it.
    const lockdownReader = opts.pool?.size
      ? new Client({
          connection: (clientConnection ??= await Connection.connect(opts.temporal)),
          namespace: opts.namespace,
          dataConverter: createDataConverter(opts.payloadCodec),
        })
      : undefined;
    pool = new SandboxPool(docker, {
      ...(opts.pool ?? NO_POOL),
      host: opts.dockerHostId,
      lockedDown: async () => (lockdownReader ? (await heldLockdown(lockdownReader)) !== null : false),
      prepare: shareWorkspace,
      onError: (err) => logger.warn('the warm sandbox pool could not do its work; it tries again', { error: String(err) }),
    });
    events = new ContainerEvents(docker, {
      // The watches' state checks cover what a lost stream misses: worth a line, not a failure.
      onError: (err) => Runtime.instance().logger.warn('the Docker events stream was lost; opening it again', { error: String(err) }),
    });
    const watch = createSandboxWatchActivities(docker, { events, draining: draining.signal });
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: sandboxTaskQueue(opts.dockerHostId),
        maxConcurrentActivityTaskExecutions: opts.sandboxSlots ?? 100,
        activities: {
          ...guardSandboxActivities(grants, createSandboxActivities(docker, { vault: opts.vault, events, pool })),
          ...createReaperSandboxActivities(docker, pool),
          // Watches scheduled before they had a queue of their own are retried on this one.
          ...watch,
        },
        ...(opts.tracing ? workerTracingOptions(opts.tracing) : {}),
      }),
      // Every agent of the host holds a watch for as long as it lives: they get slots of their own.
      await Worker.create({
        ...common,
        taskQueue: sandboxWatchTaskQueue(opts.dockerHostId),
        maxConcurrentActivityTaskExecutions: opts.watchSlots ?? 10_000,
        activities: watch,
        ...(opts.tracing ? workerTracingOptions(opts.tracing) : {}),
      }),
    );
  }
  if (opts.roles.includes('model')) {
    if (!opts.providers) throw new Error('the model worker needs the model providers');
    // No Docker, no audit store, no workflows: it holds the providers' keys and calls models, nothing else.
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: MODEL_TASK_QUEUE,
        activities: createModelActivities({
          grants,
          providers: opts.providers,
          settings: opts.conversations,
          spentCalls: opts.spentModelCalls,
        }),
        // A streamed answer's text so far reaches the server this often, for event streams to show as it comes.
        maxHeartbeatThrottleInterval: MODEL_TEXT_INTERVAL,
        ...(opts.tracing ? workerTracingOptions(opts.tracing) : {}),
      }),
    );
  }
  return {
    workers,
    pool,
    /** Runs until every worker has shut down (Ctrl-C, SIGTERM, or shutdown()). */
    async run() {
      try {
        const running = Promise.all(workers.map((w) => w.run()));
        // Once the workers poll: the pool's first lockdown read is a query the control worker answers.
        pool?.start();
        await running;
      } finally {
        events?.close();
        await pool?.stop();
        await clientConnection?.close();
        await connection.close();
      }
    },
    shutdown() {
      draining.abort();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
