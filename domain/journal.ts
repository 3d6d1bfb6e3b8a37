/**
 * The execution journal that makes an action's command run at most once, even when the worker
 * dies while it runs and Temporal retries the activity. The command runs under a marker file in
 * the sandbox's /tmp, created atomically (noclobber): the first attempt creates it, runs the
 * command with its output in files, and writes the exit code last; a retried attempt finds the
 * marker, never runs the command again, waits for the first attempt's exit code and returns its
 * output. Pure: workflows build the command with it.
 */
export const JOURNAL_DIR = '/tmp/.warden-actions';

const SCRIPT = [
  // Shell builtins where they do the job: each process a gVisor sandbox starts costs milliseconds.
  // noclobber (-C) makes creating the marker atomic: only one attempt can create it.
  'set -u -C',
  `d=${JOURNAL_DIR}; id=$1; max=$2; shift 2`,
  '[ -d "$d" ] || mkdir -p "$d" || exit 70',
  // Each stream is cut as it is written, at max bytes rounded up to the file size limit's 512-byte
  // blocks (the activity cuts it exactly), and the rest drained, so the command is not killed by a
  // closed pipe: the journal cannot fill the sandbox's small /tmp. cat, because it writes each
  // piece as it reads it (head holds it in a buffer that a timeout's TERM would discard).
  'cap() { trap "" XFSZ; ulimit -f $(((max + 511) / 512)); cat > "$1" 2>/dev/null; cat > /dev/null; }',
  'if true 2>/dev/null > "$d/$id.started"; then',
  // Outputs of actions finished 10+ minutes ago: their workflows have them (retries come within
  // seconds). The tiny markers stay, so an old action id can never run again.
  '  find "$d" -type f \\( -name "*.out" -o -name "*.err" \\) -mmin +10 -delete 2>/dev/null',
  // When time runs out, `timeout` sends TERM to the whole process group, this shell included: it
  // stops waiting, records 124 (timed out) and still returns what the command printed until then.
  // It ignores TERM from then on, as `timeout` may send it twice. The shell's notices of the jobs
  // the signal ended go nowhere (the command's own stderr is in its pipe).
  `  trap 'trap "" TERM' TERM`,
  '  { { { "$@" 2>&1 1>&3 3>&-; echo $? > "$d/$id.tmp"; } | cap "$d/$id.err"; } 3>&1 | cap "$d/$id.out" & wait $!; } 2>/dev/null',
  '  [ -e "$d/$id.tmp" ] || echo 124 > "$d/$id.tmp"',
  '  mv "$d/$id.tmp" "$d/$id.done"',
  'else',
  '  while [ ! -e "$d/$id.done" ]; do sleep 0.2; done',
  'fi',
  'read -r rc < "$d/$id.done"',
  'cat "$d/$id.out"; cat "$d/$id.err" >&2',
  'exit "$rc"',
].join('\n');

/** The argv that runs `argv` at most once for this action id. */
export function journaledCommand(actionId: string, argv: string[], maxOutputBytes: number): string[] {
  if (!/^[A-Za-z0-9_-]+$/.test(actionId)) throw new Error(`action id ${actionId} cannot name a journal entry`);
  return ['/bin/sh', '-c', SCRIPT, 'warden-journal', actionId, String(maxOutputBytes), ...argv];
}
