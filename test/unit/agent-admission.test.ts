/** The admission rules alone: reserved ids, who may ask for what, tmpfs within memory, what a host can hold. */
import { describe, expect, it } from 'vitest';
import {
  completeLimits,
  CreateAgentRequestSchema,
  SANDBOX_SHM_MB,
  SANDBOX_TMP_MB,
  sandboxMemoryProblem,
  type CreateAgentRequest,
} from '../../domain/agent.js';
import { checkAgentRequest } from '../../domain/agent-admission.js';
import { ConfigSchema } from '../../domain/config.js';
import { hostShortfall } from '../../domain/host-capacity.js';
import type { Role } from '../../domain/roles.js';
import { SKILL_REGISTRY } from '../../skills/index.js';
import { sandboxHostConfig } from '../../sandbox/spec.js';

const MiB = 1024 * 1024;
const settings = ConfigSchema.parse({});

function refusal(request: Partial<CreateAgentRequest>, role: Role, over: Partial<typeof settings> = {}) {
  const parsed = CreateAgentRequestSchema.parse({ skill_id: 'shell', ...request });
  try {
    checkAgentRequest(parsed, completeLimits(parsed.resource_limits), role, { ...settings, ...over }, SKILL_REGISTRY);
    return null;
  } catch (err) {
    return err as { status: number; code: string; message: string };
  }
}

describe('skills', () => {
  it.each(['rootkit', 'constructor', 'hasownproperty'])(
    'an unknown skill_id (%s) is a 422 naming the known skills, for every role',
    (skill_id) => {
      for (const role of ['operator', 'admin'] as const) {
        expect(refusal({ skill_id }, role)).toMatchObject({
          status: 422,
          code: 'unknown_skill',
          message: expect.stringMatching(/^unknown skill ".+"; known skills: "filesystem", "shell"$/),
        });
      }
    },
  );
});

