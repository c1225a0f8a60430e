//! Shared by `benches/calls.rs` (criterion) and
//! `examples/callgrind_calls.rs` (instruction counts): the five benchmark
//! rows (their callees and values are in `benches/rows.rs`), hand-written
//! ahead-of-time wrappers, and the prepared jitffi trampolines and libffi
//! cifs for each.
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

#[path = "rows.rs"]
mod rows;
pub use rows::*;

/// jitffi's (and the AOT wrappers') entry type:
/// `entry(target, args, ret)`.
pub type Wrapper = unsafe extern "C" fn(*const c_void, *const *const c_void, *mut c_void);

// ---- ahead-of-time wrappers: jitffi's interface, one signature each -------
//
// The floor for any dynamic call: load each argument through its pointer,
// call the target, store the result.

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

impl Case {
    /// Prepares row `row`; `v` must outlive the case (its fields are what
    /// the argument pointers point at).
    pub fn new(row: usize, v: &Values) -> Case {
        let sig = jitffi::cdecl::parse_signature(DECLS[row], Abi::SysV64)
            .unwrap_or_else(|e| panic!("{}: {e}", DECLS[row]));
        let l = FfiType::i64;
        let (f, w) = (FfiType::f64, FfiType::i32);
        let (aot, ffi_args, ffi_ret): (Wrapper, Vec<FfiType>, _) = match row {
            0 => (aot_add3, vec![l(); 3], l()),
            1 => (aot_mix8, [vec![l(); 4], vec![f(); 4]].concat(), f()),
            2 => (aot_ld_int, vec![FfiType::structure([l(), f()]), w()], f()),
            3 => (aot_q4, vec![l()], FfiType::structure(vec![l(); 4])),
            _ => (
                aot_twelve,
                vec![l(), f(), w(), f(), l(), f(), w(), f(), l(), l(), l(), l()],
                l(),
            ),
        };
        let (target, args) = (rows::target(row), arg_ptrs(row, v));
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
