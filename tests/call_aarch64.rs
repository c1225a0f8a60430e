//! AArch64 execution: real C functions called through trampolines, compared
//! with C callers that call the same functions directly (gcc is the oracle).
//!
//! The callees, their argument values and the reference callers are one C
//! file (below), compiled with `aarch64-linux-gnu-gcc -shared -fPIC -O2`
//! (or `$CC`, or the host `gcc` on a native AArch64 host) and loaded with
//! libloading. For each case `NAME`:
//! - `NAME` is the callee; it records every argument it received, member by
//!   member (never padding), into `seen`, and returns a value made from them;
//! - `NAME_a0`, `NAME_a1`, ... are globals holding the argument values;
//! - `NAME_ref(void *ret)` calls `NAME` directly with those globals, as gcc
//!   compiles the call, and stores the result in `ret`.
//!
//! The test calls `NAME_ref`, keeps `seen` and the result, then calls `NAME`
//! through four trampolines (pointer / frame mode × unbound / bound) with
//! the same globals as arguments, and compares `seen` and the result bytes.
//!
//! Under qemu-user (see `.ci/aarch64.sh`). Apple arm64 is not executed here:
//! its callees would need Apple's compiler and OS; its plans and code are
//! covered by `golden_aarch64.rs`.
#![cfg(all(target_arch = "aarch64", target_os = "linux"))]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard, OnceLock};

use jitffi::call::{ArgMode, Trampoline};
use jitffi::cdecl::parse_signature;
use jitffi::{Abi, Signature};
use libloading::Library;

const C_SOURCE: &str = r#"
#include <stdarg.h>
#include <string.h>

unsigned char seen[65536];
unsigned seen_len;
void seen_reset(void) { memset(seen, 0xee, sizeof seen); seen_len = 0; }
#define REC(x) do { __typeof__(x) _v = (x); memcpy(seen + seen_len, &_v, sizeof _v); \
                    seen_len += sizeof _v; } while (0)
#define REF(name, call) void name##_ref(void *ret) { __typeof__(call) r = call; \
                                                   memcpy(ret, &r, sizeof r); }
#define REFV(name, call) void name##_ref(void *ret) { (void)ret; call; }

/* 1. HFAs: s0-s2 and d3-d6 in, s0-s2 out (AAPCS64 C.2). */
typedef struct { float x, y, z; } v3;
typedef struct { double a, b, c, d; } d4;
v3 hfa3_a0 = { 1.5f, -2.25f, 3.0f };
d4 hfa3_a1 = { 10.5, 20.25, -30.125, 40.0 };
v3 hfa3(v3 p, d4 q) {
    REC(p.x); REC(p.y); REC(p.z); REC(q.a); REC(q.b); REC(q.c); REC(q.d);
    v3 r = { p.x + (float)q.a, p.y * 2, p.z - (float)q.d };
    return r;
}
REF(hfa3, hfa3(hfa3_a0, hfa3_a1))

/* 2. Four doubles both ways: d0-d3. */
d4 hfa4_a0 = { 1.0, 2.0, 3.0, 4.5 };
d4 hfa4(d4 q) {
    REC(q.a); REC(q.b); REC(q.c); REC(q.d);
    d4 r = { q.d, q.c, q.b, q.a * 3 };
    return r;
}
REF(hfa4, hfa4(hfa4_a0))

/* 3. Five doubles: not an HFA; by reference in, through x8 out. */
typedef struct { double a, b, c, d, e; } d5;
d5 big5_a0 = { 1.25, 2.5, 3.75, 5.0, 6.25 };
int big5_a1 = -7;
d5 big5(d5 p, int k) {
    REC(p.a); REC(p.b); REC(p.c); REC(p.d); REC(p.e); REC(k);
    d5 r = { p.e, p.d, p.c + k, p.b, p.a };
    p.a = 99; /* the callee may write its copy */
    return r;
}
REF(big5, big5(big5_a0, big5_a1))

/* 4. struct {ll a,b,c;} f(int): x8 result, int stays in w0. */
typedef struct { long long a, b, c; } ll3;
int retll3_a0 = 41;
ll3 retll3(int k) { REC(k); ll3 r = { k, -k, (long long)k << 40 }; return r; }
REF(retll3, retll3(retll3_a0))

