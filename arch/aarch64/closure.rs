//! The AArch64 reverse-closure emitter, for AAPCS64 (Linux) and Apple arm64
//! plans alike, and the bytes of the closure stubs.
//!
//! A closure is a C function pointer with a signature's ABI that calls
//! `handler(ctx, args, ret)` with the *host* convention (AAPCS64; Apple's
//! differences do not touch three pointer parameters). It has two pieces of
//! code:
//!
//! - a **stub** per closure ([`stub_bytes`]): `adr x16, slot` (the address
//!   of the closure's data slot, a fixed distance past the stub),
//!   `ldr x17, [x16]` (the slot's first word: the body), `br x17`, then
//!   `brk #0` padding. Only x16 and x17 are touched: AAPCS64 "General-purpose
//!   Registers" makes them the intra-procedure-call scratch registers IP0
//!   and IP1, which "can be corrupted ... by veneers" and never carry an
//!   argument; x8 (indirect result) and x18 (platform register) are left
//!   alone.
//! - a **body** per signature ([`emit_closure_body`]), entered from the stub
//!   with the caller's registers and stack intact and x16 = slot address.
//!
//! Body shape (every location comes from the plan, read in reverse):
//!
//! 1. `stp x29, x30, [sp, #-16]!; mov x29, sp; sub sp, sp, #F` (AAPCS64
//!    "The Frame Pointer": a frame record; F a multiple of 16, probed page
//!    by page when it spans a page). The caller's sp was 16-aligned at the
//!    call (AAPCS64 "Universal stack constraints": SP mod 16 = 0 at a
//!    public interface), so it still is at the handler call. The caller's
//!    stack arguments are at `[x29 + 16 + off]` (entry sp + off).
//! 2. Spill: every register piece is stored, with exactly its bytes, at its
//!    offset in a local buffer for its argument (HFA members from `s`/`d`/
//!    `q` registers by size, composites from x registers); a by-reference
//!    argument's pointer (AAPCS64 B.4) becomes `args[i]` itself. Scratch:
//!    x9–x14 (AAPCS64: temporaries, not argument registers).
//! 3. Stack pieces: a value that lies whole and contiguous in the caller's
//!    frame is pointed at directly; otherwise its pieces are copied into its
//!    local buffer (Apple HFAs spilled member by member, say).
//! 4. `handler(ctx, args, ret)`: x0 = slot.ctx, x1 = args, x2 = ret (and
//!    x3 = slot.aux, a hidden fourth argument three-argument handlers
//!    ignore), called through x17 = slot.handler. `ret` is a local buffer, or the hidden
//!    result address for an indirect result (x8, AAPCS64 "Result Return";
//!    the callee need not return it, so nothing is done with it after).
//! 5. The result is loaded from `ret` into x0/x1/v0–v3 by part, exactly its
//!    bytes, with the part's extension (Apple: the callee extends narrow
//!    integer results to 32 bits).
//! 6. `mov sp, x29; ldp x29, x30, [sp], #16; ret`.
//!
//! Unwind rows ([`emit_closure_body_with_unwind`], `crate::unwind`): the
//! frame record's push (CFA = sp + 16, x29 and x30 saved), `mov x29, sp`
//! (CFA = x29 + 16 from then on), and the frame record's pop (CFA = sp + 0
//! again). The stubs change neither sp nor x30, so the entry state (CFA =
//! sp + 0, return address in x30) holds at each of their instructions: a
//! run of stubs is registered with no rows (`src/exec/stubs.rs`).
//!
//! The body writes no callee-saved register but x29/x30 (saved in the frame
//! record): x19–x28 and d8–d15 are preserved by the handler, itself an
//! AAPCS64 function.

// dynasm's expansion of dynamic registers calls `.into()` on u8.
#![allow(clippy::useless_conversion)]

use dynasmrt::{dynasm, DynasmApi};

use super::asm::{self, Asm, Op};
use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use crate::arch::chunks;
use crate::arch::EmitError;
use crate::types::{Isa, Signature};
use crate::unwind::UnwindRow;

use crate::arch::slot::{
    AUX as SLOT_AUX, CTX as SLOT_CTX, HANDLER as SLOT_HANDLER, SIZE as STUB_SIZE,
};

