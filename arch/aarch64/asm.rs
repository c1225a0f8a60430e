//! AArch64 instruction helpers shared by the forward emitter and the
//! closure body emitter: loads and stores of every width at any offset,
//! adds of large immediates, and the frame record's push and pop with
//! their unwind rows.

use dynasmrt::aarch64::Aarch64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

use crate::arch::{chunks, EmitError};
use crate::unwind::{reg::aarch64 as dw, CfaRule, UnwindRow};

pub(super) type Asm = VecAssembler<Aarch64Relocation>;

/// Largest immediate offset the helpers accept (16 MiB − 1): two 12-bit
/// `add` immediates.
pub(super) const MAX_OFFSET: u64 = (1 << 24) - 1;

/// Records that `rule` holds from the current offset of `ops` on.
pub(super) fn row(ops: &Asm, rows: &mut Vec<UnwindRow>, rule: CfaRule) {
    let at = ops.offset().0 as u32;
    rows.push(UnwindRow { at, rule });
}

/// `stp x29, x30, [sp, #-16]!; mov x29, sp`, and its unwind rows
/// (aadwarf64 §4.1 numbers; at entry CFA = sp + 0): after the push the CFA
/// is sp + 16 with x29 at CFA − 16 and x30 at CFA − 8; from `mov x29, sp`
/// on it is x29 + 16, which holds until [`pop_frame_record`], however sp
/// moves below.
pub(super) fn push_frame_record(ops: &mut Asm, rows: &mut Vec<UnwindRow>) {
    dynasm!(ops ; .arch aarch64 ; stp x29, x30, [sp, #-16]!);
    row(ops, rows, CfaRule::CfaOffset(16));
    row(
        ops,
        rows,
        CfaRule::Saved {
            reg: dw::FP,
            offset: -16,
        },
    );
    row(
        ops,
        rows,
        CfaRule::Saved {
            reg: dw::LR,
            offset: -8,
        },
    );
    dynasm!(ops ; .arch aarch64 ; mov x29, sp);
    row(
        ops,
        rows,
        CfaRule::Cfa {
            reg: dw::FP,
            offset: 16,
        },
    );
}

/// `mov sp, x29; ldp x29, x30, [sp], #16`, and its unwind rows: the entry
/// state holds again (CFA = sp + 0, x29 and x30 in their registers).
pub(super) fn pop_frame_record(ops: &mut Asm, rows: &mut Vec<UnwindRow>) {
    dynasm!(ops
        ; .arch aarch64
        ; mov sp, x29
        ; ldp x29, x30, [sp], #16
    );
    row(
        ops,
        rows,
        CfaRule::Cfa {
            reg: dw::SP,
            offset: 0,
        },
    );
    row(ops, rows, CfaRule::Restored(dw::FP));
    row(ops, rows, CfaRule::Restored(dw::LR));
}

/// `sub sp, sp, frame`, touching every page on the way down when the
/// frame spans a page or more, so a guard page below the stack is never
/// skipped (as gcc's `-fstack-clash-protection` does); `tmp` counts the
/// pages.
pub(super) fn alloc_frame(ops: &mut Asm, tmp: u8, frame: u64) {
    const PAGE: u64 = 4096;
    if frame >= PAGE {
        mov_imm(ops, tmp, frame / PAGE);
        dynasm!(ops
            ; .arch aarch64
            ; probe:
            ; sub sp, sp, #1, lsl #12
            ; str xzr, [sp]
            ; subs X(tmp), XSP(tmp), #1
            ; b.ne <probe
        );
    }
    let rest = (frame % PAGE) as u32;
    if rest != 0 {
        dynasm!(ops ; .arch aarch64 ; sub sp, sp, rest);
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError(msg.into()))
}

/// One load or store shape: what the register is and how many bytes move.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Op {
    /// `ldrb w`: zero-extends.
    Ldrb,
    /// `ldrsb w`: sign-extends to 32 bits (upper 32 zero).
    LdrsbW,
    /// `ldrsb x`: sign-extends to 64 bits.
    LdrsbX,
    Ldrh,
    LdrshW,
    LdrshX,
    /// `ldr w`: zero-extends to 64 bits.
    LdrW,
    Ldrsw,
    LdrX,
    LdrB,
    LdrH,
    LdrS,
    LdrD,
    LdrQ,
    Strb,
    Strh,
    StrW,
    StrX,
    StrB,
    StrH,
    StrS,
    StrD,
    StrQ,
}

impl Op {
    /// Bytes accessed (also the scale of the unsigned-offset form).
    pub(super) fn size(self) -> u64 {
        use Op::*;
        match self {
            Ldrb | LdrsbW | LdrsbX | LdrB | Strb | StrB => 1,
            Ldrh | LdrshW | LdrshX | LdrH | Strh | StrH => 2,
            LdrW | Ldrsw | LdrS | StrW | StrS => 4,
            LdrX | LdrD | StrX | StrD => 8,
            LdrQ | StrQ => 16,
        }
    }
}

/// `x(dst) = x(base) + imm` (base 31 is sp), for `imm` below 16 MiB.
pub(super) fn add_imm(ops: &mut Asm, dst: u8, base: u8, imm: u64) -> Result<(), EmitError> {
    if imm > MAX_OFFSET {
        return err(format!("offset {imm} is too large"));
    }
    let lo = (imm & 0xfff) as u32;
    let hi = (imm >> 12) as u32;
    if hi == 0 {
        dynasm!(ops ; .arch aarch64 ; add XSP(dst), XSP(base), lo);
    } else {
        dynasm!(ops ; .arch aarch64 ; add XSP(dst), XSP(base), hi, lsl #12);
        if lo != 0 {
            dynasm!(ops ; .arch aarch64 ; add XSP(dst), XSP(dst), lo);
        }
    }
    Ok(())
}

/// One load or store of register `rt` at `[base + off]` (base 31 is
/// sp): the scaled unsigned-offset form when the offset fits it, `ldur`/
/// `stur` for small unaligned offsets, otherwise via `addr` = base + off.
pub(super) fn mem(
    ops: &mut Asm,
    op: Op,
    rt: u8,
    base: u8,
    off: u64,
    addr: u8,
) -> Result<(), EmitError> {
    let sz = op.size();
    if off % sz == 0 && off / sz < 4096 {
        mem_scaled(ops, op, rt, base, off as u32);
    } else if off < 256 {
        mem_unscaled(ops, op, rt, base, off as i32);
    } else {
        add_imm(ops, addr, base, off)?;
        mem_scaled(ops, op, rt, addr, 0);
    }
    Ok(())
}

fn mem_scaled(ops: &mut Asm, op: Op, t: u8, n: u8, o: u32) {
    match op {
        Op::Ldrb => dynasm!(ops ; .arch aarch64 ; ldrb W(t), [XSP(n), o]),
        Op::LdrsbW => dynasm!(ops ; .arch aarch64 ; ldrsb W(t), [XSP(n), o]),
        Op::LdrsbX => dynasm!(ops ; .arch aarch64 ; ldrsb X(t), [XSP(n), o]),
        Op::Ldrh => dynasm!(ops ; .arch aarch64 ; ldrh W(t), [XSP(n), o]),
        Op::LdrshW => dynasm!(ops ; .arch aarch64 ; ldrsh W(t), [XSP(n), o]),
        Op::LdrshX => dynasm!(ops ; .arch aarch64 ; ldrsh X(t), [XSP(n), o]),
        Op::LdrW => dynasm!(ops ; .arch aarch64 ; ldr W(t), [XSP(n), o]),
        Op::Ldrsw => dynasm!(ops ; .arch aarch64 ; ldrsw X(t), [XSP(n), o]),
        Op::LdrX => dynasm!(ops ; .arch aarch64 ; ldr X(t), [XSP(n), o]),
        Op::LdrB => dynasm!(ops ; .arch aarch64 ; ldr B(t), [XSP(n), o]),
        Op::LdrH => dynasm!(ops ; .arch aarch64 ; ldr H(t), [XSP(n), o]),
        Op::LdrS => dynasm!(ops ; .arch aarch64 ; ldr S(t), [XSP(n), o]),
        Op::LdrD => dynasm!(ops ; .arch aarch64 ; ldr D(t), [XSP(n), o]),
        Op::LdrQ => dynasm!(ops ; .arch aarch64 ; ldr Q(t), [XSP(n), o]),
        Op::Strb => dynasm!(ops ; .arch aarch64 ; strb W(t), [XSP(n), o]),
        Op::Strh => dynasm!(ops ; .arch aarch64 ; strh W(t), [XSP(n), o]),
        Op::StrW => dynasm!(ops ; .arch aarch64 ; str W(t), [XSP(n), o]),
        Op::StrX => dynasm!(ops ; .arch aarch64 ; str X(t), [XSP(n), o]),
        Op::StrB => dynasm!(ops ; .arch aarch64 ; str B(t), [XSP(n), o]),
        Op::StrH => dynasm!(ops ; .arch aarch64 ; str H(t), [XSP(n), o]),
        Op::StrS => dynasm!(ops ; .arch aarch64 ; str S(t), [XSP(n), o]),
        Op::StrD => dynasm!(ops ; .arch aarch64 ; str D(t), [XSP(n), o]),
        Op::StrQ => dynasm!(ops ; .arch aarch64 ; str Q(t), [XSP(n), o]),
    }
}

fn mem_unscaled(ops: &mut Asm, op: Op, t: u8, n: u8, o: i32) {
    match op {
        Op::Ldrb => dynasm!(ops ; .arch aarch64 ; ldurb W(t), [XSP(n), o]),
        Op::LdrsbW => dynasm!(ops ; .arch aarch64 ; ldursb W(t), [XSP(n), o]),
        Op::LdrsbX => dynasm!(ops ; .arch aarch64 ; ldursb X(t), [XSP(n), o]),
        Op::Ldrh => dynasm!(ops ; .arch aarch64 ; ldurh W(t), [XSP(n), o]),
        Op::LdrshW => dynasm!(ops ; .arch aarch64 ; ldursh W(t), [XSP(n), o]),
        Op::LdrshX => dynasm!(ops ; .arch aarch64 ; ldursh X(t), [XSP(n), o]),
        Op::LdrW => dynasm!(ops ; .arch aarch64 ; ldur W(t), [XSP(n), o]),
        Op::Ldrsw => dynasm!(ops ; .arch aarch64 ; ldursw X(t), [XSP(n), o]),
        Op::LdrX => dynasm!(ops ; .arch aarch64 ; ldur X(t), [XSP(n), o]),
        Op::LdrB => dynasm!(ops ; .arch aarch64 ; ldur B(t), [XSP(n), o]),
        Op::LdrH => dynasm!(ops ; .arch aarch64 ; ldur H(t), [XSP(n), o]),
        Op::LdrS => dynasm!(ops ; .arch aarch64 ; ldur S(t), [XSP(n), o]),
        Op::LdrD => dynasm!(ops ; .arch aarch64 ; ldur D(t), [XSP(n), o]),
        Op::LdrQ => dynasm!(ops ; .arch aarch64 ; ldur Q(t), [XSP(n), o]),
        Op::Strb => dynasm!(ops ; .arch aarch64 ; sturb W(t), [XSP(n), o]),
        Op::Strh => dynasm!(ops ; .arch aarch64 ; sturh W(t), [XSP(n), o]),
        Op::StrW => dynasm!(ops ; .arch aarch64 ; stur W(t), [XSP(n), o]),
        Op::StrX => dynasm!(ops ; .arch aarch64 ; stur X(t), [XSP(n), o]),
        Op::StrB => dynasm!(ops ; .arch aarch64 ; stur B(t), [XSP(n), o]),
        Op::StrH => dynasm!(ops ; .arch aarch64 ; stur H(t), [XSP(n), o]),
        Op::StrS => dynasm!(ops ; .arch aarch64 ; stur S(t), [XSP(n), o]),
        Op::StrD => dynasm!(ops ; .arch aarch64 ; stur D(t), [XSP(n), o]),
        Op::StrQ => dynasm!(ops ; .arch aarch64 ; stur Q(t), [XSP(n), o]),
    }
}

/// Copies longer than this many bytes use a loop instead of unrolled moves.
pub(super) const UNROLL_LIMIT: u32 = 128;

/// The scratch registers a copy may clobber.
pub(super) struct CopyRegs {
    pub tmp: u8,
    pub src: u8,
    pub dst: u8,
    pub cnt: u8,
    /// For offsets too large for an addressing mode.
    pub addr: u8,
}

/// `movz`/`movk`: any 64-bit immediate into `x(dst)`, skipping zero
/// halfwords after the first.
pub(super) fn mov_imm(ops: &mut Asm, dst: u8, v: u64) {
    let h = |k: u32| ((v >> (16 * k)) & 0xffff) as u32;
    let h0 = h(0);
    dynasm!(ops ; .arch aarch64 ; movz X(dst), #h0);
    let (h1, h2, h3) = (h(1), h(2), h(3));
    if h1 != 0 {
        dynasm!(ops ; .arch aarch64 ; movk X(dst), #h1, lsl #16);
    }
    if h2 != 0 {
        dynasm!(ops ; .arch aarch64 ; movk X(dst), #h2, lsl #32);
    }
    if h3 != 0 {
        dynasm!(ops ; .arch aarch64 ; movk X(dst), #h3, lsl #48);
    }
}

/// Copies `size` bytes from `[sbase + so]` to `[dbase + dof]`, reading
/// and writing exactly those bytes (x10 scratch; large copies loop with
/// x13–x15).
pub(super) fn copy(
    ops: &mut Asm,
    r: &CopyRegs,
    sbase: u8,
    so: u64,
    dbase: u8,
    dof: u64,
    size: u32,
) -> Result<(), EmitError> {
    let (mut sbase, mut so, mut dbase, mut dof, mut size) = (sbase, so, dbase, dof, size);
    if size > UNROLL_LIMIT {
        let words = size / 8;
        add_imm(ops, r.src, sbase, so)?;
        add_imm(ops, r.dst, dbase, dof)?;
        mov_imm(ops, r.cnt, words as u64);
        dynasm!(ops
            ; .arch aarch64
            ; copy:
            ; ldr X(r.tmp), [X(r.src)], #8
            ; str X(r.tmp), [X(r.dst)], #8
            ; subs X(r.cnt), XSP(r.cnt), #1
            ; b.ne <copy
        );
        (sbase, so, dbase, dof) = (r.src, 0, r.dst, 0);
        size %= 8;
    }
    for (off, c) in chunks(size, 8) {
        let (ld, st) = match c {
            8 => (Op::LdrX, Op::StrX),
            4 => (Op::LdrW, Op::StrW),
            2 => (Op::Ldrh, Op::Strh),
            _ => (Op::Ldrb, Op::Strb),
        };
        mem(ops, ld, r.tmp, sbase, so + off as u64, r.addr)?;
        mem(ops, st, r.tmp, dbase, dof + off as u64, r.addr)?;
    }
    Ok(())
}
