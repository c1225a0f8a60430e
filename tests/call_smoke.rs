//! First execution tests: real functions called through trampolines, in
//! both argument modes, bound and unbound, compared with direct calls.
//! Callees are Rust `extern "C"` (SysV on x86-64 Linux) and `extern "win64"`
//! functions, so rustc's own implementation of each convention is the
//! reference; plus libc's variadic `snprintf`.
#![cfg(all(target_arch = "x86_64", not(windows)))]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::Arc;

use jitffi::call::{ArgMode, Trampoline};
use jitffi::types::{layout_record, FieldDecl, RecordKind, Scalar};
use jitffi::{Abi, Signature, Type};

fn s(sc: Scalar) -> Type {
    Type::Scalar(sc)
}

fn record(fields: Vec<Type>) -> Type {
    let members = fields
        .into_iter()
        .map(|ty| FieldDecl {
            name: None,
            ty,
            aligned: None,
        })
        .collect();
    Type::Record(Arc::new(
        layout_record(RecordKind::Struct, None, members, false, None).unwrap(),
    ))
}

/// The bytes of a value (for `Copy` plain-old-data test types).
fn bytes<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: T is one of this file's padding-free POD types or a scalar;
    // reading its size_of bytes from a valid reference is sound.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
}

/// A 16-byte aligned, zeroed buffer of at least `n` bytes.
fn aligned(n: usize) -> Vec<u128> {
    vec![0u128; n.div_ceil(16).max(1)]
}

fn as_bytes_mut(v: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no invalid bit patterns and no padding; the byte view
    // covers exactly the vector's storage.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 16) }
}

/// Calls `target` with `args` (each argument's bytes) through four
/// trampolines (pointer/frame mode × unbound/bound) and returns the first
/// `sig.ret.size()` bytes of each result.
fn call_all(sig: &Signature, target: *const c_void, args: &[Vec<u8>]) -> Vec<Vec<u8>> {
    assert_eq!(args.len(), sig.args.len());
    let mut results = Vec::new();
    for mode in [ArgMode::Pointers, ArgMode::Frame] {
        for bound in [false, true] {
            let t = Trampoline::compile(sig, mode, bound.then_some(target))
                .unwrap_or_else(|e| panic!("{}: {e}", sig.c_decl()));
            let mut ret = aligned(t.ret_buffer_size());
            let ret_ptr = ret.as_mut_ptr().cast::<c_void>();
            match mode {
                ArgMode::Pointers => {
                    let mut storage: Vec<Vec<u128>> = args
                        .iter()
                        .map(|a| {
                            let mut b = aligned(a.len());
                            as_bytes_mut(&mut b)[..a.len()].copy_from_slice(a);
                            b
                        })
                        .collect();
                    let ptrs: Vec<*const c_void> = storage
                        .iter_mut()
                        .map(|b| b.as_ptr().cast::<c_void>())
                        .collect();
                    let callee = if bound { std::ptr::null() } else { target };
                    // SAFETY: the signature describes `target`; each pointer
                    // points at a value of its argument's type; `ret` holds
                    // ret_buffer_size() bytes.
                    unsafe { t.call(callee, &ptrs, ret_ptr) }.unwrap();
                }
                ArgMode::Frame => {
                    let mut frame = aligned(t.frame_size());
                    let fb = as_bytes_mut(&mut frame);
                    for (a, &off) in args.iter().zip(t.frame_offsets()) {
                        fb[off as usize..off as usize + a.len()].copy_from_slice(a);
                    }
                    // SAFETY: as above, with a frame laid out by
                    // frame_offsets().
                    unsafe { t.call_raw(target, frame.as_ptr().cast(), ret_ptr) };
                }
            }
            let n = sig.ret.size() as usize;
            results.push(as_bytes_mut(&mut ret)[..n].to_vec());
        }
    }
    results
}

