/**
 * Warden's configuration: one zod-validated object read once at start-up from the environment,
 * with defaults that work on a fresh machine.
 */
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { AgentIdSchema, SandboxRuntimeSchema } from './agent.js';
import { AgentBudgetSchema, ModelPriceSchema } from './budget.js';
import { DEFAULT_RATE_LIMITS, parseRateLimits } from './rate-limits.js';
import { parsePoolProfiles } from './sandbox-pool.js';
import { DOCKER_HOST_ID } from './host-capacity.js';
import { loadTemporalProfile, type TemporalProfile } from './temporal-connection.js';

// A boolean from the environment; an already-parsed boolean (a Config handed back in) stays as it is.
const bool = z.preprocess(
  (v) => (typeof v === 'boolean' ? String(v) : v),
  z.enum(['1', '0', 'true', 'false', 'yes', 'no']).transform((v) => v === '1' || v === 'true' || v === 'yes'),
);

/** A list from the environment's comma-separated string; an already-parsed list stays as it is. */
const commaSeparated = <T extends z.ZodType>(list: T) =>
  z.preprocess(
    (v) =>
      typeof v === 'string'
        ? v
            .split(',')
            .map((item) => item.trim())
            .filter(Boolean)
        : v,
    list,
  );

/**
 * Which agent each chat room talks to, from the environment's `<room>=<agent id>,…`; an
 * already-parsed map stays as it is. At most 20 rooms, as for a channel's card rooms.
 */
const roomAgents = (room: z.ZodString) =>
  z
    .preprocess(
      (v) =>
        typeof v === 'string'
          ? Object.fromEntries(
              v
                .split(',')
                .map((pair) => pair.trim())
                .filter(Boolean)
                .map((pair) => pair.split('=').map((part) => part.trim())),
            )
          : v,
      z.record(room, AgentIdSchema).refine((rooms) => Object.keys(rooms).length <= 20, 'at most 20 rooms talk to agents'),
    )
    .default({});

/** JSON from the environment; an already-parsed value stays as it is, and text that is not JSON fails the schema. */
const json = <T extends z.ZodType>(schema: T) =>
  z.preprocess((v) => {
    if (typeof v !== 'string') return v;
    try {
      return JSON.parse(v) as unknown;
    } catch {
      return v;
    }
  }, schema);

const budgetDefault = (field: keyof typeof AgentBudgetSchema.shape) => z.coerce.number().pipe(AgentBudgetSchema.shape[field].unwrap());

const WORKER_ROLES = ['control', 'sandbox', 'model'] as const;

