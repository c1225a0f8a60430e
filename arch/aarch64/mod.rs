//! The AArch64 forward-call emitter, for AAPCS64 (Linux) and Apple arm64
//! plans alike.
//!
//! The trampoline is itself called with AAPCS64 (the host C convention on
//! every AArch64 platform jitffi runs on; Apple's differences do not touch
//! three pointer parameters):
//!
//! ```text
//! void trampoline(const void *target /* x0 */, const void *args /* x1 */,
//!                 void *ret /* x2 */);
//! ```
//!
//! Code shape (every step driven by the plan, nothing decided here):
//!
//! 1. Prologue: `stp x29, x30, [sp, #-16]!; mov x29, sp` (AAPCS64 "The
//!    Frame Pointer": a frame record of fp and lr), then the callee-saved
//!    registers that keep the trampoline's own parameters across the call
//!    (x19 = `args`, x20 = `ret`, x21 = `target`; only those needed; AAPCS64
//!    "General-purpose Registers": x19–x28 are callee-saved), each pair in a
//!    16-byte slot, then `sub sp, sp, #N` for the outgoing argument area and
//!    the copy area above it. sp stays 16-byte aligned throughout (AAPCS64
//!    "Universal stack constraints": SP mod 16 = 0). Frames of a page or more
//!    are probed page by page so no guard page is skipped.
//! 2. Memory phase: stack pieces (`[sp + off]`), by-reference copies (in the
//!    copy area at `[sp + stack_size + copy_offset]`), addresses passed on
//!    the stack. Scratch: x9–x15 (AAPCS64: temporary registers, not argument
//!    registers).
//! 3. Register phase: each register piece is loaded from the value, reading
//!    exactly its bytes (a 3-, 5-, 6- or 7-byte piece is assembled from
//!    smaller loads), with the part's extension done by the load itself
//!    (`ldrsb`/`ldrsh`/`ldrsw`; `ldrb`/`ldrh`/`ldr w` zero-extend). HFA
//!    members go to `s`/`d`/`q` registers. x8 gets the result address
//!    (AAPCS64 "Result Return": the indirect result location register).
//! 4. The call: `blr x21` (unbound) or `movz/movk x16, #addr; blr x16`
//!    (bound; x16 = IP0 is free for this at a call).
//! 5. Result phase: register pieces (x0–x1, v0–v3) stored into `ret` at
//!    their offsets.
//! 6. Epilogue: reload x19–x21 relative to fp, `mov sp, x29`,
//!    `ldp x29, x30, [sp], #16; ret`.
//!
//! Unwind rows (`emit_forward_with_unwind`, `crate::unwind`): the frame
//! record's push (CFA = sp + 16, x29 and x30 saved), `mov x29, sp` (CFA =
//! x29 + 16 from then on, so the frame allocation and its page probes need
//! no rows), each save of x19–x21, each reload, and the frame record's pop
//! (CFA = sp + 0 again). There is one return path, at the end.
//!
//! The callee-saved SIMD registers d8–d15 are never touched; x18 (the
//! platform register) is never touched.

// dynasm's expansion of dynamic registers calls `.into()` on u8.
#![allow(clippy::useless_conversion)]

/// Reverse closures: the per-signature body and the stub bytes.
mod asm;
pub mod closure;

use dynasmrt::{dynasm, DynasmApi};

use self::asm::{Asm, Op, MAX_OFFSET};
use super::{ArgSource, EmitError, Target};
use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use crate::arch::chunks;
use crate::types::{Abi, Isa, Signature};
use crate::unwind::{reg::aarch64 as dw, CfaRule, UnwindRow};