fn check_all(sig: &Signature, target: *const c_void, args: &[Vec<u8>], want: &[u8]) {
    for (k, got) in call_all(sig, target, args).into_iter().enumerate() {
        assert_eq!(got, want, "{} combination {k}", sig.c_decl());
    }
}

// ---- callees ---------------------------------------------------------------

extern "C" fn add3(a: i64, b: i64, c: i64) -> i64 {
    a.wrapping_mul(100)
        .wrapping_add(b.wrapping_mul(10))
        .wrapping_add(c)
}
extern "win64" fn add3_w(a: i64, b: i64, c: i64) -> i64 {
    add3(a, b, c)
}

#[allow(clippy::too_many_arguments)]
extern "C" fn mix8(a: i64, b: i64, c: i64, d: i64, e: f64, f: f64, g: f64, h: f64) -> f64 {
    (a - 2 * b + 3 * c - 4 * d) as f64 + e * 0.5 - f * 0.25 + g * 8.0 - h / 3.0
}
#[allow(clippy::too_many_arguments)]
extern "win64" fn mix8_w(a: i64, b: i64, c: i64, d: i64, e: f64, f: f64, g: f64, h: f64) -> f64 {
    mix8(a, b, c, d, e, f, g, h)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Ffi {
    a: f32,
    b: f32,
    c: i32,
}
extern "C" fn ffi(x: Ffi) -> Ffi {
    Ffi {
        a: x.a * 2.0 + x.b,
        b: x.b - 0.5,
        c: x.c.wrapping_mul(-3),
    }
}
extern "win64" fn ffi_w(x: Ffi) -> Ffi {
    ffi(x)
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q4 {
    a: i64,
    b: i64,
    c: i64,
    d: i64,
}
extern "C" fn q4(x: i32, y: i64) -> Q4 {
    Q4 {
        a: x as i64,
        b: y,
        c: (x as i64).wrapping_mul(y),
        d: -y,
    }
}
extern "win64" fn q4_w(x: i32, y: i64) -> Q4 {
    q4(x, y)
}

#[allow(clippy::too_many_arguments)]
extern "C" fn twelve(
    a: i8,
    b: u16,
    c: i32,
    d: i64,
    e: f32,
    f: f64,
    g: i64,
    h: i32,
    i: i64,
    j: i16,
    k: f64,
    l: u8,
) -> i64 {
    let ints = [
        a as i64, b as i64, c as i64, d, g, h as i64, i, j as i64, l as i64,
    ];
    let mut acc: i64 = 0;
    for (n, v) in ints.iter().enumerate() {
        acc = acc
            .wrapping_mul(31)
            .wrapping_add(v.wrapping_mul(n as i64 + 1));
    }
    acc.wrapping_add((e as f64 * 4.0 + f * 16.0 + k * 64.0) as i64)
}
#[allow(clippy::too_many_arguments)]
extern "win64" fn twelve_w(
    a: i8,
    b: u16,
    c: i32,
    d: i64,
    e: f32,
    f: f64,
    g: i64,
    h: i32,
    i: i64,
    j: i16,
    k: f64,
    l: u8,
) -> i64 {
    twelve(a, b, c, d, e, f, g, h, i, j, k, l)
}

extern "C" {
    fn snprintf(buf: *mut c_char, n: usize, fmt: *const c_char, ...) -> c_int;
}

// ---- signatures -------------------------------------------------------------

fn sig_add3(abi: Abi) -> Signature {
    let ll = s(Scalar::I64);
    Signature::new(abi, ll.clone(), vec![ll.clone(), ll.clone(), ll])
}

fn sig_mix8(abi: Abi) -> Signature {
    let mut args = vec![s(Scalar::I64); 4];
    args.extend(vec![s(Scalar::F64); 4]);
    Signature::new(abi, s(Scalar::F64), args)
}

fn ty_ffi() -> Type {
    record(vec![s(Scalar::F32), s(Scalar::F32), s(Scalar::I32)])
}

fn ty_q4() -> Type {
    record(vec![s(Scalar::I64); 4])
}

fn sig_twelve(abi: Abi) -> Signature {
    Signature::new(
        abi,
        s(Scalar::I64),
        vec![
            s(Scalar::I8),
            s(Scalar::U16),
            s(Scalar::I32),
            s(Scalar::I64),
            s(Scalar::F32),
            s(Scalar::F64),
            s(Scalar::I64),
            s(Scalar::I32),
            s(Scalar::I64),
            s(Scalar::I16),
            s(Scalar::F64),
            s(Scalar::U8),
        ],
    )
}

// ---- tests ------------------------------------------------------------------

#[test]
fn add3_both_abis() {
    let args = [bytes(&7i64), bytes(&-3i64), bytes(&(1i64 << 40))];
    let want = bytes(&add3(7, -3, 1 << 40));
    check_all(&sig_add3(Abi::SysV64), add3 as *const c_void, &args, &want);
    check_all(&sig_add3(Abi::Win64), add3_w as *const c_void, &args, &want);
}

#[test]
fn four_ints_four_doubles() {
    let (a, b, c, d) = (11i64, -22i64, 33i64, 1i64 << 35);
    let (e, f, g, h) = (1.5f64, -2.75f64, 1e10f64, 0.1f64);
    let args = [
        bytes(&a),
        bytes(&b),
        bytes(&c),
        bytes(&d),
        bytes(&e),
        bytes(&f),
        bytes(&g),
        bytes(&h),
    ];
    let want = bytes(&mix8(a, b, c, d, e, f, g, h));
    check_all(&sig_mix8(Abi::SysV64), mix8 as *const c_void, &args, &want);
    check_all(&sig_mix8(Abi::Win64), mix8_w as *const c_void, &args, &want);
}

#[test]
fn small_struct_by_value_and_returned() {
    let x = Ffi {
        a: 1.25,
        b: -8.5,
        c: -123_456,
    };
    let want = bytes(&ffi(x));
    assert_eq!(ty_ffi().size() as usize, size_of::<Ffi>());
    // SysV: xmm0 + edi in, xmm0 + eax out; Win64: by reference in, hidden
    // result pointer out.
    for (abi, f) in [
        (Abi::SysV64, ffi as *const c_void),
        (Abi::Win64, ffi_w as *const c_void),
    ] {
        let sig = Signature::new(abi, ty_ffi(), vec![ty_ffi()]);
        check_all(&sig, f, &[bytes(&x)], &want);
    }
}

#[test]
fn thirty_two_byte_struct_via_sret() {
    let want = bytes(&q4(-5, 1 << 33));
    for (abi, f) in [
        (Abi::SysV64, q4 as *const c_void),
        (Abi::Win64, q4_w as *const c_void),
    ] {
        let sig = Signature::new(abi, ty_q4(), vec![s(Scalar::I32), s(Scalar::I64)]);
        check_all(&sig, f, &[bytes(&-5i32), bytes(&(1i64 << 33))], &want);
    }
}

#[test]
fn twelve_arguments_with_narrow_ints_on_the_stack() {
    let args = [
        bytes(&-7i8),
        bytes(&60_000u16),
        bytes(&-100_000i32),
        bytes(&(-1i64 << 50)),
        bytes(&3.5f32),
        bytes(&-0.125f64),
        bytes(&77i64),
        bytes(&-1i32),
        bytes(&(1i64 << 62)),
        bytes(&-30_000i16),
        bytes(&2.5f64),
        bytes(&250u8),
    ];
    let want = bytes(&twelve(
        -7,
        60_000,
        -100_000,
        -1i64 << 50,
        3.5,
        -0.125,
        77,
        -1,
        1i64 << 62,
        -30_000,
        2.5,
        250,
    ));
    check_all(
        &sig_twelve(Abi::SysV64),
        twelve as *const c_void,
        &args,
        &want,
    );
    check_all(
        &sig_twelve(Abi::Win64),
        twelve_w as *const c_void,
        &args,
        &want,
    );
}

#[test]
fn variadic_snprintf_int_and_double() {
    // int snprintf(char *, size_t, const char *, ..., int, double)
    let mut sig = Signature::new(
        Abi::SysV64,
        s(Scalar::I32),
        vec![
            Type::pointer("char"),
            s(Scalar::U64),
            Type::pointer("const char"),
            s(Scalar::I32),
            s(Scalar::F64),
        ],
    );
    sig.fixed_args = 3;
    sig.variadic = true;
    let mut buf = [0 as c_char; 64];
    let fmt = c"%d|%.3f";
    let args = [
        bytes(&buf.as_mut_ptr()),
        bytes(&buf.len()),
        bytes(&fmt.as_ptr()),
        bytes(&-42i32),
        bytes(&1234.5678f64),
    ];
    let mut direct = [0 as c_char; 64];
    // SAFETY: a valid buffer and format with matching variadic arguments.
    let n = unsafe { snprintf(direct.as_mut_ptr(), 64, fmt.as_ptr(), -42i32, 1234.5678f64) };
    // SAFETY: snprintf NUL-terminated both buffers.
    let want_text = unsafe { CStr::from_ptr(direct.as_ptr()) }.to_owned();
    assert_eq!(want_text.to_str().unwrap(), "-42|1234.568");
    let target = snprintf as *const c_void;
    for got in call_all(&sig, target, &args) {
        assert_eq!(got, bytes(&n));
        // SAFETY: as above.
        let text = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(text, want_text.as_c_str());
    }
    let t = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
    assert_eq!(t.plan().al, Some(1));
}

#[test]
fn checked_call_rejects_wrong_count_and_frame_mode() {
    let sig = sig_add3(Abi::SysV64);
    let t = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
    let x = 1i64;
    let p = (&x as *const i64).cast::<c_void>();
    let mut ret = 0i64;
    let r = (&mut ret as *mut i64).cast::<c_void>();
    // SAFETY: rejected before any call is made.
    let e = unsafe { t.call(add3 as *const c_void, &[p, p], r) };
    assert!(matches!(e, Err(jitffi::Error::Argument(_))));
    // SAFETY: a correct call.
    unsafe { t.call(add3 as *const c_void, &[p, p, p], r) }.unwrap();
    assert_eq!(ret, 111);
    let f = Trampoline::compile(&sig, ArgMode::Frame, None).unwrap();
    // SAFETY: rejected before any call is made.
    let e = unsafe { f.call(add3 as *const c_void, &[p, p, p], r) };
    assert!(matches!(e, Err(jitffi::Error::Argument(_))));
    assert!(!t.code().is_empty());
    assert_eq!(f.frame_offsets(), &[0, 8, 16]);
}

#[test]
fn trampolines_are_usable_from_other_threads() {
    let sig = sig_add3(Abi::SysV64);
    let t =
        Arc::new(Trampoline::compile(&sig, ArgMode::Frame, Some(add3 as *const c_void)).unwrap());
    let handles: Vec<_> = (0..4i64)
        .map(|k| {
            let t = Arc::clone(&t);
            std::thread::spawn(move || {
                jitffi::exec::prepare_for_execution();
                let frame = [k, k + 1, k + 2, 0];
                let mut ret = 0i64;
                // SAFETY: a frame of three i64 at 0, 8, 16; an 8-byte result.
                unsafe {
                    t.call_raw(
                        std::ptr::null(),
                        frame.as_ptr().cast(),
                        (&mut ret as *mut i64).cast(),
                    )
                };
                assert_eq!(ret, add3(k, k + 1, k + 2));
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

// ---- more shapes: memory-class and odd-sized structs, big copies, i128 ----

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Q3 {
    a: i64,
    b: i64,
    c: i64,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct C7 {
    c: [u8; 7],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
struct Big {
    w: [u32; 50],
}

extern "C" fn odd_shapes(q: Q3, c: C7, big: Big, x: i32, c2: C7) -> i64 {
    let mut acc = q.a.wrapping_mul(3) ^ q.b.wrapping_mul(5) ^ q.c.wrapping_mul(7);
    for (i, b) in c.c.iter().chain(c2.c.iter()).enumerate() {
        acc = acc
            .wrapping_mul(131)
            .wrapping_add(*b as i64 * (i as i64 + 1));
    }
    for w in big.w {
        acc = acc.wrapping_mul(17).wrapping_add(w as i64);
    }
    acc.wrapping_add(x as i64)
}
extern "win64" fn odd_shapes_w(q: Q3, c: C7, big: Big, x: i32, c2: C7) -> i64 {
    odd_shapes(q, c, big, x, c2)
}

extern "C" fn wide(a: i128, x: i32, b: i128) -> i128 {
    a.wrapping_mul(3).wrapping_sub(b) ^ (x as i128)
}

#[test]
fn memory_class_odd_sized_and_large_structs() {
    let q = Q3 {
        a: -1,
        b: 1 << 40,
        c: 12345,
    };
    let c = C7 {
        c: [1, 2, 3, 0xfe, 5, 6, 0x80],
    };
    let c2 = C7 {
        c: [9, 8, 7, 6, 5, 4, 3],
    };
    let mut big = Big { w: [0; 50] };
    for (i, w) in big.w.iter_mut().enumerate() {
        *w = (i as u32).wrapping_mul(0x9e37_79b9);
    }
    let ty_q3 = record(vec![s(Scalar::I64); 3]);
    let ty_c7 = record(vec![Type::array(s(Scalar::U8), 7).unwrap()]);
    let ty_big = record(vec![Type::array(s(Scalar::U32), 50).unwrap()]);
    assert_eq!(ty_big.size() as usize, size_of::<Big>());
    let args = [bytes(&q), bytes(&c), bytes(&big), bytes(&-9i32), bytes(&c2)];
    let want = bytes(&odd_shapes(q, c, big, -9, c2));
    // SysV: Q3 and Big are MEMORY class (stack), C7 in one GPR (7 bytes).
    // Win64: Q3 and Big by reference, C7 (7 bytes) by reference too, the
    // fifth argument's address on the stack past the shadow space.
    for (abi, f) in [
        (Abi::SysV64, odd_shapes as *const c_void),
        (Abi::Win64, odd_shapes_w as *const c_void),
    ] {
        let sig = Signature::new(
            abi,
            s(Scalar::I64),
            vec![
                ty_q3.clone(),
                ty_c7.clone(),
                ty_big.clone(),
                s(Scalar::I32),
                ty_c7.clone(),
            ],
        );
        check_all(&sig, f, &args, &want);
    }
}

extern "win64" fn wide_w(a: i128, x: i32, b: i128) -> i128 {
    wide(a, x, b)
}

#[test]
fn int128_pairs() {
    let a: i128 = (-7i128 << 90) + 12345;
    let b: i128 = (1i128 << 100) - 3;
    let sig = Signature::new(
        Abi::SysV64,
        s(Scalar::I128),
        vec![s(Scalar::I128), s(Scalar::I32), s(Scalar::I128)],
    );
    let want = bytes(&wide(a, -2, b));
    let args = [bytes(&a), bytes(&-2i32), bytes(&b)];
    check_all(&sig, wide as *const c_void, &args, &want);
    // Win64: both by reference; the result comes back in xmm0 (as gcc and
    // clang do for __int128 on Windows; rustc agrees).
    let sig = Signature {
        abi: Abi::Win64,
        ..sig
    };
    check_all(&sig, wide_w as *const c_void, &args, &want);
}
