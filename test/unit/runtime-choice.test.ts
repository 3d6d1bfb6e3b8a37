/** engineRuntimes() from `docker info` shapes, and chooseRuntime()'s choice, warnings and refusals. */
import { describe, expect, it } from 'vitest';
import { chooseRuntime, engineRuntimes, SandboxUnavailableError, type EngineRuntimes } from '../../sandbox/docker-engine.js';
import type { SandboxRuntime } from '../../domain/agent.js';

/** What `docker info` reports for the engine's default runtimes. */
const BASE = {
  'io.containerd.runc.v2': { path: 'runc' },
  runc: { path: 'runc' },
};
const RUNSC = { path: '/usr/bin/runsc' };
const RUNSC_NETWORKLESS = { path: '/usr/bin/runsc', runtimeArgs: ['--network=none'] };
const KATA = { path: '/opt/kata/bin/containerd-shim-kata-v2' };

const engine = (runtimes: Record<string, { path?: string; runtimeArgs?: string[] }>) =>
  engineRuntimes({ Runtimes: { ...BASE, ...runtimes } });

const auto = { requireSandbox: false, networkEnabled: false };
const withNetwork = { requireSandbox: false, networkEnabled: true };
const required = { requireSandbox: true, networkEnabled: false };
const requiredWithNetwork = { requireSandbox: true, networkEnabled: true };

/** The SandboxUnavailableError chooseRuntime throws (fails the test when it returns instead). */
function refusal(e: EngineRuntimes, requested: SandboxRuntime | 'auto', opts: typeof auto): SandboxUnavailableError {
  try {
    const choice = chooseRuntime(e, requested, opts);
    throw new Error(`expected a refusal, got ${JSON.stringify(choice)}`);
  } catch (err) {
    expect(err).toBeInstanceOf(SandboxUnavailableError);
    return err as SandboxUnavailableError;
  }
}

