//! Table tests for the Microsoft x64 (Win64) call planner.
//!
//! Every case is a C declaration parsed for Win64, planned, checked with
//! `CallPlan::validate`, and rendered compactly:
//!
//! ```text
//! "ecx, xmm1+rdx, ref r8 copy@0, [rsp+32] -> sret rcx->rax; stack 48; copies 16"
//! ```
//!
//! - GPRs are named by the piece's size (`ecx` holds ≤ 4 bytes, `rcx` 8),
//!   XMM registers as `xmmN`, stack slots as `[rsp+N]` (offsets from rsp at
//!   the call; 0..32 is the shadow space);
//! - ` sx`/` zx` mark a piece the caller sign-/zero-extends to 32 bits;
//! - `a+b` is one value in two registers (variadic floats);
//! - `ref LOC copy@N`: the address of a copy at offset N of the copy area;
//! - results: `eax`/`rax`/`xmm0`, `sret rcx->rax` (hidden result address
//!   in rcx, returned in rax), or `void`;
//! - `stack` is always printed (never below 32, the shadow space);
//!   `copies` only when non-zero.
//!
//! Expected values come from Microsoft's "x64 calling convention" page
//! ([cc]: its examples and rules) and from gcc 12.2 `-O2 -S` on callers of
//! `__attribute__((ms_abi))` functions ([gcc]), cited per case. They are
//! never produced by running the planner.

use jitffi::abi::{reg_name, ArgPlan, CallPlan, Ext, Loc, PartClass, Reg, RetPlan};
use jitffi::cdecl::parse_signature;
use jitffi::types::{Abi, Scalar, Type};
use jitffi::Signature;

fn parse(decl: &str) -> Signature {
    parse_signature(decl, Abi::Win64).unwrap_or_else(|e| panic!("{decl}: {e}"))
}

fn loc(l: Loc, size: u32) -> String {
    match l {
        Loc::Reg(r) => reg_name(Abi::Win64, r, size),
        Loc::Stack(off) => format!("[rsp+{off}]"),
    }
}

/// Plans `decl`, validates the plan, checks the Win64 invariants that hold
/// for every value (never split, each piece the whole value, register file
/// matching the piece's class), and renders it.
fn render_sig(sig: &Signature) -> (CallPlan, String) {
    let plan = jitffi::abi::win64::plan(sig).unwrap_or_else(|e| panic!("{sig}: {e}"));
    if let Err(e) = plan.validate(sig) {
        panic!("{e}\n{}", plan.display(sig));
    }
    assert_eq!(plan.shadow_space, 32, "{sig}");
    assert_eq!(plan.al, None, "{sig}");
    let mut args = Vec::new();
    for (i, (a, ty)) in plan.args.iter().zip(&sig.args).enumerate() {
        args.push(match a {
            ArgPlan::Direct(parts) => {
                let mut names = Vec::new();
                for p in parts {
                    // [cc] "A single argument is never spread across
                    // multiple registers": every piece is the whole value.
                    assert_eq!((p.offset, p.size), (0, ty.size()), "{sig} arg {i}");
                    let is_float = matches!(ty, Type::Scalar(s) if s.is_float());
                    let want = match p.loc {
                        Loc::Reg(Reg::Gpr(_)) => PartClass::Int,
                        Loc::Reg(Reg::Fpr(_)) => PartClass::Float,
                        Loc::Reg(Reg::X87(_)) => panic!("{sig}: x87 register on Win64"),
                        Loc::Stack(_) if is_float => PartClass::Float,
                        Loc::Stack(_) => PartClass::Int,
                    };
                    assert_eq!(p.class, want, "{sig} arg {i}");
                    let mut s = loc(p.loc, p.size);
                    match p.ext {
                        Ext::None => {}
                        Ext::Sign(32) => s.push_str(" sx"),
                        Ext::Zero(32) => s.push_str(" zx"),
                        other => panic!("{sig} arg {i}: extension {other:?}"),
                    }
                    names.push(s);
                }
                names.join("+")
            }
            ArgPlan::ByRef { ptr, copy_offset } => {
                format!("ref {} copy@{copy_offset}", loc(*ptr, 8))
            }
            ArgPlan::Ignored => "ignored".into(),
        });
    }
    let ret = match &plan.ret {
        RetPlan::Void => "void".to_string(),
        RetPlan::Direct(parts) => {
            assert_eq!(parts.len(), 1, "{sig}: result in one register");
            let p = parts[0];
            assert_eq!((p.offset, p.size, p.ext), (0, sig.ret.size(), Ext::None));
            loc(p.loc, p.size)
        }
        RetPlan::Indirect { ptr_in, ptr_out } => {
            let out = ptr_out.map(|r| reg_name(Abi::Win64, r, 8));
            format!(
                "sret {}->{}",
                loc(*ptr_in, 8),
                out.as_deref().unwrap_or("?")
            )
        }
    };
    let mut s = format!("{} -> {ret}; stack {}", args.join(", "), plan.stack_size);
    if plan.copy_area_size != 0 {
        s.push_str(&format!("; copies {}", plan.copy_area_size));
    }
    (plan, s)
}

