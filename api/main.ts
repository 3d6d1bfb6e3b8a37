/** The API process: the Hono app on WARDEN_API_HOST:WARDEN_API_PORT (127.0.0.1:8080 by default). */
import { serve } from '@hono/node-server';
import type { Server } from 'node:http';
import { join, resolve } from 'node:path';
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { temporalConnection } from '../domain/temporal-connection.js';
import { loadConfig } from '../domain/config.js';
import { createLogger } from '../telemetry/logger.js';
import { createApp } from './app.js';
import { openStores } from '../stores/open-stores.js';
import { loadPolicy } from '../domain/policy.js';
import { SKILLS } from '../skills/index.js';
import { ChannelStore } from '../stores/channel-store.js';
import { Keyring } from '../domain/keyring.js';
import { createDataConverter, loadPayloadCodec } from '../domain/data-converter.js';
import { clientTracingInterceptors, startTracing } from '../telemetry/tracing.js';

const config = loadConfig();
const logger = createLogger('warden-api', config.logLevel);
const payloadCodec = loadPayloadCodec(config, logger);
const temporal = temporalConnection(config);
logger.info({ temporal: temporal.summary() }, 'connecting to Temporal');
const connection = await Connection.connect(temporal.connectionOptions());
const tracing = config.otelEndpoint ? startTracing(config.otelEndpoint, 'warden-api') : undefined;
const client = new Client({
  connection,
  namespace: config.temporalNamespace,
  dataConverter: createDataConverter(payloadCodec),
  ...(tracing ? { interceptors: clientTracingInterceptors() } : {}),
});
// The policy is validated once, here: a bad policy file stops the API with the rule and field at fault.
const policy = loadPolicy(SKILLS, config.policyFile);
const keyring = Keyring.load({
  dataDir: config.dataDir,
  masterKey: config.masterKey,
  previousMasterKeys: config.masterKeyPrevious,
  onKeyFileCreated: (path) => logger.warn({ path }, 'created the master key file; back it up: without it the vault cannot be read'),
});
const stores = await openStores(config, keyring, { keys: true, audit: true, vault: true });
const keys = stores.keys!;
const audit = stores.audit!;
const vault = stores.vault!;
if (config.adminApiKey) {
  if (await keys.ensure('admin (WARDEN_ADMIN_API_KEY)', 'admin', config.adminApiKey))
    logger.info('admin API key from WARDEN_ADMIN_API_KEY registered');
} else if (!(await keys.hasActiveAdmin())) {
  // Shown once, on the terminal, never in the structured log: only its hash is kept.
  const admin = await keys.create('admin (first start)', 'admin', 'system');
  process.stderr.write(`\n  Warden admin API key (shown once, store it now): ${admin.key}\n\n`);
  logger.warn({ key_id: admin.id }, 'created the first admin API key; it was shown once on stderr');
}
// The chat channels' pairings and cards stay on this host's disk (one API process serves the channels).
const channelStore = ChannelStore.open(join(resolve(config.dataDir), 'channels.db'));
const app = createApp({ client, docker: new Docker(), config, logger, keys, audit, policy, vault, payloadCodec, channelStore });

const server = serve({ fetch: app.fetch, hostname: config.apiHost, port: config.apiPort }, (info) =>
  logger.info({ url: `http://${config.apiHost}:${info.port}`, docs: `http://${config.apiHost}:${info.port}/docs` }, 'API listening'),
);

// Stop accepting connections, let open requests finish within the grace period (then cut them
// off), then close the Temporal connection and the stores. Once: a signal may reach npm, tsx and
// node alike, and each passes it on.
let stopping = false;
const shutdown = (signal: string) => {
  if (stopping) return;
  stopping = true;
  logger.info({ signal, grace_seconds: config.apiShutdownGraceSeconds }, 'API shutting down: no new connections; open requests may finish');
  server.close(
    () =>
      void Promise.allSettled([app.channels.stop(), connection.close(), tracing?.shutdown()]).finally(
        () => void stores.close().finally(() => (channelStore.close(), process.exit(0))),
      ),
  );
  const http = server as Server;
  // Idle keep-alive connections would hold close() open: close each as it becomes idle.
  const idle = setInterval(() => http.closeIdleConnections(), 100);
  setTimeout(() => {
    clearInterval(idle);
    logger.warn('API shutdown grace period over: closing the connections still open');
    http.closeAllConnections();
  }, config.apiShutdownGraceSeconds * 1000).unref();
  idle.unref();
  // A last resort should closing the Temporal connection hang.
  setTimeout(() => process.exit(1), (config.apiShutdownGraceSeconds + 10) * 1000).unref();
};
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
