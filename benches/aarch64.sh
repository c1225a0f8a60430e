#!/usr/bin/env bash
# AArch64 instruction counts per call, under qemu-user (benches/AARCH64.md):
# jitffi versus a direct call versus libffi, for the five forward rows of
# benches/common.rs and for int(int, int) closures.
#
#   bash benches/aarch64.sh [N]        (default N=2000)
#
# qemu's timings mean nothing, so this counts executed guest instructions:
# qemu-user 7.2 (Debian 12) has no TCG plugins, so each run logs every
# executed translation block (`-d nochain,exec`) with one instruction per
# block (`-singlestep`; renamed `-one-insn-per-tb` in qemu 8.1), and the
# count is the number of "Trace" lines. A cell's figure is
# (count(N) - count(0)) / N: examples/qemu_counts.rs prepares and checks
# everything in every run, so the difference is the N calls and their loop.
#
# libffi: the example dlopen()s libffi.so.8 at run time (nothing links it at
# build time). An x86-64 machine has only the amd64 libffi, so this script
# fetches Debian's arm64 package without installing it:
#   dpkg --add-architecture arm64 && apt-get update   (only if needed)
#   apt-get download libffi8:arm64
#   dpkg-deb -x libffi8_*_arm64.deb target/aarch64-libffi
# and hands target/aarch64-libffi/usr/lib/aarch64-linux-gnu to the guest as
# LD_LIBRARY_PATH (qemu's -E, so the host's qemu is not affected). When it
# cannot be had, the libffi columns read "n/a".
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
N=${1:-2000}
TARGET=aarch64-unknown-linux-gnu
SYSROOT=/usr/aarch64-linux-gnu
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo

# ---- toolchain (as .ci/aarch64.sh) --------------------------------------------
need=()
command -v aarch64-linux-gnu-gcc >/dev/null 2>&1 || need+=(gcc-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null 2>&1 || need+=(qemu-user)
if [ ${#need[@]} -gt 0 ]; then
    echo "== installing ${need[*]}" >&2
    $SUDO apt-get update
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y "${need[@]}"
fi
if ! rustup target list --installed | grep -qx "$TARGET"; then
    rustup target add "$TARGET"
fi

# ---- the arm64 libffi, unpacked into target/ (not installed) ------------------
FFIROOT=$ROOT/target/aarch64-libffi
FFILIB=$FFIROOT/usr/lib/aarch64-linux-gnu
if ! ls "$FFILIB"/libffi.so.* >/dev/null 2>&1; then
    echo "== fetching libffi8:arm64" >&2
    tmp=$(mktemp -d)
    chmod 755 "$tmp" # apt's _apt user downloads into it
    fetch() { (cd "$tmp" && apt-get download libffi8:arm64) >&2 2>&1; }
    if ! fetch; then
        if ! dpkg --print-foreign-architectures | grep -qx arm64; then
            $SUDO dpkg --add-architecture arm64
        fi
        $SUDO apt-get update >&2 || true
        fetch || true
    fi
    if ls "$tmp"/libffi8_*_arm64.deb >/dev/null 2>&1; then
        mkdir -p "$FFIROOT"
        dpkg-deb -x "$tmp"/libffi8_*_arm64.deb "$FFIROOT"
    else
        echo "== no arm64 libffi: the libffi columns will be n/a" >&2
    fi
    rm -rf "$tmp"
fi

# ---- build ------------------------------------------------------------------------
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
cargo build -q --release --example qemu_counts --target "$TARGET"
BIN=$ROOT/target/$TARGET/release/examples/qemu_counts

# qemu's flag for one instruction per translation block.
if qemu-aarch64 -h | grep -q -- '-one-insn-per-tb'; then
    ONE=-one-insn-per-tb
else
    ONE=-singlestep
fi
run() { # args... -> runs the example under qemu, no logging
    qemu-aarch64 -L "$SYSROOT" -E "LD_LIBRARY_PATH=$FFILIB" "$BIN" "$@"
}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
count() { # args... -> executed guest instructions (empty when the run fails)
    local fifo=$WORK/log
    rm -f "$fifo"
    mkfifo "$fifo"
    grep -c '^Trace' <"$fifo" >"$WORK/n" &
    local g=$!
    if qemu-aarch64 -L "$SYSROOT" -E "LD_LIBRARY_PATH=$FFILIB" "$ONE" \
        -d nochain,exec -D "$fifo" "$BIN" "$@" >/dev/null 2>"$WORK/err"; then
        wait "$g" || true
        cat "$WORK/n"
    else
        wait "$g" || true
    fi
}
per_call() { # ROW COL -> instructions per call, or n/a
    local b t
    b=$(count "$1" "$2" 0)
    t=$(count "$1" "$2" "$N")
    if [ -z "$b" ] || [ -z "$t" ]; then
        echo n/a
    else
        python3 -c "print(f'{($t - $b) / $N:.1f}')"
    fi
}
ratio() { # A B -> A / B, or n/a
    python3 -c "
a, b = '$1', '$2'
print('n/a' if 'n/a' in (a, b) else f'{float(a) / float(b):.2f}')"
}

echo "== $(qemu-aarch64 --version | head -1); N=$N; $ONE -d nochain,exec" >&2
run check >&2

echo "## Forward calls: instructions per call (AArch64, qemu-user, N=$N)"
echo
echo "| row | direct | jitffi ptr | jitffi frame | libffi | ptr/direct | frame/direct | libffi/ptr |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for row in add3 mix8 struct16 sret32 args12; do
    d=$(per_call "$row" direct)
    p=$(per_call "$row" jit_ptr)
    f=$(per_call "$row" jit_frame)
    l=$(per_call "$row" libffi)
    echo "| $row | $d | $p | $f | $l | $(ratio "$p" "$d") | $(ratio "$f" "$d") | $(ratio "$l" "$p") |"
done
echo
echo "## Closures, int(int, int): instructions per operation"
echo
echo "| operation | direct | jitffi | libffi | jitffi/direct | libffi/jitffi |"
echo "|---|---:|---:|---:|---:|---:|"
d=$(per_call upcall direct)
j=$(per_call upcall jitffi)
l=$(per_call upcall libffi)
echo "| upcall | $d | $j | $l | $(ratio "$j" "$d") | $(ratio "$l" "$j") |"
j=$(per_call create jitffi)
l=$(per_call create libffi)
echo "| create + free | — | $j | $l | — | $(ratio "$l" "$j") |"