fn render(decl: &str) -> String {
    render_sig(&parse(decl)).1
}

#[track_caller]
fn check(decl: &str, want: &str) {
    assert_eq!(render(decl), want, "{decl}");
}

// ---------------------------------------------------------------------------
// Microsoft's own examples ([cc] "Parameter passing" and "Return values").
// ---------------------------------------------------------------------------

#[test]
fn ms_parameter_examples() {
    // "func1(int a, int b, int c, int d, int e, int f);
    //  // a in RCX, b in RDX, c in R8, d in R9, f then e pushed on stack"
    check(
        "void func1(int a, int b, int c, int d, int e, int f)",
        "ecx, edx, r8d, r9d, [rsp+32], [rsp+40] -> void; stack 48",
    );
    // "func2(float a, double b, float c, double d, float e, float f);
    //  // a in XMM0, b in XMM1, c in XMM2, d in XMM3, f then e pushed on stack"
    check(
        "void func2(float a, double b, float c, double d, float e, float f)",
        "xmm0, xmm1, xmm2, xmm3, [rsp+32], [rsp+40] -> void; stack 48",
    );
    // "func3(int a, double b, int c, float d, int e, float f);
    //  // a in RCX, b in XMM1, c in R8, d in XMM3, f then e pushed on stack"
    check(
        "void func3(int a, double b, int c, float d, int e, float f)",
        "ecx, xmm1, r8d, xmm3, [rsp+32], [rsp+40] -> void; stack 48",
    );
    // "func4(__m64 a, __m128 b, struct c, float d, __m128 e, __m128 f)" is
    // skipped: jitffi supports no vector types (__m64/__m128).
}

#[test]
fn ms_return_examples() {
    // "__int64 func1(int a, float b, int c, int d, int e);
    //  // Caller passes a in RCX, b in XMM1, c in R8, d in R9, e pushed on
    //  // stack, callee returns __int64 result in RAX."
    check(
        "long long func1(int a, float b, int c, int d, int e)",
        "ecx, xmm1, r8d, r9d, [rsp+32] -> rax; stack 48",
    );
    // "__m128 func2(float a, double b, int c, __m64 d)": vector types are
    // not supported; skipped.
    // "struct1 func3(int a, double b, int c, float d);
    //  // Caller allocates memory for struct1 returned and passes pointer in
    //  // RCX, a in RDX, b in XMM2, c in R9, d pushed on the stack, callee
    //  // returns pointer to struct1 result in RAX."
    // (struct1 is any type that is not 1, 2, 4 or 8 bytes; here 16 bytes.)
    check(
        "struct Struct1 { int j, k, l, m; };
         struct Struct1 func3(int a, double b, int c, float d)",
        "edx, xmm2, r9d, [rsp+32] -> sret rcx->rax; stack 48",
    );
    // "struct Struct2 { int j, k; }; Struct2 func4(int a, double b, int c,
    //  float d); // Caller passes a in RCX, b in XMM1, c in R8, d in XMM3;
    //  // callee returns Struct2 result by value in RAX."
    check(
        "struct Struct2 { int j, k; };
         struct Struct2 func4(int a, double b, int c, float d)",
        "ecx, xmm1, r8d, xmm3 -> rax; stack 32",
    );
}

// ---------------------------------------------------------------------------
// DESIGN.md "Tricky cases", with the Win64 expectation for every one.
// Those that name Win64 in DESIGN.md are 1, 3, 4, 8, 10, 11, 23, 25, 26, 28.
// ---------------------------------------------------------------------------

