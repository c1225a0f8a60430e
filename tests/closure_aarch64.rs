//! Reverse closures on AArch64, called from C (aarch64-linux-gnu-gcc -O2)
//! through function pointers of each type, under qemu-user (see
//! `.ci/aarch64.sh`). The argument values are fixed in
//! tests/c/closure_callers_aarch64.c and repeated here as expected bytes;
//! nothing expected is computed by the code under test.
//!
//! Apple arm64 closures are exercised two ways: by C callers that lay out
//! registers and stack words by hand as Apple's document says, and by
//! jitffi's own Apple-convention forward trampolines.
#![cfg(all(target_arch = "aarch64", target_os = "linux"))]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use jitffi::call::{ArgMode, Trampoline};
use jitffi::cdecl::parse_signature;
use jitffi::closure::Closure;
use jitffi::{Abi, Signature};

// ---------------------------------------------------------------- helpers

/// The C compiler for AArch64 code: `$CC_aarch64_unknown_linux_gnu`, `$CC`,
/// `aarch64-linux-gnu-gcc` if present, else `gcc` (a native AArch64 host).
fn compiler() -> String {
    for var in ["CC_aarch64_unknown_linux_gnu", "CC"] {
        if let Ok(cc) = std::env::var(var) {
            if !cc.is_empty() {
                return cc;
            }
        }
    }
    let cross = "aarch64-linux-gnu-gcc";
    let found = Command::new(cross)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found { cross } else { "gcc" }.to_string()
}

fn callers() -> &'static libloading::Library {
    static LIB: OnceLock<libloading::Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("closure_callers_aarch64");
        std::fs::create_dir_all(&dir).unwrap();
        let src =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/c/closure_callers_aarch64.c");
        let out = dir.join(format!("libclosure_callers_{}.so", std::process::id()));
        let cc = compiler();
        let o = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O2", "-std=gnu11", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("run {cc}: {e}"));
        assert!(
            o.status.success(),
            "{cc} failed:\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        // SAFETY: our own test library; it has no initialisers.
        unsafe { libloading::Library::new(&out) }.expect("load the callers")
    })
}

/// A caller from the C library.
fn caller<T: Copy>(name: &str) -> T {
    // SAFETY: each test names the C function with the matching Rust type.
    unsafe { *callers().get::<T>(name.as_bytes()).unwrap() }
}

fn sig(decl: &str) -> Signature {
    parse_signature(decl, Abi::Aapcs64).unwrap_or_else(|e| panic!("{decl}: {e}"))
}

fn apple(decl: &str) -> Signature {
    parse_signature(decl, Abi::AppleArm64).unwrap_or_else(|e| panic!("{decl}: {e}"))
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

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn f64s(v: &[f64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn i64s(v: &[i64]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}
fn i32b(x: i32) -> Vec<u8> {
    x.to_le_bytes().to_vec()
}

/// IEEE 754 binary128 encoding (AAPCS64 long double) of a normal f64:
/// sign bit 127, 15-bit exponent biased by 16383 in bits 112–126, 112-bit
/// fraction (the f64's 52 fraction bits at the top).
fn f128(x: f64) -> [u8; 16] {
    let bits = x.to_bits();
    let sign = (bits >> 63) as u128;
    let exp = ((bits >> 52) & 0x7ff) as u128;
    assert!(exp != 0 && exp != 0x7ff, "test helper: normal values only");
    let e = exp - 1023 + 16383;
    let frac = ((bits & ((1 << 52) - 1)) as u128) << 60;
    ((sign << 127) | (e << 112) | frac).to_le_bytes()
}

#[test]
fn f128_helper_matches_the_standard() {
    // 1.0: exponent 0x3fff, fraction 0.
    let mut one = [0u8; 16];
    one[14] = 0xff;
    one[15] = 0x3f;
    assert_eq!(f128(1.0), one);
    // -2.5 = -1.25 * 2^1: exponent 0x4000, fraction .01 (bit 110), sign.
    let want = (1u128 << 127) | (0x4000u128 << 112) | (1u128 << 110);
    assert_eq!(f128(-2.5), want.to_le_bytes());
}

// ---------------------------------------------------------------- AAPCS64

#[test]
fn hfa_floats_in_s0_s2_doubles_in_d3_d6_out_s0_s2() {
    let s =
        sig("typedef struct {float x,y,z;} v3; typedef struct {double a,b,c,d;} d4; v3 f(v3, d4);");
    let (c, got) = recorder(&s, f32s(&[4.0, 5.0, -6.5]));
    let f: extern "C" fn(*const c_void, *mut [f32; 3]) = caller("call_hfa3");
    let mut out = [0f32; 3];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [4.0, 5.0, -6.5]);
    assert_eq!(
        seen(&got),
        vec![
            f32s(&[1.5, -2.25, 3.0]),
            f64s(&[10.5, 20.25, -30.125, 40.0])
        ]
    );
}

#[test]
fn four_doubles_in_d0_d3_both_ways() {
    let s = sig("typedef struct {double a,b,c,d;} d4; d4 f(d4);");
    let (c, got) = recorder(&s, f64s(&[-1.0, -2.0, -3.0, -4.0]));
    let f: extern "C" fn(*const c_void, *mut [f64; 4]) = caller("call_hfa4");
    let mut out = [0f64; 4];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [-1.0, -2.0, -3.0, -4.0]);
    assert_eq!(seen(&got), vec![f64s(&[1.0, 2.0, 3.0, 4.5])]);
}

#[test]
fn case14_nested_hfa_in_s0_s3() {
    let s = sig("typedef struct {struct {float a,b;} p; float c[2];} s; s f(s);");
    let (c, got) = recorder(&s, f32s(&[9.0, 8.0, 7.0, 6.0]));
    let f: extern "C" fn(*const c_void, *mut [f32; 4]) = caller("call_nest");
    let mut out = [0f32; 4];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [9.0, 8.0, 7.0, 6.0]);
    assert_eq!(seen(&got), vec![f32s(&[0.5, 1.5, 2.5, -3.5])]);
}

