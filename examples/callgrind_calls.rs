//! Runs one benchmark row through one column N times, for instruction
//! counts under callgrind (the noise-free second opinion to
//! `benches/calls.rs`; see `benches/RESULTS.md` and `benches/callgrind.sh`).
//!
//! ```text
//! callgrind_calls ROW COL N      ROW in 0..5, COL in 0..7 (a..g), N calls
//! callgrind_calls compile N      N compiles of distinct signatures
//! callgrind_calls hit N          N cache hits
//! ```
//!
//! All rows and columns are prepared (trampolines compiled, cifs prepared)
//! in every run, whatever is selected, so that
//! `(Ir(N) - Ir(0)) / N` is the cost of one call alone.

#[cfg(all(target_arch = "x86_64", not(windows)))]
#[path = "../benches/common.rs"]
mod common;

#[cfg(all(target_arch = "x86_64", not(windows)))]
fn main() {
    use jitffi::call::{ArgMode, Trampoline};
    use jitffi::Abi;
    use std::hint::black_box;

    let argv: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: callgrind_calls ROW COL N | compile N | hit N";
    let num = |s: Option<&String>| -> usize {
        s.and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            eprintln!("{usage}");
            std::process::exit(2)
        })
    };
    let v = common::values();
    let mut cases: Vec<common::Case> = (0..common::ROWS.len())
        .map(|r| common::Case::new(r, &v))
        .collect();
    common::self_check(&mut cases, &v);
    let hit_sig = cases[4].sig.clone();
    match argv.first().map(String::as_str) {
        Some("compile") => {
            let n = num(argv.get(1));
            let sigs: Vec<_> = common::distinct_decls()
                .iter()
                .map(|d| jitffi::cdecl::parse_signature(d, Abi::SysV64).unwrap())
                .collect();
            for k in 0..n {
                let t = Trampoline::compile(&sigs[k % sigs.len()], ArgMode::Pointers, None);
                black_box(t.unwrap());
            }
        }
        Some("hit") => {
            let n = num(argv.get(1));
            for _ in 0..n {
                let t = Trampoline::compile(black_box(&hit_sig), ArgMode::Pointers, None);
                black_box(t.unwrap());
            }
        }
        _ => {
            let row = num(argv.first());
            let col = num(argv.get(1));
            let n = num(argv.get(2));
            if row >= common::ROWS.len() || col >= common::COLS.len() {
                eprintln!("{usage}");
                std::process::exit(2);
            }
            let case = &mut cases[row];
            match col {
                0 => match row {
                    0 => direct::<0>(&v, n),
                    1 => direct::<1>(&v, n),
                    2 => direct::<2>(&v, n),
                    3 => direct::<3>(&v, n),
                    _ => direct::<4>(&v, n),
                },
                1 => dynamic::<1>(case, n),
                2 => dynamic::<2>(case, n),
                3 => dynamic::<3>(case, n),
                4 => dynamic::<4>(case, n),
                5 => dynamic::<5>(case, n),
                _ => dynamic::<6>(case, n),
            }
        }
    }
}

/// N direct calls of row R, in a loop of their own.
#[cfg(all(target_arch = "x86_64", not(windows)))]
#[inline(never)]
fn direct<const R: usize>(v: &common::Values, n: usize) {
    let mut out = common::Out::default();
    for _ in 0..n {
        common::direct(R, v, &mut out);
    }
}

/// N calls through column C, in a loop of their own.
#[cfg(all(target_arch = "x86_64", not(windows)))]
#[inline(never)]
fn dynamic<const C: usize>(case: &mut common::Case, n: usize) {
    for _ in 0..n {
        case.call(C);
    }
}

#[cfg(not(all(target_arch = "x86_64", not(windows))))]
fn main() {
    eprintln!("jitffi trampolines execute only on x86-64 SysV hosts so far");
}