#[test]
fn tricky_01_02_float_float_int() {
    // 12 bytes: [cc] "Structs or unions of other sizes are passed as a
    // pointer to memory allocated by the caller", and returned through a
    // hidden pointer in RCX.
    let defs = "typedef struct { float a, b; int c; } S;";
    check(
        &format!("{defs} void f(S s)"),
        "ref rcx copy@0 -> void; stack 32; copies 16",
    );
    check(&format!("{defs} S f(void)"), " -> sret rcx->rax; stack 32");
}

#[test]
fn tricky_03_two_floats_in_gpr() {
    // 8 bytes: passed "as if they were integers of the same size", so in
    // RCX, never in XMM0; returned in RAX. [gcc] `callfv2`: `movq %xmm0,
    // %rcx` before the call, `movq %rax, %xmm0` after.
    check(
        "typedef struct { float x, y; } v2; v2 f(v2 a)",
        "rcx -> rax; stack 32",
    );
}

#[test]
fn tricky_04_three_floats() {
    // 12 bytes both ways: hidden result pointer takes RCX, so the argument's
    // address moves to RDX.
    check(
        "typedef struct { float x, y, z; } v3; v3 f(v3 a)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 16",
    );
}

#[test]
fn tricky_05_06_07_09_sixteen_plus_bytes() {
    // 5: struct { double d; char c[8]; } (16 bytes)
    check(
        "typedef struct { double d; char c[8]; } T; T f(T a)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 16",
    );
    // 6: four doubles (32 bytes)
    check(
        "typedef struct { double a, b, c, d; } T; T f(T a)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 32",
    );
    // 7: five doubles (40 bytes): copy area rounded up to 48.
    check(
        "typedef struct { double a, b, c, d, e; } T; T f(T a)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 48",
    );
    // 9: struct { float a; double b; } (16 bytes)
    check(
        "typedef struct { float a; double b; } T; T f(T a)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 16",
    );
}

#[test]
fn tricky_08_hidden_pointer_shifts_int() {
    // [cc] "Return values": the caller passes the result address "as the
    // first argument. The remaining arguments are then shifted one argument
    // to the right." So the int moves from ECX to EDX.
    check(
        "typedef long long ll; struct L3 { ll a, b, c; }; struct L3 f(int x)",
        "edx -> sret rcx->rax; stack 32",
    );
}

#[test]
fn tricky_10_packed_five_bytes() {
    let sig = parse("struct __attribute__((packed)) P { char c; int i; }; void f(struct P p)");
    assert_eq!(sig.args[0].size(), 5);
    assert_eq!(
        render_sig(&sig).1,
        "ref rcx copy@0 -> void; stack 32; copies 16"
    );
}

#[test]
fn tricky_11_three_chars_then_int() {
    // 3 bytes is not 1, 2, 4 or 8: by reference. [gcc] `callrs3` (a
    // struct {char a,b,c;} argument): the copy's address in a GPR.
    check(
        "struct C3 { char a, b, c; }; void f(struct C3 s, int i)",
        "ref rcx copy@0, edx -> void; stack 32; copies 16",
    );
}

#[test]
fn tricky_12_13_14_unions_and_nesting() {
    // 12: a 4-byte union goes in a GPR whatever its members; the float uses
    // slot 1's XMM. [gcc] `c12`: `movl %edi, %ecx`, `movss ..., %xmm1`.
    check(
        "union U { float f; int i; }; void f(union U u, float x)",
        "ecx, xmm1 -> void; stack 32",
    );
    // 13: 8-byte union: RCX, returned in RAX.
    check(
        "union U { double d; float f[2]; }; union U f(union U u)",
        "rcx -> rax; stack 32",
    );
    // 14: 16 bytes of floats: by reference.
    check(
        "struct Q { struct { float a, b; } p; float c[2]; }; struct Q f(struct Q q)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 16",
    );
}

#[test]
fn tricky_15_int128() {
    // [cc] "16-byte arguments are passed by reference". Microsoft has no
    // __int128; [gcc] `i128(__int128 a, __int128 b)` reads a from (%rcx) and
    // b from (%rdx), and returns the sum in xmm0 (`movdqa (%rsp), %xmm0`).
    check(
        "__int128 f(__int128 a, __int128 b)",
        "ref rcx copy@0, ref rdx copy@16 -> xmm0; stack 32; copies 32",
    );
    // [gcc] `callri` (`__int128 ri128(int)`): no hidden pointer, the int
    // stays in ecx, the result is read from xmm0.
    check("__int128 f(int x)", "ecx -> xmm0; stack 32");
    // [gcc] `callci` (`ci128(__int128, int)`): copy address in rcx, int in edx.
    check(
        "void f(unsigned __int128 a, int x)",
        "ref rcx copy@0, edx -> void; stack 32; copies 16",
    );
}

