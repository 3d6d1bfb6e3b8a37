/**
 * The warm sandbox pool of one Docker host: per sandbox profile, a few sandboxes created, started
 * and idle, so that creating an agent's sandbox is a rename instead of a create and a start.
 *
 * One worker process serves a host and owns its pool (members carry its process id in a label).
 * A member is claimed by renaming it, by its pool name, to the agent's container name: the engine
 * does that atomically, so a member goes to at most one agent, and a claim that a crash cut short
 * left either a member (still under its pool name) or the agent's container (under its name, which
 * the create activity's retry then adopts). A claimed sandbox never returns to the pool. Members
 * of another process, of a profile no longer kept, or that stopped, are removed whenever the pool
 * is reconciled: at start-up, every few seconds, and by the reaper. While Warden is locked down
 * the pool holds nothing and makes nothing.
 */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type Docker from 'dockerode';
import type { PoolProfileSetting } from '../domain/sandbox-pool.js';
import type { SandboxRuntime } from '../domain/agent.js';
import { chooseRuntime, detectRuntimes, type EngineRuntimes, type RuntimeChoice } from './docker-engine.js';
import { containerName, LABELS, POOL_MEMBER_PREFIX, sandboxProfileOptions, type SandboxProfile } from './spec.js';

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

/** A JSON text of `value` with every object's keys sorted: the same spec always hashes the same. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * A profile's key: the hash of everything the engine is told about a sandbox of that profile,
 * the image by its id (a rebuilt image makes a new profile). Two sandboxes with one key differ
 * only in their name and agent: the engine cannot change a running container's limits under
 * every runtime, so a claim takes only a member of the exact profile.
 */
export function profileKey(options: Docker.ContainerCreateOptions, imageId: string): string {
  return createHash('sha256')
    .update(canonicalJson({ ...options, Image: imageId }))
    .digest('hex')
    .slice(0, 16);
}

/** A member: its container id and its pool name (the name a claim renames it from). */
export interface PoolMember {
  id: string;
  name: string;
}

/**
 * The pool's bookkeeping: the idle members of each profile and the names being created. A claim
 * takes a member out synchronously, so two claims in this process never take the same one.
 */
export class PoolMembers {
  private readonly idle = new Map<string, PoolMember[]>();
  /** Names of members being created: a reconcile that lists one before it is idle leaves it alone. */
  readonly creating = new Set<string>();

  add(key: string, member: PoolMember): void {
    const list = this.idle.get(key) ?? [];
    list.push(member);
    this.idle.set(key, list);
  }

  /** The oldest idle member of the profile, taken out of the pool; undefined when none is idle. */
  take(key: string): PoolMember | undefined {
    return this.idle.get(key)?.shift();
  }

  /** A member whose claim did not happen goes back first in line. */
  putBack(key: string, member: PoolMember): void {
    const list = this.idle.get(key) ?? [];
    list.unshift(member);
    this.idle.set(key, list);
  }

  /** Forgets a member by name (it was removed); whether it was idle. */
  forget(name: string): boolean {
    for (const list of this.idle.values()) {
      const at = list.findIndex((m) => m.name === name);
      if (at >= 0) return (list.splice(at, 1), true);
    }
    return false;
  }

  count(key: string): number {
    return (this.idle.get(key)?.length ?? 0) + [...this.creating].filter((n) => n.startsWith(memberPrefix(key))).length;
  }

  idleCount(key: string): number {
    return this.idle.get(key)?.length ?? 0;
  }

  /** Every idle member, taken out of the pool (to be removed). */
  takeAll(): PoolMember[] {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    return all;
  }
}

const memberPrefix = (key: string) => `${POOL_MEMBER_PREFIX}${key}-`;
export const memberName = (key: string): string => `${memberPrefix(key)}${randomBytes(4).toString('hex')}`;

/** A profile as this host makes it now: its key and create spec. */
interface KeptProfile {
  key: string;
  options: Docker.ContainerCreateOptions;
}

export interface SandboxPoolOptions {
  host: string;
  image: string;
  /** Members kept per profile; 0: no pool (reconciling then removes every member of the host). */
  size: number;
  profiles: PoolProfileSetting[];
  /** The runtime an agent that asks for none gets (WARDEN_SANDBOX_RUNTIME). */
  defaultRuntime: SandboxRuntime | 'auto';
  requireSandbox: boolean;
  /** Whether Warden is locked down; throws when that cannot be read (the pool then makes nothing). */
  lockedDown: () => Promise<boolean>;
  /** Gives a started sandbox its shared workspace (what the create activity does after a start). */
  prepare: (c: Docker.Container) => Promise<void>;
  /** How often the pool reconciles and refills itself (5 s by default). */
  intervalMs?: number;
  onError?: (err: unknown) => void;
}

/** What a claim answers: the container now under the agent's name, or why there was none. */
export type Claim = { outcome: 'hit'; containerId: string } | { outcome: 'miss' } | { outcome: 'none' };

