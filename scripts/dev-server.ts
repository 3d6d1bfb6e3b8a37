/**
 * Starts the embedded Temporal dev server (SQLite-backed, so workflows survive restarts) and
 * registers Warden's search attributes, for `make up` and the test suite alike.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import { SearchAttributes } from '../workflows/definitions.js';

const run = promisify(execFile);
export const PROJECT_ROOT = join(dirname(new URL(import.meta.url).pathname), '..');

export interface DevServerOptions {
  dbFile: string;
  port: number;
  uiPort: number;
  logFile: string;
  /** false: no Web UI (the tests). */
  ui?: boolean;
  /** The codec server the Web UI decodes payloads through (Warden's API, /codec). */
  uiCodecEndpoint?: string;
  /** Dynamic config values, e.g. { 'limit.historyCount.suggestContinueAsNew': 40 }. */
  dynamicConfig?: Record<string, unknown>;
}

export interface DevServer {
  address: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The environment of the processes that talk to a dev server this launcher started: that server's
 * address through a profile file of its own, and nothing that belongs to another server. The
 * operator's default profile (the CLI's, in the home directory) may carry TLS, an API key or
 * headers for their cluster; read for a plaintext server on loopback they only break the
 * connection, and the key would be offered to a server it was never meant for.
 */
export function devServerEnv(env: NodeJS.ProcessEnv, address: string, profileFile: string): NodeJS.ProcessEnv {
  writeFileSync(profileFile, `# Written by make up: its own Temporal dev server.\n[profile.default]\naddress = "${address}"\n`, {
    mode: 0o600,
  });
  const forAnotherServer = /^(TEMPORAL_(PROFILE|API_KEY|TLS.*|GRPC_META_.+|CODEC_.+)|WARDEN_TEMPORAL_TLS_.+)$/;
  const own = Object.entries(env).filter(([name]) => !forAnotherServer.test(name));
  return { ...Object.fromEntries(own), TEMPORAL_ADDRESS: address, TEMPORAL_CONFIG_FILE: profileFile };
}

/** The Temporal CLI's path, installing it project-locally when needed (scripts/setup-temporal.sh). */
export async function temporalCli(): Promise<string> {
  const { stdout } = await run('bash', [join(PROJECT_ROOT, 'scripts/setup-temporal.sh')]);
  return stdout.trim();
}

export async function startDevServer(opts: DevServerOptions): Promise<DevServer> {
  const cli = await temporalCli();
  mkdirSync(dirname(opts.dbFile), { recursive: true });
  mkdirSync(dirname(opts.logFile), { recursive: true });
  const out = openSync(opts.logFile, 'a');
  const args = [
    'server',
    'start-dev',
    '--db-filename',
    opts.dbFile,
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--log-level',
    'warn',
  ];
  args.push(...(opts.ui === false ? ['--headless'] : ['--ui-port', String(opts.uiPort)]));
  if (opts.ui !== false && opts.uiCodecEndpoint) args.push('--ui-codec-endpoint', opts.uiCodecEndpoint);
  for (const [key, value] of Object.entries(opts.dynamicConfig ?? {})) {
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  }
  const child = spawn(cli, args, { stdio: ['ignore', out, out], detached: true });
  const address = `127.0.0.1:${opts.port}`;
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code) => reject(new Error(`temporal dev server exited with code ${code}; see ${opts.logFile}`))),
  );
  await Promise.race([waitForServer(address), exited]);
  await registerSearchAttributes(cli, address);
  return {
    address,
    process: child,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

async function waitForServer(address: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      await connection.workflowService.getSystemInfo({});
      await connection.close();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw new Error(`Temporal at ${address} did not answer within ${timeoutMs} ms: ${err}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Creates the search attributes the server lacks. `--search-attribute` flags are not applied to
 * a reused database file, so this asks the server instead.
 */
export async function registerSearchAttributes(cli: string, address: string): Promise<void> {
  // This server's address alone: no TLS, key or headers from the operator's own CLI profile or TEMPORAL_* variables.
  const operator = (...args: string[]) =>
    run(cli, ['operator', 'search-attribute', ...args, '--address', address, '--disable-config-file', '--disable-config-env'], {
      env: Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TEMPORAL_'))),
    });
  const { stdout } = await operator('list', '-o', 'json');
  const existing = JSON.stringify(JSON.parse(stdout));
  for (const key of Object.values(SearchAttributes)) {
    if (existing.includes(`"${key.name}"`)) continue;
    await operator('create', '--name', key.name, '--type', 'Keyword');
  }
}
