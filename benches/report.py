#!/usr/bin/env python3
"""Markdown tables from a `cargo bench --bench calls` run (criterion's
target/criterion/*/*/new/estimates.json medians) and, optionally, the output
of `bash benches/callgrind.sh` (instructions per call).

    python3 benches/report.py [CALLGRIND_OUTPUT_FILE]
"""
import json
import os
import sys

ROWS = ["add3", "mix8", "struct16", "sret32", "args12"]
COLS = ["a_direct", "b_aot", "c_jit_unbound_ptr", "d_jit_bound_ptr",
        "e_jit_bound_frame", "f_jit_entry", "g_libffi"]
JIT = COLS[2:6]
ROOT = os.path.join(os.path.dirname(__file__), "..", "target", "criterion")


def median(group, name):
    p = os.path.join(ROOT, group, name, "new", "estimates.json")
    with open(p) as f:
        return json.load(f)["median"]["point_estimate"]


def tables(get, unit, fmt):
    out = [f"| row | " + " | ".join(c for c in COLS) + " |",
           "|---|" + "---:|" * len(COLS)]
    for r in ROWS:
        out.append(f"| {r} | " + " | ".join(fmt(get(r, c)) for c in COLS) + " |")
    out.append("")
    out.append(f"Ratios ({unit}): each jitffi column c–f over the direct call "
               "(a) and over the AOT wrapper (b); libffi (g) over each jitffi column.")
    out.append("")
    out.append("| row | " + " | ".join(f"{c[0]}/a" for c in JIT) + " | "
               + " | ".join(f"{c[0]}/b" for c in JIT) + " | "
               + " | ".join(f"g/{c[0]}" for c in JIT) + " |")
    out.append("|---|" + "---:|" * (3 * len(JIT)))
    for r in ROWS:
        a, b, g = get(r, COLS[0]), get(r, COLS[1]), get(r, COLS[6])
        cells = [f"{get(r, c) / a:.2f}" for c in JIT]
        cells += [f"{get(r, c) / b:.2f}" for c in JIT]
        cells += [f"{g / get(r, c):.1f}" for c in JIT]
        out.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main():
    print("### Wall clock: criterion medians, ns per call\n")
    print(tables(median, "wall clock", lambda x: f"{x:.2f}"))
    print()
    print("| compile | median |")
    print("|---|---:|")
    for name in ["h_new_signature", "h2_parse_and_compile", "i_cache_hit"]:
        ns = median("compile", name)
        print(f"| {name} | {ns / 1000:.2f} µs |" if ns > 1000 else f"| {name} | {ns:.0f} ns |")
    if len(sys.argv) > 1:
        cg = {}
        with open(sys.argv[1]) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 3:
                    cg[(parts[0], parts[1])] = float(parts[2])
        print("\n### Callgrind: instructions per call\n")
        print(tables(lambda r, c: cg[(r, c)], "instructions", lambda x: f"{x:.1f}"))
        print()
        print("| compile | instructions |")
        print("|---|---:|")
        for name in ["h_new_signature", "i_cache_hit"]:
            print(f"| {name} | {cg[('compile', name)]:.0f} |")


main()