#[test]
fn case7_five_doubles_by_reference_in_result_through_x8() {
    let s = sig("typedef struct {double a,b,c,d,e;} d5; d5 f(d5, int);");
    let got: Seen = Arc::new(Mutex::new(Vec::new()));
    let g2 = got.clone();
    let c = Closure::new(&s, move |args, r| {
        // SAFETY: args[0] is the caller's 40-byte copy, args[1] an int; the
        // callee owns its copy (AAPCS64 B.4) and may write it.
        unsafe {
            let a = std::slice::from_raw_parts(args[0] as *const u8, 40).to_vec();
            let k = std::slice::from_raw_parts(args[1] as *const u8, 4).to_vec();
            *g2.lock().unwrap() = vec![a, k];
            std::ptr::write_bytes(args[0] as *mut u8, 0xff, 40);
            let out = f64s(&[0.5, -1.5, 2.5, -3.5, 4.5]);
            std::ptr::copy_nonoverlapping(out.as_ptr(), r as *mut u8, 40);
        }
    })
    .unwrap();
    let f: extern "C" fn(*const c_void, *mut [f64; 5], *mut [f64; 5]) = caller("call_big5");
    let (mut out, mut after) = ([0f64; 5], [0f64; 5]);
    f(c.code_ptr(), &mut out, &mut after);
    assert_eq!(out, [0.5, -1.5, 2.5, -3.5, 4.5]);
    assert_eq!(
        after,
        [1.25, 2.5, 3.75, 5.0, 6.25],
        "the caller's value changed"
    );
    assert_eq!(
        seen(&got),
        vec![f64s(&[1.25, 2.5, 3.75, 5.0, 6.25]), i32b(-7)]
    );
}

#[test]
fn case8_result_through_x8_int_in_w0() {
    let s = sig("typedef struct {long long a,b,c;} ll3; ll3 f(int);");
    let (c, got) = recorder(&s, i64s(&[1, -2, 1 << 40]));
    let f: extern "C" fn(*const c_void, *mut [i64; 3]) = caller("call_ll3");
    let mut out = [0i64; 3];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [1, -2, 1 << 40]);
    assert_eq!(seen(&got), vec![i32b(41)]);
}

#[test]
fn int128_pairs() {
    let a = (0x0123456789abcdef_i128 << 64) | 0xfedcba9876543210_i128;
    let b = -(5i128 << 70);
    let r = (0x55i128 << 100) | 0x66;
    let s = sig("__int128 f(__int128, int, __int128);");
    let (c, got) = recorder(&s, r.to_le_bytes().to_vec());
    let f: extern "C" fn(*const c_void, *mut i128) = caller("call_i128");
    let mut out = 0i128;
    f(c.code_ptr(), &mut out);
    assert_eq!(out, r);
    assert_eq!(
        seen(&got),
        vec![a.to_le_bytes().to_vec(), i32b(3), b.to_le_bytes().to_vec()]
    );

    // Case 22: x2:x3 after w0 (x1 skipped, AAPCS64 C.10).
    let s = sig("__int128 f(int, __int128);");
    let (c, got) = recorder(&s, (-1i128).to_le_bytes().to_vec());
    let f: extern "C" fn(*const c_void, *mut i128) = caller("call_i128_skip");
    f(c.code_ptr(), &mut out);
    assert_eq!(out, -1);
    assert_eq!(
        seen(&got),
        vec![i32b(9), ((7i128 << 64) | 11).to_le_bytes().to_vec()]
    );
}

