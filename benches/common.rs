//! Shared by `benches/calls.rs` (criterion) and
//! `examples/callgrind_calls.rs` (instruction counts): the five benchmark
//! rows, their callees, hand-written ahead-of-time wrappers, and the
//! prepared jitffi trampolines and libffi cifs for each.
//!
//! Every row exposes the same seven ways to make one call (columns a–g of
//! `benches/RESULTS.md`); each call reads its arguments from memory set up
//! once and writes the result to memory, so that the dynamic columns and
//! the direct call do comparable work.
#![allow(dead_code)]

use std::ffi::c_void;
use std::hint::black_box;

use jitffi::call::{ArgMode, Trampoline};
use jitffi::{Abi, Signature};
use libffi::middle::{Cif, Type as FfiType};

/// jitffi's (and the AOT wrappers') entry type:
/// `entry(target, args, ret)`.
pub type Wrapper = unsafe extern "C" fn(*const c_void, *const *const c_void, *mut c_void);

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

// ---- ahead-of-time wrappers: jitffi's interface, one signature each -------
//
// The floor for any dynamic call: load each argument through its pointer,
// call the target, store the result.

type Add3 = extern "C" fn(i64, i64, i64) -> i64;
type Mix8 = extern "C" fn(i64, i64, i64, i64, f64, f64, f64, f64) -> f64;
type LdInt = extern "C" fn(Ld, i32) -> f64;
type Q4Of = extern "C" fn(i64) -> Q4;
type Twelve = extern "C" fn(i64, f64, i32, f64, i64, f64, i32, f64, i64, i64, i64, i64) -> i64;

/// Reads argument `i` of type `T` from a `void **` array.
///
/// # Safety
///
/// `args` must hold at least `i + 1` pointers and `args[i]` must point at a
/// valid, aligned `T`.
#[inline(always)]
unsafe fn arg<T: Copy>(args: *const *const c_void, i: usize) -> T {
    // SAFETY: guaranteed by the caller.
    unsafe { *(*args.add(i)).cast::<T>() }
}

/// # Safety
///
/// `t` must be an `Add3`, `a` three pointers to `i64`, `r` writable for 8 bytes.
#[inline(never)]
pub unsafe extern "C" fn aot_add3(t: *const c_void, a: *const *const c_void, r: *mut c_void) {
    // SAFETY: the caller passes a function of this type and matching buffers.
    unsafe {
        let f = std::mem::transmute::<*const c_void, Add3>(t);
        *r.cast::<i64>() = f(arg(a, 0), arg(a, 1), arg(a, 2));
    }
}

/// # Safety
///
/// `t` must be a `Mix8`, `a` eight pointers to the argument types, `r`
/// writable for 8 bytes.
#[inline(never)]
pub unsafe extern "C" fn aot_mix8(t: *const c_void, a: *const *const c_void, r: *mut c_void) {
    // SAFETY: the caller passes a function of this type and matching buffers.
    unsafe {
        let f = std::mem::transmute::<*const c_void, Mix8>(t);
        *r.cast::<f64>() = f(
            arg(a, 0),
            arg(a, 1),
            arg(a, 2),
            arg(a, 3),
            arg(a, 4),
            arg(a, 5),
            arg(a, 6),
            arg(a, 7),
        );
    }
}

/// # Safety
///
/// `t` must be a `LdInt`, `a` pointers to an `Ld` and an `i32`, `r`
/// writable for 8 bytes.
#[inline(never)]
pub unsafe extern "C" fn aot_ld_int(t: *const c_void, a: *const *const c_void, r: *mut c_void) {
    // SAFETY: the caller passes a function of this type and matching buffers.
    unsafe {
        let f = std::mem::transmute::<*const c_void, LdInt>(t);
        *r.cast::<f64>() = f(arg(a, 0), arg(a, 1));
    }
}

/// # Safety
///
/// `t` must be a `Q4Of`, `a` one pointer to an `i64`, `r` writable for 32
/// bytes.
#[inline(never)]
pub unsafe extern "C" fn aot_q4(t: *const c_void, a: *const *const c_void, r: *mut c_void) {
    // SAFETY: the caller passes a function of this type and matching buffers.
    unsafe {
        let f = std::mem::transmute::<*const c_void, Q4Of>(t);
        // Writes the result straight into `ret` (rustc passes `r` as the
        // hidden result pointer when it can).
        r.cast::<Q4>().write(f(arg(a, 0)));
    }
}

