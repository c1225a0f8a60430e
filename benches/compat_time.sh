#!/usr/bin/env bash
# Wall-clock time per operation of libffi's API through the system libffi
# and through jitffi's libffi-compatible layer: the program of
# benches/compat_callgrind.sh (benches/c/compat_counts.c, linked with -lffi)
# run as is and with LD_PRELOAD=target/release/libjitffi.so, the two
# alternating, R runs of N operations each; prints the best (least
# disturbed) run of each and the ratio. A companion to the instruction
# counts and to criterion (benches/compat.rs); results: benches/COMPAT.md.
#
#   bash benches/compat_time.sh [N] [R] [CASES...]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-300000}
R=${2:-15}
shift 2 2>/dev/null || shift $#
cases=("$@")
[ ${#cases[@]} -gt 0 ] || cases=(add3 mix8 struct16 sret32 args12 create upcall)
. benches/compat_build.sh
printf "%-10s %12s %12s %8s\n" "case" "libffi ns" "jitffi ns" "ratio"
for c in "${cases[@]}"; do
    f=() j=()
    for _ in $(seq "$R"); do
        f+=("$("$bin" "$c" "$N" | sed -n 's/ ns\/op//p')")
        j+=("$(LD_PRELOAD="$PWD/$so" "$bin" "$c" "$N" | sed -n 's/ ns\/op//p')")
    done
    python3 - "$c" "${f[*]}" "${j[*]}" <<'PY'
import sys
c, f, j = sys.argv[1], min(map(float, sys.argv[2].split())), min(map(float, sys.argv[3].split()))
print(f"{c:<10} {f:12.2f} {j:12.2f} {f / j:7.2f}x")
PY
done
