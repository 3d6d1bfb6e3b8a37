/**
 * The agent workflow's state: the agent's record (what the `status` query answers) and what the
 * workflow has been asked and has seen, with the transitions between them. Plain workflow code:
 * it issues no commands, so the workflow alone decides what happens in which order.
 */
import type { AgentRecord, AgentStatus } from '../domain/agent.js';
import type { AlertEvent } from '../domain/alert.js';
import type { CreateSandboxResult } from '../activities/sandbox.js';
import type { SandboxExit } from '../activities/sandbox-watch.js';
import { newAgentRecord, type AgentWorkflowInput } from './definitions.js';

export class AgentEntity {
  readonly record: AgentRecord;
  /** Set by a stop signal or the idle timer; a forced stop gives the container no grace. */
  stopRequest: { force: boolean } | null = null;
  /** What the last pause or resume signal asked for. */
  wantPaused: boolean;
  /** Set when the sandbox ended under the agent (its watcher, or the reaper). */
  exited: SandboxExit | null = null;
  /** Set when the reaper found the container gone or stopped before the watcher did. */
  private lostReason: string | null = null;
  /** Commands running through the retired `exec` update (histories from before actions only). */
  execsInFlight = 0;
  private idleDeadline = 0;
  /** Actions running in the agent, each with the time it may run until: the agent is not idle. */
  private readonly busy = new Map<string, number>();
  /** Set when the idle deadline may have moved earlier: the loop re-arms its timer. */
  private rearm = false;
  /** Who asked for the change under way: the key behind the last signal, or the system. */
  requestedBy = 'system';
  /** Set when the lockdown refused this agent: no container exists, and there is no failure to alert about. */
  refusedByLockdown = false;
  /** False when the container by our name belongs to someone else: teardown must not touch it. */
  ownsContainer = true;
  /** The vault secrets this agent's actions ran with: their values are redacted from its later outputs. */
  readonly secretsUsed: Set<string>;

  constructor(private readonly input: AgentWorkflowInput) {
    const record = input.carried ?? newAgentRecord(input);
    // A record carried over from a run before restart policies existed.
    record.restart_policy ??= 'never';
    record.max_restarts ??= 0;
    record.restarts ??= 0;
    this.record = record;
    this.wantPaused = record.status === 'paused';
    this.secretsUsed = new Set(input.secretsUsed ?? []);
    this.touch();
  }

  /** The agent was used: its idle timer starts again. */
  touch(): void {
    this.idleDeadline = Date.now() + this.input.idleTtlSeconds * 1000;
  }

  /** An action runs in the agent for up to busyMs (0: it has ended), with these vault secrets. */
  actionBusy({ action_id, busy_ms, secrets }: { action_id: string; busy_ms: number; secrets?: string[] }): void {
    for (const name of secrets ?? []) this.secretsUsed.add(name);
    if (busy_ms > 0) this.busy.set(action_id, Date.now() + busy_ms);
    else this.busy.delete(action_id);
    this.touch();
    this.rearm = true;
  }

  requestPause(by = 'system'): void {
    this.wantPaused = true;
    this.requestedBy = by;
  }

  requestResume(by = 'system'): void {
    this.wantPaused = false;
    this.requestedBy = by;
  }

  requestStop(force: boolean, by = 'system'): void {
    // A forced stop may upgrade a graceful one already asked for, never the reverse.
    this.stopRequest = { force: force || Boolean(this.stopRequest?.force) };
    this.requestedBy = by;
  }

  /** The reaper says the container is gone or stopped; accepted only while the agent runs or is paused. */
  containerLost(reason: string, exitCode: number | null): { accepted: boolean; status: AgentStatus } {
    // The reaper looked a moment ago: an agent that is stopping since then still owns its
    // container's fate, and one that already knows keeps what its watcher saw.
    if (this.exited || this.stopRequest || (this.record.status !== 'running' && this.record.status !== 'paused')) {
      return { accepted: false, status: this.record.status };
    }
    this.exited = { exitCode, oomKilled: false, vanished: false };
    this.lostReason = reason;
    this.requestedBy = 'reaper';
    return { accepted: true, status: this.record.status };
  }

  execStarted(): void {
    this.execsInFlight++;
    this.touch();
  }

  execEnded(): void {
    this.execsInFlight--;
    this.touch();
    this.rearm = true;
  }

  /** Why a command may not run now (the retired `exec` update's validator), or null. */
  execRefusal(): string | null {
    if (this.record.status === 'running' && !this.stopRequest) return null;
    return `agent ${this.record.id} is ${this.stopRequest ? 'stopping' : this.record.status}; commands run only while it is running`;
  }

  /** Why the container's usage cannot be read now (the readUsage update's validator), or null. */
  usageRefusal(): string | null {
    const { status, id } = this.record;
    if ((status === 'running' || status === 'paused') && !this.stopRequest) return null;
    return `agent ${id} is ${this.stopRequest ? 'stopping' : status}: it has no running container to read usage from`;
  }

  /** No command or action runs: nothing this run keeps track of would be lost by continuing as new. */
  quiet(): boolean {
    return this.execsInFlight === 0 && (this.pruneBusy(), this.busy.size === 0);
  }

  /** Something the loop must act on: a stop, a lost sandbox, a pause or resume, a deadline moved. */
  needsAttention(): boolean {
    return this.stopRequest !== null || this.exited !== null || this.wantPaused !== (this.record.status === 'paused') || this.rearm;
  }

