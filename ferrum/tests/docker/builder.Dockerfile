# A stand-in for the official Rust image (rust:1-bookworm) where Docker Hub cannot be reached:
# Debian bookworm with the build packages and the Rust toolchain of the machine that builds it,
# so that the project's Dockerfile can be built unchanged (scripts/docker-e2e.sh).
#
#   docker build --build-arg BASE_IMAGE=... -f builder.Dockerfile CONTEXT
#
# where CONTEXT holds rust/ (a toolchain: bin, lib, libexec, etc) and ca-certificates/ (the
# machine's extra certificate authorities, for its way to crates.io; may be empty).
ARG BASE_IMAGE=debian:bookworm
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libclang-dev g++ make pkg-config \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates/ /usr/local/share/ca-certificates/
RUN update-ca-certificates
COPY rust/ /usr/local/rust/
ENV CARGO_HOME=/usr/local/cargo \
    PATH=/usr/local/cargo/bin:/usr/local/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN rustc --version && cargo --version
