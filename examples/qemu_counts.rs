//! Runs one benchmark cell N times, for instruction counts under qemu-user
//! (`benches/aarch64.sh`, results in `benches/AARCH64.md`): the AArch64
//! counterpart of `examples/callgrind_calls.rs`, where no callgrind runs.
//!
//! ```text
//! qemu_counts ROW COL N
//!   forward rows  add3 mix8 struct16 sret32 args12
//!           cols  direct jit_ptr jit_frame libffi
//!   upcall  cols  direct jitffi libffi       (int(int, int) closure called)
//!   create  cols  jitffi libffi              (closure created and freed)
//! qemu_counts check                          (every cell once, results compared)
//! ```
//!
//! Self-contained: the five rows of `benches/rows.rs` (shared with the
//! criterion benches), and libffi opened at run time with `dlopen`
//! (`src/cli/libffi_dyn.rs`), so nothing links libffi at build time and the
//! example cross-compiles for aarch64 without an arm64 libffi. When no
//! libffi can be opened the `libffi` cells exit with status 3.
//!
//! Everything (trampolines, cifs, closures) is prepared and every cell is
//! run once and checked in every run, whatever is selected, so
//! `(count(N) - count(0)) / N` is the cost of one call (plus its loop).

// Only a part of the runtime libffi wrapper is used here.
#[allow(dead_code)]
#[path = "../src/cli/libffi_dyn.rs"]
mod libffi_dyn;

use std::ffi::c_void;
use std::hint::black_box;
use std::sync::Arc;

use jitffi::call::{ArgMode, Entry, Trampoline};
use jitffi::closure::{Closure, ClosureType};
use jitffi::{Abi, Signature};
use libffi_dyn::{Libffi, PreparedCif};

// The five rows (callees, argument values, declarations): benches/rows.rs,
// which links nothing, so it cross-compiles too.
#[path = "../benches/rows.rs"]
mod rows;
use rows::{
    add3, arg_ptrs, direct_add, ffi_add, ld_int, mix8, q4_of, raw_add, twelve, values, Add3, AddFn,
    LdInt, Mix8, Q4Of, Twelve, Values, DECLS, Q4, ROWS,
};

const COLS: [&str; 4] = ["direct", "jit_ptr", "jit_frame", "libffi"];

/// Result buffer: 16-byte aligned, large enough for every row.
#[repr(C, align(16))]
struct Ret([u8; 64]);

impl Default for Ret {
    fn default() -> Ret {
        Ret([0; 64])
    }
}

/// One direct call of row `R` through a `black_box`ed function pointer,
/// its arguments loaded from `v`, its result stored to `out`.
#[inline(always)]
fn direct<const R: usize>(v: &Values, out: &mut Ret) {
    let v = black_box(v);
    let o = out.0.as_mut_ptr();
    // SAFETY: `out` is 64 bytes, 16-aligned: room for any row's result.
    unsafe {
        match R {
            0 => {
                let f: Add3 = black_box(add3 as Add3);
                o.cast::<i64>().write(f(v.add3[0], v.add3[1], v.add3[2]));
            }
            1 => {
                let f: Mix8 = black_box(mix8 as Mix8);
                let (i, d) = (&v.mix8_i, &v.mix8_d);
                o.cast::<f64>()
                    .write(f(i[0], i[1], i[2], i[3], d[0], d[1], d[2], d[3]));
            }
            2 => {
                let f: LdInt = black_box(ld_int as LdInt);
                o.cast::<f64>().write(f(v.ld, v.ld_n));
            }
            3 => {
                let f: Q4Of = black_box(q4_of as Q4Of);
                o.cast::<Q4>().write(f(v.q4_x));
            }
            _ => {
                let f: Twelve = black_box(twelve as Twelve);
                let (i, d, n) = (&v.tw_i64, &v.tw_f64, &v.tw_i32);
                o.cast::<i64>().write(f(
                    i[0], d[0], n[0], d[1], i[1], d[2], n[1], d[3], i[2], i[3], i[4], i[5],
                ));
            }
        }
    }
    black_box(out);
}

/// One forward row, prepared for every dynamic column.
struct Case {
    sig: Signature,
    target: *const c_void,
    args: Vec<*const c_void>,
    frame: Vec<u128>,
    ret: Ret,
    // The trampolines own the code their entries point at.
    _ptr: Trampoline,
    _frame: Trampoline,
    ptr_entry: Entry,
    frame_entry: Entry,
    cif: Option<PreparedCif>,
}

