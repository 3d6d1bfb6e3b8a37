/**
 * Warden's configuration: one zod-validated object read once at start-up from the environment,
 * with defaults that work on a fresh machine.
 */
import { z } from 'zod';
import { SandboxRuntimeSchema } from './agent.js';
import { DEFAULT_RATE_LIMITS, parseRateLimits } from './rate-limits.js';

// A boolean from the environment; an already-parsed boolean (a Config handed back in) stays as it is.
const bool = z.preprocess(
  (v) => (typeof v === 'boolean' ? String(v) : v),
  z.enum(['1', '0', 'true', 'false', 'yes', 'no']).transform((v) => v === '1' || v === 'true' || v === 'yes'),
);

export const ConfigSchema = z.object({
  temporalAddress: z.string().min(1).default('127.0.0.1:7233'),
  temporalNamespace: z.string().min(1).default('default'),
  /** mTLS to Temporal (domain/temporal-tls.ts): the CA that signed the frontend's certificate (PEM file). */
  temporalTlsCa: z.string().min(1).optional(),
  /** mTLS to Temporal: this process's client certificate and its key (PEM files), both or neither. */
  temporalTlsCert: z.string().min(1).optional(),
  temporalTlsKey: z.string().min(1).optional(),
  /** mTLS to Temporal: the name the frontend's certificate must carry, when not the address's host. */
  temporalTlsServerName: z.string().min(1).optional(),
  /** Identifies this worker's Docker host; sandbox activities run on its own task queue. */
  dockerHostId: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/).default('local'),
  sandboxImage: z.string().min(1).default('warden-sandbox:bookworm'),
  /** auto: the strongest runtime the engine has (runsc, then kata, then runc with a warning). */
  sandboxRuntime: z.union([z.literal('auto'), SandboxRuntimeSchema]).default('auto'),
  /** Fail closed (the default): never run an agent under plain runc; off, an admin may ask for runc. */
  requireSandbox: bool.default(true),
  /** Admission: the share of the Docker host's memory the limits of its agents may reserve in all (1.0: no overcommit). */
  memoryOvercommit: z.coerce.number().min(0.1).max(10).default(1),
  /** Admission: the host's cores times this is the CPU the limits of its agents may reserve in all (CPU is shared, not lost). */
  cpuOvercommit: z.coerce.number().min(0.1).max(64).default(4),
  /** The largest cpu_cores an agent created by a non-admin key may ask for (admins: up to 64). */
  operatorMaxCpuCores: z.coerce.number().min(0.05).max(64).default(2),
  /** The largest memory_mb (MiB) an agent created by a non-admin key may ask for (admins: up to 65536). */
  operatorMaxMemoryMb: z.coerce.number().int().min(32).max(65536).default(2048),
  /** The largest disk_mb (MiB of /workspace) an agent created by a non-admin key may ask for (admins: up to 65536). */
  operatorMaxDiskMb: z.coerce.number().int().min(1).max(65536).default(1024),
  /** The largest max_processes an agent created by a non-admin key may ask for (admins: up to 32768). */
  operatorMaxProcesses: z.coerce.number().int().min(8).max(32768).default(512),
  maxAgents: z.coerce.number().int().min(1).max(10_000).default(50),
  agentIdleTtlSeconds: z.coerce.number().int().min(10).default(3600),
  stopGraceSeconds: z.coerce.number().int().min(0).max(300).default(10),
  /** After SIGTERM, how long a worker lets in-flight activities finish before handing them back to Temporal. */
  workerShutdownGraceSeconds: z.coerce.number().int().min(0).max(3600).default(30),
  /** After SIGTERM, how long the API lets open requests finish before closing their connections. */
  apiShutdownGraceSeconds: z.coerce.number().int().min(0).max(3600).default(10),
  apiHost: z.string().default('127.0.0.1'),
  apiPort: z.coerce.number().int().min(0).max(65535).default(8080),
  /** `make up` only: where the embedded Temporal dev server keeps its SQLite file, and its ports. */
  dataDir: z.string().min(1).default('.warden/data'),
  devServerPort: z.coerce.number().int().min(1).max(65535).default(7233),
  devServerUiPort: z.coerce.number().int().min(1).max(65535).default(8233),
  /** Unapproved actions expire after this long and never run. */
  approvalExpirySeconds: z.coerce.number().int().min(1).max(30 * 24 * 3600).default(1800),
  /** The policy file; the shipped default policy when unset. */
  policyFile: z.string().min(1).optional(),
  /** An admin API key to accept (at least 24 characters); without one, the API makes one on first start. */
  adminApiKey: z.string().min(24, 'at least 24 characters').optional(),
  /** The master key (base64 of 32 bytes) for the vault and payload encryption; a key file in dataDir when unset. */
  masterKey: z.string().min(1).optional(),
  /** Older master keys (comma-separated), kept to decrypt what they encrypted. */
  masterKeyPrevious: z.string().min(1).optional(),
  /** Migration only: accept Temporal payloads that are not encrypted (written before payload encryption). */
  payloadAllowPlaintext: bool.default(false),
  /** Web UI origins allowed to call the codec server (comma-separated); the dev server's UI when unset. */
  codecCorsOrigins: z.string().min(1).optional(),
  /** Token buckets per route group, per API key and per client address (domain/rate-limits.ts); `off` turns them off. */
  rateLimits: z
    .string()
    .default(DEFAULT_RATE_LIMITS)
    .superRefine((text, ctx) => {
      try {
        parseRateLimits(text);
      } catch (err) {
        ctx.addIssue({ code: 'custom', message: (err as Error).message });
      }
    }),
  /** Reverse proxies in front of the API whose X-Forwarded-For is believed; 0: the socket address is the client. */
  trustProxy: z.coerce.number().int().min(0).max(10).default(0),
  /** Browser origins allowed to call /api (comma-separated); none by default. */
  corsOrigins: z.string().default(''),
  /** The largest request body the API reads. */
  maxBodyBytes: z.coerce.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Alert webhook URLs (comma-separated); none: alerts are off. */
  alertWebhooks: z.preprocess(
    (v) => (typeof v === 'string' ? v.split(',').map((u) => u.trim()).filter(Boolean) : v),
    z.array(z.url({ protocol: /^https?$/, error: 'each webhook must be an http(s) URL' })).max(20),
  ).default([]),
  /** The HMAC-SHA256 key that signs every alert (required with webhooks). */
  alertSecret: z.string().min(32, 'at least 32 characters').optional(),
  /** Alert when an action has awaited approval this long. */
  alertApprovalPendingSeconds: z.coerce.number().int().min(1).default(900),
  /** Alert when admitted agents reach this percentage of WARDEN_MAX_AGENTS. */
  alertCapacityPercent: z.coerce.number().int().min(1).max(100).default(90),
  /** How often the reaper runs on each Docker host (its Temporal Schedule's interval); 0: this process makes no schedule. */
  reaperIntervalSeconds: z.coerce
    .number()
    .int()
    .max(7 * 24 * 3600)
    .refine((v) => v === 0 || v >= 10, '0 (no schedule) or at least 10 seconds')
    .default(300),
  /** A bearer token /metrics requires (16+ characters); without it /metrics is open on the API's address. */
  metricsToken: z.string().min(16, 'at least 16 characters').optional(),
  /** At most this many sandboxes get per-container gauges in /metrics. */
  metricsMaxContainers: z.coerce.number().int().min(0).max(10_000).default(100),
  /** Worker only: host:port where the Temporal SDK serves its Prometheus metrics; off when unset. */
  sdkMetricsAddress: z.string().regex(/^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port').optional(),
  /** OTLP/HTTP collector base URL (e.g. http://127.0.0.1:4318): OpenTelemetry tracing is on when set. */
  otelEndpoint: z.url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:4318' }).optional(),
}).refine((c) => c.alertWebhooks.length === 0 || c.alertSecret !== undefined, {
  path: ['alertSecret'],
  message: 'required when WARDEN_ALERT_WEBHOOKS is set: alerts are always signed',
}).refine((c) => (c.temporalTlsCert === undefined) === (c.temporalTlsKey === undefined), {
  path: ['temporalTlsKey'],
  message: 'a client certificate needs its key and a key its certificate: set both WARDEN_TEMPORAL_TLS_CERT and WARDEN_TEMPORAL_TLS_KEY, or neither',
});
export type Config = z.infer<typeof ConfigSchema>;

