//! The five benchmark rows, shared by every benchmark and example that
//! measures forward calls (`benches/common.rs`, `benches/compat.rs`,
//! `examples/callgrind_calls.rs`, `examples/qemu_counts.rs`): the callees,
//! their argument values in memory, the direct call of each, and the C
//! declaration jitffi parses for it. Nothing here links libffi, so files
//! that open libffi at run time (or cross-compile) can include it.
#![allow(dead_code)]

use std::ffi::c_void;
use std::hint::black_box;

// ---- callees: trivial arithmetic on every argument ------------------------

#[inline(never)]
pub extern "C" fn add3(a: i64, b: i64, c: i64) -> i64 {
    a.wrapping_add(b).wrapping_add(c)
}

#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub extern "C" fn mix8(a: i64, b: i64, c: i64, d: i64, e: f64, f: f64, g: f64, h: f64) -> f64 {
    (a.wrapping_add(b).wrapping_add(c).wrapping_add(d)) as f64 + e + f + g + h
}

/// `typedef struct { long a; double b; } ld;` — SysV: one INTEGER and one
/// SSE eightbyte (psABI §3.2.3), so it travels in rdi + xmm0.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Ld {
    pub a: i64,
    pub b: f64,
}

#[inline(never)]
pub extern "C" fn ld_int(x: Ld, n: i32) -> f64 {
    x.a as f64 + x.b + n as f64
}

/// `typedef struct { long a, b, c, d; } q4;` — 32 bytes: MEMORY class,
/// returned through the hidden pointer in rdi (psABI §3.2.3).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Q4 {
    pub a: i64,
    pub b: i64,
    pub c: i64,
    pub d: i64,
}

#[inline(never)]
pub extern "C" fn q4_of(x: i64) -> Q4 {
    Q4 {
        a: x,
        b: x.wrapping_add(1),
        c: x.wrapping_add(2),
        d: x.wrapping_add(3),
    }
}

/// Twelve arguments: eight integers (two of them on the stack) and four
/// doubles.
#[allow(clippy::too_many_arguments)]
#[inline(never)]
pub extern "C" fn twelve(
    a: i64,
    b: f64,
    c: i32,
    d: f64,
    e: i64,
    f: f64,
    g: i32,
    h: f64,
    i: i64,
    j: i64,
    k: i64,
    l: i64,
) -> i64 {
    a.wrapping_add(c as i64)
        .wrapping_add(e)
        .wrapping_add(g as i64)
        .wrapping_add(i)
        .wrapping_add(j)
        .wrapping_add(k)
        .wrapping_add(l)
        .wrapping_add((b + d + f + h) as i64)
}

pub type Add3 = extern "C" fn(i64, i64, i64) -> i64;
pub type Mix8 = extern "C" fn(i64, i64, i64, i64, f64, f64, f64, f64) -> f64;
pub type LdInt = extern "C" fn(Ld, i32) -> f64;
pub type Q4Of = extern "C" fn(i64) -> Q4;
pub type Twelve = extern "C" fn(i64, f64, i32, f64, i64, f64, i32, f64, i64, i64, i64, i64) -> i64;

// ---- direct calls -----------------------------------------------------------
//
// Each loads its function pointer through `black_box` (so the call is
// indirect and the callee cannot be inlined or specialised) and its
// arguments from the same memory the dynamic columns read.

/// Argument values, one per row, laid out in memory.
pub struct Values {
    pub add3: [i64; 3],
    pub mix8_i: [i64; 4],
    pub mix8_d: [f64; 4],
    pub ld: Ld,
    pub ld_n: i32,
    pub q4_x: i64,
    pub tw_i64: [i64; 6],
    pub tw_f64: [f64; 4],
    pub tw_i32: [i32; 2],
}

pub fn values() -> Box<Values> {
    Box::new(Values {
        add3: [1, 2, 3],
        mix8_i: [1, 2, 3, 4],
        mix8_d: [0.5, 1.5, 2.5, 3.5],
        ld: Ld { a: 7, b: 0.25 },
        ld_n: -3,
        q4_x: 40,
        tw_i64: [1, 2, 3, 4, 5, 6],
        tw_f64: [0.5, 1.5, 2.5, 3.5],
        tw_i32: [-1, -2],
    })
}

