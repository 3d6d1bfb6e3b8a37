#!/usr/bin/env bash
# Makes sure Docker Compose v2 or later is available, and prints the command to use: `docker
# compose` (the CLI plugin) or `docker-compose` (the same program on its own). No image registry
# is needed: as root on Debian it installs Debian's `docker-compose` package (v2, a Go binary that
# depends only on libc) from trixie, pinned low as scripts/setup-docker.sh does for runsc.
# Anyone else is told what to install. Compose v1 (Python, bookworm's package) does not count:
# it cannot print the configuration as JSON and is no longer maintained.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/trixie.sh"
log_dir="$here/.warden/log"

# Exit 0 when "$@" is Compose with a major version of 2 or more.
compose_v2() {
  local v major
  v=$("$@" version --short 2>/dev/null) || return 1
  major=${v#v}; major=${major%%.*}
  [[ $major =~ ^[0-9]+$ ]] && [ "$major" -ge 2 ]
}

found() {
  if command -v docker >/dev/null && compose_v2 docker compose; then echo "docker compose"; return 0; fi
  if command -v docker-compose >/dev/null && compose_v2 docker-compose; then echo "docker-compose"; return 0; fi
  return 1
}

if found; then exit 0; fi

if [ "$(id -u)" != 0 ] || ! grep -qs '^ID=debian' /etc/os-release; then
  cat >&2 <<TXT
Docker Compose v2 is not installed, and this is not root on Debian, so Warden will not install it.
Install the Compose plugin (https://docs.docker.com/compose/install/; on Debian 13 or Ubuntu 24.04:
apt-get install docker-compose-v2 or docker-compose), then run this again.
TXT
  exit 1
fi

add_trixie_source
mkdir -p "$log_dir"
echo "installing docker-compose (Compose v2) from Debian trixie..." >&2
# --no-install-recommends: trixie's docker-compose recommends docker-cli, which would replace
# bookworm's docker.io (the engine) with trixie's. The plugin works with the CLI already here.
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends -t trixie docker-compose; } >"$log_dir/setup-compose.log" 2>&1; then
  tail -20 "$log_dir/setup-compose.log" >&2
  echo "could not install docker-compose from Debian trixie; see $log_dir/setup-compose.log" >&2
  exit 1
fi

if found; then exit 0; fi
echo "docker-compose was installed but no Compose v2 answers (docker compose version, docker-compose version)" >&2
exit 1
