//! Golden disassembly of the AArch64 forward emitter, for hand-built plans
//! and for plans made by the AAPCS64 / Apple arm64 planner.
//!
//! The hand-built plans are written here from the ABI documents (Arm
//! AAPCS64 "Parameter Passing Rules" and "Result Return"; Apple's "Writing
//! ARM64 code for Apple platforms"), independent of the planner. The
//! expected text is what the plan says, instruction by instruction, in
//! yaxpeax-arm's syntax:
//! - prologue `stp x29, x30, [sp, #-0x10]!; mov x29, sp`, then x19 = args,
//!   x20 = ret, x21 = target (unbound) saved in 16-byte slots, then
//!   `sub sp, sp, #(stack_size + copy_area_size)`;
//! - in pointer mode x9 = args[i]; in frame mode values are read at
//!   `[x19 + offset]`; x10/x11 are scratch;
//! - the call is `blr x21` or `movz/movk x16, #target; blr x16`;
//! - results are stored from x0/x1/v0–v3 into `[x20 + offset]`;
//! - epilogue: x19–x21 reloaded relative to x29, `mov sp, x29`,
//!   `ldp x29, x30, [sp], #0x10; ret`.
//!
//! Addresses are left out of the comparison so the expectations read as a
//! listing.

use std::sync::Arc;

use jitffi::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use jitffi::arch::aarch64::emit_forward;
use jitffi::arch::{ArgSource, Target};
use jitffi::call::{emit, ArgMode};
use jitffi::cdecl::parse_signature;
use jitffi::disasm::disassemble;
use jitffi::types::{layout_record, FieldDecl, Isa, RecordKind, Scalar};
use jitffi::{Abi, Signature, Type};

/// The bound target used throughout: four non-zero halfwords.
const ADDR: u64 = 0x0001_2345_6789_abcd;

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

fn part(offset: u32, size: u32, loc: Loc, class: PartClass) -> Part {
    Part {
        offset,
        size,
        loc,
        class,
        ext: Ext::None,
    }
}

fn x(offset: u32, size: u32, n: u8) -> Part {
    part(offset, size, Loc::Reg(Reg::Gpr(n)), PartClass::Int)
}

fn v(offset: u32, size: u32, n: u8) -> Part {
    part(offset, size, Loc::Reg(Reg::Fpr(n)), PartClass::Float)
}

fn stack(offset: u32, size: u32, at: u32, class: PartClass) -> Part {
    part(offset, size, Loc::Stack(at), class)
}

fn plan(abi: Abi, args: Vec<ArgPlan>, ret: RetPlan) -> CallPlan {
    CallPlan {
        abi,
        args,
        ret,
        stack_size: 0,
        shadow_space: 0,
        copy_area_size: 0,
        al: None,
    }
}

fn one(p: Part) -> ArgPlan {
    ArgPlan::Direct(vec![p])
}

/// The disassembly without the address column.
fn listing(code: &[u8]) -> String {
    disassemble(Isa::Aarch64, code, 0)
        .lines()
        .map(|l| l.split_once("  ").map_or(l, |(_, t)| t))
        .collect::<Vec<_>>()
        .join("\n")
}

fn same(got: &str, want: &str) {
    let want: Vec<&str> = want
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}

fn check(sig: &Signature, plan: &CallPlan, source: ArgSource<'_>, target: Target, want: &str) {
    plan.validate(sig).expect("hand-built plan is valid");
    let code = emit_forward(sig, plan, source, target).expect("emits");
    assert_eq!(code.len() % 4, 0);
    same(&listing(&code), want);
}

/// Plans with the real planner and emits (bound to `ADDR`), for `decl`.
fn planned(abi: Abi, decl: &str, mode: ArgMode, want_plan: &str, want: &str) {
    let sig = parse_signature(decl, abi).expect("parses");
    let (plan, code) = emit(&sig, mode, Some(ADDR as usize as *const _)).expect("emits");
    let shown = plan.display(&sig).to_string();
    let shown: Vec<&str> = shown.lines().skip(1).map(str::trim).collect();
    same(&shown.join("\n"), want_plan);
    same(&listing(&code), want);
}

