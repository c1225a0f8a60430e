//! Call-overhead benchmarks: five signatures (rows), each called seven ways
//! (columns), plus the cost of compiling a new signature and of a cache
//! hit. See `benches/RESULTS.md` for the columns, the commands and the
//! results.
//!
//! Run: `cargo bench --bench calls` (about 2–3 minutes).

#[cfg(all(target_arch = "x86_64", not(windows)))]
mod common;

#[cfg(all(target_arch = "x86_64", not(windows)))]
mod x86 {
    use std::hint::black_box;
    use std::time::Duration;

    use criterion::{BatchSize, Criterion};
    use jitffi::call::{ArgMode, Trampoline};
    use jitffi::Abi;

    use super::common::{self, Case, Out, COLS, ROWS};

    pub fn config() -> Criterion {
        Criterion::default()
            .warm_up_time(Duration::from_millis(400))
            .measurement_time(Duration::from_millis(1500))
            .sample_size(30)
    }

    pub fn calls(c: &mut Criterion) {
        let v = common::values();
        let mut cases: Vec<Case> = (0..ROWS.len()).map(|r| Case::new(r, &v)).collect();
        common::self_check(&mut cases, &v);
        for case in cases.iter_mut() {
            let row = case.row;
            let mut g = c.benchmark_group(ROWS[row]);
            let mut out = Out::default();
            g.bench_function(COLS[0], |b| b.iter(|| common::direct(row, &v, &mut out)));
            // Each column its own monomorphised loop, so the loop body is
            // exactly that column's call sequence.
            col::<1>(&mut g, case);
            col::<2>(&mut g, case);
            col::<3>(&mut g, case);
            col::<4>(&mut g, case);
            col::<5>(&mut g, case);
            col::<6>(&mut g, case);
            g.finish();
        }
    }

    fn col<const C: usize>(
        g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
        case: &mut Case,
    ) {
        g.bench_function(COLS[C], |b| b.iter(|| case.call(C)));
    }

    pub fn compile(c: &mut Criterion) {
        let decls = common::distinct_decls();
        let sigs: Vec<_> = decls
            .iter()
            .map(|d| {
                jitffi::cdecl::parse_signature(d, Abi::SysV64)
                    .unwrap_or_else(|e| panic!("{d}: {e}"))
            })
            .collect();
        let mut g = c.benchmark_group("compile");
        // (h) a signature not in the cache: plan + validate + emit +
        // install. Every trampoline is dropped after its batch, so its cache
        // entry is dead and the next compile of that signature misses too;
        // cycling through 1554 distinct signatures varies the work.
        let mut k = 0usize;
        g.bench_function("h_new_signature", |b| {
            b.iter_batched(
                || {
                    k = (k + 1) % sigs.len();
                    &sigs[k]
                },
                |sig| Trampoline::compile(sig, ArgMode::Pointers, None).unwrap(),
                BatchSize::SmallInput,
            )
        });
        // (h') the same, starting from the C text.
        let mut k = 0usize;
        g.bench_function("h2_parse_and_compile", |b| {
            b.iter_batched(
                || {
                    k = (k + 1) % decls.len();
                    decls[k].as_str()
                },
                |d| {
                    let sig = jitffi::cdecl::parse_signature(d, Abi::SysV64).unwrap();
                    Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap()
                },
                BatchSize::SmallInput,
            )
        });
        // (i) a cache hit: the signature's code is alive.
        let sig = jitffi::cdecl::parse_signature(common::DECLS[4], Abi::SysV64).unwrap();
        let keep = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
        g.bench_function("i_cache_hit", |b| {
            b.iter(|| Trampoline::compile(black_box(&sig), ArgMode::Pointers, None).unwrap())
        });
        drop(keep);
        g.finish();
    }
}

#[cfg(all(target_arch = "x86_64", not(windows)))]
criterion::criterion_group! {
    name = benches;
    config = x86::config();
    targets = x86::calls, x86::compile
}

#[cfg(all(target_arch = "x86_64", not(windows)))]
criterion::criterion_main!(benches);

#[cfg(not(all(target_arch = "x86_64", not(windows))))]
fn main() {
    eprintln!("jitffi trampolines execute only on x86-64 SysV hosts so far");
}
