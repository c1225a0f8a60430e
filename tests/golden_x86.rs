//! Golden disassembly of the x86-64 forward emitter, for hand-built plans.
//!
//! Each plan is written here by hand from the ABI documents (SysV psABI
//! §3.2.3, Microsoft x64 calling convention), independent of the planners.
//! The expected text is what the plan says, instruction by instruction.
//!
//! Fast path (every argument piece in a register): no frame pointer, no
//! callee-saved register. `args` stays in rsi (the piece for rsi is loaded
//! last); the target moves from rdi to rax (r11 when rax carries `al`),
//! where a bound address is loaded too; `ret` is pushed (`push rdx`, which
//! also makes rsp 16-byte aligned at the call) and popped into rcx after
//! the call; r10 holds the pointer to a value in pointer mode. With nothing
//! to do after the call (no result to store, no stack area) the call is a
//! tail jump.
//!
//! General path (stack pieces, by-reference copies): rbp frame; rbx = args,
//! r12 = ret, r13 = target are kept across the call; rax/r11 are scratch.
//!
//! Addresses are left out of the comparison (except in two tests) so the
//! expectations read as a listing; they are iced-x86's Intel syntax.

use std::sync::Arc;

use jitffi::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use jitffi::arch::x86_64::emit_forward;
use jitffi::arch::{ArgSource, Target};
use jitffi::disasm::disassemble;
use jitffi::types::{layout_record, FieldDecl, Isa, RecordKind, Scalar};
use jitffi::{Abi, Signature, Type};

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R9: u8 = 9;

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

fn gpr(offset: u32, size: u32, n: u8) -> Part {
    part(offset, size, Loc::Reg(Reg::Gpr(n)), PartClass::Int)
}