#[test]
fn case27_long_double_in_q_registers() {
    let s = sig("long double f(long double, int, long double);");
    let (c, got) = recorder(&s, f128(-7.5).to_vec());
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_ld");
    assert_eq!(f(c.code_ptr()), -7.5);
    assert_eq!(
        seen(&got),
        vec![f128(1.25).to_vec(), i32b(5), f128(-2.5).to_vec()]
    );
}

#[test]
fn case24_eight_ll_then_char_short_int_char_on_the_stack() {
    let s = sig("long long f(long long, long long, long long, long long, long long, long long, long long, long long, char, short, int, char);");
    let (c, got) = recorder(&s, 0x0102030405060708i64.to_le_bytes().to_vec());
    let f: extern "C" fn(*const c_void) -> i64 = caller("call_spill");
    assert_eq!(f(c.code_ptr()), 0x0102030405060708);
    let mut want: Vec<Vec<u8>> = [1i64, -2, 3, -4, 5, -6, 7, i64::MAX]
        .iter()
        .map(|x| x.to_le_bytes().to_vec())
        .collect();
    want.push(vec![200]);
    want.push((-1234i16).to_le_bytes().to_vec());
    want.push(i32b(0x12345678));
    want.push(vec![b'z']);
    assert_eq!(seen(&got), want);
}

#[test]
fn case25_variadic_double_in_d0_int_in_w1() {
    let s = sig("int f(int, ..., double, int);");
    let (c, got) = recorder(&s, i32b(77));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_var25");
    assert_eq!(f(c.code_ptr()), 77);
    assert_eq!(seen(&got), vec![i32b(2), f64s(&[2.5]), i32b(3)]);

    let s = sig("double f(int, ..., double, double, double, int);");
    let (c, got) = recorder(&s, f64s(&[0.125]));
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_vard");
    assert_eq!(f(c.code_ptr()), 0.125);
    assert_eq!(
        seen(&got),
        vec![
            i32b(4),
            f64s(&[1.5]),
            f64s(&[-2.5]),
            f64s(&[3.25]),
            i32b(100)
        ]
    );
}

#[test]
fn small_composites_in_x_registers() {
    // Case 1/2: struct {float a,b; int c;} in x0,x1 and back.
    let s = sig("typedef struct {float a,b; int c;} s; s f(s, int);");
    let ret = cat(&[&f32s(&[0.25, -0.5]), &i32b(-9)]);
    let (c, got) = recorder(&s, ret.clone());
    let f: extern "C" fn(*const c_void, *mut [u8; 12]) = caller("call_ffi");
    let mut out = [0u8; 12];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), ret);
    assert_eq!(
        seen(&got),
        vec![cat(&[&f32s(&[1.25, -2.5]), &i32b(77)]), i32b(9)]
    );

    // Case 9: struct {float a; double b;}: x0,x1 (not an HFA).
    let s = sig("typedef struct {float a; double b;} s; s f(s);");
    let ret = cat(&[&f32s(&[3.5]), &[0; 4], &f64s(&[-0.25])]);
    let (c, got) = recorder(&s, ret.clone());
    let f: extern "C" fn(*const c_void, *mut [u8; 16]) = caller("call_fd");
    let mut out = [0u8; 16];
    f(c.code_ptr(), &mut out);
    assert_eq!(&out[..4], &ret[..4]);
    assert_eq!(&out[8..], &ret[8..]);
    let g = seen(&got);
    assert_eq!(&g[0][..4], &f32s(&[0.75])[..]);
    assert_eq!(&g[0][8..], &f64s(&[-8.5])[..]);

    // Case 10: packed struct {char c; int i;} (5 bytes) in x0; 5-byte
    // result assembled from exact loads.
    let s = sig("typedef struct __attribute__((packed)) {char c; int i;} s; s f(s, int);");
    let ret = cat(&[b"Z", &i32b(0x0a0b0c0d)]);
    let (c, got) = recorder(&s, ret.clone());
    let f: extern "C" fn(*const c_void, *mut [u8; 5]) = caller("call_packed");
    let mut out = [0u8; 5];
    f(c.code_ptr(), &mut out);
    assert_eq!(out.to_vec(), ret);
    assert_eq!(seen(&got), vec![cat(&[b"q", &i32b(-123456)]), i32b(5)]);

    // Case 13: union {double d; float f[2];} in x0 (not an HFA).
    let s = sig("typedef union {double d; float f[2];} u; u f(u);");
    let (c, got) = recorder(&s, f64s(&[-11.0]));
    let f: extern "C" fn(*const c_void, *mut f64) = caller("call_udf");
    let mut out = 0f64;
    f(c.code_ptr(), &mut out);
    assert_eq!(out, -11.0);
    assert_eq!(seen(&got), vec![f64s(&[6.5])]);

    // A 3-byte composite both ways.
    let s = sig("typedef struct {char a,b,c;} s; s f(s, int);");
    let (c, got) = recorder(&s, b"xyz".to_vec());
    let f: extern "C" fn(*const c_void, *mut [u8; 3]) = caller("call_c3");
    let mut out = [0u8; 3];
    f(c.code_ptr(), &mut out);
    assert_eq!(&out, b"xyz");
    assert_eq!(seen(&got), vec![b"abc".to_vec(), i32b(12)]);
}

