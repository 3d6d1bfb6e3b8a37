/**
 * Sandbox activities: everything Warden does to an agent's container. They run on the worker
 * attached to the agent's Docker host (its own task queue) and address the container by its
 * deterministic name, so a retry always finds what an earlier attempt made.
 */
import { Writable } from 'node:stream';
import Docker from 'dockerode';
import { ApplicationFailure, Context, heartbeat } from '@temporalio/activity';
import type { ExecRequest, ExecResult, ResourceLimits, SandboxRuntime } from '../domain/agent.js';
import { chooseRuntime, detectRuntimes, readEngineFacts, SandboxUnavailableError } from '../sandbox/docker-engine.js';
import { ContainerEvents } from '../sandbox/container-events.js';
import {
  attachExecutor,
  ExecutorDetachedError,
  ExecutorResultCollectedError,
  ExecutorShellJournalError,
  type ExecutorClient,
  type ExecutorResult,
} from '../sandbox/executor-client.js';
import { NameTakenError, type SandboxPool } from '../sandbox/pool.js';
import { ContainerGoneError, createContainerUsage, type ContainerUsage } from '../sandbox/container-usage.js';
import {
  agentOfContainer,
  containerName,
  execUid,
  EXECUTOR_ENV,
  LABELS,
  MiB,
  SANDBOX_GID,
  SANDBOX_UID,
  sandboxContainerOptions,
  sandboxExecOptions,
  WORKSPACE,
  WORKSPACE_MODE,
} from '../sandbox/spec.js';
import { redactSecrets } from '../domain/redact.js';
import { resolveSecrets, secretsStdin, secretsToRedact, withSecretsFromStdin } from './secret-env.js';
import type { Vault } from '../stores/vault.js';
import { FailureType } from '../domain/failure-types.js';

/**
 * Kills every process of an exec's uid and checks, by reading /proc, that none is left (zombies
 * included, until PID 1 has reaped them): exit 0 when none is, 3 when some outlived ~5 s of tries.
 * Run as that uid, the only one allowed to signal them; it skips itself.
 */
const REAP_SCRIPT = [
  'u=$1; n=0',
  'left() {',
  '  for s in /proc/[0-9]*/status; do',
  '    [ "$s" = "/proc/$$/status" ] && continue',
  '    while read -r k v _; do if [ "$k" = Uid: ]; then [ "$v" = "$u" ] && return 0; break; fi; done < "$s"',
  '  done 2>/dev/null',
  '  return 1',
  '}',
  'while left; do',
  '  [ "$n" -ge 100 ] && exit 3',
  '  kill -KILL -1 2>/dev/null; n=$((n + 1)); sleep 0.05',
  'done',
].join('\n');

export interface CreateSandboxInput {
  agentId: string;
  host: string;
  image: string;
  limits: ResourceLimits;
  runtime: SandboxRuntime | 'auto';
  requireSandbox: boolean;
}
/** `hit`: a warm pool member was claimed; `miss`: the pool keeps this profile but had none idle; `none`: it keeps no such profile. */
export type PoolOutcome = 'hit' | 'miss' | 'none';
export interface CreateSandboxResult {
  containerId: string;
  runtime: SandboxRuntime;
  warning: string | null;
  /** Absent in results recorded before the warm pool. */
  pool?: PoolOutcome;
}

export interface ExecInput extends ExecRequest {
  agentId: string;
  /** Vault secrets the command gets as environment variables: names only, values are read here. */
  secrets?: string[];
  /** Vault secrets the agent's earlier commands used: their values are redacted from this output too. */
  redact_secrets?: string[];
}

/**
 * The action whose execution journal (domain/journal.ts) an exec's command is, as the sandbox
 * worker rebuilt it from the signed action: an executor runs the action's own argv, keyed by the
 * action id, and its journal does what the shell journal does without the dozen processes.
 */
export interface JournaledAction {
  action_id: string;
  argv: string[];
}

/** A command as the activity runs it: with the secrets' loader around it, and what goes to its stdin. */
interface CommandRun {
  input: ExecInput;
  /** The executor's run id and whether it keeps that id for the sandbox's life (an action's). */
  run: { id: string; keepId: boolean };
  command: string[];
  stdin: Buffer | undefined;
  redacted: Map<string, string>;
}