#[test]
fn tricky_16_narrow_ints() {
    // [cc] leaves the upper bits unspecified; [gcc] ms_abi callers extend to
    // 32 bits anyway (`callnarrow`: movsbl for signed char, movzwl for
    // unsigned short, movzbl for _Bool), and so does the plan. Results are
    // not extended ([gcc] `rsc`: `leal (%rcx,%rcx,2), %eax`).
    check(
        "int f(signed char a, unsigned short b, _Bool c)",
        "ecx sx, edx zx, r8d zx -> eax; stack 32",
    );
    // Plain char is signed on Win64; short is signed.
    check(
        "signed char f(char a, short b, unsigned char c, long long d)",
        "ecx sx, edx sx, r8d zx, r9 -> eax; stack 32",
    );
}

#[test]
fn tricky_17_struct_on_stack_by_reference() {
    // six ll, struct { ll a; double b; }, double, ll. [gcc] `c17`: 5 and 6
    // at [rsp+32]/[rsp+40], the struct copy's address at [rsp+48] (the copy
    // itself 16-byte aligned in the caller's frame), 7.0 at [rsp+56], 8 at
    // [rsp+64]; the stack area is 32 + 5*8 = 72, rounded to 80.
    check(
        "typedef long long ll; typedef struct { ll a; double b; } LD;
         void f(ll a, ll b, ll c, ll d, ll e, ll g, LD s, double x, ll y)",
        "rcx, rdx, r8, r9, [rsp+32], [rsp+40], ref [rsp+48] copy@0, [rsp+56], [rsp+64] \
         -> void; stack 80; copies 16",
    );
}

#[test]
fn tricky_18_19_20_no_backfill() {
    // 18: seven doubles, struct { double a, b; }, double: positional, so
    // nothing back-fills.
    check(
        "typedef struct { double a, b; } D2;
         void f(double a, double b, double c, double d, double e, double g, double h, D2 s, double x)",
        "xmm0, xmm1, xmm2, xmm3, [rsp+32], [rsp+40], [rsp+48], ref [rsp+56] copy@0, [rsp+64] \
         -> void; stack 80; copies 16",
    );
    // 19: six doubles, struct { double a, b, c; }, double.
    check(
        "typedef struct { double a, b, c; } D3;
         void f(double a, double b, double c, double d, double e, double g, D3 s, double x)",
        "xmm0, xmm1, xmm2, xmm3, [rsp+32], [rsp+40], ref [rsp+48] copy@0, [rsp+56] \
         -> void; stack 64; copies 32",
    );
    // 20: seven ll, struct { ll a, b; }, ll.
    check(
        "typedef long long ll; typedef struct { ll a, b; } L2;
         void f(ll a, ll b, ll c, ll d, ll e, ll g, ll h, L2 s, ll x)",
        "rcx, rdx, r8, r9, [rsp+32], [rsp+40], [rsp+48], ref [rsp+56] copy@0, [rsp+64] \
         -> void; stack 80; copies 16",
    );
}

#[test]
fn tricky_21_22_int128_positions() {
    // 21: five ll, __int128, ll. [gcc] `c21`: 5 at [rsp+32], the copy's
    // address at [rsp+40], 7 at [rsp+48].
    check(
        "typedef long long ll; void f(ll a, ll b, ll c, ll d, ll e, __int128 x, ll y)",
        "rcx, rdx, r8, r9, [rsp+32], ref [rsp+40] copy@0, [rsp+48] \
         -> void; stack 64; copies 16",
    );
    // 22: int, __int128: no pair alignment on Win64, just slot 1.
    check(
        "void f(int a, __int128 x)",
        "ecx, ref rdx copy@0 -> void; stack 32; copies 16",
    );
}

#[test]
fn tricky_23_mixed_positions() {
    // DESIGN: rcx, xmm1, r8, xmm3, [rsp+32], [rsp+40].
    check(
        "void f(int a, double b, int c, double d, int e, double g)",
        "ecx, xmm1, r8d, xmm3, [rsp+32], [rsp+40] -> void; stack 48",
    );
}

