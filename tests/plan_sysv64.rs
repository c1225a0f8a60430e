//! Table tests for the System V AMD64 planner (psABI §3.2.3 "Parameter
//! Passing").
//!
//! Each case is a C declaration and the expected location of every byte.
//! The expectations come from the psABI text and from gcc 12's own calls
//! (`gcc -O2 -S` on a small C caller, reading which registers and which
//! `[rsp+N]` slots it fills); the cases checked that way say so.
//!
//! Notation, one string per argument, parts separated by spaces:
//! - `xmm0[0..8]`: bytes 0..8 of the value in xmm0; GPRs are named by the
//!   part's width (`edi` for up to 4 bytes, `rdi` above);
//! - `rsp+16[0..8]`: an integer stack slot at [rsp+16] at the call; a
//!   `:float` suffix is a float slot, `:mem` a block copied as bytes;
//! - ` sx32` / ` zx32`: sign / zero extension to 32 bits;
//! - `ignored`: nothing passed; `sret` for the result: hidden pointer in rdi,
//!   returned in rax; `void`: no result.

use jitffi::abi::x86::{RAX, RDI, RSI};
use jitffi::abi::{reg_name, ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use jitffi::cdecl::parse_signature;
use jitffi::types::{Abi, Signature};

fn render_part(p: &Part) -> String {
    let mut s = match p.loc {
        Loc::Reg(r) => reg_name(Abi::SysV64, r, p.size),
        Loc::Stack(off) => format!("rsp+{off}"),
    };
    s.push_str(&format!("[{}..{}]", p.offset, p.offset + p.size));
    match (p.loc, p.class) {
        (Loc::Stack(_), PartClass::Float) => s.push_str(":float"),
        (_, PartClass::Memory) => s.push_str(":mem"),
        (Loc::Reg(Reg::Gpr(_)), PartClass::Int)
        | (Loc::Reg(Reg::Fpr(_)), PartClass::Float)
        | (Loc::Reg(Reg::X87(_)), PartClass::X87)
        | (Loc::Stack(_), PartClass::Int) => {}
        (loc, class) => s.push_str(&format!(":{class:?}-in-{loc:?}")),
    }
    match p.ext {
        Ext::None => {}
        Ext::Sign(b) => s.push_str(&format!(" sx{b}")),
        Ext::Zero(b) => s.push_str(&format!(" zx{b}")),
    }
    s
}

fn render_parts(parts: &[Part]) -> String {
    parts.iter().map(render_part).collect::<Vec<_>>().join(" ")
}

fn render_arg(a: &ArgPlan) -> String {
    match a {
        ArgPlan::Direct(parts) => render_parts(parts),
        ArgPlan::ByRef { ptr, copy_offset } => format!("byref {ptr:?} copy+{copy_offset}"),
        ArgPlan::Ignored => "ignored".into(),
    }
}

fn render_ret(r: &RetPlan) -> String {
    match r {
        RetPlan::Void => "void".into(),
        RetPlan::Direct(parts) => render_parts(parts),
        RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(RDI)),
            ptr_out: Some(Reg::Gpr(RAX)),
        } => "sret".into(),
        RetPlan::Indirect { ptr_in, ptr_out } => format!("indirect {ptr_in:?} -> {ptr_out:?}"),
    }
}

fn sig(decl: &str) -> Signature {
    parse_signature(decl, Abi::SysV64).unwrap_or_else(|e| panic!("{decl}: {e}"))
}

fn planned(decl: &str) -> (Signature, CallPlan) {
    let sig = sig(decl);
    let plan = jitffi::abi::sysv64::plan(&sig).unwrap_or_else(|e| panic!("{decl}: {e}"));
    assert_eq!(plan.validate(&sig), Ok(()), "{}", plan.display(&sig));
    assert_eq!(plan.abi, Abi::SysV64);
    assert_eq!((plan.shadow_space, plan.copy_area_size), (0, 0));
    (sig, plan)
}

