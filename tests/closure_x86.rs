//! Reverse closures on x86-64, called from C (gcc -O2) through function
//! pointers of each type: SysV callers and `__attribute__((ms_abi))` callers
//! for Win64 closures. Expected values are fixed in tests/c/closure_callers.c
//! and here; nothing is computed by the code under test.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use jitffi::closure::{Closure, PanicPolicy};
use jitffi::types::{layout_record, Abi, FieldDecl, RecordKind, Scalar, Signature, Type};

// ---------------------------------------------------------------- helpers

fn callers() -> &'static libloading::Library {
    static LIB: OnceLock<libloading::Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("closure_callers");
        std::fs::create_dir_all(&dir).unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/closure_callers.c");
        let out = dir.join(format!("libclosure_callers_{}.so", std::process::id()));
        let compiler = cc::Build::new()
            .opt_level(2)
            .cargo_metadata(false)
            .target("x86_64-unknown-linux-gnu")
            .host("x86_64-unknown-linux-gnu")
            .get_compiler();
        let status = compiler
            .to_command()
            .args(["-shared", "-fPIC", "-O2", "-o"])
            .arg(&out)
            .arg(&src)
            .status()
            .expect("run the C compiler");
        assert!(status.success(), "compiling {}", src.display());
        // SAFETY: our own test library; its initialisers do nothing.
        unsafe { libloading::Library::new(&out) }.expect("load the callers")
    })
}

/// A caller from the C library.
fn caller<T: Copy>(name: &str) -> T {
    // SAFETY: each test names the C function with the matching Rust type.
    unsafe { *callers().get::<T>(name.as_bytes()).unwrap() }
}

