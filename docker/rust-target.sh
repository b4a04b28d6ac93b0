#!/bin/sh
# Cross-compilation set-up of the images' build stages. The build stage runs on the machine's
# own platform (BUILDPLATFORM) and compiles for TARGETARCH (the Docker/Podman build argument
# that `--platform linux/amd64,linux/arm64` sets per image), so a multi-arch build needs no
# emulation of rustc.
#
#   rust-target.sh triple ARCH          the Rust target triple of a Debian/Docker arch
#   rust-target.sh setup ARCH [PKG...]  installs the C/C++ cross toolchain (when ARCH is not the
#                                       build machine's), PKG:ARCH and the Rust target
#   rust-target.sh env ARCH             `export` lines pointing cargo and cc at that toolchain
#
# ARCH empty means the build machine's own (a builder without BuildKit sets no TARGETARCH).
set -eu

usage() {
    echo "usage: $0 triple|setup|env ARCH [PKG...]" >&2
    exit 2
}

[ $# -ge 1 ] || usage
cmd=$1
shift
arch=${1:-}
[ $# -ge 1 ] && shift
build_arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
[ -n "$arch" ] || arch=$build_arch

case "$arch" in
    amd64) gnu=x86_64-linux-gnu; triple=x86_64-unknown-linux-gnu ;;
    arm64) gnu=aarch64-linux-gnu; triple=aarch64-unknown-linux-gnu ;;
    *) echo "rust-target: unsupported architecture '$arch' (amd64 or arm64)" >&2; exit 1 ;;
esac
cross=false
[ "$arch" = "$build_arch" ] || cross=true

case "$cmd" in
    triple)
        echo "$triple"
        ;;
    setup)
        pkgs=""
        for p in "$@"; do pkgs="$pkgs $p:$arch"; done
        if $cross; then
            dpkg --add-architecture "$arch"
            pkgs="$pkgs g++-$gnu libc6-dev-$arch-cross"
        fi
        if [ -n "$pkgs" ]; then
            apt-get update
            # shellcheck disable=SC2086 # one word per package
            apt-get install -y --no-install-recommends $pkgs
            rm -rf /var/lib/apt/lists/*
        fi
        rustup target add "$triple"
        ;;
    env)
        if $cross; then
            upper=$(echo "$triple" | tr 'a-z-' 'A-Z_')
            lower=$(echo "$triple" | tr '-' '_')
            echo "export CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
            echo "export CC_${lower}=$gnu-gcc CXX_${lower}=$gnu-g++ AR_${lower}=$gnu-ar"
        fi
        ;;
    *) usage ;;
esac