/// Plans `decl` and compares every argument, the result, the stack size and
/// `al`.
#[track_caller]
fn check(decl: &str, args: &[&str], ret: &str, stack_size: u32, al: Option<u8>) {
    let (sig, plan) = planned(decl);
    let got_args: Vec<String> = plan.args.iter().map(render_arg).collect();
    let want_args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let got = (got_args, render_ret(&plan.ret), plan.stack_size, plan.al);
    assert_eq!(
        got,
        (want_args, ret.to_string(), stack_size, al),
        "\n{decl}\n{}",
        plan.display(&sig)
    );
}

/// Expects the planner to refuse `decl`, naming argument `arg` (None: the
/// result).
#[track_caller]
fn refused(decl: &str, arg: Option<usize>) {
    let sig = sig(decl);
    match jitffi::abi::sysv64::plan(&sig) {
        Ok(p) => panic!("{decl}: planned\n{}", p.display(&sig)),
        Err(e) => {
            assert_eq!(e.arg, arg, "{decl}: {e}");
            assert!(!e.reason.is_empty());
        }
    }
}

// ---------------------------------------------------------------------------
// The psABI's own example (Figure 3.5 "Parameter Passing Example" and
// Figure 3.6 "Register Allocation Example").

#[test]
fn psabi_parameter_passing_example() {
    // The psABI's func also takes `__m256 y` after m (in ymm2). jitffi has no
    // vector types, so y is dropped here, and n moves from xmm3 to xmm2
    // (gcc -O2 -S for this declaration: n in xmm2). Everything else is the
    // figure: e rdi, f rsi, s.a/s.b rdx, s.d xmm0, g rcx, h r8, i r9, m xmm1,
    // ld at [rsp+0], j at 16, k at 24.
    check(
        "typedef struct { int a, b; double d; } structparm;
         extern void func (int e, int f, structparm s, int g, int h,
                           long double ld, double m, double n, int i, int j, int k);",
        &[
            "edi[0..4]",
            "esi[0..4]",
            "rdx[0..8] xmm0[8..16]",
            "ecx[0..4]",
            "r8d[0..4]",
            "rsp+0[0..16]:mem",
            "xmm1[0..8]",
            "xmm2[0..8]",
            "r9d[0..4]",
            "rsp+16[0..4]",
            "rsp+24[0..4]",
        ],
        "void",
        32,
        None,
    );
}

// ---------------------------------------------------------------------------
// DESIGN.md "Tricky cases" that name SysV.

#[test]
fn tricky_01_02_float_float_int() {
    // 1 and 2: xmm0 + edi in, xmm0 + eax out (gcc: movq (%rdi),%xmm0;
    // movl 8(%rdi),%edi).
    check(
        "typedef struct { float a, b; int c; } S; S f(S);",
        &["xmm0[0..8] edi[8..12]"],
        "xmm0[0..8] eax[8..12]",
        0,
        None,
    );
}

#[test]
fn tricky_03_two_floats() {
    check(
        "typedef struct { float x, y; } v2; v2 f(v2);",
        &["xmm0[0..8]"],
        "xmm0[0..8]",
        0,
        None,
    );
}

#[test]
fn tricky_04_three_floats() {
    check(
        "typedef struct { float x, y, z; } v3; v3 f(v3);",
        &["xmm0[0..8] xmm1[8..12]"],
        "xmm0[0..8] xmm1[8..12]",
        0,
        None,
    );
}

#[test]
fn tricky_05_double_and_chars() {
    check(
        "typedef struct { double d; char c[8]; } S; S f(S);",
        &["xmm0[0..8] rdi[8..16]"],
        "xmm0[0..8] rax[8..16]",
        0,
        None,
    );
}

#[test]
fn tricky_06_four_doubles_memory() {
    // Larger than two eightbytes: MEMORY both ways; the hidden pointer takes
    // rdi, the argument is copied to the stack.
    check(
        "typedef struct { double a, b, c, d; } S; S f(S);",
        &["rsp+0[0..32]:mem"],
        "sret",
        32,
        None,
    );
}

