/**
 * The worker process. Runs the control worker, this host's sandbox and watch workers, and the
 * model worker (WARDEN_WORKER_ROLES picks fewer). SIGINT/SIGTERM: in-flight activities get the grace period, the rest goes back to
 * Temporal, and a new worker carries on where this one stopped.
 */
import { Runtime, makeTelemetryFilterString } from '@temporalio/worker';
import { loadConfig } from '../domain/config.js';
import { createLogger } from '../telemetry/logger.js';
import { createWorkers, sandboxPoolSettings } from './create-workers.js';
import { modelBudgetSettings } from '../activities/budget.js';
import { Keyring } from '../domain/keyring.js';
import { openStores } from '../stores/open-stores.js';
import { createDataConverter, loadPayloadCodec } from '../domain/data-converter.js';
import { Client, Connection } from '@temporalio/client';
import { temporalConnection } from '../domain/temporal-connection.js';
import { ensureReaperSchedule } from './reaper-schedule.js';
import { startTracing } from '../telemetry/tracing.js';
import { loadPolicy } from '../domain/policy.js';
import { SKILLS } from '../skills/index.js';
import { loadProviderConfigs } from '../domain/model-providers.js';
import { ProviderRegistry } from '../llm/registry.js';

const config = loadConfig();
/** Where and how to reach Temporal (the profile's TLS files are read once, here). */
const temporal = temporalConnection(config);
const log = createLogger('warden-worker', config.logLevel);
Runtime.install({
  logger: {
    log: (level, message, meta) => log[level.toLowerCase() as 'info'](meta ?? {}, message),
    trace: (m, meta) => log.trace(meta ?? {}, m),
    debug: (m, meta) => log.debug(meta ?? {}, m),
    info: (m, meta) => log.info(meta ?? {}, m),
    warn: (m, meta) => log.warn(meta ?? {}, m),
    error: (m, meta) => log.error(meta ?? {}, m),
  },
  telemetryOptions: {
    logging: { filter: makeTelemetryFilterString({ core: 'WARN' }) },
    // The SDK's own metrics (workflow and activity task latencies, pollers, slots), for Prometheus to scrape.
    ...(config.sdkMetricsAddress ? { metrics: { prometheus: { bindAddress: config.sdkMetricsAddress } } } : {}),
  },
  // Our own handlers below: they also tell the activities that the shutdown has begun.
  shutdownSignals: [],
});
const tracing = config.otelEndpoint ? startTracing(config.otelEndpoint, 'warden-worker') : undefined;

const roles = config.workerRoles;

const payloadCodec = loadPayloadCodec(config, log);
const dataConverter = createDataConverter(payloadCodec);

async function ensureHostReaperSchedule() {
  const connection = await Connection.connect(temporal.connectionOptions());
  try {
    // The schedule's workflow input is a payload like any other: encrypted.
    const client = new Client({ connection, namespace: config.temporalNamespace, dataConverter });
    const { handle, outcome } = await ensureReaperSchedule(client, {
      host: config.dockerHostId,
      intervalSeconds: config.reaperIntervalSeconds,
    });
    log.info({ schedule: handle.scheduleId, outcome, intervalSeconds: config.reaperIntervalSeconds }, 'reaper schedule');
  } finally {
    await connection.close();
  }
}

// Once: Ctrl-C reaches `make up` and the worker alike, and `make up` then sends its own SIGTERM.
// A signal during start-up stops the workers as soon as they exist.
let stopRequested = false;
let shutdown: () => void = () => undefined;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopRequested) return;
    stopRequested = true;
    log.info(
      { signal, grace_seconds: config.workerShutdownGraceSeconds },
      'worker shutting down: no new tasks; in-flight activities may finish',
    );
    shutdown();
  });
}

try {
  const keyring = Keyring.load({
    dataDir: config.dataDir,
    masterKey: config.masterKey,
    previousMasterKeys: config.masterKeyPrevious,
    onKeyFileCreated: (path) => log.warn({ path }, 'created the master key file; back it up: without it the vault cannot be read'),
  });
  // The API owns the key store; the audit store only asks it which key ids exist, to verify actors.
  const stores = await openStores(config, keyring, {
    audit: roles.includes('control'),
    // The sandbox worker reads actions' secrets, the model worker the providers' keys; the control worker no secret.
    vault: roles.includes('sandbox') || roles.includes('model'),
    // Those that act for a conversation's requester check the key is not revoked; the sandbox worker reads no key.
    keyIds: roles.includes('control') || roles.includes('model'),
    // The model workers of every process agree there on which model-call grants were spent.
    modelCalls: roles.includes('model'),
  });
  const { audit, vault, keyIds, modelCalls } = stores;
  const workers = await createWorkers({
    audit,
    vault,
    temporal: temporal.connectionOptions(),
    namespace: config.temporalNamespace,
    dockerHostId: config.dockerHostId,
    roles,
    payloadCodec,
    policy: roles.includes('control') ? loadPolicy(SKILLS, config.policyFile) : undefined,
    alerts: { webhooks: config.alertWebhooks, secret: config.alertSecret },
    tracing,
    conversations: keyIds && {
      isRevoked: (id) => keyIds.isRevoked(id),
      approvalExpirySeconds: config.approvalExpirySeconds,
      budget: modelBudgetSettings(config, loadProviderConfigs(config)),
      ...(config.alertWebhooks.length ? { alertPendingSeconds: config.alertApprovalPendingSeconds } : {}),
    },
    providers: roles.includes('model') ? new ProviderRegistry({ configs: loadProviderConfigs(config), vault, logger: log }) : undefined,
    spentModelCalls: modelCalls,
    sandboxSlots: config.sandboxSlots,
    watchSlots: config.watchSlots,
    pool: sandboxPoolSettings(config),
    shutdownGraceTime: `${config.workerShutdownGraceSeconds} seconds`,
    // A last resort for an activity that ignores its cancellation: the process still ends.
    shutdownForceTime: `${config.workerShutdownGraceSeconds + 30} seconds`,
  });
  if (stopRequested) workers.shutdown();
  else shutdown = () => workers.shutdown();
  log.info(
    {
      roles,
      host: config.dockerHostId,
      temporal: temporal.summary(),
      sdk_metrics: config.sdkMetricsAddress ?? null,
      tracing: Boolean(tracing),
    },
    'worker started',
  );
  // The host's reaper Schedule: whoever serves the host makes sure it exists, while polling
  // already runs. Without it the worker still serves its agents: a failure is logged, not fatal.
  const schedule =
    roles.includes('sandbox') && config.reaperIntervalSeconds > 0
      ? ensureHostReaperSchedule().catch((err) =>
          log.error({ err }, 'could not make the reaper schedule; containers of terminated workflows will not be reaped'),
        )
      : undefined;
  await Promise.all([workers.run(), schedule]);
  await tracing?.shutdown();
  await stores.close();
  log.info('worker stopped');
} catch (err) {
  log.fatal({ err }, 'worker failed');
  process.exit(1);
}
