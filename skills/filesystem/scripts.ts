/**
 * The programs the filesystem skill runs in the sandbox. They are constants: user values reach
 * them only as arguments, never as program text.
 *
 * Checking a path and then using it by name is a race the agent can win: a process of its own can
 * swap a directory for a symlink to /etc between the check and the use. So every operation that
 * takes a path is a Perl program (perl-base is in every Debian image; the sandbox has no C
 * compiler and gVisor has no openat2) that walks the path from /workspace one name at a time, as
 * openat2's RESOLVE_BENEATH would: each directory is opened with O_NOFOLLOW and entered through
 * that descriptor (fchdir), and the operation then works on the last name relative to it (opened
 * with O_NOFOLLOW, created with O_EXCL, renamed or unlinked, which never follow a symlink). The
 * kernel thus never follows a symlink for us: a swap makes the operation fail, never leave the
 * workspace. Symlinks met on the way are read and their targets walked the same way, and a target
 * that leads outside /workspace is refused before anything is touched.
 *
 * Exit codes: 0 done, 1 failed (message on stderr), 3 refused (the path leads outside the
 * workspace), 4 not found.
 */

/** What every error message starts with. */
export const FS_SCRIPT_NAME = 'warden-fs';

export const FS_EXIT = { ok: 0, failed: 1, refused: 3, not_found: 4 } as const;

/** Most symlinks one path may pass through, as Linux's own limit (ELOOP). */
const MAX_LINKS = 40;

// String.raw: the Perl below holds no backtick, and a dollar sign before a brace only where a
// constant of this file is put in (the error prefix, MAX_LINKS).
const PRELUDE = String.raw`
use strict;
# File types come from filetests on _ (the last lstat): Fcntl's :mode would add ~10 ms to each start.
use Fcntl qw(O_RDONLY O_WRONLY O_CREAT O_EXCL O_NOFOLLOW O_NONBLOCK);

my $ws = '/workspace';
sub fail { my ($code, $msg) = @_; print STDERR "${FS_SCRIPT_NAME}: $msg\n"; exit $code }
sub refuse { fail(3, "refused: $_[0]") }
sub names { grep { $_ ne '' && $_ ne '.' } map { split m{/} } @_ }
# An absolute path with "." and ".." applied, following nothing: where a refused path leads, for messages.
sub lexical { my @out; for (names(@_)) { if ($_ eq '..') { pop @out } else { push @out, $_ } } '/' . join('/', @out) }

# The directories the walk is in, from the workspace down: their descriptors and names. /workspace
# is a mount point under the read-only root, so the agent cannot swap it.
my $root = enter($ws) or fail(1, 'the workspace is missing');
my @dirs = ($root);
my @names;

sub to_root { splice @dirs, 1; @names = (); chdir($root) or fail(1, 'the workspace is missing') }

# Opens $name in the current directory without following a symlink and, if it is a directory,
# enters it through that descriptor; returns the descriptor. Not with O_DIRECTORY: gVisor then
# follows a symlink despite O_NOFOLLOW. O_NONBLOCK: opening a FIFO must not hang.
sub enter { my ($name) = @_; my $dir; sysopen($dir, $name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) && chdir($dir) ? $dir : undef }

# Makes the current directory the directory holding the last name of workspace-relative $path and
# returns that name ('.' when the path leads to a directory through a symlink ending in "." or
# ".."). A symlink on the way is followed by walking its target, and so is the last name when
# $follow. A missing directory on the way makes it return undef, or is created when $create.
sub resolve {
  my ($path, $follow, $create) = @_;
  refuse("$path: not a workspace-relative path") if $path =~ m{^/};
  refuse("$path: contains a '..' segment") if grep { $_ eq '..' } split m{/}, $path;
  refuse('the path contains a newline') if $path =~ /\n/;
  to_root();
  my @todo = names($path);
  my $links = 0;
  while (@todo) {
    my $name = shift @todo;
    if ($name eq '..') {
      refuse("$path leads outside the workspace (to " . lexical($ws, '..', @todo) . ')') unless @names;
      pop @dirs;
      pop @names;
      chdir($dirs[-1]) or fail(1, "$path: cannot walk back to its parent directory");
      next;
    }
    my $exists = lstat $name;
    if ($exists && -l _ && (@todo || $follow)) {
      fail(1, "$path: too many levels of symbolic links") if ++$links > ${MAX_LINKS};
      my $target = readlink $name;
      fail(1, "$path: $name changed while being resolved") unless defined $target;
      if ($target =~ m{^/}) {
        my @abs = names($target);
        refuse("$path leads outside the workspace (to " . lexical($target, @todo) . ')') unless @abs && $abs[0] eq 'workspace';
        shift @abs;
        to_root();
        unshift @todo, @abs;
      } else {
        unshift @todo, names($target);
      }
      next;
    }
    return $name unless @todo;
    if (!$exists && $create) { mkdir($name) or $!{EEXIST} or fail(1, "$path: could not create $name ($!)") }
    my $dir = enter($name);
    if (!$dir) {
      fail(1, "$path: could not create it ($name is not a directory)") if $create;
      # Missing or not a directory; a symlink put there since the lstat above fails with ELOOP.
      return undef if $!{ENOENT} || $!{ENOTDIR};
      fail(1, "$path: cannot open $name ($!)");
    }
    push @dirs, $dir;
    push @names, $name;
  }
  return '.';
}

# Whether the last name resolve returned is the workspace itself.
sub is_workspace { $_[0] eq '.' && !@names }

# Deletes directory $name of directory $parent (the current one) with everything in it, entering
# each directory as resolve does. Not rm -r: it opens directories with O_DIRECTORY|O_NOFOLLOW, so
# under gVisor it descends through a directory swapped for a symlink (and empties /tmp).
sub remove_tree {
  my ($parent, $name) = @_;
  my $dir = enter($name) or return 0;
  opendir(my $dh, '.') or return 0;
  my @entries = grep { $_ ne '.' && $_ ne '..' } readdir $dh;
  closedir $dh;
  for my $entry (@entries) {
    lstat($entry) or next;
    -d _ ? remove_tree($dir, $entry) : unlink($entry);
  }
  return chdir($parent) && rmdir($name);
}
`;

