//! Closure benchmarks (issue C): creation + free, and the upcall of an
//! `int(int, int)` closure, against a direct call, a compiled thunk (the
//! ahead-of-time floor) and libffi. Memory per closure is measured by
//! `examples/closure_memory.rs` (criterion cannot measure memory).
//!
//! Run: `cargo bench --bench closures` (see benches/CLOSURES.md).

use std::ffi::c_void;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use jitffi::closure::{Closure, RawHandler};
use jitffi::types::{Abi, Scalar, Signature, Type};
use libffi::raw as ffi;

// The closure row (int(int, int): the direct call, jitffi's raw handler)
// is shared with benches/compat.rs and examples/qemu_counts.rs.
#[path = "rows.rs"]
mod rows;
use rows::{direct_add, raw_add, AddFn};

fn sig_ii() -> Signature {
    let int = Type::Scalar(Scalar::I32);
    Signature::new(Abi::SysV64, int.clone(), vec![int.clone(), int])
}

/// The handler the AOT thunk calls, loaded from memory on each call the way
/// a closure body loads it from its slot.
static THUNK_HANDLER: AtomicUsize = AtomicUsize::new(0);
static THUNK_CTX: AtomicUsize = AtomicUsize::new(0);

/// The ahead-of-time floor: a thunk compiled for this one signature that
/// packs `args` and calls `handler(ctx, args, ret)` through a pointer.
#[inline(never)]
extern "C" fn aot_thunk(a: i32, b: i32) -> i32 {
    let (mut a, mut b, mut r) = (a, b, 0i32);
    let args = [
        (&mut a as *mut i32).cast::<c_void>(),
        (&mut b as *mut i32).cast::<c_void>(),
    ];
    let h = THUNK_HANDLER.load(Ordering::Relaxed);
    // SAFETY: THUNK_HANDLER holds a RawHandler (set before any call).
    let h: RawHandler = unsafe { std::mem::transmute::<usize, RawHandler>(h) };
    let ctx = THUNK_CTX.load(Ordering::Relaxed) as *mut c_void;
    h(ctx, args.as_ptr(), (&mut r as *mut i32).cast());
    r
}

/// libffi's closure handler for int(int, int).
unsafe extern "C" fn ffi_add(
    _cif: *mut ffi::ffi_cif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _user: *mut c_void,
) {
    // SAFETY: libffi passes two int pointers and a result buffer of at least
    // sizeof(ffi_arg) bytes; integral results narrower than ffi_arg are
    // written widened (libffi manual, "The Closure API").
    unsafe {
        let a = *(*args as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut ffi::ffi_arg) = a.wrapping_add(b) as ffi::ffi_arg;
    }
}

/// A prepared libffi cif for int(int, int), leaked (lives for the run).
fn ffi_cif_ii() -> *mut ffi::ffi_cif {
    let args: &'static mut [*mut ffi::ffi_type; 2] = Box::leak(Box::new([
        &raw mut ffi::ffi_type_sint32,
        &raw mut ffi::ffi_type_sint32,
    ]));
    let cif: &'static mut ffi::ffi_cif = Box::leak(Box::new(
        // SAFETY: ffi_cif is plain data; ffi_prep_cif fills it.
        unsafe { std::mem::zeroed() },
    ));
    // SAFETY: valid cif, type pointers to libffi's static types, 2 args.
    let st = unsafe {
        ffi::ffi_prep_cif(
            cif,
            ffi::ffi_abi_FFI_DEFAULT_ABI,
            2,
            &raw mut ffi::ffi_type_sint32,
            args.as_mut_ptr(),
        )
    };
    assert_eq!(st, ffi::ffi_status_FFI_OK);
    cif
}

/// A libffi closure: (closure, code).
fn ffi_closure_new(cif: *mut ffi::ffi_cif) -> (*mut ffi::ffi_closure, *const c_void) {
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: allocates a closure of the right size; code receives the
    // executable address.
    let c = unsafe { ffi::ffi_closure_alloc(std::mem::size_of::<ffi::ffi_closure>(), &mut code) }
        .cast::<ffi::ffi_closure>();
    assert!(!c.is_null());
    // SAFETY: c was just allocated with code as its executable address; the
    // cif outlives the closure.
    let st =
        unsafe { ffi::ffi_prep_closure_loc(c, cif, Some(ffi_add), std::ptr::null_mut(), code) };
    assert_eq!(st, ffi::ffi_status_FFI_OK);
    (c, code)
}