/// # Safety
///
/// `t` must be a `Twelve`, `a` twelve pointers to the argument types, `r`
/// writable for 8 bytes.
#[inline(never)]
pub unsafe extern "C" fn aot_twelve(t: *const c_void, a: *const *const c_void, r: *mut c_void) {
    // SAFETY: the caller passes a function of this type and matching buffers.
    unsafe {
        let f = std::mem::transmute::<*const c_void, Twelve>(t);
        *r.cast::<i64>() = f(
            arg(a, 0),
            arg(a, 1),
            arg(a, 2),
            arg(a, 3),
            arg(a, 4),
            arg(a, 5),
            arg(a, 6),
            arg(a, 7),
            arg(a, 8),
            arg(a, 9),
            arg(a, 10),
            arg(a, 11),
        );
    }
}

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

/// Column names, in order (criterion's function names within a group).
pub const COLS: [&str; 7] = [
    "a_direct",
    "b_aot",
    "c_jit_unbound_ptr",
    "d_jit_bound_ptr",
    "e_jit_bound_frame",
    "f_jit_entry",
    "g_libffi",
];

/// One row, prepared: everything a dynamic call needs, built once.
pub struct Case {
    pub row: usize,
    pub sig: Signature,
    pub target: *const c_void,
    pub aot: Wrapper,
    /// `args[i]` points at argument `i` (inside the `Values` box).
    pub args: Vec<*const c_void>,
    /// The same, typed as libffi wants it.
    pub ffi_args: Vec<*mut c_void>,
    /// A packed frame laid out by `frame_offsets()`.
    pub frame: Vec<u128>,
    /// Result buffer, 16-byte aligned, big enough for every row.
    pub ret: [u128; 4],
    pub unbound_ptr: Trampoline,
    pub bound_ptr: Trampoline,
    pub bound_frame: Trampoline,
    /// `unbound_ptr.entry()`; valid while `unbound_ptr` lives.
    pub entry: jitffi::call::Entry,
    pub cif: Cif,
    pub ffi_fn: unsafe extern "C" fn(),
}

fn ptr<T>(r: &T) -> *const c_void {
    (r as *const T).cast()
}