export interface PoolReconciliation {
  removed: Array<{ container_id: string; name: string; reason: string }>;
  idle: Record<string, number>;
}

export class SandboxPool {
  /** This process's id on its members: members with another are orphans of an earlier process. */
  readonly owner = randomUUID();
  private readonly members = new PoolMembers();
  private kept = new Map<string, KeptProfile>();
  private engine: EngineRuntimes | undefined;
  private imageId: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Reconciles and fills run one at a time; claims never wait for them. */
  private tail: Promise<unknown> = Promise.resolve();
  private refillQueued = false;
  private stopped = false;

  constructor(
    private readonly docker: Docker,
    readonly opts: SandboxPoolOptions,
  ) {}

  get enabled(): boolean {
    return this.opts.size > 0 && this.opts.profiles.length > 0;
  }

  /** Reconciles at once (members of an earlier process go), then every intervalMs while the pool is on. */
  start(): void {
    if (!this.enabled) {
      void this.reconcile().catch((err) => this.opts.onError?.(err));
      return;
    }
    const tick = () => {
      this.timer = setTimeout(() => void this.reconcileLogged().finally(() => !this.stopped && tick()), this.opts.intervalMs ?? 5_000);
      this.timer.unref();
    };
    void this.reconcileLogged().finally(() => !this.stopped && tick());
  }

