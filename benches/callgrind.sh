#!/usr/bin/env bash
# Instructions per call under callgrind, for every row and column of
# benches/calls.rs, plus compile and cache-hit costs.
#   bash benches/callgrind.sh [N]      (default N=100000)
# Prints "ROW COL INSTR_PER_CALL" lines. Each figure is
# (Ir(N) - Ir(0)) / N: the example prepares everything in every run, so the
# difference is the N calls alone (their loop included: ~2-3 instructions).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
cargo build -q --release --example callgrind_calls
BIN=target/release/examples/callgrind_calls
OUT=$(mktemp -d)
ir() { # args... -> total Ir
    valgrind --tool=callgrind --callgrind-out-file="$OUT/cg.out" "$BIN" "$@" \
        >/dev/null 2>"$OUT/err"
    sed -n 's/^summary: *//p' "$OUT/cg.out"
}
base=$(ir 0 0 0)
rows=(add3 mix8 struct16 sret32 args12)
cols=(a_direct b_aot c_jit_unbound_ptr d_jit_bound_ptr e_jit_bound_frame f_jit_entry g_libffi)
for r in 0 1 2 3 4; do
    for c in 0 1 2 3 4 5 6; do
        t=$(ir "$r" "$c" "$N")
        echo "${rows[$r]} ${cols[$c]} $(python3 -c "print(round(($t-$base)/$N,1))")"
    done
done
NC=$((N / 100))
t=$(ir compile "$NC"); b=$(ir compile 0)
echo "compile h_new_signature $(python3 -c "print(round(($t-$b)/$NC,1))")"
t=$(ir hit "$N"); b=$(ir hit 0)
echo "compile i_cache_hit $(python3 -c "print(round(($t-$b)/$N,1))")"
rm -rf "$OUT"