impl Case {
    /// Prepares row `row`; `v` must outlive the case (its fields are what
    /// the argument pointers point at).
    pub fn new(row: usize, v: &Values) -> Case {
        let sig = jitffi::cdecl::parse_signature(DECLS[row], Abi::SysV64)
            .unwrap_or_else(|e| panic!("{}: {e}", DECLS[row]));
        let ld = || FfiType::structure([FfiType::i64(), FfiType::f64()]);
        let q4 = || FfiType::structure(vec![FfiType::i64(); 4]);
        let (target, aot, args, ffi_args, ffi_ret): (*const c_void, Wrapper, _, Vec<FfiType>, _) =
            match row {
                0 => (
                    add3 as *const c_void,
                    aot_add3 as Wrapper,
                    v.add3.iter().map(ptr).collect::<Vec<_>>(),
                    vec![FfiType::i64(); 3],
                    FfiType::i64(),
                ),
                1 => (
                    mix8 as *const c_void,
                    aot_mix8 as Wrapper,
                    v.mix8_i
                        .iter()
                        .map(ptr)
                        .chain(v.mix8_d.iter().map(ptr))
                        .collect(),
                    [vec![FfiType::i64(); 4], vec![FfiType::f64(); 4]].concat(),
                    FfiType::f64(),
                ),
                2 => (
                    ld_int as *const c_void,
                    aot_ld_int as Wrapper,
                    vec![ptr(&v.ld), ptr(&v.ld_n)],
                    vec![ld(), FfiType::i32()],
                    FfiType::f64(),
                ),
                3 => (
                    q4_of as *const c_void,
                    aot_q4 as Wrapper,
                    vec![ptr(&v.q4_x)],
                    vec![FfiType::i64()],
                    q4(),
                ),
                _ => {
                    let (i, d, n) = (&v.tw_i64, &v.tw_f64, &v.tw_i32);
                    let (l, f, w) = (FfiType::i64, FfiType::f64, FfiType::i32);
                    (
                        twelve as *const c_void,
                        aot_twelve as Wrapper,
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
                        ],
                        vec![l(), f(), w(), f(), l(), f(), w(), f(), l(), l(), l(), l()],
                        FfiType::i64(),
                    )
                }
            };
        assert_eq!(args.len(), sig.args.len(), "{}", DECLS[row]);
        let unbound_ptr = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
        let bound_ptr = Trampoline::compile(&sig, ArgMode::Pointers, Some(target)).unwrap();
        let bound_frame = Trampoline::compile(&sig, ArgMode::Frame, Some(target)).unwrap();
        let mut frame = vec![0u128; bound_frame.frame_size().div_ceil(16).max(1)];
        for ((a, ty), &off) in args.iter().zip(&sig.args).zip(bound_frame.frame_offsets()) {
            let n = ty.size() as usize;
            // SAFETY: `a` points at a live value of `n` bytes inside `v`;
            // the frame holds frame_size() bytes and `off + n` lies inside
            // it (frame_layout places each argument within the frame).
            unsafe {
                std::ptr::copy_nonoverlapping(
                    a.cast::<u8>(),
                    frame.as_mut_ptr().cast::<u8>().add(off as usize),
                    n,
                )
            };
        }
        assert!(unbound_ptr.ret_buffer_size() <= 64);
        let entry = unbound_ptr.entry();
        let cif = Cif::new(ffi_args, ffi_ret);
        // SAFETY: a function pointer cast to the untyped pointer libffi
        // takes; libffi calls it with the cif's signature.
        let ffi_fn =
            unsafe { std::mem::transmute::<*const c_void, unsafe extern "C" fn()>(target) };
        Case {
            row,
            sig,
            target,
            aot,
            ffi_args: args.iter().map(|p| p.cast_mut()).collect(),
            args,
            frame,
            ret: [0; 4],
            unbound_ptr,
            bound_ptr,
            bound_frame,
            entry,
            cif,
            ffi_fn,
        }
    }

    fn ret_ptr(&mut self) -> *mut c_void {
        self.ret.as_mut_ptr().cast()
    }

    /// One call through column `col` (1..=6; column 0, the direct call, is
    /// [`direct`]). Inlined so that each column's loop holds only its own
    /// call sequence.
    #[inline(always)]
    pub fn call(&mut self, col: usize) {
        let ret = self.ret_ptr();
        let args = self.args.as_ptr();
        // SAFETY: every column gets the function, argument pointers / frame
        // and result buffer prepared for this row's signature in `new`, and
        // the trampolines are alive as long as `self`.
        unsafe {
            match col {
                1 => (black_box(self.aot))(self.target, args, ret),
                2 => self.unbound_ptr.call_raw(self.target, args.cast(), ret),
                3 => self.bound_ptr.call_raw(std::ptr::null(), args.cast(), ret),
                4 => self
                    .bound_frame
                    .call_raw(std::ptr::null(), self.frame.as_ptr().cast(), ret),
                5 => (black_box(self.entry))(self.target, args.cast(), ret),
                _ => libffi::raw::ffi_call(
                    self.cif.as_raw_ptr(),
                    Some(self.ffi_fn),
                    ret,
                    self.ffi_args.as_mut_ptr(),
                ),
            }
        }
        black_box(&mut self.ret);
    }

    /// The first `size` bytes of the result buffer.
    pub fn result(&self) -> Vec<u8> {
        let n = self.sig.ret.size() as usize;
        // SAFETY: `ret` is 64 initialised bytes and n <= 64.
        unsafe { std::slice::from_raw_parts(self.ret.as_ptr().cast::<u8>(), n) }.to_vec()
    }
}

/// The bytes of the direct call's result for `row`.
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

/// Checks that every column of every row computes the direct call's result.
pub fn self_check(cases: &mut [Case], v: &Values) {
    for c in cases.iter_mut() {
        let want = direct_result(c.row, v);
        for (col, name) in COLS.iter().enumerate().skip(1) {
            c.ret = [0; 4];
            c.call(col);
            assert_eq!(c.result(), want, "row {} column {name}", ROWS[c.row]);
        }
    }
}

// ---- signatures for the compile-time rows ----------------------------------

/// Distinct C declarations: every argument list of length 1..=4 over six
/// types (scalars and structs of 2..=6 members), with the result type
/// cycling too. 6 + 36 + 216 + 1296 = 1554 distinct signatures.
pub fn distinct_decls() -> Vec<String> {
    const TYPES: [&str; 6] = [
        "long",
        "double",
        "int",
        "float",
        "struct { float x, y; }",
        "struct { long a; double b; char c[8]; }",
    ];
    const RETS: [&str; 4] = ["long", "double", "void", "struct { long a, b, c; }"];
    let mut out = Vec::new();
    for len in 1..=4u32 {
        for k in 0..6usize.pow(len) {
            let mut args = Vec::new();
            let mut m = k;
            for _ in 0..len {
                args.push(TYPES[m % 6]);
                m /= 6;
            }
            let ret = RETS[out.len() % RETS.len()];
            out.push(format!("{ret} f({})", args.join(", ")));
        }
    }
    out
}