fn xmm(offset: u32, size: u32, n: u8) -> Part {
    part(offset, size, Loc::Reg(Reg::Fpr(n)), PartClass::Float)
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
    disassemble(Isa::X86_64, code, 0)
        .lines()
        .map(|l| l.split_once("  ").map_or(l, |(_, t)| t))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check(sig: &Signature, plan: &CallPlan, source: ArgSource<'_>, target: Target, want: &str) {
    plan.validate(sig).expect("hand-built plan is valid");
    let code = emit_forward(sig, plan, source, target).expect("emits");
    let got = listing(&code);
    let want: Vec<&str> = want
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    assert_eq!(got, want.join("\n"), "\n--- got ---\n{got}\n");
}

/// `long long add3(long long, long long, long long)`, SysV, pointer mode,
/// unbound: rdi, rsi, rdx -> rax (psABI §3.2.3, INTEGER class).
#[test]
fn sysv_three_ints_pointers_unbound() {
    let ll = s(Scalar::I64);
    let sig = Signature::new(Abi::SysV64, ll.clone(), vec![ll.clone(), ll.clone(), ll]);
    let p = plan(
        Abi::SysV64,
        vec![
            one(gpr(0, 8, RDI)),
            one(gpr(0, 8, RSI)),
            one(gpr(0, 8, RDX)),
        ],
        RetPlan::Direct(vec![gpr(0, 8, RAX)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        mov rax, rdi
        push rdx
        mov r10, [rsi]
        mov rdi, [r10]
        mov r10, [rsi+0x10]
        mov rdx, [r10]
        mov r10, [rsi+8]
        mov rsi, [r10]
        call rax
        pop rcx
        mov [rcx], rax
        ret
        ",
    );
    // Shortest encodings (Intel SDM): no SIB byte, no or an 8-bit
    // displacement. mov rax, rdi = 48 89 f8 (3); push rdx = 52 (1);
    // mov r10, [rsi] = 4c 8b 16 (3); mov rdi, [r10] = 49 8b 3a (3);
    // mov r10, [rsi+0x10] = 4c 8b 56 10 (4); mov rdx, [r10] (3);
    // mov r10, [rsi+8] (4); mov rsi, [r10] (3); call rax = ff d0 (2);
    // pop rcx = 59 (1); mov [rcx], rax = 48 89 01 (3); ret = c3 (1).
    let code = emit_forward(&sig, &p, ArgSource::Pointers, Target::Unbound).unwrap();
    assert_eq!(code.len(), 31);
    assert_eq!(&code[4..11], &[0x4c, 0x8b, 0x16, 0x49, 0x8b, 0x3a, 0x4c]);
}

/// `double f(short, double, long long, float)`, SysV, frame mode (offsets
/// 0, 8, 16, 24), bound: short sign-extended into edi, xmm0, rsi, xmm1;
/// result in xmm0. The rsi piece is read through rsi itself, so it is
/// loaded last.
#[test]
fn sysv_mixed_frame_bound() {
    let sig = Signature::new(
        Abi::SysV64,
        s(Scalar::F64),
        vec![
            s(Scalar::I16),
            s(Scalar::F64),
            s(Scalar::I64),
            s(Scalar::F32),
        ],
    );
    let mut short = gpr(0, 2, RDI);
    short.ext = Ext::Sign(32);
    let p = plan(
        Abi::SysV64,
        vec![
            one(short),
            one(xmm(0, 8, 0)),
            one(gpr(0, 8, RSI)),
            one(xmm(0, 4, 1)),
        ],
        RetPlan::Direct(vec![xmm(0, 8, 0)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 8, 16, 24]),
        Target::Bound(0x1122_3344_5566_7788),
        "
        push rdx
        movsx edi, word ptr [rsi]
        movsd xmm0, [rsi+8]
        movss xmm1, [rsi+0x18]
        mov rsi, [rsi+0x10]
        mov rax, 0x1122334455667788
        call rax
        pop rcx
        movsd [rcx], xmm0
        ret
        ",
    );
}

/// `struct {float a,b; int c;} f(same)` (DESIGN cases 1 and 2), SysV:
/// bytes 0..8 SSE -> xmm0, bytes 8..12 INTEGER -> edi; the result comes
/// back in xmm0 + eax. The 4-byte eax piece is stored as 8 bytes: the
/// 16-byte result buffer has room.
#[test]
fn sysv_struct_split_xmm0_edi() {
    let st = record(vec![s(Scalar::F32), s(Scalar::F32), s(Scalar::I32)]);
    assert_eq!(st.size(), 12);
    let sig = Signature::new(Abi::SysV64, st.clone(), vec![st]);
    assert_eq!(sig.ret_buffer_size(), 16);
    let p = plan(
        Abi::SysV64,
        vec![ArgPlan::Direct(vec![xmm(0, 8, 0), gpr(8, 4, RDI)])],
        RetPlan::Direct(vec![xmm(0, 8, 0), gpr(8, 4, RAX)]),
    );
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0]),
        Target::Unbound,
        "
        mov rax, rdi
        push rdx
        movsd xmm0, [rsi]
        mov edi, [rsi+8]
        call rax
        pop rcx
        movsd [rcx], xmm0
        mov [rcx+8], rax
        ret
        ",
    );
}

/// `void g(struct {char c[7];}, int)`, SysV, pointer mode, bound: the
/// 7-byte struct in rdi is read as 4 + 2 + 1 bytes (never past its end),
/// assembled with r11. Void result, no stack: a tail jump.
#[test]
fn sysv_seven_byte_piece() {
    let c7 = record(vec![Type::array(s(Scalar::I8), 7).unwrap()]);
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![c7, s(Scalar::I32)]);
    let p = plan(
        Abi::SysV64,
        vec![one(gpr(0, 7, RDI)), one(gpr(0, 4, RSI))],
        RetPlan::Void,
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Bound(0x1000),
        "
        mov r10, [rsi]
        mov edi, [r10]
        movzx r11d, word ptr [r10+4]
        shl r11, 0x20
        or rdi, r11
        movzx r11d, byte ptr [r10+6]
        shl r11, 0x30
        or rdi, r11
        mov r10, [rsi+8]
        mov esi, [r10]
        mov rax, 0x1000
        jmp rax
        ",
    );
}