/// `adr x16, #d`: op 0, immlo in bits 30:29, 0b10000 in 28:24, immhi in
/// 23:5, Rd = 16 (Arm ARM C6.2.10 "ADR").
fn adr_x16(d: i64) -> u32 {
    let d = d as u32;
    ((d & 3) << 29) | (0b10000 << 24) | (((d >> 2) & 0x7ffff) << 5) | 16
}
/// `ldr x17, [x16]` (LDR immediate, unsigned offset, 64-bit, imm12 = 0).
const LDR_X17_X16: u32 = 0xF940_0000 | (16 << 5) | 17;
/// `br x17`.
const BR_X17: u32 = 0xD61F_0000 | (17 << 5);
/// `brk #0`: padding that traps if ever reached.
const BRK_0: u32 = 0xD420_0000;

/// The bytes of one stub that finds its data slot `slot_distance` bytes
/// past the stub's first byte: `adr x16, .+slot_distance; ldr x17, [x16];
/// br x17`, then `brk #0` padding.
///
/// Every stub of a run is identical, so a run of stubs is written once and
/// never touched again. Errors if the distance is outside `adr`'s ±1 MiB or
/// not a multiple of 8 (the slot is read with an 8-byte load).
pub fn stub_bytes(slot_distance: i64) -> Result<[u8; STUB_SIZE], EmitError> {
    if !(-(1 << 20)..(1 << 20)).contains(&slot_distance) || slot_distance % 8 != 0 {
        return err(format!(
            "slot distance {slot_distance} is not an 8-aligned adr offset (±1 MiB)"
        ));
    }
    let words = [
        adr_x16(slot_distance),
        LDR_X17_X16,
        BR_X17,
        BRK_0,
        BRK_0,
        BRK_0,
        BRK_0,
        BRK_0,
    ];
    let mut out = [0u8; STUB_SIZE];
    for (k, w) in words.iter().enumerate() {
        out[4 * k..4 * k + 4].copy_from_slice(&w.to_le_bytes());
    }
    Ok(out)
}

/// Makes freshly written code (a run of stubs) visible to instruction
/// fetch: `dc cvau` / `ic ivau` / `dsb ish` over the range, then `isb` on
/// this thread (dynasmrt's cache control; nothing on x86-64). Call it after
/// the code is written and before anything executes it.
///
/// qemu-user does not model stale instruction caches, so a missing call
/// never fails a test under qemu: this is covered by review.
pub fn sync_icache(code: &[u8]) {
    dynasmrt::cache_control::synchronize_icache(code);
    dynasmrt::cache_control::prepare_for_execution(code);
}

/// The register the stub leaves the slot address in (IP0).
const SLOT: u8 = 16;
/// The register the handler is called through (IP1).
const HANDLER: u8 = 17;
/// The indirect result location register (AAPCS64 "Result Return").
const XR: u8 = 8;
/// The frame pointer: the caller's stack arguments are at `[x29 + 16 + off]`.
const FP: u8 = 29;
/// The stack pointer, as a base register number (encoding 31 in a base).
const SP: u8 = 31;
/// Scratch for values being moved.
const TMP: u8 = 9;
/// Scratch for assembling a piece.
const TMP2: u8 = 10;
/// Scratch address register for offsets no load/store immediate can hold.
const ADDR: u8 = 11;
/// Copy loop: source, destination, count.
const CSRC: u8 = 12;
const CDST: u8 = 13;
const CCNT: u8 = 14;
/// The copy helper's scratch registers.
const COPY_REGS: asm::CopyRegs = asm::CopyRegs {
    tmp: TMP,
    src: CSRC,
    dst: CDST,
    cnt: CCNT,
    addr: ADDR,
};

/// Largest closure frame (the caller's stack arguments, at most 1 MiB, are
/// read above it, so every offset stays below [`MAX_OFFSET`]).
const MAX_FRAME: u64 = 1 << 23;

fn err<T>(msg: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError(msg.into()))
}

fn round16(x: u64) -> u64 {
    x.div_ceil(16) * 16
}