/** Every setting says what it does (`.describe`): docs/configuration.md is generated from these texts. */
export const ConfigSchema = z
  .object({
    temporalAddress: z
      .string()
      .min(1)
      .default('127.0.0.1:7233')
      .describe(
        "The Temporal frontend (host:port) the API and the workers connect to; unset, the Temporal profile's address (`TEMPORAL_PROFILE`), else the default. `make up` starts its dev server only when neither names one.",
      ),
    temporalNamespace: z
      .string()
      .min(1)
      .default('default')
      .describe(
        "The Temporal namespace Warden runs in; unset, the Temporal profile's namespace, else `default`. Warden's search attributes must be registered there ([deployment.md](deployment.md#warden-on-a-temporal-cluster)).",
      ),
    temporalConfigFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        "The Temporal CLI's TOML file of connection profiles (address, namespace, API key, TLS), read by every process; it must exist when set. Unset: `~/.config/temporalio/temporal.toml` when there is one. See [Connecting to Temporal](#connecting-to-temporal) for what wins over it.",
      ),
    temporalProfile: z
      .string()
      .min(1)
      .optional()
      .describe('The profile of that file to use (it must be there). Unset: `default`, when the file has it.'),
    temporalTlsCa: z
      .string()
      .min(1)
      .optional()
      .describe(
        "TLS to the Temporal frontend (API and workers): the PEM file of the CA that signed the frontend's certificate. Unset: plaintext. See [security.md](security.md#what-someone-on-temporals-port-can-still-do).",
      ),
    temporalTlsCert: z
      .string()
      .min(1)
      .optional()
      .describe(
        "Mutual TLS to Temporal: this process's client certificate (PEM file); set it with `WARDEN_TEMPORAL_TLS_KEY`, both or neither.",
      ),
    temporalTlsKey: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Mutual TLS to Temporal: the key of the client certificate (PEM file); set it with `WARDEN_TEMPORAL_TLS_CERT`, both or neither.',
      ),
    temporalTlsServerName: z
      .string()
      .min(1)
      .optional()
      .describe(
        "TLS to Temporal: the name the frontend's certificate carries, when it is not the host of `TEMPORAL_ADDRESS`. Any `WARDEN_TEMPORAL_TLS_*` set: TLS comes from these alone, and the profile's TLS settings are not used.",
      ),
    workerRoles: z
      .preprocess(
        (v) => (typeof v === 'string' ? v.split(',').map((r) => r.trim()) : v),
        z.array(z.enum(WORKER_ROLES, { error: (issue) => `unknown role "${String(issue.input)}" (known: ${WORKER_ROLES.join(', ')})` })),
      )
      .default([...WORKER_ROLES])
      .describe(
        "Worker process only: which workers it runs (comma-separated): `control` (the workflows, task queue `warden-control`) `sandbox` (this Docker host's sandbox activities, task queue `warden-sandbox@<host id>`, and the watches of its sandboxes, task queue `warden-sandbox-watch@<host id>`) and `model` (conversations' model calls, task queue `warden-model`: the only worker that reads the providers' API keys).",
      ),
    dockerHostId: z
      .string()
      .regex(DOCKER_HOST_ID)
      .default('local')
      .describe(
        "This worker's Docker host (lower-case letters, digits, dots and hyphens); its sandbox worker polls the task queue `warden-sandbox@<id>`.",
      ),
    dockerHosts: z
      .preprocess(
        (v) =>
          typeof v === 'string'
            ? v
                .split(',')
                .map((h) => h.trim())
                .filter(Boolean)
            : v,
        z.array(z.string().regex(DOCKER_HOST_ID, 'a Docker host id: lower-case letters, digits, dots and hyphens')),
      )
      .default([])
      .describe(
        'API only: the Docker hosts agents are placed on (comma-separated host ids, each with its own sandbox worker). A new agent goes to the one with the most memory left for agents, or to the one its request names. Empty: only this host (`WARDEN_DOCKER_HOST_ID`).',
      ),
    sandboxImage: z
      .string()
      .min(1)
      .default('warden-sandbox:bookworm')
      .describe('The image every sandbox runs (`make up` builds it; with Compose the `sandbox-image` service does).'),
    sandboxRuntime: z
      .union([z.literal('auto'), SandboxRuntimeSchema])
      .default('auto')
      .describe('`auto` (the strongest runtime the engine has: runsc, then kata, then runc with a warning), or `runsc`, `kata` or `runc`.'),
    requireSandbox: bool
      .default(true)
      .describe(
        'Fail closed: never run an agent under plain runc. `false`: an admin may ask for `runtime: "runc"`, and `auto` falls back to it with a warning on a host without gVisor or Kata. Booleans read `1`, `0`, `true`, `false`, `yes` or `no`.',
      ),
    memoryOvercommit: z.coerce
      .number()
      .min(0.1)
      .max(10)
      .default(1)
      .describe(
        "Admission: the memory limits of the agents on a Docker host may add up to the host's memory times this (0.1 to 10; 1: no overcommit); a new agent that does not fit is refused (409).",
      ),
    cpuOvercommit: z.coerce
      .number()
      .min(0.1)
      .max(64)
      .default(4)
      .describe(
        "Admission: the agents' `cpu_cores` on a Docker host may add up to its cores times this (0.1 to 64; a CPU limit is a ceiling, not memory that runs out).",
      ),
    operatorMaxCpuCores: z.coerce
      .number()
      .min(0.05)
      .max(64)
      .default(2)
      .describe('The largest `cpu_cores` a key below admin may ask for (0.05 to 64); more needs an admin (up to 64).'),
    operatorMaxMemoryMb: z.coerce
      .number()
      .int()
      .min(32)
      .max(65536)
      .default(2048)
      .describe('The largest `memory_mb` a key below admin may ask for (32 to 65536); more needs an admin (up to 65536).'),
    operatorMaxDiskMb: z.coerce
      .number()
      .int()
      .min(1)
      .max(65536)
      .default(1024)
      .describe(
        'The largest `disk_mb` (the `/workspace` tmpfs) a key below admin may ask for (1 to 65536); more needs an admin (up to 65536).',
      ),
    operatorMaxProcesses: z.coerce
      .number()
      .int()
      .min(8)
      .max(32768)
      .default(512)
      .describe('The largest `max_processes` a key below admin may ask for (8 to 32768); more needs an admin (up to 32768).'),
    maxAgents: z.coerce
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(50)
      .describe('Capacity: agents admitted at once, over all Docker hosts (1 to 10000); more creates get `409 capacity_exceeded`.'),
    agentIdleTtlSeconds: z.coerce
      .number()
      .int()
      .min(10)
      .default(3600)
      .describe('The default idle TTL: an agent idle this long is stopped (10 or more; an agent may ask for its own).'),
    stopGraceSeconds: z.coerce
      .number()
      .int()
      .min(0)
      .max(300)
      .default(10)
      .describe('SIGTERM to SIGKILL when a sandbox stops (0 to 300 seconds).'),
    sandboxSlots: z.coerce
      .number()
      .int()
      .min(1)
      .max(10_000)
      .default(100)
      .describe(
        "Worker only: how many sandbox activities (commands; creating, pausing, stopping and removing sandboxes; the reaper's) the sandbox worker runs at once (1 to 10000); more wait their turn. The watches of the sandboxes do not count: they have `WARDEN_WATCH_SLOTS`.",
      ),
    watchSlots: z.coerce
      .number()
      .int()
      .min(1)
      .max(100_000)
      .default(10_000)
      .describe(
        "Worker only: how many sandboxes the sandbox worker watches at once, one per agent on its Docker host (task queue `warden-sandbox-watch@<host id>`; 1 to 100000). An agent beyond it only notices its container's end once a watch slot is free.",
      ),
    sandboxPoolSize: z.coerce
      .number()
      .int()
      .min(0)
      .max(100)
      .default(0)
      .describe(
        "Worker only: the warm sandbox pool: sandboxes kept created, started and idle per profile of `WARDEN_SANDBOX_POOL_PROFILES` on this Docker host (0 to 100; 0: no pool), so that creating an agent takes one instead of creating a container. 2 suits a host that creates agents one after another; the members count toward the host's capacity. See [the warm pool](architecture.md#the-warm-sandbox-pool).",
      ),
    sandboxPoolProfiles: z
      .string()
      .default('default')
      .superRefine((text, ctx) => {
        try {
          parsePoolProfiles(text);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .describe(
        'The sandbox profiles the warm pool keeps, separated by `;`: `default` (an agent that asks for no limits or runtime), or `key=value` pairs separated by `,` from the resource limits and `runtime`, e.g. `default;memory_mb=256,cpu_cores=0.5`. An agent takes a member only of its exact profile (image, runtime, limits); any other is created as without a pool. The API reads it too: admission counts the members.',
      ),
    workerShutdownGraceSeconds: z.coerce
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(30)
      .describe(
        'Worker only: after SIGTERM, how long a worker lets activities in flight finish before handing them back to Temporal (0 to 3600 seconds).',
      ),
    apiShutdownGraceSeconds: z.coerce
      .number()
      .int()
      .min(0)
      .max(3600)
      .default(10)
      .describe(
        'API only: after SIGTERM, how long the API lets open requests finish before closing their connections (0 to 3600 seconds).',
      ),
    apiHost: z.string().default('127.0.0.1').describe('API only: the address the API listens on.'),
    apiPort: z.coerce.number().int().min(0).max(65535).default(8080).describe('API only: the port the API listens on.'),
    dataDir: z
      .string()
      .min(1)
      .default('.warden/data')
      .describe(
        "Warden's data directory: the audit log, the vault, the API keys, the master key file, and `make up`'s Temporal dev server database (`temporal.db`). The API and the workers of one host share it.",
      ),
    databaseUrl: z
      .string()
      .regex(/^postgres(ql)?:\/\//, 'a postgres:// or postgresql:// URL')
      .optional()
      .describe(
        'PostgreSQL for the audit log, the API keys and the vault (`postgres://user:password@host:5432/warden`; `?sslmode=verify-full` for TLS), shared by the API and every worker on every host; each process migrates it at start-up. Unset: SQLite files in the data dir, which every process must share. See [Shared stores on PostgreSQL](deployment.md#shared-stores-on-postgresql).',
      ),
    databaseUrlFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'A file holding `WARDEN_DATABASE_URL` (a Docker or Compose secret), in its place: the password in it stays out of the environment and the container configuration. Set one or the other.',
      ),
    devServerPort: z.coerce
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(7233)
      .describe('`make up` only: the gRPC port of its Temporal dev server.'),
    devServerUiPort: z.coerce
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(8233)
      .describe('`make up` only: the Web UI port of its Temporal dev server.'),
    approvalExpirySeconds: z.coerce
      .number()
      .int()
      .min(1)
      .max(30 * 24 * 3600)
      .default(1800)
      .describe('An action awaiting approval this long expires and never runs (1 second to 30 days).'),
    policyFile: z.string().min(1).optional().describe('The policy file. Unset: the shipped `domain/policy.default.json`.'),
    adminApiKey: z
      .string()
      .min(24, 'at least 24 characters')
      .optional()
      .describe(
        'API only: an admin API key to accept (24+ characters). Unset: the API makes one on first start and prints it once; `make up` keeps its own in `<data dir>/admin-key`.',
      ),
    masterKey: z
      .string()
      .min(1)
      .optional()
      .describe(
        'The master key (base64 of 32 bytes: `openssl rand -base64 32`) for the vault and payload encryption, the same in every process. Unset: a key file `master-keys.json` in the data dir, made on first start (back it up).',
      ),
    masterKeyFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        "A file holding the master key (a Docker or Compose secret, e.g. `/run/secrets/warden-master-key`), in place of `WARDEN_MASTER_KEY`: the key then stays out of the process's environment and the container's configuration. Set one or the other; the file must be readable at start-up.",
      ),
    masterKeyPrevious: z
      .string()
      .min(1)
      .optional()
      .describe(
        'Older master keys (comma-separated), kept to decrypt what they encrypted until `POST /api/secrets/rotate` has re-encrypted the secrets under the new one.',
      ),
    payloadAllowPlaintext: bool
      .default(false)
      .describe(
        'Temporary migration switch: read Temporal payloads written before encryption (each process logs a warning); see [Encrypted payloads](security.md#encrypted-payloads).',
      ),
    codecCorsOrigins: z
      .string()
      .min(1)
      .optional()
      .describe(
        "API only: Web UI origins (comma-separated) allowed to call the codec server. Unset: the dev server's UI, `http://localhost:8233` and `http://127.0.0.1:8233`.",
      ),
    temporalUiUrl: z
      .url({ protocol: /^https?$/, error: 'an http(s) URL' })
      .optional()
      .describe(
        "API only: the Temporal Web UI's address, for the console's links to each agent's and action's workflow. Unset: the dev server's UI, `http://127.0.0.1:<WARDEN_TEMPORAL_UI_PORT>`.",
      ),
    rateLimits: z
      .string()
      .default(DEFAULT_RATE_LIMITS)
      .superRefine((text, ctx) => {
        try {
          parseRateLimits(text);
        } catch (err) {
          ctx.addIssue({ code: 'custom', message: (err as Error).message });
        }
      })
      .describe(
        'API only: token buckets per route group, per API key and per client address (`<group>=<count>/<period>[:<burst>]`, see [API hardening](api.md#api-hardening)); `off` turns them off.',
      ),
    trustProxy: z.coerce
      .number()
      .int()
      .min(0)
      .max(10)
      .default(0)
      .describe(
        "API only: reverse proxies in front of the API whose `X-Forwarded-For` entry is believed (0 to 10); 0: the socket's peer is the client.",
      ),
    corsOrigins: z.string().default('').describe('API only: browser origins (comma-separated) allowed to call `/api`. Empty: none.'),
    maxBodyBytes: z.coerce
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .describe('API only: the largest request body (1024 bytes to 64 MiB); above it, 413.'),
    logLevel: z
      .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
      .default('info')
      .describe('The pino log level: `fatal`, `error`, `warn`, `info`, `debug`, `trace` or `silent`.'),
    alertWebhooks: commaSeparated(z.array(z.url({ protocol: /^https?$/, error: 'each webhook must be an http(s) URL' })).max(20))
      .default([])
      .describe(
        'Alert webhook URLs, comma-separated (http or https, at most 20); see [Alerts](operations.md#alerts). Unset: no alerts. The API arms the approval and capacity alerts, the worker signs and sends.',
      ),
    alertSecret: z
      .string()
      .min(32, 'at least 32 characters')
      .optional()
      .describe('The HMAC-SHA256 key (32+ characters) signing every alert; required with webhooks.'),
    alertApprovalPendingSeconds: z.coerce
      .number()
      .int()
      .min(1)
      .default(900)
      .describe('Alert when an action has awaited approval this long.'),
    alertCapacityPercent: z.coerce
      .number()
      .int()
      .min(1)
      .max(100)
      .default(90)
      .describe('Alert when admitted agents reach this percentage of `WARDEN_MAX_AGENTS` (1 to 100).'),
    reaperIntervalSeconds: z.coerce
      .number()
      .int()
      .max(7 * 24 * 3600)
      .refine((v) => v === 0 || v >= 10, '0 (no schedule) or at least 10 seconds')
      .default(300)
      .describe(
        "Worker only: the interval of the reaper's Temporal Schedule on this Docker host (10 seconds to 7 days); `0`: this worker process makes no schedule (the test suite's spawned workers).",
      ),
    metricsToken: z
      .string()
      .min(16, 'at least 16 characters')
      .optional()
      .describe(
        "API only: a bearer token (16+ characters) every scrape of `/metrics` must send. Unset: `/metrics` is open on the API's address.",
      ),
    metricsMaxContainers: z.coerce
      .number()
      .int()
      .min(0)
      .max(10_000)
      .default(100)
      .describe('API only: at most this many sandboxes get per-container gauges in `/metrics` (0 to 10000).'),
    sdkMetricsAddress: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[^\s:[\]]+):\d{1,5}$/, 'host:port')
      .optional()
      .describe('Worker only: `host:port` where the Temporal SDK serves its Prometheus metrics. Unset: off.'),
    otelEndpoint: z
      .url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:4318' })
      .optional()
      .describe(
        "API and worker: an OTLP/HTTP collector's base URL (e.g. `http://127.0.0.1:4318`); spans go to `<url>/v1/traces`. Unset: no tracing.",
      ),
    providersFile: z
      .string()
      .min(1)
      .optional()
      .describe(
        'The model providers file (JSON: `{"providers": [{name, kind, base_url, default_model, api_key_secret, fallback}]}`); see [Model providers](models.md). Unset: only the provider of `WARDEN_LLM_BASE_URL`, if any.',
      ),
    llmKind: z
      .enum(['openai', 'anthropic'])
      .default('openai')
      .describe(
        'The protocol of the single provider of `WARDEN_LLM_BASE_URL`: `openai` (OpenAI and compatible servers: Ollama, vLLM, llama.cpp) or `anthropic`.',
      ),
    llmBaseUrl: z
      .url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:11434/v1' })
      .optional()
      .describe(
        'A single model provider without a file, named `default` (e.g. `http://127.0.0.1:11434/v1` for Ollama); needs `WARDEN_LLM_MODEL`.',
      ),
    llmModel: z.string().min(1).optional().describe('The default model of the `WARDEN_LLM_BASE_URL` provider.'),
    llmApiKeySecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'The vault secret (its name, never the key) holding the API key of the `WARDEN_LLM_BASE_URL` provider; unset for a server that wants no key.',
      ),
    budgetConversationTokens: budgetDefault('conversation_tokens')
      .optional()
      .describe(
        "Control worker: the tokens (prompt and answer) one conversation may spend, unless its agent's `budget` says otherwise. Unset: no limit. See [Budgets](conversations.md#budgets).",
      ),
    budgetConversationUsd: budgetDefault('conversation_usd')
      .optional()
      .describe("Control worker: the US dollars one conversation may spend, unless its agent's `budget` says otherwise. Unset: no limit."),
    budgetDayTokens: budgetDefault('day_tokens')
      .optional()
      .describe(
        "Control worker: the tokens an agent's conversations may spend together in a day (UTC), unless its `budget` says otherwise. Unset: no limit.",
      ),
    budgetDayUsd: budgetDefault('day_usd')
      .optional()
      .describe(
        "Control worker: the US dollars an agent's conversations may spend together in a day (UTC), unless its `budget` says otherwise. Unset: no limit.",
      ),
    budgetToolCallsPerTurn: budgetDefault('tool_calls_per_turn')
      .default(20)
      .describe(
        "Control worker: the tool calls the model may make in one turn, unless the agent's `budget` says otherwise; the turn then ends saying so.",
      ),
    modelPrices: json(z.record(z.string().min(1), ModelPriceSchema))
      .default({})
      .describe(
        'Control worker: model prices over the repository\'s table (`llm/pricing.ts`), in US dollars per million tokens, as JSON keyed by `<provider>/<model>`, `<provider>/*` or `<model>`: `{"ollama/*": {"input_per_million": 0, "output_per_million": 0}}`. A money budget refuses a model no one priced.',
      ),
    embeddedModel: z
      .enum(['auto', 'off'])
      .default('auto')
      .describe(
        '`make up` only: `auto` starts the embedded default model (SmolLM2-135M behind llama.cpp, from PyPI; see [Model providers](models.md#the-embedded-default-model)) when no provider is configured; `off` never starts it.',
      ),
    embeddedModelPort: z.coerce
      .number()
      .int()
      .min(1)
      .max(65535)
      .default(8181)
      .describe('`make up` only: the port of the embedded default model, on 127.0.0.1.'),
    embeddedModelUrl: z
      .url({ protocol: /^https?$/, error: 'an http(s) URL such as http://127.0.0.1:8181/v1' })
      .optional()
      .describe(
        'API and worker: the base URL of the embedded default model, which `make up` sets when it started one; it is the provider named `embedded` while no other provider is configured.',
      ),
    discordBotTokenSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'API only: the vault secret (its name, never the token) holding the Discord bot token; set, approval cards go to `WARDEN_DISCORD_CHANNEL_IDS`. See [Chat channels](channels.md).',
      ),
    discordChannelIds: commaSeparated(z.array(z.string().regex(/^\d{1,20}$/, 'each Discord channel id is a number (a snowflake)')).max(20))
      .default([])
      .describe('API only: the Discord text channels (ids, comma-separated, at most 20) approval cards are posted to.'),
    discordRoomAgents: roomAgents(z.string().regex(/^\d{1,20}$/, 'each Discord channel id is a number (a snowflake)')).describe(
      'API only: the Discord text channels where a paired person talks with an agent, as `<channel id>=<agent id>` pairs, comma-separated (at most 20); a message there starts or continues their conversation with that agent. A channel not listed ignores messages. See [Chat channels](channels.md#conversations-in-a-room).',
    ),
    discordApiUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe("API only: Discord's REST API base, for a proxy. Unset: `https://discord.com/api`; the gateway's address comes from it."),
    slackBotTokenSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'API only: the vault secret (its name) holding the Slack bot token (`xoxb-`); set, approval cards go to `WARDEN_SLACK_CHANNEL_IDS`, and presses arrive as `WARDEN_SLACK_MODE` says. See [Chat channels](channels.md).',
      ),
    slackMode: z
      .enum(['socket', 'http'])
      .default('socket')
      .describe(
        'API only: how Slack delivers button presses: `socket` (Socket Mode: Warden holds a WebSocket to Slack, needs `WARDEN_SLACK_APP_TOKEN_SECRET`, no public URL) or `http` (Slack posts signed requests to `/channels/slack/events` on the API port, needs `WARDEN_SLACK_SIGNING_SECRET_SECRET`).',
      ),
    slackAppTokenSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'API only: the vault secret (its name) holding the Slack app-level token (`xapp-`, scope `connections:write`) Socket Mode connects with.',
      ),
    slackSigningSecretSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        "API only, with `WARDEN_SLACK_MODE=http`: the vault secret (its name) holding the Slack app's signing secret, which every request Slack posts is checked against.",
      ),
    slackChannelIds: commaSeparated(z.array(z.string().regex(/^[A-Z0-9]{1,20}$/, 'each Slack channel id looks like C0123456789')).max(20))
      .default([])
      .describe('API only: the Slack channels (ids, comma-separated, at most 20) approval cards are posted to.'),
    slackRoomAgents: roomAgents(z.string().regex(/^[A-Z0-9]{1,20}$/, 'each Slack channel id looks like C0123456789')).describe(
      'API only: the Slack channels where a paired person talks with an agent, as `<channel id>=<agent id>` pairs, comma-separated (at most 20); a channel not listed ignores messages. See [Chat channels](channels.md#conversations-in-a-room).',
    ),
    slackApiUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe("API only: Slack's Web API base, for a proxy. Unset: `https://slack.com/api/`."),
    telegramBotTokenSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'API only: the vault secret (its name, never the token) holding the Telegram bot token; set, approval cards go to `WARDEN_TELEGRAM_CHAT_IDS`. See [Chat channels](channels.md).',
      ),
    telegramChatIds: commaSeparated(
      z.array(z.string().regex(/^-?\d{1,20}$/, 'each Telegram chat id is a number (groups are negative)')).max(20),
    )
      .default([])
      .describe('API only: the Telegram chats (ids, comma-separated, at most 20) approval cards are posted to.'),
    telegramRoomAgents: roomAgents(z.string().regex(/^-?\d{1,20}$/, 'each Telegram chat id is a number (groups are negative)')).describe(
      'API only: the Telegram chats where a paired person talks with an agent, as `<chat id>=<agent id>` pairs, comma-separated (at most 20); a chat not listed ignores messages. See [Chat channels](channels.md#conversations-in-a-room).',
    ),
    telegramApiUrl: z
      .url({ protocol: /^https?$/ })
      .optional()
      .describe("API only: the Telegram Bot API's root, for a local Bot API server or a proxy. Unset: `https://api.telegram.org`."),
    telegramMode: z
      .enum(['polling', 'webhook'])
      .default('polling')
      .describe(
        'API only: how Telegram delivers button presses: `polling` (Warden long-polls getUpdates, no public URL) or `webhook` (Telegram posts them to `WARDEN_TELEGRAM_WEBHOOK_URL`, which reaches `/channels/telegram/webhook` on the API port).',
      ),
    telegramWebhookUrl: z
      .url({ protocol: /^https?$/, error: 'the public URL Telegram posts to, e.g. https://warden.example.com/channels/telegram/webhook' })
      .optional()
      .describe(
        'API only, with `WARDEN_TELEGRAM_MODE=webhook`: the public address Telegram posts updates to (https; Warden calls setWebhook with it at start); your proxy forwards it to `/channels/telegram/webhook` on the API port.',
      ),
    telegramWebhookSecretSecret: z
      .string()
      .min(1)
      .optional()
      .describe(
        'API only, with `WARDEN_TELEGRAM_MODE=webhook`: the vault secret (its name) holding the webhook secret token (1 to 256 of `A-Z a-z 0-9 _ -`), given to setWebhook and required in every update Telegram posts.',
      ),
    channelPollSeconds: z.coerce
      .number()
      .min(0.2)
      .max(300)
      .default(3)
      .describe(
        'API only: how often the chat channels read the pending actions from Temporal visibility to post, edit and close cards (0.2 to 300 seconds).',
      ),
  })
  .refine((c) => c.alertWebhooks.length === 0 || c.alertSecret !== undefined, {
    path: ['alertSecret'],
    message: 'required when WARDEN_ALERT_WEBHOOKS is set: alerts are always signed',
  })
  .refine((c) => c.discordBotTokenSecret === undefined || c.discordChannelIds.length > 0, {
    path: ['discordChannelIds'],
    message: 'required when WARDEN_DISCORD_BOT_TOKEN_SECRET is set: the channels approval cards go to',
  })
  .refine((c) => c.slackMode !== 'socket' || (c.slackBotTokenSecret === undefined) === (c.slackAppTokenSecret === undefined), {
    path: ['slackAppTokenSecret'],
    message: 'Slack in Socket Mode needs both WARDEN_SLACK_BOT_TOKEN_SECRET and WARDEN_SLACK_APP_TOKEN_SECRET, or neither',
  })
  .refine((c) => c.slackMode !== 'http' || (c.slackBotTokenSecret === undefined) === (c.slackSigningSecretSecret === undefined), {
    path: ['slackSigningSecretSecret'],
    message: 'Slack over HTTP needs both WARDEN_SLACK_BOT_TOKEN_SECRET and WARDEN_SLACK_SIGNING_SECRET_SECRET, or neither',
  })
  .refine((c) => c.slackBotTokenSecret === undefined || c.slackChannelIds.length > 0, {
    path: ['slackChannelIds'],
    message: 'required when WARDEN_SLACK_BOT_TOKEN_SECRET is set: the channels approval cards go to',
  })
  .refine((c) => c.telegramBotTokenSecret === undefined || c.telegramChatIds.length > 0, {
    path: ['telegramChatIds'],
    message: 'required when WARDEN_TELEGRAM_BOT_TOKEN_SECRET is set: the chats approval cards go to',
  })
  .refine((c) => c.telegramBotTokenSecret === undefined || c.telegramMode !== 'webhook' || c.telegramWebhookUrl !== undefined, {
    path: ['telegramWebhookUrl'],
    message: 'required when WARDEN_TELEGRAM_MODE=webhook: the public URL Telegram posts updates to',
  })
  .refine((c) => c.telegramBotTokenSecret === undefined || c.telegramMode !== 'webhook' || c.telegramWebhookSecretSecret !== undefined, {
    path: ['telegramWebhookSecretSecret'],
    message: 'required when WARDEN_TELEGRAM_MODE=webhook: the vault secret holding the token Telegram must send with every update',
  })
  .refine((c) => c.llmBaseUrl === undefined || c.llmModel !== undefined, {
    path: ['llmModel'],
    message: 'required when WARDEN_LLM_BASE_URL is set: the model requests use when they name none',
  })
  .refine((c) => (c.temporalTlsCert === undefined) === (c.temporalTlsKey === undefined), {
    path: ['temporalTlsKey'],
    message:
      'a client certificate needs its key and a key its certificate: set both WARDEN_TEMPORAL_TLS_CERT and WARDEN_TEMPORAL_TLS_KEY, or neither',
  });