/// `int f(struct {long long a,b,c;}, signed char)`, SysV: the 24-byte
/// struct is MEMORY class, copied to [rsp+0..24]; the char goes to edi
/// sign-extended (gcc extends to 32 bits). Frame offsets 0 and 24.
#[test]
fn sysv_memory_struct_on_stack() {
    let ll = s(Scalar::I64);
    let st = record(vec![ll.clone(), ll.clone(), ll]);
    let sig = Signature::new(Abi::SysV64, s(Scalar::I32), vec![st, s(Scalar::I8)]);
    let mut ch = gpr(0, 1, RDI);
    ch.ext = Ext::Sign(32);
    let mut p = plan(
        Abi::SysV64,
        vec![one(part(0, 24, Loc::Stack(0), PartClass::Memory)), one(ch)],
        RetPlan::Direct(vec![gpr(0, 4, RAX)]),
    );
    p.stack_size = 32;
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 24]),
        Target::Unbound,
        "
        push rbp
        mov rbp, rsp
        push rbx
        push r12
        push r13
        sub rsp, 0x28
        mov rbx, rsi
        mov r12, rdx
        mov r13, rdi
        mov rax, [rbx]
        mov [rsp], rax
        mov rax, [rbx+8]
        mov [rsp+8], rax
        mov rax, [rbx+0x10]
        mov [rsp+0x10], rax
        movsx edi, byte ptr [rbx+0x18]
        call r13
        mov [r12], rax
        lea rsp, [rbp-0x18]
        pop r13
        pop r12
        pop rbx
        pop rbp
        ret
        ",
    );
}

/// `struct {long long a,b,c;} f(int)` (DESIGN case 8), SysV: hidden result
/// address = the caller's `ret` buffer (rdx at entry) in rdi, moved
/// before any argument load, the int in esi; nothing is stored after the
/// call, so it is a tail jump (the callee returns to our caller).
#[test]
fn sysv_sret() {
    let ll = s(Scalar::I64);
    let st = record(vec![ll.clone(), ll.clone(), ll]);
    let sig = Signature::new(Abi::SysV64, st, vec![s(Scalar::I32)]);
    let p = plan(
        Abi::SysV64,
        vec![one(gpr(0, 4, RSI))],
        RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(RDI)),
            ptr_out: Some(Reg::Gpr(RAX)),
        },
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        mov rax, rdi
        mov rdi, rdx
        mov r10, [rsi]
        mov esi, [r10]
        jmp rax
        ",
    );
}

/// `int f(struct {char a,b,c;}, int, double, int, double)`, Win64 (DESIGN
/// cases 11 and 23): the 3-byte struct by reference (copy at +0 of the copy
/// area, which starts at rsp+48, address in rcx), edx, xmm2, r9d, and the
/// fifth argument at [rsp+32] past the 32-byte shadow space. Frame offsets
/// 0, 4, 8, 16, 24. Frame: 48 + 16 + 8 (pad for three pushes) = 0x48.
#[test]
fn win64_shadow_space_and_byref_copy() {
    let c = s(Scalar::I8);
    let st = record(vec![c.clone(), c.clone(), c]);
    assert_eq!(st.size(), 3);
    let sig = Signature::new(
        Abi::Win64,
        s(Scalar::I32),
        vec![
            st,
            s(Scalar::I32),
            s(Scalar::F64),
            s(Scalar::I32),
            s(Scalar::F64),
        ],
    );
    let mut p = plan(
        Abi::Win64,
        vec![
            ArgPlan::ByRef {
                ptr: Loc::Reg(Reg::Gpr(RCX)),
                copy_offset: 0,
            },
            one(gpr(0, 4, RDX)),
            one(xmm(0, 8, 2)),
            one(gpr(0, 4, R9)),
            one(part(0, 8, Loc::Stack(32), PartClass::Float)),
        ],
        RetPlan::Direct(vec![gpr(0, 4, RAX)]),
    );
    p.stack_size = 48;
    p.shadow_space = 32;
    p.copy_area_size = 16;
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 4, 8, 16, 24]),
        Target::Unbound,
        "
        push rbp
        mov rbp, rsp
        push rbx
        push r12
        push r13
        sub rsp, 0x48
        mov rbx, rsi
        mov r12, rdx
        mov r13, rdi
        movzx eax, word ptr [rbx]
        mov [rsp+0x30], ax
        movzx eax, byte ptr [rbx+2]
        mov [rsp+0x32], al
        mov rax, [rbx+0x18]
        mov [rsp+0x20], rax
        lea rcx, [rsp+0x30]
        mov edx, [rbx+4]
        movsd xmm2, [rbx+8]
        mov r9d, [rbx+0x10]
        call r13
        mov [r12], rax
        lea rsp, [rbp-0x18]
        pop r13
        pop r12
        pop rbx
        pop rbp
        ret
        ",
    );
}