impl Case {
    fn new(row: usize, v: &Values, abi: Abi, ffi: Option<&Arc<Libffi>>) -> Case {
        let sig = jitffi::cdecl::parse_signature(DECLS[row], abi)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", DECLS[row])));
        let (target, args) = (rows::target(row), arg_ptrs(row, v));
        let compile = |mode| {
            Trampoline::compile(&sig, mode, Some(target))
                .unwrap_or_else(|e| fail(&format!("{}: {e}", DECLS[row])))
        };
        let (tp, tf) = (compile(ArgMode::Pointers), compile(ArgMode::Frame));
        if tp.ret_buffer_size() > 64 || tf.frame_size() > 256 {
            fail("buffers too small");
        }
        let mut frame = vec![0u128; tf.frame_size().div_ceil(16).max(1)];
        for ((a, ty), &off) in args.iter().zip(&sig.args).zip(tf.frame_offsets()) {
            let n = ty.size() as usize;
            // SAFETY: `a` points at a live value of `n` bytes inside `v`; the
            // frame holds frame_size() bytes and frame_layout places every
            // argument, `off .. off + n`, inside it.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    a.cast::<u8>(),
                    frame.as_mut_ptr().cast::<u8>().add(off as usize),
                    n,
                )
            };
        }
        let cif = ffi.map(|f| {
            f.prepare(&sig)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", DECLS[row])))
        });
        Case {
            target,
            args,
            frame,
            ret: Ret::default(),
            ptr_entry: tp.entry(),
            frame_entry: tf.entry(),
            _ptr: tp,
            _frame: tf,
            cif,
            sig,
        }
    }

    /// One call through dynamic column `C` (1 jit_ptr, 2 jit_frame,
    /// 3 libffi), the entry loaded through `black_box` as the direct call's
    /// function pointer is.
    #[inline(always)]
    fn call<const C: usize>(&mut self) {
        let ret = self.ret.0.as_mut_ptr().cast::<c_void>();
        // SAFETY: each column gets the argument pointers / frame and result
        // buffer prepared for this row's signature in `new`; the bound
        // trampolines ignore the null target and live as long as `self`.
        unsafe {
            match C {
                1 => (black_box(self.ptr_entry))(std::ptr::null(), self.args.as_ptr().cast(), ret),
                2 => {
                    (black_box(self.frame_entry))(std::ptr::null(), self.frame.as_ptr().cast(), ret)
                }
                _ => {
                    if let Some(cif) = &self.cif {
                        cif.call(self.target, self.args.as_ptr(), ret)
                    }
                }
            }
        }
        black_box(&mut self.ret);
    }

    fn result(&self) -> &[u8] {
        &self.ret.0[..self.sig.ret.size() as usize]
    }
}

// ---- closures: int(int, int) -------------------------------------------------

fn as_add(p: *const c_void) -> AddFn {
    // SAFETY: every pointer passed here is code of C type int(int, int).
    unsafe { std::mem::transmute::<*const c_void, AddFn>(p) }
}

#[inline(never)]
fn upcalls(f: AddFn, n: usize) {
    let f = black_box(f);
    let mut i = 0i32;
    for _ in 0..n {
        i = i.wrapping_add(1);
        black_box(black_box(f)(black_box(i), black_box(2)));
    }
}

#[inline(never)]
fn create_jitffi(ty: &ClosureType, n: usize) {
    for _ in 0..n {
        // SAFETY: raw_add ignores ctx and writes the int result.
        let c = unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }
            .unwrap_or_else(|e| fail(&e.to_string()));
        black_box(c.code_ptr());
    }
}

#[inline(never)]
fn create_libffi(cif: &PreparedCif, n: usize) {
    for _ in 0..n {
        // SAFETY: ffi_add implements int(int, int) and ignores user_data.
        let c = unsafe { cif.closure(ffi_add, std::ptr::null_mut()) }
            .unwrap_or_else(|| fail("ffi_closure_alloc failed"));
        black_box(c.code());
    }
}

// ---- the measured loops --------------------------------------------------------

#[inline(never)]
fn direct_loop<const R: usize>(v: &Values, n: usize) {
    let mut out = Ret::default();
    for _ in 0..n {
        direct::<R>(v, &mut out);
    }
}

#[inline(never)]
fn dynamic_loop<const C: usize>(case: &mut Case, n: usize) {
    for _ in 0..n {
        case.call::<C>();
    }
}

fn direct_n(row: usize, v: &Values, n: usize) {
    match row {
        0 => direct_loop::<0>(v, n),
        1 => direct_loop::<1>(v, n),
        2 => direct_loop::<2>(v, n),
        3 => direct_loop::<3>(v, n),
        _ => direct_loop::<4>(v, n),
    }
}

fn direct_result(row: usize, v: &Values) -> Vec<u8> {
    let mut out = Ret::default();
    match row {
        0 => direct::<0>(v, &mut out),
        1 => direct::<1>(v, &mut out),
        2 => direct::<2>(v, &mut out),
        3 => direct::<3>(v, &mut out),
        _ => direct::<4>(v, &mut out),
    }
    let n = if row == 3 { 32 } else { 8 };
    out.0[..n].to_vec()
}

