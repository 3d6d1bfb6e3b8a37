/**
 * The filesystem and shell skills against a real sandbox container (the hardened container
 * options of sandbox/spec.ts, commands run by the sandbox activity itself, keyed by their action
 * id as actions run them), under runc and,
 * when the engine has it, runsc: the operations work, every path that leads outside the
 * workspace is refused before anything is read, written or deleted, and a process of the agent's
 * own swapping a directory for a symlink mid-operation never gets an operation outside.
 */
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it, inject } from 'vitest';
import { ResourceLimitsSchema } from '../../domain/agent.js';
import { createSandboxActivities, shareWorkspace } from '../../activities/sandbox.js';
import { sandboxContainerOptions } from '../../sandbox/spec.js';
import { actionExec } from '../../domain/action-exec.js';
import type { ExecResult } from '../../domain/agent.js';
import { prepareCommand } from '../../skills/index.js';
import type { SkillCommand } from '../../skills/types.js';
import { MAX_CONTENT_BYTES } from '../../skills/filesystem/content.js';
import { parseInfo, parseListing, parseStat } from '../../skills/filesystem/output.js';
import { FS_EXIT } from '../../skills/filesystem/scripts.js';
import { activityEnv } from '../support/helpers.js';
import { runtimesUnderTest } from '../support/require-or-skip.js';

const docker = new Docker();
const { engine, runtimes } = await runtimesUnderTest(docker);
const limits = ResourceLimitsSchema.parse({ cpu_cores: 1, memory_mb: 128, disk_mb: 16, max_processes: 64 });

interface Run {
  exit_code: number;
  stdout: string;
  stderr: string;
}

const sandbox = createSandboxActivities(docker);
let actions = 0;

/** Runs argv in the agent's sandbox through the sandbox activity itself: its uid, sweep and result. */
async function execArgv(agentId: string, argv: string[], timeoutMs = 20_000): Promise<ExecResult> {
  return activityEnv().run(sandbox.execInSandbox, { agentId, command: argv, timeout_ms: timeoutMs, max_output_bytes: 2 * 1024 * 1024 });
}

/**
 * Runs a skill's command as an action does: the journaled command, which the guarded activity
 * hands on with the action's own argv, through the activity.
 */
async function runAction(
  agentId: string,
  command: SkillCommand,
  actionId = `act-${Date.now().toString(36)}-${actions++}`,
): Promise<ExecResult> {
  const exec = actionExec(actionId, { ...command, max_output_bytes: command.max_output_bytes ?? 2 * 1024 * 1024 });
  return activityEnv().run(sandbox.execInSandbox, { agentId, ...exec }, { action_id: actionId, argv: command.argv });
}

/** /tmp, where the executor's actions keep nothing. */
const LS_TMP = 'ls -A /tmp';
const CLEAR_TMP = 'find /tmp -mindepth 1 -maxdepth 1 -exec rm -rf {} +';

const run = ({ exit_code, stdout, stderr }: ExecResult): Run => ({ exit_code, stdout, stderr });

