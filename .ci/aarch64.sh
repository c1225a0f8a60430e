#!/usr/bin/env bash
# AArch64 test suite: cross-compiles every test for aarch64-unknown-linux-gnu
# and runs it under qemu-user (the runner and linker are in
# .cargo/config.toml). Installs what a fresh Debian machine lacks.
#
#   bash .ci/aarch64.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=aarch64-unknown-linux-gnu

need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    echo "== rustup target add $TARGET"
    rustup target add "$TARGET"
fi

echo "== toolchain"
aarch64-linux-gnu-gcc --version | head -1
qemu-aarch64 --version | head -1

# Tests that compile C for the target use this compiler (the cc crate and
# tests/call_aarch64.rs read CC_<target>).
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
# The sysroot the dynamic loader is found in under qemu (libloading, dlopen).
export QEMU_LD_PREFIX=/usr/aarch64-linux-gnu

# The differential test's second oracle (tests/diff/ffi.rs) dlopen()s
# Debian's arm64 libffi at run time from target/aarch64-libffi (nothing
# links it at build time); fetch and unpack it, without installing it, as
# benches/aarch64.sh does. Without it the test runs the gcc oracle only.
FFILIB=target/aarch64-libffi/usr/lib/aarch64-linux-gnu
if ! ls "$FFILIB"/libffi.so.8 >/dev/null 2>&1; then
    echo "== fetching libffi8:arm64 into target/aarch64-libffi"
    ffitmp=$(mktemp -d)
    chmod 755 "$ffitmp" # apt's _apt user downloads into it
    ffifetch() { (cd "$ffitmp" && apt-get download libffi8:arm64) 2>&1; }
    if ! ffifetch; then
        FSUDO=""
        [ "$(id -u)" -ne 0 ] && FSUDO=sudo
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            $FSUDO dpkg --add-architecture arm64
        fi
        $FSUDO apt-get update || true
        ffifetch || true
    fi
    if ls "$ffitmp"/libffi8_*_arm64.deb >/dev/null 2>&1; then
        mkdir -p target/aarch64-libffi
        dpkg-deb -x "$ffitmp"/libffi8_*_arm64.deb target/aarch64-libffi
    else
        echo "== no arm64 libffi: the differential test runs the gcc oracle only"
    fi
    rm -rf "$ffitmp"
fi
# Signatures the differential test (tests/differential.rs) runs in this
# stage: about 30 s in a debug build under qemu on a 2-core machine (a
# fresh seed each run, printed first; docs/differential.md).
export JITFFI_DIFF_COUNT=${JITFFI_DIFF_COUNT:-200}

echo "== aarch64 test suite (cargo test --target $TARGET, under qemu-aarch64)"
start=$(date +%s)
cargo test --target "$TARGET" "$@" 2>&1
echo "== aarch64 suite took $(( $(date +%s) - start )) s"

# ==== stage: libffi-compatible layer on AArch64 ==================================
# libffi's own testsuite through src/ffi_compat, jitffi vs Debian's arm64
# libffi 3.4 (tests/libffi_testsuite.rs, docs/libffi-compat.md). The
# reference libffi and its headers (libffi8:arm64, libffi-dev:arm64) are
# fetched with `apt-get download` and unpacked into target/aarch64-libffi,
# never installed (as benches/aarch64.sh does for libffi8).
echo "== libffi testsuite on AArch64 (jitffi vs Debian's arm64 libffi, under qemu)"
ffi_start=$(date +%s)
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
if ! command -v aarch64-linux-gnu-g++ >/dev/null 2>&1; then
    echo "== installing g++-aarch64-linux-gnu (the testsuite's .cc tests)"
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y g++-aarch64-linux-gnu
fi
FFIROOT=$(pwd)/${CARGO_TARGET_DIR:-target}/aarch64-libffi
case ${CARGO_TARGET_DIR:-} in /*) FFIROOT=$CARGO_TARGET_DIR/aarch64-libffi ;; esac
export LIBFFI_AARCH64_ROOT=$FFIROOT # where tests/libffi_testsuite.rs looks
if [ ! -e "$FFIROOT/usr/include/aarch64-linux-gnu/ffi.h" ] ||
    [ ! -e "$FFIROOT/usr/lib/aarch64-linux-gnu/libffi.so" ]; then
    echo "== fetching libffi8:arm64 and libffi-dev:arm64 into $FFIROOT"
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt's _apt user downloads into it
    fetch() { (cd "$tmp" && apt-get download libffi8:arm64 libffi-dev:arm64); }
    if ! fetch; then
        # A fresh machine: arm64 not yet a foreign architecture, or no
        # package lists for it.
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            $SUDO dpkg --add-architecture arm64
        fi
        $SUDO apt-get update
        fetch
    fi
    mkdir -p "$FFIROOT"
    for deb in "$tmp"/*.deb; do dpkg-deb -x "$deb" "$FFIROOT"; done
    rm -rf "$tmp"
fi
# The cdylib first (the test refuses a libjitffi.so older than the rlib).
cargo build --release --lib --target "$TARGET" --features libffi-compat 2>&1
cargo test --release --target "$TARGET" --features libffi-compat \
    --test libffi_testsuite -- --nocapture 2>&1
echo "== libffi testsuite on AArch64 took $(( $(date +%s) - ffi_start )) s"