const pausedFailure = (agentId: string) =>
  ApplicationFailure.create({
    type: FailureType.AgentNotRunning,
    message: `agent ${agentId} is paused: its sandbox runs no command until it is resumed`,
    nonRetryable: true,
  });

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

/**
 * Builds the sandbox activities around a Docker client (the real engine, in tests too). The
 * watch of a sandbox is activities/sandbox-watch.ts.
 */
export function createSandboxActivities(
  docker: Docker,
  opts: {
    vault?: Vault;
    /** The host's events stream, shared with the watches on a worker (a stream of its own when not given). */
    events?: ContainerEvents;
    /** The host's warm sandbox pool (none: every create makes its container). */
    pool?: SandboxPool;
  } = {},
) {
  const container = (agentId: string) => docker.getContainer(containerName(agentId));
  const events = opts.events ?? new ContainerEvents(docker);
  const usage = createContainerUsage(docker);

  async function createSandbox(input: CreateSandboxInput): Promise<CreateSandboxResult> {
    const pool = opts.pool?.enabled ? opts.pool : undefined;
    let choice;
    try {
      choice = chooseRuntime(pool?.engineRuntimes() ?? (await detectRuntimes(docker)), input.runtime, {
        requireSandbox: input.requireSandbox,
        networkEnabled: input.limits.network_enabled,
      });
    } catch (err) {
      if (err instanceof SandboxUnavailableError) {
        throw ApplicationFailure.create({ type: err.name, message: err.message, nonRetryable: true });
      }
      throw err;
    }
    const profile = { ...input, runtime: choice.runtime, engineRuntime: choice.engineName };
    const made = (containerId: string, from: PoolOutcome): CreateSandboxResult => ({
      containerId,
      runtime: choice.runtime,
      warning: choice.warning,
      pool: from,
    });
    let poolOutcome: PoolOutcome = 'none';
    try {
      const claim = pool ? await pool.claim(input.agentId, profile) : { outcome: 'none' as const };
      // A warm member was made from this image, started and prepared: it is ready as it is.
      if (claim.outcome === 'hit') return made(claim.containerId, 'hit');
      poolOutcome = claim.outcome;
    } catch (err) {
      if (!(err instanceof NameTakenError)) throw err;
      // An earlier attempt made or claimed the agent's container: adopted below.
    }
    await requireExecutorImage(input.image);
    const name = containerName(input.agentId);
    let id: string;
    try {
      id = (await docker.createContainer(sandboxContainerOptions(profile))).id;
    } catch (err) {
      if (statusOf(err) === 404) {
        throw ApplicationFailure.create({
          type: FailureType.ImageMissing,
          message: `sandbox image ${input.image} is not on this Docker host; build it with \`make image\``,
          nonRetryable: true,
        });
      }
      if (statusOf(err) !== 409) throw err;
      // A container with our deterministic name exists: adopt it if an earlier attempt made or claimed it.
      const existing = await docker.getContainer(name).inspect();
      if (!isAgentContainer(existing, input)) {
        throw ApplicationFailure.create({
          type: FailureType.NameConflict,
          message: `a container named ${name} exists and does not belong to agent ${input.agentId}`,
          nonRetryable: true,
        });
      }
      id = existing.Id;
      if (existing.Config.Labels?.[LABELS.pool]) poolOutcome = 'hit';
    }
    const current = await docker.getContainer(id).inspect();
    if (!current.State.Running) {
      try {
        await docker.getContainer(id).start();
      } catch (err) {
        if (statusOf(err) !== 304) throw err;
      }
    }
    await shareWorkspace(docker.getContainer(id));
    return made(id, poolOutcome);
  }

  /**
   * The image must carry the executor, the sandbox's PID 1: an image built before it would fail
   * to start with an engine error about a missing file. scripts/build-image.sh labels the image
   * with the hash of the executor's sources.
   */
  async function requireExecutorImage(image: string): Promise<void> {
    const labels = await docker
      .getImage(image)
      .inspect()
      .then(
        (info) => info.Config?.Labels ?? {},
        (err) => {
          if (statusOf(err) !== 404) throw err;
          throw ApplicationFailure.create({
            type: FailureType.ImageMissing,
            message: `sandbox image ${image} is not on this Docker host; build it with \`make image\``,
            nonRetryable: true,
          });
        },
      );
    if (!labels[LABELS.executorSha256]) {
      throw ApplicationFailure.create({
        type: FailureType.ImageMissing,
        message: `sandbox image ${image} predates the sandbox executor (it has no ${LABELS.executorSha256} label); rebuild it with \`make image\` (scripts/build-image.sh)`,
        nonRetryable: true,
      });
    }
  }

  async function pauseSandbox(agentId: string): Promise<void> {
    const state = (await container(agentId).inspect()).State;
    if (!state.Paused) await container(agentId).pause();
    knownPaused(agentId, true);
  }

  async function unpauseSandbox(agentId: string): Promise<void> {
    const state = (await container(agentId).inspect()).State;
    if (state.Paused) await container(agentId).unpause();
    knownPaused(agentId, false);
  }

  /** SIGTERM, then SIGKILL after graceSeconds (0: SIGKILL at once); a gone container counts as stopped. */
  async function stopSandbox(input: { agentId: string; graceSeconds: number }): Promise<{ exitCode: number | null }> {
    const c = container(input.agentId);
    try {
      if ((await c.inspect()).State.Paused) await c.unpause();
      if (input.graceSeconds > 0) {
        await c.stop({ t: input.graceSeconds }).catch((err) => {
          if (statusOf(err) !== 304) throw err;
        });
      } else {
        // Forced: SIGKILL straight away (`docker stop -t 0` would still send SIGTERM first).
        await c.kill({ signal: 'SIGKILL' }).catch((err) => {
          if (statusOf(err) !== 409) throw err; // not running
        });
        await c.wait({ condition: 'not-running' });
      }
      return { exitCode: (await c.inspect()).State.ExitCode };
    } catch (err) {
      if (statusOf(err) === 404) return { exitCode: null };
      throw err;
    }
  }

  async function removeSandbox(agentId: string): Promise<void> {
    try {
      await container(agentId).remove({ force: true, v: true });
    } catch (err) {
      // 404: already gone; 409: removal already in progress (a retry will see it gone).
      if (statusOf(err) !== 404) throw err;
    }
  }

  /** The live usage of the agent's container, as GET /api/agents/{id}/stats shows it. */
  async function readSandboxUsage(agentId: string): Promise<ContainerUsage> {
    try {
      return await usage.usage(agentId);
    } catch (err) {
      if (err instanceof ContainerGoneError) {
        throw ApplicationFailure.create({ type: FailureType.AgentNotRunning, message: err.message, nonRetryable: true });
      }
      throw err;
    }
  }

  /**
   * Runs a command as a fresh uid in /workspace, through the sandbox's executor, or through
   * `docker exec` in a sandbox created before the executor. Either way the command leads its own
   * process group, which is signalled when time runs out; however it ends (done, timed out,
   * cancelled), every process of its uid is then killed, and a command whose processes cannot be
   * fails with ExecOutlived. Output beyond max_output_bytes is counted and dropped. Named secrets
   * are read from the vault before anything runs, passed on stdin, and their values redacted from
   * the output. An action's journaled command runs, through an executor, as the action's own argv
   * keyed by the action id: once per action, whichever activity asks.
   */
  async function execInSandbox(input: ExecInput, journaled?: JournaledAction): Promise<ExecResult> {
    const names = input.secrets ?? [];
    const secrets = names.length ? await resolveSecrets(opts.vault, names) : new Map<string, string>();
    const redacted = new Map([...(await secretsToRedact(opts.vault, input.redact_secrets ?? [])), ...secrets]);
    const executor = await executorOf(input.agentId);
    const stdin = names.length ? secretsStdin(names, secrets) : undefined;
    const commandRun = (argv: string[], run: CommandRun['run']): CommandRun => ({
      input,
      run,
      command: names.length ? withSecretsFromStdin(names, argv) : argv,
      stdin,
      redacted,
    });
    // The command as the workflow sent it: an action's is under the shell execution journal.
    const asSent = commandRun(input.command, { id: activityRunId(), keepId: false });
    if (!executor) return execThroughDockerExec(asSent);
    if (!journaled) return execThroughExecutor(asSent);
    try {
      return await execThroughExecutor(commandRun(journaled.argv, { id: `action:${journaled.action_id}`, keepId: true }));
    } catch (err) {
      // Started by a worker from before actions ran natively (a rolling upgrade): its shell journal
      // has it, and the command as sent waits for that run's result instead of running again.
      if (err instanceof ExecutorShellJournalError) return execThroughExecutor(asSent);
      throw err;
    }
  }

  /** One attached executor client per sandbox on this worker (by container name), dropped once its stream ends. */
  const executors = new Map<string, Promise<ExecutorClient | null>>();
  /**
   * Whether each sandbox with an executor client is paused, as the events stream last told
   * (undefined: not known, from when the stream is lost until the engine is asked again): read
   * instead of asking the engine before each command.
   */
  const paused = new Map<string, boolean | undefined>();

  /** The sandbox's executor, attached on first use; null for a sandbox created before the executor. */
  function executorOf(agentId: string): Promise<ExecutorClient | null> {
    const name = containerName(agentId);
    const known = executors.get(name);
    if (known) return known;
    const forget = () => {
      if (executors.get(name) !== attaching) return;
      executors.delete(name);
      paused.delete(name);
      unlisten();
    };
    // Listening before the state is read: a pause in between is heard.
    const unlisten = events.listen(name, (notice, action) => {
      if (notice !== 'event') paused.set(name, undefined);
      else if (action === 'pause' || action === 'unpause') paused.set(name, action === 'pause');
    });
    const attaching: Promise<ExecutorClient | null> = docker
      .getContainer(name)
      .inspect()
      .then((info) => {
        if (!paused.has(name)) paused.set(name, info.State.Paused);
        return info.Config.Labels?.[LABELS.executor] === '1'
          ? attachExecutor(docker.getContainer(info.Id), { onDetach: forget, unref: true })
          : null;
      });
    executors.set(name, attaching);
    attaching.then((client) => client ?? forget(), forget);
    return attaching;
  }

  /** What this worker did or heard to the sandbox of an attached executor. */
  function knownPaused(agentId: string, state: boolean): void {
    if (paused.has(containerName(agentId))) paused.set(containerName(agentId), state);
  }

  /**
   * Whether the sandbox is paused: as the events stream (or this worker's own pause) last told, or
   * as the engine says when that is not known. A pause by another worker moments ago that the
   * stream has not yet delivered is caught by the run's deadline, as a pause after this check is.
   */
  async function isPaused(agentId: string): Promise<boolean> {
    const name = containerName(agentId);
    const known = paused.get(name);
    if (known !== undefined) return known;
    const inspected = (await container(agentId).inspect()).State.Paused;
    // An event heard meanwhile is newer than what the engine said.
    if (paused.has(name) && paused.get(name) === undefined) paused.set(name, inspected);
    return inspected;
  }

  /**
   * Runs through the executor, with an id that every attempt of this activity shares (or, for an
   * action, every activity of it): a retry (after the worker lost its connection or its life) gets
   * the first attempt's result, and the command never runs twice. An activity's result is
   * forgotten once held; an action's is kept for a while, then its id alone (the executor's
   * keep_id), as the shell journal kept its outputs and then its markers.
   */
  async function execThroughExecutor({ input, run, command, stdin, redacted }: CommandRun): Promise<ExecResult> {
    const ctx = Context.current();
    const { id } = run;
    const c = container(input.agentId);
    // A paused sandbox would read the command only once unpaused: refuse it now, as `docker exec` did.
    if (await isPaused(input.agentId)) throw pausedFailure(input.agentId);
    const started = Date.now();
    const ran = (async () => {
      // A stream that ends (the engine restarted, the connection broke) is attached again; the
      // executor answers a run it knows with its result. A sandbox that ended wins the race below.
      for (let attempt = 1; ; attempt++) {
        const client = await executorOf(input.agentId);
        if (!client) throw new Error(`the sandbox of agent ${input.agentId} has lost its executor`);
        try {
          return await client.run({
            id,
            argv: command,
            env: EXECUTOR_ENV,
            ...(stdin ? { stdin } : {}),
            cwd: WORKSPACE,
            uid: execUid(),
            gid: SANDBOX_GID,
            timeout_ms: input.timeout_ms,
            max_output_bytes: input.max_output_bytes,
            ...(run.keepId ? { keep_id: true } : {}),
          });
        } catch (err) {
          if (err instanceof ExecutorResultCollectedError) {
            // Only a retry whose earlier attempt had the result (and lost its completion) gets here,
            // or, for an action, one that comes after its result expired.
            throw ApplicationFailure.create({
              type: FailureType.ExecResultCollected,
              message: run.keepId
                ? 'this action already ran its command and its result is no longer kept; it is not run again'
                : 'an earlier attempt of this activity already ran the command and collected its result; it is not run again',
              nonRetryable: true,
            });
          }
          if (!(err instanceof ExecutorDetachedError) || attempt >= 5) throw err;
          await new Promise((r) => setTimeout(r, 500));
        }
      }
    })();
    // Ends the run now and answers its result; null if the executor cannot say within the time the
    // sweep of its uid takes.
    const cancel = async (): Promise<ExecutorResult | null> => {
      const client = await executorOf(input.agentId).catch(() => null);
      const bounded = new Promise<null>((r) => setTimeout(() => r(null), 15_000).unref());
      return client ? Promise.race([client.cancel(id).catch(() => null), bounded]) : null;
    };
    // Drops the result from the executor once this attempt holds it: it lives in PID 1, whose
    // memory counts against the sandbox's. A retry of this activity is then told it was collected.
    // An action's stays until it expires, for another activity of the same action.
    const forget = async (): Promise<void> => {
      if (run.keepId) return;
      const client = await executorOf(input.agentId).catch(() => null);
      const bounded = new Promise<void>((r) => setTimeout(r, 2_000).unref());
      if (client) await Promise.race([client.forget(id).catch(() => undefined), bounded]);
    };

    const beat = setInterval(() => heartbeat(), 5_000);
    let hostDeadline: NodeJS.Timeout | undefined;
    const waitAbort = new AbortController();
    try {
      const cancelled = cancellationOf(ctx);
      // Backstop in case the executor cannot end the command (for instance a frozen, paused sandbox).
      const deadline = new Promise<'deadline'>((resolve) => {
        hostDeadline = setTimeout(() => resolve('deadline'), input.timeout_ms + 10_000);
      });
      const sandboxExited = c.wait({ abortSignal: waitAbort.signal }).then(
        () => 'sandbox-exited' as const,
        () => new Promise<never>(() => undefined),
      );
      let outcome = await Promise.race([ran, cancelled, deadline, sandboxExited]);
      if (typeof outcome === 'object' && outcome.exit_code >= 128 && !outcome.timed_out) {
        // Killed by a signal not of its timeout: under gVisor an OOM ends the whole sandbox, and the
        // command with it, a moment before the engine reports the container gone. Give it that moment.
        outcome = await Promise.race([
          sandboxExited,
          new Promise<ExecutorResult>((r) => setTimeout(() => r(outcome as ExecutorResult), 2000)),
        ]);
      }
      if (outcome === 'sandbox-exited') throw await sandboxExitFailure(c);
      if (outcome === 'cancelled') {
        if (isWorkerShutdown(ctx)) {
          // The grace period is over and the worker is leaving: the command runs on in the sandbox
          // and the retry on another worker collects its result from the executor by the same id.
          throw ApplicationFailure.retryable(
            'the worker shut down while the command ran; it runs on in the sandbox',
            FailureType.WorkerShutdown,
          );
        }
        if (await cancel()) await forget();
        throw ctx.cancellationSignal.reason ?? new Error('exec cancelled');
      }
      if (outcome === 'deadline' && (await c.inspect().catch(() => null))?.State.Paused) {
        // Paused after the check above: the command runs, cancelled, once the sandbox is unpaused.
        void cancel();
        throw pausedFailure(input.agentId);
      }
      const res = outcome === 'deadline' ? await cancel() : outcome;
      if (res) await forget();
      if (!res || res.outlived) {
        throw ApplicationFailure.create({
          type: FailureType.ExecOutlived,
          message: `processes the command started could not be killed after it ended; stop the agent, which ends its sandbox`,
          nonRetryable: true,
        });
      }
      const duration = Date.now() - started;
      const timedOut = res.timed_out || outcome === 'deadline';
      // `timeout`'s status for a command it ended, as with `docker exec`.
      const exitCode = timedOut ? 124 : res.exit_code;
      const oomKilled = exitCode === 137 && (await oomSince(docker, containerName(input.agentId), started));
      // Output at its size limit may end in the first part of a secret: redact that too.
      const redact = (kept: Buffer) => redactSecrets(kept.toString('utf8'), redacted, kept.length >= input.max_output_bytes);
      return fitResult({
        exit_code: exitCode,
        stdout: redact(res.stdout),
        stderr: redact(res.stderr),
        stdout_truncated_bytes: res.stdout_dropped,
        stderr_truncated_bytes: res.stderr_dropped,
        timed_out: timedOut,
        oom_killed: oomKilled,
        duration_ms: duration,
      });
    } finally {
      waitAbort.abort();
      clearInterval(beat);
      clearTimeout(hostDeadline);
    }
  }

  /**
   * Runs a command through `docker exec`, in a sandbox created before the executor. `timeout`
   * (coreutils) makes the command the
   * leader of its own process group and signals the whole group when time runs out; a second
   * exec (reapExec) then kills what is left of its uid.
   */
  async function execThroughDockerExec({ input, command, stdin, redacted }: CommandRun): Promise<ExecResult> {
    const ctx = Context.current();
    const uid = execUid();
    const started = Date.now();
    const c = container(input.agentId);
    const exec = await c.exec(sandboxExecOptions(command, input.timeout_ms, uid, stdin !== undefined));
    const stream = await exec.start({ hijack: true, stdin: stdin !== undefined });
    if (stdin) stream.write(stdin);
    const stdout = new BoundedSink(input.max_output_bytes);
    const stderr = new BoundedSink(input.max_output_bytes);
    docker.modem.demuxStream(stream, stdout, stderr);

    const beat = setInterval(() => heartbeat(), 5_000);
    let hostDeadline: NodeJS.Timeout | undefined;
    try {
      const ended = new Promise<'ended'>((resolve, reject) => {
        stream.on('end', () => resolve('ended'));
        stream.on('close', () => resolve('ended'));
        stream.on('error', reject);
      });
      const cancelled = cancellationOf(ctx);
      // Backstop in case `timeout` itself cannot run (for instance a frozen, paused sandbox).
      const deadline = new Promise<'deadline'>((resolve) => {
        hostDeadline = setTimeout(() => resolve('deadline'), input.timeout_ms + 10_000);
      });
      const waitAbort = new AbortController();
      const sandboxExited = c.wait({ abortSignal: waitAbort.signal }).then(
        () => 'sandbox-exited' as const,
        () => new Promise<never>(() => undefined),
      );
      let outcome: 'ended' | 'cancelled' | 'deadline' | 'sandbox-exited';
      try {
        outcome = await Promise.race([ended, cancelled, deadline, sandboxExited]);
        if (outcome === 'ended' && ((await exec.inspect()).ExitCode ?? 0) >= 128) {
          // Killed by a signal: under gVisor an OOM ends the whole sandbox, and the exec with it,
          // a moment before the engine reports the container gone. Give it that moment.
          outcome = await Promise.race([sandboxExited, new Promise<'ended'>((r) => setTimeout(() => r('ended'), 2000))]);
        }
        if (outcome === 'sandbox-exited') throw await sandboxExitFailure(c);
        if (outcome === 'cancelled' && isWorkerShutdown(ctx)) {
          // The grace period is over and the worker is leaving: the command runs on in the sandbox
          // and the retry on another worker collects its outcome through the execution journal.
          throw ApplicationFailure.retryable(
            'the worker shut down while the command ran; it runs on in the sandbox',
            FailureType.WorkerShutdown,
          );
        }
        // Every other end (done, timed out, cancelled): nothing the command started may outlive it.
        const reaped = await reapExec(c, uid);
        if (outcome === 'cancelled') throw ctx.cancellationSignal.reason ?? new Error('exec cancelled');
        if (!reaped) {
          throw ApplicationFailure.create({
            type: FailureType.ExecOutlived,
            message: `processes the command started (uid ${uid}) could not be killed after it ended; stop the agent, which ends its sandbox`,
            nonRetryable: true,
          });
        }
      } finally {
        waitAbort.abort();
        stream.destroy();
      }
      const info = await exec.inspect();
      const duration = Date.now() - started;
      const exitCode = info.ExitCode ?? 137;
      const timedOut = outcome === 'deadline' || ((exitCode === 124 || exitCode === 137) && duration >= input.timeout_ms);
      const oomKilled = exitCode === 137 && !timedOut && (await oomSince(docker, containerName(input.agentId), started));
      // Output at its size limit may end in the first part of a secret: redact that too.
      const redact = (sink: BoundedSink) => redactSecrets(sink.text(), redacted, sink.kept >= input.max_output_bytes);
      return fitResult({
        exit_code: exitCode,
        stdout: redact(stdout),
        stderr: redact(stderr),
        stdout_truncated_bytes: stdout.dropped,
        stderr_truncated_bytes: stderr.dropped,
        timed_out: timedOut,
        oom_killed: oomKilled,
        duration_ms: duration,
      });
    } finally {
      clearInterval(beat);
      clearTimeout(hostDeadline);
    }
  }

  return {
    createSandbox: heartbeating(createSandbox),
    pauseSandbox: heartbeating(pauseSandbox),
    unpauseSandbox: heartbeating(unpauseSandbox),
    stopSandbox: heartbeating(stopSandbox),
    removeSandbox: heartbeating(removeSandbox),
    readSandboxUsage: heartbeating(readSandboxUsage),
    /** The host's engine, for placement and GET /api/sandbox. */
    describeDockerHost: () => readEngineFacts(docker),
    execInSandbox,
  };
}