const program = (body: string): string => `${PRELUDE}\n${body.trim()}\n`;

/** $1 path, $2 max bytes. Prints the first $2 bytes of the file. */
export const READ_SCRIPT = program(String.raw`
my ($p, $max) = @ARGV;
my $name = resolve($p, 1) // fail(4, "$p: no such file");
# O_NONBLOCK: opening a FIFO must not hang; it is refused below as not a regular file.
sysopen(my $fh, $name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK) or fail($!{ENOENT} ? 4 : 1, $!{ENOENT} ? "$p: no such file" : "$p: cannot open it ($!)");
fail(1, "$p: not a regular file") unless -f $fh;
binmode STDOUT;
while ($max > 0) {
  my $n = sysread $fh, my $chunk, $max < 65536 ? $max : 65536;
  fail(1, "$p: could not read it ($!)") unless defined $n;
  last unless $n;
  print $chunk;
  $max -= $n;
}
`);

/**
 * $1 path, $2... the content, base64, in pieces (one argv element may not exceed 128 KiB). Writes
 * a new file beside the target and renames it over the target (a rename replaces a symlink put
 * there meanwhile instead of following it). A new file is 0660: later commands run as other uids
 * of the sandbox group. Prints the size written.
 */
export const WRITE_SCRIPT = program(String.raw`
my ($p, @chunks) = @ARGV;
my $name = resolve($p, 1) // fail(4, "$p: its directory does not exist (create it with mkdir first)");
refuse("$p: the workspace itself is not a file") if is_workspace($name);
my @st = lstat $name;
fail(1, "$p: is a directory") if $name eq '.' || (@st && -d _);
my $mode = @st && -f _ ? $st[2] & 07777 : 0660;

# perl-base has no MIME::Base64: base64 becomes uuencoding (same 6-bit groups, another alphabet),
# which unpack decodes, in lines of 60 characters behind their length character.
(my $encoded = join '', @chunks) =~ tr{A-Za-z0-9+/}{}cd;
$encoded =~ tr{A-Za-z0-9+/}{ -_};
my $content = join '', map { unpack 'u', chr(32 + length($_) * 3 / 4) . $_ } $encoded =~ /(.{1,60})/gs;

my ($tmp, $fh);
for (1 .. 100) {
  $tmp = sprintf '.warden-write.%06d', int rand 1e6;
  last if sysopen $fh, $tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600;
  undef $fh;
}
fail(1, "$p: cannot create a file in its directory ($!)") unless $fh;
binmode $fh;
unless ((print {$fh} $content) && chmod($mode, $fh) && close($fh)) { unlink($tmp); fail(1, "$p: could not write the content ($!)") }
rename($tmp, $name) or do { unlink($tmp); fail(1, "$p: could not replace it ($!)") };
print length($content), "\n";
`);

