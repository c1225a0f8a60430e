//! The x86-64 forward-call emitter, for SysV and Win64 plans alike.
//!
//! The trampoline is itself called with the host C convention (SysV AMD64
//! on Linux x86-64):
//!
//! ```text
//! void trampoline(const void *target /* rdi */, const void *args /* rsi */,
//!                 void *ret /* rdx */);
//! ```
//!
//! Two code shapes, both driven by the plan (nothing is decided here):
//!
//! - The fast path, when every argument piece is in a register (see
//!   `Emitter::emit_fast`): no frame pointer and no callee-saved register,
//!   `args` read through rsi (the rsi piece last), the target in rax or r11,
//!   `ret` pushed and popped into rcx after the call, and a tail jump when
//!   nothing follows the call. It is as short as a compiled wrapper of the
//!   same interface (gcc -O2 for `*r = f(*a[0], *a[1], *a[2])`).
//! - The general path, for stack pieces, by-reference copies and large
//!   frames, below.
//!
//! General path:
//!
//! 1. Prologue: `push rbp; mov rbp, rsp`, then push the callee-saved
//!    registers that keep the trampoline's own parameters across the call
//!    (rbx = `args`, r12 = `ret`, r13 = `target`; only those needed), then
//!    `sub rsp, N` so that rsp is 16-byte aligned at the call instruction
//!    (SysV psABI §3.2.2 "The end of the input argument area shall be
//!    aligned on a 16 byte boundary"; Microsoft x64 "Stack allocation": the
//!    stack is 16-byte aligned at a call). Frames of a page or more are
//!    probed page by page so no guard page is skipped.
//! 2. Memory phase: stack pieces (`[rsp + off]`), by-reference copies (in
//!    the copy area at `[rsp + stack_size + copy_offset]`, above the
//!    outgoing argument area) and stack-passed addresses. Scratch: rax, r10,
//!    r11, and for large copies `rep movsb` (rsi, rdi, rcx), which is why
//!    this phase comes before any argument register is loaded.
//! 3. Register phase: each register piece is loaded from the value, reading
//!    exactly its bytes (a 3-, 5-, 6- or 7-byte piece is assembled from
//!    smaller loads), with the part's extension. Scratch: r10 (the pointer
//!    to the value in pointer mode), r11 and rax; none of them is an argument
//!    register in either convention, so no loaded argument is clobbered.
//! 4. `al` (SysV §3.5.7: number of vector registers used by a variadic
//!    call), then the call: `call r13` (unbound) or `mov rax/r11, imm64;
//!    call rax/r11` (bound; r11 when rax holds `al`).
//! 5. Result phase: register pieces stored into `ret` at their offsets; x87
//!    results popped with `fstp tword` (st0 first, then what was st1).
//! 6. Epilogue: restore and return.
//!
//! Win64 callees from this SysV-convention trampoline: the shadow space is
//! part of `plan.stack_size` (the planner puts it there, and stack pieces
//! start past it); the registers a Win64 callee preserves (rbx, rbp, rdi,
//! rsi, rsp, r12–r15, xmm6–xmm15) are a superset of what SysV requires of
//! this trampoline's callee, so nothing extra needs saving; Win64 has no red
//! zone, and the trampoline never uses memory below rsp anyway.

// dynasm's expansion of dynamic registers (`Rq(n)`) calls `.into()` on u8.
#![allow(clippy::useless_conversion)]

pub mod closure;

use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

use super::{ArgSource, EmitError, Target};
use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use crate::arch::chunks;
use crate::types::{Isa, Signature};
use crate::unwind::{reg::x86_64 as dw, CfaRule, UnwindRow};

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RBX: u8 = 3;
const RSP: u8 = 4;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const R10: u8 = 10;
const R11: u8 = 11;
const R12: u8 = 12;
const R13: u8 = 13;

/// Register of the trampoline's `args` parameter across the body.
const ARGS: u8 = RBX;
/// Register of the trampoline's `ret` parameter across the body.
const RET: u8 = R12;
/// Register of the trampoline's `target` parameter across the body.
const TARGET: u8 = R13;
/// In pointer mode, the pointer to the current argument's value.
const VALPTR: u8 = R10;

/// Argument registers of SysV (§3.2.3: rdi, rsi, rdx, rcx, r8, r9) and
/// Win64 (rcx, rdx, r8, r9): the only GPRs a plan may put an argument in.
const ARG_GPRS: [u8; 6] = [RDI, RSI, RDX, RCX, R8, R9];
/// Integer result registers of both conventions (rax, rdx).
const RET_GPRS: [u8; 2] = [RAX, RDX];