export type SandboxActivities = ReturnType<typeof createSandboxActivities>;

/**
 * Heartbeats while a short activity runs, so that with a heartbeat timeout a worker that died
 * mid-activity is noticed in seconds and the (idempotent) activity is retried elsewhere.
 */
export function heartbeating<A extends unknown[], R>(fn: (...args: A) => Promise<R>): (...args: A) => Promise<R> {
  const wrapped = async (...args: A) => {
    const beat = setInterval(() => heartbeat(), 2_000);
    try {
      heartbeat();
      return await fn(...args);
    } finally {
      clearInterval(beat);
    }
  };
  Object.defineProperty(wrapped, 'name', { value: fn.name });
  return wrapped;
}

/** The executor's run id of the current activity: every attempt of it shares it. */
function activityRunId(): string {
  const { workflowExecution, activityId } = Context.current().info;
  return [workflowExecution?.workflowId, workflowExecution?.runId, activityId].join('/');
}

/** Resolves once the activity is cancelled, at once if that happened while it was getting ready. */
function cancellationOf(ctx: Context): Promise<'cancelled'> {
  return new Promise((resolve) => {
    if (ctx.cancellationSignal.aborted) resolve('cancelled');
    else ctx.cancellationSignal.addEventListener('abort', () => resolve('cancelled'), { once: true });
  });
}