/* 5. __int128 pairs, even-register alignment (C.10): x0:x1, w2, x4:x5. */
__int128 i128_a0 = ((__int128)0x0123456789abcdefLL << 64) | 0xfedcba9876543210ULL;
int i128_a1 = 3;
__int128 i128_a2 = -((__int128)5 << 70);
__int128 i128(__int128 a, int k, __int128 b) {
    REC(a); REC(k); REC(b);
    return a + b * k;
}
REF(i128, i128(i128_a0, i128_a1, i128_a2))

/* 6. long double (binary128) in q registers. */
long double ld_a0 = 1.0L / 3.0L;
int ld_a1 = 5;
long double ld_a2 = -2.0L / 7.0L;
long double ld(long double a, int k, long double b) {
    REC(a); REC(k); REC(b);
    return a * k + b;
}
REF(ld, ld(ld_a0, ld_a1, ld_a2))

/* 7. Eight long long in x0-x7, then char, short, int, char on the stack. */
long long spill_a0 = 1, spill_a1 = -2, spill_a2 = 3, spill_a3 = -4, spill_a4 = 5,
          spill_a5 = -6, spill_a6 = 7, spill_a7 = 0x7fffffffffffffffLL;
char spill_a8 = (char)200;
short spill_a9 = -1234;
int spill_a10 = 0x12345678;
char spill_a11 = 'z';
long long spill(long long a0, long long a1, long long a2, long long a3, long long a4,
                long long a5, long long a6, long long a7, char c, short s, int i, char d) {
    REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); REC(a7);
    REC(c); REC(s); REC(i); REC(d);
    return a0 + a1 + a2 + a3 + a4 + a5 + a6 + c + s + i + d;
}
REF(spill, spill(spill_a0, spill_a1, spill_a2, spill_a3, spill_a4, spill_a5, spill_a6,
                 spill_a7, spill_a8, spill_a9, spill_a10, spill_a11))

/* 8. Six doubles, an HFA of three that no longer fits (stack, C.3), then a
      double that must not back-fill v6/v7. */
typedef struct { double a, b, c; } d3;
double nbf_a0 = 1, nbf_a1 = 2, nbf_a2 = 3, nbf_a3 = 4, nbf_a4 = 5, nbf_a5 = 6;
d3 nbf_a6 = { 7.5, 8.5, 9.5 };
double nbf_a7 = 10.25;
double nbf(double a0, double a1, double a2, double a3, double a4, double a5, d3 s,
           double last) {
    REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(s.a); REC(s.b); REC(s.c);
    REC(last);
    return a0 + a5 + s.a + s.c + last;
}
REF(nbf, nbf(nbf_a0, nbf_a1, nbf_a2, nbf_a3, nbf_a4, nbf_a5, nbf_a6, nbf_a7))

/* 9. Seven long long, struct {ll a,b;} (stack, not split), long long. */
typedef struct { long long a, b; } ll2;
long long ns_a0 = 1, ns_a1 = 2, ns_a2 = 3, ns_a3 = 4, ns_a4 = 5, ns_a5 = 6, ns_a6 = 7;
ll2 ns_a7 = { 0x1111111111LL, -0x2222222222LL };
long long ns_a8 = 99;
ll2 ns(long long a0, long long a1, long long a2, long long a3, long long a4, long long a5,
       long long a6, ll2 s, long long last) {
    REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); REC(s.a); REC(s.b);
    REC(last);
    ll2 r = { s.a + last, s.b - a6 };
    return r;
}
REF(ns, ns(ns_a0, ns_a1, ns_a2, ns_a3, ns_a4, ns_a5, ns_a6, ns_a7, ns_a8))

/* 10. Small composites in x registers (C.12), odd sizes both ways. */
typedef struct { float a, b; int c; } ffi;
typedef struct { char a, b, c; } c3;
typedef struct __attribute__((packed)) { char c; int i; } pk5;
typedef struct { char c[7]; } c7;
ffi small_a0 = { 1.5f, 2.5f, -3 };
c3 small_a1 = { 'a', 'b', 'c' };
pk5 small_a2 = { 'q', 0x01020304 };
c7 small_a3 = { { 1, 2, 3, 4, 5, 6, 7 } };
int small_a4 = -5;
c7 small(ffi f, c3 t, pk5 p, c7 s, int k) {
    REC(f.a); REC(f.b); REC(f.c); REC(t.a); REC(t.b); REC(t.c); REC(p.c); REC(p.i);
    REC(s); REC(k);
    c7 r = s;
    r.c[0] = t.a; r.c[6] = (char)(p.i + k);
    return r;
}
REF(small, small(small_a0, small_a1, small_a2, small_a3, small_a4))