export type Config = z.infer<typeof ConfigSchema>;

/** The environment variable of each setting. */
export const CONFIG_ENV: Record<keyof Config, string> = {
  temporalAddress: 'TEMPORAL_ADDRESS',
  temporalNamespace: 'TEMPORAL_NAMESPACE',
  temporalConfigFile: 'TEMPORAL_CONFIG_FILE',
  temporalProfile: 'TEMPORAL_PROFILE',
  temporalTlsCa: 'WARDEN_TEMPORAL_TLS_CA',
  temporalTlsCert: 'WARDEN_TEMPORAL_TLS_CERT',
  temporalTlsKey: 'WARDEN_TEMPORAL_TLS_KEY',
  temporalTlsServerName: 'WARDEN_TEMPORAL_TLS_SERVER_NAME',
  workerRoles: 'WARDEN_WORKER_ROLES',
  dockerHostId: 'WARDEN_DOCKER_HOST_ID',
  dockerHosts: 'WARDEN_DOCKER_HOSTS',
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
  sandboxSlots: 'WARDEN_SANDBOX_SLOTS',
  watchSlots: 'WARDEN_WATCH_SLOTS',
  sandboxPoolSize: 'WARDEN_SANDBOX_POOL_SIZE',
  sandboxPoolProfiles: 'WARDEN_SANDBOX_POOL_PROFILES',
  workerShutdownGraceSeconds: 'WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS',
  apiShutdownGraceSeconds: 'WARDEN_API_SHUTDOWN_GRACE_SECONDS',
  apiHost: 'WARDEN_API_HOST',
  apiPort: 'WARDEN_API_PORT',
  dataDir: 'WARDEN_DATA_DIR',
  databaseUrl: 'WARDEN_DATABASE_URL',
  databaseUrlFile: 'WARDEN_DATABASE_URL_FILE',
  devServerPort: 'WARDEN_TEMPORAL_PORT',
  devServerUiPort: 'WARDEN_TEMPORAL_UI_PORT',
  approvalExpirySeconds: 'WARDEN_APPROVAL_EXPIRY_SECONDS',
  policyFile: 'WARDEN_POLICY_FILE',
  adminApiKey: 'WARDEN_ADMIN_API_KEY',
  masterKey: 'WARDEN_MASTER_KEY',
  masterKeyFile: 'WARDEN_MASTER_KEY_FILE',
  masterKeyPrevious: 'WARDEN_MASTER_KEY_PREVIOUS',
  payloadAllowPlaintext: 'WARDEN_PAYLOAD_ALLOW_PLAINTEXT',
  codecCorsOrigins: 'WARDEN_CODEC_CORS_ORIGINS',
  temporalUiUrl: 'WARDEN_TEMPORAL_UI_URL',
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
  providersFile: 'WARDEN_PROVIDERS_FILE',
  llmKind: 'WARDEN_LLM_KIND',
  llmBaseUrl: 'WARDEN_LLM_BASE_URL',
  llmModel: 'WARDEN_LLM_MODEL',
  llmApiKeySecret: 'WARDEN_LLM_API_KEY_SECRET',
  budgetConversationTokens: 'WARDEN_BUDGET_CONVERSATION_TOKENS',
  budgetConversationUsd: 'WARDEN_BUDGET_CONVERSATION_USD',
  budgetDayTokens: 'WARDEN_BUDGET_DAY_TOKENS',
  budgetDayUsd: 'WARDEN_BUDGET_DAY_USD',
  budgetToolCallsPerTurn: 'WARDEN_BUDGET_TOOL_CALLS_PER_TURN',
  modelPrices: 'WARDEN_MODEL_PRICES',
  embeddedModel: 'WARDEN_EMBEDDED_MODEL',
  embeddedModelPort: 'WARDEN_EMBEDDED_MODEL_PORT',
  embeddedModelUrl: 'WARDEN_EMBEDDED_MODEL_URL',
  discordBotTokenSecret: 'WARDEN_DISCORD_BOT_TOKEN_SECRET',
  discordChannelIds: 'WARDEN_DISCORD_CHANNEL_IDS',
  discordApiUrl: 'WARDEN_DISCORD_API_URL',
  discordRoomAgents: 'WARDEN_DISCORD_ROOM_AGENTS',
  slackBotTokenSecret: 'WARDEN_SLACK_BOT_TOKEN_SECRET',
  slackMode: 'WARDEN_SLACK_MODE',
  slackAppTokenSecret: 'WARDEN_SLACK_APP_TOKEN_SECRET',
  slackSigningSecretSecret: 'WARDEN_SLACK_SIGNING_SECRET_SECRET',
  slackChannelIds: 'WARDEN_SLACK_CHANNEL_IDS',
  slackApiUrl: 'WARDEN_SLACK_API_URL',
  slackRoomAgents: 'WARDEN_SLACK_ROOM_AGENTS',
  telegramBotTokenSecret: 'WARDEN_TELEGRAM_BOT_TOKEN_SECRET',
  telegramChatIds: 'WARDEN_TELEGRAM_CHAT_IDS',
  telegramApiUrl: 'WARDEN_TELEGRAM_API_URL',
  telegramRoomAgents: 'WARDEN_TELEGRAM_ROOM_AGENTS',
  telegramMode: 'WARDEN_TELEGRAM_MODE',
  telegramWebhookUrl: 'WARDEN_TELEGRAM_WEBHOOK_URL',
  telegramWebhookSecretSecret: 'WARDEN_TELEGRAM_WEBHOOK_SECRET_SECRET',
  channelPollSeconds: 'WARDEN_CHANNEL_POLL_SECONDS',
};