#[test]
fn tricky_08_sret_moves_int() {
    check(
        "typedef struct { long long a, b, c; } S; S f(int);",
        &["esi[0..4]"],
        "sret",
        0,
        None,
    );
}

#[test]
fn tricky_09_float_then_double() {
    // Each eightbyte classified on its own: SSE, SSE. The first part covers
    // the float and its 4 padding bytes.
    check(
        "typedef struct { float a; double b; } S; S f(S);",
        &["xmm0[0..8] xmm1[8..16]"],
        "xmm0[0..8] xmm1[8..16]",
        0,
        None,
    );
}

#[test]
fn tricky_10_packed_is_memory() {
    // "contains unaligned fields": MEMORY, 5 bytes in an 8-byte slot; the
    // result too goes through the hidden pointer in rdi, so the int after
    // the struct gets esi (gcc -O2 -S: struct at [rsp+0], 3 in esi).
    check(
        "typedef struct __attribute__((packed)) { char c; int i; } P; P f(P, int);",
        &["rsp+0[0..5]:mem", "esi[0..4]"],
        "sret",
        16,
        None,
    );
    // A packed struct whose members all happen to be aligned is classified
    // normally (gcc looks at each field's offset, not at the attribute;
    // gcc -O2 -S: movq (%rdi), %rdi).
    check(
        "typedef struct __attribute__((packed)) { int a; int b; } Q; void f(Q);",
        &["rdi[0..8]"],
        "void",
        0,
        None,
    );
}

#[test]
fn packed_array_elements_only_first_checked() {
    // gcc classifies an array by its first element only (classify_argument,
    // ARRAY_TYPE), so members that are misaligned only in later elements of
    // an array of a packed type do not make the aggregate MEMORY. Expected
    // values: gcc 12 -O2 -S on callers of each (found by the differential
    // test, seeds 20261204005604 and 20261204011167).
    // Shorts at 2, 4 in e[0], at 7, 9 in e[1]: gcc movq a, %rdi; movq 8+a, %rsi.
    check(
        "typedef struct __attribute__((packed)) { unsigned char c; short s[2]; } E; \
         typedef struct { signed char a; E e[3]; } S; void f(S);",
        &["rdi[0..8] rsi[8..16]"],
        "void",
        0,
        None,
    );
    // The short of e[1] at 3: gcc movq a, %rdi; movq 8+a, %xmm0.
    check(
        "typedef struct __attribute__((packed)) { short s; signed char c; } E; \
         typedef struct { E e[2]; _Complex float z; } S; void f(S);",
        &["rdi[0..8] xmm0[8..16]"],
        "void",
        0,
        None,
    );
    // The float of e[1] at 5 straddles the eightbytes: gcc rdi, and the
    // 7 bytes left in rsi.
    check(
        "typedef struct __attribute__((packed)) { float f; char c; } E; \
         typedef struct { E e[3]; } S; void f(S);",
        &["rdi[0..8] rsi[8..15]"],
        "void",
        0,
        None,
    );
    // Misaligned already in e[0] (the short at 1): MEMORY, as gcc copies it
    // to (%rsp).
    check(
        "typedef struct __attribute__((packed)) { char c; short s; } E; \
         typedef struct { E e[2]; } S; void f(S);",
        &["rsp+0[0..6]:mem"],
        "void",
        16,
        None,
    );
}

#[test]
fn tricky_12_union_float_int() {
    // INTEGER wins the merge (rule 4d): the union in edi, the float in xmm0.
    check(
        "typedef union { float f; int i; } U; void f(U, float);",
        &["edi[0..4]", "xmm0[0..4]"],
        "void",
        0,
        None,
    );
}

#[test]
fn tricky_15_int128() {
    check(
        "__int128 f(__int128, __int128);",
        &["rdi[0..8] rsi[8..16]", "rdx[0..8] rcx[8..16]"],
        "rax[0..8] rdx[8..16]",
        0,
        None,
    );
}

