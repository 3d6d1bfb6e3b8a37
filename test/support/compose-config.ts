/**
 * docker-compose.yml as Compose itself reads it: `compose config` validates and normalises the
 * file (scripts/setup-compose.sh installs Compose; no image is pulled), so tests check what
 * Compose would run, not what a hand-written YAML reading guesses.
 */
import { execFileSync, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';

export const COMPOSE_FILE = join(PROJECT_ROOT, 'docker-compose.yml');
/** The first host of a multi-host deployment, and a Docker host that joins it. */
export const CLUSTER_COMPOSE_FILE = join(PROJECT_ROOT, 'docker-compose.cluster.yml');
export const SANDBOX_HOST_COMPOSE_FILE = join(PROJECT_ROOT, 'docker-compose.sandbox-host.yml');

/** The settings of domain/config.ts that no compose file passes, and why. */
export const NOT_IN_COMPOSE: ReadonlySet<string> = new Set([
  'WARDEN_TEMPORAL_PORT', // the dev server's, which Compose does not run
  'WARDEN_TEMPORAL_UI_PORT',
  'WARDEN_POLICY_FILE', // a path in the container: mount the file and set it in an override
  'WARDEN_TEMPORAL_TLS_CA', // paths in the container too: mount the certificates and set them in an override
  'WARDEN_TEMPORAL_TLS_CERT',
  'WARDEN_TEMPORAL_TLS_KEY',
  'WARDEN_TEMPORAL_TLS_SERVER_NAME', // with them: Compose's own Temporal has no TLS
  'WARDEN_PAYLOAD_ALLOW_PLAINTEXT', // a one-off migration switch, never left on
  'WARDEN_PROVIDERS_FILE', // a path in the container: mount the file and set it in an override
  'TEMPORAL_CONFIG_FILE', // a Temporal profile: a path in the container, mounted in an override
  'TEMPORAL_PROFILE',
  'WARDEN_EMBEDDED_MODEL', // `make up`'s embedded model, which Compose does not run: configure a provider
  'WARDEN_EMBEDDED_MODEL_PORT',
  'WARDEN_EMBEDDED_MODEL_URL',
]);

export interface Port {
  host_ip?: string;
  target: number;
  published?: string;
  protocol?: string;
}
export interface Volume {
  type: string;
  source?: string;
  target: string;
  read_only?: boolean;
}
export interface Service {
  image?: string;
  build?: { context: string; dockerfile?: string };
  pull_policy?: string;
  command?: string[] | null;
  entrypoint?: string[] | null;
  environment?: Record<string, string | null>;
  ports?: Port[];
  volumes?: Volume[];
  group_add?: string[];
  depends_on?: Record<string, { condition: string }>;
  secrets?: Array<{ source: string; target: string }>;
  healthcheck?: { test: string[] };
  restart?: string;
  network_mode?: string;
}
export interface ComposeConfig {
  name: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
  secrets?: Record<string, { file?: string }>;
}

export interface ComposeCli {
  /** `docker compose` or `docker-compose`, as scripts/setup-compose.sh found it. */
  command: string;
  /** `compose config` of a file (docker-compose.yml unless given) with only the variables given (and a fixed empty env file): no .env of a developer's and no WARDEN_* of the shell leak in. */
  config(vars: Record<string, string>, args?: string[], file?: string): SpawnSyncReturns<string>;
  /** The normalised file, with DOCKER_GID (which it refuses to render without) set to 4242 unless given. */
  load(vars?: Record<string, string>, file?: string): ComposeConfig;
  /** Removes the temporary directory holding the empty env file. */
  dispose(): void;
}

/** Makes sure Compose is installed and returns a way to render docker-compose.yml with it. */
export function composeCli(): ComposeCli {
  const command = execFileSync('bash', [join(PROJECT_ROOT, 'scripts/setup-compose.sh')], { encoding: 'utf8' }).trim();
  if (command !== 'docker compose' && command !== 'docker-compose')
    throw new Error(`scripts/setup-compose.sh printed ${JSON.stringify(command)}, not a Compose command`);
  const [bin, ...pre] = command.split(' ');
  const workDir = mkdtempSync(join(tmpdir(), 'warden-compose-'));
  const emptyEnvFile = join(workDir, 'empty.env');
  writeFileSync(emptyEnvFile, '');
  const config: ComposeCli['config'] = (vars, args = ['--format', 'json'], file = COMPOSE_FILE) =>
    spawnSync(bin!, [...pre, '--env-file', emptyEnvFile, '--project-directory', PROJECT_ROOT, '-f', file, 'config', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? workDir, ...vars },
      encoding: 'utf8',
    });
  return {
    command,
    config,
    load(vars = {}, file = COMPOSE_FILE) {
      const res = config({ DOCKER_GID: '4242', ...vars }, undefined, file);
      if (res.status !== 0) throw new Error(`compose config exited with ${res.status}: ${res.stderr}`);
      return JSON.parse(res.stdout) as ComposeConfig;
    },
    dispose: () => rmSync(workDir, { recursive: true, force: true }),
  };
}
