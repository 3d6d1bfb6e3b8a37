/**
 * Starts what the suite needs, once: the Docker engine and the sandbox image (installed and
 * built when missing), a Temporal dev server of its own on a free port with a fresh database, and
 * the workflow bundle, and a throw-away PostgreSQL server (test/support/postgres.ts) for the stores'
 * second back end. Test files reach them through `inject()`.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type {} from 'vitest';
import type { TestProject } from 'vitest/node';
import { bundleWorkflows } from '../../workers/bundle.js';
import { PROJECT_ROOT, startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { startTestPostgres, type TestPostgres } from './postgres.js';

declare module 'vitest' {
  export interface ProvidedContext {
    temporalAddress: string;
    workflowBundlePath: string;
    temporalDbFile: string;
    temporalPort: number;
    sandboxImage: string;
    testHost: string;
    /** The throw-away PostgreSQL server's superuser URL: make a database with createTestDatabase(). */
    postgresAdminUrl: string;
  }
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

let server: DevServer | undefined;
let postgres: TestPostgres | undefined;
const testHost = `test-${process.pid}`;
let dir: string | undefined;

export async function setup(project: TestProject) {
  const sandboxImage = process.env.WARDEN_SANDBOX_IMAGE ?? 'warden-sandbox:bookworm';
  execFileSync('bash', [join(PROJECT_ROOT, 'scripts/setup-docker.sh')], { stdio: 'inherit' });
  execFileSync('bash', [join(PROJECT_ROOT, 'scripts/build-image.sh')], { stdio: 'inherit' });
  dir = mkdtempSync(join(tmpdir(), 'warden-test-'));
  const port = await freePort();
  const dbFile = join(dir, 'temporal.db');
  server = await startDevServer({ dbFile, port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  postgres = await startTestPostgres(await freePort());
  const bundle = await bundleWorkflows();
  const bundlePath = join(dir, 'workflow-bundle.js');
  writeFileSync(bundlePath, bundle.code);
  project.provide('temporalAddress', server.address);
  project.provide('workflowBundlePath', bundlePath);
  project.provide('temporalDbFile', dbFile);
  project.provide('temporalPort', port);
  project.provide('sandboxImage', sandboxImage);
  project.provide('testHost', testHost);
  project.provide('postgresAdminUrl', postgres.adminUrl);
}

export async function teardown() {
  await server?.stop();
  postgres?.stop();
  // Containers this run made carry its host id; none may outlive it.
  const left = execFileSync('docker', ['ps', '-aq', '--filter', `label=dev.warden.host=${testHost}`])
    .toString()
    .trim();
  if (left) execFileSync('docker', ['rm', '-f', ...left.split('\n')]);
  if (dir) rmSync(dir, { recursive: true, force: true });
}
