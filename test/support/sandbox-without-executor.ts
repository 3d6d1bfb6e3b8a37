/** A sandbox as Warden created it before the executor: tests of the `docker exec` command path. */
import { inject } from 'vitest';
import type { ResourceLimits } from '../../domain/agent.js';
import { shareWorkspace } from '../../activities/sandbox.js';
import { LABELS, SANDBOX_GID, SANDBOX_UID, sandboxContainerOptions } from '../../sandbox/spec.js';
import { docker, TEST_HOST } from './helpers.js';

/** Creates and starts it: a shell as PID 1, as the sandbox user, with no capability and no executor label. */
export async function startSandboxWithoutExecutor(agentId: string, limits: ResourceLimits): Promise<void> {
  const current = sandboxContainerOptions({
    agentId,
    host: TEST_HOST,
    image: inject('sandboxImage'),
    limits,
    runtime: 'runc',
    engineRuntime: 'runc',
  });
  const { [LABELS.executor]: _executor, ...labels } = current.Labels!;
  const c = await docker.createContainer({
    ...current,
    Cmd: ['/bin/sh', '-c', "trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done"],
    User: `${SANDBOX_UID}:${SANDBOX_GID}`,
    OpenStdin: false,
    Labels: labels,
    HostConfig: { ...current.HostConfig, CapAdd: [] },
  });
  await c.start();
  await shareWorkspace(c);
}
