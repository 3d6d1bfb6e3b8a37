/**
 * What a Docker host can hold: the limits of all agents admitted on it must fit its memory and
 * cores (times the overcommit ratios). The capacity workflow applies this rule, serialised with
 * every admission, so concurrent creates cannot overbook a host. Workflow-safe: no imports.
 */

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
}

/**
 * Why the host cannot hold one more agent with these limits, given what the agents already
 * admitted on it reserve; null when it can. Workflow-safe (the capacity workflow calls it).
 */
export function hostShortfall(asked: HostReservation, reserved: HostReservation[], budget: HostBudget): string | null {
  const onHost = reserved.filter((r) => r.host === asked.host);
  const memory = onHost.reduce((sum, r) => sum + r.memory_mb, 0);
  const cpu = onHost.reduce((sum, r) => sum + r.cpu_cores, 0);
  const memoryLimit = Math.floor(budget.memory_mb * budget.memoryOvercommit);
  const cpuLimit = budget.cpu_cores * budget.cpuOvercommit;
  const round = (n: number) => Math.round(n * 1000) / 1000;
  const problems: string[] = [];
  if (memory + asked.memory_mb > memoryLimit) {
    problems.push(
      `it asks for ${asked.memory_mb} MiB of memory; the host has ${budget.memory_mb} MiB (x${budget.memoryOvercommit} WARDEN_MEMORY_OVERCOMMIT = ${memoryLimit} MiB for agents), ` +
        `of which ${memory} MiB are reserved by ${onHost.length} agent(s), leaving ${Math.max(0, memoryLimit - memory)} MiB`,
    );
  }
  if (cpu + asked.cpu_cores > cpuLimit + 1e-9) {
    problems.push(
      `it asks for ${asked.cpu_cores} CPU cores; the host has ${budget.cpu_cores} (x${budget.cpuOvercommit} WARDEN_CPU_OVERCOMMIT = ${round(cpuLimit)} for agents), ` +
        `of which ${round(cpu)} are reserved by ${onHost.length} agent(s), leaving ${round(Math.max(0, cpuLimit - cpu))}`,
    );
  }
  if (problems.length === 0) return null;
  return `Docker host ${asked.host} cannot hold this agent: ${problems.join('; ')}. Ask for less, or stop an agent first`;
}