/** $1 path. Lines: name TAB type (f, d, l or o) TAB size TAB mtime (epoch seconds), by name. */
export const LIST_SCRIPT = program(String.raw`
my $p = $ARGV[0];
my $name = resolve($p, 1) // fail(4, "$p: no such directory");
if ($name ne '.') {
  lstat($name) or fail(4, "$p: no such directory");
  fail(1, "$p: not a directory") unless -d _;
  enter($name) or fail(1, "$p: cannot open it ($!)");
}
opendir(my $dh, '.') or fail(1, "$p: cannot open it ($!)");
binmode STDOUT;
for my $entry (sort grep { $_ ne '.' && $_ ne '..' } readdir $dh) {
  my @st = lstat($entry) or next;
  my $type = -f _ ? 'f' : -d _ ? 'd' : -l _ ? 'l' : 'o';
  # A newline or tab in a name would break the line format.
  (my $shown = $entry) =~ tr/\n\t/??/;
  print "$shown\t$type\t$st[7]\t$st[9]\n";
}
`);

/** $1 path. One line: type (file|directory|other) TAB size TAB mtime (epoch seconds) TAB link (yes|no). */
export const STAT_SCRIPT = program(String.raw`
my $p = $ARGV[0];
my $last = resolve($p, 0) // fail(4, "$p: no such file or directory");
my $link = -l $last ? 'yes' : 'no';
my $name = resolve($p, 1) // fail(4, "$p: no such file or directory");
my @st = lstat($name) or fail(4, "$p: no such file or directory");
my $type = -d _ ? 'directory' : -f _ ? 'file' : 'other';
print "$type\t$st[7]\t$st[9]\t$link\n";
`);

/** $1 path. Creates the directory and its missing parents. */
export const MKDIR_SCRIPT = program(String.raw`
my $p = $ARGV[0];
my $name = resolve($p, 1, 1);
exit 0 if $name eq '.';
mkdir($name) or $!{EEXIST} or fail(1, "$p: could not create it ($!)");
fail(1, "$p: exists and is not a directory") unless lstat($name) && -d _;
`);

/**
 * $1 path, $2 "recursive" or "single". Where the path leads must be inside the workspace; the
 * entry itself is removed (a symlink, not its target), by name in its directory.
 */
export const DELETE_SCRIPT = program(String.raw`
my ($p, $how) = @ARGV;
my $target = resolve($p, 1);
refuse("$p: the workspace itself cannot be deleted") if defined $target && is_workspace($target);
my $name = resolve($p, 0) // fail(4, "$p: no such file or directory");
lstat($name) or fail(4, "$p: no such file or directory");
if (!-d _) {
  unlink($name) or fail(1, "$p: could not delete it ($!)");
} elsif ($how eq 'recursive') {
  remove_tree($dirs[-1], $name) or fail(1, "$p: could not delete it ($!)");
} else {
  rmdir($name) or fail(1, $!{ENOTEMPTY} || $!{EEXIST}
    ? "$p: is a directory that is not empty; pass recursive: true to delete it with its contents"
    : "$p: could not delete it ($!)");
}
`);

/**
 * Lines: key TAB value for files, directories, symlinks, bytes (sum of file sizes), capacity_bytes,
 * free_bytes. A shell script: it takes no path, and find follows no symlink.
 */
export const INFO_SCRIPT = String.raw`
fail() { printf '%s: %s\n' "$0" "$2" >&2; exit "$1"; }
cd /workspace || fail 1 "the workspace is missing"
find . -xdev -mindepth 1 -printf '%y %s\n' | awk '
  $1 == "f" { f++; b += $2 } $1 == "d" { d++ } $1 == "l" { l++ }
  END { printf "files\t%.0f\ndirectories\t%.0f\nsymlinks\t%.0f\nbytes\t%.0f\n", f, d, l, b }'
df -B1 --output=size,avail . | awk 'NR == 2 { printf "capacity_bytes\t%.0f\nfree_bytes\t%.0f\n", $1, $2 }'
`;