describe('engineRuntimes', () => {
  it('an engine with nothing but runc offers runc only', () => {
    expect(engine({})).toEqual({ names: { runc: 'runc' }, runscNetworkless: false });
  });

  it('no Runtimes at all still offers runc', () => {
    expect(engineRuntimes({})).toEqual({ names: { runc: 'runc' }, runscNetworkless: false });
  });

  it('finds runsc registered with a network', () => {
    expect(engine({ runsc: RUNSC })).toEqual({ names: { runc: 'runc', runsc: 'runsc' }, runscNetworkless: false });
  });

  it('finds runsc registered with --network=none and says it is networkless', () => {
    expect(engine({ runsc: RUNSC_NETWORKLESS })).toEqual({ names: { runc: 'runc', runsc: 'runsc' }, runscNetworkless: true });
  });

  it.each([[['--network', 'none']], [['-network=none']], [['--debug', '-network', 'none']]])(
    'finds networkless runsc whichever way the flag is spelled: %j',
    (runtimeArgs) => {
      expect(engine({ runsc: { path: '/usr/bin/runsc', runtimeArgs } }).runscNetworkless).toBe(true);
    },
  );

  it('other runsc flags do not make it networkless', () => {
    const e = engine({ runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--platform=systrap', '--debug'] } });
    expect(e.runscNetworkless).toBe(false);
    expect(e.names.runsc).toBe('runsc');
  });

  it('recognises gVisor under another name by its path, keeping the engine name', () => {
    expect(engine({ gvisor: { path: '/usr/local/bin/runsc', runtimeArgs: ['--network=none'] } })).toEqual({
      names: { runc: 'runc', runsc: 'gvisor' },
      runscNetworkless: true,
    });
  });

  it.each(['kata', 'kata-runtime', 'kata-qemu', 'io.containerd.kata.v2'])('finds Kata registered as %s', (name) => {
    expect(engine({ [name]: KATA }).names).toEqual({ runc: 'runc', kata: name });
  });

  it('keeps the first Kata name when several are registered', () => {
    expect(engine({ 'kata-qemu': KATA, 'kata-fc': KATA }).names.kata).toBe('kata-qemu');
  });

  it('finds runsc and Kata together', () => {
    expect(engine({ runsc: RUNSC_NETWORKLESS, kata: KATA })).toEqual({
      names: { runc: 'runc', runsc: 'runsc', kata: 'kata' },
      runscNetworkless: true,
    });
  });

  it('reads this engine: the shape detectRuntimes sees here', () => {
    // What `docker info` reports on the suite's host (gVisor registered without a network).
    const info = {
      Runtimes: {
        'io.containerd.runc.v2': { path: 'runc' },
        'io.containerd.runtime.v1.linux': { path: 'runc' },
        runc: { path: 'runc' },
        runsc: { path: '/usr/bin/runsc', runtimeArgs: ['--network=none'] },
      },
    };
    expect(engineRuntimes(info)).toEqual({ names: { runc: 'runc', runsc: 'runsc' }, runscNetworkless: true });
  });
});

describe('chooseRuntime', () => {
  const runcOnly = engine({});
  const all = engine({ runsc: RUNSC, kata: KATA });
  const kataOnly = engine({ kata: KATA });
  const networklessRunsc = engine({ runsc: RUNSC_NETWORKLESS });
  const networklessRunscAndKata = engine({ runsc: RUNSC_NETWORKLESS, 'kata-qemu': KATA });

  describe('auto picks the strongest runtime: runsc > kata > runc', () => {
    it('runsc when the engine has everything', () => {
      expect(chooseRuntime(all, 'auto', auto)).toEqual({ runtime: 'runsc', engineName: 'runsc', warning: null });
    });

    it('kata without runsc', () => {
      expect(chooseRuntime(kataOnly, 'auto', auto)).toEqual({ runtime: 'kata', engineName: 'kata', warning: null });
    });

    it('runc as the last resort, with a warning that it shares the host kernel', () => {
      const choice = chooseRuntime(runcOnly, 'auto', auto);
      expect(choice.runtime).toBe('runc');
      expect(choice.engineName).toBe('runc');
      expect(choice.warning).toMatch(/runc/);
      expect(choice.warning).toMatch(/shares the host kernel/);
    });

    it("uses the engine's own name for the runtime", () => {
      const e = engine({ gvisor: { path: '/usr/local/bin/runsc' } });
      expect(chooseRuntime(e, 'auto', auto)).toEqual({ runtime: 'runsc', engineName: 'gvisor', warning: null });
    });

    it('networkless runsc is fine for an agent without network', () => {
      expect(chooseRuntime(networklessRunsc, 'auto', auto)).toEqual({ runtime: 'runsc', engineName: 'runsc', warning: null });
    });

    it('runsc with a network serves a network_enabled agent', () => {
      expect(chooseRuntime(all, 'auto', withNetwork).runtime).toBe('runsc');
    });
  });

  describe('an explicitly requested runtime', () => {
    it('is used when the engine has it, even if a stronger one exists', () => {
      expect(chooseRuntime(all, 'kata', auto)).toEqual({ runtime: 'kata', engineName: 'kata', warning: null });
    });

    it('runc asked for gets a warning saying it was asked for', () => {
      const choice = chooseRuntime(all, 'runc', auto);
      expect(choice.runtime).toBe('runc');
      expect(choice.warning).toMatch(/runc was asked for/);
      expect(choice.warning).toMatch(/shares the host kernel/);
    });

    it.each([
      ['kata', engine({ runsc: RUNSC }), ['runc', 'runsc']],
      ['runsc', kataOnly, ['runc', 'kata']],
      ['runsc', runcOnly, ['runc']],
    ] as const)('%s missing is refused, naming what the engine has', (requested, e, has) => {
      const err = refusal(e, requested, auto);
      expect(err.message).toContain(`runtime ${requested} is not registered with this Docker engine`);
      const listed = err.message.match(/it has: ([^)]*)\)/)?.[1].split(', ');
      expect(listed?.sort()).toEqual([...has].sort());
    });
  });

  describe('require_sandbox fails closed', () => {
    it('refuses to fall back to runc when auto finds nothing stronger', () => {
      const err = refusal(runcOnly, 'auto', required);
      expect(err.name).toBe('SandboxUnavailable');
      expect(err.message).toMatch(/require_sandbox is on/);
      expect(err.message).toMatch(/refusing to fall back to runc/);
    });

    it('refuses runc even when runc is asked for by name', () => {
      expect(refusal(all, 'runc', required).message).toMatch(/require_sandbox is on/);
    });

    it('still allows runsc and kata', () => {
      expect(chooseRuntime(all, 'auto', required).runtime).toBe('runsc');
      expect(chooseRuntime(kataOnly, 'auto', required).runtime).toBe('kata');
      expect(chooseRuntime(all, 'kata', required).runtime).toBe('kata');
    });
  });

  describe('network_enabled agents under a networkless runsc', () => {
    it('auto falls back to kata when the engine has it', () => {
      expect(chooseRuntime(networklessRunscAndKata, 'auto', withNetwork)).toEqual({
        runtime: 'kata',
        engineName: 'kata-qemu',
        warning: null, // Kata is a full sandbox: nothing weaker to warn about
      });
    });

    it('auto falls back to runc with a warning saying gVisor here has no network', () => {
      const choice = chooseRuntime(networklessRunsc, 'auto', withNetwork);
      expect(choice.runtime).toBe('runc');
      expect(choice.warning).toMatch(/shares the host kernel/);
      expect(choice.warning).toMatch(/gVisor here has no network/);
      expect(choice.warning).toMatch(/asked for one/);
    });

    it('the fallback warning is only given when runsc was passed over', () => {
      const choice = chooseRuntime(runcOnly, 'auto', withNetwork);
      expect(choice.warning).toMatch(/shares the host kernel/);
      expect(choice.warning).not.toMatch(/no network/);
    });

    it('explicit runsc is refused, saying why', () => {
      const err = refusal(networklessRunscAndKata, 'runsc', withNetwork);
      expect(err.message).toMatch(/--network=none/);
      expect(err.message).toMatch(/network_enabled agent cannot run under it/);
    });

    it('require_sandbox with only a networkless runsc is refused rather than run under runc', () => {
      const err = refusal(networklessRunsc, 'auto', requiredWithNetwork);
      expect(err.message).toMatch(/require_sandbox is on/);
      expect(err.message).toMatch(/runc/);
    });

    it('require_sandbox still takes kata when the engine has it', () => {
      expect(chooseRuntime(networklessRunscAndKata, 'auto', requiredWithNetwork).runtime).toBe('kata');
    });
  });
});