const ENV: Record<keyof Config, string> = {
  temporalAddress: 'TEMPORAL_ADDRESS',
  temporalNamespace: 'TEMPORAL_NAMESPACE',
  temporalTlsCa: 'WARDEN_TEMPORAL_TLS_CA',
  temporalTlsCert: 'WARDEN_TEMPORAL_TLS_CERT',
  temporalTlsKey: 'WARDEN_TEMPORAL_TLS_KEY',
  temporalTlsServerName: 'WARDEN_TEMPORAL_TLS_SERVER_NAME',
  dockerHostId: 'WARDEN_DOCKER_HOST_ID',
  sandboxImage: 'WARDEN_SANDBOX_IMAGE',
  sandboxRuntime: 'WARDEN_SANDBOX_RUNTIME',
  requireSandbox: 'WARDEN_REQUIRE_SANDBOX',
  memoryOvercommit: 'WARDEN_MEMORY_OVERCOMMIT',
  cpuOvercommit: 'WARDEN_CPU_OVERCOMMIT',
  operatorMaxCpuCores: 'WARDEN_OPERATOR_MAX_CPU_CORES',
  operatorMaxMemoryMb: 'WARDEN_OPERATOR_MAX_MEMORY_MB',
  operatorMaxDiskMb: 'WARDEN_OPERATOR_MAX_DISK_MB',
  operatorMaxProcesses: 'WARDEN_OPERATOR_MAX_PROCESSES',
  maxAgents: 'WARDEN_MAX_AGENTS',
  agentIdleTtlSeconds: 'WARDEN_AGENT_IDLE_TTL_SECONDS',
  stopGraceSeconds: 'WARDEN_STOP_GRACE_SECONDS',
  workerShutdownGraceSeconds: 'WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS',
  apiShutdownGraceSeconds: 'WARDEN_API_SHUTDOWN_GRACE_SECONDS',
  apiHost: 'WARDEN_API_HOST',
  apiPort: 'WARDEN_API_PORT',
  dataDir: 'WARDEN_DATA_DIR',
  devServerPort: 'WARDEN_TEMPORAL_PORT',
  devServerUiPort: 'WARDEN_TEMPORAL_UI_PORT',
  approvalExpirySeconds: 'WARDEN_APPROVAL_EXPIRY_SECONDS',
  policyFile: 'WARDEN_POLICY_FILE',
  adminApiKey: 'WARDEN_ADMIN_API_KEY',
  masterKey: 'WARDEN_MASTER_KEY',
  masterKeyPrevious: 'WARDEN_MASTER_KEY_PREVIOUS',
  payloadAllowPlaintext: 'WARDEN_PAYLOAD_ALLOW_PLAINTEXT',
  codecCorsOrigins: 'WARDEN_CODEC_CORS_ORIGINS',
  rateLimits: 'WARDEN_RATE_LIMITS',
  trustProxy: 'WARDEN_TRUST_PROXY',
  corsOrigins: 'WARDEN_CORS_ORIGINS',
  maxBodyBytes: 'WARDEN_MAX_BODY_BYTES',
  logLevel: 'WARDEN_LOG_LEVEL',
  alertWebhooks: 'WARDEN_ALERT_WEBHOOKS',
  alertSecret: 'WARDEN_ALERT_SECRET',
  alertApprovalPendingSeconds: 'WARDEN_ALERT_APPROVAL_PENDING_SECONDS',
  alertCapacityPercent: 'WARDEN_ALERT_CAPACITY_PERCENT',
  reaperIntervalSeconds: 'WARDEN_REAPER_INTERVAL_SECONDS',
  metricsToken: 'WARDEN_METRICS_TOKEN',
  metricsMaxContainers: 'WARDEN_METRICS_MAX_CONTAINERS',
  sdkMetricsAddress: 'WARDEN_SDK_METRICS_ADDRESS',
  otelEndpoint: 'WARDEN_OTEL_ENDPOINT',
};

/** Reads the configuration; a bad value fails start-up with the variable's name and the problem. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {};
  for (const [key, name] of Object.entries(ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${ENV[i.path[0] as keyof Config]}: ${i.message}`);
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}