fn sc(s: Scalar) -> Type {
    Type::Scalar(s)
}
fn int() -> Type {
    sc(Scalar::I32)
}
fn dbl() -> Type {
    sc(Scalar::F64)
}
fn flt() -> Type {
    sc(Scalar::F32)
}
fn ll() -> Type {
    sc(Scalar::I64)
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

fn sig(abi: Abi, ret: Type, args: Vec<Type>) -> Signature {
    Signature::new(abi, ret, args)
}

fn vsig(abi: Abi, ret: Type, args: Vec<Type>, fixed: usize) -> Signature {
    let mut s = Signature::new(abi, ret, args);
    s.fixed_args = fixed;
    s.variadic = true;
    s
}

type Seen = Arc<Mutex<Vec<Vec<u8>>>>;

/// A closure that records the bytes of every argument (as its C type) and
/// returns `ret` (the result's bytes).
fn recorder(sig: &Signature, ret: Vec<u8>) -> (Closure, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let sizes: Vec<usize> = sig.args.iter().map(|t| t.size() as usize).collect();
    assert_eq!(ret.len(), sig.ret.size() as usize, "test bug: result size");
    let s2 = seen.clone();
    let c = Closure::new(sig, move |args, r| {
        let mut v = s2.lock().unwrap();
        v.clear();
        for (p, n) in args.iter().zip(&sizes) {
            // SAFETY: args[i] points at argument i, `n` bytes.
            v.push(unsafe { std::slice::from_raw_parts(*p as *const u8, *n) }.to_vec());
        }
        // SAFETY: r holds at least sizeof(result) bytes.
        unsafe { std::ptr::copy_nonoverlapping(ret.as_ptr(), r as *mut u8, ret.len()) };
    })
    .unwrap_or_else(|e| panic!("closure for {sig}: {e}"));
    (c, seen)
}

fn seen(s: &Seen) -> Vec<Vec<u8>> {
    s.lock().unwrap().clone()
}

fn b<const N: usize>(x: [u8; N]) -> Vec<u8> {
    x.to_vec()
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// x87 80-bit extended encoding of a normal f64 (Intel SDM vol. 1 §4.2.2:
/// 64-bit significand with explicit integer bit, 15-bit exponent biased by
/// 16383, sign bit).
fn f80(x: f64) -> [u8; 10] {
    let bits = x.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7ff) as u16;
    assert!(exp != 0 && exp != 0x7ff, "test helper: normal values only");
    let e80 = exp - 1023 + 16383;
    let mant = (1u64 << 63) | ((bits & ((1 << 52) - 1)) << 11);
    let mut out = [0u8; 10];
    out[..8].copy_from_slice(&mant.to_le_bytes());
    out[8..].copy_from_slice(&((sign << 15) | e80).to_le_bytes());
    out
}

#[test]
fn f80_helper_matches_the_manual() {
    // 1.0: significand 0x8000_0000_0000_0000, exponent 0x3FFF.
    assert_eq!(f80(1.0), [0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
    // -2.5 = -1.25 * 2^1: significand 0xA000..., exponent 0x4000, sign.
    assert_eq!(f80(-2.5), [0, 0, 0, 0, 0, 0, 0, 0xa0, 0x00, 0xc0]);
}

const SYSV: Abi = Abi::SysV64;
const WIN: Abi = Abi::Win64;

// ---------------------------------------------------------------- SysV

#[test]
fn int_int_to_int() {
    let s = sig(SYSV, int(), vec![int(), int()]);
    let (c, seen_args) = recorder(&s, b(123i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ii");
    assert_eq!(f(c.code_ptr()), 123);
    assert_eq!(
        seen(&seen_args),
        vec![b(7i32.to_le_bytes()), b((-3i32).to_le_bytes())]
    );
}

#[test]
fn narrow_integers_in() {
    let s = sig(
        SYSV,
        int(),
        vec![sc(Scalar::I8), sc(Scalar::U16), sc(Scalar::Bool)],
    );
    let (c, seen_args) = recorder(&s, b(9i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_narrow");
    assert_eq!(f(c.code_ptr()), 9);
    assert_eq!(
        seen(&seen_args),
        vec![vec![0xfb], b(65000u16.to_le_bytes()), vec![1]]
    );
}

#[test]
fn narrow_integers_out() {
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_schar");
    let s = sig(SYSV, sc(Scalar::I8), vec![int()]);
    let (c, seen_args) = recorder(&s, vec![0x9c]); // -100
    assert_eq!(f(c.code_ptr()), -100);
    assert_eq!(seen(&seen_args), vec![b(1i32.to_le_bytes())]);

    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_ushort");
    let s = sig(SYSV, sc(Scalar::U16), vec![int()]);
    let (c, _) = recorder(&s, b(65001u16.to_le_bytes()));
    assert_eq!(f(c.code_ptr()), 65001);

    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_bool");
    let s = sig(SYSV, sc(Scalar::Bool), vec![int()]);
    let (c, _) = recorder(&s, vec![1]);
    assert_eq!(f(c.code_ptr()), 1);
}

#[test]
fn float_double_mix() {
    let s = sig(SYSV, dbl(), vec![flt(), dbl(), int(), flt(), dbl()]);
    let (c, seen_args) = recorder(&s, b((-7.75f64).to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_mix");
    assert_eq!(f(c.code_ptr()), -7.75);
    assert_eq!(
        seen(&seen_args),
        vec![
            b(1.5f32.to_le_bytes()),
            b(2.25f64.to_le_bytes()),
            b(3i32.to_le_bytes()),
            b(4.5f32.to_le_bytes()),
            b((-0.125f64).to_le_bytes()),
        ]
    );

    let s = sig(SYSV, flt(), vec![dbl(), flt()]);
    let (c, seen_args) = recorder(&s, b(3.5f32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> f32 = caller("call_retf");
    assert_eq!(f(c.code_ptr()), 3.5);
    assert_eq!(
        seen(&seen_args),
        vec![b(0.5f64.to_le_bytes()), b(8.0f32.to_le_bytes())]
    );
}

#[test]
fn many_arguments_on_the_stack() {
    let i8t = sc(Scalar::I8);
    let i16t = sc(Scalar::I16);
    let args = vec![
        int(),
        ll(),
        dbl(),
        int(),
        flt(),
        ll(),
        dbl(),
        int(),
        dbl(),
        ll(),
        dbl(),
        int(),
        flt(),
        dbl(),
        int(),
        dbl(),
        ll(),
        dbl(),
        i8t,
        dbl(),
        i16t,
        dbl(),
    ];
    let s = sig(SYSV, ll(), args);
    let (c, seen_args) = recorder(&s, b(0x1122334455667788i64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i64 = caller("call_many");
    assert_eq!(f(c.code_ptr()), 0x1122334455667788);
    let want = vec![
        b(1i32.to_le_bytes()),
        b(2i64.to_le_bytes()),
        b(3.5f64.to_le_bytes()),
        b(4i32.to_le_bytes()),
        b(5.5f32.to_le_bytes()),
        b(6i64.to_le_bytes()),
        b(7.5f64.to_le_bytes()),
        b(8i32.to_le_bytes()),
        b(9.5f64.to_le_bytes()),
        b(10i64.to_le_bytes()),
        b(11.5f64.to_le_bytes()),
        b(12i32.to_le_bytes()),
        b(13.5f32.to_le_bytes()),
        b(14.5f64.to_le_bytes()),
        b(15i32.to_le_bytes()),
        b(16.5f64.to_le_bytes()),
        b(17i64.to_le_bytes()),
        b(18.5f64.to_le_bytes()),
        b((-19i8).to_le_bytes()),
        b(20.5f64.to_le_bytes()),
        b((-21i16).to_le_bytes()),
        b(22.5f64.to_le_bytes()),
    ];
    assert_eq!(seen(&seen_args), want);
}

fn s_ffi() -> Type {
    record(vec![flt(), flt(), int()])
}

fn ffi_bytes(a: f32, b_: f32, c: i32) -> Vec<u8> {
    cat(&[&a.to_le_bytes(), &b_.to_le_bytes(), &c.to_le_bytes()])
}

#[test]
fn struct_float_float_int_in_and_out() {
    // Tricky cases 1 and 2: in xmm0 + edi, out xmm0 + eax.
    let s = sig(SYSV, s_ffi(), vec![s_ffi(), int()]);
    let (c, seen_args) = recorder(&s, ffi_bytes(9.5, -0.25, -3));
    let f: extern "C" fn(*const c_void, *mut [u8; 12]) = caller("call_ffi");
    let mut out = [0u8; 12];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), ffi_bytes(9.5, -0.25, -3));
    assert_eq!(
        seen(&seen_args),
        vec![ffi_bytes(1.25, -2.5, 77), b(9i32.to_le_bytes())]
    );
}

#[test]
fn struct_double_chars_in_and_out() {
    // Tricky case 5: xmm0 + rdi in, xmm0 + rax out.
    let t = record(vec![dbl(), Type::array(sc(Scalar::I8), 8).unwrap()]);
    let s = sig(SYSV, t.clone(), vec![t, int()]);
    let ret = cat(&[&(-1.5f64).to_le_bytes(), b"ZYXWVUT\0"]);
    let (c, seen_args) = recorder(&s, ret.clone());
    let f: extern "C" fn(*const c_void, *mut [u8; 16]) = caller("call_dc");
    let mut out = [0u8; 16];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), ret);
    assert_eq!(
        seen(&seen_args),
        vec![
            cat(&[&3.25f64.to_le_bytes(), b"abcdefg\0"]),
            b((-4i32).to_le_bytes())
        ]
    );
}

fn big_bytes(v: [i64; 4]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

#[test]
fn memory_class_struct_in_and_sret_out() {
    let big = record(vec![ll(), ll(), ll(), ll()]);
    let s = sig(SYSV, big.clone(), vec![int(), big.clone(), big]);
    let (c, seen_args) = recorder(&s, big_bytes([100, 200, 300, 400]));
    let f: extern "C" fn(*const c_void, *mut [u8; 32]) = caller("call_big");
    let mut out = [0u8; 32];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), big_bytes([100, 200, 300, 400]));
    assert_eq!(
        seen(&seen_args),
        vec![
            b(5i32.to_le_bytes()),
            big_bytes([1, -2, 3, -4]),
            big_bytes([50, 60, 70, 80])
        ]
    );
}

#[test]
fn int128_in_and_out() {
    let t = sc(Scalar::I128);
    let s = sig(SYSV, t.clone(), vec![t.clone(), t]);
    let a: i128 = (0x0123456789abcdef_i128 << 64) | 0xfedcba9876543210_i128;
    let bb: i128 = -(3i128 << 70);
    let r: i128 = -0x7766554433221100_ffeeddccbbaa9988_i128;
    let (c, seen_args) = recorder(&s, b(r.to_le_bytes()));
    let f: extern "C" fn(*const c_void, *mut [u8; 16]) = caller("call_i128");
    let mut out = [0u8; 16];
    f(c.code_ptr(), &mut out);
    assert_eq!(i128::from_le_bytes(out), r);
    assert_eq!(
        seen(&seen_args),
        vec![b(a.to_le_bytes()), b(bb.to_le_bytes())]
    );
}

#[test]
fn long_double_in_and_out() {
    // Tricky case 27: x87 values on the stack, result in st0.
    let ld = sc(Scalar::F80);
    let s = sig(SYSV, ld.clone(), vec![ld.clone(), int(), ld]);
    let mut ret = f80(6.5).to_vec();
    ret.resize(16, 0);
    let (c, seen_args) = recorder(&s, ret);
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_ld");
    assert_eq!(f(c.code_ptr()), 6.5);
    let v = seen(&seen_args);
    assert_eq!(v[0][..10], f80(1.25));
    assert_eq!(v[1], b(3i32.to_le_bytes()));
    assert_eq!(v[2][..10], f80(-2.5));
}

#[test]
fn complex_double_in_and_out() {
    let t = Type::Complex(Scalar::F64);
    let s = sig(SYSV, t.clone(), vec![t]);
    let (c, seen_args) = recorder(&s, cat(&[&(-0.5f64).to_le_bytes(), &4.0f64.to_le_bytes()]));
    let f: extern "C" fn(*const c_void, *mut [f64; 2]) = caller("call_cd");
    let mut out = [0f64; 2];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [-0.5, 4.0]);
    assert_eq!(
        seen(&seen_args),
        vec![cat(&[&1.5f64.to_le_bytes(), &2.5f64.to_le_bytes()])]
    );
}

#[test]
fn variadic_call_shape() {
    let s = vsig(SYSV, int(), vec![int(), dbl(), int()], 1);
    let (c, seen_args) = recorder(&s, b(55i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_var");
    assert_eq!(f(c.code_ptr()), 55);
    assert_eq!(
        seen(&seen_args),
        vec![
            b(3i32.to_le_bytes()),
            b(2.5f64.to_le_bytes()),
            b(7i32.to_le_bytes())
        ]
    );
}

#[test]
fn case17_struct_whole_on_the_stack() {
    let t = record(vec![ll(), dbl()]);
    let mut args = vec![ll(); 6];
    args.extend([t, dbl(), ll()]);
    let s = sig(SYSV, ll(), args);
    let (c, seen_args) = recorder(&s, b(17i64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i64 = caller("call_case17");
    assert_eq!(f(c.code_ptr()), 17);
    let mut want: Vec<Vec<u8>> = (1..=6i64).map(|x| b(x.to_le_bytes())).collect();
    want.push(cat(&[&(-8i64).to_le_bytes(), &9.75f64.to_le_bytes()]));
    want.push(b(10.5f64.to_le_bytes()));
    want.push(b(11i64.to_le_bytes()));
    assert_eq!(seen(&seen_args), want);
}

#[test]
fn case18_struct_on_the_stack_double_backfills_xmm7() {
    let t = record(vec![dbl(), dbl()]);
    let mut args = vec![dbl(); 7];
    args.extend([t, dbl()]);
    let s = sig(SYSV, dbl(), args);
    let (c, seen_args) = recorder(&s, b(18.5f64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_case18");
    assert_eq!(f(c.code_ptr()), 18.5);
    let mut want: Vec<Vec<u8>> = [1.5f64, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5]
        .iter()
        .map(|x| b(x.to_le_bytes()))
        .collect();
    want.push(cat(&[&8.25f64.to_le_bytes(), &(-9.5f64).to_le_bytes()]));
    want.push(b(10.25f64.to_le_bytes()));
    assert_eq!(seen(&seen_args), want);
}

#[test]
fn case21_int128_aligned_on_the_stack() {
    let mut args = vec![ll(); 5];
    args.extend([sc(Scalar::I128), ll()]);
    let s = sig(SYSV, ll(), args);
    let (c, seen_args) = recorder(&s, b(21i64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i64 = caller("call_case21");
    assert_eq!(f(c.code_ptr()), 21);
    let mut want: Vec<Vec<u8>> = (1..=5i64).map(|x| b(x.to_le_bytes())).collect();
    want.push(b(((0x1234i128 << 64) | 0x5678).to_le_bytes()));
    want.push(b(7i64.to_le_bytes()));
    assert_eq!(seen(&seen_args), want);
}

#[test]
fn case4_three_floats_in_two_xmms() {
    let t = record(vec![flt(), flt(), flt()]);
    let s = sig(SYSV, t.clone(), vec![t]);
    let v =
        |a: f32, bb: f32, cc: f32| cat(&[&a.to_le_bytes(), &bb.to_le_bytes(), &cc.to_le_bytes()]);
    let (c, seen_args) = recorder(&s, v(-4.0, 5.5, 6.25));
    let f: extern "C" fn(*const c_void, *mut [u8; 12]) = caller("call_v3");
    let mut out = [0u8; 12];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), v(-4.0, 5.5, 6.25));
    assert_eq!(seen(&seen_args), vec![v(1.0, 2.0, 3.0)]);
}

#[test]
fn case10_packed_struct_on_the_stack() {
    let members = vec![
        FieldDecl {
            name: None,
            ty: sc(Scalar::I8),
            aligned: None,
        },
        FieldDecl {
            name: None,
            ty: int(),
            aligned: None,
        },
    ];
    let t = Type::Record(Arc::new(
        layout_record(RecordKind::Struct, None, members, true, None).unwrap(),
    ));
    assert_eq!(t.size(), 5);
    let s = sig(SYSV, int(), vec![t, int()]);
    let (c, seen_args) = recorder(&s, b(10i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_packed");
    assert_eq!(f(c.code_ptr()), 10);
    assert_eq!(
        seen(&seen_args),
        vec![vec![b'q', 4, 3, 2, 1], b(6i32.to_le_bytes())]
    );
}

#[test]
fn complex_long_double_result_in_st0_st1() {
    let s = sig(SYSV, Type::Complex(Scalar::F80), vec![int()]);
    let mut ret = f80(1.75).to_vec();
    ret.resize(16, 0);
    ret.extend(f80(-3.0));
    ret.resize(32, 0);
    let (c, seen_args) = recorder(&s, ret);
    let f: extern "C" fn(*const c_void, *mut [f64; 2]) = caller("call_cld");
    let mut out = [0f64; 2];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [1.75, -3.0]);
    assert_eq!(seen(&seen_args), vec![b(5i32.to_le_bytes())]);
}

// ---------------------------------------------------------------- Win64

#[test]
fn win64_int_int() {
    let s = sig(WIN, int(), vec![int(), int()]);
    let (c, seen_args) = recorder(&s, b(123i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("w_call_ii");
    assert_eq!(f(c.code_ptr()), 123);
    assert_eq!(
        seen(&seen_args),
        vec![b(7i32.to_le_bytes()), b((-3i32).to_le_bytes())]
    );
}

#[test]
fn win64_narrow() {
    let s = sig(
        WIN,
        int(),
        vec![sc(Scalar::I8), sc(Scalar::U16), sc(Scalar::Bool)],
    );
    let (c, seen_args) = recorder(&s, b(9i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("w_call_narrow");
    assert_eq!(f(c.code_ptr()), 9);
    assert_eq!(
        seen(&seen_args),
        vec![vec![0xfb], b(65000u16.to_le_bytes()), vec![1]]
    );
}

#[test]
fn win64_positional_mix() {
    let s = sig(WIN, dbl(), vec![int(), dbl(), int(), dbl(), int(), dbl()]);
    let (c, seen_args) = recorder(&s, b(0.75f64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> f64 = caller("w_call_mix");
    assert_eq!(f(c.code_ptr()), 0.75);
    assert_eq!(
        seen(&seen_args),
        vec![
            b(1i32.to_le_bytes()),
            b(2.5f64.to_le_bytes()),
            b(3i32.to_le_bytes()),
            b(4.5f64.to_le_bytes()),
            b(5i32.to_le_bytes()),
            b(6.5f64.to_le_bytes()),
        ]
    );
}

#[test]
fn win64_many() {
    let args = vec![
        int(),
        ll(),
        dbl(),
        int(),
        flt(),
        ll(),
        dbl(),
        int(),
        dbl(),
        ll(),
    ];
    let s = sig(WIN, ll(), args);
    let (c, seen_args) = recorder(&s, b(99i64.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i64 = caller("w_call_many");
    assert_eq!(f(c.code_ptr()), 99);
    assert_eq!(
        seen(&seen_args),
        vec![
            b(1i32.to_le_bytes()),
            b(2i64.to_le_bytes()),
            b(3.5f64.to_le_bytes()),
            b(4i32.to_le_bytes()),
            b(5.5f32.to_le_bytes()),
            b(6i64.to_le_bytes()),
            b(7.5f64.to_le_bytes()),
            b(8i32.to_le_bytes()),
            b(9.5f64.to_le_bytes()),
            b(10i64.to_le_bytes()),
        ]
    );
}

#[test]
fn win64_struct_by_reference() {
    let s = sig(WIN, int(), vec![s_ffi(), int()]);
    let (c, seen_args) = recorder(&s, b(5i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("w_call_ffi");
    assert_eq!(f(c.code_ptr()), 5);
    assert_eq!(
        seen(&seen_args),
        vec![ffi_bytes(1.25, -2.5, 77), b(9i32.to_le_bytes())]
    );
}

#[test]
fn win64_three_byte_struct_by_reference() {
    let c3 = record(vec![sc(Scalar::I8), sc(Scalar::I8), sc(Scalar::I8)]);
    let s = sig(WIN, int(), vec![c3, int()]);
    let (c, seen_args) = recorder(&s, b(6i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("w_call_c3");
    assert_eq!(f(c.code_ptr()), 6);
    assert_eq!(
        seen(&seen_args),
        vec![b"xyz".to_vec(), b(42i32.to_le_bytes())]
    );
}

#[test]
fn win64_small_struct_in_rcx_out_rax() {
    let v2 = record(vec![flt(), flt()]);
    let s = sig(WIN, v2.clone(), vec![v2]);
    let ret = cat(&[&2.0f32.to_le_bytes(), &3.0f32.to_le_bytes()]);
    let (c, seen_args) = recorder(&s, ret.clone());
    let f: extern "C" fn(*const c_void, *mut [u8; 8]) = caller("w_call_v2");
    let mut out = [0u8; 8];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), ret);
    assert_eq!(
        seen(&seen_args),
        vec![cat(&[&0.5f32.to_le_bytes(), &(-1.5f32).to_le_bytes()])]
    );
}

#[test]
fn win64_hidden_result_pointer() {
    let big = record(vec![ll(), ll(), ll(), ll()]);
    let s = sig(WIN, big, vec![int(), int()]);
    let (c, seen_args) = recorder(&s, big_bytes([9, 8, 7, 6]));
    let f: extern "C" fn(*const c_void, *mut [u8; 32]) = caller("w_call_big");
    let mut out = [0u8; 32];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), big_bytes([9, 8, 7, 6]));
    assert_eq!(
        seen(&seen_args),
        vec![b(11i32.to_le_bytes()), b(22i32.to_le_bytes())]
    );
}

#[test]
fn win64_variadic() {
    let s = vsig(WIN, int(), vec![int(), dbl(), int()], 1);
    let (c, seen_args) = recorder(&s, b(66i32.to_le_bytes()));
    let f: extern "C" fn(*const c_void) -> i32 = caller("w_call_var");
    assert_eq!(f(c.code_ptr()), 66);
    assert_eq!(
        seen(&seen_args),
        vec![
            b(3i32.to_le_bytes()),
            b(2.5f64.to_le_bytes()),
            b(7i32.to_le_bytes())
        ]
    );
}

#[test]
fn win64_complex_double_by_reference() {
    let t = Type::Complex(Scalar::F64);
    let s = sig(WIN, t.clone(), vec![t]);
    let (c, seen_args) = recorder(&s, cat(&[&(-0.5f64).to_le_bytes(), &4.0f64.to_le_bytes()]));
    let f: extern "C" fn(*const c_void, *mut [f64; 2]) = caller("w_call_cd");
    let mut out = [0f64; 2];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [-0.5, 4.0]);
    assert_eq!(
        seen(&seen_args),
        vec![cat(&[&1.5f64.to_le_bytes(), &2.5f64.to_le_bytes()])]
    );
}

#[test]
fn win64_by_reference_addresses_on_the_stack() {
    let big = record(vec![ll(), ll(), ll(), ll()]);
    let c3 = record(vec![sc(Scalar::I8), sc(Scalar::I8), sc(Scalar::I8)]);
    let s = sig(WIN, big, vec![int(), int(), int(), s_ffi(), c3]);
    let (c, seen_args) = recorder(&s, big_bytes([-1, -2, -3, -4]));
    let f: extern "C" fn(*const c_void, *mut [u8; 32]) = caller("w_call_ref5");
    let mut out = [0u8; 32];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), big_bytes([-1, -2, -3, -4]));
    assert_eq!(
        seen(&seen_args),
        vec![
            b(100i32.to_le_bytes()),
            b(200i32.to_le_bytes()),
            b(300i32.to_le_bytes()),
            ffi_bytes(0.5, 0.25, -1),
            b"klm".to_vec(),
        ]
    );
}

// ---------------------------------------------------------------- libc

extern "C" {
    fn qsort(
        base: *mut c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const c_void, *const c_void) -> i32,
    );
    fn bsearch(
        key: *const c_void,
        base: *const c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const c_void, *const c_void) -> i32,
    ) -> *mut c_void;
}

#[test]
fn qsort_and_bsearch_with_a_rust_comparator() {
    let p = Type::pointer("const void");
    let s = sig(SYSV, int(), vec![p.clone(), p]);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls2 = calls.clone();
    let cmp = Closure::new(&s, move |args, ret| {
        calls2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: args[i] points at a `const void *` that points at an i64.
        let (a, bb) = unsafe {
            let pa = *(args[0] as *const *const i64);
            let pb = *(args[1] as *const *const i64);
            (*pa, *pb)
        };
        // SAFETY: ret holds an int.
        unsafe { *(ret as *mut i32) = a.cmp(&bb) as i32 };
    })
    .unwrap();
    // SAFETY: the closure has the comparator's C type.
    let f: extern "C" fn(*const c_void, *const c_void) -> i32 =
        unsafe { std::mem::transmute(cmp.code_ptr()) };
    let mut v: Vec<i64> = vec![42, -7, 1 << 40, 0, 13, -7, 99, 5];
    // SAFETY: v is an array of v.len() i64s; f compares i64s.
    unsafe { qsort(v.as_mut_ptr().cast(), v.len(), 8, f) };
    assert_eq!(v, vec![-7, -7, 0, 5, 13, 42, 99, 1 << 40]);
    assert!(calls.load(std::sync::atomic::Ordering::Relaxed) > 0);
    let key: i64 = 13;
    // SAFETY: as above.
    let hit = unsafe {
        bsearch(
            (&key as *const i64).cast(),
            v.as_ptr().cast(),
            v.len(),
            8,
            f,
        )
    };
    assert_eq!(hit as *const i64, &v[4] as *const i64);
    let key: i64 = 14;
    // SAFETY: as above.
    let miss = unsafe {
        bsearch(
            (&key as *const i64).cast(),
            v.as_ptr().cast(),
            v.len(),
            8,
            f,
        )
    };
    assert!(miss.is_null());
}

// ---------------------------------------------------------------- conformance

std::arch::global_asm!(
    // handler(ctx, args, ret): *(u64 *)ctx = rsp at entry + 8 (which is
    // 16-aligned iff rsp was 16-aligned at the call); *(int *)ret = 0.
    ".globl jitffi_test_align_probe",
    "jitffi_test_align_probe:",
    "    lea rax, [rsp + 8]",
    "    mov [rdi], rax",
    "    mov dword ptr [rdx], 0",
    "    ret",
    // handler(ctx, args, ret): *(int *)ret = 42, then clobbers every
    // register SysV lets a callee clobber (psABI fig. 3.4).
    ".globl jitffi_test_clobber",
    "jitffi_test_clobber:",
    "    mov dword ptr [rdx], 42",
    "    mov rax, 0x5a5a5a5a5a5a5a5a",
    "    mov rcx, rax",
    "    mov rdx, rax",
    "    mov rsi, rax",
    "    mov rdi, rax",
    "    mov r8, rax",
    "    mov r9, rax",
    "    mov r10, rax",
    "    mov r11, rax",
    "    movq xmm0, rax",
    "    pshufd xmm0, xmm0, 0",
    "    movaps xmm1, xmm0",
    "    movaps xmm2, xmm0",
    "    movaps xmm3, xmm0",
    "    movaps xmm4, xmm0",
    "    movaps xmm5, xmm0",
    "    movaps xmm6, xmm0",
    "    movaps xmm7, xmm0",
    "    movaps xmm8, xmm0",
    "    movaps xmm9, xmm0",
    "    movaps xmm10, xmm0",
    "    movaps xmm11, xmm0",
    "    movaps xmm12, xmm0",
    "    movaps xmm13, xmm0",
    "    movaps xmm14, xmm0",
    "    movaps xmm15, xmm0",
    "    ret",
    // u64 canary_call(fn /* rdi */, u64 out[3] /* rsi */), SysV: sets rbx,
    // rbp, r12-r15, rdi, rsi, xmm6-xmm15 to canaries, calls fn() with a
    // 32-byte shadow space (valid for a SysV or a Win64 callee), then
    // out[0] = OR of (reg ^ canary) over the SysV callee-saved set,
    // out[1] = the same over Win64's extra set (rdi, rsi, xmm6-15, low and
    // high halves), out[2] = eax returned.
    ".globl jitffi_test_canary_call",
    "jitffi_test_canary_call:",
    "    push rbp",
    "    push rbx",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    sub rsp, 40",
    "    mov [rsp + 32], rsi",
    "    mov rax, rdi",
    "    mov rbx, 0x1111111111111103",
    "    mov rbp, 0x1111111111111105",
    "    mov r12, 0x111111111111110c",
    "    mov r13, 0x111111111111110d",
    "    mov r14, 0x111111111111110e",
    "    mov r15, 0x111111111111110f",
    "    mov rdi, 0x2222222222222207",
    "    mov rsi, 0x2222222222222206",
    "    mov r11, 0x3333333333333333",
    "    movq xmm6, r11",
    "    pshufd xmm6, xmm6, 0x44",
    "    movaps xmm7, xmm6",
    "    movaps xmm8, xmm6",
    "    movaps xmm9, xmm6",
    "    movaps xmm10, xmm6",
    "    movaps xmm11, xmm6",
    "    movaps xmm12, xmm6",
    "    movaps xmm13, xmm6",
    "    movaps xmm14, xmm6",
    "    movaps xmm15, xmm6",
    "    call rax",
    "    mov r10, [rsp + 32]",
    "    mov [r10 + 16], rax",
    "    xor ecx, ecx",
    "    mov r11, 0x1111111111111103",
    "    xor r11, rbx",
    "    or rcx, r11",
    "    mov r11, 0x1111111111111105",
    "    xor r11, rbp",
    "    or rcx, r11",
    "    mov r11, 0x111111111111110c",
    "    xor r11, r12",
    "    or rcx, r11",
    "    mov r11, 0x111111111111110d",
    "    xor r11, r13",
    "    or rcx, r11",
    "    mov r11, 0x111111111111110e",
    "    xor r11, r14",
    "    or rcx, r11",
    "    mov r11, 0x111111111111110f",
    "    xor r11, r15",
    "    or rcx, r11",
    "    mov [r10], rcx",
    "    xor ecx, ecx",
    "    mov r11, 0x2222222222222207",
    "    xor r11, rdi",
    "    or rcx, r11",
    "    mov r11, 0x2222222222222206",
    "    xor r11, rsi",
    "    or rcx, r11",
    "    mov rdx, 0x3333333333333333",
    ".irp x, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15",
    "    movq r11, xmm\\x",
    "    xor r11, rdx",
    "    or rcx, r11",
    "    pshufd xmm\\x, xmm\\x, 0xee",
    "    movq r11, xmm\\x",
    "    xor r11, rdx",
    "    or rcx, r11",
    ".endr",
    "    mov [r10 + 8], rcx",
    "    add rsp, 40",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbx",
    "    pop rbp",
    "    ret",
);

// SAFETY: the declarations match the assembly above; the two handlers
// are safe to call with the pointers a closure body passes.
unsafe extern "C" {
    safe fn jitffi_test_align_probe(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);
    safe fn jitffi_test_clobber(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);
    fn jitffi_test_canary_call(f: *const c_void, out: *mut [u64; 3]);
}

#[test]
fn handler_entered_with_16_byte_aligned_stack() {
    let cases: Vec<(Signature, &str)> = vec![
        (sig(SYSV, int(), vec![]), "call_void"),
        (sig(SYSV, int(), vec![int(), int()]), "call_ii"),
        (sig(SYSV, int(), vec![int(); 11]), "call_stack5"),
        (
            sig(SYSV, dbl(), vec![flt(), dbl(), int(), flt(), dbl()]),
            "call_mix",
        ),
        (sig(WIN, int(), vec![int(), int()]), "w_call_ii"),
        (
            sig(WIN, dbl(), vec![int(), dbl(), int(), dbl(), int(), dbl()]),
            "w_call_mix",
        ),
    ];
    for (s, name) in cases {
        let mut rsp: u64 = 1;
        // SAFETY: the probe writes one u64 through ctx, which outlives the
        // closure; it writes 4 bytes of result (the buffers hold ≥ 8).
        let c =
            unsafe { Closure::new_raw(&s, jitffi_test_align_probe, (&mut rsp as *mut u64).cast()) }
                .unwrap();
        let f: extern "C" fn(*const c_void) = caller(name);
        f(c.code_ptr());
        assert_ne!(rsp, 1, "{s}: handler not called");
        assert_eq!(rsp % 16, 0, "{s}: rsp+8 at handler entry is {rsp:#x}");
    }
}

#[test]
fn callee_saved_registers_survive_a_closure_call() {
    for abi in [SYSV, WIN] {
        let s = sig(abi, int(), vec![]);
        // SAFETY: the clobber handler ignores ctx and writes an int result.
        let c = unsafe { Closure::new_raw(&s, jitffi_test_clobber, std::ptr::null_mut()) }.unwrap();
        let mut out = [u64::MAX; 3];
        // SAFETY: canary_call calls a function taking no arguments.
        unsafe { jitffi_test_canary_call(c.code_ptr(), &mut out) };
        assert_eq!(out[0], 0, "{abi}: rbx/rbp/r12-r15 corrupted");
        assert_eq!(out[2] as u32, 42, "{abi}: result");
        if abi == WIN {
            assert_eq!(out[1], 0, "win64: rdi/rsi/xmm6-15 corrupted");
        }
    }
    // The checker itself detects corruption: a SysV closure is allowed to
    // clobber rdi/rsi/xmm6-15, and the clobber handler does.
    let s = sig(SYSV, int(), vec![]);
    // SAFETY: as above.
    let c = unsafe { Closure::new_raw(&s, jitffi_test_clobber, std::ptr::null_mut()) }.unwrap();
    let mut out = [0u64; 3];
    // SAFETY: as above.
    unsafe { jitffi_test_canary_call(c.code_ptr(), &mut out) };
    assert_ne!(out[1], 0, "the canary checker cannot see clobbers");
}

// ---------------------------------------------------------------- lifecycle

#[test]
fn eight_threads_create_call_free() {
    let s = sig(SYSV, int(), vec![int(), int()]);
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..10_000i32 {
                    let k = t * 1_000_000 + i;
                    let c = Closure::new(&s, move |args, ret| {
                        // SAFETY: two ints in, an int out.
                        unsafe {
                            let a = *(args[0] as *const i32);
                            let bb = *(args[1] as *const i32);
                            *(ret as *mut i32) = a * 3 + bb + k;
                        }
                    })
                    .unwrap();
                    // SAFETY: the closure has this C type.
                    let f: extern "C" fn(i32, i32) -> i32 =
                        unsafe { std::mem::transmute(c.code_ptr()) };
                    assert_eq!(f(i, 5), i * 3 + 5 + k);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn no_mapping_is_writable_and_executable() {
    let mut keep = Vec::new();
    for n in 0..600 {
        let s = sig(SYSV, int(), vec![int(); n % 9]);
        keep.push(recorder(&s, b(0i32.to_le_bytes())).0);
    }
    // Valgrind maps RWX pages of its own (its translation cache): under
    // it only mappings holding our code would count, and the arena and
    // stub tests cover those; skip the process-wide check there.
    if std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload")) {
        eprintln!("under valgrind: process-wide W^X check skipped");
        return;
    }
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let perms = line.split_whitespace().nth(1).unwrap_or("");
        assert!(
            !(perms.contains('w') && perms.contains('x')),
            "writable and executable mapping: {line}"
        );
    }
}

#[test]
fn zero_result_policy_keeps_the_panic() {
    let s = sig(SYSV, int(), vec![int(), int()]);
    let c = Closure::with_policy(&s, PanicPolicy::ZeroResult, |_, ret| {
        // SAFETY: ret holds an int.
        unsafe { *(ret as *mut i32) = 5 };
        panic!("handler failed on purpose");
    })
    .unwrap();
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ii");
    let prev = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let r = f(c.code_ptr());
    std::panic::set_hook(prev);
    assert_eq!(r, 0);
    let p = c.take_panic().expect("panic payload kept");
    assert_eq!(p.downcast_ref::<&str>(), Some(&"handler failed on purpose"));
    assert!(c.take_panic().is_none());
}

#[test]
fn errors_instead_of_code() {
    let s = sig(Abi::Aapcs64, int(), vec![int()]);
    assert!(matches!(
        Closure::new(&s, |_, _| {}),
        Err(jitffi::Error::NotExecutable(Abi::Aapcs64))
    ));
}

const CHILD_ENV: &str = "JITFFI_CLOSURE_CHILD";

/// Runs in a child process only (selected by the environment variable).
#[test]
fn child_mode() {
    let Ok(mode) = std::env::var(CHILD_ENV) else {
        return;
    };
    let s = sig(SYSV, int(), vec![int(), int()]);
    match mode.as_str() {
        "freed" => {
            let c = Closure::new(&s, |_, _| {}).unwrap();
            // SAFETY: deliberately calling a freed closure: the trap aborts.
            let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(c.code_ptr()) };
            drop(c);
            f(1, 2);
        }
        "panic" => {
            let c = Closure::new(&s, |_, _| panic!("boom in handler")).unwrap();
            // SAFETY: the closure has this C type.
            let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(c.code_ptr()) };
            f(1, 2);
        }
        _ => return,
    }
    eprintln!("child survived");
}

fn run_child(mode: &str) -> std::process::Output {
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_mode", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, mode)
        .output()
        .unwrap()
}

#[test]
fn calling_a_freed_closure_traps() {
    let out = run_child("freed");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "child exited normally: {err}");
    assert!(
        err.contains("jitffi: called a freed closure"),
        "stderr: {err}"
    );
    assert!(!err.contains("child survived"));
}

#[test]
fn a_panicking_handler_aborts_by_default() {
    let out = run_child("panic");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "child exited normally: {err}");
    assert!(err.contains("boom in handler"), "stderr: {err}");
    assert!(!err.contains("child survived"));
}

// ---------------------------------------------------------------- timing

type AddFn = extern "C" fn(i32, i32) -> i32;

#[inline(never)]
extern "C" fn direct_add(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

extern "C" fn raw_add(_ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: two ints in, an int out.
    unsafe {
        let a = *(*args as *const i32);
        let b = *(*args.add(1) as *const i32);
        *(ret as *mut i32) = a.wrapping_add(b);
    }
}

/// Not an assertion: prints rough timings (run with --nocapture).
#[test]
fn rough_timings() {
    use std::hint::black_box;
    use std::time::Instant;
    let s = sig(SYSV, int(), vec![int(), int()]);
    let _warm = Closure::new(&s, |_, _| {}).unwrap();

    let n = 100_000;
    let t = Instant::now();
    for _ in 0..n {
        black_box(Closure::new(&s, |_, _| {}).unwrap());
    }
    let create = t.elapsed().as_nanos() as f64 / n as f64;

    let calls = 2_000_000;
    let direct: extern "C" fn(i32, i32) -> i32 = black_box(direct_add);
    let t = Instant::now();
    let mut acc = 0i32;
    for i in 0..calls {
        acc = acc.wrapping_add(direct(black_box(i), 1));
    }
    let d = t.elapsed().as_nanos() as f64 / calls as f64;
    black_box(acc);

    // SAFETY: raw_add ignores ctx.
    let c = unsafe { Closure::new_raw(&s, raw_add, std::ptr::null_mut()) }.unwrap();
    // SAFETY: the closure has this C type.
    let f: extern "C" fn(i32, i32) -> i32 =
        black_box(unsafe { std::mem::transmute::<*const c_void, AddFn>(c.code_ptr()) });
    let t = Instant::now();
    for i in 0..calls {
        acc = acc.wrapping_add(f(black_box(i), 1));
    }
    let raw = t.elapsed().as_nanos() as f64 / calls as f64;
    assert_eq!(f(2, 3), 5);

    let c = Closure::new(&s, |args, ret| {
        // SAFETY: two ints in, an int out.
        unsafe {
            *(ret as *mut i32) = (*(args[0] as *const i32)).wrapping_add(*(args[1] as *const i32))
        }
    })
    .unwrap();
    // SAFETY: the closure has this C type.
    let g: extern "C" fn(i32, i32) -> i32 =
        black_box(unsafe { std::mem::transmute::<*const c_void, AddFn>(c.code_ptr()) });
    let t = Instant::now();
    for i in 0..calls {
        acc = acc.wrapping_add(g(black_box(i), 1));
    }
    let rust = t.elapsed().as_nanos() as f64 / calls as f64;
    black_box(acc);
    println!(
        "closure create+free: {create:.1} ns; call: direct {d:.2} ns, \
         closure (raw handler) {raw:.2} ns, closure (Rust Fn, catch_unwind) {rust:.2} ns"
    );
}
