/**
 * A worker process and the API process connect to Temporal through a TOML profile alone, as on a
 * cluster: no TEMPORAL_ADDRESS, no WARDEN_TEMPORAL_TLS_*. The profile names the suite's dev server
 * behind a TLS frontend that demands a client certificate (test/support/tls-terminator.ts), its
 * namespace, and an API key. The API finds the worker's pollers through it, and the key shows in
 * no log line and no answer.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { freePort } from '../support/global-setup.js';
import { TEST_MASTER_KEY, uniqueId, waitFor } from '../support/helpers.js';
import { killWorkers, startWorker } from '../support/worker-process.js';
import { startTlsTerminator, type TlsTerminator } from '../support/tls-terminator.js';

const API_KEY = `tk-profile-${'9f'.repeat(16)}`;
const ADMIN_KEY = `wk_${'p'.repeat(40)}`;
const dir = mkdtempSync(join(tmpdir(), 'warden-profile-'));
let terminator: TlsTerminator;
let api: ChildProcess | undefined;
const host = uniqueId('profile-host').toLowerCase();
const profileFile = join(dir, 'temporal.toml');

beforeAll(async () => {
  terminator = await startTlsTerminator(inject('temporalAddress'));
  writeFileSync(
    profileFile,
    `[profile.default]
address = "127.0.0.1:1"

[profile.warden]
address = "${terminator.address}"
namespace = "default"
api_key = "${API_KEY}"
[profile.warden.tls]
server_ca_cert_path = "${terminator.file('warden-test-ca.pem')}"
client_cert_path = "${terminator.file('warden.pem')}"
client_key_path = "${terminator.file('warden.key')}"
server_name = "temporal.test"
`,
    { mode: 0o600 },
  );
});

afterAll(async () => {
  killWorkers();
  if (api?.pid) process.kill(-api.pid, 'SIGKILL');
  await terminator?.close();
  rmSync(dir, { recursive: true, force: true });
});

it('a worker and the API connect through the profile; the API key shows nowhere', async () => {
  const viaProfile = {
    // Unset (empty counts as unset): only the profile says where Temporal is and how to reach it.
    TEMPORAL_ADDRESS: '',
    TEMPORAL_NAMESPACE: '',
    TEMPORAL_CONFIG_FILE: profileFile,
    TEMPORAL_PROFILE: 'warden',
    WARDEN_DOCKER_HOST_ID: host,
    WARDEN_REQUIRE_SANDBOX: 'false',
  };
  const worker = startWorker({ ...viaProfile, WARDEN_WORKER_ROLES: 'control,sandbox', WARDEN_REAPER_INTERVAL_SECONDS: '0' });
  await worker.ready;

  const port = await freePort();
  const apiOutput: string[] = [];
  api = spawn(process.execPath, ['--import', 'tsx', 'api/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      ...viaProfile,
      WARDEN_API_PORT: String(port),
      WARDEN_DATA_DIR: mkdtempSync(join(dir, 'api-')),
      WARDEN_ADMIN_API_KEY: ADMIN_KEY,
      WARDEN_LOG_LEVEL: 'info',
      WARDEN_MASTER_KEY: TEST_MASTER_KEY,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  for (const stream of [api.stdout!, api.stderr!]) createInterface({ input: stream }).on('line', (line) => apiOutput.push(line));
  const url = `http://127.0.0.1:${port}`;

  // Ready: the API reaches Temporal and sees the worker's control and sandbox pollers (no other
  // worker polls this host's sandbox queue).
  const ready = await waitFor(
    'the API to find the worker through the profile',
    async () => {
      const res = await fetch(`${url}/readyz`).catch(() => undefined);
      return res?.status === 200 ? ((await res.json()) as { components: Record<string, { detail: string }> }) : undefined;
    },
    90_000,
  );
  expect(ready.components.control_worker?.detail).toMatch(/poller/);
  expect(ready.components.sandbox_worker?.detail).toMatch(/poller/);

  const status = await fetch(`${url}/api/status`, { headers: { authorization: `Bearer ${ADMIN_KEY}` } });
  const statusBody = await status.text();
  expect(status.status, statusBody).toBe(200);

  const workerLog = worker.output.join('\n');
  const started = worker.output.find((l) => l.includes('"msg":"worker started"'))!;
  expect(JSON.parse(started).temporal).toMatchObject({
    address: terminator.address,
    namespace: 'default',
    profile: 'warden',
    config_file: profileFile,
    tls: 'mutual',
    tls_from: 'profile',
    api_key_set: true,
  });
  expect(apiOutput.join('\n')).toContain('"api_key_set":true');
  for (const [where, text] of [
    ['the worker log', workerLog],
    ['the API log', apiOutput.join('\n')],
    ['/api/status', statusBody],
    ['/readyz', JSON.stringify(ready)],
  ] as const) {
    expect(text, where).not.toContain(API_KEY);
  }
}, 240_000);