/// `int printf(const char *, ..., int, double)`, SysV, bound, pointer
/// mode: rdi, esi, xmm0 (esi last: it overwrites `args`), and al = 1
/// (psABI §3.5.7); the bound address goes through r11 because rax
/// carries al.
#[test]
fn sysv_variadic_al() {
    let mut sig = Signature::new(
        Abi::SysV64,
        s(Scalar::I32),
        vec![Type::pointer("const char"), s(Scalar::I32), s(Scalar::F64)],
    );
    sig.fixed_args = 1;
    sig.variadic = true;
    let mut p = plan(
        Abi::SysV64,
        vec![one(gpr(0, 8, RDI)), one(gpr(0, 4, RSI)), one(xmm(0, 8, 0))],
        RetPlan::Direct(vec![gpr(0, 4, RAX)]),
    );
    p.al = Some(1);
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Bound(0x40_1000),
        "
        push rdx
        mov r10, [rsi]
        mov rdi, [r10]
        mov r10, [rsi+0x10]
        movsd xmm0, [r10]
        mov r10, [rsi+8]
        mov esi, [r10]
        mov eax, 1
        mov r11, 0x401000
        call r11
        pop rcx
        mov [rcx], rax
        ret
        ",
    );
}

/// `long double f(long double, int)` (DESIGN case 27), SysV: the x87 value
/// is MEMORY class on the stack (16 bytes at [rsp]), the int in edi, the
/// result popped from st0 into the buffer.
#[test]
fn sysv_long_double_x87() {
    let ld = s(Scalar::F80);
    let sig = Signature::new(Abi::SysV64, ld.clone(), vec![ld, s(Scalar::I32)]);
    let mut p = plan(
        Abi::SysV64,
        vec![
            one(part(0, 16, Loc::Stack(0), PartClass::Memory)),
            one(gpr(0, 4, RDI)),
        ],
        RetPlan::Direct(vec![part(0, 16, Loc::Reg(Reg::X87(0)), PartClass::X87)]),
    );
    p.stack_size = 16;
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 16]),
        Target::Unbound,
        "
        push rbp
        mov rbp, rsp
        push rbx
        push r12
        push r13
        sub rsp, 0x18
        mov rbx, rsi
        mov r12, rdx
        mov r13, rdi
        mov rax, [rbx]
        mov [rsp], rax
        mov rax, [rbx+8]
        mov [rsp+8], rax
        mov edi, [rbx+0x10]
        call r13
        fstp tbyte ptr [r12], st
        lea rsp, [rbp-0x18]
        pop r13
        pop r12
        pop rbx
        pop rbp
        ret
        ",
    );
}

/// `_Complex long double f(void)`, SysV: st0 (real part) is stored first,
/// then the old st1 (imaginary part), now st0, at offset 16.
#[test]
fn sysv_complex_long_double_result() {
    let sig = Signature::new(Abi::SysV64, Type::Complex(Scalar::F80), vec![]);
    // Listed imaginary part first: the emitter still pops st0 first.
    let p = plan(
        Abi::SysV64,
        vec![],
        RetPlan::Direct(vec![
            part(16, 16, Loc::Reg(Reg::X87(1)), PartClass::X87),
            part(0, 16, Loc::Reg(Reg::X87(0)), PartClass::X87),
        ]),
    );
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Bound(0x2000),
        "
        push rdx
        mov rax, 0x2000
        call rax
        pop rcx
        fstp tbyte ptr [rcx], st
        fstp tbyte ptr [rcx+0x10], st
        ret
        ",
    );
}

/// The smallest trampoline, with addresses: `void f(void)`, bound: nothing
/// before or after the call, so a tail jump with rsp as our caller left it.
/// Encodings (Intel SDM): mov rax, imm64 = 48 b8 + 8 bytes; jmp rax =
/// ff e0 (FF /4).
#[test]
fn void_void_bound_with_addresses() {
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![]);
    let p = plan(Abi::SysV64, vec![], RetPlan::Void);
    let code = emit_forward(&sig, &p, ArgSource::Pointers, Target::Bound(0xdead_beef)).unwrap();
    assert_eq!(
        disassemble(Isa::X86_64, &code, 0),
        "0000  mov rax, 0xdeadbeef\n\
         000a  jmp rax\n"
    );
    assert_eq!(code.len(), 0xc);
    assert_eq!(&code[..2], &[0x48, 0xb8]);
    assert_eq!(&code[10..], &[0xff, 0xe0]);
}