#[test]
fn case19_hfa_on_the_stack_and_no_backfill() {
    let s = sig("typedef struct {double a,b,c;} d3; double f(double, double, double, double, double, double, d3, double);");
    let (c, got) = recorder(&s, f64s(&[-0.5]));
    let f: extern "C" fn(*const c_void) -> f64 = caller("call_nbf");
    assert_eq!(f(c.code_ptr()), -0.5);
    let mut want: Vec<Vec<u8>> = (1..=6).map(|k| f64s(&[k as f64])).collect();
    want.push(f64s(&[7.5, 8.5, 9.5]));
    want.push(f64s(&[10.25]));
    assert_eq!(seen(&got), want);
}

#[test]
fn case20_struct_on_the_stack_not_split() {
    let s = sig("typedef struct {long long a,b;} s; long long f(long long, long long, long long, long long, long long, long long, long long, s, long long);");
    let (c, got) = recorder(&s, 5i64.to_le_bytes().to_vec());
    let f: extern "C" fn(*const c_void) -> i64 = caller("call_ns");
    assert_eq!(f(c.code_ptr()), 5);
    let mut want: Vec<Vec<u8>> = (1..=7i64).map(|k| i64s(&[k])).collect();
    want.push(i64s(&[0x1111111111, -0x2222222222]));
    want.push(i64s(&[99]));
    assert_eq!(seen(&got), want);
}

#[test]
fn large_composites_by_reference_in_x0_and_on_the_stack() {
    let s = sig("typedef struct {unsigned char b[40];} blob; int f(blob, long long, long long, long long, long long, long long, long long, long long, blob);");
    let (c, got) = recorder(&s, i32b(-3));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_blobs");
    assert_eq!(f(c.code_ptr()), -3);
    let mut want = vec![(1..=40u8).collect::<Vec<u8>>()];
    want.extend((2..=8i64).map(|k| i64s(&[k])));
    want.push((0..40u8).map(|i| 200 - i).collect());
    assert_eq!(seen(&got), want);
}

#[test]
fn case28_complex_double_in_d0_d1() {
    let s = sig("_Complex double f(_Complex double);");
    let (c, got) = recorder(&s, f64s(&[-4.0, 0.5]));
    let f: extern "C" fn(*const c_void, *mut [f64; 2]) = caller("call_cd");
    let mut out = [0f64; 2];
    f(c.code_ptr(), &mut out);
    assert_eq!(out, [-4.0, 0.5]);
    assert_eq!(seen(&got), vec![f64s(&[1.5, 2.5])]);
}

#[test]
fn narrow_integers_in_and_out() {
    let s = sig("int f(signed char, unsigned short, _Bool);");
    let (c, got) = recorder(&s, i32b(9));
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_narrow");
    assert_eq!(f(c.code_ptr()), 9);
    assert_eq!(
        seen(&got),
        vec![vec![0xfb], 65000u16.to_le_bytes().to_vec(), vec![1]]
    );

    // The C caller extends the narrow result itself (AAPCS64 leaves the
    // upper bits to the caller).
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_schar");
    let (c, got) = recorder(&sig("signed char f(int);"), vec![0x9c]); // -100
    assert_eq!(f(c.code_ptr()), -100);
    assert_eq!(seen(&got), vec![i32b(1)]);
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_ushort");
    let (c, _) = recorder(
        &sig("unsigned short f(int);"),
        65001u16.to_le_bytes().to_vec(),
    );
    assert_eq!(f(c.code_ptr()), 65001);
    let f: extern "C" fn(*const c_void) -> i32 = caller("call_ret_bool");
    let (c, _) = recorder(&sig("_Bool f(int);"), vec![1]);
    assert_eq!(f(c.code_ptr()), 1);
}