#[test]
fn tricky_16_narrow_ints() {
    // gcc: movsbl, movzwl, movzbl before the call (32-bit extension).
    check(
        "int f(signed char, unsigned short, _Bool);",
        &["edi[0..1] sx32", "esi[0..2] zx32", "edx[0..1] zx32"],
        "eax[0..4]",
        0,
        None,
    );
    // Results narrower than int carry the same extension in the plan.
    check(
        "short g(char);",
        &["edi[0..1] sx32"],
        "eax[0..2] sx32",
        0,
        None,
    );
    check(
        "unsigned char h(unsigned char);",
        &["edi[0..1] zx32"],
        "eax[0..1] zx32",
        0,
        None,
    );
}

#[test]
fn tricky_17_struct_no_room_in_gprs() {
    // gcc: the struct at [rsp+0..16], 2.5 in xmm0, the last ll at [rsp+16].
    check(
        "typedef struct { long long a; double b; } S;
         void f(long long, long long, long long, long long, long long, long long,
                S, double, long long);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "r9[0..8]",
            "rsp+0[0..16]:mem",
            "xmm0[0..8]",
            "rsp+16[0..8]",
        ],
        "void",
        32,
        None,
    );
}

#[test]
fn tricky_18_back_fill_xmm7() {
    // gcc: struct pushed at [rsp+0..16], the last double in xmm7.
    check(
        "typedef struct { double a, b; } D;
         void f(double, double, double, double, double, double, double, D, double);",
        &[
            "xmm0[0..8]",
            "xmm1[0..8]",
            "xmm2[0..8]",
            "xmm3[0..8]",
            "xmm4[0..8]",
            "xmm5[0..8]",
            "xmm6[0..8]",
            "rsp+0[0..16]:mem",
            "xmm7[0..8]",
        ],
        "void",
        16,
        None,
    );
}

#[test]
fn tricky_21_int128_on_stack_back_fill_r9() {
    // gcc: the __int128 at [rsp+0..16], the last long long in r9.
    check(
        "void f(long long, long long, long long, long long, long long, __int128, long long);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "rsp+0[0..16]:mem",
            "r9[0..8]",
        ],
        "void",
        16,
        None,
    );
    // 16-byte alignment of the slot: an int first takes [rsp+0].
    check(
        "void g(long, long, long, long, long, long, int, __int128);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "r9[0..8]",
            "rsp+0[0..4]",
            "rsp+16[0..16]:mem",
        ],
        "void",
        32,
        None,
    );
}

#[test]
fn tricky_22_int_then_int128() {
    // No even-register rule on SysV: rsi:rdx (gcc).
    check(
        "void f(int, __int128);",
        &["edi[0..4]", "rsi[0..8] rdx[8..16]"],
        "void",
        0,
        None,
    );
}

#[test]
fn tricky_25_variadic_double_sets_al() {
    check(
        "int f(int, ..., double, int);",
        &["edi[0..4]", "xmm0[0..8]", "esi[0..4]"],
        "eax[0..4]",
        0,
        Some(1),
    );
}

#[test]
fn tricky_26_variadic_struct_as_named() {
    check(
        "typedef struct { double a, b; } D; int f(int, ..., D);",
        &["edi[0..4]", "xmm0[0..8] xmm1[8..16]"],
        "eax[0..4]",
        0,
        Some(2),
    );
}

#[test]
fn tricky_27_long_double() {
    check(
        "long double f(long double, int, long double);",
        &["rsp+0[0..16]:mem", "edi[0..4]", "rsp+16[0..16]:mem"],
        "st0[0..16]",
        32,
        None,
    );
}

#[test]
fn tricky_28_complex_double() {
    check(
        "_Complex double f(_Complex double);",
        &["xmm0[0..8] xmm1[8..16]"],
        "xmm0[0..8] xmm1[8..16]",
        0,
        None,
    );
}