/** Settings that may come from a file instead: the value's key, and the file's. */
const SECRET_FILES = [
  ['masterKey', 'masterKeyFile'],
  ['databaseUrl', 'databaseUrlFile'],
] as const satisfies ReadonlyArray<readonly [keyof Config, keyof Config]>;

function readSecretFile(variable: string, path: string): string {
  let value: string;
  try {
    value = readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`invalid configuration:\n  ${variable}: cannot read ${path}: ${(err as Error).message}`);
  }
  // Fail closed: an empty file must not fall back on the default (a key file, SQLite) of this host's own.
  if (!value) throw new Error(`invalid configuration:\n  ${variable}: ${path} is empty`);
  return value;
}

/**
 * A secret setting as every Warden process reads it: its variable, or the file its `_FILE`
 * variable names (never both); undefined when neither is set.
 */
export function secretSetting(valueKey: (typeof SECRET_FILES)[number][0], env: NodeJS.ProcessEnv = process.env): string | undefined {
  const fileKey = SECRET_FILES.find(([key]) => key === valueKey)![1];
  const value = env[CONFIG_ENV[valueKey]] || undefined;
  const path = env[CONFIG_ENV[fileKey]] || undefined;
  if (path === undefined) return value;
  if (value !== undefined)
    throw new Error(`invalid configuration:\n  ${CONFIG_ENV[fileKey]}: set ${CONFIG_ENV[valueKey]} or ${CONFIG_ENV[fileKey]}, not both`);
  return readSecretFile(CONFIG_ENV[fileKey], path);
}

