#!/usr/bin/env bash
# The long differential run (issue G): CHUNKS processes of CHUNK signatures
# each, with consecutive seeds from BASE, gcc at -O${OPT:-0} (the ABI does
# not depend on the level; -O0 compiles about 3x faster). One process per
# chunk keeps memory bounded (closure bodies are cached per signature for
# the life of a process). Appends each chunk's summary to LOG.
#
#   BASE=20261204000000 CHUNK=25000 CHUNKS=40 bash tests/diff/long_run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
BASE=${BASE:-20261204000000}
CHUNK=${CHUNK:-25000}
CHUNKS=${CHUNKS:-40}
START=${START:-0}
LOG=${LOG:-target/differential-long.log}
cargo test --release --test differential --no-run 2>/dev/null
bin=$(cargo test --release --test differential --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m.get("executable") and m["target"]["name"]=="differential": print(m["executable"])')
# A copy, so that rebuilding the tests during the run does not swap it.
cp "$bin" target/differential-long-bin
bin=target/differential-long-bin
echo "binary: $(git rev-parse --short HEAD)$(git diff --quiet || echo -dirty); base seed $BASE, $CHUNKS chunks of $CHUNK" | tee -a "$LOG"
for ((k = START; k < CHUNKS; k++)); do
  seed=$((BASE + k * CHUNK))
  t0=$(date +%s)
  if out=$(JITFFI_DIFF_SEED=$seed JITFFI_DIFF_COUNT=$CHUNK JITFFI_DIFF_OPT=${OPT:-0} \
      "$bin" --nocapture 2>&1); then status=ok; else status=FAILED; fi
  t1=$(date +%s)
  summary=$(grep -E "signatures, [0-9]+ mismatches" <<<"$out" | tail -1)
  echo "chunk $k seed $seed: $status in $((t1 - t0)) s: $summary" | tee -a "$LOG"
  if [[ $status != ok ]]; then
    grep -A3 MISMATCH <<<"$out" | head -60 | tee -a "$LOG"
    tail -20 <<<"$out" >>"$LOG"
  fi
done
