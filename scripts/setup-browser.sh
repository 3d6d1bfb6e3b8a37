#!/usr/bin/env bash
# Makes sure a Chromium the browser tests can drive (through playwright-core) is installed.
# Playwright cannot download its own browser builds here, so this is Debian's chromium: installed
# with apt as root on Debian when missing; anyone else is told what to install. Prints its path.
set -euo pipefail

find_chromium() { command -v chromium || command -v chromium-browser || true; }

if [ -n "${WARDEN_CHROMIUM_PATH:-}" ]; then
  if [ -x "$WARDEN_CHROMIUM_PATH" ]; then echo "$WARDEN_CHROMIUM_PATH"; exit 0; fi
  echo "WARDEN_CHROMIUM_PATH=$WARDEN_CHROMIUM_PATH is not an executable file" >&2; exit 1
fi
path=$(find_chromium)
if [ -n "$path" ]; then echo "$path"; exit 0; fi
if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ]; then
  cat >&2 <<TXT
No Chromium found and this is not root on Debian, so Warden will not install one.
Install Chromium (Debian/Ubuntu: apt-get install chromium), or set WARDEN_CHROMIUM_PATH to a
Chromium or Chrome binary, then run this again.
TXT
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
path=$(find_chromium)
if [ -z "$path" ]; then echo "apt-get installed chromium, but no chromium binary is on PATH" >&2; exit 1; fi
echo "$path"