#[test]
fn tricky_24_narrow_stack_args() {
    // eight ll, then char, short, int, char: every stack argument takes a
    // whole 8-byte slot. [gcc] `c24`: pushes at [rsp+32]..[rsp+88].
    check(
        "typedef long long ll;
         void f(ll a, ll b, ll c, ll d, ll e, ll g, ll h, ll i, char w, short x, int y, char z)",
        "rcx, rdx, r8, r9, [rsp+32], [rsp+40], [rsp+48], [rsp+56], \
         [rsp+64] sx, [rsp+72] sx, [rsp+80], [rsp+88] sx -> void; stack 96",
    );
}

#[test]
fn tricky_25_variadic_double_duplicated() {
    // [cc] "Varargs": "For floating-point values only, both the integer
    // register and the floating-point register must contain the value".
    // [gcc] `callvf(1, 2.5, 3)`: 2.5 in xmm1 and rdx, 3 in r8d.
    check(
        "int f(int n, ..., double, int)",
        "ecx, xmm1+rdx, r8d -> eax; stack 32",
    );
}

#[test]
fn tricky_26_variadic_struct_by_reference() {
    // Variadic aggregates follow the aggregate rule. [gcc] `callvd2`: the
    // address of a 16-aligned copy of the struct { double a, b; } in rdx.
    check(
        "typedef struct { double a, b; } D2; int f(int n, ..., D2)",
        "ecx, ref rdx copy@0 -> eax; stack 32; copies 16",
    );
}

#[test]
fn tricky_27_long_double_is_double() {
    // MSVC's long double is double ([cc] types page: "long double" is 8
    // bytes), so it goes in XMM registers like double.
    let sig = parse("long double f(long double a, int b, long double c)");
    assert_eq!(sig.args[0], Type::Scalar(Scalar::F64));
    assert_eq!(sig.ret, Type::Scalar(Scalar::F64));
    assert_eq!(render_sig(&sig).1, "xmm0, edx, xmm2 -> xmm0; stack 32");
}

#[test]
fn tricky_28_complex_double_by_reference() {
    // 16 bytes: by reference, and returned through a hidden pointer.
    // [gcc] `callccd`: result address in rcx, copy's address in rdx.
    check(
        "_Complex double f(_Complex double z)",
        "ref rdx copy@0 -> sret rcx->rax; stack 32; copies 16",
    );
}

// ---------------------------------------------------------------------------
// More rules.
// ---------------------------------------------------------------------------

#[test]
fn struct_sizes_1_to_17() {
    // [cc] "Parameter passing": sizes 1, 2, 4, 8 as integers; all others by
    // pointer. "Return values": 1, 2, 4, 8 bytes in RAX; all others via a
    // hidden pointer. [gcc] `sN f(sN, int)` for struct { char c[N]; },
    // N = 1..17: N = 1, 2, 4, 8 load the struct into ecx/rcx and pass the int
    // in edx; all others pass the result address in rcx, the copy's address
    // in rdx and the int in r8d.
    for n in 1..=17u32 {
        let decl = format!("typedef struct {{ char c[{n}]; }} S; S f(S s, int x)");
        let want = match n {
            1 | 2 | 4 => "ecx, edx -> eax; stack 32".to_string(),
            8 => "rcx, edx -> rax; stack 32".to_string(),
            _ => format!(
                "ref rdx copy@0, r8d -> sret rcx->rax; stack 32; copies {}",
                n.div_ceil(16) * 16
            ),
        };
        assert_eq!(render(&decl), want, "{decl}");
    }
}

#[test]
fn struct_layout_sizes_not_member_count() {
    // What counts is sizeof, padding included: struct { short a; char b; }
    // is 4 bytes, struct { int a; char b; } is 8, struct { char a; short b;
    // char c; } is 6.
    check(
        "struct A { short a; char b; }; struct B { int a; char b; };
         struct C { char a; short b; char c; };
         struct A f(struct A a, struct B b, struct C c)",
        "ecx, rdx, ref r8 copy@0 -> eax; stack 32; copies 16",
    );
    // One double or one float in a struct is still an integer ([gcc]
    // `callrf1`: struct { double d; } in rcx, struct { float f; } result in
    // eax).
    check(
        "struct D { double d; }; struct F { float f; };
         struct F f(struct D d, float x)",
        "rcx, xmm1 -> eax; stack 32",
    );
}

#[test]
fn copies_in_argument_order() {
    // Each copy at the next multiple of 16 ([cc]: "the caller-allocated
    // temporary memory must be 16-byte aligned").
    check(
        "struct A { char c[3]; }; struct B { char c[20]; }; struct C { char c[5]; };
         void f(struct A a, int x, struct B b, struct C c, struct A d)",
        "ref rcx copy@0, edx, ref r8 copy@16, ref r9 copy@48, ref [rsp+32] copy@64 \
         -> void; stack 48; copies 80",
    );
}

