# syntax=docker/dockerfile:1
# Multi-stage build of the service, the tick worker and the operator CLI; small Debian runtime
# image. The simulator and the demo (tools/sim, tools/demo) are development tools, not shipped.
#
#   docker build --build-arg COMMIT=$(git rev-parse --short=12 HEAD) -t campaign-manager-rs:0.1.0 .
#   docker run --rm campaign-manager-rs:0.1.0                    # the service (RPC + events + workers)
#   docker run --rm campaign-manager-rs:0.1.0 campaign-worker    # extra tick workers
#   docker run --rm campaign-manager-rs:0.1.0 campaign-control queue stats
#
# It runs as the non-root user `campaign` (uid 10001) and writes nothing to its file system, so
# the manifests mount it read-only (deploy/k8s, docs/deploy.md).
#
# Configuration is by environment (DATABASE_DSN, REDIS_ADDRESS, RABBITMQ_ADDRESS, ...; see README).

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The commit shown by campaign_manager_build_info (.git is not in the build context).
ARG COMMIT=unknown
# The same script CI runs (.ci/run), so CI builds exactly what ships. Cache mounts keep the
# registry and the build directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    CAMPAIGN_MANAGER_COMMIT="$COMMIT" .ci/build-release /out

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 campaign \
 && useradd --system --uid 10001 --gid 10001 --no-create-home campaign
COPY --from=builder /out/ /usr/local/bin/
USER 10001:10001
# Prometheus metrics, /healthz and /readyz.
EXPOSE 2112
ENV LOG_LEVEL=info
CMD ["campaign-manager"]