fn create_free(c: &mut Criterion) {
    let sig = sig_ii();
    let cif = ffi_cif_ii();
    // Warm the body cache.
    drop(Closure::new(&sig, |_, _| {}).unwrap());
    let ty = Closure::prepare(&sig).unwrap();

    let mut g = c.benchmark_group("create_free");
    g.bench_function("jitffi_raw_prepared", |b| {
        b.iter(|| {
            // SAFETY: raw_add ignores ctx and writes the int result.
            let c = unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }.unwrap();
            black_box(c.code_ptr());
        })
    });
    g.bench_function("jitffi_rust_prepared", |b| {
        b.iter(|| {
            let k = black_box(7i32);
            let c = ty
                .create(move |args, ret| {
                    // SAFETY: int(int, int).
                    unsafe {
                        *(ret as *mut i32) = (*(args[0] as *const i32)) + k;
                    }
                })
                .unwrap();
            black_box(c.code_ptr());
        })
    });
    g.bench_function("jitffi_raw_new_raw", |b| {
        b.iter(|| {
            // SAFETY: raw_add ignores ctx and writes the int result.
            let c = unsafe { Closure::new_raw(&sig, raw_add, std::ptr::null_mut()) }.unwrap();
            black_box(c.code_ptr());
        })
    });
    g.bench_function("jitffi_rust_new", |b| {
        b.iter(|| {
            let k = black_box(7i32);
            let c = Closure::new(&sig, move |args, ret| {
                // SAFETY: int(int, int).
                unsafe {
                    *(ret as *mut i32) = (*(args[0] as *const i32)) + k;
                }
            })
            .unwrap();
            black_box(c.code_ptr());
        })
    });
    g.bench_function("libffi", |b| {
        b.iter(|| {
            let (c, code) = ffi_closure_new(cif);
            black_box(code);
            // SAFETY: c came from ffi_closure_alloc and is not used again.
            unsafe { ffi::ffi_closure_free(c.cast()) };
        })
    });
    g.finish();
}

fn upcall(c: &mut Criterion) {
    let sig = sig_ii();
    let cif = ffi_cif_ii();
    THUNK_HANDLER.store(raw_add as RawHandler as usize, Ordering::Relaxed);
    // SAFETY: raw_add ignores ctx and writes the int result.
    let raw = unsafe { Closure::new_raw(&sig, raw_add, std::ptr::null_mut()) }.unwrap();
    let rust = Closure::new(&sig, |args, ret| {
        // SAFETY: int(int, int).
        unsafe {
            *(ret as *mut i32) = (*(args[0] as *const i32)).wrapping_add(*(args[1] as *const i32));
        }
    })
    .unwrap();
    let (ffi_c, ffi_code) = ffi_closure_new(cif);
    let as_fn = |p: *const c_void| -> AddFn {
        // SAFETY: every pointer here is code with the C type int(int, int).
        unsafe { std::mem::transmute::<*const c_void, AddFn>(p) }
    };
    let rows: [(&str, AddFn); 5] = [
        ("direct", direct_add),
        ("aot_thunk", aot_thunk),
        ("jitffi_raw", as_fn(raw.code_ptr())),
        ("jitffi_rust", as_fn(rust.code_ptr())),
        ("libffi", as_fn(ffi_code)),
    ];
    for (_, f) in rows {
        assert_eq!(f(40, 2), 42);
    }
    let mut g = c.benchmark_group("upcall_int_int");
    for (name, f) in rows {
        g.bench_function(name, |b| {
            let f = black_box(f);
            let mut i = 0i32;
            b.iter(|| {
                i = i.wrapping_add(1);
                black_box(black_box(f)(black_box(i), black_box(2)))
            })
        });
    }
    g.finish();
    // SAFETY: no call reaches the libffi closure after this.
    unsafe { ffi::ffi_closure_free(ffi_c.cast()) };
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(50);
    targets = create_free, upcall
}
criterion_main!(benches);