/// `void f(struct {char c[5000];})`, SysV, bound: a 5000-byte MEMORY
/// argument (stack area 5008) makes a frame of 5016 bytes (one push, so 8
/// of padding): one page is probed, then 0x398 more; the copy uses
/// `rep movsb`.
#[test]
fn large_frame_probe_and_block_copy() {
    let big = record(vec![Type::array(s(Scalar::I8), 5000).unwrap()]);
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![big]);
    let mut p = plan(
        Abi::SysV64,
        vec![one(part(0, 5000, Loc::Stack(0), PartClass::Memory))],
        RetPlan::Void,
    );
    p.stack_size = 5008;
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0]),
        Target::Bound(0x1000),
        "
        push rbp
        mov rbp, rsp
        push rbx
        mov r11d, 1
        sub rsp, 0x1000
        or qword ptr [rsp], 0
        dec r11
        jne 0xb
        sub rsp, 0x398
        mov rbx, rsi
        lea rsi, [rbx]
        lea rdi, [rsp]
        mov ecx, 0x1388
        rep movsb [rdi], [rsi]
        mov rax, 0x1000
        call rax
        lea rsp, [rbp-8]
        pop rbx
        pop rbp
        ret
        ",
    );
}

fn emit_err(sig: &Signature, p: &CallPlan) -> String {
    emit_forward(sig, p, ArgSource::Pointers, Target::Unbound)
        .expect_err("must be refused")
        .0
}

#[test]
fn refuses_what_it_cannot_emit() {
    let ld = s(Scalar::F80);
    // An x87 argument register: no ABI passes arguments in st(i).
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![ld]);
    let p = plan(
        Abi::SysV64,
        vec![one(part(0, 16, Loc::Reg(Reg::X87(0)), PartClass::X87))],
        RetPlan::Void,
    );
    assert!(emit_err(&sig, &p).contains("argument 1"));

    // rbx is where the trampoline keeps `args`: not an argument register.
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![s(Scalar::I64)]);
    let p = plan(Abi::SysV64, vec![one(gpr(0, 8, RBX))], RetPlan::Void);
    assert!(emit_err(&sig, &p).contains("not an x86-64 argument register"));

    // A 12-byte XMM piece (no single load reads exactly 12 bytes).
    let f = s(Scalar::F32);
    let sig = Signature::new(
        Abi::SysV64,
        Type::Void,
        vec![record(vec![f.clone(), f.clone(), f])],
    );
    let p = plan(Abi::SysV64, vec![one(xmm(0, 12, 0))], RetPlan::Void);
    assert!(emit_err(&sig, &p).contains("12-byte"));

    // An AArch64 plan.
    let sig = Signature::new(Abi::Aapcs64, Type::Void, vec![]);
    let p = plan(Abi::Aapcs64, vec![], RetPlan::Void);
    assert!(emit_err(&sig, &p).contains("aapcs64"));

    // An invalid plan (a byte of the argument not passed).
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![s(Scalar::I64)]);
    let p = plan(Abi::SysV64, vec![one(gpr(0, 4, RDI))], RetPlan::Void);
    assert!(emit_err(&sig, &p).contains("byte 4"));

    // Frame offsets that do not match the arguments.
    let p = plan(Abi::SysV64, vec![one(gpr(0, 8, RDI))], RetPlan::Void);
    assert!(emit_forward(&sig, &p, ArgSource::Frame(&[]), Target::Unbound).is_err());

    // A result in rcx: no x86-64 convention returns there.
    let sig = Signature::new(Abi::SysV64, s(Scalar::I64), vec![]);
    let p = plan(Abi::SysV64, vec![], RetPlan::Direct(vec![gpr(0, 8, RCX)]));
    assert!(emit_err(&sig, &p).contains("result"));
}

