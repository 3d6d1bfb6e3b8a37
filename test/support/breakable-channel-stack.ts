/**
 * A channel stack for the tests that break things: a Temporal dev server of the test file's own
 * (stopped and started again on the same port and database), worker processes the test kills, and
 * the API's key store and audit log on files those processes share, as in docker-compose.yml (the
 * worker checks a conversation's requester in the key store; the API finds an action's requester
 * in the audit log without asking a worker).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { startDevServer, type DevServer } from '../../scripts/dev-server.js';
import { AuditStore } from '../../stores/audit-store.js';
import { KeyStore } from '../../stores/key-store.js';
import { startChannelStack } from './channel-stack.js';
import { freePort } from './global-setup.js';
import { testAuditOptions } from './helpers.js';
import { killWorkers, signalWorker, startWorker, workerDataDir, workspaceLines, type WorkerProcess } from './worker-process.js';

type ChannelStackOptions = Parameters<typeof startChannelStack>[0];

/** A command that counts its own runs in the workspace and prints the count. */
export const countingCommand = (file: string) => `echo ran >> /workspace/${file}; wc -l < /workspace/${file}`;

export async function startBreakableChannelStack(
  opts: Omit<ChannelStackOptions, 'startWorkers'> & {
    /** More of the worker processes' environment (their Temporal address is the stack's). */
    workerEnv?: Record<string, string>;
  },
) {
  const dir = mkdtempSync(join(tmpdir(), 'warden-breakable-'));
  const port = await freePort();
  const serve = () => startDevServer({ dbFile: join(dir, 'temporal.db'), port, uiPort: 0, ui: false, logFile: join(dir, 'temporal.log') });
  let server: DevServer | undefined = await serve();
  const workerEnv = { ...opts.workerEnv, TEMPORAL_ADDRESS: server.address };
  const keysFile = join(workerDataDir, 'warden.db');
  const audit = AuditStore.open(join(workerDataDir, 'audit.db'), testAuditOptions(KeyStore.open(keysFile)));
  let worker: WorkerProcess | undefined;
  const restartWorker = async () => {
    worker = startWorker(workerEnv);
    await worker.ready;
  };
  const env = await startChannelStack({
    ...opts,
    config: { ...opts.config, temporalAddress: server.address },
    stack: { ...opts.stack, workers: false, keysFile, audit },
    startWorkers: restartWorker,
  });
  return {
    env,
    audit,
    restartWorker,
    /** SIGKILLs the worker process and waits until it is gone. */
    async killWorker() {
      signalWorker(worker!, 'SIGKILL');
      await worker!.exited;
    },
    /** A worker again, when a test that failed left it killed. */
    async ensureWorker() {
      if (worker!.child.exitCode !== null || worker!.child.signalCode !== null) await restartWorker();
    },
    async stopTemporal() {
      await server?.stop();
      server = undefined;
    },
    /** The Temporal server again, on the same port and database: the API and the worker reconnect on their own. */
    async startTemporal() {
      server = await serve();
    },
    /** The action ran once: its command's one run (in the output and the workspace), one approval by alice through `channel`, one grant on the log. */
    async expectRanOnce(id: string, file: string, channel: string) {
      await env.expectRanOnceApprovedByAlice(id, channel);
      expect(await audit.list({ action_id: id, kind: 'approval.granted' })).toHaveLength(1);
      expect(await workspaceLines(env.agentId, `/workspace/${file}`, 'ran')).toBe(1);
    },
    async stop() {
      await env.stop();
      killWorkers();
      await server?.stop();
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
