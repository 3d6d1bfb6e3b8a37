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
  'if true > "$d/$id.started" 2>/dev/null; then',
  '  "$@" > "$d/$id.out" 2> "$d/$id.err"',
  '  rc=$?; echo $rc > "$d/$id.tmp" && mv "$d/$id.tmp" "$d/$id.done"',
  'else',
  '  while [ ! -e "$d/$id.done" ]; do sleep 0.2; done',
  '  read -r rc < "$d/$id.done"',
  'fi',
  'head -c "$max" "$d/$id.out"; head -c "$max" "$d/$id.err" >&2',
  'exit "$rc"',
].join('\n');

/** The argv that runs `argv` at most once for this action id. */
export function journaledCommand(actionId: string, argv: string[], maxOutputBytes: number): string[] {
  if (!/^[A-Za-z0-9_-]+$/.test(actionId)) throw new Error(`action id ${actionId} cannot name a journal entry`);
  return ['/bin/sh', '-c', SCRIPT, 'warden-journal', actionId, String(maxOutputBytes), ...argv];
}
