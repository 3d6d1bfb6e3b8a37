/**
 * For tests that need something the machine may lack (gVisor, an engine this run may restart): a
 * missing need fails the run with its reason, so a green run never hides untested promises. With
 * WARDEN_ALLOW_SKIP=1 (a laptop without gVisor, say) the tests are skipped instead, saying why.
 */
import type Docker from 'dockerode';
import { it } from 'vitest';
import { detectRuntimes } from '../../sandbox/docker-engine.js';

export const ALLOW_SKIP = process.env.WARDEN_ALLOW_SKIP === '1';

/**
 * Whether the tests that need `what` may run. When `available` is false it registers a failing
 * test naming the need and the reason (or, under WARDEN_ALLOW_SKIP=1, a skipped one), and answers
 * false: the caller skips the tests that need it. Call it where tests are declared.
 */
export function requireOrSkip(available: boolean, what: string, reason: string): boolean {
  if (available) return true;
  const title = `needs ${what}`;
  if (ALLOW_SKIP) {
    it.skip(`${title} (skipped under WARDEN_ALLOW_SKIP=1: ${reason})`, () => undefined);
  } else {
    it(title, () => {
      throw new Error(`${reason}; the tests that need ${what} did not run. Set WARDEN_ALLOW_SKIP=1 to skip them knowingly.`);
    });
  }
  return false;
}

/**
 * The engine's runtimes and the ones to test under, runc and runsc: gVisor is required as
 * requireOrSkip says. Call it where tests are declared.
 */
export async function runtimesUnderTest(docker: Docker) {
  const engine = await detectRuntimes(docker);
  const runtimes = (['runc', 'runsc'] as const).filter((r) => engine.names[r]);
  requireOrSkip(
    runtimes.includes('runsc'),
    'gVisor (runsc)',
    'the Docker engine has no runsc runtime registered (scripts/setup-docker.sh installs it)',
  );
  return { engine, runtimes };
}