/// Register of the trampoline's `args` parameter across the body.
const ARGS: u8 = 19;
/// Register of the trampoline's `ret` parameter across the body.
const RET: u8 = 20;
/// Register of the trampoline's `target` parameter across the body.
const TARGET: u8 = 21;
/// In pointer mode, the pointer to the current argument's value.
const VALPTR: u8 = 9;
/// Scratch for values being moved.
const TMP: u8 = 10;
/// Scratch for assembling a piece.
const TMP2: u8 = 11;
/// Scratch address register for offsets no load/store immediate can hold.
const ADDR: u8 = 12;
/// Copy loop: source, destination, count.
const CSRC: u8 = 13;
const CDST: u8 = 14;
const CCNT: u8 = 15;
/// The copy helper's scratch registers.
const COPY_REGS: asm::CopyRegs = asm::CopyRegs {
    tmp: TMP,
    src: CSRC,
    dst: CDST,
    cnt: CCNT,
    addr: ADDR,
};
/// Holds a bound target (IP0).
const CALLREG: u8 = 16;
/// The stack pointer, as a base register number (encoding 31 in a base).
const SP: u8 = 31;
/// The indirect result location register (AAPCS64 "Result Return").
const XR: u8 = 8;

fn err<T>(msg: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError(msg.into()))
}

/// Emits a forward trampoline for `plan`.
///
/// `sig` must be the signature the plan was made for; the plan is validated
/// against it first. `source` says how the trampoline finds each argument's
/// value, `target` whether the callee is a parameter or baked in.
pub fn emit_forward(
    sig: &Signature,
    plan: &CallPlan,
    source: ArgSource<'_>,
    target: Target,
) -> Result<Vec<u8>, EmitError> {
    emit_forward_with_unwind(sig, plan, source, target).map(|(code, _)| code)
}

/// [`emit_forward`], also returning the frame changes the code makes (for
/// unwind tables, `crate::unwind`): each row takes effect at the
/// instruction after the one that changed the frame. At entry (no row yet)
/// the CFA is sp + 0 and the return address is in x30 (aadwarf64 §4.1).
pub fn emit_forward_with_unwind(
    sig: &Signature,
    plan: &CallPlan,
    source: ArgSource<'_>,
    target: Target,
) -> Result<(Vec<u8>, Vec<UnwindRow>), EmitError> {
    if plan.abi.isa() != Isa::Aarch64 || sig.abi != plan.abi {
        return err(format!(
            "the AArch64 emitter cannot emit a {} plan for a {} signature",
            plan.abi, sig.abi
        ));
    }
    plan.validate(sig).map_err(|e| EmitError(e.to_string()))?;
    if plan.al.is_some() || plan.shadow_space != 0 {
        return err("an AArch64 plan has no `al` count and no shadow space");
    }
    if let ArgSource::Frame(offsets) = source {
        if offsets.len() != sig.args.len() {
            return err(format!(
                "{} frame offsets for {} arguments",
                offsets.len(),
                sig.args.len()
            ));
        }
    }
    let mut e = Emitter {
        ops: Asm::new(0),
        sig,
        plan,
        source,
        copy_base: plan.stack_size as u64,
        rows: Vec::new(),
    };
    e.emit(target)?;
    let code = e
        .ops
        .finalize()
        .map_err(|x| EmitError(format!("assembler: {x}")))?;
    Ok((code, e.rows))
}

struct Emitter<'a> {
    ops: Asm,
    sig: &'a Signature,
    plan: &'a CallPlan,
    source: ArgSource<'a>,
    /// Offset of the copy area from sp (just above the argument area).
    copy_base: u64,
    /// Frame changes so far, for the unwind tables.
    rows: Vec<UnwindRow>,
}

