/**
 * The multi-host deployment: docker-compose.cluster.yml (the first host: Temporal, both
 * PostgreSQL servers, the API, the control, model and sandbox workers) and
 * docker-compose.sandbox-host.yml (a Docker host that joins it). No image can be pulled here, so
 * Compose validates and normalises both files and the tests check what it would run, as
 * compose.test.ts does for docker-compose.yml.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONFIG_ENV, loadConfig } from '../../domain/config.js';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import {
  CLUSTER_COMPOSE_FILE,
  composeCli,
  NOT_IN_COMPOSE,
  SANDBOX_HOST_COMPOSE_FILE,
  type ComposeCli,
  type ComposeConfig,
  type Service,
} from '../support/compose-config.js';

const SOCKET = '/var/run/docker.sock';
const WARDEN_PROCESSES = ['api', 'control-worker', 'model-worker', 'sandbox-worker'];
const SECRETS = { WARDEN_MASTER_KEY_FILE: 'warden-master-key', WARDEN_DATABASE_URL_FILE: 'warden-database-url' };
/** What an operator's shell or .env might hold: none of it may reach a container's configuration. */
const LEAKY = {
  WARDEN_MASTER_KEY: Buffer.alloc(32, 9).toString('base64'),
  WARDEN_DATABASE_URL: 'postgres://warden:leaked-pw@db:5432/warden',
};
const SANDBOX_HOST = { TEMPORAL_ADDRESS: '10.0.0.1:7233', WARDEN_DOCKER_HOST_ID: 'host-2' };

let cli: ComposeCli;
let secretsDir: string;
const cluster = (vars: Record<string, string> = {}) => cli.load(vars, CLUSTER_COMPOSE_FILE);
const sandboxHost = (vars: Record<string, string> = {}) => cli.load({ ...SANDBOX_HOST, ...vars }, SANDBOX_HOST_COMPOSE_FILE);
const env = (s: Service) => s.environment ?? {};
const mountsSocket = (s: Service) => (s.volumes ?? []).some((v) => v.type === 'bind' && v.source === SOCKET);

/** The process's configuration as it would load it, its secrets' files standing in for the mounted ones. */
function loadServiceConfig(service: Service) {
  const vars: Record<string, string | undefined> = Object.fromEntries(Object.entries(env(service)).map(([k, v]) => [k, v ?? undefined]));
  for (const variable of Object.keys(SECRETS)) if (vars[variable]) vars[variable] = join(secretsDir, variable);
  return loadConfig(vars);
}

beforeAll(() => {
  cli = composeCli();
  secretsDir = mkdtempSync(join(tmpdir(), 'warden-compose-secrets-'));
  writeFileSync(join(secretsDir, 'WARDEN_MASTER_KEY_FILE'), `${Buffer.alloc(32, 3).toString('base64')}\n`);
  writeFileSync(join(secretsDir, 'WARDEN_DATABASE_URL_FILE'), 'postgres://warden:pw@warden-postgresql:5432/warden\n');
});

afterAll(() => {
  cli?.dispose();
  rmSync(secretsDir, { recursive: true, force: true });
});

