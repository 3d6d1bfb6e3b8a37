/**
 * The host's one Docker events stream (sandbox/container-events.ts), against a stand-in engine:
 * events reach the listeners of the container they name, a lost stream is opened again and every
 * listener told to read its state, and the stream is closed once nobody listens.
 */
import { PassThrough } from 'node:stream';
import type Docker from 'dockerode';
import { describe, expect, it, vi } from 'vitest';
import { ContainerEvents, type ContainerNotice } from '../../sandbox/container-events.js';

/** An engine whose every events request gets a stream the test writes to. */
function standInEngine() {
  const requests: { opts: Record<string, unknown>; stream: PassThrough; signal: AbortSignal }[] = [];
  const docker = {
    getEvents: vi.fn(async (opts: Record<string, unknown>) => {
      const stream = new PassThrough();
      const signal = opts.abortSignal as AbortSignal;
      signal.addEventListener('abort', () => stream.destroy(), { once: true });
      requests.push({ opts, stream, signal });
      return stream;
    }),
  } as unknown as Docker;
  return { docker, requests };
}

const event = (name: string, action: string) =>
  JSON.stringify({ Type: 'container', Action: action, Actor: { ID: 'x', Attributes: { name } } }) + '\n';
const settle = () => new Promise((r) => setTimeout(r, 10));

describe('container events', () => {
  it("opens one stream of Warden containers' ends and hands each event to its container's listeners", async () => {
    const { docker, requests } = standInEngine();
    const events = new ContainerEvents(docker);
    const a: ContainerNotice[] = [];
    const b: ContainerNotice[] = [];
    const stopA = events.listen('warden-agent-a', (n) => a.push(n));
    const stopB = events.listen('warden-agent-b', (n) => b.push(n));
    await settle();
    expect(requests).toHaveLength(1);
    expect(requests[0]!.opts.filters).toEqual({
      type: ['container'],
      event: ['die', 'destroy', 'oom', 'pause', 'unpause'],
      label: ['dev.warden.managed=true'],
    });
    expect(a).toEqual(['resync']); // connected: what ended before is found by a state check
    expect(b).toEqual(['resync']);

    // A line split over chunks, two events in one chunk, and noise.
    const line = event('warden-agent-a', 'die');
    requests[0]!.stream.write(line.slice(0, 20));
    requests[0]!.stream.write(line.slice(20) + event('warden-agent-b', 'oom') + event('warden-agent-other', 'destroy') + 'not json\n');
    await settle();
    expect(a).toEqual(['resync', 'event']);
    expect(b).toEqual(['resync', 'event']);

    // The engine's action comes with the event: the command path keeps a pause from it.
    const actions: unknown[] = [];
    const stopActions = events.listen('warden-agent-a', (_n, action) => actions.push(action));
    requests[0]!.stream.write(event('warden-agent-a', 'pause') + event('warden-agent-a', 'unpause'));
    await settle();
    expect(actions).toEqual(['pause', 'unpause']);
    stopActions();

    stopA();
    expect(requests[0]!.signal.aborted).toBe(false);
    stopB();
    expect(requests[0]!.signal.aborted).toBe(true); // nobody listens: no connection held
    events.close();
  });

  it('opens the stream again when it ends, and tells every listener to check its container', async () => {
    const { docker, requests } = standInEngine();
    const errors: unknown[] = [];
    const events = new ContainerEvents(docker, { reconnectMs: 20, onError: (err) => errors.push(err) });
    const heard: ContainerNotice[] = [];
    const stop = events.listen('warden-agent-a', (n) => heard.push(n));
    await settle();
    requests[0]!.stream.end(); // an engine restart ends the stream
    await vi.waitFor(() => expect(requests).toHaveLength(2));
    await settle();
    // Told at once that events may be missed, and again once they are heard again.
    expect(heard).toEqual(['resync', 'lost', 'resync']);
    expect(errors.length).toBeGreaterThan(0);
    requests[1]!.stream.write(event('warden-agent-a', 'die'));
    await settle();
    expect(heard).toEqual(['resync', 'lost', 'resync', 'event']);
    stop();
    events.close();
    expect(() => events.listen('warden-agent-a', () => undefined)).toThrow(/closed/);
  });

  it('keeps trying while the engine refuses the stream', async () => {
    let refusals = 2;
    const { docker, requests } = standInEngine();
    const open = docker.getEvents as unknown as (opts: Record<string, unknown>) => Promise<PassThrough>;
    const flaky = {
      getEvents: (opts: Record<string, unknown>) => (refusals-- > 0 ? Promise.reject(new Error('connect ECONNREFUSED')) : open(opts)),
    } as unknown as Docker;
    const events = new ContainerEvents(flaky, { reconnectMs: 10 });
    const heard: ContainerNotice[] = [];
    events.listen('warden-agent-a', (n) => heard.push(n));
    await vi.waitFor(() => expect(heard).toEqual(['resync']));
    expect(requests).toHaveLength(1);
    events.close();
    expect(requests[0]!.signal.aborted).toBe(true);
  });
});
