# syntax=docker/dockerfile:1
# Multi-stage build of the service, the tick worker and the operator CLI; small Debian runtime
# image. The simulator and the demo (tools/sim, tools/demo) are development tools, not shipped.
#
#   docker build -t campaign-manager .
#   docker run --rm campaign-manager                      # the service (RPC + events + workers)
#   docker run --rm campaign-manager campaign-worker      # extra tick workers
#   docker run --rm campaign-manager campaign-control queue stats
#
# Configuration is by environment (DATABASE_DSN, REDIS_ADDRESS, RABBITMQ_ADDRESS, ...; see README).

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# Cache mounts keep the registry and the build directory between builds (BuildKit).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p campaign-manager -p campaign-control --bins \
 && mkdir /out \
 && for b in campaign-manager campaign-worker campaign-control; do \
      cp "target/release/$b" /out/; \
    done

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home campaign
COPY --from=builder /out/ /usr/local/bin/
USER campaign
# Prometheus metrics, /healthz and /readyz.
EXPOSE 2112
ENV LOG_LEVEL=info
CMD ["campaign-manager"]
