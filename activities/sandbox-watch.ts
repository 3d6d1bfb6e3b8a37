/**
 * The sandbox watch: one long activity per agent that ends when its container does. It runs on
 * the watch worker of the agent's Docker host (its own task queue and slots, so watches never
 * take the slots commands run in) and hears of the container's end from the host's one events
 * stream (sandbox/container-events.ts).
 */
import type Docker from 'dockerode';
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import { containerName } from '../sandbox/spec.js';
import type { ContainerEvents } from '../sandbox/container-events.js';
import { FailureType } from '../domain/failure-types.js';

export interface SandboxExit {
  exitCode: number | null;
  oomKilled: boolean;
  /** The container is gone: removed outside Warden, or lost by the engine. */
  vanished: boolean;
}

export interface SandboxWatchOptions {
  /** The host's events stream, shared by every watch of the process. */
  events: ContainerEvents;
  /** Aborted when the worker begins to shut down. */
  draining?: AbortSignal;
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;
const HEARTBEAT_MS = 5_000;
/**
 * The backstop: each watch also reads its container's state every 15 to 45 s, for an event the
 * stream lost; spread out, so that thousands of watches do not ask the engine at once.
 */
const POLL_MS = 30_000;
/** After the stream (re)connects, every watch checks once within this long, not all at once. */
const RESYNC_SPREAD_MS = 5_000;

export function createSandboxWatchActivities(docker: Docker, opts: SandboxWatchOptions) {
  /** Waits until the sandbox's container exits or disappears; heartbeats while it runs. */
  async function awaitSandboxExit(agentId: string): Promise<SandboxExit> {
    const ctx = Context.current();
    // A watch never ends on its own: on shutdown it fails at once (retryable) and a worker that
    // stays takes it over, instead of holding the shutdown for the whole grace period.
    const stopWatching = AbortSignal.any([ctx.cancellationSignal, ...(opts.draining ? [opts.draining] : [])]);
    const watched = new AbortController();
    const signal = AbortSignal.any([stopWatching, watched.signal]);
    const name = containerName(agentId);
    const timers = new Set<NodeJS.Timeout>();
    const later = (ms: number, fn: () => void) => {
      const t = setTimeout(() => (timers.delete(t), fn()), ms);
      timers.add(t);
    };

    let unlisten: (() => void) | undefined;
    const beat = setInterval(() => heartbeat(), HEARTBEAT_MS);
    try {
      const ended = await new Promise<Docker.ContainerInspectInfo | null>((resolve, reject) => {
        signal.addEventListener('abort', () => reject(signal.reason), { once: true });
        // Not running: its state, or null when it is gone. A failed read (an engine restarting)
        // waits for the next event, reconnect or poll.
        const check = () => {
          if (signal.aborted) return;
          docker
            .getContainer(name)
            .inspect({ abortSignal: signal })
            .then(
              (info) => !info.State.Running && resolve(info),
              (err) => statusOf(err) === 404 && resolve(null),
            );
        };
        const poll = () => later(POLL_MS * (0.5 + Math.random()), () => (check(), poll()));
        unlisten = opts.events.listen(name, (notice, action) => {
          // A lost stream is made up for once it is back (resync).
          if (notice === 'resync') later(Math.random() * RESYNC_SPREAD_MS, check);
          else if (notice === 'event' && action !== 'pause' && action !== 'unpause') check();
        });
        // After listening: a container that ended before the watch began has no event to come.
        check();
        poll();
      });
      if (!ended) return { exitCode: null, oomKilled: false, vanished: true };
      return { exitCode: ended.State.ExitCode, oomKilled: ended.State.OOMKilled, vanished: false };
    } catch (err) {
      if (ctx.cancellationSignal.aborted) throw ctx.cancellationSignal.reason ?? err;
      if (opts.draining?.aborted)
        throw ApplicationFailure.retryable('the worker is shutting down; another worker watches the sandbox', FailureType.WorkerShutdown);
      throw err;
    } finally {
      unlisten?.();
      clearInterval(beat);
      for (const t of timers) clearTimeout(t);
      watched.abort();
    }
  }

  return { awaitSandboxExit };
}

export type SandboxWatchActivities = ReturnType<typeof createSandboxWatchActivities>;