/* 11. Returned in x0/x1: struct {float a,b; int c;} and a 3-byte struct. */
ffi rffi(int k) { REC(k); ffi r = { k * 0.5f, k * 2.0f, k + 1 }; return r; }
int rffi_a0 = 9;
REF(rffi, rffi(rffi_a0))
c3 rc3(c3 t) { REC(t.a); REC(t.b); REC(t.c); c3 r = { t.c, t.b, t.a }; return r; }
c3 rc3_a0 = { 'x', 'y', 'z' };
REF(rc3, rc3(rc3_a0))

/* 12. Variadic: AAPCS64 (Linux) passes them as if named. */
int vf_a0 = 3;
double vf_a1 = 2.5;
int vf_a2 = 7;
double vf_a3 = -0.75;
int vf(int n, ...) {
    va_list ap;
    va_start(ap, n);
    REC(n);
    double d1 = va_arg(ap, double); REC(d1);
    int i = va_arg(ap, int); REC(i);
    double d2 = va_arg(ap, double); REC(d2);
    va_end(ap);
    return (int)(d1 * 4) + i * 100 + (int)(d2 * 1000) + n;
}
REF(vf, vf(vf_a0, vf_a1, vf_a2, vf_a3))

/* 13. Nine floats and nine doubles: the ninth of each on the stack. */
float ff_a0 = 1, ff_a1 = 2, ff_a2 = 3, ff_a3 = 4, ff_a4 = 5, ff_a5 = 6, ff_a6 = 7,
      ff_a7 = 8, ff_a8 = 9.5f;
double ff_a9 = 0.5;
float ff(float a0, float a1, float a2, float a3, float a4, float a5, float a6, float a7,
         float a8, double d) {
    REC(a0); REC(a1); REC(a2); REC(a3); REC(a4); REC(a5); REC(a6); REC(a7); REC(a8); REC(d);
    return a0 + a7 * 10 + a8 * 100 + (float)d;
}
REF(ff, ff(ff_a0, ff_a1, ff_a2, ff_a3, ff_a4, ff_a5, ff_a6, ff_a7, ff_a8, ff_a9))

/* 14. _Complex double in d0, d1 both ways. */
_Complex double cplx_a0 = 1.5 + 2.5i;
_Complex double cplx(_Complex double z) {
    REC(__real__ z); REC(__imag__ z);
    return z * z;
}
REF(cplx, cplx(cplx_a0))

/* 15. A large composite by reference (copy loop) and a frame over a page. */
typedef struct { unsigned char b[5000]; } blob;
blob blobf_a0;
long long blobf_a1 = 12345;
__attribute__((constructor)) static void blob_init(void) {
    for (int i = 0; i < 5000; i++) blobf_a0.b[i] = (unsigned char)(i * 7 + 3);
}
long long blobf(blob b, long long k) {
    unsigned long long h = 1469598103934665603ULL;
    for (int i = 0; i < 5000; i++) h = (h ^ b.b[i]) * 1099511628211ULL;
    REC(h); REC(k);
    b.b[0] = 0; /* the callee may write its copy */
    return (long long)h ^ k;
}
REF(blobf, blobf(blobf_a0, blobf_a1))

/* 16. Narrow integers (the callee extends them on AAPCS64). */
signed char nar_a0 = -100;
unsigned short nar_a1 = 60000;
_Bool nar_a2 = 1;
int nar(signed char a, unsigned short b, _Bool c) {
    REC(a); REC(b); REC(c);
    return a * 3 + b + c * 1000;
}
REF(nar, nar(nar_a0, nar_a1, nar_a2))

/* 17. void result; struct {float a; double b;} (x0, x1: not an HFA). */
typedef struct { float a; double b; } fd;
fd vd_a0 = { 0.25f, -8.5 };
void vd(fd s) { REC(s.a); REC(s.b); }
REFV(vd, vd(vd_a0))
"#;

