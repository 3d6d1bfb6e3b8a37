#!/usr/bin/env bash
# Builds the sandbox image (WARDEN_SANDBOX_IMAGE, default warden-sandbox:bookworm) with the
# sandbox executor (sandbox-image/executor) at /usr/local/bin/warden-executor, and again whenever
# the image lacks the current executor: its label dev.warden.executor-sha256 is a hash of the
# executor's sources, so an image built before the executor, or before a change to it, is rebuilt once.
# With registry access it builds sandbox-image/Dockerfile; without (the default here), it makes
# the same image from Debian's packages: debootstrap minbase into a folder, then docker import.
# minbase has perl-base (Essential), which the filesystem skill's programs run on.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
image=${WARDEN_SANDBOX_IMAGE:-warden-sandbox:bookworm}
executor_hash=$(cd "$here/sandbox-image/executor" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
built_with=$(docker image inspect --format '{{index .Config.Labels "dev.warden.executor-sha256"}}' "$image" 2>/dev/null || true)
if [ "$built_with" = "$executor_hash" ]; then exit 0; fi

if [ "${WARDEN_IMAGE_FROM_REGISTRY:-0}" = 1 ]; then
  docker build --build-arg "EXECUTOR_SHA256=$executor_hash" -t "$image" "$here/sandbox-image"; exit 0
fi

bash "$here/scripts/build-executor.sh"
command -v debootstrap >/dev/null || { echo "debootstrap is needed to build $image (apt-get install debootstrap), or set WARDEN_IMAGE_FROM_REGISTRY=1" >&2; exit 1; }
root="$here/.warden/image-root"
rm -rf "$root"; mkdir -p "$root" "$here/.warden/log"
echo "building $image from Debian packages (debootstrap, about a minute)..."
debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >"$here/.warden/log/debootstrap.log" 2>&1 \
  || { tail -20 "$here/.warden/log/debootstrap.log" >&2; exit 1; }
chroot "$root" /bin/sh -c '
  groupadd --gid 10001 sandbox &&
  useradd --uid 10001 --gid 10001 --home-dir /workspace --no-create-home --shell /bin/sh sandbox &&
  mkdir -p /workspace && chown sandbox:sandbox /workspace &&
  apt-get clean && rm -rf /var/lib/apt/lists/* /var/cache/apt/*'
install -m 0755 "$here/.warden/bin/warden-executor" "$root/usr/local/bin/warden-executor"
tar -C "$root" -c . | docker import \
  --change 'USER 10001:10001' --change 'WORKDIR /workspace' --change 'CMD ["sleep","infinity"]' \
  --change 'LABEL dev.warden.image=sandbox' --change "LABEL dev.warden.executor-sha256=$executor_hash" - "$image" >/dev/null
rm -rf "$root"
echo "built $image"
