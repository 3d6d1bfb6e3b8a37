/**
 * `make up` end to end: the launcher starts its own Temporal dev server, worker and API, the demo
 * drives an agent through its life, and SIGINT (Ctrl-C) stops every process it started.
 */
import { execFile, spawn } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { PROJECT_ROOT, temporalCli } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';

const run = promisify(execFile);

const listening = (port: number) =>
  new Promise<boolean>((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
  });

it('starts the stack, runs the demo, and stops everything on Ctrl-C', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'warden-up-'));
  // The operator's own Temporal CLI profile, for their cluster (TLS and an API key, the address
  // left to TEMPORAL_ADDRESS): make up's own dev server is reached without any of it.
  const xdgConfig = join(dataDir, 'xdg');
  mkdirSync(join(xdgConfig, 'temporalio'), { recursive: true });
  writeFileSync(
    join(xdgConfig, 'temporalio', 'temporal.toml'),
    '[profile.default]\napi_key = "tk-for-another-cluster"\n[profile.default.tls]\nserver_name = "temporal.example.com"\n',
  );
  const [temporalPort, uiPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const cli = await temporalCli();
  const child = spawn(process.execPath, ['--import', 'tsx', 'scripts/up.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: '',
      XDG_CONFIG_HOME: xdgConfig,
      WARDEN_DATA_DIR: dataDir,
      WARDEN_TEMPORAL_PORT: String(temporalPort),
      WARDEN_TEMPORAL_UI_PORT: String(uiPort),
      WARDEN_API_PORT: String(apiPort),
      WARDEN_DOCKER_HOST_ID: 'up-test',
      WARDEN_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    const deadline = Date.now() + 330_000; // the demo talks to the embedded model: minutes on a loaded machine
    while (!out.includes('demo finished') && Date.now() < deadline && child.exitCode === null) {
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(out).toContain('demo finished');
    expect(out).toContain(`API            http://127.0.0.1:${apiPort}`);
    expect(out).toContain(`API docs       http://127.0.0.1:${apiPort}/docs`);
    expect(out).toContain(`Temporal UI    http://127.0.0.1:${uiPort}`);
    expect(out).toMatch(/demo: agent agt-[0-9a-f]+ is running in container [0-9a-f]{12} under (runsc|kata|runc)/);
    // The workspace is derived within memory_mb (tmpfs counts as memory).
    expect(out).toMatch(/limits: 0.5 CPU, 256 MiB memory \(no swap\), \d+ MiB workspace, 128 processes, network off/);
    expect(out).toMatch(/paused -> paused/);
    expect(out).toMatch(/resumed -> running/);
    expect(out).toMatch(/stopped at .* \(exit code 0\); its container is removed/);
    expect(await listening(apiPort)).toBe(true);
    // make up keeps its admin key in a file only its owner can read, and the API takes it.
    const keyFile = join(dataDir, 'admin-key');
    expect(out).toContain(`admin API key  in ${keyFile} (mode 0600)`);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const key = readFileSync(keyFile, 'utf8').trim();
    expect((await fetch(`http://127.0.0.1:${apiPort}/api/agents`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(200);
    expect((await fetch(`http://127.0.0.1:${apiPort}/api/agents`)).status).toBe(401);
    expect(out).not.toContain(key); // never printed

    // Payloads are encrypted under the key file made before the worker and API started; the Web UI
    // is pointed at the API's codec server, which the CLI uses here with the admin key.
    expect(statSync(join(dataDir, 'master-keys.json')).mode & 0o777).toBe(0o600);
    const settings = (await (await fetch(`http://127.0.0.1:${uiPort}/api/v1/settings`)).json()) as { Codec: { Endpoint: string } };
    expect(settings.Codec.Endpoint).toBe(`http://127.0.0.1:${apiPort}/codec`);
    const agentId = /demo: agent (agt-[0-9a-f]+) is running/.exec(out)![1]!;
    const show = (...codec: string[]) =>
      run(cli, ['workflow', 'show', '--workflow-id', agentId, '--address', `127.0.0.1:${temporalPort}`, '--output', 'json', ...codec]);
    const encrypted = /binary\/encrypted|YmluYXJ5L2VuY3J5cHRlZA==/;
    expect((await show()).stdout).toMatch(encrypted);
    const codecEndpoint = ['--codec-endpoint', `http://127.0.0.1:${apiPort}/codec`];
    expect((await show(...codecEndpoint, '--codec-auth', `Bearer ${key}`)).stdout).not.toMatch(encrypted);
    await expect(show(...codecEndpoint)).rejects.toThrow(/Command failed/); // no key: the codec server answers 401

    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(out).toContain('[warden] stopped');
    for (const port of [apiPort, temporalPort, uiPort]) expect(await listening(port)).toBe(false);
  } finally {
    // A failed run is stopped the way Ctrl-C stops it, so its Temporal server, worker and API go too:
    // a SIGKILLed launcher would leave them running.
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGINT');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 60_000))]);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
    rmSync(dataDir, { recursive: true, force: true });
  }
}, 400_000);
