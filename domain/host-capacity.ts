/**
 * What a Docker host can hold: the limits of all agents admitted on it must fit its memory and
 * cores (times the overcommit ratios). The capacity workflow applies this rule, serialised with
 * every admission, so concurrent creates cannot overbook a host. Workflow-safe: no imports.
 */

/** What a Docker host id may be: it names task queues and container labels. */
export const DOCKER_HOST_ID = /^[a-z0-9][a-z0-9.-]*$/;

/** What an agent reserves on its Docker host, and what that host lets its agents reserve in all. */
export interface HostReservation {
  host: string;
  cpu_cores: number;
  memory_mb: number;
}
export interface HostBudget {
  /** The host's memory (MiB) and cores as its engine reports them. */
  memory_mb: number;
  cpu_cores: number;
  memoryOvercommit: number;
  cpuOvercommit: number;
  /** What the host's warm sandbox pool reserves (its members are sandboxes too); absent before the pool. */
  pool?: { members: number; cpu_cores: number; memory_mb: number };
}

/**
 * Why the host cannot hold one more agent with these limits, given what the agents already
 * admitted on it reserve; null when it can. Workflow-safe (the capacity workflow calls it).
 */
export function hostShortfall(asked: HostReservation, reserved: HostReservation[], budget: HostBudget): string | null {
  const onHost = reserved.filter((r) => r.host === asked.host);
  const pool = budget.pool ?? { members: 0, cpu_cores: 0, memory_mb: 0 };
  const memory = onHost.reduce((sum, r) => sum + r.memory_mb, pool.memory_mb);
  const cpu = onHost.reduce((sum, r) => sum + r.cpu_cores, pool.cpu_cores);
  const holders = `${onHost.length} agent(s)${pool.members ? ` and ${pool.members} warm pool member(s)` : ''}`;
  const memoryLimit = Math.floor(budget.memory_mb * budget.memoryOvercommit);
  const cpuLimit = budget.cpu_cores * budget.cpuOvercommit;
  const round = (n: number) => Math.round(n * 1000) / 1000;
  const problems: string[] = [];
  if (memory + asked.memory_mb > memoryLimit) {
    problems.push(
      `it asks for ${asked.memory_mb} MiB of memory; the host has ${budget.memory_mb} MiB (x${budget.memoryOvercommit} WARDEN_MEMORY_OVERCOMMIT = ${memoryLimit} MiB for agents), ` +
        `of which ${memory} MiB are reserved by ${holders}, leaving ${Math.max(0, memoryLimit - memory)} MiB`,
    );
  }
  if (cpu + asked.cpu_cores > cpuLimit + 1e-9) {
    problems.push(
      `it asks for ${asked.cpu_cores} CPU cores; the host has ${budget.cpu_cores} (x${budget.cpuOvercommit} WARDEN_CPU_OVERCOMMIT = ${round(cpuLimit)} for agents), ` +
        `of which ${round(cpu)} are reserved by ${holders}, leaving ${round(Math.max(0, cpuLimit - cpu))}`,
    );
  }
  if (problems.length === 0) return null;
  return `Docker host ${asked.host} cannot hold this agent: ${problems.join('; ')}. Ask for less, or stop an agent first`;
}