/// Copies up to this many bytes with unrolled moves; larger with `rep movsb`.
const UNROLL_LIMIT: u32 = 128;
const PAGE: u32 = 4096;

type Asm = VecAssembler<X64Relocation>;

/// Emits one instruction whose memory operand is written `[@]`, addressing
/// `[base + disp]` with the shortest encoding: a static base register (no
/// SIB byte, which dynasm emits for every dynamic base) and no displacement
/// or an 8-bit one when it fits (dynasm sizes a displacement when the macro
/// expands, so a runtime value gets 32 bits unless marked `BYTE`).
///
/// `mem!(self.ops, base, disp; mov Rq(dst), QWORD [@])`
macro_rules! mem {
    ($ops:expr, $base:expr, $disp:expr; $($ins:tt)*) => {{
        let base: u8 = $base;
        let disp: i32 = $disp;
        match (base, disp, i8::try_from(disp)) {
            (R10, 0, _) => mem!(@put $ops, [r10]; [] $($ins)*),
            (R10, _, Ok(d8)) => mem!(@put $ops, [BYTE r10 + d8]; [] $($ins)*),
            (R10, d, Err(_)) => mem!(@put $ops, [r10 + d]; [] $($ins)*),
            (RSI, 0, _) => mem!(@put $ops, [rsi]; [] $($ins)*),
            (RSI, _, Ok(d8)) => mem!(@put $ops, [BYTE rsi + d8]; [] $($ins)*),
            (RSI, d, Err(_)) => mem!(@put $ops, [rsi + d]; [] $($ins)*),
            (RCX, 0, _) => mem!(@put $ops, [rcx]; [] $($ins)*),
            (RCX, _, Ok(d8)) => mem!(@put $ops, [BYTE rcx + d8]; [] $($ins)*),
            (RCX, d, Err(_)) => mem!(@put $ops, [rcx + d]; [] $($ins)*),
            (RBX, 0, _) => mem!(@put $ops, [rbx]; [] $($ins)*),
            (RBX, _, Ok(d8)) => mem!(@put $ops, [BYTE rbx + d8]; [] $($ins)*),
            (RBX, d, Err(_)) => mem!(@put $ops, [rbx + d]; [] $($ins)*),
            (R12, 0, _) => mem!(@put $ops, [r12]; [] $($ins)*),
            (R12, _, Ok(d8)) => mem!(@put $ops, [BYTE r12 + d8]; [] $($ins)*),
            (R12, d, Err(_)) => mem!(@put $ops, [r12 + d]; [] $($ins)*),
            (b, _, Ok(d8)) => mem!(@put $ops, [BYTE Rq(b) + d8]; [] $($ins)*),
            (b, d, Err(_)) => mem!(@put $ops, [Rq(b) + d]; [] $($ins)*),
        }
    }};
    // Copies the instruction's tokens up to `[@]`, puts the operand there.
    (@put $ops:expr, $m:tt; [$($pre:tt)*] [@] $($post:tt)*) => {
        dynasm!($ops ; .arch x64 ; $($pre)* $m $($post)*)
    };
    (@put $ops:expr, $m:tt; [$($pre:tt)*] $t:tt $($rest:tt)*) => {
        mem!(@put $ops, $m; [$($pre)* $t] $($rest)*)
    };
}

fn err<T>(msg: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError(msg.into()))
}