impl Emitter<'_> {
    /// Records that `rule` holds from the current offset on.
    fn row(&mut self, rule: CfaRule) {
        asm::row(&self.ops, &mut self.rows, rule);
    }

    fn emit(&mut self, target: Target) -> Result<(), EmitError> {
        let plan = self.plan;
        let uses_args = plan.args.iter().any(|a| !matches!(a, ArgPlan::Ignored));
        let uses_ret = !matches!(plan.ret, RetPlan::Void);
        let mut saved: Vec<u8> = Vec::new();
        if uses_args {
            saved.push(ARGS);
        }
        if uses_ret {
            saved.push(RET);
        }
        if target == Target::Unbound {
            saved.push(TARGET);
        }

        // The argument and copy areas are multiples of 16 (validated), and
        // every save slot is 16 bytes, so sp stays 16-aligned.
        let frame = plan.stack_size as u64 + plan.copy_area_size as u64;
        if frame > MAX_OFFSET {
            return err(format!("a {frame}-byte call frame is too large"));
        }

        asm::push_frame_record(&mut self.ops, &mut self.rows);
        // Pair k is stored at fp − 16 (k + 1) = CFA − 32 − 16k, its second
        // register 8 above.
        for (k, pair) in saved.chunks(2).enumerate() {
            let at = -32 - 16 * k as i32;
            match *pair {
                [a, b] => dynasm!(self.ops ; .arch aarch64 ; stp X(a), X(b), [sp, #-16]!),
                [a] => dynasm!(self.ops ; .arch aarch64 ; str X(a), [sp, #-16]!),
                _ => {}
            }
            for (j, &r) in pair.iter().enumerate() {
                self.row(CfaRule::Saved {
                    reg: dw::x(r),
                    offset: at + 8 * j as i32,
                });
            }
        }
        asm::alloc_frame(&mut self.ops, TMP, frame);
        if uses_args {
            dynasm!(self.ops ; .arch aarch64 ; mov X(ARGS), x1);
        }
        if uses_ret {
            dynasm!(self.ops ; .arch aarch64 ; mov X(RET), x2);
        }
        if target == Target::Unbound {
            dynasm!(self.ops ; .arch aarch64 ; mov X(TARGET), x0);
        }

        self.memory_phase()?;
        self.register_phase()?;

        match target {
            Target::Unbound => dynasm!(self.ops ; .arch aarch64 ; blr X(TARGET)),
            Target::Bound(addr) => {
                self.mov_imm(CALLREG, addr);
                dynasm!(self.ops ; .arch aarch64 ; blr X(CALLREG));
            }
        }

        self.result_phase()?;

        // Pair k was stored at fp - 16 (k + 1). Each reloaded register is
        // marked restored: once the frame is popped its slot lies below
        // sp, where a signal handler's frame may overwrite it (AArch64
        // Linux has no red zone; AAPCS64 "Universal stack constraints":
        // only memory at or above sp is the process's stack).
        for (k, pair) in saved.chunks(2).enumerate() {
            let off = -16 * (k as i32 + 1);
            match *pair {
                [a, b] => dynasm!(self.ops ; .arch aarch64 ; ldp X(a), X(b), [x29, off]),
                [a] => dynasm!(self.ops ; .arch aarch64 ; ldur X(a), [x29, off]),
                _ => {}
            }
            for &r in pair {
                self.row(CfaRule::Restored(dw::x(r)));
            }
        }
        // `mov sp, x29` leaves x29 (and so the CFA rule) as it is; after the
        // frame record is popped the entry state holds again: CFA = sp + 0,
        // x29 and the return address (x30) back in their registers.
        asm::pop_frame_record(&mut self.ops, &mut self.rows);
        dynasm!(self.ops ; .arch aarch64 ; ret);
        Ok(())
    }

    /// `movz`/`movk`: any 64-bit immediate into `x(dst)`, skipping zero
    /// halfwords after the first.
    fn mov_imm(&mut self, dst: u8, v: u64) {
        asm::mov_imm(&mut self.ops, dst, v)
    }

    /// `x(dst) = x(base) + imm` (base 31 is sp), for `imm` below 16 MiB.
    fn add_imm(&mut self, dst: u8, base: u8, imm: u64) -> Result<(), EmitError> {
        asm::add_imm(&mut self.ops, dst, base, imm)
    }

    /// One load or store of `rt` at `[base + off]` (see [`asm::mem`]).
    fn mem(&mut self, op: Op, rt: u8, base: u8, off: u64) -> Result<(), EmitError> {
        asm::mem(&mut self.ops, op, rt, base, off, ADDR)
    }

    /// Where argument `i`'s value starts: a base register and offset. In
    /// pointer mode this loads `args[i]` into x9.
    fn value_base(&mut self, i: usize) -> Result<(u8, u64), EmitError> {
        match self.source {
            ArgSource::Pointers => {
                self.mem(Op::LdrX, VALPTR, ARGS, i as u64 * 8)?;
                Ok((VALPTR, 0))
            }
            ArgSource::Frame(offsets) => Ok((ARGS, offsets[i] as u64)),
        }
    }

    /// Stores pieces on the stack, by-reference copies, and addresses passed
    /// on the stack. Runs before any argument register is loaded.
    fn memory_phase(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        if let RetPlan::Indirect {
            ptr_in: Loc::Stack(off),
            ..
        } = plan.ret
        {
            self.mem(Op::StrX, RET, SP, off as u64)?;
        }
        for (i, arg) in plan.args.iter().enumerate() {
            match arg {
                ArgPlan::Ignored => {}
                ArgPlan::Direct(parts) => {
                    if !parts.iter().any(|p| matches!(p.loc, Loc::Stack(_))) {
                        continue;
                    }
                    let (base, vd) = self.value_base(i)?;
                    for p in parts {
                        let Loc::Stack(off) = p.loc else { continue };
                        self.stack_part(p, off, base, vd + p.offset as u64, i)?;
                    }
                }
                ArgPlan::ByRef { ptr, copy_offset } => {
                    let size = self.sig.args[i].size();
                    let copy = self.copy_base + *copy_offset as u64;
                    if size > 0 {
                        // AAPCS64 B.4: the caller copies the composite to
                        // memory and passes a pointer to the copy.
                        let (base, vd) = self.value_base(i)?;
                        self.copy(base, vd, SP, copy, size)?;
                    }
                    if let Loc::Stack(off) = ptr {
                        self.add_imm(TMP, SP, copy)?;
                        self.mem(Op::StrX, TMP, SP, *off as u64)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// One stack piece of argument `i`, from `[base + src]` to `[sp + off]`.
    fn stack_part(
        &mut self,
        p: &Part,
        off: u32,
        base: u8,
        src: u64,
        i: usize,
    ) -> Result<(), EmitError> {
        let widen = match p.ext {
            Ext::Sign(b) | Ext::Zero(b) => u32::from(b) > p.size * 8,
            Ext::None => false,
        };
        if !widen {
            // Exactly the piece's bytes: AAPCS64 C.14/C.16 leave the rest of
            // an 8-byte slot unspecified; Apple packs arguments by their
            // natural size, so writing more could overwrite a neighbour.
            return self.copy(base, src, SP, off as u64, p.size);
        }
        let bits = match p.ext {
            Ext::Sign(b) | Ext::Zero(b) => b,
            Ext::None => 0,
        };
        // An extended piece fills a whole slot of `bits`: only where slots
        // are 8 bytes (AAPCS64 C.14, C.16) is there room for it.
        if self.plan.abi != Abi::Aapcs64 || bits > 64 || p.size > 4 {
            return err(format!(
                "argument {}: extension of a {}-byte stack piece to {bits} bits",
                i + 1,
                p.size
            ));
        }
        self.load_gpr(TMP, base, src, p.size, p.ext, i)?;
        let op = if bits > 32 { Op::StrX } else { Op::StrW };
        self.mem(op, TMP, SP, off as u64)
    }

    /// Loads every register piece, the by-reference addresses and the hidden
    /// result address that go in registers.
    fn register_phase(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        if let RetPlan::Indirect {
            ptr_in: Loc::Reg(r),
            ..
        } = plan.ret
        {
            // AAPCS64 "Result Return": the caller passes the address of the
            // result memory in x8 (XR).
            if r != Reg::Gpr(XR) {
                return err(format!("the result address in {r:?}, not x8"));
            }
            dynasm!(self.ops ; .arch aarch64 ; mov X(XR), X(RET));
        }
        for (i, arg) in plan.args.iter().enumerate() {
            match arg {
                ArgPlan::Ignored => {}
                ArgPlan::Direct(parts) => {
                    if !parts.iter().any(|p| matches!(p.loc, Loc::Reg(_))) {
                        continue;
                    }
                    let (base, vd) = self.value_base(i)?;
                    for p in parts {
                        let Loc::Reg(r) = p.loc else { continue };
                        self.load_reg(r, p, base, vd + p.offset as u64, i)?;
                    }
                }
                ArgPlan::ByRef { ptr, copy_offset } => {
                    if let Loc::Reg(r) = ptr {
                        let n = arg_gpr(*r, &format!("argument {}'s address", i + 1))?;
                        let copy = self.copy_base + *copy_offset as u64;
                        self.add_imm(n, SP, copy)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads one register piece of argument `i` from `[base + src]`.
    fn load_reg(
        &mut self,
        r: Reg,
        p: &Part,
        base: u8,
        src: u64,
        i: usize,
    ) -> Result<(), EmitError> {
        match r {
            Reg::Gpr(_) if p.class != PartClass::X87 => {
                let n = arg_gpr(r, &format!("argument {}", i + 1))?;
                self.load_gpr(n, base, src, p.size, p.ext, i)
            }
            Reg::Fpr(v) if v < 8 && p.class != PartClass::X87 => {
                if p.ext != Ext::None {
                    return err(format!("argument {}: extension in a SIMD register", i + 1));
                }
                // AAPCS64 C.1/C.2: a float, or one HFA member per register
                // (s for float, d for double, q for quad).
                let op = match p.size {
                    1 => Op::LdrB,
                    2 => Op::LdrH,
                    4 => Op::LdrS,
                    8 => Op::LdrD,
                    16 => Op::LdrQ,
                    n => {
                        return err(format!(
                            "argument {}: {n}-byte piece in a SIMD register",
                            i + 1
                        ))
                    }
                };
                self.mem(op, v, base, src)
            }
            _ => err(format!(
                "argument {}: cannot load a {:?} piece into {:?}",
                i + 1,
                p.class,
                r
            )),
        }
    }

    /// Loads exactly `size` (1–8) bytes at `[base + src]` into `x(dst)`,
    /// applying `ext` (x11 is scratch). Bits above the piece are zero unless
    /// sign extension is asked for.
    fn load_gpr(
        &mut self,
        dst: u8,
        base: u8,
        src: u64,
        size: u32,
        ext: Ext,
        i: usize,
    ) -> Result<(), EmitError> {
        let sign_bits = match ext {
            Ext::Sign(b) if u32::from(b) > size * 8 => Some(b),
            _ => None,
        };
        if let Some(bits) = sign_bits {
            // Apple arm64: the caller sign-extends narrow arguments to 32
            // bits ("Writing ARM64 code for Apple platforms").
            let op = match (size, bits > 32) {
                (1, false) => Op::LdrsbW,
                (1, true) => Op::LdrsbX,
                (2, false) => Op::LdrshW,
                (2, true) => Op::LdrshX,
                (4, true) => Op::Ldrsw,
                _ => {
                    return err(format!(
                        "argument {}: sign extension of a {size}-byte piece to {bits} bits",
                        i + 1
                    ))
                }
            };
            return self.mem(op, dst, base, src);
        }
        // Zero extension (or none): ldrb/ldrh/ldr w clear the upper bits.
        match size {
            8 => return self.mem(Op::LdrX, dst, base, src),
            4 => return self.mem(Op::LdrW, dst, base, src),
            2 => return self.mem(Op::Ldrh, dst, base, src),
            1 => return self.mem(Op::Ldrb, dst, base, src),
            3 | 5..=7 => {}
            _ => {
                return err(format!(
                    "argument {}: {size}-byte piece in a general register",
                    i + 1
                ))
            }
        }
        // A 3-, 5-, 6- or 7-byte piece: smaller loads combined, so no byte
        // past the value is read (AAPCS64 C.12 only defines the value's
        // bytes; the memory after it may be unmapped).
        for (k, (off, c)) in chunks(size, 4).into_iter().enumerate() {
            let r = if k == 0 { dst } else { TMP2 };
            let op = match c {
                4 => Op::LdrW,
                2 => Op::Ldrh,
                _ => Op::Ldrb,
            };
            self.mem(op, r, base, src + off as u64)?;
            if k > 0 {
                let sh = off * 8;
                dynasm!(self.ops ; .arch aarch64 ; orr X(dst), X(dst), X(TMP2), lsl sh);
            }
        }
        Ok(())
    }

    /// Copies `size` bytes from `[sbase + so]` to `[dbase + dof]`, reading
    /// and writing exactly those bytes (x10 scratch; large copies loop with
    /// x13–x15).
    fn copy(
        &mut self,
        sbase: u8,
        so: u64,
        dbase: u8,
        dof: u64,
        size: u32,
    ) -> Result<(), EmitError> {
        asm::copy(&mut self.ops, &COPY_REGS, sbase, so, dbase, dof, size)
    }

    /// Stores the result registers into `ret`.
    fn result_phase(&mut self) -> Result<(), EmitError> {
        let RetPlan::Direct(parts) = &self.plan.ret else {
            // Void, or Indirect: the callee wrote the caller's buffer itself.
            return Ok(());
        };
        let buf = self.sig.ret_buffer_size() as u64;
        for p in parts {
            let d = p.offset as u64;
            match p.loc {
                // AAPCS64 "Result Return": x0–x7 / v0–v7 as for the first
                // argument of `void f(T)` (in practice x0–x1, v0–v3).
                Loc::Reg(Reg::Gpr(n)) if n < 8 && p.class != PartClass::X87 => {
                    if p.size == 0 || p.size > 8 {
                        return err(format!("result: {}-byte piece in a GPR", p.size));
                    }
                    // The buffer is the result's size rounded up to 8, so a
                    // whole-register store at an 8-aligned offset fits, as
                    // long as no other piece lives in those 8 bytes.
                    let alone = parts.iter().all(|q| {
                        std::ptr::eq(q, p)
                            || q.offset as u64 >= d + 8
                            || q.offset + q.size <= p.offset
                    });
                    if p.size == 8 || (d % 8 == 0 && d + 8 <= buf && alone) {
                        self.mem(Op::StrX, n, RET, d)?;
                    } else {
                        self.store_gpr(n, d, p.size)?;
                    }
                }
                Loc::Reg(Reg::Fpr(v)) if v < 8 && p.class != PartClass::X87 => {
                    let op = match p.size {
                        1 => Op::StrB,
                        2 => Op::StrH,
                        4 => Op::StrS,
                        8 => Op::StrD,
                        16 => Op::StrQ,
                        n => return err(format!("result: {n}-byte piece in a SIMD register")),
                    };
                    self.mem(op, v, RET, d)?;
                }
                loc => return err(format!("result: cannot store a piece from {loc:?}")),
            }
        }
        Ok(())
    }

    /// Stores the low `size` (1–7) bytes of `x(src)` at `[ret + dst]`,
    /// writing exactly those bytes (x10 scratch; `src` is kept).
    fn store_gpr(&mut self, src: u8, dst: u64, size: u32) -> Result<(), EmitError> {
        for (k, (off, c)) in chunks(size, 8).into_iter().enumerate() {
            let r = if k == 0 {
                src
            } else {
                let sh = off * 8;
                dynasm!(self.ops ; .arch aarch64 ; lsr X(TMP), X(src), sh);
                TMP
            };
            let op = match c {
                8 => Op::StrX,
                4 => Op::StrW,
                2 => Op::Strh,
                _ => Op::Strb,
            };
            self.mem(op, r, RET, dst + off as u64)?;
        }
        Ok(())
    }
}

/// The register number of an argument register x0–x7, or an error for
/// anything an AArch64 plan cannot mean (the trampoline keeps its own state
/// in x19–x21 and uses x9–x16 as scratch).
fn arg_gpr(r: Reg, who: &str) -> Result<u8, EmitError> {
    match r {
        Reg::Gpr(n) if n < 8 => Ok(n),
        _ => err(format!("{who}: {r:?} is not an AArch64 argument register")),
    }
}