// ---------------------------------------------------------------------------
// More cases.

#[test]
fn many_args_spill_in_order() {
    // gcc -O2 -S: char at [rsp+0], short at 8, int at 16, float at 24,
    // double at 32 (each in its own eightbyte, extended as in registers).
    check(
        "void f(long, long, long, long, long, long, char, short, int,
                double, double, double, double, double, double, double, double,
                float, double);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "r9[0..8]",
            "rsp+0[0..1] sx32",
            "rsp+8[0..2] sx32",
            "rsp+16[0..4]",
            "xmm0[0..8]",
            "xmm1[0..8]",
            "xmm2[0..8]",
            "xmm3[0..8]",
            "xmm4[0..8]",
            "xmm5[0..8]",
            "xmm6[0..8]",
            "xmm7[0..8]",
            "rsp+24[0..4]:float",
            "rsp+32[0..8]:float",
        ],
        "void",
        48,
        None,
    );
}

#[test]
fn two_gpr_struct_with_one_gpr_left() {
    // gcc: struct { long a, b; } at [rsp+0..16], the last long in r9.
    check(
        "typedef struct { long a, b; } P; void f(long, long, long, long, long, P, long);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "rsp+0[0..16]:mem",
            "r9[0..8]",
        ],
        "void",
        16,
        None,
    );
}

#[test]
fn aligned_struct_on_stack() {
    // gcc: int 7 at [rsp+0], the 16-aligned struct at [rsp+16..32].
    check(
        "typedef struct __attribute__((aligned(16))) { long a, b; } S16;
         void f(long, long, long, long, long, long, int, S16);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "r9[0..8]",
            "rsp+0[0..4]",
            "rsp+16[0..16]:mem",
        ],
        "void",
        32,
        None,
    );
}

#[test]
fn struct_returns_of_sizes_1_to_32() {
    // char arrays: INTEGER eightbytes in rax, rdx up to 16 bytes, MEMORY
    // above (each part holding the bytes of its eightbyte).
    for n in 1..=32u32 {
        let decl = format!("struct S {{ char c[{n}]; }} f(void);");
        let want = match n {
            1..=4 => format!("eax[0..{n}]"),
            5..=8 => format!("rax[0..{n}]"),
            9..=12 => format!("rax[0..8] edx[8..{n}]"),
            13..=16 => format!("rax[0..8] rdx[8..{n}]"),
            _ => "sret".into(),
        };
        check(&decl, &[], &want, 0, None);
    }
    // float arrays: SSE eightbytes in xmm0, xmm1.
    for n in 1..=8u32 {
        let decl = format!("struct F {{ float f[{n}]; }} f(void);");
        let b = 4 * n;
        let want = match n {
            1 | 2 => format!("xmm0[0..{b}]"),
            3 | 4 => format!("xmm0[0..8] xmm1[8..{b}]"),
            _ => "sret".into(),
        };
        check(&decl, &[], &want, 0, None);
    }
    // Mixed: the classes follow the eightbytes, not the member order
    // (struct B is 16 bytes with its tail padding: its int comes back in
    // rax, as gcc reads it).
    check(
        "struct A { long a; double d; } f(void);",
        &[],
        "rax[0..8] xmm0[8..16]",
        0,
        None,
    );
    check(
        "struct B { double d; int a; } f(void);",
        &[],
        "xmm0[0..8] rax[8..16]",
        0,
        None,
    );
    // A 3-byte struct is one 3-byte INTEGER part.
    check(
        "struct C { char a, b, c; } f(struct C);",
        &["edi[0..3]"],
        "eax[0..3]",
        0,
        None,
    );
}

#[test]
fn union_of_float_and_double() {
    // SSE merged with SSE: one SSE eightbyte.
    check(
        "typedef union { float f; double d; } U; U f(U);",
        &["xmm0[0..8]"],
        "xmm0[0..8]",
        0,
        None,
    );
}

