# syntax=docker/dockerfile:1
# The `gatehouse` image the Helm chart (charts/gatehouse) runs. `make image` builds it with the
# two demo servers' images (examples/ext-authz, examples/echo); by hand:
#   docker build -t ghcr.io/gatehouse-dev/gatehouse:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 -t ... .   (multi-arch)
# The build stage runs on the builder's platform and cross-compiles for TARGETARCH (set per
# platform by --platform; docker/rust-target.sh), so no emulated rustc. Builder: the workspace's
# rust-version (Cargo.toml) on Debian 12; the runtime is distroless cc-debian12 (glibc, libgcc
# and libstdc++ — RE2 is linked statically, its C++ runtime is not; no shell) as the nonroot
# user 65532, which the chart's securityContext expects.

FROM --platform=$BUILDPLATFORM rust:1.92-bookworm AS build
ARG TARGETARCH
# The commit `gatehouse version` reports (build.rs): the build context has no .git.
ARG GATEHOUSE_GIT_COMMIT=""
COPY docker/rust-target.sh /usr/local/bin/rust-target
# RE2 (static archive + headers) of the target arch: build.rs links it to validate regexes as
# Envoy does.
RUN rust-target setup "$TARGETARCH" libre2-dev
WORKDIR /src
# The whole workspace: every member's manifest must exist for cargo to resolve it.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,sharing=locked \
    eval "$(rust-target env "$TARGETARCH")" && triple="$(rust-target triple "$TARGETARCH")" \
    && cargo build --release --locked --target "$triple" -p gatehouse --bin gatehouse \
    && install -D -m 0755 "target/$triple/release/gatehouse" /out/gatehouse

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/gatehouse /gatehouse
USER 65532:65532
# xDS (ADS over gRPC) and the admin endpoint (/healthz, /readyz, /metrics).
EXPOSE 18000 19001
ENTRYPOINT ["/gatehouse"]
CMD ["controller"]