  /** Clears the request to re-arm the idle timer; whether there was one. */
  takeRearm(): boolean {
    const rearm = this.rearm;
    this.rearm = false;
    return rearm;
  }

  /** How long until the agent is idle, or null while a command runs (its end re-arms the loop). */
  idleWaitMs(): number | null {
    return this.execsInFlight > 0 ? null : Math.max(this.stopsAt() - Date.now(), 1);
  }

  /** When the agent has been idle for its TTL, nothing running: asks it to stop, and says so. */
  stopIfIdle(): boolean {
    if (this.execsInFlight > 0 || Date.now() < this.stopsAt()) return false;
    this.stopRequest = { force: false };
    this.requestedBy = 'system (idle timeout)';
    return true;
  }

  get pauseDue(): boolean {
    return this.wantPaused && this.record.status === 'running';
  }

  get resumeDue(): boolean {
    return !this.wantPaused && this.record.status === 'paused';
  }

  /** Moves the record to a status; the status it had. */
  enter(status: AgentStatus): AgentStatus {
    const from = this.record.status;
    this.record.status = status;
    return from;
  }

  sandboxStarted(created: CreateSandboxResult): void {
    this.record.container_id = created.containerId;
    this.record.sandbox_runtime = created.runtime;
    this.record.sandbox_warning = created.warning;
    this.record.started_at = new Date().toISOString();
  }

  /** Why the sandbox was lost, as the agent's error message says it. */
  lossReason(exit: SandboxExit): string {
    return this.lostReason ?? exitReason(exit, this.input.limits.memory_mb);
  }

  /** Why the restart policy makes no new sandbox for this loss, or null when it may. */
  restartRefusal(reason: string): string | null {
    if (this.record.restart_policy !== 'on-failure') return reason;
    if (this.record.restarts >= this.record.max_restarts)
      return `${reason}; not re-provisioned: all ${this.record.max_restarts} restarts used`;
    return null;
  }

  /** Counts a restart; why the agent is provisioning again. */
  beginRestart(exit: SandboxExit, reason: string): string {
    this.record.restarts++;
    this.record.exit_code = exit.exitCode;
    this.requestedBy = 'system (restart policy)';
    return `${reason}; re-provisioning (restart ${this.record.restarts} of ${this.record.max_restarts})`;
  }

  /**
   * Backing off (1 s, 2 s, 4 s, ... at most a minute) lets an engine that is shutting down finish
   * first: a sandbox made on it now would be stopped with it.
   */
  restartBackoffMs(): number {
    return Math.min(60_000, 1000 * 2 ** (this.record.restarts - 1));
  }

  /** A new sandbox took the lost one's place: what was seen of the old one is forgotten. */
  restarted(created: CreateSandboxResult): void {
    this.sandboxStarted(created);
    this.exited = null;
    this.lostReason = null;
    this.record.exit_code = null;
  }

  /** The sandbox is lost for good: the agent's error. */
  lost(exit: SandboxExit, refusal: string): void {
    this.record.exit_code = exit.exitCode;
    this.record.error_message = refusal;
  }

  /** The run failed: its error is the agent's; a container by our name that is someone else's is never touched. */
  failed(message: string, notOurContainer: boolean): void {
    this.ownsContainer = !notOurContainer && !this.refusedByLockdown;
    this.record.error_message = message;
  }

  /** The alert for an agent that entered error from `from`. */
  errorAlert(from: AgentStatus, reason: string | null): AlertEvent {
    const { agentId, skillId, host } = this.input;
    return {
      id: `agent-error-${agentId}`,
      type: 'agent.error',
      time: new Date().toISOString(),
      severity: 'warning',
      summary: `agent ${agentId} entered error: ${reason}`,
      details: { agent_id: agentId, skill_id: skillId, host, from, reason, exit_code: this.record.exit_code },
    };
  }

  /** When the agent stops unless used: its idle deadline, or later while an action runs in it. */
  private stopsAt(): number {
    this.pruneBusy();
    return Math.max(this.idleDeadline, ...this.busy.values());
  }

  /** Drops entries past their time: actions that ended without saying so (they were cancelled). */
  private pruneBusy(): void {
    for (const [id, until] of this.busy) if (until < Date.now()) this.busy.delete(id);
  }
}

/** Why the sandbox ended, as the agent's error message says it. */
function exitReason(exit: SandboxExit, memoryMb: number): string {
  if (exit.oomKilled) return `sandbox killed: out of memory (limit ${memoryMb} MiB)`;
  if (exit.vanished) return 'sandbox container disappeared (removed outside Warden, or lost by the Docker engine)';
  // The sandbox's init exits 0 only on SIGTERM, and no process inside can SIGKILL it: while the
  // agent runs, Warden sends neither, so these came from outside (an engine shutting down
  // SIGKILLs what SIGTERM did not stop, such as a paused gVisor sandbox).
  if (exit.exitCode === 0)
    return 'sandbox container stopped outside Warden (SIGTERM: `docker stop`, or a Docker engine shutdown or restart)';
  if (exit.exitCode === 137)
    return 'sandbox container killed outside Warden (SIGKILL: `docker kill` or `docker rm -f`, or a Docker engine shutdown or restart)';
  return `sandbox exited unexpectedly with code ${exit.exitCode}`;
}
