#!/usr/bin/env bash
# Makes sure PostgreSQL's server programs (initdb, pg_ctl, postgres) are installed, and prints the
# folder that holds them. The tests start a throw-away server of their own from there
# (test/support/postgres.ts). Installed with apt as root on Debian when missing; anyone else is
# told what to install. WARDEN_PG_BINDIR names another installation.
set -euo pipefail

find_bindir() {
  if [ -n "${WARDEN_PG_BINDIR:-}" ]; then echo "$WARDEN_PG_BINDIR"; return; fi
  # Debian keeps the server programs off PATH, one folder per major version: take the newest.
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -n "$dir" ] && [ -x "$dir/initdb" ]; then echo "$dir"; return; fi
  if command -v initdb >/dev/null; then dirname "$(readlink -f "$(command -v initdb)")"; fi
}

dir=$(find_bindir)
if [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then echo "$dir"; exit 0; fi
if [ -n "${WARDEN_PG_BINDIR:-}" ]; then echo "WARDEN_PG_BINDIR=$WARDEN_PG_BINDIR holds no initdb and pg_ctl" >&2; exit 1; fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<TXT
No PostgreSQL server programs (initdb, pg_ctl) found and this is not root on Debian, so Warden will
not install them. Install PostgreSQL (Debian/Ubuntu: apt-get install postgresql), or set
WARDEN_PG_BINDIR to the folder holding initdb and pg_ctl, then run this again.
TXT
  exit 1
fi
apt-get update -qq
# The packaged cluster is not needed: the tests run their own server, as another user, on a free port.
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
if command -v pg_ctlcluster >/dev/null; then
  for cluster in $(pg_lsclusters -h 2>/dev/null | awk '{print $1 "/" $2}'); do pg_ctlcluster "${cluster%/*}" "${cluster#*/}" stop || true; done
fi
dir=$(find_bindir)
if [ -z "$dir" ] || [ ! -x "$dir/initdb" ]; then echo "apt-get installed postgresql, but no initdb was found" >&2; exit 1; fi
echo "$dir"