/** The SDK cancels activities still running when a shutdown's grace period ends with this reason. */
function isWorkerShutdown(ctx: Context): boolean {
  return (
    ctx.cancellationDetails?.workerShutdown === true || (ctx.cancellationSignal.reason as Error | undefined)?.message === 'WORKER_SHUTDOWN'
  );
}

/**
 * Gives a started sandbox's workspace its shared mode: under runc the engine copies the image
 * directory's mode over the one the tmpfs was mounted with.
 */
export async function shareWorkspace(c: Docker.Container): Promise<void> {
  const code = await runToEnd(c, { Cmd: ['chmod', WORKSPACE_MODE, WORKSPACE], User: `${SANDBOX_UID}:${SANDBOX_GID}` });
  if (code !== 0) throw new Error(`could not make the sandbox's ${WORKSPACE} shared (chmod exited with ${code})`);
}

/**
 * Whether the container under the agent's name is Warden's sandbox for it on this host: made for
 * the agent, or a warm pool member claimed for it (only a claim gives a member the agent's name).
 */
function isAgentContainer(info: Docker.ContainerInspectInfo, input: CreateSandboxInput): boolean {
  const labels = info.Config.Labels ?? {};
  return labels[LABELS.managed] === 'true' && labels[LABELS.host] === input.host && agentOfContainer(info.Name, labels) === input.agentId;
}