/// `a + b` as an x86 32-bit displacement.
fn disp(a: i64, b: u32) -> Result<i32, EmitError> {
    i32::try_from(a + b as i64).map_err(|_| {
        EmitError(format!(
            "offset {} does not fit a displacement",
            a + b as i64
        ))
    })
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
/// the CFA is rsp + 8 with the return address at CFA − 8.
pub fn emit_forward_with_unwind(
    sig: &Signature,
    plan: &CallPlan,
    source: ArgSource<'_>,
    target: Target,
) -> Result<(Vec<u8>, Vec<UnwindRow>), EmitError> {
    if plan.abi.isa() != Isa::X86_64 || sig.abi != plan.abi {
        return err(format!(
            "the x86-64 emitter cannot emit a {} plan for a {} signature",
            plan.abi, sig.abi
        ));
    }
    plan.validate(sig).map_err(|e| EmitError(e.to_string()))?;
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
        copy_base: plan.stack_size as i64,
        args_reg: ARGS,
        ret_reg: RET,
        scratch: [R11, RAX],
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
    /// Offset of the copy area from rsp (just above the argument area).
    copy_base: i64,
    /// Register holding `args` while arguments are loaded.
    args_reg: u8,
    /// Register holding `ret` when results are stored.
    ret_reg: u8,
    /// Scratch registers for loads that need them (a piece assembled from
    /// several loads; a short piece for an XMM register): never an argument
    /// register, the target, `args_reg` or the value pointer.
    scratch: [u8; 2],
    /// Frame changes so far, for the unwind tables.
    rows: Vec<UnwindRow>,
}

/// Registers of the fast path (see [`Emitter::fast_path`]).
struct Fast {
    /// Where an unbound target is kept until the call (rax, or r11 when
    /// rax carries `al`); the register a bound address is loaded into.
    target: u8,
    /// Whether `ret` is needed after the call.
    keep_ret: bool,
}

impl Emitter<'_> {
    /// Records that `rule` holds from the current offset on.
    fn row(&mut self, rule: CfaRule) {
        let at = self.ops.offset().0 as u32;
        self.rows.push(UnwindRow { at, rule });
    }

    fn emit(&mut self, target: Target) -> Result<(), EmitError> {
        match self.fast_path(target) {
            Some(f) => self.emit_fast(target, f),
            None => self.emit_general(target),
        }
    }

    /// Decides whether the plan fits the fast path: every argument piece in
    /// a register (no stack pieces, no by-reference copies; a Win64 shadow
    /// space is fine), so nothing runs before the register loads and the
    /// trampoline needs no callee-saved register: `args` stays in rsi (the
    /// rsi piece is loaded last), the target moves to rax or r11 (neither is
    /// an argument register in either convention), and `ret` is pushed,
    /// which is also the 8 bytes that align the stack. Sets the registers
    /// the loads use; `None` when the plan needs the general path.
    fn fast_path(&mut self, target: Target) -> Option<Fast> {
        let plan = self.plan;
        let frame_mode = matches!(self.source, ArgSource::Frame(_));
        if plan.copy_area_size != 0 || plan.stack_size >= PAGE {
            return None;
        }
        let tgt = if plan.al.is_some() { R11 } else { RAX };
        // Scratch left for the loads: rax and r11 less the target's (rax's
        // `al` is written after the last load), and r10 in frame mode where
        // no value pointer is needed.
        let mut free: Vec<u8> = [R11, RAX]
            .into_iter()
            .filter(|&r| target != Target::Unbound || r != tgt)
            .collect();
        if frame_mode {
            free.push(R10);
        }
        let mut need = 0;
        for arg in &plan.args {
            match arg {
                ArgPlan::Ignored => {}
                ArgPlan::ByRef { .. } => return None,
                ArgPlan::Direct(parts) => {
                    for p in parts {
                        let sign = matches!(p.ext, Ext::Sign(b) if u32::from(b) > p.size * 8);
                        let multi = !sign && matches!(p.size, 3 | 5 | 6 | 7);
                        match p.loc {
                            Loc::Stack(_) => return None,
                            // In frame mode an rsi piece is read through rsi:
                            // it must be a single load.
                            Loc::Reg(Reg::Gpr(RSI)) if multi && frame_mode => return None,
                            Loc::Reg(Reg::Gpr(_)) if multi => need = need.max(1),
                            Loc::Reg(Reg::Fpr(_)) if (1..=7).contains(&p.size) => {
                                need = need.max(if multi { 2 } else { 1 })
                            }
                            Loc::Reg(_) => {}
                        }
                    }
                }
            }
        }
        if need > free.len() {
            return None;
        }
        let keep_ret = match &plan.ret {
            RetPlan::Void => false,
            RetPlan::Direct(parts) => !parts.is_empty(),
            RetPlan::Indirect { ptr_in, .. } => match ptr_in {
                // The sret move runs first and reads rdx; it must not
                // overwrite rsi (the arguments) or the target.
                Loc::Reg(Reg::Gpr(n)) if ARG_GPRS.contains(n) && *n != RSI => false,
                _ => return None,
            },
        };
        self.args_reg = RSI;
        // Direct results are stored through rcx, popped after the call (not
        // a result register in either convention); an sret address is
        // moved from rdx before any argument register is loaded.
        self.ret_reg = if keep_ret { RCX } else { RDX };
        self.scratch = [free[0], *free.get(1).unwrap_or(&free[0])];
        Some(Fast {
            target: tgt,
            keep_ret,
        })
    }

    /// The fast path (see [`Emitter::fast_path`]):
    ///
    /// ```text
    /// mov rax/r11, rdi        ; unbound target
    /// push rdx                ; ret, and rsp = 0 (mod 16)   | sub rsp, 8
    /// sub rsp, stack_size     ; Win64 shadow space
    /// mov rdi/rcx, rdx        ; sret address
    /// ...register loads, rsi last...
    /// mov eax, al
    /// call target             ; or jmp: see below
    /// add rsp, stack_size
    /// pop rcx                 ; ret
    /// ...stores through rcx...
    /// ret
    /// ```
    ///
    /// When nothing is needed after the call (no result to store, no stack
    /// area to reserve) the call is a tail jump: rsp is then exactly as our
    /// caller left it (8 mod 16 with its return address on top), which is
    /// what the target expects at entry, and it returns straight to our
    /// caller. Not for Win64, whose 32-byte shadow space must be reserved
    /// above the return address (never the case: stack_size is then 32).
    fn emit_fast(&mut self, target: Target, f: Fast) -> Result<(), EmitError> {
        let plan = self.plan;
        let t = f.target;
        if target == Target::Unbound {
            dynasm!(self.ops ; .arch x64 ; mov Rq(t), rdi);
        }
        let tail = !f.keep_ret && plan.stack_size == 0;
        // At entry rsp = 8 (mod 16); stack_size is a multiple of 16
        // (validated). SysV psABI §3.2.2 / Microsoft x64 "Stack
        // allocation": rsp is 16-byte aligned at the call.
        let mut sub = plan.stack_size as i32;
        if f.keep_ret {
            dynasm!(self.ops ; .arch x64 ; push rdx);
            self.row(CfaRule::CfaOffset(16));
        } else if !tail {
            sub += 8;
        }
        self.add_rsp(-sub);
        // The CFA is rsp + 8 at entry; the push and the sub move rsp down.
        let depth = 8 + if f.keep_ret { 8 } else { 0 };
        if sub != 0 {
            self.row(CfaRule::CfaOffset((depth + sub) as u32));
        }

        self.register_phase()?;

        if let Some(al) = plan.al {
            // SysV psABI §3.5.7: for a variadic call, %al is an upper bound
            // on the number of vector registers used.
            dynasm!(self.ops ; .arch x64 ; mov eax, al as i32);
        }
        if let Target::Bound(addr) = target {
            dynasm!(self.ops ; .arch x64 ; mov Rq(t), QWORD addr as i64);
        }
        match (tail, t) {
            (true, RAX) => dynasm!(self.ops ; .arch x64 ; jmp rax),
            (true, _) => dynasm!(self.ops ; .arch x64 ; jmp r11),
            (false, RAX) => dynasm!(self.ops ; .arch x64 ; call rax),
            (false, _) => dynasm!(self.ops ; .arch x64 ; call r11),
        }
        if tail {
            return Ok(());
        }
        self.add_rsp(sub);
        if sub != 0 {
            self.row(CfaRule::CfaOffset(depth as u32));
        }
        if f.keep_ret {
            dynasm!(self.ops ; .arch x64 ; pop rcx);
            self.row(CfaRule::CfaOffset(8));
            self.result_phase()?;
        }
        dynasm!(self.ops ; .arch x64 ; ret);
        Ok(())
    }

    /// `add rsp, n` (or `sub` for negative `n`), with the short immediate
    /// when it fits; nothing for 0.
    fn add_rsp(&mut self, n: i32) {
        let m = n.unsigned_abs();
        match (n > 0, i8::try_from(m)) {
            _ if n == 0 => {}
            (true, Ok(b)) => dynasm!(self.ops ; .arch x64 ; add rsp, BYTE b),
            (false, Ok(b)) => dynasm!(self.ops ; .arch x64 ; sub rsp, BYTE b),
            (true, Err(_)) => dynasm!(self.ops ; .arch x64 ; add rsp, m as i32),
            (false, Err(_)) => dynasm!(self.ops ; .arch x64 ; sub rsp, m as i32),
        }
    }

    /// The general path: any plan, with stack pieces, by-reference copies
    /// and large frames.
    fn emit_general(&mut self, target: Target) -> Result<(), EmitError> {
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

        // Frame: at entry rsp = 8 (mod 16) (the return address); after
        // `push rbp` it is 0, after k more pushes 8k; the argument and copy
        // areas are multiples of 16 (validated), so pad by 8 when k is odd.
        let areas = plan.stack_size as u64 + plan.copy_area_size as u64;
        let frame = areas + if saved.len() % 2 == 1 { 8 } else { 0 };
        if frame > i32::MAX as u64 / 2 {
            return err(format!("a {frame}-byte call frame is too large"));
        }
        let frame = frame as u32;

        dynasm!(self.ops ; .arch x64 ; push rbp);
        self.row(CfaRule::CfaOffset(16));
        self.row(CfaRule::Saved {
            reg: dw::RBP,
            offset: -16,
        });
        dynasm!(self.ops ; .arch x64 ; mov rbp, rsp);
        self.row(CfaRule::Cfa {
            reg: dw::RBP,
            offset: 16,
        });
        for (k, &r) in saved.iter().enumerate() {
            self.push_pop(r, true);
            self.row(CfaRule::Saved {
                reg: dw::gpr(r),
                offset: -24 - 8 * k as i32,
            });
        }
        self.alloc_frame(frame);
        if uses_args {
            dynasm!(self.ops ; .arch x64 ; mov rbx, rsi);
        }
        if uses_ret {
            dynasm!(self.ops ; .arch x64 ; mov r12, rdx);
        }
        if target == Target::Unbound {
            dynasm!(self.ops ; .arch x64 ; mov r13, rdi);
        }

        self.memory_phase()?;
        self.register_phase()?;

        if let Some(al) = plan.al {
            // SysV psABI §3.5.7: for a variadic call, %al is an upper bound
            // on the number of vector registers used.
            dynasm!(self.ops ; .arch x64 ; mov eax, al as i32);
        }
        match target {
            Target::Unbound => dynasm!(self.ops ; .arch x64 ; call r13),
            Target::Bound(addr) if plan.al.is_some() => dynasm!(self.ops
                ; .arch x64
                ; mov r11, QWORD addr as i64
                ; call r11
            ),
            Target::Bound(addr) => dynasm!(self.ops
                ; .arch x64
                ; mov rax, QWORD addr as i64
                ; call rax
            ),
        }

        self.result_phase()?;

        if saved.is_empty() {
            dynasm!(self.ops ; .arch x64 ; mov rsp, rbp);
        } else {
            let d = -8 * saved.len() as i32;
            dynasm!(self.ops ; .arch x64 ; lea rsp, [rbp + d]);
        }
        for &r in saved.iter().rev() {
            self.push_pop(r, false);
        }
        dynasm!(self.ops ; .arch x64 ; pop rbp);
        self.row(CfaRule::Cfa {
            reg: dw::RSP,
            offset: 8,
        });
        self.row(CfaRule::Restored(dw::RBP));
        dynasm!(self.ops ; .arch x64 ; ret);
        Ok(())
    }

    /// Saves (`push`) or restores (`pop`) one of the trampoline's own
    /// callee-saved registers. Static register names give the shortest
    /// encodings (dynasm adds a REX prefix to every dynamic register).
    fn push_pop(&mut self, r: u8, push: bool) {
        match (r, push) {
            (RBX, true) => dynasm!(self.ops ; .arch x64 ; push rbx),
            (R12, true) => dynasm!(self.ops ; .arch x64 ; push r12),
            (_, true) => dynasm!(self.ops ; .arch x64 ; push r13),
            (RBX, false) => dynasm!(self.ops ; .arch x64 ; pop rbx),
            (R12, false) => dynasm!(self.ops ; .arch x64 ; pop r12),
            (_, false) => dynasm!(self.ops ; .arch x64 ; pop r13),
        }
    }

    /// `sub rsp, frame`, touching every page on the way down when the frame
    /// spans a page or more (so a guard page below the stack is never
    /// skipped; Windows' `__chkstk` does the same).
    fn alloc_frame(&mut self, frame: u32) {
        if frame >= PAGE {
            let pages = (frame / PAGE) as i32;
            dynasm!(self.ops
                ; .arch x64
                ; mov r11d, pages
                ; probe:
                ; sub rsp, PAGE as i32
                ; or QWORD [rsp], 0
                ; dec r11
                ; jnz <probe
            );
        }
        let rest = (frame % PAGE) as i32;
        if rest != 0 {
            dynasm!(self.ops ; .arch x64 ; sub rsp, rest);
        }
    }

    /// Where argument `i`'s value starts: a base register and displacement.
    /// In pointer mode this loads `args[i]` into r10.
    fn value_base(&mut self, i: usize) -> Result<(u8, i64), EmitError> {
        match self.source {
            ArgSource::Pointers => {
                let d = disp(0, (i as u32).saturating_mul(8))?;
                mem!(self.ops, self.args_reg, d; mov Rq(VALPTR), [@]);
                Ok((VALPTR, 0))
            }
            ArgSource::Frame(offsets) => Ok((self.args_reg, offsets[i] as i64)),
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
            let d = disp(0, off)?;
            dynasm!(self.ops ; .arch x64 ; mov [rsp + d], Rq(self.ret_reg));
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
                        let src = disp(vd, p.offset)?;
                        let dst = disp(0, off)?;
                        match p.class {
                            PartClass::Int | PartClass::Float if p.size <= 8 => {
                                // A scalar gets a whole 8-byte slot (SysV
                                // §3.2.3 "eightbyte"; Win64 8-byte slots).
                                self.load_gpr(RAX, R11, base, src, p.size, p.ext, i)?;
                                dynasm!(self.ops ; .arch x64 ; mov [rsp + dst], rax);
                            }
                            PartClass::Int | PartClass::Float | PartClass::Memory => {
                                if p.ext != Ext::None {
                                    return err(format!(
                                        "argument {}: extension of a {}-byte stack piece",
                                        i + 1,
                                        p.size
                                    ));
                                }
                                self.copy(base, src, RSP, dst, p.size)?;
                            }
                            PartClass::X87 => {
                                return err(format!("argument {}: x87 class on the stack", i + 1))
                            }
                        }
                    }
                }
                ArgPlan::ByRef { ptr, copy_offset } => {
                    let size = self.sig.args[i].size();
                    let copy = disp(self.copy_base, *copy_offset)?;
                    if size > 0 {
                        let (base, vd) = self.value_base(i)?;
                        let src = disp(vd, 0)?;
                        self.copy(base, src, RSP, copy, size)?;
                    }
                    if let Loc::Stack(off) = ptr {
                        let dst = disp(0, *off)?;
                        dynasm!(self.ops
                            ; .arch x64
                            ; lea rax, [rsp + copy]
                            ; mov [rsp + dst], rax
                        );
                    }
                }
            }
        }
        Ok(())
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
            let n = arg_gpr(r, "the result address")?;
            dynasm!(self.ops ; .arch x64 ; mov Rq(n), Rq(self.ret_reg));
        }
        // When `args` is still in rsi (the fast path), the argument with a
        // piece for rsi goes last, and that piece last of its argument: every
        // other load still reads through rsi.
        let mut order: Vec<usize> = (0..plan.args.len()).collect();
        if self.args_reg == RSI {
            order.sort_by_key(|&i| loads_rsi(&plan.args[i]));
        }
        for i in order {
            match &plan.args[i] {
                ArgPlan::Ignored => {}
                ArgPlan::Direct(parts) => {
                    if !parts.iter().any(|p| matches!(p.loc, Loc::Reg(_))) {
                        continue;
                    }
                    let (base, vd) = self.value_base(i)?;
                    let mut parts: Vec<&Part> = parts.iter().collect();
                    if self.args_reg == RSI {
                        parts.sort_by_key(|p| p.loc == Loc::Reg(Reg::Gpr(RSI)));
                    }
                    for p in parts {
                        let Loc::Reg(r) = p.loc else { continue };
                        let src = disp(vd, p.offset)?;
                        self.load_reg(r, p, base, src, i)?;
                    }
                }
                ArgPlan::ByRef { ptr, copy_offset } => {
                    if let Loc::Reg(r) = ptr {
                        let n = arg_gpr(*r, &format!("argument {}'s address", i + 1))?;
                        let copy = disp(self.copy_base, *copy_offset)?;
                        dynasm!(self.ops ; .arch x64 ; lea Rq(n), [rsp + copy]);
                    }
                }
            }
        }
        Ok(())
    }

    /// Loads one register piece of argument `i`.
    fn load_reg(
        &mut self,
        r: Reg,
        p: &Part,
        base: u8,
        src: i32,
        i: usize,
    ) -> Result<(), EmitError> {
        match (r, p.class) {
            (Reg::Gpr(_), PartClass::Int | PartClass::Float | PartClass::Memory) => {
                let n = arg_gpr(r, &format!("argument {}", i + 1))?;
                self.load_gpr(n, self.scratch[0], base, src, p.size, p.ext, i)
            }
            (Reg::Fpr(x), PartClass::Float | PartClass::Int | PartClass::Memory) if x < 16 => {
                if p.ext != Ext::None {
                    return err(format!("argument {}: extension in an XMM register", i + 1));
                }
                match p.size {
                    4 => mem!(self.ops, base, src; movss Rx(x), DWORD [@]),
                    8 => mem!(self.ops, base, src; movsd Rx(x), QWORD [@]),
                    // A whole vector register (e.g. `__m128`): exactly 16 bytes.
                    16 => mem!(self.ops, base, src; movups Rx(x), OWORD [@]),
                    1..=7 => {
                        let [t0, t1] = self.scratch;
                        self.load_gpr(t0, t1, base, src, p.size, Ext::None, i)?;
                        dynasm!(self.ops ; .arch x64 ; movq Rx(x), Rq(t0));
                    }
                    n => {
                        return err(format!(
                            "argument {}: {n}-byte piece in an XMM register",
                            i + 1
                        ))
                    }
                }
                Ok(())
            }
            _ => err(format!(
                "argument {}: cannot load a {:?} piece into {:?}",
                i + 1,
                p.class,
                r
            )),
        }
    }

    /// Loads exactly `size` (1–8) bytes at `[base + src]` into GPR `dst`,
    /// applying `ext`; `tmp` is a scratch register. Bits above the piece are
    /// zero unless sign extension is asked for.
    #[allow(clippy::too_many_arguments)]
    fn load_gpr(
        &mut self,
        dst: u8,
        tmp: u8,
        base: u8,
        src: i32,
        size: u32,
        ext: Ext,
        i: usize,
    ) -> Result<(), EmitError> {
        let sign_bits = match ext {
            Ext::Sign(b) if u32::from(b) > size * 8 => Some(b),
            _ => None,
        };
        if let Some(bits) = sign_bits {
            match (size, bits > 32) {
                (1, false) => mem!(self.ops, base, src; movsx Rd(dst), BYTE [@]),
                (1, true) => mem!(self.ops, base, src; movsx Rq(dst), BYTE [@]),
                (2, false) => mem!(self.ops, base, src; movsx Rd(dst), WORD [@]),
                (2, true) => mem!(self.ops, base, src; movsx Rq(dst), WORD [@]),
                (4, true) => mem!(self.ops, base, src; movsxd Rq(dst), DWORD [@]),
                _ => {
                    return err(format!(
                        "argument {}: sign extension of a {size}-byte piece to {bits} bits",
                        i + 1
                    ))
                }
            }
            return Ok(());
        }
        // Zero extension (or none): the loads below leave the upper bits zero.
        if size == 8 {
            mem!(self.ops, base, src; mov Rq(dst), QWORD [@]);
            return Ok(());
        }
        if size == 0 || size > 8 {
            return err(format!(
                "argument {}: {size}-byte piece in a general register",
                i + 1
            ));
        }
        for (k, (off, c)) in chunks(size, 4).into_iter().enumerate() {
            let d = src
                .checked_add(off as i32)
                .ok_or_else(|| EmitError("displacement overflow".into()))?;
            let r = if k == 0 { dst } else { tmp };
            match c {
                4 => mem!(self.ops, base, d; mov Rd(r), DWORD [@]),
                2 => mem!(self.ops, base, d; movzx Rd(r), WORD [@]),
                _ => mem!(self.ops, base, d; movzx Rd(r), BYTE [@]),
            }
            if k > 0 {
                let sh = (off * 8) as i8;
                dynasm!(self.ops
                    ; .arch x64
                    ; shl Rq(tmp), sh
                    ; or Rq(dst), Rq(tmp)
                );
            }
        }
        Ok(())
    }

    /// Stores the low `size` (1–8) bytes of GPR `src` at `[base + dst]`,
    /// writing exactly those bytes. Clobbers `src`.
    fn store_gpr(&mut self, src: u8, base: u8, dst: i32, size: u32) -> Result<(), EmitError> {
        let parts = chunks(size, 8);
        let last = parts.len().saturating_sub(1);
        for (k, (off, c)) in parts.into_iter().enumerate() {
            let d = dst
                .checked_add(off as i32)
                .ok_or_else(|| EmitError("displacement overflow".into()))?;
            match c {
                8 => mem!(self.ops, base, d; mov QWORD [@], Rq(src)),
                4 => mem!(self.ops, base, d; mov DWORD [@], Rd(src)),
                2 => mem!(self.ops, base, d; mov WORD [@], Rw(src)),
                _ => mem!(self.ops, base, d; mov BYTE [@], Rb(src)),
            }
            if k < last {
                let sh = (c * 8) as i8;
                dynasm!(self.ops ; .arch x64 ; shr Rq(src), sh);
            }
        }
        Ok(())
    }

    /// Copies `size` bytes from `[sbase + sd]` to `[dbase + dd]`, reading
    /// and writing exactly those bytes. Small copies use rax; large ones
    /// `rep movsb` (rsi, rdi, rcx; the direction flag is clear at entry by
    /// SysV §3.2.1 and Win64's convention).
    fn copy(&mut self, sbase: u8, sd: i32, dbase: u8, dd: i32, size: u32) -> Result<(), EmitError> {
        if size > UNROLL_LIMIT {
            let n = size as i32;
            dynasm!(self.ops
                ; .arch x64
                ; lea rsi, [Rq(sbase) + sd]
                ; lea rdi, [Rq(dbase) + dd]
                ; mov ecx, n
                ; rep movsb
            );
            return Ok(());
        }
        for (off, c) in chunks(size, 8) {
            let s = sd
                .checked_add(off as i32)
                .ok_or_else(|| EmitError("displacement overflow".into()))?;
            let d = dd
                .checked_add(off as i32)
                .ok_or_else(|| EmitError("displacement overflow".into()))?;
            match c {
                8 => dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, QWORD [Rq(sbase) + s]
                    ; mov QWORD [Rq(dbase) + d], rax
                ),
                4 => dynasm!(self.ops
                    ; .arch x64
                    ; mov eax, DWORD [Rq(sbase) + s]
                    ; mov DWORD [Rq(dbase) + d], eax
                ),
                2 => dynasm!(self.ops
                    ; .arch x64
                    ; movzx eax, WORD [Rq(sbase) + s]
                    ; mov WORD [Rq(dbase) + d], ax
                ),
                _ => dynasm!(self.ops
                    ; .arch x64
                    ; movzx eax, BYTE [Rq(sbase) + s]
                    ; mov BYTE [Rq(dbase) + d], al
                ),
            }
        }
        Ok(())
    }

    /// Stores the result registers into `ret`.
    fn result_phase(&mut self) -> Result<(), EmitError> {
        let RetPlan::Direct(parts) = &self.plan.ret else {
            // Void, or Indirect: the callee wrote the caller's buffer itself.
            return Ok(());
        };
        let buf = self.sig.ret_buffer_size() as u64;
        let ret = self.ret_reg;
        let mut x87: Vec<&Part> = Vec::new();
        for p in parts {
            let d = disp(0, p.offset)?;
            match p.loc {
                Loc::Reg(Reg::Gpr(n)) if RET_GPRS.contains(&n) => {
                    if p.size > 8 {
                        return err(format!("result: {}-byte piece in a GPR", p.size));
                    }
                    // The buffer is the result's size rounded up to 8, so a
                    // whole-register store at an 8-aligned offset fits.
                    if p.offset % 8 == 0 && p.offset as u64 + 8 <= buf {
                        mem!(self.ops, ret, d; mov QWORD [@], Rq(n));
                    } else {
                        self.store_gpr(n, ret, d, p.size)?;
                    }
                }
                Loc::Reg(Reg::Fpr(x)) if x < 16 => match p.size {
                    4 => mem!(self.ops, ret, d; movss DWORD [@], Rx(x)),
                    8 => mem!(self.ops, ret, d; movsd QWORD [@], Rx(x)),
                    // Win64 returns `__int128` in xmm0 (gcc, clang); `__m128`.
                    16 => mem!(self.ops, ret, d; movups OWORD [@], Rx(x)),
                    1..=7 => {
                        dynasm!(self.ops ; .arch x64 ; movq Rq(R11), Rx(x));
                        self.store_gpr(R11, ret, d, p.size)?;
                    }
                    n => return err(format!("result: {n}-byte piece in an XMM register")),
                },
                Loc::Reg(Reg::X87(_)) if p.class == PartClass::X87 => x87.push(p),
                loc => return err(format!("result: cannot store a piece from {loc:?}")),
            }
        }
        // SysV §3.2.3: x87 results come back in st0 (and st1 for the
        // imaginary part of _Complex long double). Each `fstp` pops, so
        // storing st0 first makes the old st1 the new st0.
        x87.sort_by_key(|p| match p.loc {
            Loc::Reg(Reg::X87(n)) => n,
            _ => u8::MAX,
        });
        for (k, p) in x87.into_iter().enumerate() {
            if p.loc != Loc::Reg(Reg::X87(k as u8)) || p.size < 10 {
                return err(format!("result: unsupported x87 piece {:?}", p.loc));
            }
            let d = disp(0, p.offset)?;
            mem!(self.ops, ret, d; fstp TWORD [@]);
        }
        Ok(())
    }
}

/// Whether an argument has a piece for rsi.
fn loads_rsi(arg: &ArgPlan) -> bool {
    match arg {
        ArgPlan::Direct(parts) => parts.iter().any(|p| p.loc == Loc::Reg(Reg::Gpr(RSI))),
        ArgPlan::ByRef { ptr, .. } => *ptr == Loc::Reg(Reg::Gpr(RSI)),
        ArgPlan::Ignored => false,
    }
}

/// The GPR number of an argument register, or an error for anything a
/// SysV or Win64 plan cannot mean (the trampoline keeps its own state in
/// rbx, r12, r13 and uses rax, r10, r11 as scratch).
fn arg_gpr(r: Reg, who: &str) -> Result<u8, EmitError> {
    match r {
        Reg::Gpr(n) if ARG_GPRS.contains(&n) => Ok(n),
        _ => err(format!("{who}: {r:?} is not an x86-64 argument register")),
    }
}
