# droptailer server image: receives drop/accept events over gRPC with mutual TLS, enriches them
# from the Kubernetes API and prints them as JSON lines (stdout), Kubernetes Events and metrics.
#
#   docker build -f Dockerfile -t droptailer:0.1.0 .
#
# No build step: Node 24 strips the TypeScript types of src/**/*.ts when it loads them, so the
# image runs the sources as they are. Node refuses to strip types below a node_modules folder, so
# the sources live in /app/src, never inside node_modules.

# --- dependencies: production only, from the lock file ---------------------------------------
FROM node:24-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
# --omit=dev: no typescript, vitest or the `node` dev package in the image.
# --ignore-scripts: the only production package with an install script is protobufjs, whose
# postinstall merely checks versions; skipping it runs no package code at build time.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm cache clean --force

# --- runtime -------------------------------------------------------------------------------------
FROM node:24-slim AS runtime
LABEL org.opencontainers.image.title="droptailer" \
      org.opencontainers.image.description="droptailer server: firewall drop/accept logs over gRPC with mutual TLS, enriched from Kubernetes" \
      org.opencontainers.image.licenses="MIT"
ENV NODE_ENV=production \
    SERVER_PORT=50051 \
    DROPTAILER_METRICS_ADDRESS=:9090
WORKDIR /app
COPY --from=dependencies /app/node_modules ./node_modules
COPY package.json package-lock.json ./
COPY proto ./proto
COPY src ./src
# Non-root, numeric so that Kubernetes' runAsNonRoot can verify it (the Deployment sets the same
# uid). Everything under /app stays owned by root and read-only for the process; the server writes
# nothing to disk, so the root filesystem can be mounted read-only.
USER 65532:65532
# 50051: gRPC (Push, PushBatch, grpc.health.v1); 9090: /metrics, /healthz, /readyz.
EXPOSE 50051 9090
ENTRYPOINT ["node", "src/main/bin.ts", "server"]