describe.each(runtimes)('skills in a sandbox under %s', (runtime) => {
  const agentId = `skills-${runtime}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
  let container: Docker.Container;

  const fs = async (operation: string, params: Record<string, unknown> = {}) =>
    run(await runAction(agentId, prepareCommand('filesystem', operation, params)));
  /** Sets up the scene with the sandbox's own shell (not through the skill). */
  const sh = async (script: string) => run(await execArgv(agentId, ['/bin/sh', '-c', script]));

  beforeAll(async () => {
    container = await docker.createContainer(
      sandboxContainerOptions({
        agentId,
        host: inject('testHost'),
        image: inject('sandboxImage'),
        limits,
        runtime,
        engineRuntime: engine.names[runtime]!,
      }),
    );
    await container.start();
    await shareWorkspace(container);
  });
  afterAll(async () => {
    await container?.remove({ force: true, v: true });
  });

  it('writes and reads back a file, text and size intact', async () => {
    const content = 'héllo, wörld\n$(id) `id` ; rm -rf / \'"\n';
    const written = await fs('write', { path: 'notes/a.txt', content });
    expect(written).toMatchObject({ exit_code: FS_EXIT.not_found });
    expect(written.stderr).toMatch(/notes\/a\.txt: its directory does not exist/);

    expect(await fs('mkdir', { path: 'notes/deep/er' })).toMatchObject({ exit_code: 0 });
    const ok = await fs('write', { path: 'notes/a.txt', content });
    expect(ok).toMatchObject({ exit_code: 0, stderr: '' });
    expect(Number(ok.stdout)).toBe(Buffer.byteLength(content));
    expect(await fs('read', { path: 'notes//./a.txt' })).toEqual({ exit_code: 0, stdout: content, stderr: '' });
    expect((await fs('read', { path: 'notes/a.txt', max_bytes: 5 })).stdout).toBe('héll');

    // Replacing keeps one file; an empty write empties it.
    expect((await fs('write', { path: 'notes/a.txt', content: '' })).exit_code).toBe(0);
    expect((await fs('read', { path: 'notes/a.txt' })).stdout).toBe('');
    expect((await sh('ls -A notes')).stdout).toBe('a.txt\ndeep\n');
  });

  it('takes odd names literally: a leading "-", spaces, quotes and shell syntax', async () => {
    for (const path of ['./-rf', 'notes/$(touch pwned) `id`; "x\' *']) {
      expect(await fs('write', { path, content: path })).toMatchObject({ exit_code: 0, stderr: '' });
      expect((await fs('read', { path })).stdout).toBe(path);
      expect(await fs('delete', { path })).toMatchObject({ exit_code: 0, stderr: '' });
    }
    expect((await sh('ls -A; ls -A notes')).stdout).not.toMatch(/pwned|-rf/);
  });

  it('writes 1 MiB, the most it accepts, through argv', async () => {
    const content = 'x'.repeat(MAX_CONTENT_BYTES - 2) + 'é';
    const res = await fs('write', { path: 'big.txt', content });
    expect(res).toMatchObject({ exit_code: 0, stderr: '' });
    expect(Number(res.stdout)).toBe(MAX_CONTENT_BYTES);
    expect((await sh('sha256sum big.txt')).stdout.split(' ')[0]).toBe(
      (await import('node:crypto')).createHash('sha256').update(content).digest('hex'),
    );
    expect((await fs('delete', { path: 'big.txt' })).exit_code).toBe(0);
  });

  it('lists a directory and stats entries', async () => {
    await fs('mkdir', { path: 'ls/sub' });
    await fs('write', { path: 'ls/b.txt', content: '12345' });
    await sh('ln -s b.txt ls/link && touch "ls/odd\tname"');
    const res = await fs('list', { path: 'ls' });
    expect(res.exit_code).toBe(0);
    const entries = parseListing(res.stdout);
    expect(entries.map((e) => [e.name, e.type])).toEqual([
      ['b.txt', 'file'],
      ['link', 'symlink'],
      ['odd?name', 'file'],
      ['sub', 'directory'],
    ]);
    expect(entries[0]!.size).toBe(5);
    expect(Math.abs(Date.parse(entries[0]!.mtime) - Date.now())).toBeLessThan(120_000);

    const file = await fs('stat', { path: 'ls/b.txt' });
    expect(parseStat(file.stdout)).toMatchObject({ type: 'file', size: 5, symlink: false });
    expect(parseStat((await fs('stat', { path: 'ls/sub' })).stdout)).toMatchObject({ type: 'directory', symlink: false });
    expect(parseStat((await fs('stat', { path: 'ls/link' })).stdout)).toMatchObject({ type: 'file', size: 5, symlink: true });
    expect((await fs('stat', { path: 'ls/missing' })).exit_code).toBe(FS_EXIT.not_found);
    expect(parseListing((await fs('list', {})).stdout).map((e) => e.name)).toContain('ls');
  });

  it('deletes files, symlinks (not their targets) and directories', async () => {
    await fs('mkdir', { path: 'del/full/inner' });
    await fs('write', { path: 'del/full/inner/f', content: 'x' });
    await fs('write', { path: 'del/f', content: 'x' });
    await sh('ln -s f del/link');

    expect(await fs('delete', { path: 'del/link' })).toMatchObject({ exit_code: 0 });
    expect((await sh('ls -A del')).stdout).toBe('f\nfull\n');
    expect(await fs('delete', { path: 'del/f' })).toMatchObject({ exit_code: 0 });
    const notEmpty = await fs('delete', { path: 'del/full' });
    expect(notEmpty.exit_code).toBe(FS_EXIT.failed);
    expect(notEmpty.stderr).toMatch(/not empty; pass recursive: true/);
    expect(await fs('delete', { path: 'del/full', recursive: true })).toMatchObject({ exit_code: 0 });
    expect((await sh('ls -A del')).stdout).toBe('');
    expect((await fs('delete', { path: 'del/nothing' })).exit_code).toBe(FS_EXIT.not_found);
  });

  it('reports file count and total size of the workspace', async () => {
    await sh('rm -rf /workspace/* /workspace/.[!.]*; true');
    await fs('mkdir', { path: 'i/j' });
    await fs('write', { path: 'i/one', content: 'a'.repeat(1000) });
    await fs('write', { path: 'i/j/two', content: 'b'.repeat(24) });
    await fs('write', { path: 'three', content: '' });
    await sh('ln -s three i/link');
    const res = await fs('info');
    expect(res.exit_code).toBe(0);
    expect(parseInfo(res.stdout)).toEqual({
      files: 3,
      directories: 2,
      symlinks: 1,
      bytes: 1024,
      capacity_bytes: limits.disk_mb * 1024 * 1024,
      free_bytes: expect.any(Number),
    });
  });

  describe('symlinks that lead outside the workspace are refused before anything runs', () => {
    beforeAll(async () => {
      const scene = await sh(
        'ln -sfn /etc/passwd passwd && ln -sfn / root && ln -sfn /tmp/nowhere dangling && mkdir -p in && ln -sfn ../in/t.txt in/rel-inside && echo inside > in/t.txt',
      );
      expect(scene.exit_code).toBe(0);
    });

    const refused = (res: Run, what: RegExp) => {
      expect(res.exit_code).toBe(FS_EXIT.refused);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(/^warden-fs: refused: /);
      expect(res.stderr).toMatch(what);
    };

    it('a symlink to /etc/passwd: read, write and delete', async () => {
      refused(await fs('read', { path: 'passwd' }), /passwd leads outside the workspace \(to \/etc\/passwd\)/);
      refused(await fs('write', { path: 'passwd', content: 'x' }), /to \/etc\/passwd/);
      refused(await fs('delete', { path: 'passwd' }), /to \/etc\/passwd/);
      refused(await fs('stat', { path: 'passwd' }), /to \/etc\/passwd/);
      // Nothing happened: the link is still there, still pointing at /etc/passwd.
      expect((await sh('readlink passwd')).stdout).toBe('/etc/passwd\n');
    });

    it('a symlinked intermediate directory to /', async () => {
      refused(await fs('read', { path: 'root/etc/passwd' }), /root\/etc\/passwd leads outside the workspace \(to \/etc\/passwd\)/);
      refused(await fs('list', { path: 'root' }), /to \/\)/);
      refused(await fs('list', { path: 'root/etc' }), /to \/etc\)/);
      refused(await fs('write', { path: 'root/tmp/x', content: 'x' }), /to \/tmp\/x/);
      refused(await fs('mkdir', { path: 'root/tmp/newdir' }), /to \/tmp\/newdir/);
      refused(await fs('delete', { path: 'root/tmp' }), /to \/tmp/);
      refused(await fs('stat', { path: 'root/etc' }), /to \/etc/);
      expect((await sh(LS_TMP)).stdout).toBe('');
    });

    it('a dangling symlink that points outside, as the final component of write and mkdir', async () => {
      refused(await fs('write', { path: 'dangling', content: 'x' }), /to \/tmp\/nowhere/);
      refused(await fs('mkdir', { path: 'dangling/sub' }), /to \/tmp\/nowhere\/sub/);
      expect((await sh(LS_TMP)).stdout).toBe('');
    });

    it('a symlink inside the workspace pointing inside is followed', async () => {
      expect(await fs('read', { path: 'in/rel-inside' })).toMatchObject({ exit_code: 0, stdout: 'inside\n' });
      expect(await fs('write', { path: 'in/rel-inside', content: 'through the link\n' })).toMatchObject({ exit_code: 0 });
      expect((await sh('cat in/t.txt; readlink in/rel-inside')).stdout).toBe('through the link\n../in/t.txt\n');
      expect(parseListing((await fs('list', { path: 'in' })).stdout).map((e) => e.name)).toEqual(['rel-inside', 't.txt']);
    });
  });

  describe('a process of the agent swapping a directory for a symlink while the skill works', () => {
    /**
     * The attacker: a loop the agent could start itself with a low-risk shell action, turning
     * `race/d` from a real directory into a symlink to `target` and back every millisecond (each
     * state about as long as the other), until `race/stop` appears (30 s at most, so a failed test
     * leaves nothing running for long).
     */
    const SWAPPER = String.raw`
      my ($target) = @ARGV;
      my $end = time + 30;
      until (-e 'stop' || time > $end) {
        rename 'd', 'real'; symlink $target, 'd';
        select undef, undef, undef, 0.001;
        unlink 'd'; rename 'real', 'd';
        select undef, undef, undef, 0.001;
      }`;

    /**
     * Runs `attempt` `times` times (twice as many under runc, whose execs are faster) while the
     * loop swaps `race/d` with a symlink to `target`.
     */
    async function underSwapping(target: string, times: number, attempt: (i: number) => Promise<void>, swapper = SWAPPER) {
      if (runtime === 'runc') times *= 2;
      expect((await sh('rm -rf race && mkdir -p race/d && echo inside > race/d/passwd')).exit_code).toBe(0);
      const loop = await container.exec({ Cmd: ['perl', '-e', swapper, target], User: '10001:10001', WorkingDir: '/workspace/race' });
      await loop.start({ Detach: true });
      try {
        for (let i = 0; i < times; i++) await attempt(i);
      } finally {
        await sh('touch race/stop');
        // The next test's set-up must not race a loop still swapping.
        while ((await loop.inspect()).Running) await new Promise((r) => setTimeout(r, 50));
      }
    }

    it('read, list and stat never see /etc', async () => {
      let inside = 0;
      await underSwapping('/etc', 30, async (i) => {
        if (i % 3 === 0) {
          const res = await fs('read', { path: 'race/d/passwd' });
          expect(res.stdout).not.toMatch(/root:/);
          if (res.stdout === 'inside\n') inside++;
        } else if (i % 3 === 1) {
          const res = await fs('list', { path: 'race/d' });
          expect(res.stdout).not.toMatch(/debian_version/);
        } else {
          const res = await fs('stat', { path: 'race/d/passwd' });
          if (res.exit_code === 0) expect(parseStat(res.stdout)).toMatchObject({ type: 'file', size: 'inside\n'.length });
        }
      });
      // The skill worked through the directory between the swaps.
      expect(inside).toBeGreaterThan(0);
    });

    it('write, mkdir and delete never reach /tmp', async () => {
      await sh(`${CLEAR_TMP} && echo outside > /tmp/victim`);
      let written = 0;
      await underSwapping('/tmp', 36, async (i) => {
        if (i % 3 === 0) written += (await fs('write', { path: 'race/d/written', content: 'x' })).exit_code === 0 ? 1 : 0;
        else if (i % 3 === 1) await fs('mkdir', { path: 'race/d/made' });
        else await fs('delete', { path: 'race/d/victim' });
      });
      expect((await sh(`${LS_TMP}; cat /tmp/victim`)).stdout).toBe('victim\noutside\n');
      expect(written).toBeGreaterThan(0);
    });

    it('a recursive delete does not descend into a directory swapped for a symlink to /tmp', async () => {
      await sh(`${CLEAR_TMP} && echo outside > /tmp/victim`);
      // Remakes race/t/d after each delete, then swaps it like the loop above but without pauses:
      // rm -r's window under gVisor (between its lstat and its open of a directory) is short.
      const TREE_SWAPPER = String.raw`
        my ($target) = @ARGV;
        # As every command in the sandbox does: what it makes, the group (each command's own uid) may change.
        umask 007;
        my $end = time + 30;
        until (-e 'stop' || time > $end) {
          mkdir 't'; mkdir 't/d';
          rename 't/d', 't/real'; symlink $target, 't/d';
          unlink 't/d'; rename 't/real', 't/d';
        }`;
      let deleted = 0;
      await underSwapping(
        '/tmp',
        25,
        async () => {
          deleted += (await fs('delete', { path: 'race/t', recursive: true })).exit_code === 0 ? 1 : 0;
        },
        TREE_SWAPPER,
      );
      expect((await sh(`${LS_TMP}; cat /tmp/victim`)).stdout).toBe('victim\noutside\n');
      expect(deleted).toBeGreaterThan(0);
    });
  });

  describe('paths the walk must get right', () => {
    beforeAll(async () => {
      const scene = await sh(
        'mkdir -p w/sub && echo hi > w/f && ln -s /workspace/w/f w/abs && ln -s .. w/sub/up && ln -s ../.. w/sub/top && ' +
          'ln -s ../../etc w/esc && ln -s /workspace/../etc w/abs-esc && ln -s loop2 w/loop1 && ln -s loop1 w/loop2 && mkfifo w/fifo',
      );
      expect(scene.exit_code).toBe(0);
    });

    it('follows links into the workspace: absolute, and through ".." while inside', async () => {
      expect(await fs('read', { path: 'w/abs' })).toMatchObject({ exit_code: 0, stdout: 'hi\n' });
      expect(await fs('read', { path: 'w/sub/up/f' })).toMatchObject({ exit_code: 0, stdout: 'hi\n' });
      expect(parseListing((await fs('list', { path: 'w/sub/up' })).stdout).map((e) => e.name)).toContain('abs');
      expect(parseStat((await fs('stat', { path: 'w/sub/top' })).stdout)).toMatchObject({ type: 'directory', symlink: true });
      expect(parseListing((await fs('list', { path: 'w/sub/top' })).stdout).map((e) => e.name)).toContain('w');
    });

    it('refuses links that climb out, relative or absolute, and stops on loops and FIFOs', async () => {
      const esc = await fs('read', { path: 'w/esc/passwd' });
      expect(esc).toMatchObject({ exit_code: FS_EXIT.refused, stdout: '' });
      expect(esc.stderr).toMatch(/w\/esc\/passwd leads outside the workspace \(to \/etc\/passwd\)/);
      expect((await fs('list', { path: 'w/abs-esc' })).stderr).toMatch(/refused: .*\(to \/etc\)/);
      const loop = await fs('read', { path: 'w/loop1' });
      expect(loop.exit_code).toBe(FS_EXIT.failed);
      expect(loop.stderr).toMatch(/too many levels of symbolic links/);
      expect(await fs('read', { path: 'w/fifo' })).toMatchObject({
        exit_code: FS_EXIT.failed,
        stderr: 'warden-fs: w/fifo: not a regular file\n',
      });
    });
  });

  it('runs a shell command with its exit code and output', async () => {
    const cmd = prepareCommand('shell', 'exec', { command: 'echo "$(id -u) $PWD"; echo err >&2; exit 7', timeout_ms: 5000 });
    expect(cmd.argv).toEqual(['/bin/sh', '-c', 'echo "$(id -u) $PWD"; echo err >&2; exit 7']);
    expect(run(await runAction(agentId, cmd))).toEqual({
      exit_code: 7,
      stdout: expect.stringMatching(/^\d+ \/workspace\n$/),
      stderr: 'err\n',
    });
    const slow = await runAction(agentId, prepareCommand('shell', 'exec', { command: 'echo started; sleep 30', timeout_ms: 500 }));
    expect(slow).toMatchObject({ exit_code: 124, timed_out: true, stdout: 'started\n' });
  });

  it('runs an action once: the same action id hands back the first result and runs nothing', async () => {
    const actionId = `once-${Date.now().toString(36)}`;
    const first = await runAction(agentId, prepareCommand('filesystem', 'write', { path: 'once.txt', content: 'first' }), actionId);
    expect(first.exit_code).toBe(0);
    const again = await runAction(agentId, prepareCommand('filesystem', 'write', { path: 'once.txt', content: 'second' }), actionId);
    expect(run(again)).toEqual(run(first));
    expect((await fs('read', { path: 'once.txt' })).stdout).toBe('first');
  });

  it('leaves no process of an action behind: what it started in the background is killed', async () => {
    const res = await runAction(
      agentId,
      prepareCommand('shell', 'exec', { command: 'sleep 300 >/dev/null 2>&1 & sleep 301 >/dev/null 2>&1 & id -u', timeout_ms: 5000 }),
    );
    expect(res.exit_code).toBe(0);
    const uid = res.stdout.trim();
    expect(Number(uid)).toBeGreaterThan(10001);
    // Every process's owner and command line, read from /proc as any user may.
    const ps = await sh('for p in /proc/[0-9]*; do echo "$(stat -c %u $p) $(tr "\\0" " " < $p/cmdline 2>/dev/null)"; done');
    expect(ps.stdout).not.toMatch(/sleep 30[01]/);
    expect(ps.stdout.split('\n').filter((l) => l.startsWith(`${uid} `))).toEqual([]);
    // A positive control: the listing does see a process that still runs.
    const own = await sh('sleep 2 & for p in /proc/[0-9]*; do tr "\\0" " " < $p/cmdline 2>/dev/null; echo; done');
    expect(own.stdout).toMatch(/sleep 2/);
  });
});