/// `int f(int, ...)` called with `(2.5, 3)`, Win64 (DESIGN case 25;
/// Microsoft x64 "Varargs": "floating-point values only, both the integer
/// register and the floating-point register must contain the value"): ecx,
/// 2.5 in xmm1 and rdx, 3 in r8d; 32 bytes of shadow space, no `al`. The
/// shadow space is reserved below the pushed `ret` (8 + 8 + 32 bytes: rsp
/// 16-byte aligned at the call) and released before `ret` is popped.
#[test]
fn win64_variadic_float_duplicated() {
    let mut sig = Signature::new(
        Abi::Win64,
        s(Scalar::I32),
        vec![s(Scalar::I32), s(Scalar::F64), s(Scalar::I32)],
    );
    sig.fixed_args = 1;
    sig.variadic = true;
    let mut p = plan(
        Abi::Win64,
        vec![
            one(gpr(0, 4, RCX)),
            ArgPlan::Direct(vec![
                xmm(0, 8, 1),
                part(0, 8, Loc::Reg(Reg::Gpr(RDX)), PartClass::Float),
            ]),
            one(gpr(0, 4, 8)),
        ],
        RetPlan::Direct(vec![gpr(0, 4, RAX)]),
    );
    p.stack_size = 32;
    p.shadow_space = 32;
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 8, 16]),
        Target::Bound(0x1000),
        "
        push rdx
        sub rsp, 0x20
        mov ecx, [rsi]
        movsd xmm1, [rsi+8]
        mov rdx, [rsi+8]
        mov r8d, [rsi+0x10]
        mov rax, 0x1000
        call rax
        add rsp, 0x20
        pop rcx
        mov [rcx], rax
        ret
        ",
    );
}

/// Every plan the SysV and Win64 planners make for the DESIGN tricky cases
/// (written as C) is emittable in both argument modes, bound and unbound,
/// and decodes cleanly. (What the code does is checked by the golden tests
/// above and by execution tests.)
#[test]
fn planner_output_for_tricky_cases_is_emittable() {
    let decls = [
        "typedef struct { float a, b; int c; } S; S f(S);",
        "typedef struct { float x, y; } v2; v2 f(v2);",
        "typedef struct { float x, y, z; } v3; v3 f(v3);",
        "typedef struct { double d; char c[8]; } S; S f(S);",
        "typedef struct { double a, b, c, d; } S; S f(S);",
        "typedef struct { double a, b, c, d, e; } S; S f(S);",
        "typedef struct { long long a, b, c; } S; S f(int);",
        "typedef struct { float a; double b; } S; S f(S);",
        "typedef struct __attribute__((packed)) { char c; int i; } P; P f(P, int);",
        "typedef struct { char a, b, c; } C3; int f(C3, int);",
        "typedef union { float f; int i; } U; void f(U, float);",
        "typedef union { double d; float f[2]; } U; U f(U);",
        "typedef struct { struct { float a, b; } p; float c[2]; } H; H f(H);",
        "__int128 f(__int128, __int128);",
        "int f(signed char, unsigned short, _Bool);",
        "typedef struct { long long a; double b; } S;
         void f(long long, long long, long long, long long, long long, long long, S, double, long long);",
        "typedef struct { double a, b; } D;
         void f(double, double, double, double, double, double, double, D, double);",
        "void f(long long, long long, long long, long long, long long, __int128, long long);",
        "void f(int, __int128);",
        "int f(int, double, int, double, int, double);",
        "void f(long long, long long, long long, long long, long long, long long, long long, long long,
                char, short, int, char);",
        "int f(int, ...,  double, int);",
        "typedef struct { double a, b; } D; int f(int, ..., D);",
        "long double f(long double, int, long double);",
        "_Complex double f(_Complex double);",
        "_Complex float f(_Complex float, _Complex long double);",
        "typedef struct { char c[300]; } B; B f(B, B, int);",
    ];
    let mut emitted = 0;
    for abi in [Abi::SysV64, Abi::Win64] {
        for d in decls {
            let sig = jitffi::cdecl::parse_signature(d, abi)
                .unwrap_or_else(|e| panic!("{abi}: {d}: {e}"));
            let Ok(p) = jitffi::abi::plan(&sig) else {
                continue; // refused by the planner: nothing to emit
            };
            let (offsets, _) = sig.frame_layout();
            for source in [ArgSource::Pointers, ArgSource::Frame(&offsets)] {
                for target in [Target::Unbound, Target::Bound(0x7f00_1234_5678)] {
                    let code = emit_forward(&sig, &p, source, target)
                        .unwrap_or_else(|e| panic!("{abi}: {d}: {e}\n{}", p.display(&sig)));
                    let text = disassemble(Isa::X86_64, &code, 0);
                    assert!(!text.contains("(bad)"), "{text}");
                    // Either a call and a return, or a tail jump and no call.
                    let tail = text.ends_with("jmp rax\n") || text.ends_with("jmp r11\n");
                    assert!(
                        text.ends_with("ret\n") || (tail && !text.contains("call")),
                        "{text}"
                    );
                    emitted += 1;
                }
            }
        }
    }
    assert!(emitted >= 4 * 40, "only {emitted} trampolines emitted");
}

