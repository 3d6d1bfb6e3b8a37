/**
 * The worker's side of the sandbox executor (sandbox-image/executor), the sandbox's PID 1 that
 * runs commands sent over the container's attach stream: no network and no mount between them.
 * The container is created with OpenStdin (and StdinOnce off, so the executor's stdin outlives any
 * one client) and without a TTY, so Docker multiplexes the executor's stdout and stderr on the
 * stream. Frames are JSON lines matched by id; byte strings travel as base64.
 *
 * Every attached client receives every response, so a client that attached after another one died
 * (a retried activity on another worker) asks `result(id)` for the run it lost. Only one client
 * should write at a time: Docker copies each client's stdin into the executor's in chunks, and two
 * clients writing large frames at once could interleave them.
 */
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import type Docker from 'dockerode';

export interface ExecutorRunRequest {
  /** The run's identity: a run whose id the executor already knows is never run again. */
  id: string;
  argv: string[];
  /** The whole environment, `NAME=value` each (nothing is inherited). */
  env?: string[];
  /** Written to the command's stdin, then closed (secrets travel here, never in argv or env). */
  stdin?: string | Buffer;
  cwd?: string;
  /** The command's own uid (not 0): when the run ends, every process of that uid is killed. */
  uid: number;
  gid: number;
  timeout_ms: number;
  /** Per stream: bytes beyond it are counted in *_dropped and not kept. */
  max_output_bytes: number;
  /**
   * The id is never dropped: once the result is gone (forgotten, or ten minutes after the run) the
   * id still refuses the run, for the sandbox's life (an action's run, keyed by its action id).
   */
  keep_id?: boolean;
}

export interface ExecutorResult {
  id: string;
  /** The exit status, or 128 + the signal that killed the command. */
  exit_code: number;
  /** The signal that killed the command; 0 if it exited. */
  signal: number;
  /** The timeout ran out: the command's process group got SIGTERM, then SIGKILL. */
  timed_out: boolean;
  stdout: Buffer;
  stderr: Buffer;
  stdout_dropped: number;
  stderr_dropped: number;
  /** Processes of the command's uid were still alive after the executor kept killing them for seconds. */
  outlived: boolean;
  duration_ms: number;
}

/** The executor refused a request (an empty argv, uid 0, ...). */
export class ExecutorRequestError extends Error {
  override readonly name = 'ExecutorRequestError';
}

/**
 * The executor knows the run but no longer keeps its result: a client forgot it (an earlier
 * attempt had it in hand) or it was evicted. The command is never run again for it.
 */
export class ExecutorResultCollectedError extends Error {
  override readonly name = 'ExecutorResultCollected';
}

/**
 * An action an earlier worker ran under the shell execution journal (before actions ran natively):
 * the executor did not start it, and the worker collects it through the journal instead.
 */
export class ExecutorShellJournalError extends Error {
  override readonly name = 'ExecutorShellJournal';
}

/** The attach stream ended (the container stopped, or close() was called) with requests unanswered. */
export class ExecutorDetachedError extends Error {
  override readonly name = 'ExecutorDetached';
}

export interface ExecutorClient {
  /**
   * Runs a command, or, if its id is known, answers the first run's result; fails with
   * ExecutorResultCollectedError once that result is forgotten.
   */
  run(req: ExecutorRunRequest): Promise<ExecutorResult>;
  /** A run's result (waiting for it while it runs), or null if the executor knows no run of that id; as run() once forgotten. */
  result(id: string): Promise<ExecutorResult | null>;
  /** Ends a run now (its process group killed, then its uid swept) and answers its result, or null as result() does. */
  cancel(id: string): Promise<ExecutorResult | null>;
  /** Drops a finished run's result from the executor's memory; its id stays known, so it never runs again. */
  forget(id: string): Promise<void>;
  /** Resolves once the executor answers: it reads and serves requests in order. */
  ping(): Promise<void>;
  /** Detaches; requests still waiting fail with ExecutorDetachedError, runs go on in the sandbox. */
  close(): void;
}

/** The executor drops a longer frame unanswered (maxFrameBytes in sandbox-image/executor/main.go). */
const MAX_FRAME_BYTES = 64 * 1024 * 1024;

type Kind = 'run' | 'result' | 'cancel' | 'forget' | 'ping';
interface Waiter {
  kind: Kind;
  resolve: (value: ExecutorResult | null) => void;
  reject: (err: Error) => void;
}

interface ResultFrame {
  type: 'result';
  id: string;
  exit_code: number;
  signal: number;
  timed_out: boolean;
  stdout: string | null;
  stderr: string | null;
  stdout_dropped: number;
  stderr_dropped: number;
  outlived: boolean;
  duration_ms: number;
}
type Frame =
  | ResultFrame
  | { type: 'pong' | 'unknown' | 'collected' | 'forgotten' | 'journaled'; id: string }
  | { type: 'error'; id?: string; error: string };

