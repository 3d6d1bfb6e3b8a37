/**
 * One Docker events stream per sandbox worker: the watches of this host's sandboxes hear of a
 * container's end from it, instead of each holding a `wait` open on the engine, and the command
 * path of a pause or unpause, instead of asking the engine before each command.
 */
import type Docker from 'dockerode';
import { LABELS } from './spec.js';

/**
 * What a listener hears: `event` when its container died, was destroyed, hit its memory limit, was
 * paused or unpaused (the engine's action comes with it); `lost` when a stream that was open ended,
 * so events are missed until `resync`, when the stream (re)connected. A listener of an end reads
 * the container's state: an OOM event does not always end the container, and a destroy of an old
 * container may name a new one.
 */
export type ContainerNotice = 'event' | 'lost' | 'resync';
export type ContainerAction = 'die' | 'destroy' | 'oom' | 'pause' | 'unpause';
type Listener = (notice: ContainerNotice, action?: ContainerAction) => void;

interface EngineEvent {
  Action?: ContainerAction;
  Actor?: { Attributes?: { name?: string } };
}

export interface ContainerEventsOptions {
  /** How long after a lost stream it first connects again; doubled on each failure after, up to 10 s. */
  reconnectMs?: number;
  /** A stream that failed or could not be opened (it is opened again). */
  onError?: (err: unknown) => void;
}

/**
 * The stream is open while anyone listens (a process without watches holds no connection to the
 * engine), and opened again whenever it ends: an engine restart ends it.
 */
export class ContainerEvents {
  private readonly listeners = new Map<string, Set<Listener>>();
  private connection: AbortController | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Streams lost in a row: an engine that stays away is asked less often (and logged less). */
  private failures = 0;
  private closed = false;

  constructor(
    private readonly docker: Docker,
    private readonly opts: ContainerEventsOptions = {},
  ) {}

  /** Calls `listener` for the container named `name` until the returned function is called. */
  listen(name: string, listener: Listener): () => void {
    if (this.closed) throw new Error('the container events stream is closed');
    let set = this.listeners.get(name);
    if (!set) this.listeners.set(name, (set = new Set()));
    set.add(listener);
    this.connect();
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(name) === set) this.listeners.delete(name);
      if (this.listeners.size === 0) this.disconnect();
    };
  }

  /** Ends the stream for good (the worker is gone). */
  close(): void {
    this.closed = true;
    this.disconnect();
  }

  private connect(): void {
    if (this.closed || this.connection || this.retry) return;
    const connection = (this.connection = new AbortController());
    let streaming = false;
    const lost = (err: unknown) => {
      if (this.connection !== connection) return; // closed on purpose, or already replaced
      this.connection = undefined;
      if (!connection.signal.aborted) connection.abort();
      this.opts.onError?.(err);
      if (streaming) this.notifyAll('lost');
      if (this.listeners.size > 0 && !this.closed) {
        const delay = Math.min((this.opts.reconnectMs ?? 1000) * 2 ** this.failures++, 10_000);
        this.retry = setTimeout(() => {
          this.retry = undefined;
          if (this.listeners.size > 0) this.connect();
        }, delay);
      }
    };
    this.docker
      .getEvents({
        filters: { type: ['container'], event: ['die', 'destroy', 'oom', 'pause', 'unpause'], label: [`${LABELS.managed}=true`] },
        abortSignal: connection.signal,
      })
      .then((stream) => {
        if (this.connection !== connection) return;
        this.failures = 0;
        streaming = true;
        let pending = '';
        stream.on('data', (chunk: Buffer) => {
          pending += chunk.toString('utf8');
          const lines = pending.split('\n');
          pending = lines.pop() ?? '';
          for (const line of lines) if (line.trim()) this.dispatch(line);
        });
        stream.on('error', lost);
        stream.on('end', () => lost(new Error('the Docker events stream ended')));
        stream.on('close', () => lost(new Error('the Docker events stream closed')));
        // Whatever ended while no stream was open is found by reading each container's state.
        this.notifyAll('resync');
      }, lost);
  }

  private disconnect(): void {
    clearTimeout(this.retry);
    this.retry = undefined;
    const connection = this.connection;
    this.connection = undefined;
    connection?.abort();
  }

  private dispatch(line: string): void {
    let event: EngineEvent;
    try {
      event = JSON.parse(line) as EngineEvent;
    } catch {
      return;
    }
    const name = event.Actor?.Attributes?.name;
    if (!name) return;
    for (const listener of [...(this.listeners.get(name) ?? [])]) listener('event', event.Action);
  }

  private notifyAll(notice: ContainerNotice): void {
    for (const set of [...this.listeners.values()]) for (const listener of [...set]) listener(notice);
  }
}
