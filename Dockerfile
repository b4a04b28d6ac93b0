# syntax=docker/dockerfile:1
# The `gatehouse` image the Helm chart (charts/gatehouse) runs:
#   docker build -t ghcr.io/gatehouse-dev/gatehouse:0.1.0 .
# Builder: the workspace's rust-version (Cargo.toml) on Debian 12; the runtime is distroless
# cc-debian12 (glibc, libgcc and libstdc++ — RE2 is linked statically, its C++ runtime is
# not; no shell) as the nonroot user 65532, which the chart's securityContext expects.

FROM rust:1.92-bookworm AS build
# RE2 (static archive + headers): build.rs links it to validate regexes as Envoy does.
RUN apt-get update && apt-get install -y --no-install-recommends libre2-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole workspace: every member's manifest must exist for cargo to resolve it.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p gatehouse --bin gatehouse \
    && install -D -m 0755 target/release/gatehouse /out/gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /gatehouse
USER 65532:65532
# xDS (ADS over gRPC) and the admin endpoint (/healthz, /readyz, /metrics).
EXPOSE 18000 19001
ENTRYPOINT ["/gatehouse"]
CMD ["controller"]