#[test]
fn many_stack_args() {
    // Twenty ints: slots 4..19 at 32 + 8*(i-4); 32 + 16*8 = 160.
    let params: Vec<String> = (0..20).map(|i| format!("int a{i}")).collect();
    let decl = format!("void f({})", params.join(", "));
    let mut want: Vec<String> = ["ecx", "edx", "r8d", "r9d"].map(String::from).to_vec();
    want.extend((4..20).map(|i| format!("[rsp+{}]", 32 + 8 * (i - 4))));
    assert_eq!(
        render(&decl),
        format!("{} -> void; stack 160", want.join(", "))
    );
    // An odd number of stack slots rounds up: 5 stack args, 32 + 40 = 72 -> 80.
    check(
        "double f(float a, float b, float c, float d, float e, double g, void *p, int q, float r)",
        "xmm0, xmm1, xmm2, xmm3, [rsp+32], [rsp+40], [rsp+48], [rsp+56], [rsp+64] \
         -> xmm0; stack 80",
    );
}

#[test]
fn long_is_32_bits() {
    // LLP64: long is 4 bytes ([cc] types: "long" INT32).
    let sig = parse("long f(long a, unsigned long b, long long c)");
    assert_eq!(sig.args[0].size(), 4);
    assert_eq!(render_sig(&sig).1, "ecx, edx, r8 -> eax; stack 32");
}

#[test]
fn pointers_and_function_pointers() {
    check(
        "void *f(const char *s, int (*cmp)(const void *, const void *), void **out)",
        "rcx, rdx, r8 -> rax; stack 32",
    );
}

#[test]
fn complex_float_is_an_eight_byte_aggregate() {
    // [gcc] `callccf`: both halves packed into rcx; the result comes back in
    // rax.
    check(
        "_Complex float f(_Complex float z, float x)",
        "rcx, xmm1 -> rax; stack 32",
    );
}

#[test]
fn variadic_floats_in_all_register_slots() {
    // Duplicated in slots 1-3, single on the stack. [gcc] `callvmany(1, 2,
    // 3, 4, 5.5, 6.5)`: 5.5 at [rsp+32] and 6.5 at [rsp+40], nowhere else.
    check(
        "int printf(const char *fmt, ..., double, double, double, double)",
        "rcx, xmm1+rdx, xmm2+r8, xmm3+r9, [rsp+32] -> eax; stack 48",
    );
    check(
        "int f(int n, ..., int, int, int, double, double)",
        "ecx, edx, r8d, r9d, [rsp+32], [rsp+40] -> eax; stack 48",
    );
}

#[test]
fn variadic_with_hidden_pointer() {
    // The hidden pointer takes slot 0, so the first variadic double is in
    // slot 2: xmm2 and r8.
    check(
        "typedef struct { double a, b; } D2; D2 f(int n, ..., double)",
        "edx, xmm2+r8 -> sret rcx->rax; stack 32",
    );
}

#[test]
fn variadic_small_struct_and_fixed_floats() {
    // A variadic 8-byte struct is an integer (no duplication: it is not a
    // floating-point value); a named double in a variadic function is not
    // duplicated either (only the variadic part is).
    check(
        "typedef struct { float x, y; } v2; int f(double d, ..., v2, long long)",
        "xmm0, rdx, r8 -> eax; stack 32",
    );
}

#[test]
fn void_and_scalar_results() {
    check("void f(void)", " -> void; stack 32");
    check("float f(void)", " -> xmm0; stack 32");
    check("double f(int)", "ecx -> xmm0; stack 32");
    check("unsigned short f(void)", " -> eax; stack 32");
    check("_Bool f(void)", " -> eax; stack 32");
    check("unsigned long long f(void)", " -> rax; stack 32");
}

#[test]
fn over_aligned_by_reference_is_unsupported() {
    // The copy area is only 16-byte aligned; a 32-aligned aggregate would
    // need more. Refused rather than planned wrongly.
    let sig = parse("struct __attribute__((aligned(32))) A { int x; }; void f(struct A a)");
    assert!(jitffi::abi::win64::plan(&sig).is_err());
    // An over-aligned struct that still fits 8 bytes is an integer.
    check(
        "struct __attribute__((aligned(8))) A { int x; }; void f(struct A a)",
        "rcx -> void; stack 32",
    );
}