describe('docker-compose.cluster.yml', () => {
  it('is valid for Compose: Temporal with PostgreSQL, Warden’s PostgreSQL, the API and a worker per role', () => {
    const config = cluster();
    expect(config.name).toBe('warden-cluster');
    expect(Object.keys(config.services).sort()).toEqual(
      [
        'postgresql',
        'temporal',
        'temporal-admin-tools',
        'temporal-ui',
        'sandbox-image',
        'docker-proxy',
        'warden-postgresql',
        ...WARDEN_PROCESSES,
      ].sort(),
    );
    const roles = Object.fromEntries(WARDEN_PROCESSES.slice(1).map((n) => [n, env(config.services[n]!).WARDEN_WORKER_ROLES]));
    expect(roles).toEqual({ 'control-worker': 'control', 'model-worker': 'model', 'sandbox-worker': 'sandbox' });
    expect(cli.config({}, ['--quiet'], CLUSTER_COMPOSE_FILE).stderr).toMatch(/DOCKER_GID/);
  });

  it('gives the Docker socket to the sandbox worker and the read-only proxy only', () => {
    const { services } = cluster();
    const withSocket = Object.keys(services).filter((n) => mountsSocket(services[n]!));
    expect(withSocket.sort()).toEqual(['docker-proxy', 'sandbox-worker']);
    expect(services['docker-proxy']!.volumes).toEqual([expect.objectContaining({ source: SOCKET, read_only: true })]);
    expect(services['sandbox-worker']!.group_add).toEqual(['4242']);
    for (const name of ['control-worker', 'model-worker']) {
      expect(services[name]!.group_add ?? [], name).toEqual([]);
      expect(env(services[name]!).DOCKER_HOST, name).toBeUndefined();
    }
  });

  it('publishes Temporal and Warden’s PostgreSQL on the cluster address only, the API and the UI on loopback', () => {
    const published = (config: ComposeConfig) =>
      Object.fromEntries(
        Object.entries(config.services)
          .filter(([, s]) => (s.ports ?? []).length > 0)
          .map(([n, s]) => [n, s.ports!.map((p) => `${p.host_ip}:${p.published}`)]),
      );
    expect(published(cluster())).toEqual({
      temporal: ['127.0.0.1:7233'],
      'warden-postgresql': ['127.0.0.1:5432'],
      api: ['127.0.0.1:8080'],
      'temporal-ui': ['127.0.0.1:8233'],
    });
    expect(published(cluster({ WARDEN_CLUSTER_ADDRESS: '10.0.0.1' }))).toMatchObject({
      temporal: ['10.0.0.1:7233'],
      'warden-postgresql': ['10.0.0.1:5432'],
      api: ['127.0.0.1:8080'],
    });
  });

  it('gives every Warden process the master key and the database URL as secrets, never as variables', () => {
    const config = cluster(LEAKY);
    expect(config.secrets).toEqual({
      'warden-master-key': expect.objectContaining({ file: join(PROJECT_ROOT, 'secrets/warden-master-key') }),
      'warden-database-url': expect.objectContaining({ file: join(PROJECT_ROOT, 'secrets/warden-database-url') }),
      'warden-postgres-password': expect.objectContaining({ file: join(PROJECT_ROOT, 'secrets/warden-postgres-password') }),
    });
    for (const name of WARDEN_PROCESSES) {
      const service = config.services[name]!;
      for (const [variable, secret] of Object.entries(SECRETS)) {
        expect(env(service)[variable], `${name} ${variable}`).toBe(`/run/secrets/${secret}`);
        expect(service.secrets, name).toContainEqual({ source: secret, target: `/run/secrets/${secret}` });
      }
      expect(env(service).WARDEN_MASTER_KEY ?? '', name).toBe('');
      expect(env(service).WARDEN_DATABASE_URL ?? '', name).toBe('');
      // Each loads: the key and the URL come from the files, the rest as Compose renders it.
      const loaded = loadServiceConfig(service);
      expect(loaded.masterKey, name).toBe(Buffer.alloc(32, 3).toString('base64'));
      expect(loaded.databaseUrl, name).toBe('postgres://warden:pw@warden-postgresql:5432/warden');
    }
    const rendered = JSON.stringify(config);
    for (const value of Object.values(LEAKY)) expect(rendered).not.toContain(value);
    // Warden's database takes its password from the same kind of secret.
    expect(env(config.services['warden-postgresql']!)).toMatchObject({ POSTGRES_PASSWORD_FILE: '/run/secrets/warden-postgres-password' });
    expect(config.services['warden-postgresql']!.secrets).toEqual([
      { source: 'warden-postgres-password', target: '/run/secrets/warden-postgres-password' },
    ]);
  });

  it('passes every setting of domain/config.ts, with the single-host file’s values, but the few that have no place in Compose', () => {
    const { services } = cluster();
    const single = cli.load().services;
    const passed = new Set(WARDEN_PROCESSES.flatMap((n) => Object.keys(env(services[n]!))));
    for (const name of Object.values(CONFIG_ENV)) expect(passed.has(name) || NOT_IN_COMPOSE.has(name), name).toBe(true);
    // What the cluster file sets differently from docker-compose.yml: the stores, the key and the roles.
    const own = new Set(['WARDEN_WORKER_ROLES', 'WARDEN_MASTER_KEY', ...Object.keys(SECRETS), 'WARDEN_DATABASE_URL']);
    for (const name of ['control-worker', 'model-worker', 'sandbox-worker']) {
      for (const [key, value] of Object.entries(env(services[name]!))) {
        if (!own.has(key)) expect(value, `${name} ${key}`).toBe(env(single.worker!)[key]);
      }
    }
    for (const [key, value] of Object.entries(env(services.api!)))
      if (!own.has(key)) expect(value, `api ${key}`).toBe(env(single.api!)[key]);
  });

  it('starts the Warden processes after the search attributes and Warden’s database', () => {
    const { services } = cluster();
    for (const name of WARDEN_PROCESSES) {
      expect(services[name]!.depends_on?.['temporal-admin-tools']?.condition, name).toBe('service_completed_successfully');
      expect(services[name]!.depends_on?.['warden-postgresql']?.condition, name).toBe('service_healthy');
      expect(services[name]!.restart, name).toBe('unless-stopped');
      expect(services[name]!.image, name).toBe('warden:local');
    }
    expect(services['sandbox-worker']!.depends_on?.['sandbox-image']?.condition).toBe('service_completed_successfully');
  });
});

