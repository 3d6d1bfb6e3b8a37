#!/usr/bin/env bash
# Builds the sandbox's in-container executor (sandbox-image/executor, standard library only) into
# .warden/bin/warden-executor: a static binary, rebuilt only when missing or older than a source.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
src="$here/sandbox-image/executor"
bin="$here/.warden/bin/warden-executor"

if [ -x "$bin" ] && [ -z "$(find "$src" -type f -newer "$bin" -print -quit)" ]; then exit 0; fi

if [ -x /usr/local/go/bin/go ]; then go=/usr/local/go/bin/go
elif command -v go >/dev/null; then go=$(command -v go)
else
  echo "Go is needed to build the sandbox executor ($src): install Go (https://go.dev/dl) to /usr/local/go or put go on PATH" >&2
  exit 1
fi

mkdir -p "$(dirname "$bin")"
# Built to a temporary name and moved: a half-written binary is never taken for a fresh one.
(cd "$src" && CGO_ENABLED=0 GOOS=linux "$go" build -trimpath -ldflags=-s -o "$bin.$$" .)
mv -f "$bin.$$" "$bin"
echo "built $bin"