#[test]
fn unions_with_long_double() {
    // union { long double; char[16] }: X87+INTEGER -> INTEGER and
    // X87UP+INTEGER -> INTEGER (rule 4d before 4e). gcc passes it in
    // rdi:rsi and returns it in rax:rdx.
    check(
        "typedef union { long double ld; char c[16]; } U; U f(U);",
        &["rdi[0..8] rsi[8..16]"],
        "rax[0..8] rdx[8..16]",
        0,
        None,
    );
    // union { long double; int }: INTEGER, X87UP -> MEMORY (cleanup rule b;
    // gcc: on the stack, result through rdi, "the ABI of passing union with
    // long double has changed in GCC 4.4").
    check(
        "typedef union { long double ld; int i; } V; V f(V, long);",
        &["rsp+0[0..16]:mem", "rsi[0..8]"],
        "sret",
        16,
        None,
    );
}

#[test]
fn struct_of_long_double() {
    // X87, X87UP: memory as an argument, st0 as a result (gcc -O2 -S: the
    // struct pushed at [rsp+0..16], 1.5 in xmm0).
    check(
        "struct L { long double x; } f(struct L, double);",
        &["rsp+0[0..16]:mem", "xmm0[0..8]"],
        "st0[0..16]",
        16,
        None,
    );
}

#[test]
fn complex_float_and_long_double() {
    check(
        "_Complex float f(_Complex float, _Complex float);",
        &["xmm0[0..8]", "xmm1[0..8]"],
        "xmm0[0..8]",
        0,
        None,
    );
    // COMPLEX_X87: memory as an argument; real part in st0, imaginary part
    // in st1 as a result (gcc -O2 -S: 32 bytes pushed at [rsp+0], 4 in edi,
    // `fstp %st(0)` drops the real part to read the imaginary one).
    check(
        "_Complex long double f(_Complex long double, int);",
        &["rsp+0[0..32]:mem", "edi[0..4]"],
        "st0[0..16] st1[16..32]",
        32,
        None,
    );
}

#[test]
fn empty_structs_are_ignored() {
    // gcc -O2 -S: an empty struct and a struct holding only a zero-length
    // array take no register and no stack slot, even after the GPRs ran out.
    check(
        "struct E {}; struct Z { int x[0]; };
         void f(long, long, long, long, long, long, struct E, struct Z, long, struct E, long);",
        &[
            "rdi[0..8]",
            "rsi[0..8]",
            "rdx[0..8]",
            "rcx[0..8]",
            "r8[0..8]",
            "r9[0..8]",
            "ignored",
            "ignored",
            "rsp+0[0..8]",
            "ignored",
            "rsp+8[0..8]",
        ],
        "void",
        16,
        None,
    );
    check(
        "struct E {}; struct E f(int);",
        &["edi[0..4]"],
        "void",
        0,
        None,
    );
}

#[test]
fn variadic_al_counts() {
    check(
        "int f(const char *, ...);",
        &["rdi[0..8]"],
        "eax[0..4]",
        0,
        Some(0),
    );
    check(
        "int f(const char *, ..., int, double, double);",
        &["rdi[0..8]", "esi[0..4]", "xmm0[0..8]", "xmm1[0..8]"],
        "eax[0..4]",
        0,
        Some(2),
    );
    // Nine doubles: eight in xmm0-7 (al = 8, gcc: movl $8, %eax), the ninth
    // at [rsp+0].
    check(
        "int f(const char *, ..., double, double, double, double, double, double, double,
               double, double);",
        &[
            "rdi[0..8]",
            "xmm0[0..8]",
            "xmm1[0..8]",
            "xmm2[0..8]",
            "xmm3[0..8]",
            "xmm4[0..8]",
            "xmm5[0..8]",
            "xmm6[0..8]",
            "xmm7[0..8]",
            "rsp+0[0..8]:float",
        ],
        "eax[0..4]",
        16,
        Some(8),
    );
    // Named doubles count too.
    check(
        "double f(double, ...);",
        &["xmm0[0..8]"],
        "xmm0[0..8]",
        0,
        Some(1),
    );
    // Not variadic: no al.
    check("double g(double);", &["xmm0[0..8]"], "xmm0[0..8]", 0, None);
}