/// Where `args[i]` points.
#[derive(Clone, Copy, Debug)]
enum ArgHome {
    /// At `[sp + off]`, a local buffer.
    Local(u64),
    /// In the caller's frame, at `[x29 + off]` (entry sp + 16 + plan offset
    /// - 16; the 16 is the frame record).
    Caller(u64),
    /// The pointer itself arrives in the plan's location (by-reference
    /// argument).
    Pointer,
    /// A zero-sized argument: any valid address.
    Nothing,
}

/// The frame, as offsets from sp after the prologue; `args` is at 0.
struct Frame {
    size: u64,
    homes: Vec<ArgHome>,
    ret_buf: u64,
}

/// Emits the closure body for `plan` (see the module docs).
///
/// `sig` must be the signature the plan was made for; the plan is validated
/// against it first. Any plan shape the emitter does not handle is an error,
/// never wrong code.
pub fn emit_closure_body(sig: &Signature, plan: &CallPlan) -> Result<Vec<u8>, EmitError> {
    emit_closure_body_with_unwind(sig, plan).map(|(code, _)| code)
}

/// [`emit_closure_body`], also returning the frame changes the code makes
/// (for unwind tables, `crate::unwind`). The body is entered by a branch
/// (`br x17`) from the stub, with the caller's sp and its return address
/// in x30 untouched: at entry the CFA is sp + 0, as for any function
/// (aadwarf64 §4.1).
pub fn emit_closure_body_with_unwind(
    sig: &Signature,
    plan: &CallPlan,
) -> Result<(Vec<u8>, Vec<UnwindRow>), EmitError> {
    if plan.abi.isa() != Isa::Aarch64 || sig.abi != plan.abi {
        return err(format!(
            "the AArch64 closure emitter cannot emit a {} plan for a {} signature",
            plan.abi, sig.abi
        ));
    }
    plan.validate(sig).map_err(|e| EmitError(e.to_string()))?;
    if plan.al.is_some() || plan.shadow_space != 0 {
        return err("an AArch64 plan has no `al` count and no shadow space");
    }
    let frame = layout(sig, plan)?;
    let mut e = Body {
        ops: Asm::new(0),
        plan,
        frame,
        rows: Vec::new(),
    };
    e.emit()?;
    let code = e
        .ops
        .finalize()
        .map_err(|x| EmitError(format!("assembler: {x}")))?;
    Ok((code, e.rows))
}

/// Whether every piece of a value is on the stack and the pieces sit in the
/// caller's frame exactly as in the value: then the value's address is
/// `entry sp + base`, returned here.
fn contiguous_on_stack(parts: &[Part]) -> Option<u32> {
    let mut base = None;
    for p in parts {
        let Loc::Stack(off) = p.loc else { return None };
        let b = off.checked_sub(p.offset)?;
        match base {
            None => base = Some(b),
            Some(x) if x == b => {}
            Some(_) => return None,
        }
    }
    base
}

fn layout(sig: &Signature, plan: &CallPlan) -> Result<Frame, EmitError> {
    let n = sig.args.len() as u64;
    let mut size = round16(n * 8);
    let mut homes = Vec::with_capacity(plan.args.len());
    for (a, ty) in plan.args.iter().zip(&sig.args) {
        let home = match a {
            ArgPlan::Ignored => ArgHome::Nothing,
            ArgPlan::ByRef { .. } => ArgHome::Pointer,
            ArgPlan::Direct(parts) => match contiguous_on_stack(parts) {
                Some(base) => ArgHome::Caller(16 + base as u64),
                None => {
                    let at = size;
                    size += round16(ty.size() as u64);
                    ArgHome::Local(at)
                }
            },
        };
        homes.push(home);
        if size > MAX_FRAME {
            return err(format!("a closure frame of more than {MAX_FRAME} bytes"));
        }
    }
    // A result buffer even for void (16 bytes), so `ret` is always valid.
    let ret_buf = size;
    size += round16(sig.ret_buffer_size() as u64).max(16);
    if size > MAX_FRAME {
        return err(format!("a closure frame of more than {MAX_FRAME} bytes"));
    }
    Ok(Frame {
        size,
        homes,
        ret_buf,
    })
}