describe('docker-compose.sandbox-host.yml', () => {
  it('is valid for Compose, and refuses to render without the cluster’s Temporal or a host id', () => {
    const config = sandboxHost();
    expect(config.name).toBe('warden-sandbox-host');
    expect(Object.keys(config.services).sort()).toEqual(['sandbox-image', 'sandbox-worker']);
    for (const missing of ['TEMPORAL_ADDRESS', 'WARDEN_DOCKER_HOST_ID']) {
      const vars: Record<string, string> = { DOCKER_GID: '4242', ...SANDBOX_HOST };
      delete vars[missing];
      const res = cli.config(vars, ['--quiet'], SANDBOX_HOST_COMPOSE_FILE);
      expect(res.status, missing).not.toBe(0);
      expect(res.stderr, missing).toContain(missing);
    }
  });

  it('runs only a sandbox worker, with this host’s id, the cluster’s Temporal and the secrets of the first host', () => {
    const { services, secrets } = sandboxHost(LEAKY);
    const worker = services['sandbox-worker']!;
    expect(env(worker)).toMatchObject({
      WARDEN_WORKER_ROLES: 'sandbox',
      WARDEN_DOCKER_HOST_ID: 'host-2',
      TEMPORAL_ADDRESS: '10.0.0.1:7233',
    });
    expect(mountsSocket(worker)).toBe(true);
    expect(worker.ports ?? []).toEqual([]);
    expect(Object.keys(worker.depends_on ?? {})).toEqual(['sandbox-image']);
    expect(Object.keys(secrets ?? {}).sort()).toEqual(['warden-database-url', 'warden-master-key']);
    for (const [variable, secret] of Object.entries(SECRETS)) {
      expect(env(worker)[variable]).toBe(`/run/secrets/${secret}`);
      expect(worker.secrets).toContainEqual({ source: secret, target: `/run/secrets/${secret}` });
    }
    expect(JSON.stringify(services)).not.toContain(LEAKY.WARDEN_MASTER_KEY);
    const loaded = loadServiceConfig(worker);
    expect(loaded.workerRoles).toEqual(['sandbox']);
    expect(loaded.temporalAddress).toBe('10.0.0.1:7233');
    // The settings the API admits agents with are the cluster's (the same defaults, the same variables).
    const first = cluster().services['sandbox-worker']!;
    for (const key of [
      'WARDEN_SANDBOX_IMAGE',
      'WARDEN_SANDBOX_RUNTIME',
      'WARDEN_REQUIRE_SANDBOX',
      'WARDEN_SANDBOX_POOL_SIZE',
      'WARDEN_MAX_AGENTS',
    ])
      expect(env(worker)[key], key).toBe(env(first)[key]);
  });
});

describe('docs/deployment.md', () => {
  it('names every service, variable and secret of both files', () => {
    const text = readFileSync(join(PROJECT_ROOT, 'docs/deployment.md'), 'utf8');
    for (const [file, config] of [
      [CLUSTER_COMPOSE_FILE, cluster()],
      [SANDBOX_HOST_COMPOSE_FILE, sandboxHost()],
    ] as const) {
      for (const name of Object.keys(config.services)) expect(text, `service ${name}`).toContain(`\`${name}\``);
      for (const name of Object.keys(config.secrets ?? {})) expect(text, `secret ${name}`).toContain(`\`${name}\``);
      const set = new Set(Object.values(config.services).flatMap((s) => Object.keys(env(s))));
      const read = new Set([...readFileSync(file, 'utf8').matchAll(/(?<!\$)\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]!));
      for (const name of [...set, ...read]) expect(text, `variable ${name}`).toContain(`\`${name}\``);
    }
  });
});
