#!/usr/bin/env bash
# Schemathesis (PyPI) against a running Warden API: every operation of its OpenAPI document with
# generated valid and invalid data, checked for server errors and conformance to the document
# (statuses, content types, response schemas) and for invalid data being refused. Exits non-zero
# on any failure. Installs Schemathesis into the project venv (.warden/venv) when it is missing.
#
#   WARDEN_API_KEY=<admin key> scripts/schemathesis.sh http://127.0.0.1:8080 [schemathesis options]
#
# WARDEN_SCHEMATHESIS_EXAMPLES (default 20) bounds the test cases per operation.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$root/.warden/venv
if ! "$venv/bin/schemathesis" --version >/dev/null 2>&1; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  echo "[warden] installing schemathesis 4 into $venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis==4.*'
fi
url=${1:?usage: WARDEN_API_KEY=<admin key> scripts/schemathesis.sh <API base URL> [schemathesis options]}
shift
: "${WARDEN_API_KEY:?set WARDEN_API_KEY to an admin API key}"
# Its cache of failures (for `st replay`) goes under .warden/, not into the source tree.
cd "$root/.warden"
# One worker: with several threads, Hypothesis' ast.parse calls failed here under CPython 3.11.7
# ("SystemError: AST constructor recursion depth mismatch").
exec "$venv/bin/schemathesis" --config-file "$root/scripts/schemathesis.toml" run "$url/openapi.json" \
  --header "Authorization: Bearer $WARDEN_API_KEY" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,negative_data_rejection \
  --phases examples,coverage,fuzzing \
  --max-examples "${WARDEN_SCHEMATHESIS_EXAMPLES:-20}" \
  --workers 1 \
  --request-timeout 30 \
  --suppress-health-check too_slow \
  "$@"
