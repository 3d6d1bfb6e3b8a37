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
  healthcheck?: { test: string[] };
  restart?: string;
  network_mode?: string;
}
export interface ComposeConfig {
  name: string;
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

export interface ComposeCli {
  /** `docker compose` or `docker-compose`, as scripts/setup-compose.sh found it. */
  command: string;
  /** `compose config` with only the variables given (and a fixed empty env file): no .env of a developer's and no WARDEN_* of the shell leak in. */
  config(vars: Record<string, string>, args?: string[]): SpawnSyncReturns<string>;
  /** The normalised file, with DOCKER_GID (which it refuses to render without) set to 4242 unless given. */
  load(vars?: Record<string, string>): ComposeConfig;
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
  const config: ComposeCli['config'] = (vars, args = ['--format', 'json']) =>
    spawnSync(bin!, [...pre, '--env-file', emptyEnvFile, '--project-directory', PROJECT_ROOT, '-f', COMPOSE_FILE, 'config', ...args], {
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: process.env.HOME ?? workDir, ...vars },
      encoding: 'utf8',
    });
  return {
    command,
    config,
    load(vars = {}) {
      const res = config({ DOCKER_GID: '4242', ...vars });
      if (res.status !== 0) throw new Error(`compose config exited with ${res.status}: ${res.stderr}`);
      return JSON.parse(res.stdout) as ComposeConfig;
    },
    dispose: () => rmSync(workDir, { recursive: true, force: true }),
  };
}