describe('agent ids', () => {
  it.each([
    'warden-capacity',
    'warden-emergency-stop-1',
    'warden-alert-capacity-1',
    'warden-reaper-local',
    'act-0123456789abcdef',
    'temporal-sys-batcher',
  ])('%s is reserved', (agent_id) => {
    const parsed = CreateAgentRequestSchema.safeParse({ skill_id: 'shell', agent_id });
    expect(parsed.success).toBe(false);
    expect(parsed.error!.issues[0]!.message).toMatch(/reserved for Warden's own workflows; choose another/);
  });
  it.each(['wardens-1', 'my-warden-x', 'actor-1', 'agt-0123456789ab'])('%s is free', (agent_id) => {
    expect(CreateAgentRequestSchema.safeParse({ skill_id: 'shell', agent_id }).success).toBe(true);
  });
});

describe('who may ask for what', () => {
  it.each<[string, Partial<CreateAgentRequest>]>([
    ['runc', { runtime: 'runc' }],
    ['a network', { resource_limits: { network_enabled: true } }],
    ['64 GiB', { resource_limits: { memory_mb: 65536, disk_mb: 256 } }],
    ['32768 processes', { resource_limits: { max_processes: 32768 } }],
    ['8 cores', { resource_limits: { cpu_cores: 8 } }],
    ['a 2 GiB workspace', { resource_limits: { memory_mb: 2048, disk_mb: 2000 } }],
  ])('%s needs an admin: 403 for an operator and an approver', (_what, request) => {
    for (const role of ['operator', 'approver'] as const) {
      expect(refusal(request, role, { requireSandbox: false })).toMatchObject({
        status: 403,
        code: 'admin_required',
        message: expect.stringMatching(/^an admin must create an agent with /),
      });
    }
    expect(refusal(request, 'admin', { requireSandbox: false, memoryOvercommit: 1 })).toBeNull();
  });

  it('every field beyond the maxima is named at once', () => {
    const err = refusal({ runtime: 'runc', resource_limits: { network_enabled: true, memory_mb: 4096, disk_mb: 2048 } }, 'operator');
    expect(err!.message).toMatch(
      /runtime runc.*network_enabled true.*memory_mb 4096.*WARDEN_OPERATOR_MAX_MEMORY_MB.*disk_mb 2048.*WARDEN_OPERATOR_MAX_DISK_MB/,
    );
  });

  it('runc needs require_sandbox off, even for an admin (on by default)', () => {
    expect(settings.requireSandbox).toBe(true);
    expect(refusal({ runtime: 'runc' }, 'admin')).toMatchObject({ status: 422, code: 'sandbox_required' });
    expect(refusal({ runtime: 'runc' }, 'admin', { requireSandbox: false })).toBeNull();
  });

  it('the maxima are settings', () => {
    expect(refusal({ resource_limits: { memory_mb: 4096, disk_mb: 256 } }, 'operator', { operatorMaxMemoryMb: 4096 })).toBeNull();
    expect(refusal({ resource_limits: { memory_mb: 256, disk_mb: 64 } }, 'operator', { operatorMaxMemoryMb: 128 })).toMatchObject({
      status: 403,
    });
  });
});

describe('the tmpfs mounts fit in memory_mb', () => {
  it('an absent disk_mb is 256, or what memory_mb has room for', () => {
    expect(completeLimits({}).disk_mb).toBe(256);
    expect(completeLimits({ memory_mb: 128 }).disk_mb).toBe(128 - SANDBOX_TMP_MB - SANDBOX_SHM_MB - 8);
    expect(completeLimits({ memory_mb: 32 }).disk_mb).toBe(4);
    expect(sandboxMemoryProblem(completeLimits({ memory_mb: 32 }))).toBeNull();
  });

  it('a workspace as large as the memory is refused, for an admin too', () => {
    expect(sandboxMemoryProblem(completeLimits({ memory_mb: 65536, disk_mb: 65536 }))).toMatch(
      /disk_mb 65536 does not fit in memory_mb 65536/,
    );
    expect(refusal({ resource_limits: { memory_mb: 512, disk_mb: 500 } }, 'admin')).toMatchObject({ status: 422, code: 'invalid_limits' });
  });

  it('the sandbox mounts /tmp and a small /dev/shm at the sizes admission counts', () => {
    for (const runtime of ['runc', 'runsc'] as const) {
      const hc = sandboxHostConfig(completeLimits({}), runtime, runtime);
      expect(hc.ShmSize).toBe(SANDBOX_SHM_MB * MiB);
      expect(hc.Tmpfs?.['/tmp']).toContain(`size=${SANDBOX_TMP_MB}m`);
    }
  });
});

describe('what a host can hold', () => {
  const host = { memory_mb: 23 * 1024, cpu_cores: 2, memoryOvercommit: 1, cpuOvercommit: 4 };
  const agent = (memory_mb: number, cpu_cores = 1, on = 'local') => ({ host: on, memory_mb, cpu_cores });

  it('refuses 64 GiB on a 23 GiB host, saying what it has and what was asked', () => {
    expect(hostShortfall(agent(65536), [], host)).toBe(
      'Docker host local cannot hold this agent: it asks for 65536 MiB of memory; the host has 23552 MiB (x1 WARDEN_MEMORY_OVERCOMMIT = 23552 MiB for agents), of which 0 MiB are reserved by 0 agent(s), leaving 23552 MiB. Ask for less, or stop an agent first',
    );
  });

  it('counts what the agents on the same host reserve, and only those', () => {
    const held = [agent(20 * 1024), agent(3 * 1024)];
    expect(hostShortfall(agent(512), held, host)).toMatch(/of which 23552 MiB are reserved by 2 agent\(s\), leaving 0 MiB/);
    expect(
      hostShortfall(
        agent(512),
        held.map((a) => ({ ...a, host: 'other' })),
        host,
      ),
    ).toBeNull();
    expect(hostShortfall(agent(512, 1), [agent(512, 7.5)], host)).toMatch(
      /asks for 1 CPU cores; the host has 2 \(x4 WARDEN_CPU_OVERCOMMIT = 8 for agents\)/,
    );
    expect(hostShortfall(agent(512, 1), [agent(512, 7.5)], { ...host, cpuOvercommit: 5 })).toBeNull();
  });
});
