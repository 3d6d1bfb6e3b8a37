/** loadConfig: the defaults, every environment variable it reads, and bad values named. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigSchema, loadConfig } from '../../domain/config.js';

describe('loadConfig', () => {
  it('has working defaults on an empty environment', () => {
    expect(loadConfig({})).toMatchObject({
      temporalAddress: '127.0.0.1:7233',
      temporalNamespace: 'default',
      dockerHostId: 'local',
      sandboxImage: 'warden-sandbox:bookworm',
      sandboxRuntime: 'auto',
      requireSandbox: true,
      memoryOvercommit: 1,
      cpuOvercommit: 4,
      operatorMaxCpuCores: 2,
      operatorMaxMemoryMb: 2048,
      operatorMaxDiskMb: 1024,
      operatorMaxProcesses: 512,
      maxAgents: 50,
      agentIdleTtlSeconds: 3600,
      stopGraceSeconds: 10,
      sandboxSlots: 100,
      watchSlots: 10_000,
      apiHost: '127.0.0.1',
      apiPort: 8080,
      logLevel: 'info',
      workerRoles: ['control', 'sandbox', 'model'],
    });
  });

  it('treats an empty variable as unset', () => {
    const config = loadConfig({ TEMPORAL_ADDRESS: '', WARDEN_MAX_AGENTS: '', WARDEN_REQUIRE_SANDBOX: '' });
    expect(config.temporalAddress).toBe('127.0.0.1:7233');
    expect(config.maxAgents).toBe(50);
    expect(config.requireSandbox).toBe(true);
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ WARDEN_NOPE: 'x', PATH: '/bin' })).toEqual(loadConfig({}));
  });

  it.each([
    ['TEMPORAL_ADDRESS', 'temporal.internal:7233', 'temporalAddress', 'temporal.internal:7233'],
    ['TEMPORAL_NAMESPACE', 'warden-prod', 'temporalNamespace', 'warden-prod'],
    ['WARDEN_DOCKER_HOST_ID', 'host-7.example', 'dockerHostId', 'host-7.example'],
    ['WARDEN_SANDBOX_IMAGE', 'registry.example/sandbox:1.2', 'sandboxImage', 'registry.example/sandbox:1.2'],
    ['WARDEN_SANDBOX_RUNTIME', 'kata', 'sandboxRuntime', 'kata'],
    ['WARDEN_REQUIRE_SANDBOX', 'false', 'requireSandbox', false],
    ['WARDEN_MEMORY_OVERCOMMIT', '1.5', 'memoryOvercommit', 1.5],
    ['WARDEN_CPU_OVERCOMMIT', '2', 'cpuOvercommit', 2],
    ['WARDEN_OPERATOR_MAX_CPU_CORES', '0.5', 'operatorMaxCpuCores', 0.5],
    ['WARDEN_OPERATOR_MAX_MEMORY_MB', '256', 'operatorMaxMemoryMb', 256],
    ['WARDEN_OPERATOR_MAX_DISK_MB', '64', 'operatorMaxDiskMb', 64],
    ['WARDEN_OPERATOR_MAX_PROCESSES', '64', 'operatorMaxProcesses', 64],
    ['WARDEN_MAX_AGENTS', '7', 'maxAgents', 7],
    ['WARDEN_AGENT_IDLE_TTL_SECONDS', '120', 'agentIdleTtlSeconds', 120],
    ['WARDEN_STOP_GRACE_SECONDS', '0', 'stopGraceSeconds', 0],
    ['WARDEN_SANDBOX_SLOTS', '20', 'sandboxSlots', 20],
    ['WARDEN_WATCH_SLOTS', '50000', 'watchSlots', 50_000],
    ['WARDEN_API_HOST', '0.0.0.0', 'apiHost', '0.0.0.0'],
    ['WARDEN_API_PORT', '9090', 'apiPort', 9090],
    ['WARDEN_LOG_LEVEL', 'debug', 'logLevel', 'debug'],
    ['WARDEN_METRICS_TOKEN', 'scrape-token-0123456789', 'metricsToken', 'scrape-token-0123456789'],
    ['WARDEN_METRICS_MAX_CONTAINERS', '5', 'metricsMaxContainers', 5],
    ['WARDEN_SDK_METRICS_ADDRESS', '127.0.0.1:9464', 'sdkMetricsAddress', '127.0.0.1:9464'],
    ['WARDEN_SDK_METRICS_ADDRESS', '[::1]:9464', 'sdkMetricsAddress', '[::1]:9464'],
    ['WARDEN_OTEL_ENDPOINT', 'http://collector:4318', 'otelEndpoint', 'http://collector:4318'],
  ] as const)('reads %s=%s', (name, value, key, expected) => {
    const defaults = loadConfig({});
    expect(defaults[key]).not.toEqual(expected); // the variable, not the default, sets it
    const config = loadConfig({ [name]: value });
    expect(config[key]).toEqual(expected);
    // ...and sets nothing else.
    expect({ ...config, [key]: defaults[key] }).toEqual(defaults);
  });

  it('reads the process environment when given none', () => {
    const saved = process.env.WARDEN_MAX_AGENTS;
    process.env.WARDEN_MAX_AGENTS = '13';
    try {
      expect(loadConfig().maxAgents).toBe(13);
    } finally {
      if (saved === undefined) delete process.env.WARDEN_MAX_AGENTS;
      else process.env.WARDEN_MAX_AGENTS = saved;
    }
  });

  it.each([
    ['1', true],
    ['true', true],
    ['yes', true],
    ['0', false],
    ['false', false],
    ['no', false],
  ])('WARDEN_REQUIRE_SANDBOX=%s reads as %s', (value, expected) => {
    expect(loadConfig({ WARDEN_REQUIRE_SANDBOX: value }).requireSandbox).toBe(expected);
  });

  it.each([
    ['0', 0],
    ['600', 600],
  ])('WARDEN_REAPER_INTERVAL_SECONDS=%s reads as %s (0: no reaper schedule from this process)', (value, expected) => {
    expect(loadConfig({ WARDEN_REAPER_INTERVAL_SECONDS: value }).reaperIntervalSeconds).toBe(expected);
  });

  it.each(['auto', 'runsc', 'kata', 'runc'] as const)('WARDEN_SANDBOX_RUNTIME=%s is accepted', (runtime) => {
    expect(loadConfig({ WARDEN_SANDBOX_RUNTIME: runtime }).sandboxRuntime).toBe(runtime);
  });

  it.each([
    ['WARDEN_MAX_AGENTS', 'abc'],
    ['WARDEN_MAX_AGENTS', '0'],
    ['WARDEN_MAX_AGENTS', '2.5'],
    ['WARDEN_SANDBOX_RUNTIME', 'docker'],
    ['WARDEN_REQUIRE_SANDBOX', 'maybe'],
    ['WARDEN_REQUIRE_SANDBOX', 'TRUE'],
    ['WARDEN_API_PORT', '70000'],
    ['WARDEN_STOP_GRACE_SECONDS', '-1'],
    ['WARDEN_SANDBOX_SLOTS', '0'],
    ['WARDEN_WATCH_SLOTS', '100001'],
    ['WARDEN_METRICS_TOKEN', 'short'],
    ['WARDEN_SDK_METRICS_ADDRESS', '9464'],
    ['WARDEN_OTEL_ENDPOINT', 'collector:4318'],
    ['WARDEN_AGENT_IDLE_TTL_SECONDS', '5'],
    ['WARDEN_DOCKER_HOST_ID', 'Bad_Host'],
    ['WARDEN_LOG_LEVEL', 'loud'],
    ['WARDEN_REAPER_INTERVAL_SECONDS', '5'],
    ['WARDEN_MEMORY_OVERCOMMIT', '0'],
    ['WARDEN_CPU_OVERCOMMIT', 'lots'],
    ['WARDEN_OPERATOR_MAX_MEMORY_MB', '131072'],
    ['WARDEN_OPERATOR_MAX_PROCESSES', '2'],
  ])('%s=%s fails start-up naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid configuration:\\n  ${name}: \\S`));
  });

  it.each([
    ['sandbox', ['sandbox']],
    [' control , sandbox ', ['control', 'sandbox']],
  ])('WARDEN_WORKER_ROLES=%j reads as %j', (value, expected) => {
    expect(loadConfig({ WARDEN_WORKER_ROLES: value }).workerRoles).toEqual(expected);
  });

  it.each([
    ['control,bogus', 'bogus'],
    ['control,', ''],
  ])('WARDEN_WORKER_ROLES=%j names the unknown role', (value, role) => {
    expect(() => loadConfig({ WARDEN_WORKER_ROLES: value })).toThrow(
      `invalid configuration:\n  WARDEN_WORKER_ROLES: unknown role "${role}" (known: control, sandbox, model)`,
    );
  });

  it.each([
    [
      'Slack over HTTP without a signing secret',
      { WARDEN_SLACK_MODE: 'http', WARDEN_SLACK_BOT_TOKEN_SECRET: 'SLACK_BOT', WARDEN_SLACK_CHANNEL_IDS: 'C01' },
      'WARDEN_SLACK_SIGNING_SECRET_SECRET',
    ],
    [
      'Slack in Socket Mode without an app token',
      { WARDEN_SLACK_BOT_TOKEN_SECRET: 'SLACK_BOT', WARDEN_SLACK_SIGNING_SECRET_SECRET: 'SLACK_SIGNING', WARDEN_SLACK_CHANNEL_IDS: 'C01' },
      'WARDEN_SLACK_APP_TOKEN_SECRET',
    ],
    [
      'a Telegram webhook without its URL',
      {
        WARDEN_TELEGRAM_MODE: 'webhook',
        WARDEN_TELEGRAM_BOT_TOKEN_SECRET: 'TG',
        WARDEN_TELEGRAM_CHAT_IDS: '-1',
        WARDEN_TELEGRAM_WEBHOOK_SECRET_SECRET: 'TG_HOOK',
      },
      'WARDEN_TELEGRAM_WEBHOOK_URL',
    ],
    [
      'a Telegram webhook without its secret token',
      {
        WARDEN_TELEGRAM_MODE: 'webhook',
        WARDEN_TELEGRAM_BOT_TOKEN_SECRET: 'TG',
        WARDEN_TELEGRAM_CHAT_IDS: '-1',
        WARDEN_TELEGRAM_WEBHOOK_URL: 'https://w.example/channels/telegram/webhook',
      },
      'WARDEN_TELEGRAM_WEBHOOK_SECRET_SECRET',
    ],
  ])('%s fails start-up naming the missing setting', (_, env, missing) => {
    expect(() => loadConfig(env)).toThrow(new RegExp(`^invalid configuration:\\n  ${missing}: \\S`));
  });

  it('takes each channel HTTP mode with the secrets it needs', () => {
    expect(
      loadConfig({
        WARDEN_SLACK_MODE: 'http',
        WARDEN_SLACK_BOT_TOKEN_SECRET: 'SLACK_BOT',
        WARDEN_SLACK_SIGNING_SECRET_SECRET: 'SLACK_SIGNING',
        WARDEN_SLACK_CHANNEL_IDS: 'C01',
        WARDEN_TELEGRAM_MODE: 'webhook',
        WARDEN_TELEGRAM_BOT_TOKEN_SECRET: 'TG',
        WARDEN_TELEGRAM_CHAT_IDS: '-1',
        WARDEN_TELEGRAM_WEBHOOK_URL: 'https://w.example/channels/telegram/webhook',
        WARDEN_TELEGRAM_WEBHOOK_SECRET_SECRET: 'TG_HOOK',
      }),
    ).toMatchObject({
      slackMode: 'http',
      slackSigningSecretSecret: 'SLACK_SIGNING',
      telegramMode: 'webhook',
      telegramWebhookSecretSecret: 'TG_HOOK',
    });
  });

  it('names every bad variable at once, and none of the good ones', () => {
    let message = '';
    try {
      loadConfig({ WARDEN_MAX_AGENTS: 'abc', WARDEN_SANDBOX_RUNTIME: 'docker', TEMPORAL_ADDRESS: 'fine:7233' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('WARDEN_MAX_AGENTS: ');
    expect(message).toContain('WARDEN_SANDBOX_RUNTIME: ');
    expect(message).not.toContain('TEMPORAL_ADDRESS');
    expect(message).not.toContain('undefined');
  });

  it('a parsed config parses again to itself (tests and tools hand Config objects back in)', () => {
    for (const env of [{}, { WARDEN_REQUIRE_SANDBOX: 'yes', WARDEN_MAX_AGENTS: '3' }, { WARDEN_REQUIRE_SANDBOX: 'no' }]) {
      const config = loadConfig(env);
      expect(ConfigSchema.parse(config)).toEqual(config);
    }
    expect(ConfigSchema.parse({ requireSandbox: true }).requireSandbox).toBe(true);
    expect(ConfigSchema.parse({ requireSandbox: false }).requireSandbox).toBe(false);
    expect(ConfigSchema.safeParse({ requireSandbox: 1 }).success).toBe(false);
  });

  it('reads the master key and the database URL from files (secrets), never from both, never from an empty file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-master-key-'));
    try {
      const key = Buffer.alloc(32, 7).toString('base64');
      writeFileSync(join(dir, 'key'), `${key}\n`);
      writeFileSync(join(dir, 'empty'), '\n');
      expect(loadConfig({ WARDEN_MASTER_KEY_FILE: join(dir, 'key') }).masterKey).toBe(key);
      expect(() => loadConfig({ WARDEN_MASTER_KEY_FILE: join(dir, 'key'), WARDEN_MASTER_KEY: key })).toThrow(/not both/);
      expect(() => loadConfig({ WARDEN_MASTER_KEY_FILE: join(dir, 'empty') })).toThrow(/WARDEN_MASTER_KEY_FILE: .*empty is empty/);
      expect(() => loadConfig({ WARDEN_MASTER_KEY_FILE: join(dir, 'missing') })).toThrow(/WARDEN_MASTER_KEY_FILE: cannot read/);
      // The database URL too, validated as the variable is, without showing what the file holds.
      writeFileSync(join(dir, 'url'), 'postgres://warden:pw-in-a-file@db:5432/warden\n');
      writeFileSync(join(dir, 'not-a-url'), 'pw-in-a-file\n');
      expect(loadConfig({ WARDEN_DATABASE_URL_FILE: join(dir, 'url') }).databaseUrl).toBe('postgres://warden:pw-in-a-file@db:5432/warden');
      let message = '';
      try {
        loadConfig({ WARDEN_DATABASE_URL_FILE: join(dir, 'not-a-url') });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).toMatch(/WARDEN_DATABASE_URL: a postgres:\/\/ or postgresql:\/\/ URL/);
      expect(message).not.toContain('pw-in-a-file');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
