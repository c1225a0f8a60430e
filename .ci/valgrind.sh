#!/usr/bin/env bash
# valgrind memcheck over every test binary that executes generated code
# (issue G, robustness): 0 errors and 0 bytes definitely lost, or it fails.
# Not part of .ci/run (about half an hour on 2 cores); run it by hand:
#
#   bash .ci/valgrind.sh [test names...]      (default: all below)
#
# Each binary runs with --test-threads=1 (valgrind serialises threads
# anyway). Child processes are traced too (the C API and README programs,
# the CLI binary), except the toolchain the tests start (gcc and its
# helpers, cargo, nm, objdump). .ci/valgrind.supp suppresses one glibc
# dlopen report with no jitffi frame. Tests that read /proc/self/maps for W^X skip that check under
# valgrind, which maps RWX pages of its own. The differential test runs a
# small count (JITFFI_DIFF_COUNT, default here 100).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "valgrind not installed (apt-get install valgrind)"; exit 2; }

tests=("$@")
if [ ${#tests[@]} -eq 0 ]; then
    tests=(call_smoke exec_callees conformance_x86 closure_x86 capi unwind exec_wx
           stress differential library readme golden_x86 cli)
fi
export JITFFI_DIFF_COUNT=${JITFFI_DIFF_COUNT:-100}
export JITFFI_STRESS_SECS=${JITFFI_STRESS_SECS:-2}
log=target/valgrind
mkdir -p "$log"
args=()
for t in "${tests[@]}"; do args+=(--test "$t"); done
# The lib's unit tests too.
args+=(--lib)
list_bins() {
  cargo test --no-run --message-format=json "$@" 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m.get("profile",{}).get("test"):
        print(m["target"]["name"]+" "+m["executable"])'
}
bins=$(list_bins "${args[@]}")
# The libffi layer's unit tests (closures: pooled blocks, foreign memory).
bins+=$'\n'$(list_bins --features libffi-compat --lib | sed 's/^jitffi /jitffi-libffi-compat /')
fail=0
while read -r name bin; do
    start=$(date +%s)
    rm -f "$log/$name".*.log
    if valgrind --tool=memcheck --error-exitcode=99 --leak-check=full \
        --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --suppressions=.ci/valgrind.supp --trace-children=yes \
        --trace-children-skip='*/cc,*/gcc,*/g++,*/c++,*/cc1,*/cc1plus,*/as,*/ld,*/ld.*,*/collect2,*/cargo,*/rustc,*/nm,*/objdump,*/sh,*/bash' \
        --log-file="$log/$name.%p.log" "$bin" --test-threads=1 >"$log/$name.out" 2>&1; then
        status=ok
    else
        status="FAILED (exit $?)"; fail=1
    fi
    procs=$(ls "$log/$name".*.log | wc -l)
    errors=$(cat "$log/$name".*.log | sed -n 's/.*ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' | awk '{s += $1} END {print s + 0}')
    lost=$(cat "$log/$name".*.log | sed -n 's/.*definitely lost: \([0-9,]*\) bytes.*/\1/p' | tr -d , | awk '{s += $1} END {print s + 0}')
    result=$(grep -E "^test result" "$log/$name.out" | tail -1 || true)
    summary="$procs processes, ${errors:-0} errors, ${lost:-0} bytes definitely lost"
    echo "$name: $status in $(( $(date +%s) - start )) s: $result; $summary"
done <<<"$bins"
exit $fail
