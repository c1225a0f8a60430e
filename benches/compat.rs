//! The libffi-compatible layer against libffi itself (issue E, section 3):
//! `ffi_call` on the five forward rows of `benches/rows.rs`, closure
//! creation + free, and a closure upcall, each through
//!
//! - `libjitffi.so` built with the `libffi-compat` feature, opened as a
//!   libffi (its `ffi_prep_cif`, `ffi_call`, `ffi_closure_alloc`, ... and
//!   its own `ffi_type_*` globals), exactly what an unmodified libffi
//!   program gets with `LD_PRELOAD`;
//! - the system libffi (`libffi.so.8`), opened the same way;
//! - a direct call, for scale.
//!
//! Both libraries are `dlopen`ed locally by `src/cli/libffi_dyn.rs` (this
//! binary links neither), so each cif is prepared with its own library's
//! type descriptors and calls cannot cross over.
//!
//! Run (cargo does not relink the cdylib for a benchmark, hence the first
//! command; the feature on the second only keeps a plain `cargo bench` from
//! running this one without it):
//!
//! ```text
//! cargo build --release --lib --features libffi-compat
//! cargo bench --features libffi-compat --bench compat
//! ```
//!
//! `JITFFI_COMPAT_LIB=path` picks another build. Results and ratios:
//! benches/COMPAT.md.

#[allow(dead_code)]
#[path = "../src/cli/libffi_dyn.rs"]
mod libffi_dyn;
#[path = "rows.rs"]
mod rows;

use std::ffi::c_void;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jitffi::types::{Abi, Scalar, Signature, Type};
use libffi_dyn::{Libffi, PreparedCif};
use rows::{arg_ptrs, direct, direct_add, direct_result, ffi_add, values, AddFn, Out, DECLS, ROWS};

/// `libjitffi.so`: `JITFFI_COMPAT_LIB`, else next to this benchmark's
/// `deps/` directory (where cargo puts the cdylib of the same build).
fn compat_lib_path() -> PathBuf {
    if let Some(p) = std::env::var_os("JITFFI_COMPAT_LIB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|deps| deps.parent())
        .map(|dir| dir.join("libjitffi.so"))
        .expect("the benchmark binary lives in target/<profile>/deps")
}

/// The two libraries: (name, library).
fn libraries() -> Vec<(&'static str, Arc<Libffi>)> {
    let path = compat_lib_path();
    let jit = Libffi::open_named(&path.to_string_lossy()).unwrap_or_else(|| {
        panic!(
            "{} does not export libffi's API: build it with \
             `cargo build --release --lib --features libffi-compat` \
             first",
            path.display()
        )
    });
    let sys = Libffi::open().expect("no system libffi (libffi.so.8) to compare with");
    vec![("jitffi_compat", jit), ("libffi", sys)]
}

fn ffi_call_rows(c: &mut Criterion) {
    let libs = libraries();
    let v = values();
    for (row, name) in ROWS.iter().enumerate() {
        let sig = jitffi::cdecl::parse_signature(DECLS[row], Abi::SysV64)
            .unwrap_or_else(|e| panic!("{}: {e}", DECLS[row]));
        let target = rows::target(row);
        let args = arg_ptrs(row, &v);
        let want = direct_result(row, &v);
        let cifs: Vec<(&str, PreparedCif)> = libs
            .iter()
            .map(|(n, l)| (*n, l.prepare(&sig).unwrap_or_else(|e| panic!("{n}: {e}"))))
            .collect();
        let mut ret = [0u128; 4];
        // Every column must compute the direct call's result.
        for (n, cif) in &cifs {
            ret = [0; 4];
            // SAFETY: the cif was prepared for the row's signature, `target`
            // is its callee, `args` points at its values, `ret` has 64 bytes.
            unsafe { cif.call(target, args.as_ptr(), ret.as_mut_ptr().cast()) };
            // SAFETY: ret is 64 initialised bytes; want is at most 32.
            let got = unsafe { std::slice::from_raw_parts(ret.as_ptr().cast::<u8>(), want.len()) };
            assert_eq!(got, &want[..], "{name} through {n}");
        }

        let mut g = c.benchmark_group(format!("compat/{name}"));
        let mut out = Out::default();
        g.bench_function("a_direct", |b| b.iter(|| direct(row, &v, &mut out)));
        for (col, (n, cif)) in cifs.iter().enumerate() {
            let rp = ret.as_mut_ptr().cast::<c_void>();
            let label = format!("{}_{n}_ffi_call", (b'b' + col as u8) as char);
            g.bench_function(label, |b| {
                // SAFETY: as in the check above.
                b.iter(|| unsafe { cif.call(black_box(target), black_box(args.as_ptr()), rp) })
            });
        }
        g.finish();
    }
}

fn closures(c: &mut Criterion) {
    let libs = libraries();
    let int = Type::Scalar(Scalar::I32);
    let sig = Signature::new(Abi::SysV64, int.clone(), vec![int.clone(), int]);
    let cifs: Vec<(&str, PreparedCif)> = libs
        .iter()
        .map(|(n, l)| (*n, l.prepare(&sig).unwrap_or_else(|e| panic!("{n}: {e}"))))
        .collect();

    let mut g = c.benchmark_group("compat/closure_create_free");
    for (n, cif) in &cifs {
        // Warm: the first closure of a cif may compile its body.
        // SAFETY: ffi_add implements the cif's int(int, int).
        drop(unsafe { cif.closure(ffi_add, std::ptr::null_mut()) });
        g.bench_function(*n, |b| {
            b.iter(|| {
                // SAFETY: as above; the closure is freed at the end of the
                // iteration, never called.
                let cl = unsafe { cif.closure(ffi_add, std::ptr::null_mut()) }
                    .expect("closure allocation");
                black_box(cl.code());
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("compat/closure_upcall");
    g.bench_function("a_direct", |b| {
        let f: AddFn = black_box(direct_add as AddFn);
        b.iter(|| f(black_box(2), black_box(3)))
    });
    for (n, cif) in &cifs {
        // SAFETY: ffi_add implements int(int, int); the closure lives until
        // the end of this iteration of the loop.
        let cl = unsafe { cif.closure(ffi_add, std::ptr::null_mut()) }.expect("closure");
        // SAFETY: the closure's code has the C type int(int, int).
        let f: AddFn = unsafe { std::mem::transmute::<*const c_void, AddFn>(cl.code()) };
        assert_eq!(f(40, 2), 42, "{n} closure");
        assert_eq!(f(-5, 2), -3, "{n} closure");
        g.bench_function(*n, |b| b.iter(|| f(black_box(2), black_box(3))));
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = ffi_call_rows, closures
}
criterion_main!(benches);