/**
 * Reads the configuration; a bad value fails start-up with the variable's name and the problem.
 * The Temporal address and namespace fall back on the Temporal profile's (domain/temporal-connection.ts).
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const raw: Record<string, string> = {};
  for (const [key, name] of Object.entries(CONFIG_ENV)) {
    const value = env[name];
    if (value !== undefined && value !== '') raw[key] = value;
  }
  let profile: TemporalProfile;
  try {
    profile = loadTemporalProfile({ configFile: raw.temporalConfigFile, profile: raw.temporalProfile }, env);
  } catch (err) {
    throw new Error(`invalid configuration:\n  ${(err as Error).message}`);
  }
  // Secrets from files (Docker or Compose secrets), read before validation like the variables they stand for.
  for (const [valueKey] of SECRET_FILES) {
    const value = secretSetting(valueKey, env);
    if (value !== undefined) raw[valueKey] = value;
  }
  const { address, namespace } = profile.profile;
  if (raw.temporalAddress === undefined && address) raw.temporalAddress = address;
  if (raw.temporalNamespace === undefined && namespace) raw.temporalNamespace = namespace;
  const parsed = ConfigSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${CONFIG_ENV[i.path[0] as keyof Config]}: ${i.message}`);
    throw new Error(`invalid configuration:\n  ${problems.join('\n  ')}`);
  }
  return parsed.data;
}
