#!/usr/bin/env bash
# Makes sure a Docker engine answers, with gVisor's runsc registered when we can install it.
# Uses DOCKER_HOST or /var/run/docker.sock when an engine already runs. Otherwise, as root on
# Debian, installs docker.io (bookworm) and runsc (trixie: bookworm's build is too old) and
# starts dockerd in its own session. Anyone else is told what to install.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/scripts/lib/trixie.sh"
log_dir="$here/.warden/log"; mkdir -p "$log_dir"

engine_up() { docker info >/dev/null 2>&1; }

if engine_up; then exit 0; fi
if [ -n "${DOCKER_HOST:-}" ]; then
  echo "DOCKER_HOST=$DOCKER_HOST is set but no engine answers there." >&2; exit 1
fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<TXT
No Docker engine is running and this is not root on Debian, so Warden will not install one.
Install Docker Engine (https://docs.docker.com/engine/install/) and, for the gVisor sandbox,
runsc (https://gvisor.dev/docs/user_guide/install/), register it as runtime "runsc" with
"runtimeArgs": ["--network=none"], start the engine, then run this again.
TXT
  exit 1
fi

need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

if ! command -v runsc >/dev/null; then
  # Trixie's runsc (a static binary) works where bookworm's fails on statx; pin trixie low so
  # nothing else is taken from it.
  add_trixie_source
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie runsc >/dev/null || \
    echo "warning: could not install runsc; agents will run under runc" >&2
fi

if command -v runsc >/dev/null; then
  # Without --network=none every runsc container fails on these machines ("cannot run with
  # network enabled in root network namespace"); Warden's sandboxes have no network anyway.
  mkdir -p /etc/docker
  python3 - "$(command -v runsc)" <<'PY'
import json, os, sys
path = "/etc/docker/daemon.json"
cfg = json.load(open(path)) if os.path.exists(path) and os.path.getsize(path) else {}
cfg.setdefault("runtimes", {})["runsc"] = {"path": sys.argv[1], "runtimeArgs": ["--network=none"]}
json.dump(cfg, open(path, "w"), indent=2)
PY
fi

setsid dockerd >"$log_dir/dockerd.log" 2>&1 < /dev/null &
for _ in $(seq 1 60); do engine_up && exit 0; sleep 1; done
echo "dockerd did not answer within 60 s; see $log_dir/dockerd.log" >&2
tail -20 "$log_dir/dockerd.log" >&2
exit 1
