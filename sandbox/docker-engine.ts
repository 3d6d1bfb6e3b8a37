/**
 * What a Docker engine offers Warden: which sandbox runtimes it has registered, and the choice
 * of runtime for an agent. Shared by the sandbox activities and the API's sandbox info.
 */
import Docker from 'dockerode';
import type { SandboxRuntime } from '../domain/agent.js';
import { FailureType } from '../domain/failure-types.js';

export interface EngineRuntimes {
  /** Warden runtime -> the name the engine knows it by. */
  names: Partial<Record<SandboxRuntime, string>>;
  /** runsc registered with --network=none: its sandboxes cannot have a network. */
  runscNetworkless: boolean;
}

export function engineRuntimes(info: { Runtimes?: Record<string, { path?: string; runtimeArgs?: string[] }> }): EngineRuntimes {
  const names: EngineRuntimes['names'] = { runc: 'runc' };
  let runscNetworkless = false;
  for (const [name, runtime] of Object.entries(info.Runtimes ?? {})) {
    const path = runtime.path ?? '';
    if (!names.runsc && (name === 'runsc' || /runsc|gvisor/.test(path))) {
      names.runsc = name;
      // runsc takes flags as --flag=value, --flag value, or with a single dash.
      runscNetworkless = /(^|\s)--?network(=|\s+)none(\s|$)/.test((runtime.runtimeArgs ?? []).join(' '));
    } else if (!names.kata && /kata/.test(name)) {
      names.kata = name;
    }
  }
  return { names, runscNetworkless };
}

export async function detectRuntimes(docker: Docker): Promise<EngineRuntimes> {
  return engineRuntimes(await docker.info());
}

/** What a Docker host's engine says of itself: what placement weighs and GET /api/sandbox shows. */
export interface EngineFacts {
  version: string;
  runtimes: EngineRuntimes;
  cpu_cores: number;
  memory_bytes: number;
}

export async function readEngineFacts(docker: Pick<Docker, 'info' | 'version'>): Promise<EngineFacts> {
  const [info, version] = await Promise.all([docker.info(), docker.version()]);
  return { version: version.Version, runtimes: engineRuntimes(info), cpu_cores: info.NCPU ?? 0, memory_bytes: info.MemTotal ?? 0 };
}

export interface RuntimeChoice {
  runtime: SandboxRuntime;
  engineName: string;
  /** Why this agent's isolation is weaker than it could be; shown in sandbox info. */
  warning: string | null;
}

export class SandboxUnavailableError extends Error {
  override readonly name = FailureType.SandboxUnavailable;
}

const STRENGTH: SandboxRuntime[] = ['runsc', 'kata', 'runc'];
const RUNC_WARNING = 'running under runc: the container shares the host kernel (install gVisor or Kata for a stronger sandbox)';

/**
 * Picks the runtime for an agent. A requested runtime must exist; 'auto' takes the strongest one
 * that can run the agent. With requireSandbox, plain runc is never chosen (fail closed).
 */
export function chooseRuntime(
  engine: EngineRuntimes,
  requested: SandboxRuntime | 'auto',
  opts: { requireSandbox: boolean; networkEnabled: boolean },
): RuntimeChoice {
  const usable = (r: SandboxRuntime) => engine.names[r] !== undefined && !(r === 'runsc' && opts.networkEnabled && engine.runscNetworkless);
  const candidates = requested === 'auto' ? STRENGTH : [requested];
  const runtime = candidates.find(usable);
  if (!runtime) {
    const why =
      requested === 'runsc' && engine.names.runsc && opts.networkEnabled
        ? 'runsc on this host is registered with --network=none, so a network_enabled agent cannot run under it'
        : `runtime ${requested} is not registered with this Docker engine (it has: ${Object.keys(engine.names).join(', ')})`;
    throw new SandboxUnavailableError(why);
  }
  if (runtime === 'runc' && opts.requireSandbox) {
    throw new SandboxUnavailableError(
      'require_sandbox is on and no gVisor or Kata runtime can run this agent here; refusing to fall back to runc',
    );
  }
  const downgraded = requested === 'auto' && runtime !== 'runsc' && engine.names.runsc !== undefined;
  const warning =
    runtime !== 'runc'
      ? null
      : downgraded
        ? `${RUNC_WARNING}; gVisor here has no network, and this agent asked for one`
        : requested === 'runc'
          ? 'runc was asked for: the container shares the host kernel'
          : RUNC_WARNING;
  return { runtime, engineName: engine.names[runtime]!, warning };
}