/// (name, declaration, argument count).
const CASES: &[(&str, &str, usize)] = &[
    (
        "hfa3",
        "struct {float x,y,z;} f(struct {float x,y,z;}, struct {double a,b,c,d;})",
        2,
    ),
    (
        "hfa4",
        "struct {double a,b,c,d;} f(struct {double a,b,c,d;})",
        1,
    ),
    (
        "big5",
        "struct {double a,b,c,d,e;} f(struct {double a,b,c,d,e;}, int)",
        2,
    ),
    ("retll3", "struct {long long a,b,c;} f(int)", 1),
    ("i128", "__int128 f(__int128, int, __int128)", 3),
    ("ld", "long double f(long double, int, long double)", 3),
    (
        "spill",
        "long long f(long long, long long, long long, long long, long long, long long, \
         long long, long long, char, short, int, char)",
        12,
    ),
    (
        "nbf",
        "double f(double, double, double, double, double, double, \
         struct {double a,b,c;}, double)",
        8,
    ),
    (
        "ns",
        "struct ll2 {long long a,b;} f(long long, long long, long long, long long, \
         long long, long long, long long, struct ll2, long long)",
        9,
    ),
    (
        "small",
        "struct c7 {char c[7];} f(struct {float a,b; int c;}, struct {char a,b,c;}, \
         struct __attribute__((packed)) {char c; int i;}, struct c7, int)",
        5,
    ),
    ("rffi", "struct {float a,b; int c;} f(int)", 1),
    ("rc3", "struct c3 {char a,b,c;} f(struct c3)", 1),
    ("vf", "int f(int, ..., double, int, double)", 4),
    (
        "ff",
        "float f(float, float, float, float, float, float, float, float, float, double)",
        10,
    ),
    ("cplx", "_Complex double f(_Complex double)", 1),
    (
        "blobf",
        "long long f(struct {unsigned char b[5000];}, long long)",
        2,
    ),
    ("nar", "int f(signed char, unsigned short, _Bool)", 3),
    ("vd", "void f(struct {float a; double b;})", 1),
];

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

fn library() -> &'static Library {
    static LIB: OnceLock<Library> = OnceLock::new();
    LIB.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("call_aarch64");
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let src = dir.join("callees.c");
        let so = dir.join("libcallees.so");
        std::fs::write(&src, C_SOURCE).expect("write C source");
        let cc = compiler();
        let out = Command::new(&cc)
            .args(["-shared", "-fPIC", "-O2", "-std=gnu11", "-Wall", "-o"])
            .arg(&so)
            .arg(&src)
            .output()
            .unwrap_or_else(|e| panic!("run {cc}: {e}"));
        assert!(
            out.status.success(),
            "{cc} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // SAFETY: the library is the C file above: its only initialiser
        // fills a global array.
        unsafe { Library::new(&so) }.expect("load the callee library")
    })
}

/// The address of symbol `name` in the callee library.
fn sym(name: &str) -> *const c_void {
    let lib = library();
    // SAFETY: the symbol is only used as an address (a function to call
    // with its declared signature, or a global to read).
    let s = unsafe { lib.get::<*const c_void>(name.as_bytes()) }
        .unwrap_or_else(|e| panic!("symbol {name}: {e}"));
    *s
}

/// The bytes `seen` holds (what the callee recorded since the last reset).
fn take_seen() -> Vec<u8> {
    let len_ptr = sym("seen_len").cast::<u32>();
    let buf = sym("seen").cast::<u8>();
    // SAFETY: `seen_len` is an `unsigned` global and `seen` a 65536-byte
    // array of the library; the callee never records more than that.
    unsafe {
        let n = (*len_ptr as usize).min(65536);
        std::slice::from_raw_parts(buf, n).to_vec()
    }
}

fn reset_seen() {
    // SAFETY: `seen_reset` is `void seen_reset(void)`.
    unsafe {
        let f: extern "C" fn() = std::mem::transmute(sym("seen_reset"));
        f();
    }
}

/// The callees record into one global buffer: one case at a time.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    // A failed case panics while holding the lock; the buffer is reset
    // before every use, so a poisoned lock is still fine to take.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// A 16-byte aligned, zeroed buffer of at least `n` bytes.
fn aligned(n: usize) -> Vec<u128> {
    vec![0u128; n.div_ceil(16).max(1)]
}

fn bytes_of(v: &[u128], n: usize) -> Vec<u8> {
    // SAFETY: the byte view covers (part of) the vector's storage.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), n) }.to_vec()
}