/// `void f(long long, long long)`, Win64, pointer mode, unbound: rcx, rdx
/// and 32 bytes of shadow space (Microsoft x64 "Stack allocation"). No
/// result to keep, but a Win64 callee may use the 32 bytes above its return
/// address, so no tail jump: one `sub rsp, 40` (8 of padding + 32; rsp
/// 16-byte aligned at the call).
#[test]
fn win64_void_shadow_space_no_tail_jump() {
    let ll = s(Scalar::I64);
    let sig = Signature::new(Abi::Win64, Type::Void, vec![ll.clone(), ll]);
    let mut p = plan(
        Abi::Win64,
        vec![one(gpr(0, 8, RCX)), one(gpr(0, 8, RDX))],
        RetPlan::Void,
    );
    p.stack_size = 32;
    p.shadow_space = 32;
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        mov rax, rdi
        sub rsp, 0x28
        mov r10, [rsi]
        mov rcx, [r10]
        mov r10, [rsi+8]
        mov rdx, [r10]
        call rax
        add rsp, 0x28
        ret
        ",
    );
}

/// `void g(int, ..., struct {char c[7];})`, SysV, pointer mode, unbound:
/// edi, then the 7-byte struct in rsi (last), al = 0 (psABI §3.5.7). rax
/// carries al, so the target waits in r11 and the 4 + 2 + 1-byte assembly
/// uses rax (al is written after the last load).
#[test]
fn sysv_variadic_unbound_target_in_r11() {
    let c7 = record(vec![Type::array(s(Scalar::I8), 7).unwrap()]);
    let mut sig = Signature::new(Abi::SysV64, Type::Void, vec![s(Scalar::I32), c7]);
    sig.fixed_args = 1;
    sig.variadic = true;
    let mut p = plan(
        Abi::SysV64,
        vec![one(gpr(0, 4, RDI)), one(gpr(0, 7, RSI))],
        RetPlan::Void,
    );
    p.al = Some(0);
    check(
        &sig,
        &p,
        ArgSource::Pointers,
        Target::Unbound,
        "
        mov r11, rdi
        mov r10, [rsi]
        mov edi, [r10]
        mov r10, [rsi+8]
        mov esi, [r10]
        movzx eax, word ptr [r10+4]
        shl rax, 0x20
        or rsi, rax
        movzx eax, byte ptr [r10+6]
        shl rax, 0x30
        or rsi, rax
        mov eax, 0
        jmp r11
        ",
    );
}

/// The same shape in frame mode (offsets 0 and 8), bound: the 7-byte rsi
/// piece would be assembled from loads through rsi itself, so the general
/// path is used (rbx = args; one push, 8 bytes of padding).
#[test]
fn frame_mode_multi_load_rsi_piece_takes_general_path() {
    let c7 = record(vec![Type::array(s(Scalar::I8), 7).unwrap()]);
    let sig = Signature::new(Abi::SysV64, Type::Void, vec![s(Scalar::I32), c7]);
    let p = plan(
        Abi::SysV64,
        vec![one(gpr(0, 4, RDI)), one(gpr(0, 7, RSI))],
        RetPlan::Void,
    );
    check(
        &sig,
        &p,
        ArgSource::Frame(&[0, 8]),
        Target::Bound(0x1000),
        "
        push rbp
        mov rbp, rsp
        push rbx
        sub rsp, 8
        mov rbx, rsi
        mov edi, [rbx]
        mov esi, [rbx+8]
        movzx r11d, word ptr [rbx+0xc]
        shl r11, 0x20
        or rsi, r11
        movzx r11d, byte ptr [rbx+0xe]
        shl r11, 0x30
        or rsi, r11
        mov rax, 0x1000
        call rax
        lea rsp, [rbp-8]
        pop rbx
        pop rbp
        ret
        ",
    );
}
