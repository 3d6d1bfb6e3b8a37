/**
 * The Compose deployment (docker-compose.yml, Dockerfile, docs/deployment.md). No image can be
 * pulled here, so the stack is not started: Compose itself (scripts/setup-compose.sh installs it)
 * validates and normalises the file, and these tests check what the normalised file says. The
 * search-attribute one-shot runs for real against the suite's Temporal server, and the API's
 * healthcheck against a local HTTP server.
 */
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { loadConfig } from '../../domain/config.js';
import { PROJECT_ROOT, temporalCli } from '../../scripts/dev-server.js';
import { SearchAttributes } from '../../workflows/definitions.js';
import { COMPOSE_FILE, composeCli, type ComposeCli, type Service } from '../support/compose-config.js';

const SOCKET = '/var/run/docker.sock';
const SERVICES = ['postgresql', 'temporal', 'temporal-admin-tools', 'temporal-ui', 'sandbox-image', 'docker-proxy', 'worker', 'api'];
const WARDEN_ATTRIBUTES = Object.values(SearchAttributes).map((key) => key.name);

let cli: ComposeCli;
const composeConfig: ComposeCli['config'] = (vars, args) => cli.config(vars, args);
const load: ComposeCli['load'] = (vars) => cli.load(vars);

/** A port nothing listens on (taken, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createTcpServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

const env = (s: Service) => s.environment ?? {};
const mountsSocket = (s: Service) => (s.volumes ?? []).filter((v) => v.type === 'bind' && v.source === SOCKET);

beforeAll(() => {
  cli = composeCli();
});

afterAll(() => cli?.dispose());

describe('docker-compose.yml', () => {
  it('is valid for Compose, and refuses to render without DOCKER_GID', () => {
    const config = load();
    expect(config.name).toBe('warden');
    expect(Object.keys(config.services).sort()).toEqual([...SERVICES].sort());

    const missing = composeConfig({}, ['--quiet']);
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toMatch(/DOCKER_GID/);
  });

  it('pins every pulled image, with matching Temporal server and admin-tools versions', () => {
    const { services } = load();
    for (const [name, s] of Object.entries(services)) {
      if (s.build) continue;
      expect(s.image, name).toMatch(/^[a-z0-9./-]+:[A-Za-z0-9._-]+$/);
      expect(s.image, name).not.toMatch(/:latest$/);
    }
    const server = services.temporal.image!.match(/^temporalio\/auto-setup:(\d+\.\d+\.\d+)$/);
    expect(server).not.toBeNull();
    expect(services['temporal-admin-tools'].image).toMatch(new RegExp(`^temporalio/admin-tools:${server![1].replaceAll('.', '\\.')}-`));
    expect(services['temporal-ui'].image).toMatch(/^temporalio\/ui:\d+\.\d+\.\d+$/);
  });

  it('publishes only the API and the Temporal UI, and only on 127.0.0.1', () => {
    const { services } = load();
    const publishing = Object.entries(services)
      .filter(([, s]) => (s.ports ?? []).length > 0)
      .map(([n]) => n);
    expect(publishing.sort()).toEqual(['api', 'temporal-ui']);
    for (const name of publishing) {
      for (const port of services[name].ports!) expect(port.host_ip, `${name} ${port.published}`).toBe('127.0.0.1');
    }
    expect(services.api.ports).toEqual([expect.objectContaining({ host_ip: '127.0.0.1', published: '8080', target: 8080 })]);
    expect(services['temporal-ui'].ports).toEqual([expect.objectContaining({ host_ip: '127.0.0.1', published: '8233', target: 8080 })]);
    // The API listens on all interfaces inside its container, on the port that is published.
    expect(env(services.api).WARDEN_API_HOST).toBe('0.0.0.0');
    expect(env(services.api).WARDEN_API_PORT).toBe(String(services.api.ports![0].target));
  });

  it('gives the Docker socket to the worker and a read-only proxy, never to the API', () => {
    const { services } = load();
    const withSocket = Object.entries(services)
      .filter(([, s]) => mountsSocket(s).length > 0)
      .map(([n]) => n);
    expect(withSocket.sort()).toEqual(['docker-proxy', 'worker']);
    expect(mountsSocket(services.worker)).toEqual([expect.objectContaining({ target: SOCKET })]);
    expect(mountsSocket(services['docker-proxy'])).toEqual([expect.objectContaining({ target: SOCKET, read_only: true })]);
    // The worker runs unprivileged with the socket's group, taken from DOCKER_GID.
    expect(services.worker.group_add).toEqual(['4242']);
    // The proxy lets through only what the API reads (GET /version and /info).
    const proxy = env(services['docker-proxy']);
    expect(proxy.POST).toBe('0');
    expect(proxy.INFO).toBe('1');
    expect(proxy.VERSION).toBe('1');
    for (const section of ['CONTAINERS', 'EXEC', 'IMAGES', 'BUILD', 'VOLUMES', 'NETWORKS', 'SERVICES', 'SWARM', 'SYSTEM']) {
      expect(proxy[section] ?? '0', section).toBe('0');
    }
    expect(env(services.api).DOCKER_HOST).toBe('tcp://docker-proxy:2375');
    expect(services['docker-proxy'].ports ?? []).toEqual([]);
  });

  it('points the worker and the API at temporal:7233 with the same Warden settings', () => {
    const { services } = load();
    const worker = env(services.worker);
    const api = env(services.api);
    expect(worker.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(api.TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(env(services['temporal-ui']).TEMPORAL_ADDRESS).toBe('temporal:7233');
    expect(worker.WARDEN_WORKER_ROLES).toBe('control,sandbox,model');
    // Every setting is one domain/config.ts reads, and both processes see the same value: the
    // API admits agents with the settings the worker runs them with.
    const configSource = readFileSync(join(PROJECT_ROOT, 'domain/config.ts'), 'utf8');
    const own = new Set([
      'WARDEN_WORKER_ROLES',
      'WARDEN_REAPER_INTERVAL_SECONDS',
      'WARDEN_WORKER_SHUTDOWN_GRACE_SECONDS',
      'WARDEN_SANDBOX_SLOTS',
      'WARDEN_WATCH_SLOTS',
      'WARDEN_SDK_METRICS_ADDRESS',
      'WARDEN_API_HOST',
      'WARDEN_API_PORT',
      'DOCKER_HOST',
    ]);
    for (const [name, vars] of [
      ['worker', worker],
      ['api', api],
    ] as const) {
      for (const key of Object.keys(vars)) {
        if (key === 'DOCKER_HOST') continue;
        expect(configSource, `${name}: ${key}`).toContain(`'${key}'`);
      }
    }
    const shared = Object.keys(worker).filter((k) => !own.has(k));
    expect(shared.length).toBeGreaterThanOrEqual(8);
    for (const key of shared) expect(api[key], key).toBe(worker[key]);
  });

  it('passes every setting of domain/config.ts through, but the few that have no place in Compose', () => {
    const configSource = readFileSync(join(PROJECT_ROOT, 'domain/config.ts'), 'utf8');
    const settings = [...configSource.matchAll(/^\s+\w+: '((?:WARDEN|TEMPORAL)_[A-Z_]+)',$/gm)].map((m) => m[1]!);
    expect(settings.length).toBeGreaterThanOrEqual(30);
    const notInCompose = new Set([
      'WARDEN_TEMPORAL_PORT', // the dev server's, which Compose does not run
      'WARDEN_TEMPORAL_UI_PORT',
      'WARDEN_POLICY_FILE', // a path in the container: mount the file and set it in an override
      'WARDEN_TEMPORAL_TLS_CA', // paths in the container too: mount the certificates and set them in an override
      'WARDEN_TEMPORAL_TLS_CERT',
      'WARDEN_TEMPORAL_TLS_KEY',
      'WARDEN_TEMPORAL_TLS_SERVER_NAME', // with them: Compose's own Temporal has no TLS
      'WARDEN_PAYLOAD_ALLOW_PLAINTEXT', // a one-off migration switch, never left on
      'WARDEN_PROVIDERS_FILE', // a path in the container: mount the file and set it in an override
      'WARDEN_EMBEDDED_MODEL', // `make up`'s embedded model, which Compose does not run: configure a provider
      'WARDEN_EMBEDDED_MODEL_PORT',
      'WARDEN_EMBEDDED_MODEL_URL',
    ]);
    const { services } = load();
    const passed = new Set([...Object.keys(env(services.worker)), ...Object.keys(env(services.api))]);
    for (const name of settings) expect(passed.has(name) || notInCompose.has(name), name).toBe(true);
    // What Compose renders by default is a valid configuration for both processes.
    for (const service of [services.worker, services.api]) {
      const vars = Object.fromEntries(Object.entries(env(service)).map(([k, v]) => [k, v ?? undefined]));
      expect(() => loadConfig(vars)).not.toThrow();
    }

    // Set on the host, they reach the processes that read them; unset, they are off.
    const alerting = {
      WARDEN_ALERT_WEBHOOKS: 'https://alerts.example/hook',
      WARDEN_ALERT_SECRET: 'a'.repeat(32),
      WARDEN_METRICS_TOKEN: 'scrape-token-0123456789',
      WARDEN_SDK_METRICS_ADDRESS: '0.0.0.0:9464',
    };
    const set = load(alerting).services;
    for (const service of [set.worker, set.api]) {
      expect(env(service).WARDEN_ALERT_WEBHOOKS).toBe(alerting.WARDEN_ALERT_WEBHOOKS);
      expect(env(service).WARDEN_ALERT_SECRET).toBe(alerting.WARDEN_ALERT_SECRET);
    }
    expect(env(set.api).WARDEN_METRICS_TOKEN).toBe(alerting.WARDEN_METRICS_TOKEN);
    expect(env(set.worker).WARDEN_SDK_METRICS_ADDRESS).toBe(alerting.WARDEN_SDK_METRICS_ADDRESS);
    expect(env(services.api).WARDEN_ALERT_WEBHOOKS ?? '').toBe('');
    expect(env(services.api).WARDEN_METRICS_TOKEN ?? '').toBe('');
  });

  it('starts the worker and the API after the search attributes and the sandbox image exist', () => {
    const { services } = load();
    for (const name of ['worker', 'api']) {
      expect(services[name].depends_on?.['temporal-admin-tools']?.condition, name).toBe('service_completed_successfully');
      expect(services[name].restart, name).toMatch(/^(always|unless-stopped)$/);
      expect(services[name].build?.context, name).toBe(PROJECT_ROOT);
    }
    expect(services.worker.image).toBe(services.api.image);
    expect(services.worker.depends_on?.['sandbox-image']?.condition).toBe('service_completed_successfully');
    expect(services.temporal.depends_on?.postgresql?.condition).toBe('service_healthy');
  });

  it('builds the sandbox image into the host engine under the name the worker uses', () => {
    const { services } = load();
    const sandbox = services['sandbox-image'];
    expect(sandbox.build?.context).toBe(join(PROJECT_ROOT, 'sandbox-image'));
    expect(sandbox.pull_policy).toBe('build');
    expect(sandbox.image).toBe('warden-sandbox:bookworm');
    expect(env(services.worker).WARDEN_SANDBOX_IMAGE).toBe(sandbox.image);
    expect(sandbox.restart ?? 'no').toBe('no');
    // One override renames both.
    const custom = load({ WARDEN_SANDBOX_IMAGE: 'example/sandbox:v2' }).services;
    expect(custom['sandbox-image'].image).toBe('example/sandbox:v2');
    expect(env(custom.worker).WARDEN_SANDBOX_IMAGE).toBe('example/sandbox:v2');
    expect(env(custom.api).WARDEN_SANDBOX_IMAGE).toBe('example/sandbox:v2');
  });

  it('keeps PostgreSQL data in a named volume, with one password for PostgreSQL and Temporal', () => {
    const config = load({ POSTGRES_PASSWORD: 's3cret' });
    const pg = config.services.postgresql;
    const data = (pg.volumes ?? []).find((v) => v.target === '/var/lib/postgresql/data');
    expect(data).toMatchObject({ type: 'volume', source: 'postgresql-data' });
    expect(Object.keys(config.volumes ?? {})).toContain('postgresql-data');
    expect(pg.ports ?? []).toEqual([]);
    expect(env(pg).POSTGRES_PASSWORD).toBe('s3cret');
    const temporal = env(config.services.temporal);
    expect(temporal.POSTGRES_PWD).toBe('s3cret');
    expect(temporal.POSTGRES_USER).toBe(env(pg).POSTGRES_USER);
    expect(temporal.POSTGRES_SEEDS).toBe('postgresql');
  });

  describe('the API healthcheck', () => {
    let server: Server;
    let status = 200;
    let port = 0;
    beforeAll(async () => {
      server = createServer((req, res) => {
        res.statusCode = req.url === '/healthz' ? status : 404;
        res.end('{}');
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      port = (server.address() as { port: number }).port;
    });
    afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

    it('probes /healthz and fails on an error status or a refused connection', async () => {
      const test = load().services.api.healthcheck!.test;
      expect(test[0]).toBe('CMD');
      const [bin, ...args] = test.slice(1);
      expect(bin).toBe('node');
      expect(args.join(' ')).toContain('127.0.0.1:8080/healthz');
      // Asynchronously: the server answering it lives in this process.
      const run = (p: number) =>
        new Promise<number | null>((resolve) => {
          const child = spawn(
            process.execPath,
            args.map((a) => a.replace('127.0.0.1:8080', `127.0.0.1:${p}`)),
            { stdio: 'ignore' },
          );
          const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
          child.on('exit', (code) => {
            clearTimeout(timer);
            resolve(code);
          });
        });
      status = 200;
      expect(await run(port)).toBe(0);
      status = 503;
      expect(await run(port)).toBe(1);
      const closed = await closedPort();
      expect(await run(closed)).toBe(1);
    });
  });

  describe('the search-attribute one-shot (temporal-admin-tools)', () => {
    it('registers every Warden search attribute as Keyword, and is idempotent', async () => {
      const admin = load().services['temporal-admin-tools'];
      expect(admin.entrypoint).toEqual(['/bin/sh', '-ec']);
      // What the container's shell gets: Compose turns $$ into $.
      const script = admin.command![0].replaceAll('$$', '$');
      for (const name of WARDEN_ATTRIBUTES) expect(script).toContain(name);

      // Run it against the suite's Temporal server, in a namespace of its own that it has to wait for.
      const cli = await temporalCli();
      const address = inject('temporalAddress');
      const namespace = `compose-test-${Date.now()}`;
      const shellEnv = {
        ...process.env,
        PATH: `${dirname(cli)}:${process.env.PATH}`,
        TEMPORAL_ADDRESS: address,
        TEMPORAL_NAMESPACE: namespace,
      };
      execFileSync(cli, ['operator', 'namespace', 'create', '--address', address, '--namespace', namespace]);

      const first = spawnSync('/bin/sh', ['-ec', script], { env: shellEnv, encoding: 'utf8', timeout: 120_000 });
      expect(first.status, first.stderr).toBe(0);
      const listed = JSON.parse(
        execFileSync(cli, ['operator', 'search-attribute', 'list', '--address', address, '--namespace', namespace, '-o', 'json'], {
          encoding: 'utf8',
        }),
      ) as { customAttributes?: Record<string, string> };
      const custom = listed.customAttributes ?? {};
      for (const name of WARDEN_ATTRIBUTES) expect(custom[name], name).toMatch(/KEYWORD$/i);

      const second = spawnSync('/bin/sh', ['-ec', script], { env: shellEnv, encoding: 'utf8', timeout: 120_000 });
      expect(second.status, second.stderr).toBe(0);
      for (const name of WARDEN_ATTRIBUTES) expect(second.stdout).toContain(`search attribute ${name} exists`);
    });
  });
});

describe('docs/deployment.md', () => {
  const doc = () => readFileSync(join(PROJECT_ROOT, 'docs/deployment.md'), 'utf8');

  it('names every service and every variable the compose file sets or reads', () => {
    const { services } = load();
    const text = doc();
    for (const name of Object.keys(services)) expect(text, `service ${name}`).toContain(`\`${name}\``);
    const set = new Set(Object.values(services).flatMap((s) => Object.keys(env(s))));
    // Variables Compose substitutes from the operator's environment or .env (not $$-escaped ones).
    const raw = readFileSync(COMPOSE_FILE, 'utf8');
    const read = new Set([...raw.matchAll(/(?<!\$)\$\{([A-Z_][A-Z0-9_]*)/g)].map((m) => m[1]));
    expect(read).toContain('DOCKER_GID');
    for (const name of [...set, ...read]) expect(text, `variable ${name}`).toContain(`\`${name}\``);
  });

  it('has the security section on the Docker socket', () => {
    const text = doc();
    expect(text).toMatch(/^## Security: what giving the worker the Docker socket means$/m);
    for (const topic of [/root-equivalent/i, /rootless/i, /socket proxy/i, /dedicated Docker host/i]) expect(text).toMatch(topic);
  });
});

describe('Dockerfile and .dockerignore', () => {
  it('builds one unprivileged Node 20 image whose default command is the worker', () => {
    const dockerfile = readFileSync(join(PROJECT_ROOT, 'Dockerfile'), 'utf8');
    const instructions = dockerfile.split('\n').filter((l) => /^[A-Z]+\s/.test(l));
    expect(instructions[0]).toBe('FROM node:20-bookworm-slim');
    expect(instructions).toContain('RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force');
    const users = instructions.filter((l) => l.startsWith('USER '));
    expect(users).toEqual(['USER node']);
    expect(instructions.at(-1)).toBe('CMD ["node", "--import", "tsx", "workers/main.ts"]');
    // tsx runs the TypeScript at run time, so it must survive --omit=dev.
    const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8'));
    expect(pkg.dependencies.tsx).toBeDefined();
  });

  it('keeps modules, local state, secrets and tests out of the build context', () => {
    const ignored = readFileSync(join(PROJECT_ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim());
    for (const entry of ['node_modules', '.warden', '.git', '.env', 'test']) expect(ignored).toContain(entry);
  });
});
