#!/usr/bin/env bash
# Instruction counts (valgrind callgrind, deterministic) of libffi's API
# through the system libffi and through jitffi's libffi-compatible layer:
# the same gcc-compiled program (benches/c/compat_counts.c, linked with
# -lffi) run as is and with LD_PRELOAD=target/release/libjitffi.so.
# Prints instructions per operation, (count(N) - count(0)) / N, and the
# ratio. Results: benches/COMPAT.md.
#
#   bash benches/compat_callgrind.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000}
. benches/compat_build.sh
count() { # preload case n
    LD_PRELOAD=$1 valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        "$bin" "$2" "$3" 2>&1 >/dev/null |
        sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
printf "%-10s %10s %10s %8s\n" "case" "libffi" "jitffi" "ratio"
for c in add3 mix8 struct16 sret32 args12 create upcall; do
    f0=$(count "" "$c" 0); f1=$(count "" "$c" "$N")
    j0=$(count "$PWD/$so" "$c" 0); j1=$(count "$PWD/$so" "$c" "$N")
    python3 - "$c" "$f0" "$f1" "$j0" "$j1" "$N" <<'PY'
import sys
c, f0, f1, j0, j1, n = sys.argv[1], *map(int, sys.argv[2:])
f, j = (f1 - f0) / n, (j1 - j0) / n
print(f"{c:<10} {f:10.1f} {j:10.1f} {f / j:7.2f}x")
PY
done