/** Attaches to a running container whose main process is the executor. */
export async function attachExecutor(
  container: Docker.Container,
  opts: {
    onLog?: (line: string) => void;
    /** Called once, when the client can serve no more requests. */
    onDetach?: (err: Error) => void;
    /** The attach connection does not keep the process alive (a client kept for later requests). */
    unref?: boolean;
  } = {},
): Promise<ExecutorClient> {
  const stream = (await container.attach({
    stream: true,
    stdin: true,
    stdout: true,
    stderr: true,
    hijack: true,
  })) as NodeJS.ReadWriteStream & {
    destroy(): void;
    unref?(): void;
  };
  if (opts.unref) stream.unref?.();
  const waiters = new Map<string, Waiter[]>();
  let detached: Error | null = null;

  const settle = (id: string, pick: (w: Waiter) => boolean, act: (w: Waiter) => void) => {
    const list = waiters.get(id) ?? [];
    const [hit, rest] = [list.filter(pick), list.filter((w) => !pick(w))];
    if (rest.length) waiters.set(id, rest);
    else waiters.delete(id);
    hit.forEach(act);
  };
  const onFrame = (frame: Frame) => {
    if (frame.type === 'result') {
      const result = decodeResult(frame);
      settle(
        frame.id,
        (w) => w.kind === 'run' || w.kind === 'result' || w.kind === 'cancel',
        (w) => w.resolve(result),
      );
    } else if (frame.type === 'collected') {
      const err = new ExecutorResultCollectedError(`the sandbox executor no longer keeps the result of run ${frame.id}`);
      settle(
        frame.id,
        (w) => w.kind === 'run' || w.kind === 'result' || w.kind === 'cancel',
        (w) => w.reject(err),
      );
    } else if (frame.type === 'journaled') {
      const err = new ExecutorShellJournalError(`action run ${frame.id} was started under the shell execution journal`);
      settle(
        frame.id,
        (w) => w.kind === 'run',
        (w) => w.reject(err),
      );
    } else if (frame.type === 'forgotten') {
      settle(
        frame.id,
        (w) => w.kind === 'forget',
        (w) => w.resolve(null),
      );
    } else if (frame.type === 'unknown') {
      settle(
        frame.id,
        (w) => w.kind === 'result' || w.kind === 'cancel',
        (w) => w.resolve(null),
      );
    } else if (frame.type === 'pong') {
      settle(
        frame.id,
        (w) => w.kind === 'ping',
        (w) => w.resolve(null),
      );
    } else if (frame.type === 'error' && frame.id) {
      const err = new ExecutorRequestError(`the sandbox executor refused request ${frame.id}: ${frame.error}`);
      settle(
        frame.id,
        () => true,
        (w) => w.reject(err),
      );
    }
  };

  let pending = Buffer.alloc(0);
  let first = true;
  const stdout = new Writable({
    write(chunk: Buffer, _enc, done) {
      pending = Buffer.concat([pending, chunk]);
      for (let nl = pending.indexOf(10); nl >= 0; nl = pending.indexOf(10)) {
        const line = pending.subarray(0, nl).toString('utf8');
        pending = pending.subarray(nl + 1);
        try {
          onFrame(JSON.parse(line) as Frame);
        } catch (err) {
          // Attaching in the middle of a frame shows its tail first: only that one may be cut.
          if (!first) opts.onLog?.(`unreadable frame from the sandbox executor: ${(err as Error).message}`);
        }
        first = false;
      }
      done();
    },
  });
  const stderr = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) opts.onLog?.(line);
      done();
    },
  });
  container.modem.demuxStream(stream, stdout, stderr);

  const detach = (err: Error) => {
    if (detached) return;
    detached = err;
    for (const list of waiters.values()) for (const w of list) w.reject(err);
    waiters.clear();
    opts.onDetach?.(err);
  };
  stream.on('end', () => detach(new ExecutorDetachedError('the sandbox executor stream ended')));
  stream.on('close', () => detach(new ExecutorDetachedError('the sandbox executor stream closed')));
  stream.on('error', (err: Error) => detach(new ExecutorDetachedError(`the sandbox executor stream failed: ${err.message}`)));

  const request = <T extends ExecutorResult | null>(kind: Kind, frame: Record<string, unknown> & { id: string }): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (detached) return reject(detached);
      const line = JSON.stringify({ type: kind, ...frame }) + '\n';
      if (Buffer.byteLength(line) > MAX_FRAME_BYTES) {
        return reject(new ExecutorRequestError(`request ${frame.id} is over the sandbox executor's ${MAX_FRAME_BYTES} bytes`));
      }
      const list = waiters.get(frame.id) ?? [];
      list.push({ kind, resolve: resolve as Waiter['resolve'], reject });
      waiters.set(frame.id, list);
      stream.write(line);
    });

  // Ends whatever a client that died mid-write left of a frame: the executor drops that line.
  stream.write('\n');

  return {
    run: (req) =>
      request<ExecutorResult>('run', {
        ...req,
        stdin: req.stdin === undefined ? undefined : Buffer.from(req.stdin).toString('base64'),
      }),
    result: (id) => request<ExecutorResult | null>('result', { id }),
    cancel: (id) => request<ExecutorResult | null>('cancel', { id }),
    forget: async (id) => {
      await request<null>('forget', { id });
    },
    ping: async () => {
      await request<null>('ping', { id: `ping-${randomUUID()}` });
    },
    close: () => {
      detach(new ExecutorDetachedError('the sandbox executor client was closed'));
      stream.destroy();
    },
  };
}

function decodeResult(frame: ResultFrame): ExecutorResult {
  const { type: _type, stdout, stderr, ...rest } = frame;
  return { ...rest, stdout: Buffer.from(stdout ?? '', 'base64'), stderr: Buffer.from(stderr ?? '', 'base64') };
}
