/** The warm pool's pure pieces: profile keys, the members' bookkeeping, its settings, what it reserves, whose a container is. */
import { describe, expect, it } from 'vitest';
import { completeLimits } from '../../domain/agent.js';
import { hostShortfall } from '../../domain/host-capacity.js';
import { parsePoolProfiles, poolReservation } from '../../domain/sandbox-pool.js';
import { memberName, PoolMembers, profileKey } from '../../sandbox/pool.js';
import { agentOfContainer, LABELS, sandboxContainerOptions, sandboxProfileOptions, type SandboxProfile } from '../../sandbox/spec.js';

const profile: SandboxProfile = {
  host: 'h1',
  image: 'warden-sandbox:bookworm',
  limits: completeLimits(),
  runtime: 'runc',
  engineRuntime: 'runc',
};

describe('profileKey', () => {
  it('is the same for the same spec, whatever the order of its keys', () => {
    const options = sandboxProfileOptions(profile);
    const reordered = Object.fromEntries(Object.entries(options).reverse());
    expect(profileKey(reordered, 'sha256:a')).toBe(profileKey(options, 'sha256:a'));
    expect(profileKey(options, 'sha256:a')).toMatch(/^[0-9a-f]{16}$/);
  });

  it('differs with every limit, the runtime, the host and the image id', () => {
    const key = (p: typeof profile, image = 'sha256:a') => profileKey(sandboxProfileOptions(p), image);
    const keys = [
      key(profile),
      key(profile, 'sha256:b'),
      key({ ...profile, limits: completeLimits({ memory_mb: 256 }) }),
      key({ ...profile, limits: completeLimits({ cpu_cores: 0.5 }) }),
      key({ ...profile, limits: completeLimits({ max_processes: 64 }) }),
      key({ ...profile, limits: completeLimits({ disk_mb: 100 }) }),
      key({ ...profile, limits: completeLimits({ network_enabled: true }) }),
      key({ ...profile, runtime: 'runsc', engineRuntime: 'runsc' }),
      key({ ...profile, host: 'h2' }),
    ];
    expect(new Set(keys).size).toBe(keys.length);
  });

  it('holds everything an agent create spec holds but its name and agent label', () => {
    const agent = sandboxContainerOptions({ ...profile, agentId: 'agt-1' });
    const { name, Labels, ...rest } = agent;
    const { Labels: profileLabels, ...profileRest } = sandboxProfileOptions(profile);
    expect(name).toBe('warden-agent-agt-1');
    expect(rest).toEqual(profileRest);
    expect(Labels).toEqual({ ...profileLabels, [LABELS.agentId]: 'agt-1' });
    expect(JSON.stringify(profileRest)).not.toContain('agt-1');
  });
});

describe('PoolMembers', () => {
  it('hands each member out once, oldest first, and a claim that did not happen puts it back first', () => {
    const members = new PoolMembers();
    members.add('k', { id: '1', name: 'warden-pool-k-1' });
    members.add('k', { id: '2', name: 'warden-pool-k-2' });
    const first = members.take('k');
    expect(first?.id).toBe('1');
    expect(members.take('k')?.id).toBe('2');
    expect(members.take('k')).toBeUndefined();
    members.putBack('k', first!);
    expect(members.idleCount('k')).toBe(1);
    expect(members.take('other')).toBeUndefined();
    // Put back ahead of a member made meanwhile: the next claim takes it.
    members.add('k', { id: '3', name: 'warden-pool-k-3' });
    members.putBack('k', members.take('k')!);
    expect([members.take('k')?.id, members.take('k')?.id, members.take('k')?.id]).toEqual(['1', '3', undefined]);
  });

  it('counts members being made toward their profile, and drains every idle one', () => {
    const members = new PoolMembers();
    members.add('a', { id: '1', name: memberName('a') });
    members.creating.add(memberName('a'));
    members.creating.add(memberName('b'));
    expect(members.count('a')).toBe(2);
    expect(members.idleCount('a')).toBe(1);
    expect(members.forget('nope')).toBe(false);
    members.add('b', { id: '2', name: 'warden-pool-b-2' });
    expect(members.forget('warden-pool-b-2')).toBe(true);
    expect(members.idleCount('b')).toBe(0);
    expect(members.takeAll().map((m) => m.id)).toEqual(['1']);
    expect(members.idleCount('a')).toBe(0);
  });
});

describe('parsePoolProfiles', () => {
  it('reads default and key=value profiles', () => {
    expect(parsePoolProfiles('default; memory_mb=256,cpu_cores=0.5,runtime=runc ;network_enabled=true')).toEqual([
      { limits: completeLimits(), runtime: null },
      { limits: completeLimits({ memory_mb: 256, cpu_cores: 0.5 }), runtime: 'runc' },
      { limits: completeLimits({ network_enabled: true }), runtime: null },
    ]);
    expect(parsePoolProfiles('')).toEqual([]);
  });

  it('refuses what an agent could not ask for', () => {
    expect(() => parsePoolProfiles('memory_mb=1')).toThrow(/memory_mb/);
    expect(() => parsePoolProfiles('runtime=docker')).toThrow(/runtime "docker"/);
    expect(() => parsePoolProfiles('color=blue')).toThrow(/color/);
    expect(() => parsePoolProfiles('memory_mb')).toThrow(/key=value/);
    expect(() => parsePoolProfiles('network_enabled=1')).toThrow(/true or false/);
  });
});

describe('the pool in host capacity', () => {
  const budget = { memory_mb: 4096, cpu_cores: 4, memoryOvercommit: 1, cpuOvercommit: 1 };
  const agent = { host: 'h1', cpu_cores: 1, memory_mb: 1024 };

  it('reserves size members of each profile', () => {
    expect(poolReservation(2, parsePoolProfiles('default;memory_mb=256,cpu_cores=0.5'))).toEqual({
      members: 4,
      cpu_cores: 3,
      memory_mb: 2 * (512 + 256),
    });
  });

  it('counts the members with the agents admitted on the host', () => {
    const reserved = [agent, agent];
    expect(hostShortfall(agent, reserved, budget)).toBeNull();
    const pool = { members: 2, cpu_cores: 2, memory_mb: 1536 };
    const shortfall = hostShortfall(agent, reserved, { ...budget, pool });
    expect(shortfall).toContain('of which 3584 MiB are reserved by 2 agent(s) and 2 warm pool member(s), leaving 512 MiB');
    expect(shortfall).toContain('CPU cores');
  });
});

describe('agentOfContainer', () => {
  const managed = { [LABELS.managed]: 'true', [LABELS.host]: 'h1' };
  it('reads the agent label, or the name of a claimed pool member', () => {
    expect(agentOfContainer('/warden-agent-a1', { ...managed, [LABELS.agentId]: 'a1' })).toBe('a1');
    expect(agentOfContainer('/warden-agent-a2', { ...managed, [LABELS.pool]: 'k' })).toBe('a2');
  });

  it('gives no agent to an idle member, nor by name to a container that was never a member', () => {
    expect(agentOfContainer('/warden-pool-k-1', { ...managed, [LABELS.pool]: 'k' })).toBeNull();
    expect(agentOfContainer('/warden-agent-a3', managed)).toBeNull();
  });
});
