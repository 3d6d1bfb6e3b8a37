/**
 * The warm sandbox pool's settings: which sandbox profiles a Docker host keeps warm, and what its
 * members reserve on the host. Pure: the worker (sandbox/pool.ts) and the API's admission share it.
 */
import { AskedLimitsSchema, completeLimits, SandboxRuntimeSchema, type ResourceLimits, type SandboxRuntime } from './agent.js';

/** One profile as configured: limits (the defaults when absent) and a runtime (the host's setting when absent). */
export interface PoolProfileSetting {
  limits: ResourceLimits;
  runtime: SandboxRuntime | null;
}

/**
 * Parses `WARDEN_SANDBOX_POOL_PROFILES`: profiles separated by `;`, each `default` (an agent that
 * asks for nothing) or `key=value` pairs separated by `,` from the resource limits and `runtime`,
 * e.g. `default;memory_mb=256,cpu_cores=0.5`. Throws with the problem.
 */
export function parsePoolProfiles(text: string): PoolProfileSetting[] {
  const profiles: PoolProfileSetting[] = [];
  for (const entry of text
    .split(';')
    .map((e) => e.trim())
    .filter(Boolean)) {
    if (entry === 'default') {
      profiles.push({ limits: completeLimits(), runtime: null });
      continue;
    }
    const asked: Record<string, unknown> = {};
    let runtime: SandboxRuntime | null = null;
    for (const pair of entry.split(',').map((p) => p.trim())) {
      const [key, value, extra] = pair.split('=').map((p) => p.trim());
      if (!key || value === undefined || extra !== undefined) throw new Error(`"${pair}" in profile "${entry}": write key=value`);
      if (key === 'runtime') {
        const parsed = SandboxRuntimeSchema.safeParse(value);
        if (!parsed.success) throw new Error(`runtime "${value}" in profile "${entry}": one of ${SandboxRuntimeSchema.options.join(', ')}`);
        runtime = parsed.data;
      } else if (key === 'network_enabled') {
        if (value !== 'true' && value !== 'false') throw new Error(`network_enabled in profile "${entry}": true or false`);
        asked[key] = value === 'true';
      } else {
        asked[key] = Number(value);
      }
    }
    const limits = AskedLimitsSchema.safeParse(asked);
    if (!limits.success) {
      throw new Error(`profile "${entry}": ${limits.error.issues.map((i) => `${i.path.join('.') || 'limits'}: ${i.message}`).join('; ')}`);
    }
    profiles.push({ limits: completeLimits(limits.data), runtime });
  }
  return profiles;
}

/** What a host's warm pool reserves: `size` members of each profile. Admission counts it with the agents. */
export function poolReservation(size: number, profiles: PoolProfileSetting[]): { members: number; cpu_cores: number; memory_mb: number } {
  return {
    members: size * profiles.length,
    cpu_cores: size * profiles.reduce((sum, p) => sum + p.limits.cpu_cores, 0),
    memory_mb: size * profiles.reduce((sum, p) => sum + p.limits.memory_mb, 0),
  };
}
