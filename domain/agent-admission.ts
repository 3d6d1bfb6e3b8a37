/**
 * What a new agent may be: a skill of the registry, and what its requester's role may ask for.
 * Weaker isolation (runc, a network) and limits above the operator maxima are an admin's to give,
 * and every sandbox must hold its own tmpfs mounts. What the Docker host can hold is the capacity
 * workflow's check (domain/host-capacity.ts).
 */
import { sandboxMemoryProblem, type CreateAgentRequest, type ResourceLimits } from './agent.js';
import { BUDGET_SETTINGS, defaultBudget, type AgentBudget, type BudgetSettings } from './budget.js';
import { CONFIG_ENV, type Config } from './config.js';
import { WardenError } from './errors.js';
import { hasRole, type Role } from './roles.js';
import type { SkillRegistry } from './skill.js';

export type AgentAdmissionSettings = Pick<
  Config,
  'requireSandbox' | 'operatorMaxCpuCores' | 'operatorMaxMemoryMb' | 'operatorMaxDiskMb' | 'operatorMaxProcesses'
> &
  BudgetSettings;

/** Refuses an unknown skill (422), what this role may not ask for (403) and limits that cannot work (422). */
export function checkAgentRequest(
  request: CreateAgentRequest,
  limits: ResourceLimits,
  role: Role,
  settings: AgentAdmissionSettings,
  skills: SkillRegistry,
): void {
  skills.getSkill(request.skill_id);
  if (!hasRole(role, 'admin')) {
    const beyond: string[] = [];
    if (request.runtime === 'runc') beyond.push('runtime runc (no sandbox kernel: the container shares the host kernel)');
    if (limits.network_enabled) beyond.push('resource_limits.network_enabled true (a network interface and a default route)');
    const maxima = [
      ['cpu_cores', limits.cpu_cores, settings.operatorMaxCpuCores, 'WARDEN_OPERATOR_MAX_CPU_CORES'],
      ['memory_mb', limits.memory_mb, settings.operatorMaxMemoryMb, 'WARDEN_OPERATOR_MAX_MEMORY_MB'],
      ['disk_mb', limits.disk_mb, settings.operatorMaxDiskMb, 'WARDEN_OPERATOR_MAX_DISK_MB'],
      ['max_processes', limits.max_processes, settings.operatorMaxProcesses, 'WARDEN_OPERATOR_MAX_PROCESSES'],
    ] as const;
    for (const [field, asked, max, setting] of maxima) {
      if (asked > max) beyond.push(`resource_limits.${field} ${asked}, above ${max}, the most a key below admin may ask for (${setting})`);
    }
    // A budget is a limit on spending: below admin it may only tighten the configured one.
    const defaults = defaultBudget(settings);
    for (const [field, asked] of Object.entries(request.budget ?? {}) as Array<[keyof AgentBudget, number]>) {
      const most = defaults[field];
      if (most !== undefined && asked > most)
        beyond.push(`budget.${field} ${asked}, above the configured ${most} (${CONFIG_ENV[BUDGET_SETTINGS[field]]})`);
    }
    if (beyond.length > 0) {
      throw new WardenError('admin_required', `an admin must create an agent with ${beyond.join('; ')}`, 403);
    }
  }
  if (request.runtime === 'runc' && settings.requireSandbox) {
    throw new WardenError(
      'sandbox_required',
      'require_sandbox is on: runtime runc is not allowed; ask for runsc or kata, or leave runtime out (an operator of the host may set WARDEN_REQUIRE_SANDBOX=false)',
      422,
    );
  }
  const problem = sandboxMemoryProblem(limits);
  if (problem) throw new WardenError('invalid_limits', problem, 422);
}
