# Sourced by benches/compat_callgrind.sh and benches/compat_time.sh (from
# the repository root): builds libjitffi.so with the libffi layer and the
# -lffi program both run (benches/c/compat_counts.c); sets $so and $bin.
cargo build --release --lib --features libffi-compat >&2
so=target/release/libjitffi.so
[ "$(nm -D "$so" | grep -c " T ffi_call")" -gt 0 ] || { echo "$so lacks the libffi layer" >&2; exit 1; }
bin=target/compat_counts
gcc -O2 -Wall benches/c/compat_counts.c -o "$bin" -lffi