#[test]
fn pointers_and_wide_ints() {
    check(
        "void *f(void *, unsigned long, long long, int (*)(int));",
        &["rdi[0..8]", "rsi[0..8]", "rdx[0..8]", "rcx[0..8]"],
        "rax[0..8]",
        0,
        None,
    );
}

#[test]
fn refused_rather_than_guessed() {
    // A 16-aligned struct holding one int: its second eightbyte is padding
    // only (NO_CLASS); gcc passes the int in edi and nothing else, which a
    // plan covering every byte cannot say.
    refused(
        "typedef struct __attribute__((aligned(16))) { int i; } A; void f(int, A);",
        Some(1),
    );
    refused(
        "typedef struct __attribute__((aligned(16))) { int i; } A; A f(void);",
        None,
    );
    // A 32-aligned stack argument: gcc realigns its stack to 32.
    refused(
        "typedef struct __attribute__((aligned(32))) { int i; } B; void f(long, B);",
        Some(1),
    );
}

/// Nested records are classified recursively, each with the post-merger
/// cleanup, before merging into the parent (psABI §3.2.3 "each field is
/// classified recursively"; gcc's classify_argument). Found by the gcc
/// differential test (seeds 2700, 12199, 11077); expected locations from
/// `gcc -O2 -S`.
#[test]
fn nested_records_are_classified_before_merging() {
    // Inner union INTEGER (SSE merged with INTEGER) then X87 merged with
    // INTEGER = INTEGER: rdi:rsi.
    let sig = parse_signature(
        "typedef union { double d; __int128 i; } V; typedef union { long double f0; V v; } U; \
         long double f(U)",
        Abi::SysV64,
    )
    .unwrap();
    let plan = jitffi::abi::plan(&sig).unwrap();
    plan.validate(&sig).unwrap();
    assert_eq!(
        plan.args[0],
        ArgPlan::Direct(vec![
            Part {
                offset: 0,
                size: 8,
                loc: Loc::Reg(Reg::Gpr(RDI)),
                class: PartClass::Int,
                ext: Ext::None
            },
            Part {
                offset: 8,
                size: 8,
                loc: Loc::Reg(Reg::Gpr(RSI)),
                class: PartClass::Int,
                ext: Ext::None
            },
        ])
    );
    // An inner union of INTEGER, X87UP (first seed) or with an X87UP merged
    // with SSE (second seed): the nested cleanup makes it MEMORY, so the
    // whole argument goes on the stack, as gcc passes it.
    for decl in [
        "typedef union { const double *p; long double x[1]; unsigned char c; } S0; \
         typedef struct { const double *p; } S1; \
         typedef union __attribute__((packed)) { char c; S0 s; S1 t[2]; long long l; } U; \
         long double f(unsigned char, U)",
        "typedef struct { int i; } S6; \
         typedef union __attribute__((packed)) { long double x; signed char c[3]; _Complex double z[1]; } S7; \
         typedef union { S6 a[4]; S7 b; _Bool c; signed char d; } U; int f(U)",
    ] {
        let sig = parse_signature(decl, Abi::SysV64).unwrap();
        let plan = jitffi::abi::plan(&sig).unwrap();
        plan.validate(&sig).unwrap();
        let last = plan.args.last().unwrap();
        match last {
            ArgPlan::Direct(parts) => {
                assert_eq!(parts.len(), 1, "{decl}: {last:?}");
                assert!(matches!(parts[0].loc, Loc::Stack(_)), "{decl}: {last:?}");
                assert_eq!(parts[0].class, PartClass::Memory, "{decl}");
            }
            other => panic!("{decl}: {other:?}"),
        }
    }
}