const BIND: &str = "
    mov x16, #0xabcd
    movk x16, #0x6789, lsl #16
    movk x16, #0x2345, lsl #32
    movk x16, #0x1, lsl #48
    blr x16
";

/// `long long add3(long long, long long, long long)`, pointer mode,
/// unbound: x0, x1, x2 -> x0 (AAPCS64 C.9; "Result Return"). Three saved
/// registers: x19/x20 as a pair, x21 alone in a 16-byte slot.
#[test]
fn three_ints_pointers_unbound() {
    let ll = s(Scalar::I64);
    let sig = Signature::new(Abi::Aapcs64, ll.clone(), vec![ll.clone(), ll.clone(), ll]);
    let p = plan(
        Abi::Aapcs64,
        vec![one(x(0, 8, 0)), one(x(0, 8, 1)), one(x(0, 8, 2))],
        RetPlan::Direct(vec![x(0, 8, 0)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        str x21, [sp, #-0x10]!
        mov x19, x1
        mov x20, x2
        mov x21, x0
        ldr x9, [x19]
        ldr x0, [x9]
        ldr x9, [x19, #0x8]
        ldr x1, [x9]
        ldr x9, [x19, #0x10]
        ldr x2, [x9]
        blr x21
        str x0, [x20]
        ldp x19, x20, [x29, #-0x10]
        ldur x21, [x29, #-0x20]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        ",
    );
}

/// `void f(void)`, bound: nothing to save but fp/lr; the 64-bit address is
/// built with movz + three movk.
#[test]
fn void_void_bound() {
    let sig = Signature::new(Abi::Aapcs64, Type::Void, vec![]);
    let p = plan(Abi::Aapcs64, vec![], RetPlan::Void);
    let want = format!(
        "stp x29, x30, [sp, #-0x10]!\nmov x29, sp\n{BIND}\nmov sp, x29\nldp x29, x30, [sp], #0x10\nret"
    );
    check(&sig, &p, ArgSource::Pointers, Target::Bound(ADDR), &want);
}

/// Apple: `int f(signed char, unsigned short, _Bool)`, frame mode (offsets
/// 0, 2, 4), bound: the caller extends narrow integers to 32 bits (Apple
/// "Pass arguments and return values": sign/zero extension by the caller),
/// done by the loads themselves. The int result: a whole-register store
/// into the 8-byte result buffer.
#[test]
fn apple_extension_frame_bound() {
    let sig = Signature::new(
        Abi::AppleArm64,
        s(Scalar::I32),
        vec![s(Scalar::I8), s(Scalar::U16), s(Scalar::Bool)],
    );
    let ext = |mut p: Part, e: Ext| {
        p.ext = e;
        p
    };
    let p = plan(
        Abi::AppleArm64,
        vec![
            one(ext(x(0, 1, 0), Ext::Sign(32))),
            one(ext(x(0, 2, 1), Ext::Zero(32))),
            one(ext(x(0, 1, 2), Ext::Zero(32))),
        ],
        RetPlan::Direct(vec![x(0, 4, 0)]),
    );
    let want = format!(
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        mov x19, x1
        mov x20, x2
        ldrsb w0, [x19]
        ldrh w1, [x19, #0x2]
        ldrb w2, [x19, #0x4]
        {BIND}
        str x0, [x20]
        ldp x19, x20, [x29, #-0x10]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        "
    );
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 2, 4]),
        Target::Bound(ADDR),
        &want,
    );
}

/// HFAs (AAPCS64 C.2): `struct {float x,y,z;} f(struct {float x,y,z;},
/// struct {double a,b,c,d;})` -> s0–s2, d3–d6; the result from s0–s2 into
/// ret at 0, 4, 8. Pointer mode, unbound.
#[test]
fn hfa_in_and_out() {
    let f = s(Scalar::F32);
    let d = s(Scalar::F64);
    let v3 = record(vec![f.clone(), f.clone(), f]);
    let d4 = record(vec![d.clone(), d.clone(), d.clone(), d]);
    let sig = Signature::new(Abi::Aapcs64, v3.clone(), vec![v3, d4]);
    let p = plan(
        Abi::Aapcs64,
        vec![
            ArgPlan::Direct(vec![v(0, 4, 0), v(4, 4, 1), v(8, 4, 2)]),
            ArgPlan::Direct(vec![v(0, 8, 3), v(8, 8, 4), v(16, 8, 5), v(24, 8, 6)]),
        ],
        RetPlan::Direct(vec![v(0, 4, 0), v(4, 4, 1), v(8, 4, 2)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        str x21, [sp, #-0x10]!
        mov x19, x1
        mov x20, x2
        mov x21, x0
        ldr x9, [x19]
        ldr s0, [x9]
        ldr s1, [x9, #0x4]
        ldr s2, [x9, #0x8]
        ldr x9, [x19, #0x8]
        ldr d3, [x9]
        ldr d4, [x9, #0x8]
        ldr d5, [x9, #0x10]
        ldr d6, [x9, #0x18]
        blr x21
        str s0, [x20]
        str s1, [x20, #0x4]
        str s2, [x20, #0x8]
        ldp x19, x20, [x29, #-0x10]
        ldur x21, [x29, #-0x20]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        ",
    );
}

/// Five doubles (not an HFA, 40 bytes): B.4 copy to caller memory, the
/// copy's address in x0; the result the same size through x8 (AAPCS64
/// "Result Return"). Frame mode, bound. The copy area is 48 bytes at sp
/// (no stack arguments); the copy moves exactly 40 bytes.
#[test]
fn byref_and_indirect_result() {
    let d = s(Scalar::F64);
    let big = record(vec![d.clone(), d.clone(), d.clone(), d.clone(), d]);
    let sig = Signature::new(Abi::Aapcs64, big.clone(), vec![big]);
    let mut p = plan(
        Abi::Aapcs64,
        vec![ArgPlan::ByRef {
            ptr: Loc::Reg(Reg::Gpr(0)),
            copy_offset: 0,
        }],
        RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(8)),
            ptr_out: None,
        },
    );
    p.copy_area_size = 48;
    let want = format!(
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        sub sp, sp, #0x30
        mov x19, x1
        mov x20, x2
        ldr x10, [x19]
        str x10, [sp]
        ldr x10, [x19, #0x8]
        str x10, [sp, #0x8]
        ldr x10, [x19, #0x10]
        str x10, [sp, #0x10]
        ldr x10, [x19, #0x18]
        str x10, [sp, #0x18]
        ldr x10, [x19, #0x20]
        str x10, [sp, #0x20]
        mov x8, x20
        mov x0, sp
        {BIND}
        ldp x19, x20, [x29, #-0x10]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        "
    );
    check(&sig, &p, ArgSource::Frame(&[0]), Target::Bound(ADDR), &want);
}

/// Composites up to 16 bytes in x registers (C.12), read exactly: a 7-byte
/// struct in x0 from a 4-, a 2- and a 1-byte load; a 12-byte struct in x1
/// (8 bytes) and x2 (4 bytes, `ldr w`). The 7-byte result comes back in x0:
/// one whole-register store into the 8-byte buffer. Pointer mode, unbound.
#[test]
fn odd_sized_composites() {
    let c = s(Scalar::U8);
    let i = s(Scalar::I32);
    let s7 = record(vec![c.clone(); 7]);
    let s12 = record(vec![i.clone(), i.clone(), i]);
    let sig = Signature::new(Abi::Aapcs64, s7.clone(), vec![s7, s12]);
    let p = plan(
        Abi::Aapcs64,
        vec![
            one(x(0, 7, 0)),
            ArgPlan::Direct(vec![x(0, 8, 1), x(8, 4, 2)]),
        ],
        RetPlan::Direct(vec![x(0, 7, 0)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        str x21, [sp, #-0x10]!
        mov x19, x1
        mov x20, x2
        mov x21, x0
        ldr x9, [x19]
        ldr w0, [x9]
        ldrh w11, [x9, #0x4]
        orr x0, x0, x11, lsl #32
        ldrb w11, [x9, #0x6]
        orr x0, x0, x11, lsl #48
        ldr x9, [x19, #0x8]
        ldr x1, [x9]
        ldr w2, [x9, #0x8]
        blr x21
        str x0, [x20]
        ldp x19, x20, [x29, #-0x10]
        ldur x21, [x29, #-0x20]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        ",
    );
}

/// A result split into pieces that share an 8-byte word (a hand-built,
/// valid plan): each piece is stored with exactly its bytes, so no store
/// overwrites another piece. `struct {char c[7];}` as x0 <- bytes 0..3 and
/// x1 <- bytes 3..7.
#[test]
fn result_pieces_sharing_a_word() {
    let c = s(Scalar::U8);
    let s7 = record(vec![c; 7]);
    let sig = Signature::new(Abi::Aapcs64, s7, vec![]);
    let p = plan(
        Abi::Aapcs64,
        vec![],
        RetPlan::Direct(vec![x(0, 3, 0), x(3, 4, 1)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x20, x21, [sp, #-0x10]!
        mov x20, x2
        mov x21, x0
        blr x21
        strh w0, [x20]
        lsr x10, x0, #0x10
        strb w10, [x20, #0x2]
        stur w1, [x20, #0x3]
        ldp x20, x21, [x29, #-0x10]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        ",
    );
}

/// `__int128 f(int, __int128)` (DESIGN case 22, C.10/C.11): w0, then the
/// pair x2:x3 skipping x1; the result in x0:x1. Frame mode (offsets 0, 16),
/// bound.
#[test]
fn int128_pair() {
    let sig = Signature::new(
        Abi::Aapcs64,
        s(Scalar::I128),
        vec![s(Scalar::I32), s(Scalar::I128)],
    );
    let p = plan(
        Abi::Aapcs64,
        vec![
            one(x(0, 4, 0)),
            ArgPlan::Direct(vec![x(0, 8, 2), x(8, 8, 3)]),
        ],
        RetPlan::Direct(vec![x(0, 8, 0), x(8, 8, 1)]),
    );
    let want = format!(
        "
        stp x29, x30, [sp, #-0x10]!
        mov x29, sp
        stp x19, x20, [sp, #-0x10]!
        mov x19, x1
        mov x20, x2
        ldr w0, [x19]
        ldr x2, [x19, #0x10]
        ldr x3, [x19, #0x18]
        {BIND}
        str x0, [x20]
        str x1, [x20, #0x8]
        ldp x19, x20, [x29, #-0x10]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        "
    );
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 16]),
        Target::Bound(ADDR),
        &want,
    );
}

/// DESIGN case 24 with the planner, AAPCS64 (Linux): eight `long long` in
/// x0–x7, then char, short, int, char in 8-byte stack slots 0/8/16/24
/// (C.16), each stored with exactly its size. Frame mode: offsets 0..56
/// for the long longs, then 64, 66, 68, 72.
#[test]
fn planned_stack_slots_linux() {
    planned(
        Abi::Aapcs64,
        "int f(long long, long long, long long, long long, long long, long long, \
         long long, long long, char, short, int, char)",
        ArgMode::Frame,
        "
        arg 1 long long (8 bytes): x0
        arg 2 long long (8 bytes): x1
        arg 3 long long (8 bytes): x2
        arg 4 long long (8 bytes): x3
        arg 5 long long (8 bytes): x4
        arg 6 long long (8 bytes): x5
        arg 7 long long (8 bytes): x6
        arg 8 long long (8 bytes): x7
        arg 9 unsigned char (1 bytes): [sp+0]
        arg 10 short (2 bytes): [sp+8]
        arg 11 int (4 bytes): [sp+16]
        arg 12 unsigned char (1 bytes): [sp+24]
        ret int (4 bytes): w0
        stack: 32 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            sub sp, sp, #0x20
            mov x19, x1
            mov x20, x2
            ldrb w10, [x19, #0x40]
            strb w10, [sp]
            ldrh w10, [x19, #0x42]
            strh w10, [sp, #0x8]
            ldr w10, [x19, #0x44]
            str w10, [sp, #0x10]
            ldrb w10, [x19, #0x48]
            strb w10, [sp, #0x18]
            ldr x0, [x19]
            ldr x1, [x19, #0x8]
            ldr x2, [x19, #0x10]
            ldr x3, [x19, #0x18]
            ldr x4, [x19, #0x20]
            ldr x5, [x19, #0x28]
            ldr x6, [x19, #0x30]
            ldr x7, [x19, #0x38]
            {BIND}
            str x0, [x20]
            ldp x19, x20, [x29, #-0x10]
            mov sp, x29
            ldp x29, x30, [sp], #0x10
            ret
            "
        ),
    );
}

/// DESIGN case 24, Apple (plain char is signed there): the stack arguments packed by natural alignment,
/// 0/2/4/8 (Apple: "function arguments may consume slots on the stack that
/// are not multiples of 8 bytes"); a 16-byte stack area. Pointer mode.
#[test]
fn planned_stack_packed_apple() {
    let regs: String = (0..8)
        .map(|k| {
            let load = if k == 0 {
                "ldr x9, [x19]".to_string()
            } else {
                format!("ldr x9, [x19, #0x{:x}]", 8 * k)
            };
            format!("{load}\nldr x{k}, [x9]\n")
        })
        .collect();
    planned(
        Abi::AppleArm64,
        "int f(long long, long long, long long, long long, long long, long long, \
         long long, long long, char, short, int, char)",
        ArgMode::Pointers,
        "
        arg 1 long long (8 bytes): x0
        arg 2 long long (8 bytes): x1
        arg 3 long long (8 bytes): x2
        arg 4 long long (8 bytes): x3
        arg 5 long long (8 bytes): x4
        arg 6 long long (8 bytes): x5
        arg 7 long long (8 bytes): x6
        arg 8 long long (8 bytes): x7
        arg 9 signed char (1 bytes): [sp+0]
        arg 10 short (2 bytes): [sp+2]
        arg 11 int (4 bytes): [sp+4]
        arg 12 signed char (1 bytes): [sp+8]
        ret int (4 bytes): w0
        stack: 16 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            sub sp, sp, #0x10
            mov x19, x1
            mov x20, x2
            ldr x9, [x19, #0x40]
            ldrb w10, [x9]
            strb w10, [sp]
            ldr x9, [x19, #0x48]
            ldrh w10, [x9]
            strh w10, [sp, #0x2]
            ldr x9, [x19, #0x50]
            ldr w10, [x9]
            str w10, [sp, #0x4]
            ldr x9, [x19, #0x58]
            ldrb w10, [x9]
            strb w10, [sp, #0x8]
            {regs}
            {BIND}
            str x0, [x20]
            ldp x19, x20, [x29, #-0x10]
            mov sp, x29
            ldp x29, x30, [sp], #0x10
            ret
            "
        ),
    );
}

/// DESIGN case 27 with the planner: `long double f(long double, int, long
/// double)`, AAPCS64: q0, w0, q1 -> q0 (quad precision in v registers,
/// C.1). Frame mode: offsets 0, 16, 32.
#[test]
fn planned_long_double_quad() {
    planned(
        Abi::Aapcs64,
        "long double f(long double, int, long double)",
        ArgMode::Frame,
        "
        arg 1 long double (16 bytes): q0
        arg 2 int (4 bytes): w0
        arg 3 long double (16 bytes): q1
        ret long double (16 bytes): q0
        stack: 0 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            mov x19, x1
            mov x20, x2
            ldr q0, [x19]
            ldr w0, [x19, #0x10]
            ldr q1, [x19, #0x20]
            {BIND}
            str q0, [x20]
            ldp x19, x20, [x29, #-0x10]
            mov sp, x29
            ldp x29, x30, [sp], #0x10
            ret
            "
        ),
    );
}

/// DESIGN case 25 with the planner: `int f(int, ...)` called with
/// `(2.5, 3)`. AAPCS64 (Linux) passes variadic arguments as if named: w0,
/// d0, w1. Apple puts every variadic argument on the stack in 8-byte
/// slots: w0, [sp+0], [sp+8].
#[test]
fn planned_variadic_linux_and_apple() {
    let tail = format!(
        "
        {BIND}
        str x0, [x20]
        ldp x19, x20, [x29, #-0x10]
        mov sp, x29
        ldp x29, x30, [sp], #0x10
        ret
        "
    );
    planned(
        Abi::Aapcs64,
        "int f(int, ..., double, int)",
        ArgMode::Frame,
        "
        arg 1 int (4 bytes): w0
        arg 2 variadic double (8 bytes): d0
        arg 3 variadic int (4 bytes): w1
        ret int (4 bytes): w0
        stack: 0 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            mov x19, x1
            mov x20, x2
            ldr w0, [x19]
            ldr d0, [x19, #0x8]
            ldr w1, [x19, #0x10]
            {tail}"
        ),
    );
    planned(
        Abi::AppleArm64,
        "int f(int, ..., double, int)",
        ArgMode::Frame,
        "
        arg 1 int (4 bytes): w0
        arg 2 variadic double (8 bytes): [sp+0]
        arg 3 variadic int (4 bytes): [sp+8]
        ret int (4 bytes): w0
        stack: 16 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            sub sp, sp, #0x10
            mov x19, x1
            mov x20, x2
            ldr x10, [x19, #0x8]
            str x10, [sp]
            ldr w10, [x19, #0x10]
            str w10, [sp, #0x8]
            ldr w0, [x19]
            {tail}"
        ),
    );
}

/// DESIGN case 20 with the planner: seven `long long`, `struct {ll a,b;}`,
/// `long long`: the struct does not fit x7 alone, so it goes whole to the
/// stack (C.13: not split) at 0..16, and the last long long follows it at
/// 16 (no x register is used after C.13). Frame mode.
#[test]
fn planned_struct_not_split() {
    let mut regs = String::new();
    for k in 0..7 {
        if k == 0 {
            regs.push_str("ldr x0, [x19]\n");
        } else {
            regs.push_str(&format!("ldr x{k}, [x19, #0x{:x}]\n", 8 * k));
        }
    }
    planned(
        Abi::Aapcs64,
        "long long f(long long, long long, long long, long long, long long, long long, \
         long long, struct p {long long a, b;}, long long)",
        ArgMode::Frame,
        "
        arg 1 long long (8 bytes): x0
        arg 2 long long (8 bytes): x1
        arg 3 long long (8 bytes): x2
        arg 4 long long (8 bytes): x3
        arg 5 long long (8 bytes): x4
        arg 6 long long (8 bytes): x5
        arg 7 long long (8 bytes): x6
        arg 8 struct p (16 bytes): [sp+0]
        arg 9 long long (8 bytes): [sp+16]
        ret long long (8 bytes): x0
        stack: 32 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            stp x19, x20, [sp, #-0x10]!
            sub sp, sp, #0x20
            mov x19, x1
            mov x20, x2
            ldr x10, [x19, #0x38]
            str x10, [sp]
            ldr x10, [x19, #0x40]
            str x10, [sp, #0x8]
            ldr x10, [x19, #0x48]
            str x10, [sp, #0x10]
            {regs}
            {BIND}
            str x0, [x20]
            ldp x19, x20, [x29, #-0x10]
            mov sp, x29
            ldp x29, x30, [sp], #0x10
            ret
            "
        ),
    );
}

/// A frame of several pages: a 40000-byte struct by reference (B.4) makes
/// a 40000-byte copy area. The frame is probed one page at a time (x10
/// counts 9 pages), the rest (40000 - 9 * 4096 = 3136) subtracted at once;
/// the copy runs as a loop of 5000 8-byte moves (x13 source, x14
/// destination, x15 count). Frame mode, then `long long` at frame offset
/// 40000, beyond the scaled 12-bit load offset (8 * 4095): its address is
/// built in x12 (40000 = 9 << 12 + 0xc40). Bound.
#[test]
fn planned_large_frame_probe_and_copy_loop() {
    planned(
        Abi::Aapcs64,
        "void f(struct big {char c[40000];}, long long)",
        ArgMode::Frame,
        "
        arg 1 struct big (40000 bytes): by reference: x0 <- address of copy at frame copy area +0
        arg 2 long long (8 bytes): x1
        ret void (0 bytes): none
        stack: 0 bytes; copies: 40000 bytes
        ",
        &format!(
            "
            stp x29, x30, [sp, #-0x10]!
            mov x29, sp
            str x19, [sp, #-0x10]!
            mov x10, #0x9
            sub sp, sp, #0x1, lsl #12
            str xzr, [sp]
            subs x10, x10, #0x1
            b.ne $-0xc
            sub sp, sp, #0xc40
            mov x19, x1
            add x13, x19, #0x0
            mov x14, sp
            mov x15, #0x1388
            ldr x10, [x13], #0x8
            str x10, [x14], #0x8
            subs x15, x15, #0x1
            b.ne $-0xc
            mov x0, sp
            add x12, x19, #0x9, lsl #12
            add x12, x12, #0xc40
            ldr x1, [x12]
            {BIND}
            ldur x19, [x29, #-0x10]
            mov sp, x29
            ldp x29, x30, [sp], #0x10
            ret
            "
        ),
    );
}

/// Plans the emitter must refuse rather than emit wrong code.
#[test]
fn refuses_what_it_cannot_encode() {
    let ll = s(Scalar::I64);
    let sig = Signature::new(Abi::Aapcs64, Type::Void, vec![ll.clone()]);
    let bad = |p: CallPlan, src: ArgSource<'_>| {
        emit_forward(&sig, &p, src, Target::Unbound).expect_err("refused")
    };
    // x9 is not an argument register (the trampoline's scratch).
    let e = bad(
        plan(Abi::Aapcs64, vec![one(x(0, 8, 9))], RetPlan::Void),
        ArgSource::Pointers,
    );
    assert!(e.0.contains("not an AArch64 argument register"), "{e}");
    // v8 is callee-saved, never an argument register.
    let e = bad(
        plan(Abi::Aapcs64, vec![one(v(0, 8, 8))], RetPlan::Void),
        ArgSource::Pointers,
    );
    assert!(e.0.contains("cannot load"), "{e}");
    // Extension in a SIMD register means nothing.
    let mut p = v(0, 8, 0);
    p.ext = Ext::Sign(64);
    let e = bad(
        plan(Abi::Aapcs64, vec![one(p)], RetPlan::Void),
        ArgSource::Pointers,
    );
    assert!(e.0.contains("extension"), "{e}");
    // Wrong number of frame offsets.
    let e = bad(
        plan(Abi::Aapcs64, vec![one(x(0, 8, 0))], RetPlan::Void),
        ArgSource::Frame(&[]),
    );
    assert!(e.0.contains("frame offsets"), "{e}");
    // An x86-64 plan.
    let sysv = Signature::new(Abi::SysV64, Type::Void, vec![ll.clone()]);
    let p = plan(Abi::SysV64, vec![one(x(0, 8, 7))], RetPlan::Void);
    assert!(emit_forward(&sysv, &p, ArgSource::Pointers, Target::Unbound).is_err());
    // An invalid plan (argument 1's bytes not covered).
    let e = bad(
        plan(Abi::Aapcs64, vec![one(x(0, 4, 0))], RetPlan::Void),
        ArgSource::Pointers,
    );
    assert!(e.0.contains("byte 4"), "{e}");
    // A result address somewhere other than x8.
    let big = record(vec![ll.clone(), ll.clone(), ll.clone()]);
    let sig3 = Signature::new(Abi::Aapcs64, big, vec![]);
    let p = plan(
        Abi::Aapcs64,
        vec![],
        RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(0)),
            ptr_out: None,
        },
    );
    assert!(emit_forward(&sig3, &p, ArgSource::Pointers, Target::Unbound).is_err());
    // A 12-byte piece in a v register.
    let s12 = record(vec![s(Scalar::F32); 3]);
    let sig12 = Signature::new(Abi::Aapcs64, Type::Void, vec![s12]);
    let mut p12 = v(0, 12, 0);
    p12.class = PartClass::Memory;
    let p = plan(Abi::Aapcs64, vec![one(p12)], RetPlan::Void);
    assert!(emit_forward(&sig12, &p, ArgSource::Pointers, Target::Unbound).is_err());
    // A stack piece widened by extension on Apple (packed slots: no room).
    let sig_c = Signature::new(Abi::AppleArm64, Type::Void, vec![s(Scalar::I8)]);
    let mut pc = stack(0, 1, 0, PartClass::Int);
    pc.ext = Ext::Sign(32);
    let mut p = plan(Abi::AppleArm64, vec![one(pc)], RetPlan::Void);
    p.stack_size = 16;
    assert!(emit_forward(&sig_c, &p, ArgSource::Pointers, Target::Unbound).is_err());
    // A frame beyond what two 12-bit `add`/`sub` immediates reach (16 MiB).
    let s16 = record(vec![ll.clone(), ll.clone(), ll.clone()]);
    let sig_big = Signature::new(Abi::Aapcs64, Type::Void, vec![s16]);
    let mut p = plan(
        Abi::Aapcs64,
        vec![ArgPlan::ByRef {
            ptr: Loc::Reg(Reg::Gpr(0)),
            copy_offset: 0,
        }],
        RetPlan::Void,
    );
    p.copy_area_size = 1 << 24;
    let e = emit_forward(&sig_big, &p, ArgSource::Pointers, Target::Unbound).expect_err("big");
    assert!(e.0.contains("too large"), "{e}");
}

/// Every signature of the DESIGN tricky-case list that AAPCS64 and Apple
/// can plan emits, in both modes, bound and unbound, without error, and
/// every word disassembles to an instruction.
#[test]
fn tricky_cases_all_emit() {
    let decls = [
        "void f(struct {float a,b; int c;})",
        "struct {float a,b; int c;} f(void)",
        "struct {float x,y;} f(struct {float x,y;})",
        "struct {float x,y,z;} f(struct {float x,y,z;})",
        "struct {double d; char c[8];} f(struct {double d; char c[8];})",
        "struct {double a,b,c,d;} f(struct {double a,b,c,d;})",
        "struct {double a,b,c,d,e;} f(struct {double a,b,c,d,e;})",
        "struct {long long a,b,c;} f(int)",
        "void f(struct {float a; double b;})",
        "void f(struct __attribute__((packed)) {char c; int i;})",
        "void f(struct {char a,b,c;}, int)",
        "void f(union {float f; int i;}, float)",
        "void f(union {double d; float f[2];})",
        "void f(struct {struct {float a,b;} p; float c[2];})",
        "__int128 f(__int128, __int128)",
        "int f(signed char, unsigned short, _Bool)",
        "void f(double, double, double, double, double, double, struct {double a,b,c;}, double)",
        "void f(long long, long long, long long, long long, long long, long long, long long, struct {long long a,b;}, long long)",
        "void f(int, __int128)",
        "int f(int, ..., double, int)",
        "int f(int, ..., struct {double a,b;})",
        "long double f(long double, int, long double)",
        "_Complex double f(_Complex double)",
    ];
    for abi in [Abi::Aapcs64, Abi::AppleArm64] {
        for d in decls {
            let sig = parse_signature(d, abi).unwrap_or_else(|e| panic!("{d}: {e}"));
            for mode in [ArgMode::Pointers, ArgMode::Frame] {
                for t in [None, Some(ADDR as usize as *const _)] {
                    let (_, code) = emit(&sig, mode, t).unwrap_or_else(|e| panic!("{d}: {e}"));
                    let text = listing(&code);
                    assert!(!text.contains(".word"), "{d}:\n{text}");
                    assert!(text.ends_with("ret"), "{d}:\n{text}");
                }
            }
        }
    }
}
