# Ferrum, an Electrum server for Bitcoin Core.
#
#   docker build -t localhost/ferrum:0.1.0 .
#   docker run -d --name ferrum -v ferrum-data:/data -p 50002:50002 \
#       -e DAEMON_URL=http://USER:PASSWORD@NODE-HOST:8332 localhost/ferrum:0.1.0
#
# The configuration is ElectrumX's environment (DAEMON_URL, NET, SERVICES, SSL_CERTFILE...) or
# Ferrum's own (FERRUM_*); see docs/install.md. Needs BuildKit (Docker 23+, or buildx).
#
# The base images are arguments: a Rust toolchain on Debian bookworm for the build (the locked
# dependencies need Rust 1.88 or newer), Debian bookworm for the image users get. Where Docker
# Hub cannot be reached, give local images of the same contents (scripts/docker-e2e.sh makes
# them with debootstrap).
ARG BUILDER_IMAGE=rust:1-bookworm
ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM ${BUILDER_IMAGE} AS builder
# libclang generates RocksDB's bindings; g++ and make build RocksDB, which is linked statically.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends libclang-dev g++ make pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The target directory is a cache mount, so the binary is copied out in the same step.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p ferrum \
 && install -D -m 0755 target/release/ferrum /out/ferrum \
 && strip /out/ferrum

# Only libc and libstdc++ are needed at run time; both are in the base image.
FROM ${RUNTIME_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="Ferrum" \
      org.opencontainers.image.description="An Electrum server for Bitcoin Core, a drop-in replacement for ElectrumX" \
      org.opencontainers.image.source="https://github.com/ferrum-electrum/ferrum" \
      org.opencontainers.image.url="https://github.com/ferrum-electrum/ferrum" \
      org.opencontainers.image.documentation="https://github.com/ferrum-electrum/ferrum/blob/main/docs/install.md" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"

# /data/index exists in the image so that a volume mounted there (BTCPay's fragment keeps the
# index in a volume of its own) starts out owned by ferrum.
RUN groupadd --gid 1000 ferrum \
 && useradd --uid 1000 --gid ferrum --home-dir /data --no-create-home --shell /usr/sbin/nologin ferrum \
 && install -d -o ferrum -g ferrum -m 0750 /data /data/index
COPY --from=builder /out/ferrum /usr/local/bin/ferrum

# The index (/data/index) and the self-signed TLS certificate (ferrum.crt, ferrum.key) live in
# /data. The admin RPC listens on the container's loopback only: `docker exec CONTAINER ferrum
# rpc getinfo`. (Other containers cannot reach it; to publish it, set SERVICES with
# rpc://0.0.0.0:8000 and publish it on the host's loopback only, -p 127.0.0.1:8000:8000.)
ENV DB_DIRECTORY=/data \
    SERVICES=tcp://:50001,ssl://:50002,wss://:50004,rpc:// \
    FERRUM_HTTP=0.0.0.0:8080
VOLUME ["/data"]
WORKDIR /data
# Numeric, so that runtimes checking for a non-root user (runAsNonRoot) can tell: ferrum:ferrum.
USER 1000:1000

# 50001 Electrum TCP, 50002 Electrum TLS, 50004 secure WebSocket, 8080 status page, /metrics
# and /health.
EXPOSE 50001 50002 50004 8080

# SIGTERM: Ferrum finishes the chunk it is writing and exits (give it time: docker stop -t 120).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["ferrum", "rpc", "getinfo"]
ENTRYPOINT ["ferrum"]
