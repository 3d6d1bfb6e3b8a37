/**
 * Worker processes for the tests that break things: `workers/main.ts` run as the container image
 * runs it (`node --import tsx`), in its own process group.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inject } from 'vitest';
import { PROJECT_ROOT } from '../../scripts/dev-server.js';
import { docker, TEST_HOST, TEST_MASTER_KEY } from './helpers.js';
import { SANDBOX_GID, SANDBOX_UID } from '../../sandbox/spec.js';

export interface WorkerProcess {
  child: ChildProcess;
  /** Resolves once the worker polls its task queues. */
  ready: Promise<void>;
  /** Resolves with the exit code (or the signal that ended it). */
  exited: Promise<number | NodeJS.Signals>;
  /** Every line it logged so far (stdout), for a test of what a log shows. */
  output: string[];
}

const running: WorkerProcess[] = [];
/** The worker processes' data dir: a test whose worker reads the API's key store opens it here (warden.db). */
export const workerDataDir = mkdtempSync(join(tmpdir(), 'warden-worker-'));

export function startWorker(env: Record<string, string> = {}): WorkerProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'workers/main.ts'], {
    cwd: PROJECT_ROOT,
    env: {
      ...process.env,
      TEMPORAL_ADDRESS: inject('temporalAddress'),
      WARDEN_DOCKER_HOST_ID: TEST_HOST,
      WARDEN_DATA_DIR: workerDataDir,
      WARDEN_LOG_LEVEL: 'info',
      WARDEN_MASTER_KEY: TEST_MASTER_KEY, // the same keys as the test's client and API
      ...env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
    detached: true,
  });
  const exited = new Promise<number | NodeJS.Signals>((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));
  // The log at info tells when the worker is up; only warnings and errors reach the test output.
  const output: string[] = [];
  const ready = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      output.push(line);
      if (line.includes('"msg":"worker started"')) resolve();
      else if (/"level":[56]0/.test(line) || (/"level":40/.test(line) && !/No workflows registered|"type":"WorkerShutdown"/.test(line)))
        process.stdout.write(`${line}\n`);
    });
    void exited.then((how) => reject(new Error(`the worker exited (${how}) before it started`)));
  });
  ready.catch(() => undefined);
  const worker = { child, ready, exited, output };
  running.push(worker);
  return worker;
}

/** Sends a signal to the worker's process group; a group already gone is fine. */
export function signalWorker(worker: WorkerProcess, signal: NodeJS.Signals) {
  try {
    process.kill(-worker.child.pid!, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/** SIGKILLs every worker this file started: only the next worker may run the tasks. */
export function killWorkers() {
  for (const w of running) signalWorker(w, 'SIGKILL');
}

/** What a shell script prints in the agent's sandbox, run as the sandbox user beside Warden, straight on the engine. */
export async function sandboxOutput(agentId: string, script: string, ...args: string[]): Promise<string> {
  const exec = await docker
    .getContainer(`warden-agent-${agentId}`)
    .exec({ Cmd: ['sh', '-c', script, 'probe', ...args], User: `${SANDBOX_UID}:${SANDBOX_GID}`, AttachStdout: true, Tty: true }); // a tty: no stream headers
  const stream = await exec.start({ hijack: true, stdin: false, Tty: true });
  let out = '';
  stream.on('data', (d: Buffer) => (out += d.toString('utf8')));
  await new Promise((resolve) => (stream.on('end', resolve), stream.on('close', resolve)));
  return out;
}

/** How many lines of a file in the agent's workspace equal `line` (any line when omitted; 0 without the file). */
export async function workspaceLines(agentId: string, file: string, line = '.*'): Promise<number> {
  return Number((await sandboxOutput(agentId, 'cat "$1" 2>/dev/null | grep -cx -- "$2"', file, line)).trim());
}
