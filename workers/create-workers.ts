/**
 * The workers of one Warden process: the control worker (workflows and control activities) and
 * the sandbox worker of this process's Docker host. Tests build them the same way.
 */
import Docker from 'dockerode';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createAuditActivities } from '../activities/audit.js';
import type { AuditStore } from '../activities/audit-store.js';
import { createControlActivities } from '../activities/control.js';
import { createSandboxActivities } from '../activities/sandbox.js';
import { CONTROL_TASK_QUEUE, sandboxTaskQueue } from '../workflows/definitions.js';
import { WORKFLOWS_PATH } from './bundle.js';

export interface WorkerOptions {
  temporalAddress: string;
  namespace: string;
  dockerHostId: string;
  /** Which workers this process runs: a Docker host may run only the sandbox worker. */
  roles: ReadonlyArray<'control' | 'sandbox'>;
  /** The audit log the control worker writes (required with the control role). */
  audit?: AuditStore;
  docker?: Docker;
  workflowBundle?: WorkflowBundleWithSourceMap | { codePath: string };
  /** How long in-flight activities may finish after a shutdown signal. */
  shutdownGraceTime?: string;
  /** When a shutdown gives up waiting for activities that ignore their cancellation (no limit by default). */
  shutdownForceTime?: string;
  identity?: string;
}

export async function createWorkers(opts: WorkerOptions) {
  const connection = await NativeConnection.connect({ address: opts.temporalAddress });
  const workers: Worker[] = [];
  const common = { connection, namespace: opts.namespace, shutdownGraceTime: opts.shutdownGraceTime ?? '30 seconds', ...(opts.identity ? { identity: opts.identity } : {}) };
  if (opts.shutdownForceTime) Object.assign(common, { shutdownForceTime: opts.shutdownForceTime });
  // Aborted when shutdown begins: activities that would never end on their own (the sandbox
  // watchers) hand themselves back to Temporal at once instead of holding the grace period.
  const draining = new AbortController();
  let clientConnection: Connection | undefined;
  if (opts.roles.includes('control')) {
    if (!opts.audit) throw new Error('the control worker needs the audit store');
    clientConnection = await Connection.connect({ address: opts.temporalAddress });
    const client = new Client({ connection: clientConnection, namespace: opts.namespace });
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: CONTROL_TASK_QUEUE,
        ...(opts.workflowBundle ? { workflowBundle: opts.workflowBundle } : { workflowsPath: WORKFLOWS_PATH }),
        activities: { ...createControlActivities(client), ...createAuditActivities(opts.audit) },
      }),
    );
  }
  if (opts.roles.includes('sandbox')) {
    workers.push(
      await Worker.create({
        ...common,
        taskQueue: sandboxTaskQueue(opts.dockerHostId),
        activities: createSandboxActivities(opts.docker ?? new Docker(), { draining: draining.signal }),
      }),
    );
  }
  return {
    workers,
    /** Runs until every worker has shut down (Ctrl-C, SIGTERM, or shutdown()). */
    async run() {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        await clientConnection?.close();
        await connection.close();
      }
    },
    shutdown() {
      draining.abort();
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