/** The sandbox ended under a running command: why, as the engine tells it. */
async function sandboxExitFailure(c: Docker.Container): Promise<ApplicationFailure> {
  const state = (await c.inspect().catch(() => null))?.State;
  return ApplicationFailure.create({
    type: FailureType.SandboxExited,
    message: `the sandbox ended while the command ran${state?.OOMKilled ? ': out of memory' : ''} (exit code ${state?.ExitCode ?? 'unknown'})`,
    nonRetryable: true,
  });
}

/** Runs REAP_SCRIPT as the exec's uid: true once no process of that uid is left. */
async function reapExec(c: Docker.Container, uid: number): Promise<boolean> {
  try {
    return (await runToEnd(c, { Cmd: ['/bin/sh', '-c', REAP_SCRIPT, 'warden-reap', String(uid)], User: `${uid}:${SANDBOX_GID}` })) === 0;
  } catch {
    return false; // the engine refused the exec (a paused or stopping sandbox): nothing was checked
  }
}

/** Runs a short command of Warden's own in the sandbox (output discarded) and returns its exit code. */
async function runToEnd(c: Docker.Container, options: Docker.ExecCreateOptions): Promise<number | null> {
  const exec = await c.exec({ ...options, AttachStdout: true, AttachStderr: true });
  const stream = await exec.start({ hijack: true, stdin: false });
  await new Promise((resolve) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.resume();
  });
  return (await exec.inspect()).ExitCode;
}

