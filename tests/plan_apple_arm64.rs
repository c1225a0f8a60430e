//! Apple arm64 call plans for C declarations.
//!
//! Expected locations come from Apple's "Writing ARM64 code for Apple
//! platforms" (its divergences from AAPCS64: packed stack arguments, caller
//! extension of narrow integers, variadic arguments on the stack, no even
//! register pairs, long double = double) on top of AAPCS64 release 2020Q3,
//! and were checked against clang 14 -O2 -target arm64-apple-macos11 output
//! for callers of the same declarations (noted "clang" below).

use jitffi::abi::{aapcs64, reg_name, ArgPlan, CallPlan, Ext, Loc, Part, RetPlan};
use jitffi::cdecl::parse_signature;
use jitffi::{Abi, Signature, Type};

const ABI: Abi = Abi::AppleArm64;

fn parts(abi: Abi, parts: &[Part], ty: &Type) -> String {
    parts
        .iter()
        .map(|p| {
            let mut s = match p.loc {
                Loc::Reg(r) => reg_name(abi, r, p.size),
                Loc::Stack(o) => format!("[sp+{o}]"),
            };
            if parts.len() > 1 || p.size != ty.size() {
                s += &format!("[{}..{}]", p.offset, p.offset + p.size);
            }
            match p.ext {
                Ext::None => {}
                Ext::Sign(b) => s += &format!(":s{b}"),
                Ext::Zero(b) => s += &format!(":z{b}"),
            }
            s
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Plans `decl`, validates the plan, and renders (arguments, result).
fn plan(decl: &str) -> (CallPlan, String, String) {
    let sig: Signature = parse_signature(decl, ABI).unwrap_or_else(|e| panic!("parse {decl}: {e}"));
    let plan =
        aapcs64::plan(&sig, aapcs64::Flavor::Apple).unwrap_or_else(|e| panic!("plan {decl}: {e}"));
    plan.validate(&sig)
        .unwrap_or_else(|e| panic!("{decl}: {e}\n{}", plan.display(&sig)));
    let args = plan
        .args
        .iter()
        .zip(&sig.args)
        .map(|(a, t)| match a {
            ArgPlan::Direct(p) => parts(plan.abi, p, t),
            ArgPlan::ByRef { ptr, copy_offset } => match ptr {
                Loc::Reg(r) => format!("ref {} copy@{copy_offset}", reg_name(plan.abi, *r, 8)),
                Loc::Stack(o) => format!("ref [sp+{o}] copy@{copy_offset}"),
            },
            ArgPlan::Ignored => "-".into(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let ret = match &plan.ret {
        RetPlan::Void => "void".into(),
        RetPlan::Direct(p) => parts(plan.abi, p, &sig.ret),
        RetPlan::Indirect { ptr_in, ptr_out } => {
            assert_eq!(*ptr_out, None, "{decl}: AAPCS64 does not return x8");
            match ptr_in {
                Loc::Reg(r) => format!("sret {}", reg_name(plan.abi, *r, 8)),
                Loc::Stack(o) => format!("sret [sp+{o}]"),
            }
        }
    };
    assert_eq!(plan.shadow_space, 0);
    assert_eq!(plan.al, None);
    (plan, args, ret)
}

#[track_caller]
fn check(decl: &str, args: &str, ret: &str) -> CallPlan {
    let (p, a, r) = plan(decl);
    assert_eq!((a.as_str(), r.as_str()), (args, ret), "{decl}");
    p
}

#[track_caller]
fn check_stack(decl: &str, args: &str, ret: &str, stack: u32) {
    let p = check(decl, args, ret);
    assert_eq!(p.stack_size, stack, "{decl}: stack size");
}

// ---- DESIGN.md tricky cases -------------------------------------------

#[test]
fn case01_mixed_float_int_struct_in_x_registers() {
    check(
        "typedef struct {float a, b; int c;} s; s f(s);",
        "x0[0..8] w1[8..12]",
        "x0[0..8] w1[8..12]",
    );
}

#[test]
fn case03_case04_float_hfas() {
    check(
        "typedef struct {float x, y;} v2; v2 f(v2);",
        "s0[0..4] s1[4..8]",
        "s0[0..4] s1[4..8]",
    );
    check(
        "typedef struct {float x, y, z;} v3; v3 f(v3);",
        "s0[0..4] s1[4..8] s2[8..12]",
        "s0[0..4] s1[4..8] s2[8..12]",
    );
}

#[test]
fn case06_case07_case08_results() {
    let d4 = "d0[0..8] d1[8..16] d2[16..24] d3[24..32]";
    check("typedef struct {double a, b, c, d;} s; s f(s);", d4, d4);
    check(
        "typedef struct {double a, b, c, d, e;} s; s f(s);",
        "ref x0 copy@0",
        "sret x8",
    );
    check(
        "typedef struct {long long a, b, c;} s; s f(int);",
        "w0",
        "sret x8",
    );
}

#[test]
fn case09_case10_case13_case14_composites() {
    check(
        "typedef struct {float a; double b;} s; void f(s);",
        "x0[0..8] x1[8..16]",
        "void",
    );
    check(
        "typedef struct __attribute__((packed)) {char c; int i;} s; void f(s);",
        "x0",
        "void",
    );
    check(
        "typedef union {double d; float f[2];} u; void f(u);",
        "x0",
        "void",
    );
    check(
        "typedef struct {struct {float a, b;} p; float c[2];} s; void f(s);",
        "s0[0..4] s1[4..8] s2[8..12] s3[12..16]",
        "void",
    );
}

#[test]
fn case15_int128_pairs() {
    check(
        "__int128 f(__int128, __int128);",
        "x0[0..8] x1[8..16], x2[0..8] x3[8..16]",
        "x0[0..8] x1[8..16]",
    );
}

#[test]
fn case16_caller_extends_narrow_arguments() {
    // Apple: "the caller sign- or zero-extends arguments narrower than 32
    // bits"; char is signed; _Bool is unsigned.
    check(
        "int f(signed char, unsigned short, _Bool);",
        "w0:s32, w1:z32, w2:z32",
        "w0",
    );
    // ...and the callee extends narrow results (clang: sxtb w0, w0).
    check("char f(unsigned char, short);", "w0:z32, w1:s32", "w0:s32");
}

#[test]
fn case19_no_backfill_hfa_spilled_member_by_member() {
    // clang: members at [sp], [sp+8], [sp+16]; the last double at [sp+24].
    check_stack(
        "typedef struct {double a, b, c;} s;
         void f(double, double, double, double, double, double, s, double);",
        "d0, d1, d2, d3, d4, d5, [sp+0][0..8] [sp+8][8..16] [sp+16][16..24], [sp+24]",
        "void",
        32,
    );
}

#[test]
fn case20_composite_not_split() {
    // clang: struct at [sp], [sp+8]; the last ll at [sp+16].
    check_stack(
        "typedef struct {long long a, b;} s;
         void f(long long, long long, long long, long long, long long, long long,
                long long, s, long long);",
        "x0, x1, x2, x3, x4, x5, x6, [sp+0], [sp+16]",
        "void",
        32,
    );
}

#[test]
fn case22_int128_may_start_in_odd_register() {
    // Apple allows a 16-byte-aligned argument to start in an odd x register
    // (clang: w0 = 1, x1 = 2, x2 = 0).
    check("void f(int, __int128);", "w0, x1[0..8] x2[8..16]", "void");
    check(
        "typedef struct {__int128 v;} q; void f(int, q);",
        "w0, x1[0..8] x2[8..16]",
        "void",
    );
}

#[test]
fn case24_packed_stack_arguments() {
    // Apple: natural size and alignment on the stack (clang: strb [sp],
    // strh [sp,2], str w [sp,4], strb [sp,8]); area rounded to 16.
    check_stack(
        "void f(long long, long long, long long, long long, long long, long long,
                long long, long long, char, short, int, char);",
        "x0, x1, x2, x3, x4, x5, x6, x7, [sp+0], [sp+2], [sp+4], [sp+8]",
        "void",
        16,
    );
}

#[test]
fn apple_document_two_stack_args_example() {
    // Apple's example: eight chars in w0-w7, then s0 at sp and s1 at sp+1.
    check_stack(
        "void two_stack_args(char w0, char w1, char w2, char w3, char w4, char w5,
                             char w6, char w7, char s0, char s1);",
        "w0:s32, w1:s32, w2:s32, w3:s32, w4:s32, w5:s32, w6:s32, w7:s32, [sp+0], [sp+1]",
        "void",
        16,
    );
}

#[test]
fn case25_variadic_arguments_on_the_stack() {
    // clang: stp x(2.5), x(3), [sp]; only the named int in w0.
    check_stack(
        "int f(int, ..., double, int);",
        "w0, [sp+0], [sp+8]",
        "w0",
        16,
    );
}

#[test]
fn case26_variadic_hfa_on_the_stack() {
    // clang: stp d0, d1, [sp].
    check_stack(
        "typedef struct {double a, b;} s; int f(int, ..., s);",
        "w0, [sp+0]",
        "w0",
        16,
    );
    // A 12-byte HFA takes 16 bytes of 8-byte slots; an __int128 is
    // 16-aligned (clang: [sp], [sp+16], [sp+32]).
    check_stack(
        "typedef struct {float x, y, z;} v3; int f(int, ..., v3, int, __int128);",
        "w0, [sp+0], [sp+16], [sp+32]",
        "w0",
        48,
    );
    // Registers stay unused even when the named part used none.
    check_stack(
        "int f(const char *, ..., long, char *);",
        "x0, [sp+0], [sp+8]",
        "w0",
        16,
    );
}

#[test]
fn variadic_large_composite_pointer_on_the_stack() {
    let p = check(
        "typedef struct {long long a, b, c;} big; int f(int, ..., big);",
        "w0, ref [sp+0] copy@0",
        "w0",
    );
    assert_eq!((p.stack_size, p.copy_area_size), (16, 32));
}

#[test]
fn case27_long_double_is_double() {
    // clang: d0, w0, d1.
    check(
        "long double f(long double, int, long double);",
        "d0, w0, d1",
        "d0",
    );
}

#[test]
fn case28_complex_double() {
    check(
        "_Complex double f(_Complex double);",
        "d0[0..8] d1[8..16]",
        "d0[0..8] d1[8..16]",
    );
}

// ---- further required cases -------------------------------------------

#[test]
fn hfa_of_four_doubles_then_double() {
    check(
        "typedef struct {double a, b, c, d;} s; void f(s, double);",
        "d0[0..8] d1[8..16] d2[16..24] d3[24..32], d4",
        "void",
    );
    // clang: members at [sp]..[sp+24], 9.0 at [sp+32], the float at [sp+40].
    check_stack(
        "typedef struct {double a, b, c, d;} s;
         void f(double, double, double, double, double, s, double, float);",
        "d0, d1, d2, d3, d4, [sp+0][0..8] [sp+8][8..16] [sp+16][16..24] [sp+24][24..32], \
         [sp+32], [sp+40]",
        "void",
        48,
    );
}

#[test]
fn float_hfa_on_stack_packed() {
    // clang: members at [sp], [sp+4], [sp+8]; floats at [sp+12], [sp+16].
    check_stack(
        "typedef struct {float x, y, z;} v3;
         void f(float, float, float, float, float, float, float, v3, float, float);",
        "s0, s1, s2, s3, s4, s5, s6, [sp+0][0..4] [sp+4][4..8] [sp+8][8..12], [sp+12], [sp+16]",
        "void",
        32,
    );
}

#[test]
fn sixteen_aligned_composite() {
    // clang: an aligned(16) record is passed like __int128: x1, x2.
    check(
        "typedef struct __attribute__((aligned(16))) {long long a, b;} s; void f(int, s);",
        "w0, x1[0..8] x2[8..16]",
        "void",
    );
    // On the stack it keeps 16-byte alignment.
    check_stack(
        "typedef struct {__int128 v;} q;
         void f(long long, long long, long long, long long, long long, long long,
                long long, long long, int, q);",
        "x0, x1, x2, x3, x4, x5, x6, x7, [sp+0], [sp+16]",
        "void",
        32,
    );
}

#[test]
fn struct_returns_of_sizes_1_to_24() {
    for n in 1..=24u32 {
        let decl = format!("typedef struct {{char c[{n}];}} s; s f(void);");
        let want = match n {
            1..=4 => "w0".to_string(),
            5..=8 => "x0".to_string(),
            9..=16 => {
                let hi = if n - 8 <= 4 { "w1" } else { "x1" };
                format!("x0[0..8] {hi}[8..{n}]")
            }
            _ => "sret x8".to_string(),
        };
        check(&decl, "", &want);
    }
}

#[test]
fn small_composites_on_the_stack_use_eight_byte_slots() {
    // Non-HFA composites keep 8-byte slots on Apple too (clang coerces them
    // to i64 arrays): char, struct of 3 chars, char -> [sp], [sp+8], [sp+16].
    check_stack(
        "typedef struct {char a, b, c;} c3;
         void f(long long, long long, long long, long long, long long, long long,
                long long, long long, char, c3, char);",
        "x0, x1, x2, x3, x4, x5, x6, x7, [sp+0], [sp+8], [sp+16]",
        "void",
        32,
    );
}

#[test]
fn variadic_promotable_types_are_rejected() {
    // C promotes these; a plan for them would be a guess.
    for decl in ["int f(int, ..., float);", "int f(int, ..., char);"] {
        if let Ok(sig) = parse_signature(decl, ABI) {
            assert!(
                aapcs64::plan(&sig, aapcs64::Flavor::Apple).is_err(),
                "{decl}"
            );
        }
    }
}