  /** Stops refilling and removes the idle members (a worker that leaves leaves none behind). */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.serial(async () => {
      for (const m of this.members.takeAll()) await this.remove(m.name);
    });
  }

  /** The engine's runtimes as last read: the claim path does not ask the engine again. */
  engineRuntimes(): EngineRuntimes | undefined {
    return this.engine;
  }

  /**
   * Takes an idle member of exactly this sandbox's profile and renames it to the agent's container.
   * `none`: the pool keeps no such profile. Throws NameTaken when a container already has the
   * agent's name (an earlier attempt's claim or create): the caller adopts it.
   */
  async claim(agentId: string, profile: SandboxProfile): Promise<Claim> {
    const key = this.keyOf(profile);
    if (!key) return { outcome: 'none' };
    try {
      for (let member = this.members.take(key); member; member = this.members.take(key)) {
        try {
          await this.docker.getContainer(member.name).rename({ name: containerName(agentId) });
        } catch (err) {
          if (statusOf(err) === 409) {
            this.members.putBack(key, member);
            throw new NameTakenError(containerName(agentId));
          }
          if (statusOf(err) === 404) continue; // removed outside Warden: the next one
          void this.remove(member.name);
          throw err;
        }
        const state = await this.docker
          .getContainer(member.id)
          .inspect()
          .then((info) => info.State)
          .catch(() => null);
        if (state?.Running && !state.Paused) return { outcome: 'hit', containerId: member.id };
        // Stopped since it was made: it holds the agent's name now, so it goes before the next try.
        await this.docker
          .getContainer(member.id)
          .remove({ force: true, v: true })
          .catch((err) => {
            if (statusOf(err) !== 404) throw err;
          });
      }
      return { outcome: 'miss' };
    } finally {
      this.refillSoon();
    }
  }

  /** Idle members per profile key. */
  idle(): Record<string, number> {
    return Object.fromEntries([...this.kept.keys()].map((key) => [key, this.members.idleCount(key)]));
  }

  /**
   * Lists the host's pool members by label and removes those that are not this process's, not of
   * a profile it keeps, or not running; then drains the pool under a lockdown, or fills it.
   */
  reconcile(): Promise<PoolReconciliation> {
    return this.serial(async () => {
      const removed: PoolReconciliation['removed'] = [];
      await this.refreshProfiles().catch((err) => this.opts.onError?.(err));
      for (const c of await idlePoolMembers(this.docker, this.opts.host)) {
        const name = c.name;
        const reason =
          c.owner !== this.owner
            ? 'a member of an earlier worker process'
            : !this.kept.has(c.profile)
              ? 'its profile is no longer kept'
              : c.state !== 'running' && !this.members.creating.has(name)
                ? `it is ${c.state}`
                : null;
        if (!reason) continue;
        this.members.forget(name);
        if (await this.remove(name)) removed.push({ container_id: c.id, name, reason });
      }
      if (!this.enabled) return { removed, idle: {} };
      let locked = true;
      try {
        locked = await this.opts.lockedDown();
      } catch (err) {
        this.opts.onError?.(err); // unreadable: make nothing, keep what is there
        return { removed, idle: this.idle() };
      }
      if (locked) {
        for (const m of this.members.takeAll()) {
          if (await this.remove(m.name)) removed.push({ container_id: m.id, name: m.name, reason: 'Warden is locked down' });
        }
      } else {
        await this.fill();
      }
      return { removed, idle: this.idle() };
    });
  }

  private reconcileLogged(): Promise<unknown> {
    return this.reconcile().catch((err) => this.opts.onError?.(err));
  }

  /** After a claim: one refill, behind whatever runs, however many claims asked. */
  private refillSoon(): void {
    if (this.refillQueued || this.stopped || !this.enabled) return;
    this.refillQueued = true;
    void this.serial(async () => {
      this.refillQueued = false;
      if (!(await this.opts.lockedDown().catch(() => true))) await this.fill();
    }).catch((err) => this.opts.onError?.(err));
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn, fn);
    this.tail = run.catch(() => undefined);
    return run;
  }

  private keyOf(profile: SandboxProfile): string | null {
    if (!this.imageId || profile.image !== this.opts.image) return null;
    const key = profileKey(sandboxProfileOptions(profile), this.imageId);
    return this.kept.has(key) ? key : null;
  }

  /** Reads the engine's runtimes and the image's id, and works out each kept profile's spec. */
  private async refreshProfiles(): Promise<void> {
    const kept = new Map<string, KeptProfile>();
    if (this.enabled) {
      this.engine = await detectRuntimes(this.docker);
      const image = await this.docker.getImage(this.opts.image).inspect();
      // An image without the executor cannot start a sandbox: the create activity says why, the pool makes none.
      if (!image.Config?.Labels?.[LABELS.executorSha256])
        throw new Error(`sandbox image ${this.opts.image} has no executor; the pool makes no sandbox of it`);
      this.imageId = image.Id;
      for (const setting of this.opts.profiles) {
        let choice: RuntimeChoice;
        try {
          choice = chooseRuntime(this.engine, setting.runtime ?? this.opts.defaultRuntime, {
            requireSandbox: this.opts.requireSandbox,
            networkEnabled: setting.limits.network_enabled,
          });
        } catch (err) {
          this.opts.onError?.(err); // this host cannot run the profile: nothing to keep warm
          continue;
        }
        const profile = {
          host: this.opts.host,
          image: this.opts.image,
          limits: setting.limits,
          runtime: choice.runtime,
          engineRuntime: choice.engineName,
        };
        const options = sandboxProfileOptions(profile);
        const key = profileKey(options, this.imageId);
        kept.set(key, { key, options });
      }
    }
    this.kept = kept;
    // Idle members of a profile no longer kept are found by the reconcile's listing and removed.
  }

  /** Makes members until each kept profile has `size`, one at a time (the host has other work). */
  private async fill(): Promise<void> {
    for (const profile of this.kept.values()) {
      while (!this.stopped && this.members.count(profile.key) < this.opts.size) {
        const member = await this.make(profile);
        if (!member) return; // the engine refused: the next reconcile tries again
        this.members.add(profile.key, member);
      }
    }
  }

  private async make(profile: KeptProfile): Promise<PoolMember | null> {
    const name = memberName(profile.key);
    this.members.creating.add(name);
    try {
      const created = await this.docker.createContainer({
        ...profile.options,
        name,
        Labels: { ...profile.options.Labels, [LABELS.pool]: profile.key, [LABELS.poolOwner]: this.owner },
      });
      await created.start();
      await this.opts.prepare(created);
      return { id: created.id, name };
    } catch (err) {
      this.opts.onError?.(err);
      await this.remove(name);
      return null;
    } finally {
      this.members.creating.delete(name);
    }
  }

  /** Removes a member by its pool name (never one already claimed, which has another name); whether it was there. */
  private async remove(name: string): Promise<boolean> {
    try {
      await this.docker.getContainer(name).remove({ force: true, v: true });
      return true;
    } catch (err) {
      if (statusOf(err) === 404 || statusOf(err) === 409) return false; // gone, or already being removed
      this.opts.onError?.(err);
      return false;
    }
  }
}

/** An idle warm pool member as the engine lists it. */
export interface ListedPoolMember {
  id: string;
  name: string;
  profile: string;
  owner: string;
  state: string;
}

/** The host's idle warm pool members, by label (a claimed member carries its agent's name and is left out). */
export async function idlePoolMembers(docker: Pick<Docker, 'listContainers'>, host: string): Promise<ListedPoolMember[]> {
  const listed = await docker.listContainers({
    all: true,
    filters: { label: [`${LABELS.managed}=true`, `${LABELS.host}=${host}`, LABELS.pool] },
  });
  return listed
    .map((c) => ({
      id: c.Id,
      name: (c.Names[0] ?? '').replace(/^\//, ''),
      profile: c.Labels[LABELS.pool] ?? '',
      owner: c.Labels[LABELS.poolOwner] ?? '',
      state: c.State,
    }))
    .filter((m) => m.name.startsWith(POOL_MEMBER_PREFIX));
}

/** A container already has the agent's name: the create activity adopts it if it is the agent's. */
export class NameTakenError extends Error {
  override readonly name = 'NameTaken';
}