/// Runs case `name` four ways and compares with the reference call.
fn run_case(name: &str, decl: &str, nargs: usize) {
    let sig: Signature = parse_signature(decl, Abi::Aapcs64).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sig.args.len(), nargs, "{name}");
    let target = sym(name);
    let args: Vec<*const c_void> = (0..nargs).map(|i| sym(&format!("{name}_a{i}"))).collect();
    let rsize = sig.ret.size() as usize;
    let _serial = serial();

    // The reference: gcc's own call.
    reset_seen();
    let mut want_ret = aligned(sig.ret_buffer_size().max(rsize));
    // SAFETY: `NAME_ref` is `void NAME_ref(void *ret)` and stores at most
    // the result's size.
    unsafe {
        let f: extern "C" fn(*mut c_void) = std::mem::transmute(sym(&format!("{name}_ref")));
        f(want_ret.as_mut_ptr().cast());
    }
    let want_seen = take_seen();
    assert!(!want_seen.is_empty(), "{name}: the callee recorded nothing");
    let want_ret = bytes_of(&want_ret, rsize);

    for mode in [ArgMode::Pointers, ArgMode::Frame] {
        for bound in [false, true] {
            let t = Trampoline::compile(&sig, mode, bound.then_some(target))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let mut ret = aligned(t.ret_buffer_size());
            let callee = if bound { std::ptr::null() } else { target };
            reset_seen();
            match mode {
                ArgMode::Pointers => {
                    // SAFETY: `target` has the signature; each pointer is the
                    // global holding that argument; `ret` is large enough.
                    unsafe { t.call(callee, &args, ret.as_mut_ptr().cast()) }
                        .unwrap_or_else(|e| panic!("{name}: {e}"));
                }
                ArgMode::Frame => {
                    let mut frame = aligned(t.frame_size());
                    let fb = frame.as_mut_ptr().cast::<u8>();
                    for (i, (&p, off)) in args.iter().zip(t.frame_offsets()).enumerate() {
                        let n = sig.args[i].size() as usize;
                        // SAFETY: the global holds `n` bytes; the frame has
                        // room for argument i at its offset.
                        unsafe {
                            std::ptr::copy_nonoverlapping(p.cast::<u8>(), fb.add(*off as usize), n)
                        };
                    }
                    // SAFETY: as above, with the frame layout of `t`.
                    unsafe { t.call_raw(callee, frame.as_ptr().cast(), ret.as_mut_ptr().cast()) };
                }
            }
            let got_seen = take_seen();
            assert_eq!(
                got_seen, want_seen,
                "{name} ({mode:?}, bound {bound}): the callee saw different arguments"
            );
            assert_eq!(
                bytes_of(&ret, rsize),
                want_ret,
                "{name} ({mode:?}, bound {bound}): different result"
            );
        }
    }
}

#[test]
fn all_cases_match_gcc() {
    let mut failed = Vec::new();
    for &(name, decl, n) in CASES {
        if std::panic::catch_unwind(|| run_case(name, decl, n)).is_err() {
            failed.push(name);
        }
    }
    assert!(failed.is_empty(), "cases that differ from gcc: {failed:?}");
}

/// The argument globals are untouched by the calls: by-reference
/// arguments are copies (the callees write to theirs).
#[test]
fn byref_arguments_are_copies() {
    run_case("big5", CASES[2].1, 2);
    // SAFETY: big5_a0 is a `d5` global: five doubles.
    let a = unsafe { *sym("big5_a0").cast::<f64>() };
    assert_eq!(a, 1.25);
    run_case("blobf", CASES[15].1, 2);
    // SAFETY: blobf_a0 is a 5000-byte global.
    let b = unsafe { *sym("blobf_a0").cast::<u8>() };
    assert_eq!(b, 3);
}

/// The trampoline preserves the callee-saved registers its caller relies
/// on: a thousand calls in a loop with live values in Rust locals.
#[test]
fn repeated_calls_keep_state() {
    let sig = parse_signature(CASES[6].1, Abi::Aapcs64).unwrap();
    let t = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
    let target = sym("spill");
    let args: Vec<*const c_void> = (0..12).map(|i| sym(&format!("spill_a{i}"))).collect();
    let mut first = None;
    let mut acc = 0u64;
    let _serial = serial();
    for k in 0..1000u64 {
        let mut ret = [0i64; 2];
        reset_seen(); // each call records 72 bytes
                      // SAFETY: as in run_case.
        unsafe { t.call(target, &args, ret.as_mut_ptr().cast()) }.unwrap();
        acc = acc.wrapping_mul(31).wrapping_add(ret[0] as u64 ^ k);
        match first {
            None => first = Some(ret[0]),
            Some(f) => assert_eq!(f, ret[0]),
        }
    }
    assert_ne!(acc, 0);
}
