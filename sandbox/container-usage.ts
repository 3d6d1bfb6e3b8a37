/**
 * Live resource usage of an agent's container, read from a Docker engine. The full reading of
 * GET /api/agents/{id}/stats is taken by the sandbox worker of the agent's host (activities/sandbox.ts);
 * the `usage` summary of an agent and the container gauges of /metrics are read by the API from
 * the engine it reaches (in docker-compose, through the read-only docker-proxy).
 */
import { Writable } from 'node:stream';
import type Docker from 'dockerode';
import { z } from 'zod';
import { containerName, WORKSPACE, SANDBOX_UID } from './spec.js';

export const UsageSummarySchema = z.object({
  cpu_seconds: z.number().describe('CPU time used since the container started.'),
  memory_bytes: z.number().describe('Memory in use, page cache that can be dropped excluded (the workspace tmpfs counts).'),
  memory_limit_bytes: z.number(),
  pids: z.number().describe('Tasks in the container (under runsc: the host tasks of the gVisor sandbox).'),
  uptime_seconds: z.number(),
});
export type UsageSummary = z.infer<typeof UsageSummarySchema>;

export const ContainerUsageSchema = UsageSummarySchema.extend({
  cpu_percent: z.number().nullable().describe('Over about one second, 100 = one full core; null while paused.'),
  cpu_limit_cores: z.number().nullable(),
  pids_limit: z.number().nullable(),
  paused: z.boolean(),
  workspace_bytes: z
    .number()
    .nullable()
    .describe('Bytes used in the /workspace tmpfs; null while paused (nothing runs in a frozen sandbox) or when the engine refuses exec.'),
  workspace_limit_bytes: z.number().nullable(),
});
export type ContainerUsage = z.infer<typeof ContainerUsageSchema>;

/** The container is not there (never made, removed, or on another engine). */
export class ContainerGoneError extends Error {
  override readonly name = 'ContainerGone';
}

const statusOf = (err: unknown): number | undefined => (err as { statusCode?: number })?.statusCode;

interface EngineStats {
  memory_stats: { usage?: number; limit?: number; stats?: Record<string, number> };
  pids_stats: { current?: number };
  cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
}

/** Memory in use as `docker stats` shows it: usage minus the inactive file cache (cgroup v1 and v2 names). */
function memoryUsed(m: EngineStats['memory_stats']): number {
  const inactive = m.stats?.total_inactive_file ?? m.stats?.inactive_file ?? 0;
  return Math.max(0, (m.usage ?? 0) - inactive);
}

/** CPU over the engine's two samples; 100 = one core. */
function cpuPercent(s: EngineStats): number | null {
  const used = s.cpu_stats.cpu_usage.total_usage - (s.precpu_stats.cpu_usage?.total_usage ?? 0);
  const system = (s.cpu_stats.system_cpu_usage ?? 0) - (s.precpu_stats.system_cpu_usage ?? 0);
  if (!s.precpu_stats.system_cpu_usage || system <= 0 || used < 0) return null;
  return Math.round((used / system) * (s.cpu_stats.online_cpus ?? 1) * 100 * 100) / 100;
}

export function createContainerUsage(docker: Docker) {
  const container = (agentId: string) => docker.getContainer(containerName(agentId));

  async function inspect(agentId: string) {
    try {
      return await container(agentId).inspect();
    } catch (err) {
      if (statusOf(err) === 404) throw new ContainerGoneError(`the container of agent ${agentId} is gone`);
      throw err;
    }
  }

  async function engineStats(agentId: string, oneShot: boolean): Promise<EngineStats> {
    // one-shot: a single sample at once (no CPU %); otherwise the engine waits for a second sample.
    return (await container(agentId).stats({ stream: false, ...(oneShot ? { 'one-shot': true } : {}) } as {
      stream: false;
    })) as unknown as EngineStats;
  }

  const summary = (s: EngineStats, startedAt: string): UsageSummary => ({
    cpu_seconds: s.cpu_stats.cpu_usage.total_usage / 1e9,
    memory_bytes: memoryUsed(s.memory_stats),
    memory_limit_bytes: s.memory_stats.limit ?? 0,
    pids: s.pids_stats.current ?? 0,
    uptime_seconds: Math.max(0, Math.round((Date.now() - Date.parse(startedAt)) / 1000)),
  });

  /** A quick summary (one engine sample, no exec): for agent records and /metrics. */
  async function usageSummary(agentId: string): Promise<UsageSummary> {
    const [info, stats] = await Promise.all([inspect(agentId), engineStats(agentId, true)]);
    return summary(stats, info.State.StartedAt);
  }

  /** The full reading: CPU % over two samples, and the workspace's use read inside the sandbox. */
  async function usage(agentId: string): Promise<ContainerUsage> {
    const info = await inspect(agentId);
    if (!info.State.Running) throw new ContainerGoneError(`the container of agent ${agentId} is not running`);
    const paused = info.State.Paused;
    // An engine (or proxy) that refuses exec still gives the rest.
    const [stats, workspace] = await Promise.all([engineStats(agentId, false), paused ? null : workspaceUse(agentId).catch(() => null)]);
    const nanoCpus = info.HostConfig.NanoCpus ?? 0;
    return {
      ...summary(stats, info.State.StartedAt),
      cpu_percent: paused ? null : cpuPercent(stats),
      cpu_limit_cores: nanoCpus > 0 ? nanoCpus / 1e9 : null,
      pids_limit: info.HostConfig.PidsLimit ?? null,
      paused,
      workspace_bytes: workspace?.used ?? null,
      workspace_limit_bytes: workspace?.size ?? null,
    };
  }

  /** `df` of the workspace tmpfs, run as the sandbox user: what the files use, in whole pages. */
  async function workspaceUse(agentId: string): Promise<{ used: number; size: number }> {
    const exec = await container(agentId).exec({
      Cmd: ['df', '-B1', '--output=used,size', WORKSPACE],
      User: `${SANDBOX_UID}:${SANDBOX_UID}`,
      AttachStdout: true,
      AttachStderr: true,
    });
    const stream = await exec.start({ hijack: true, stdin: false });
    const chunks: Buffer[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (chunks.push(chunk), done()) });
    docker.modem.demuxStream(stream, sink, sink);
    await new Promise((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
    });
    const match = /(\d+)\s+(\d+)\s*$/.exec(Buffer.concat(chunks).toString('utf8'));
    if (!match) throw new Error(`could not read the workspace's use: ${Buffer.concat(chunks).toString('utf8').slice(0, 200)}`);
    return { used: Number(match[1]), size: Number(match[2]) };
  }

  return { usage, usageSummary };
}

export type ContainerUsageReader = ReturnType<typeof createContainerUsage>;