#[test]
fn floats_in_v_registers_then_on_the_stack() {
    let s =
        sig("float f(float, double, float, double, float, double, float, double, float, double);");
    let (c, got) = recorder(&s, f32s(&[-1.75]));
    let f: extern "C" fn(*const c_void) -> f32 = caller("call_floats");
    assert_eq!(f(c.code_ptr()), -1.75);
    let want: Vec<Vec<u8>> = (0..10)
        .map(|k| {
            let v = 1.5 + k as f64;
            if k % 2 == 0 {
                f32s(&[v as f32])
            } else {
                f64s(&[v])
            }
        })
        .collect();
    assert_eq!(seen(&got), want);
}

// ---------------------------------------------------------------- libc

extern "C" {
    fn qsort(
        base: *mut c_void,
        n: usize,
        size: usize,
        cmp: extern "C" fn(*const c_void, *const c_void) -> i32,
    );
}

#[test]
fn qsort_with_a_rust_comparator() {
    let s = sig("int f(const void *, const void *);");
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let calls2 = calls.clone();
    let cmp = Closure::new(&s, move |args, ret| {
        calls2.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // SAFETY: args[i] points at a `const void *` that points at an i64.
        let (a, b) = unsafe {
            let pa = *(args[0] as *const *const i64);
            let pb = *(args[1] as *const *const i64);
            (*pa, *pb)
        };
        // SAFETY: ret holds an int.
        unsafe { *(ret as *mut i32) = a.cmp(&b) as i32 };
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
}

// ---------------------------------------------------------------- conformance

std::arch::global_asm!(
    // handler(ctx, args, ret): *(u64 *)ctx = sp at entry; *(int *)ret = 0.
    ".globl jitffi_a64_align_probe",
    "jitffi_a64_align_probe:",
    "    mov x9, sp",
    "    str x9, [x0]",
    "    str wzr, [x2]",
    "    ret",
    // handler(ctx, args, ret): *(int *)ret = 42, then clobbers every
    // register AAPCS64 lets a callee clobber: x0-x17 (not x18, the
    // platform register), v0-v7 and v16-v31 whole, the upper halves of
    // v8-v15 ("Procedure Call Standard", SIMD and Floating-Point Registers:
    // only the bottom 64 bits of v8-v15 are preserved).
    ".globl jitffi_a64_clobber",
    "jitffi_a64_clobber:",
    "    mov w9, #42",
    "    str w9, [x2]",
    "    movz x9, #0x5a5a, lsl #48",
    "    movk x9, #0x5a5a, lsl #32",
    ".irp r, 0, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16, 17",
    "    mov x\\r, x9",
    ".endr",
    ".irp r, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31",
    "    dup v\\r\\().2d, x9",
    ".endr",
    ".irp r, 8, 9, 10, 11, 12, 13, 14, 15",
    "    mov v\\r\\().d[1], x9",
    ".endr",
    "    ret",
    // handler(ctx, args, ret): breaks AAPCS64 on purpose (x19 and d8 not
    // preserved), to show the canary checker sees it.
    ".globl jitffi_a64_bad_handler",
    "jitffi_a64_bad_handler:",
    "    str wzr, [x2]",
    "    mov x19, #0",
    "    fmov d8, xzr",
    "    ret",
    // void canary_call(fn /* x0 */, u64 out[3] /* x1 */): saves its own
    // callee-saved registers, sets x19-x28 and d8-d15 to canaries, calls
    // fn(), then out[0] = OR of (xN ^ canary) over x19-x28 and (sp ^ x29),
    // out[1] = OR of (dN ^ canary) over d8-d15, out[2] = x0 returned;
    // restores its registers.
    ".globl jitffi_a64_canary_call",
    "jitffi_a64_canary_call:",
    "    stp x29, x30, [sp, #-176]!",
    "    mov x29, sp",
    "    stp x19, x20, [sp, #16]",
    "    stp x21, x22, [sp, #32]",
    "    stp x23, x24, [sp, #48]",
    "    stp x25, x26, [sp, #64]",
    "    stp x27, x28, [sp, #80]",
    "    stp d8, d9, [sp, #96]",
    "    stp d10, d11, [sp, #112]",
    "    stp d12, d13, [sp, #128]",
    "    stp d14, d15, [sp, #144]",
    "    str x1, [sp, #160]",
    "    mov x9, x0",
    ".irp r, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28",
    "    movz x\\r, #0x1111, lsl #48",
    "    movk x\\r, #0x2222, lsl #32",
    "    movk x\\r, #0x3333, lsl #16",
    "    movk x\\r, #\\r",
    ".endr",
    ".irp r, 8, 9, 10, 11, 12, 13, 14, 15",
    "    movz x10, #0x4444, lsl #48",
    "    movk x10, #0x5555, lsl #32",
    "    movk x10, #0x6666, lsl #16",
    "    movk x10, #\\r",
    "    fmov d\\r, x10",
    ".endr",
    "    blr x9",
    "    mov x11, sp",
    "    eor x11, x11, x29",
    ".irp r, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28",
    "    movz x10, #0x1111, lsl #48",
    "    movk x10, #0x2222, lsl #32",
    "    movk x10, #0x3333, lsl #16",
    "    movk x10, #\\r",
    "    eor x10, x10, x\\r",
    "    orr x11, x11, x10",
    ".endr",
    "    mov x13, #0",
    ".irp r, 8, 9, 10, 11, 12, 13, 14, 15",
    "    movz x10, #0x4444, lsl #48",
    "    movk x10, #0x5555, lsl #32",
    "    movk x10, #0x6666, lsl #16",
    "    movk x10, #\\r",
    "    fmov x12, d\\r",
    "    eor x10, x10, x12",
    "    orr x13, x13, x10",
    ".endr",
    "    ldr x1, [x29, #160]",
    "    stp x11, x13, [x1]",
    "    str x0, [x1, #16]",
    "    ldp x19, x20, [x29, #16]",
    "    ldp x21, x22, [x29, #32]",
    "    ldp x23, x24, [x29, #48]",
    "    ldp x25, x26, [x29, #64]",
    "    ldp x27, x28, [x29, #80]",
    "    ldp d8, d9, [x29, #96]",
    "    ldp d10, d11, [x29, #112]",
    "    ldp d12, d13, [x29, #128]",
    "    ldp d14, d15, [x29, #144]",
    "    mov sp, x29",
    "    ldp x29, x30, [sp], #176",
    "    ret",
);

// SAFETY: the declarations match the assembly above; the handlers are safe
// to call with the pointers a closure body passes.
unsafe extern "C" {
    safe fn jitffi_a64_align_probe(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);
    safe fn jitffi_a64_clobber(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);
    safe fn jitffi_a64_bad_handler(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);
    fn jitffi_a64_canary_call(f: *const c_void, out: *mut [u64; 3]);
}

#[test]
fn handler_entered_with_16_byte_aligned_stack() {
    let cases = [
        ("int f(void);", "call_void"),
        ("int f(int, int);", "call_ii"),
        (
            "int f(int, int, int, int, int, int, int, int, int, int, int);",
            "call_stack3",
        ),
    ];
    for (decl, name) in cases {
        let s = sig(decl);
        let mut sp: u64 = 1;
        // SAFETY: the probe writes one u64 through ctx, which outlives the
        // closure, and 4 bytes of result (the buffers hold at least 16).
        let c =
            unsafe { Closure::new_raw(&s, jitffi_a64_align_probe, (&mut sp as *mut u64).cast()) }
                .unwrap();
        let f: extern "C" fn(*const c_void) -> i32 = caller(name);
        assert_eq!(f(c.code_ptr()), 0);
        assert_ne!(sp, 1, "{decl}: handler not called");
        assert_eq!(sp % 16, 0, "{decl}: sp at handler entry is {sp:#x}");
    }
    // Floats: returns a float; the probe's 0 int is 0.0.
    let s =
        sig("float f(float, double, float, double, float, double, float, double, float, double);");
    let mut sp: u64 = 1;
    // SAFETY: as above.
    let c = unsafe { Closure::new_raw(&s, jitffi_a64_align_probe, (&mut sp as *mut u64).cast()) }
        .unwrap();
    let f: extern "C" fn(*const c_void) -> f32 = caller("call_floats");
    assert_eq!(f(c.code_ptr()), 0.0);
    assert_eq!(sp % 16, 0, "sp at handler entry is {sp:#x}");
}

#[test]
fn callee_saved_registers_survive_a_closure_call() {
    for abi in [Abi::Aapcs64, Abi::AppleArm64] {
        let s = parse_signature("int f(void);", abi).unwrap();
        // SAFETY: the clobber handler ignores ctx and writes an int result.
        let c = unsafe { Closure::new_raw(&s, jitffi_a64_clobber, std::ptr::null_mut()) }.unwrap();
        let mut out = [u64::MAX; 3];
        // SAFETY: canary_call calls a function taking no arguments.
        unsafe { jitffi_a64_canary_call(c.code_ptr(), &mut out) };
        assert_eq!(out[0], 0, "{abi}: x19-x28 or sp/fp corrupted");
        assert_eq!(out[1], 0, "{abi}: d8-d15 corrupted");
        assert_eq!(out[2] as u32, 42, "{abi}: result");
    }
    // The checker itself detects corruption.
    let s = sig("int f(void);");
    // SAFETY: the bad handler writes an int result; canary_call restores
    // its own caller's registers whatever the callee did.
    let c = unsafe { Closure::new_raw(&s, jitffi_a64_bad_handler, std::ptr::null_mut()) }.unwrap();
    let mut out = [0u64; 3];
    // SAFETY: as above.
    unsafe { jitffi_a64_canary_call(c.code_ptr(), &mut out) };
    assert_ne!(out[0], 0, "the canary checker cannot see x19 clobbered");
    assert_ne!(out[1], 0, "the canary checker cannot see d8 clobbered");
}

// ---------------------------------------------------------------- lifecycle

#[test]
fn eight_threads_create_call_free() {
    let s = sig("int f(int, int);");
    let handles: Vec<_> = (0..8)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                // Code installed by another thread: isb first.
                jitffi::exec::prepare_for_execution();
                for i in 0..2_000i32 {
                    let k = t * 1_000_000 + i;
                    let c = Closure::new(&s, move |args, ret| {
                        // SAFETY: two ints in, an int out.
                        unsafe {
                            let a = *(args[0] as *const i32);
                            let b = *(args[1] as *const i32);
                            *(ret as *mut i32) = a * 3 + b + k;
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
        let s = sig(&format!("int f({});", vec!["int"; n % 9 + 1].join(", ")));
        keep.push(recorder(&s, i32b(0)).0);
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

// ---------------------------------------------------------------- Apple arm64

/// Apple case 24 from a hand-laid-out caller: the stack arguments packed at
/// 0/2/4/8 ("Writing ARM64 code for Apple platforms": "function arguments
/// may consume slots on the stack that are not multiples of 8 bytes").
#[test]
fn apple_case24_packed_stack_from_a_c_caller() {
    let s = apple("long long f(long long, long long, long long, long long, long long, long long, long long, long long, char, short, int, char);");
    let (c, got) = recorder(&s, (-99i64).to_le_bytes().to_vec());
    let f: extern "C" fn(*const c_void) -> i64 = caller("apple_call_spill");
    assert_eq!(f(c.code_ptr()), -99);
    let mut want: Vec<Vec<u8>> = [1i64, -2, 3, -4, 5, -6, 7, i64::MAX]
        .iter()
        .map(|x| x.to_le_bytes().to_vec())
        .collect();
    want.push(vec![200]);
    want.push((-1234i16).to_le_bytes().to_vec());
    want.push(i32b(0x12345678));
    want.push(vec![b'z']);
    assert_eq!(seen(&got), want);
}

/// Apple case 25 from a hand-laid-out caller: "the caller places all
/// variadic arguments on the stack" (2.5 at 0, 3 at 8), x1-x7 are junk.
#[test]
fn apple_case25_variadic_on_the_stack_from_a_c_caller() {
    let s = apple("int f(int, ..., double, int);");
    let (c, got) = recorder(&s, i32b(-5));
    let f: extern "C" fn(*const c_void) -> i32 = caller("apple_call_var25");
    assert_eq!(f(c.code_ptr()), -5);
    assert_eq!(seen(&got), vec![i32b(2), f64s(&[2.5]), i32b(3)]);
}

/// Apple: the callee extends a narrow result to 32 bits (by its type's
/// signedness), so w0 read as an int is the value.
#[test]
fn apple_narrow_results_are_extended_by_the_callee() {
    let f: extern "C" fn(*const c_void) -> i32 = caller("apple_call_ret_schar");
    let (c, _) = recorder(&apple("signed char f(int);"), vec![0x9c]); // -100
    assert_eq!(f(c.code_ptr()), -100);
    let f: extern "C" fn(*const c_void) -> i32 = caller("apple_call_ret_ushort");
    let (c, _) = recorder(
        &apple("unsigned short f(int);"),
        65001u16.to_le_bytes().to_vec(),
    );
    assert_eq!(f(c.code_ptr()), 65001);
    // Linux leaves it to the caller: the same closure shape returns the
    // low byte only as far as the ABI is concerned.
    let f: extern "C" fn(*const c_void) -> i32 = caller("apple_call_ret_schar");
    let (c, _) = recorder(&sig("signed char f(int);"), vec![0x9c]);
    assert_eq!(f(c.code_ptr()) & 0xff, 0x9c);
}

/// Calls an Apple closure through an Apple forward trampoline (jitffi
/// talking to itself) with `args` and checks the handler saw exactly those
/// bytes and the caller got the handler's result.
fn apple_round_trip(decl: &str, args: Vec<Vec<u8>>, ret: Vec<u8>) {
    let s = apple(decl);
    assert_eq!(s.args.len(), args.len(), "test bug: {decl}");
    let (c, got) = recorder(&s, ret.clone());
    let t = Trampoline::compile(&s, ArgMode::Pointers, None).unwrap_or_else(|e| panic!("{e}"));
    // 16-byte aligned copies of the arguments.
    let store: Vec<Vec<u128>> = args
        .iter()
        .map(|a| {
            let mut v = vec![0u128; a.len().div_ceil(16).max(1)];
            // SAFETY: v has room for a.len() bytes.
            unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), v.as_mut_ptr().cast(), a.len()) };
            v
        })
        .collect();
    let ptrs: Vec<*const c_void> = store.iter().map(|v| v.as_ptr().cast()).collect();
    let mut out = vec![0u128; t.ret_buffer_size().div_ceil(16).max(1)];
    // SAFETY: the target is a closure of this signature; each pointer holds
    // its argument; `out` holds ret_buffer_size bytes.
    unsafe { t.call(c.code_ptr(), &ptrs, out.as_mut_ptr().cast()) }.unwrap();
    // SAFETY: out covers ret.len() bytes.
    let got_ret = unsafe { std::slice::from_raw_parts(out.as_ptr().cast::<u8>(), ret.len()) };
    assert_eq!(got_ret, &ret[..], "{decl}: result");
    assert_eq!(seen(&got), args, "{decl}: arguments");
}

#[test]
fn apple_trampoline_to_apple_closure_case24() {
    let mut args: Vec<Vec<u8>> = [1i64, -2, 3, -4, 5, -6, 7, i64::MAX]
        .iter()
        .map(|x| x.to_le_bytes().to_vec())
        .collect();
    args.push(vec![200]);
    args.push((-1234i16).to_le_bytes().to_vec());
    args.push(i32b(0x12345678));
    args.push(vec![b'z']);
    apple_round_trip(
        "long long f(long long, long long, long long, long long, long long, long long, long long, long long, char, short, int, char);",
        args,
        0x1234_5678_9abc_def0i64.to_le_bytes().to_vec(),
    );
}

#[test]
fn apple_trampoline_to_apple_closure_case25_variadic() {
    apple_round_trip(
        "int f(int, ..., double, int);",
        vec![i32b(2), f64s(&[2.5]), i32b(3)],
        i32b(31),
    );
    // More variadic shapes: a small struct and a double after a pointer.
    apple_round_trip(
        "typedef struct {double a,b;} s; double f(const char *, ..., s, double, long long);",
        vec![
            0x1000usize.to_le_bytes().to_vec(),
            f64s(&[1.5, -2.5]),
            f64s(&[3.75]),
            i64s(&[-8]),
        ],
        f64s(&[0.5]),
    );
}

#[test]
fn apple_trampoline_to_apple_closure_hfa_spilled_member_by_member() {
    // Eight doubles fill v0-v7; the HFA goes on the stack (AAPCS64 C.3),
    // Apple: member by member at natural alignment, after a packed short.
    let mut args: Vec<Vec<u8>> = (1..=8).map(|k| f64s(&[k as f64])).collect();
    for k in 0..8i64 {
        args.push(i64s(&[k * 11]));
    }
    args.push((-3i16).to_le_bytes().to_vec());
    args.push(f32s(&[0.25, 0.5, 0.75]));
    args.push(vec![0x80]);
    apple_round_trip(
        "typedef struct {float a,b,c;} v3; v3 f(double, double, double, double, double, double, double, double, long long, long long, long long, long long, long long, long long, long long, long long, short, v3, char);",
        args,
        f32s(&[-1.0, -2.0, -3.0]),
    );
}
