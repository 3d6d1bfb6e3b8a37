/**
 * The shell scripts the filesystem skill runs in the sandbox (dash and coreutils). They are
 * constants: user values reach them only as positional parameters ($1, $2, ...), never as script
 * text. Each resolves its path with `realpath -m`, which follows every symlink (in intermediate
 * directories and the final component, existing or not), and refuses a path that ends outside
 * /workspace before touching anything. The operation then works on the resolved path, so a
 * symlink is not followed a second time.
 *
 * Exit codes: 0 done, 1 failed (message on stderr), 3 refused (the path leads outside the
 * workspace), 4 not found.
 */

/** $0 of every script: the name error messages start with. */
export const FS_SCRIPT_NAME = 'warden-fs';

export const FS_EXIT = { ok: 0, failed: 1, refused: 3, not_found: 4 } as const;

const PRELUDE = String.raw`
ws=/workspace
nl='
'
refuse() { printf '%s: refused: %s\n' "$0" "$1" >&2; exit 3; }
fail() { printf '%s: %s\n' "$0" "$2" >&2; exit "$1"; }
# Sets r to the fully resolved path of workspace-relative $1, or refuses it.
resolve() {
  case "$1" in
    /*) refuse "$1: not a workspace-relative path" ;;
    ..|../*|*/..|*/../*) refuse "$1: contains a '..' segment" ;;
    *"$nl"*) refuse "the path contains a newline" ;;
  esac
  r=$(realpath -m -- "$ws/$1") || fail 1 "$1: cannot be resolved"
  case "$r" in
    "$ws"|"$ws"/*) ;;
    *) refuse "$1 leads outside the workspace (to $r)" ;;
  esac
}
`;

const script = (body: string): string => `${PRELUDE}${body.trim()}\n`;

/** $1 path, $2 max bytes. Prints the first $2 bytes of the file. */
export const READ_SCRIPT = script(String.raw`
resolve "$1"
[ -e "$r" ] || fail 4 "$1: no such file"
[ -f "$r" ] || fail 1 "$1: not a regular file"
exec head -c "$2" -- "$r"
`);

/**
 * $1 path, $2... the content, base64, in pieces (one argv element may not exceed 128 KiB). Writes
 * a temporary file beside the target and renames it over the target (`mv -T` replaces a symlink
 * put there meanwhile instead of following it). A new file is 0660: later commands run as other
 * uids of the sandbox group. Prints the size written.
 */
export const WRITE_SCRIPT = script(String.raw`
p=$1
shift
resolve "$p"
[ "$r" = "$ws" ] && refuse "$p: the workspace itself is not a file"
[ -d "$r" ] && fail 1 "$p: is a directory"
d=$(dirname -- "$r")
[ -d "$d" ] || fail 4 "$p: its directory does not exist (create it with mkdir first)"
t=$(mktemp -p "$d" .warden-write.XXXXXX) || fail 1 "$p: cannot create a file in its directory"
if ! printf '%s' "$@" | base64 -d > "$t"; then rm -f -- "$t"; fail 1 "$p: could not write the content"; fi
if [ -e "$r" ]; then chmod --reference="$r" -- "$t" 2>/dev/null; else chmod 0660 -- "$t"; fi
mv -fT -- "$t" "$r" || { rm -f -- "$t"; fail 1 "$p: could not replace it"; }
stat -c %s -- "$r"
`);

/** $1 path. Lines: name TAB type (find's %y letter) TAB size TAB mtime (epoch seconds), by name. */
export const LIST_SCRIPT = script(String.raw`
resolve "$1"
[ -e "$r" ] || fail 4 "$1: no such directory"
[ -d "$r" ] || fail 1 "$1: not a directory"
cd -- "$r" || fail 1 "$1: cannot open it"
# Records are NUL-terminated with "/" between fields (neither can occur in a name), so a newline
# or tab in a name becomes "?" before records become lines.
find . -mindepth 1 -maxdepth 1 -printf '%f/%y/%s/%T@\0' | LC_ALL=C sort -z -t/ -k1,1 | tr '\n\t' '??' | tr '\0/' '\n\t'
`);

/** $1 path. One line: type (file|directory|other) TAB size TAB mtime (epoch seconds) TAB link (yes|no). */
export const STAT_SCRIPT = script(String.raw`
resolve "$1"
[ -e "$r" ] || fail 4 "$1: no such file or directory"
if [ -d "$r" ]; then t=directory; elif [ -f "$r" ]; then t=file; else t=other; fi
l=no
[ -L "$ws/$1" ] && l=yes
stat --printf "$t\t%s\t%Y\t$l\n" -- "$r"
`);

/** $1 path. Creates the directory and its missing parents. */
export const MKDIR_SCRIPT = script(String.raw`
resolve "$1"
[ "$r" = "$ws" ] && exit 0
[ -e "$r" ] && [ ! -d "$r" ] && fail 1 "$1: exists and is not a directory"
mkdir -p -- "$r" || fail 1 "$1: could not create it"
`);

/**
 * $1 path, $2 "recursive" or "single". Both where the path leads and the directory holding it must
 * be inside the workspace; the entry itself is removed (a symlink, not its target).
 */
export const DELETE_SCRIPT = script(String.raw`
p=$1
resolve "$p"
[ "$r" = "$ws" ] && refuse "$p: the workspace itself cannot be deleted"
resolve "$(dirname -- "$p")"
e=$r/$(basename -- "$p")
[ -e "$e" ] || [ -L "$e" ] || fail 4 "$p: no such file or directory"
if [ -d "$e" ] && [ ! -L "$e" ]; then
  if [ "$2" = recursive ]; then
    rm -rf -- "$e" || fail 1 "$p: could not delete it"
  else
    rmdir -- "$e" 2>/dev/null || fail 1 "$p: is a directory that is not empty; pass recursive: true to delete it with its contents"
  fi
else
  rm -f -- "$e" || fail 1 "$p: could not delete it"
fi
`);

/** Lines: key TAB value for files, directories, symlinks, bytes (sum of file sizes), capacity_bytes, free_bytes. */
export const INFO_SCRIPT = script(String.raw`
cd "$ws" || fail 1 "the workspace is missing"
find . -xdev -mindepth 1 -printf '%y %s\n' | awk '
  $1 == "f" { f++; b += $2 } $1 == "d" { d++ } $1 == "l" { l++ }
  END { printf "files\t%.0f\ndirectories\t%.0f\nsymlinks\t%.0f\nbytes\t%.0f\n", f, d, l, b }'
df -B1 --output=size,avail . | awk 'NR == 2 { printf "capacity_bytes\t%.0f\nfree_bytes\t%.0f\n", $1, $2 }'
`);