/** Did the engine report an OOM kill in this container since `sinceMs`? */
async function oomSince(docker: Docker, name: string, sinceMs: number): Promise<boolean> {
  const stream = (await docker.getEvents({
    since: Math.floor(sinceMs / 1000) - 1,
    until: Math.ceil(Date.now() / 1000) + 1,
    filters: { container: [name], event: ['oom'] },
  })) as unknown as NodeJS.ReadableStream;
  let found = false;
  for await (const chunk of stream) if (String(chunk).includes('"oom"')) found = true;
  return found;
}

/**
 * The most an exec's result may take as JSON: well under Temporal's 2 MiB payload limit, with room
 * for the action record around it, and still enough for a 1 MiB file read. Output that JSON
 * escaping inflates (control characters take 6 bytes, invalid UTF-8 3) can exceed it even within
 * max_output_bytes.
 */
export const MAX_RESULT_JSON_BYTES = 1.25 * MiB;
export const RESULT_CUT_MARKER = '\n[warden: output cut here to fit the result size limit]\n';

/**
 * The result, with stdout and stderr (the longer first) cut until its JSON fits in `limit` bytes;
 * each cut stream ends in RESULT_CUT_MARKER and counts the bytes cut in its *_truncated_bytes.
 */
export function fitResult(result: ExecResult, limit = MAX_RESULT_JSON_BYTES): ExecResult {
  const jsonBytes = (value: unknown) => Buffer.byteLength(JSON.stringify(value));
  let out = result;
  for (let size = jsonBytes(out); size > limit; size = jsonBytes(out)) {
    const key = jsonBytes(out.stdout) >= jsonBytes(out.stderr) ? 'stdout' : 'stderr';
    const text = out[key].endsWith(RESULT_CUT_MARKER) ? out[key].slice(0, -RESULT_CUT_MARKER.length) : out[key];
    if (!text) break; // nothing left to cut: the rest of the result is what is too big
    const kept = text.slice(0, Math.floor(text.length * Math.min(0.9, limit / size)));
    const cut = Buffer.byteLength(text) - Buffer.byteLength(kept);
    out = { ...out, [key]: kept + RESULT_CUT_MARKER, [`${key}_truncated_bytes`]: out[`${key}_truncated_bytes`] + cut };
  }
  return out;
}

/** Keeps the first `limit` bytes written to it and counts the rest. */
class BoundedSink extends Writable {
  private chunks: Buffer[] = [];
  kept = 0;
  dropped = 0;
  constructor(private readonly limit: number) {
    super();
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    const room = this.limit - this.kept;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      this.chunks.push(part);
      this.kept += part.length;
    }
    this.dropped += Math.max(0, chunk.length - Math.max(room, 0));
    done();
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}