struct Body<'a> {
    ops: Asm,
    plan: &'a CallPlan,
    frame: Frame,
    /// Frame changes so far, for the unwind tables.
    rows: Vec<UnwindRow>,
}

impl Body<'_> {
    fn emit(&mut self) -> Result<(), EmitError> {
        asm::push_frame_record(&mut self.ops, &mut self.rows);
        asm::alloc_frame(&mut self.ops, TMP, self.frame.size);
        self.spill_registers()?;
        self.stack_pieces()?;
        self.fill_argv()?;

        // handler(ctx, args, ret), AAPCS64: x0, x1, x2. x16 still holds the
        // slot address (nothing above wrote it); x8 the result address.
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr X(0), [X(SLOT), SLOT_CTX]
            ; mov x1, sp
        );
        match self.plan.ret {
            RetPlan::Indirect { ptr_in, .. } => match ptr_in {
                // AAPCS64 "Result Return": the caller passes the address of
                // the result memory in x8 (XR); it is `ret` itself.
                Loc::Reg(Reg::Gpr(XR)) => dynasm!(self.ops ; .arch aarch64 ; mov x2, X(XR)),
                Loc::Stack(off) => self.mem(Op::LdrX, 2, FP, 16 + off as u64)?,
                Loc::Reg(r) => return err(format!("the result address in {r:?}, not x8")),
            },
            _ => self.add_imm(2, SP, self.frame.ret_buf)?,
        }
        // The slot's spare word rides along as a fourth argument (x3),
        // ignored by three-argument handlers: jitffi's own Rust-closure
        // handler takes its argument count from it.
        dynasm!(self.ops
            ; .arch aarch64
            ; ldr x3, [X(SLOT), SLOT_AUX]
            ; ldr X(HANDLER), [X(SLOT), SLOT_HANDLER]
            ; blr X(HANDLER)
        );

        self.load_result()?;
        // After the frame record's pop the entry state holds again: CFA =
        // sp + 0, x29 and x30 in their registers. One return path.
        asm::pop_frame_record(&mut self.ops, &mut self.rows);
        dynasm!(self.ops ; .arch aarch64 ; ret);
        Ok(())
    }

    /// `x(dst) = x(base) + imm` (base 31 is sp), for `imm` below 16 MiB.
    fn add_imm(&mut self, dst: u8, base: u8, imm: u64) -> Result<(), EmitError> {
        asm::add_imm(&mut self.ops, dst, base, imm)
    }

    /// One load or store of `rt` at `[base + off]` (see [`asm::mem`]).
    fn mem(&mut self, op: Op, rt: u8, base: u8, off: u64) -> Result<(), EmitError> {
        asm::mem(&mut self.ops, op, rt, base, off, ADDR)
    }

    /// Stores every register piece into its argument's local buffer and
    /// by-reference pointers that arrive in registers into `args`. Only
    /// x9–x11 are written (no argument register, not x8 or x16).
    fn spill_registers(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        for (i, arg) in plan.args.iter().enumerate() {
            match (arg, self.frame.homes[i]) {
                (ArgPlan::Direct(parts), ArgHome::Local(buf)) => {
                    for p in parts {
                        let Loc::Reg(r) = p.loc else { continue };
                        self.store_reg(r, p, buf + p.offset as u64, i)?;
                    }
                }
                (
                    ArgPlan::ByRef {
                        ptr: Loc::Reg(r), ..
                    },
                    _,
                ) => {
                    // AAPCS64 B.4: the argument is the caller's copy; its
                    // address is args[i].
                    let n = arg_gpr(*r, &format!("argument {}'s address", i + 1))?;
                    self.mem(Op::StrX, n, SP, 8 * i as u64)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Stores one register piece of argument `i` at `[sp + d]`, exactly its
    /// bytes.
    fn store_reg(&mut self, r: Reg, p: &Part, d: u64, i: usize) -> Result<(), EmitError> {
        match r {
            Reg::Gpr(_) if p.class != PartClass::X87 => {
                let n = arg_gpr(r, &format!("argument {}", i + 1))?;
                if p.size == 0 || p.size > 8 {
                    return err(format!(
                        "argument {}: {}-byte piece in a general register",
                        i + 1,
                        p.size
                    ));
                }
                // AAPCS64 C.9/C.12: the value's bytes are the low bytes of
                // the register (little-endian); the rest is unspecified.
                self.store_gpr(n, SP, d, p.size)
            }
            Reg::Fpr(v) if v < 8 && p.class != PartClass::X87 => {
                // AAPCS64 C.1/C.2: a float, or one HFA member per register
                // (h, s, d or q by the member's size).
                let op = match p.size {
                    1 => Op::StrB,
                    2 => Op::StrH,
                    4 => Op::StrS,
                    8 => Op::StrD,
                    16 => Op::StrQ,
                    n => {
                        return err(format!(
                            "argument {}: {n}-byte piece in a SIMD register",
                            i + 1
                        ))
                    }
                };
                self.mem(op, v, SP, d)
            }
            _ => err(format!(
                "argument {}: cannot take a {:?} piece from {:?}",
                i + 1,
                p.class,
                r
            )),
        }
    }

    /// Stores the low `size` (1–8) bytes of `x(src)` at `[base + d]`,
    /// writing exactly those bytes (x9 scratch; `src` is kept).
    fn store_gpr(&mut self, src: u8, base: u8, d: u64, size: u32) -> Result<(), EmitError> {
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
            self.mem(op, r, base, d + off as u64)?;
        }
        Ok(())
    }

    /// Copies the stack pieces of values that have a local buffer, and
    /// writes `args[i]` for by-reference pointers passed on the stack. Runs
    /// after every register argument has been spilled.
    fn stack_pieces(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        for (i, arg) in plan.args.iter().enumerate() {
            match (arg, self.frame.homes[i]) {
                (ArgPlan::Direct(parts), ArgHome::Local(buf)) => {
                    for p in parts {
                        let Loc::Stack(off) = p.loc else { continue };
                        // AAPCS64 C.14–C.17 (Apple: packed by natural
                        // alignment): the piece is at entry sp + off.
                        self.copy(FP, 16 + off as u64, SP, buf + p.offset as u64, p.size)?;
                    }
                }
                (
                    ArgPlan::ByRef {
                        ptr: Loc::Stack(off),
                        ..
                    },
                    _,
                ) => {
                    self.mem(Op::LdrX, TMP, FP, 16 + *off as u64)?;
                    self.mem(Op::StrX, TMP, SP, 8 * i as u64)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Copies `size` bytes from `[sbase + so]` to `[dbase + dof]`, reading
    /// and writing exactly those bytes (x9 scratch; large copies loop with
    /// x12–x14).
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

    /// Writes `args[i]` for every argument not written yet.
    fn fill_argv(&mut self) -> Result<(), EmitError> {
        for i in 0..self.plan.args.len() {
            let d = 8 * i as u64;
            match self.frame.homes[i] {
                ArgHome::Local(buf) => {
                    self.add_imm(TMP, SP, buf)?;
                    self.mem(Op::StrX, TMP, SP, d)?;
                }
                ArgHome::Caller(off) => {
                    self.add_imm(TMP, FP, off)?;
                    self.mem(Op::StrX, TMP, SP, d)?;
                }
                ArgHome::Nothing => {
                    // A zero-sized value: point at the frame (valid, unread).
                    self.add_imm(TMP, SP, 0)?;
                    self.mem(Op::StrX, TMP, SP, d)?;
                }
                ArgHome::Pointer => {} // written with the spills
            }
        }
        Ok(())
    }

    /// Loads the handler's result from the local buffer into the plan's
    /// registers. An indirect result was written through x8 by the handler
    /// itself; AAPCS64 does not ask the callee to return its address.
    fn load_result(&mut self) -> Result<(), EmitError> {
        let parts = match &self.plan.ret {
            RetPlan::Void => return Ok(()),
            RetPlan::Indirect { ptr_out, .. } => {
                if let Some(r) = ptr_out {
                    return err(format!(
                        "result address returned in {r:?}: not an AArch64 convention"
                    ));
                }
                return Ok(());
            }
            RetPlan::Direct(parts) => parts.clone(),
        };
        let buf = self.frame.ret_buf;
        for p in &parts {
            let d = buf + p.offset as u64;
            match p.loc {
                // AAPCS64 "Result Return": the registers the value would be
                // passed in as the first argument (x0–x1, v0–v3 in practice).
                Loc::Reg(Reg::Gpr(n)) if n < 8 && p.class != PartClass::X87 => {
                    self.load_gpr(n, d, p.size, p.ext)?;
                }
                Loc::Reg(Reg::Fpr(v)) if v < 8 && p.class != PartClass::X87 => {
                    if p.ext != Ext::None {
                        return err("result: extension in a SIMD register");
                    }
                    let op = match p.size {
                        1 => Op::LdrB,
                        2 => Op::LdrH,
                        4 => Op::LdrS,
                        8 => Op::LdrD,
                        16 => Op::LdrQ,
                        n => return err(format!("result: {n}-byte piece in a SIMD register")),
                    };
                    self.mem(op, v, SP, d)?;
                }
                loc => return err(format!("result: cannot load a piece into {loc:?}")),
            }
        }
        Ok(())
    }

    /// Loads exactly `size` (1–8) bytes at `[sp + d]` into `x(dst)`,
    /// applying `ext` (x10 is scratch). Bits above the piece are zero unless
    /// sign extension is asked for.
    fn load_gpr(&mut self, dst: u8, d: u64, size: u32, ext: Ext) -> Result<(), EmitError> {
        if let Ext::Sign(bits) = ext {
            if u32::from(bits) > size * 8 {
                // Apple arm64: the callee sign-extends a narrow signed
                // result to 32 bits ("Writing ARM64 code for Apple
                // platforms"; the planner marks the part).
                let op = match (size, bits > 32) {
                    (1, false) => Op::LdrsbW,
                    (1, true) => Op::LdrsbX,
                    (2, false) => Op::LdrshW,
                    (2, true) => Op::LdrshX,
                    (4, true) => Op::Ldrsw,
                    _ => {
                        return err(format!(
                            "result: sign extension of a {size}-byte piece to {bits} bits"
                        ))
                    }
                };
                return self.mem(op, dst, SP, d);
            }
        }
        // Zero extension (or none): ldrb/ldrh/ldr w clear the upper bits.
        match size {
            8 => return self.mem(Op::LdrX, dst, SP, d),
            4 => return self.mem(Op::LdrW, dst, SP, d),
            2 => return self.mem(Op::Ldrh, dst, SP, d),
            1 => return self.mem(Op::Ldrb, dst, SP, d),
            3 | 5..=7 => {}
            _ => return err(format!("result: {size}-byte piece in a general register")),
        }
        // A 3-, 5-, 6- or 7-byte piece: smaller loads combined, reading only
        // the bytes the handler wrote.
        for (k, (off, c)) in chunks(size, 4).into_iter().enumerate() {
            let r = if k == 0 { dst } else { TMP2 };
            let op = match c {
                4 => Op::LdrW,
                2 => Op::Ldrh,
                _ => Op::Ldrb,
            };
            self.mem(op, r, SP, d + off as u64)?;
            if k > 0 {
                let sh = off * 8;
                dynasm!(self.ops ; .arch aarch64 ; orr X(dst), X(dst), X(TMP2), lsl sh);
            }
        }
        Ok(())
    }
}

/// The register number of an argument register x0–x7, or an error for
/// anything an AArch64 plan cannot mean.
fn arg_gpr(r: Reg, who: &str) -> Result<u8, EmitError> {
    match r {
        Reg::Gpr(n) if n < 8 => Ok(n),
        _ => err(format!("{who}: {r:?} is not an AArch64 argument register")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
    use crate::types::{layout_record, Abi, FieldDecl, RecordKind, Scalar, Type};
    use std::sync::Arc;

    fn disasm(bytes: &[u8]) -> Vec<String> {
        crate::disasm::disassemble(Isa::Aarch64, bytes, 0)
            .lines()
            .map(|l| l.split_once("  ").map_or(l, |x| x.1).to_string())
            .collect()
    }

    fn v3() -> Type {
        let f = || FieldDecl {
            name: None,
            ty: Type::Scalar(Scalar::F32),
            aligned: None,
        };
        Type::Record(Arc::new(
            layout_record(RecordKind::Struct, None, vec![f(), f(), f()], false, None).unwrap(),
        ))
    }

    fn part(loc: Loc, offset: u32, size: u32, class: PartClass) -> Part {
        Part {
            offset,
            size,
            loc,
            class,
            ext: Ext::None,
        }
    }

    /// DESIGN tricky case 4 on AAPCS64, `v3 f(v3)`: an HFA in s0–s2 both
    /// ways (AAPCS64 C.2, "Result Return"). The plan is written by hand so
    /// the test does not depend on the planner.
    #[test]
    fn golden_body_for_three_floats() {
        let sig = Signature::new(Abi::Aapcs64, v3(), vec![v3()]);
        let s = |n: u8| part(Loc::Reg(Reg::Fpr(n)), 4 * n as u32, 4, PartClass::Float);
        let parts = vec![s(0), s(1), s(2)];
        let plan = CallPlan {
            abi: Abi::Aapcs64,
            args: vec![ArgPlan::Direct(parts.clone())],
            ret: RetPlan::Direct(parts),
            stack_size: 0,
            shadow_space: 0,
            copy_area_size: 0,
            al: None,
        };
        let text = disasm(&emit_closure_body(&sig, &plan).unwrap());
        // Frame: args[1] at 0 (16), the value at 16 (16), ret at 32 (16).
        let want = [
            "stp x29, x30, [sp, #-0x10]!",
            "mov x29, sp",
            "sub sp, sp, #0x30",
            "str s0, [sp, #0x10]",
            "str s1, [sp, #0x14]",
            "str s2, [sp, #0x18]",
            "add x9, sp, #0x10",
            "str x9, [sp]",
            "ldr x0, [x16, #0x10]",
            "mov x1, sp",
            "add x2, sp, #0x20",
            "ldr x3, [x16, #0x18]",
            "ldr x17, [x16, #0x8]",
            "blr x17",
            "ldr s0, [sp, #0x20]",
            "ldr s1, [sp, #0x24]",
            "ldr s2, [sp, #0x28]",
            "mov sp, x29",
            "ldp x29, x30, [sp], #0x10",
            "ret",
        ];
        assert_eq!(text, want);
    }

    /// `struct {ll a,b,c;} f(int)` (DESIGN case 8): the int in w0, the
    /// result address in x8 is `ret`; a char on the stack is pointed at in
    /// the caller's frame.
    #[test]
    fn golden_body_for_indirect_result_and_stack_char() {
        let ll = Type::Scalar(Scalar::I64);
        let f = |ty: Type| FieldDecl {
            name: None,
            ty,
            aligned: None,
        };
        let ll3 = Type::Record(Arc::new(
            layout_record(
                RecordKind::Struct,
                None,
                vec![f(ll.clone()), f(ll.clone()), f(ll)],
                false,
                None,
            )
            .unwrap(),
        ));
        let sig = Signature::new(
            Abi::Aapcs64,
            ll3,
            vec![Type::Scalar(Scalar::I32), Type::Scalar(Scalar::U8)],
        );
        let plan = CallPlan {
            abi: Abi::Aapcs64,
            args: vec![
                ArgPlan::Direct(vec![part(Loc::Reg(Reg::Gpr(0)), 0, 4, PartClass::Int)]),
                ArgPlan::Direct(vec![part(Loc::Stack(8), 0, 1, PartClass::Int)]),
            ],
            ret: RetPlan::Indirect {
                ptr_in: Loc::Reg(Reg::Gpr(8)),
                ptr_out: None,
            },
            stack_size: 16,
            shadow_space: 0,
            copy_area_size: 0,
            al: None,
        };
        let text = disasm(&emit_closure_body(&sig, &plan).unwrap());
        let want = [
            "stp x29, x30, [sp, #-0x10]!",
            "mov x29, sp",
            "sub sp, sp, #0x40",
            "str w0, [sp, #0x10]",
            "add x9, sp, #0x10",
            "str x9, [sp]",
            "add x9, x29, #0x18",
            "str x9, [sp, #0x8]",
            "ldr x0, [x16, #0x10]",
            "mov x1, sp",
            "mov x2, x8",
            "ldr x3, [x16, #0x18]",
            "ldr x17, [x16, #0x8]",
            "blr x17",
            "mov sp, x29",
            "ldp x29, x30, [sp], #0x10",
            "ret",
        ];
        assert_eq!(text, want);
    }

    #[test]
    fn refuses_what_it_cannot_emit() {
        let int = Type::Scalar(Scalar::I32);
        let sig = Signature::new(Abi::Aapcs64, int.clone(), vec![int.clone()]);
        let plan = |loc: Loc| CallPlan {
            abi: Abi::Aapcs64,
            args: vec![ArgPlan::Direct(vec![part(loc, 0, 4, PartClass::Int)])],
            ret: RetPlan::Direct(vec![part(Loc::Reg(Reg::Gpr(0)), 0, 4, PartClass::Int)]),
            stack_size: 0,
            shadow_space: 0,
            copy_area_size: 0,
            al: None,
        };
        // x8 and x16 are never argument registers; v8 is not either.
        assert!(emit_closure_body(&sig, &plan(Loc::Reg(Reg::Gpr(8)))).is_err());
        assert!(emit_closure_body(&sig, &plan(Loc::Reg(Reg::Gpr(16)))).is_err());
        assert!(emit_closure_body(&sig, &plan(Loc::Reg(Reg::Fpr(8)))).is_err());
        let mut p = plan(Loc::Reg(Reg::Gpr(0)));
        assert!(emit_closure_body(&sig, &p).is_ok());
        // A plan for another ISA.
        p.abi = Abi::SysV64;
        assert!(emit_closure_body(&sig, &p).is_err());
    }

    /// Planner plans for every DESIGN tricky case emit (AAPCS64 and Apple).
    #[test]
    fn planner_plans_emit() {
        let decls = [
            "struct {float a,b; int c;} f(struct {float a,b; int c;})",
            "struct {double a,b,c,d,e;} f(struct {double a,b,c,d,e;}, int)",
            "__int128 f(__int128, __int128)",
            "signed char f(signed char, unsigned short, _Bool)",
            "int f(long long, long long, long long, long long, long long, long long, long long, long long, char, short, int, char)",
            "int f(int, ..., double, int)",
            "long double f(long double, int, long double)",
            "void f(struct {unsigned char b[5000];}, double, double, double, double, double, double, double, double, struct {float a,b,c;})",
        ];
        for abi in [Abi::Aapcs64, Abi::AppleArm64] {
            for d in decls {
                let sig = crate::cdecl::parse_signature(d, abi).unwrap();
                let plan = crate::abi::plan(&sig).unwrap();
                let code = emit_closure_body(&sig, &plan).unwrap_or_else(|e| panic!("{d}: {e}"));
                assert!(!disasm(&code).iter().any(|l| l.starts_with(".word")), "{d}");
            }
        }
    }

    #[test]
    fn stub_decodes_as_adr_ldr_br() {
        let b = stub_bytes(16384).unwrap();
        let text = disasm(&b);
        assert_eq!(text[1], "ldr x17, [x16]");
        assert_eq!(text[2], "br x17");
        assert!(text[3..].iter().all(|t| t == "brk #0x0"), "{text:?}");
        assert_eq!(text.len(), 8);
        // adr x16, #0x4000: immhi = 0x1000, immlo = 0 (Arm ARM "ADR").
        assert_eq!(
            u32::from_le_bytes(b[..4].try_into().unwrap()),
            0x1000_0000 | (0x1000 << 5) | 16
        );
        assert!(text[0].starts_with("adr x16, "), "{}", text[0]);
    }

    #[test]
    fn stub_distance_out_of_range_is_an_error() {
        assert!(stub_bytes(1 << 20).is_err());
        assert!(stub_bytes(12).is_err());
        assert!(stub_bytes((1 << 20) - 8).is_ok());
    }

    #[test]
    fn chunks_cover_sizes() {
        assert_eq!(chunks(7, 8), vec![(0, 4), (4, 2), (6, 1)]);
        assert_eq!(chunks(12, 8), vec![(0, 8), (8, 4)]);
    }
}
