//! Memory per live closure (issue C: ≤ 64 bytes each beyond the user's
//! context), which criterion cannot measure: creates 100,000 closures of
//! `int(int, int)` and prints, per closure, the stub pages mapped, the heap
//! bytes allocated (a counting global allocator; the `Vec` of handles is
//! excluded: the handle lives in the user's memory) and the RSS delta.
//!
//! `cargo run --release --example closure_memory` (add `-- time` for a
//! noise-robust timing of create + free: the fastest of many batches).

use std::alloc::{GlobalAlloc, Layout, System};
use std::ffi::c_void;
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use jitffi::closure::{Closure, ClosureType};
use jitffi::exec::stubs;
use jitffi::types::{Abi, Scalar, Signature, Type};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's layout, passed on.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: p came from System.alloc with layout l.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: as for dealloc.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const N: usize = 100_000;

fn rss_bytes() -> usize {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: usize = s
        .split_whitespace()
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    pages * unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize
}

extern "C" fn raw_add(_ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: int(int, int).
    unsafe {
        let a = *(*args as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut i32) = a.wrapping_add(b);
    }
}

/// Creates N closures with `make`, prints the per-closure costs, checks one
/// of them, and returns them (dropped by the caller).
fn measure(label: &str, user_bytes: usize, make: &dyn Fn(usize) -> Closure) -> Vec<Closure> {
    let mut v: Vec<Closure> = Vec::with_capacity(N);
    let (map0, heap0, rss0) = (
        stubs::mapped_bytes(),
        LIVE.load(Ordering::Relaxed),
        rss_bytes(),
    );
    for i in 0..N {
        v.push(make(i));
    }
    let (map1, heap1, rss1) = (
        stubs::mapped_bytes(),
        LIVE.load(Ordering::Relaxed),
        rss_bytes(),
    );
    let f: extern "C" fn(i32, i32) -> i32 =
        // SAFETY: every closure here has the C type int(int, int).
        unsafe { std::mem::transmute(v[N / 2].code_ptr()) };
    black_box(f(40, 2));
    let per = |x: f64| x / N as f64;
    let mapped = per((map1 - map0) as f64);
    let heap = per((heap1 - heap0) as f64);
    println!(
        "{label:<32} stub+slot pages {mapped:6.2} B, heap {heap:6.2} B \
         (user context {user_bytes} B) => {:6.2} B beyond the context; \
         RSS delta {:6.2} B (handles in the Vec: {} B each)",
        mapped + heap - user_bytes as f64,
        per(rss1 as f64 - rss0 as f64),
        std::mem::size_of::<Closure>(),
    );
    v
}

fn time_create_free(ty: ClosureType) {
    const BATCH: usize = 1000;
    let mut best = [f64::MAX; 2];
    for _ in 0..300 {
        let t = Instant::now();
        for _ in 0..BATCH {
            // SAFETY: raw_add ignores ctx.
            black_box(unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }.unwrap());
        }
        best[0] = best[0].min(t.elapsed().as_nanos() as f64 / BATCH as f64);
        let t = Instant::now();
        for _ in 0..BATCH {
            let k = black_box(7i32);
            black_box(
                ty.create(move |args, ret| {
                    // SAFETY: int(int, int).
                    unsafe { *(ret as *mut i32) = *(args[0] as *const i32) + k }
                })
                .unwrap(),
            );
        }
        best[1] = best[1].min(t.elapsed().as_nanos() as f64 / BATCH as f64);
    }
    println!(
        "create+free, fastest batch of {BATCH}: raw handler {:.1} ns, Rust closure {:.1} ns",
        best[0], best[1]
    );
}

#[inline(never)]
extern "C" fn direct_add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

type AddFn = extern "C" fn(i32, i32) -> i32;

/// The fastest of many batches of calls through `f`, in ns per call.
fn time_calls(f: AddFn) -> f64 {
    const BATCH: i32 = 10_000;
    let f = black_box(f);
    let mut best = f64::MAX;
    for _ in 0..200 {
        let t = Instant::now();
        let mut acc = 0i32;
        for i in 0..BATCH {
            acc = acc.wrapping_add(black_box(f)(black_box(i), 2));
        }
        black_box(acc);
        best = best.min(t.elapsed().as_nanos() as f64 / f64::from(BATCH));
    }
    best
}

fn time_upcalls(ty: ClosureType) {
    // SAFETY: raw_add ignores ctx.
    let raw = unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }.unwrap();
    let rust = ty
        .create(|args, ret| {
            // SAFETY: int(int, int).
            unsafe {
                *(ret as *mut i32) =
                    (*(args[0] as *const i32)).wrapping_add(*(args[1] as *const i32))
            }
        })
        .unwrap();
    // SAFETY: both closures have the C type int(int, int).
    let (fr, fs): (AddFn, AddFn) = unsafe {
        (
            std::mem::transmute::<*const c_void, AddFn>(raw.code_ptr()),
            std::mem::transmute::<*const c_void, AddFn>(rust.code_ptr()),
        )
    };
    println!(
        "int(int, int) call, fastest batch: direct {:.2} ns, closure (raw handler) {:.2} ns, \
         closure (Rust closure) {:.2} ns",
        time_calls(direct_add),
        time_calls(fr),
        time_calls(fs)
    );
}

fn main() -> Result<(), jitffi::Error> {
    let int = Type::Scalar(Scalar::I32);
    let sig = Signature::new(Abi::SysV64, int.clone(), vec![int.clone(), int]);
    let ty = Closure::prepare(&sig)?;
    if std::env::args().nth(1).as_deref() == Some("time") {
        time_create_free(ty);
        time_upcalls(ty);
        return Ok(());
    }
    println!("{N} live closures of int(int, int), per closure:");
    let a = measure("raw handler, null ctx", 0, &|_| {
        // SAFETY: raw_add ignores ctx.
        unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }.unwrap()
    });
    let b = measure("Rust closure, no captures", 0, &|_| {
        ty.create(|args, ret| {
            // SAFETY: int(int, int).
            unsafe { *(ret as *mut i32) = *(args[0] as *const i32) + *(args[1] as *const i32) }
        })
        .unwrap()
    });
    let c = measure("Rust closure, one i64 captured", 8, &|i| {
        let k = i as i64;
        ty.create(move |args, ret| {
            // SAFETY: int(int, int).
            unsafe { *(ret as *mut i32) = *(args[0] as *const i32) + k as i32 }
        })
        .unwrap()
    });
    drop((a, b, c));
    // Freed slots are reused: a second batch maps nothing new.
    let before = stubs::mapped_bytes();
    let d = measure("raw handler again (reused slots)", 0, &|_| {
        // SAFETY: raw_add ignores ctx.
        unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }.unwrap()
    });
    assert_eq!(stubs::mapped_bytes(), before, "freed slots were not reused");
    drop(d);
    Ok(())
}