#[inline(always)]
pub fn direct(row: usize, v: &Values, out: &mut Out) {
    let v = black_box(v);
    match row {
        0 => {
            let f: Add3 = black_box(add3 as Add3);
            out.i = f(v.add3[0], v.add3[1], v.add3[2]);
        }
        1 => {
            let f: Mix8 = black_box(mix8 as Mix8);
            let (i, d) = (&v.mix8_i, &v.mix8_d);
            out.d = f(i[0], i[1], i[2], i[3], d[0], d[1], d[2], d[3]);
        }
        2 => {
            let f: LdInt = black_box(ld_int as LdInt);
            out.d = f(v.ld, v.ld_n);
        }
        3 => {
            let f: Q4Of = black_box(q4_of as Q4Of);
            out.q = f(v.q4_x);
        }
        _ => {
            let f: Twelve = black_box(twelve as Twelve);
            let (i, d, n) = (&v.tw_i64, &v.tw_f64, &v.tw_i32);
            out.i = f(
                i[0], d[0], n[0], d[1], i[1], d[2], n[1], d[3], i[2], i[3], i[4], i[5],
            );
        }
    }
    black_box(out);
}

/// Where the direct calls store their results.
#[derive(Default)]
pub struct Out {
    pub i: i64,
    pub d: f64,
    pub q: Q4,
}

// ---- the rows, prepared for every dynamic column ---------------------------

/// Row names, in order (also criterion's group names).
pub const ROWS: [&str; 5] = ["add3", "mix8", "struct16", "sret32", "args12"];

/// The C declaration of each row, as jitffi parses it.
pub const DECLS: [&str; 5] = [
    "long add3(long, long, long)",
    "double mix8(long, long, long, long, double, double, double, double)",
    "typedef struct { long a; double b; } ld; double ld_int(ld, int)",
    "typedef struct { long a, b, c, d; } q4; q4 q4_of(long)",
    "long twelve(long, double, int, double, long, double, int, double, long, long, long, long)",
];

pub fn ptr<T>(r: &T) -> *const c_void {
    r as *const T as *const c_void
}

/// Row `row`'s callee.
pub fn target(row: usize) -> *const c_void {
    match row {
        0 => add3 as *const c_void,
        1 => mix8 as *const c_void,
        2 => ld_int as *const c_void,
        3 => q4_of as *const c_void,
        _ => twelve as *const c_void,
    }
}

/// Row `row`'s argument pointers, into `v` (`args[i]` points at argument
/// `i`, the `void **` form jitffi's pointer mode and `ffi_call` take).
pub fn arg_ptrs(row: usize, v: &Values) -> Vec<*const c_void> {
    match row {
        0 => v.add3.iter().map(ptr).collect(),
        1 => v
            .mix8_i
            .iter()
            .map(ptr)
            .chain(v.mix8_d.iter().map(ptr))
            .collect(),
        2 => vec![ptr(&v.ld), ptr(&v.ld_n)],
        3 => vec![ptr(&v.q4_x)],
        _ => {
            let (i, d, n) = (&v.tw_i64, &v.tw_f64, &v.tw_i32);
            vec![
                ptr(&i[0]),
                ptr(&d[0]),
                ptr(&n[0]),
                ptr(&d[1]),
                ptr(&i[1]),
                ptr(&d[2]),
                ptr(&n[1]),
                ptr(&d[3]),
                ptr(&i[2]),
                ptr(&i[3]),
                ptr(&i[4]),
                ptr(&i[5]),
            ]
        }
    }
}

pub fn direct_result(row: usize, v: &Values) -> Vec<u8> {
    let mut out = Out::default();
    direct(row, v, &mut out);
    let p: *const u8 = match row {
        0 | 4 => ptr(&out.i).cast(),
        1 | 2 => ptr(&out.d).cast(),
        _ => ptr(&out.q).cast(),
    };
    let n = if row == 3 { 32 } else { 8 };
    // SAFETY: `p` points at a live field of `out` of at least `n` bytes.
    unsafe { std::slice::from_raw_parts(p, n) }.to_vec()
}

// ---- the closure row: int(int, int) ----------------------------------------

pub type AddFn = extern "C" fn(i32, i32) -> i32;

/// The direct call the closure rows compare with.
#[inline(never)]
pub extern "C" fn direct_add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// jitffi's raw handler for the closure row: `handler(ctx, args, ret)`.
pub extern "C" fn raw_add(_ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: the closure's signature is int(int, int): two int pointers in,
    // an int result buffer out.
    unsafe {
        let a = *(*args as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut i32) = a.wrapping_add(b);
    }
}

/// libffi's closure handler for the closure row: `fun(cif, ret, args,
/// user_data)`.
///
/// # Safety
///
/// Called by a libffi-style closure of C type int(int, int): `args` holds
/// two int pointers and `ret` at least `sizeof(ffi_arg)` bytes.
pub unsafe extern "C" fn ffi_add(
    _cif: *mut c_void,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _user: *mut c_void,
) {
    // SAFETY: per the contract; an integral result narrower than ffi_arg is
    // written widened to ffi_arg (libffi manual, "The Closure API").
    unsafe {
        let a = *(*args as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut u64) = a.wrapping_add(b) as i64 as u64;
    }
}