fn fail(msg: &str) -> ! {
    eprintln!("qemu_counts: {msg}");
    std::process::exit(2)
}

fn main() {
    let usage = "usage: qemu_counts ROW COL N | check\n  \
                 ROW add3|mix8|struct16|sret32|args12: COL direct|jit_ptr|jit_frame|libffi\n  \
                 ROW upcall: COL direct|jitffi|libffi\n  ROW create: COL jitffi|libffi";
    let Some(abi) = Abi::host().filter(|a| a.executable_here()) else {
        fail("jitffi does not execute on this host");
    };
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let check = argv.first().map(String::as_str) == Some("check");
    if !check && argv.len() != 3 {
        fail(usage);
    }

    // ---- preparation: identical in every run --------------------------------
    let ffi = Libffi::open();
    let v = values();
    let mut cases: Vec<Case> = (0..ROWS.len())
        .map(|r| Case::new(r, &v, abi, ffi.as_ref()))
        .collect();
    for (row, c) in cases.iter_mut().enumerate() {
        let want = direct_result(row, &v);
        for (col, name) in COLS.iter().enumerate().skip(1) {
            if col == 3 && c.cif.is_none() {
                continue;
            }
            c.ret = Ret::default();
            match col {
                1 => c.call::<1>(),
                2 => c.call::<2>(),
                _ => c.call::<3>(),
            }
            if c.result() != want.as_slice() {
                fail(&format!("row {} column {name}: wrong result", ROWS[row]));
            }
        }
    }
    let int = jitffi::Type::Scalar(jitffi::types::Scalar::I32);
    let sig_ii = Signature::new(abi, int.clone(), vec![int.clone(), int]);
    let ty = Closure::prepare(&sig_ii).unwrap_or_else(|e| fail(&e.to_string()));
    // SAFETY: raw_add ignores ctx and writes the int result.
    let jit_closure = unsafe { ty.create_raw(raw_add, std::ptr::null_mut()) }
        .unwrap_or_else(|e| fail(&e.to_string()));
    let ffi_cif_ii = ffi.as_ref().map(|f| {
        f.prepare(&sig_ii)
            .unwrap_or_else(|e| fail(&format!("int(int, int): {e}")))
    });
    // SAFETY: ffi_add implements int(int, int) and ignores user_data.
    let ffi_closure = ffi_cif_ii.as_ref().map(|c| {
        unsafe { c.closure(ffi_add, std::ptr::null_mut()) }
            .unwrap_or_else(|| fail("ffi_closure_alloc failed"))
    });
    let mut upcall_fns: Vec<(&str, AddFn)> = vec![
        ("direct", direct_add as AddFn),
        ("jitffi", as_add(jit_closure.code_ptr())),
    ];
    if let Some(c) = &ffi_closure {
        upcall_fns.push(("libffi", as_add(c.code())));
    }
    for (name, f) in &upcall_fns {
        if black_box(*f)(40, 2) != 42 {
            fail(&format!("upcall {name}: wrong result"));
        }
    }
    // One creation of each kind, so that the measured loops start warm.
    create_jitffi(&ty, 1);
    if let Some(c) = &ffi_cif_ii {
        create_libffi(c, 1);
    }
    if check {
        println!(
            "ok: every cell agrees with the direct call (libffi {})",
            if ffi.is_some() { "loaded" } else { "absent" }
        );
        return;
    }

    // ---- the measured cell ----------------------------------------------------
    let n: usize = argv[2].parse().unwrap_or_else(|_| fail(usage));
    let (row, col) = (argv[0].as_str(), argv[1].as_str());
    let no_ffi = || -> ! {
        eprintln!("qemu_counts: no libffi could be opened");
        std::process::exit(3)
    };
    if let Some(r) = ROWS.iter().position(|&x| x == row) {
        let case = &mut cases[r];
        match col {
            "direct" => direct_n(r, &v, n),
            "jit_ptr" => dynamic_loop::<1>(case, n),
            "jit_frame" => dynamic_loop::<2>(case, n),
            "libffi" if case.cif.is_none() => no_ffi(),
            "libffi" => dynamic_loop::<3>(case, n),
            _ => fail(usage),
        }
    } else if row == "upcall" {
        match upcall_fns.iter().find(|(name, _)| *name == col) {
            Some((_, f)) => upcalls(*f, n),
            None if col == "libffi" => no_ffi(),
            None => fail(usage),
        }
    } else if row == "create" {
        match (col, &ffi_cif_ii) {
            ("jitffi", _) => create_jitffi(&ty, n),
            ("libffi", Some(c)) => create_libffi(c, n),
            ("libffi", None) => no_ffi(),
            _ => fail(usage),
        }
    } else {
        fail(usage);
    }
    drop(ffi_closure);
    drop(jit_closure);
}
