# One image for the Warden worker (the default command) and the API (docker-compose.yml overrides
# the command). TypeScript runs as is through tsx, which is a runtime dependency, so
# `npm ci --omit=dev` leaves everything the processes need and nothing else (no vitest, no tsc).
FROM node:20-bookworm-slim

ENV NODE_ENV=production
WORKDIR /app

# Dependencies first, so a code change does not reinstall them. The Temporal worker's native
# bridge and esbuild (tsx) ship prebuilt binaries for linux-x64/arm64 glibc; better-sqlite3 fetches
# its prebuilt binary at install time (a host that can pull images can reach it).
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# The code, owned by root and read-only to the user that runs it (.dockerignore keeps out
# node_modules, .warden, .git and the tests).
COPY . .

# The unprivileged `node` user (uid 1000) of the base image runs both processes.
#
# The Docker socket: the worker creates the sandbox containers through the host's
# /var/run/docker.sock, which is root:docker with mode 660. The docker group's id differs from
# host to host, so the image does not bake one in: the container gets the host's gid as a
# supplementary group when it starts (`group_add: [$DOCKER_GID]` in docker-compose.yml, or
# `docker run --group-add "$(stat -c %g /var/run/docker.sock)"`), and nothing runs as root.
# Membership of that group is root-equivalent on the host all the same: docs/deployment.md,
# "Security". The API needs no group: it reaches the engine through a read-only socket proxy.
RUN mkdir -p /data && chown node:node /data
USER node

# `node --import tsx` rather than `npx tsx`: one process, so SIGTERM from `docker stop` reaches
# Warden's own handlers (the worker drains in-flight activities) with no npm or tsx wrapper
# in between.
CMD ["node", "--import", "tsx", "workers/main.ts"]
