/**
 * Warden's configuration: one zod-validated object read once at start-up from the environment,
 * with defaults that work on a fresh machine.
 */
import { z } from 'zod';
import { SandboxRuntimeSchema } from './agent.js';

// A boolean from the environment; an already-parsed boolean (a Config handed back in) stays as it is.
const bool = z.preprocess(
  (v) => (typeof v === 'boolean' ? String(v) : v),
  z.enum(['1', '0', 'true', 'false', 'yes', 'no']).transform((v) => v === '1' || v === 'true' || v === 'yes'),
);

export const ConfigSchema = z.object({
  temporalAddress: z.string().min(1).default('127.0.0.1:7233'),
  temporalNamespace: z.string().min(1).default('default'),
  /** Identifies this worker's Docker host; sandbox activities run on its own task queue. */
  dockerHostId: z.string().regex(/^[a-z0-9][a-z0-9.-]*$/).default('local'),
  sandboxImage: z.string().min(1).default('warden-sandbox:bookworm'),
  /** auto: the strongest runtime the engine has (runsc, then kata, then runc with a warning). */
  sandboxRuntime: z.union([z.literal('auto'), SandboxRuntimeSchema]).default('auto'),
  /** Fail closed: never run an agent under plain runc. */
  requireSandbox: bool.default(false),
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
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});
export type Config = z.infer<typeof ConfigSchema>;

const ENV: Record<keyof Config, string> = {
  temporalAddress: 'TEMPORAL_ADDRESS',
  temporalNamespace: 'TEMPORAL_NAMESPACE',
  dockerHostId: 'WARDEN_DOCKER_HOST_ID',
  sandboxImage: 'WARDEN_SANDBOX_IMAGE',
  sandboxRuntime: 'WARDEN_SANDBOX_RUNTIME',
  requireSandbox: 'WARDEN_REQUIRE_SANDBOX',
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
  logLevel: 'WARDEN_LOG_LEVEL',
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
