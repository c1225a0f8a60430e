//! The x86-64 reverse-closure emitter, for SysV and Win64 plans alike, and
//! the bytes of the closure stubs.
//!
//! A closure is a C function pointer with a signature's ABI that calls
//! `handler(ctx, args, ret)` (the *host* convention, SysV AMD64 on Linux
//! x86-64). It has two pieces of code:
//!
//! - a **stub** per closure ([`stub_bytes`]): `lea r10, [rip + d]` (the
//!   address of the closure's data slot, a fixed distance `d` past the
//!   stub), then `jmp qword [r10]` (the slot's first word: the body). Only
//!   r10 is touched: it is a scratch register in both conventions and never
//!   carries an argument (SysV psABI §3.2.3 fig. 3.4 "temporary register,
//!   used for passing a function's static chain pointer"; Microsoft x64
//!   "Register volatility": r10 is volatile and not a parameter register).
//! - a **body** per signature ([`emit_closure_body`]), entered from the stub
//!   with the caller's registers and stack intact and r10 = slot address.
//!
//! The slot layout is fixed (`#[repr(C)]`, 32 bytes): see the `SLOT_*`
//! offsets below.
//!
//! Body shape (every location comes from the plan, read in reverse):
//!
//! 1. `push rbp; mov rbp, rsp; sub rsp, F`: the caller left rsp ≡ 8 (mod 16)
//!    at entry (SysV §3.2.2: "the value (%rsp + 8) is always a multiple of
//!    16 when control is transferred to the function entry point"; Microsoft
//!    x64 "Stack allocation": likewise), so after the push and a frame of a
//!    multiple of 16 bytes, rsp is 16-aligned at the handler call. The
//!    caller's stack arguments are at `[rbp + 16 + off]` (saved rbp, return
//!    address, then the plan's offset; Win64 offsets already include the
//!    32-byte shadow space).
//! 2. Win64 only: save rdi, rsi and xmm6–xmm15, which are callee-saved on
//!    Win64 (Microsoft x64 "Callee/Caller saved registers") but may be
//!    clobbered by the SysV handler (SysV §3.2.1 fig. 3.4: only rbx, rbp,
//!    rsp, r12–r15 are preserved).
//! 3. Spill: every register piece is stored, with exactly its bytes, at its
//!    offset in a local buffer for its argument (a value split across GPR and
//!    XMM is reassembled there); the hidden result address is saved; a
//!    by-reference argument's pointer becomes `args[i]` itself. Scratch: rax,
//!    r11 (no argument register is read after it has been overwritten).
//! 4. Stack pieces: a value that lies whole and contiguous in the caller's
//!    frame is pointed at directly; otherwise its stack pieces are copied into
//!    its local buffer.
//! 5. `args[i]` pointers are written, then `handler(ctx, args, ret)` is
//!    called through the slot (rdi = ctx, rsi = args, rdx = ret, and rcx =
//!    the slot's spare word, a hidden fourth argument that three-argument
//!    handlers ignore). `ret` is a local buffer, or the hidden result
//!    pointer for an indirect result.
//! 6. The result is loaded from `ret` into the plan's registers (x87 with
//!    `fld tword`), or the hidden pointer is returned in the plan's register.
//! 7. Win64: restore rdi, rsi, xmm6–xmm15. `leave; ret`.

// dynasm expands `Rq(n)` / `Rx(x)` into `n.into()`, a same-type conversion.
#![allow(clippy::useless_conversion)]

use dynasmrt::x64::X64Relocation;
use dynasmrt::{dynasm, DynasmApi, DynasmLabelApi, VecAssembler};

use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
use crate::arch::chunks;
use crate::arch::EmitError;
use crate::types::{Abi, Isa, Signature};
use crate::unwind::{reg::x86_64 as dw, CfaRule, UnwindRow};

use crate::arch::slot::{self, SIZE as STUB_SIZE};

// The slot offsets as x86-64 displacements.
const SLOT_HANDLER: i32 = slot::HANDLER as i32;
const SLOT_CTX: i32 = slot::CTX as i32;
const SLOT_AUX: i32 = slot::AUX as i32;

/// Length of `lea r10, [rip + disp32]` (REX.W+R, 8D, ModRM, disp32).
const LEA_LEN: i64 = 7;

/// The bytes of one stub that finds its data slot `slot_distance` bytes
/// past the stub's first byte: `lea r10, [rip + slot_distance - 7]`,
/// `jmp qword [r10]`, then `int3` padding.
///
/// Every stub of a stub page run is identical (the distance is the same for
/// all of them), which is what lets a run of stubs be written once and
/// never touched again. Errors if the distance does not fit a `disp32`.
pub fn stub_bytes(slot_distance: i64) -> Result<[u8; STUB_SIZE], EmitError> {
    let d = i32::try_from(slot_distance - LEA_LEN).map_err(|_| {
        EmitError(format!(
            "slot distance {slot_distance} does not fit a disp32"
        ))
    })?;
    let mut out = [0xCC_u8; STUB_SIZE];
    // lea r10, [rip + d]: REX 0x4C (W=1, R=1: r10), opcode 8D,
    // ModRM 0x15 (mod 00, reg 010 = r10 & 7, rm 101 = RIP-relative).
    out[..3].copy_from_slice(&[0x4C, 0x8D, 0x15]);
    out[3..7].copy_from_slice(&d.to_le_bytes());
    // jmp qword [r10]: REX 0x41 (B=1: r10), opcode FF /4, ModRM 0x22
    // (mod 00, reg 100 = /4, rm 010 = r10 & 7).
    out[7..10].copy_from_slice(&[0x41, 0xFF, 0x22]);
    Ok(out)
}

const RAX: u8 = 0;
const RCX: u8 = 1;
const RDX: u8 = 2;
const RSI: u8 = 6;
const RDI: u8 = 7;
const R8: u8 = 8;
const R9: u8 = 9;
const R11: u8 = 11;

/// Argument registers of SysV (§3.2.3: rdi, rsi, rdx, rcx, r8, r9) and
/// Win64 (rcx, rdx, r8, r9): the only GPRs a plan may take an argument from.
const ARG_GPRS: [u8; 6] = [RDI, RSI, RDX, RCX, R8, R9];
/// Integer result registers of both conventions (rax, rdx).
const RET_GPRS: [u8; 2] = [RAX, RDX];

/// Copies larger than this use `rep movsb`.
const UNROLL_LIMIT: u32 = 128;
const PAGE: u32 = 4096;
/// Largest closure frame the emitter accepts (the frame holds the argument
/// pointers and the register-passed values, so it is small in practice).
const MAX_FRAME: u64 = 1 << 24;

type Asm = VecAssembler<X64Relocation>;

fn err<T>(msg: impl Into<String>) -> Result<T, EmitError> {
    Err(EmitError(msg.into()))
}

/// `a + b` as an x86 32-bit displacement.
fn disp(a: i64, b: i64) -> Result<i32, EmitError> {
    i32::try_from(a + b)
        .map_err(|_| EmitError(format!("offset {} does not fit a displacement", a + b)))
}

fn round16(x: u64) -> u64 {
    x.div_ceil(16) * 16
}

/// Where `args[i]` points.
#[derive(Clone, Copy, Debug)]
enum ArgHome {
    /// At `[rsp + off]`, a local buffer.
    Local(i64),
    /// In the caller's frame, at `[rbp + 16 + off]` (entry rsp + 8 + off).
    Caller(u32),
    /// The pointer itself arrives in the plan's location (by-reference
    /// argument); written while spilling.
    Pointer,
    /// A zero-sized argument: any valid address.
    Nothing,
}

/// The frame, as offsets from rsp after the prologue.
struct Frame {
    size: u64,
    argv: i64,
    homes: Vec<ArgHome>,
    ret_buf: i64,
    ret_ptr: i64,
    win64_save: i64,
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
/// (for unwind tables, `crate::unwind`). The body is entered by a jump
/// from the stub, with the caller's return address on top of the stack:
/// at entry the CFA is rsp + 8, as for any function.
pub fn emit_closure_body_with_unwind(
    sig: &Signature,
    plan: &CallPlan,
) -> Result<(Vec<u8>, Vec<UnwindRow>), EmitError> {
    if plan.abi.isa() != Isa::X86_64 || sig.abi != plan.abi {
        return err(format!(
            "the x86-64 closure emitter cannot emit a {} plan for a {} signature",
            plan.abi, sig.abi
        ));
    }
    plan.validate(sig).map_err(|e| EmitError(e.to_string()))?;
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
/// `entry rsp + 8 + base`, returned here.
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
    let argv = 0i64;
    let mut size = round16(n * 8);
    let mut homes = Vec::with_capacity(plan.args.len());
    for (a, ty) in plan.args.iter().zip(&sig.args) {
        let home = match a {
            ArgPlan::Ignored => ArgHome::Nothing,
            ArgPlan::ByRef { .. } => ArgHome::Pointer,
            ArgPlan::Direct(parts) => match contiguous_on_stack(parts) {
                Some(base) => ArgHome::Caller(base),
                None => {
                    let at = size as i64;
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
    let ret_buf = size as i64;
    size += round16(sig.ret_buffer_size() as u64).max(16);
    let ret_ptr = size as i64;
    size += 16;
    let win64_save = size as i64;
    if plan.abi == Abi::Win64 {
        // rdi, rsi, then xmm6–xmm15.
        size += 16 + 10 * 16;
    }
    if size > MAX_FRAME {
        return err(format!("a closure frame of more than {MAX_FRAME} bytes"));
    }
    Ok(Frame {
        size,
        argv,
        homes,
        ret_buf,
        ret_ptr,
        win64_save,
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
    /// Records that `rule` holds from the current offset on.
    fn row(&mut self, rule: CfaRule) {
        let at = self.ops.offset().0 as u32;
        self.rows.push(UnwindRow { at, rule });
    }

    fn emit(&mut self) -> Result<(), EmitError> {
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
        self.alloc_frame(self.frame.size as u32);
        let win64 = self.plan.abi == Abi::Win64;
        if win64 {
            self.win64_save_restore(true)?;
            // The Win64 caller's rdi and rsi are in the frame, `win64_save`
            // above rsp = rbp − size = CFA − 16 − size. (xmm6–xmm15 are not
            // described: libgcc has no columns for them on x86-64 and LLVM's
            // libunwind refuses vector registers outside Windows.)
            let base = self.frame.win64_save - 16 - self.frame.size as i64;
            for (reg, off) in [(dw::RDI, base), (dw::RSI, base + 8)] {
                let offset = i32::try_from(off)
                    .map_err(|_| EmitError(format!("save offset {off} out of range")))?;
                self.row(CfaRule::Saved { reg, offset });
            }
        }
        self.spill_registers()?;
        self.stack_pieces()?;
        self.fill_argv()?;

        // handler(ctx, args, ret), host convention (SysV §3.2.3: rdi, rsi,
        // rdx). r10 still holds the slot address: nothing above wrote it.
        let argv = disp(self.frame.argv, 0)?;
        dynasm!(self.ops
            ; .arch x64
            ; mov rdi, QWORD [r10 + SLOT_CTX]
            ; lea rsi, [rsp + argv]
        );
        match self.plan.ret {
            RetPlan::Indirect { .. } => {
                let d = disp(self.frame.ret_ptr, 0)?;
                dynasm!(self.ops ; .arch x64 ; mov rdx, QWORD [rsp + d]);
            }
            _ => {
                let d = disp(self.frame.ret_buf, 0)?;
                dynasm!(self.ops ; .arch x64 ; lea rdx, [rsp + d]);
            }
        }
        // The slot's spare word rides along as a fourth argument (rcx,
        // SysV §3.2.3), ignored by three-argument handlers: jitffi's own
        // Rust-closure handler takes its argument count from it.
        dynasm!(self.ops
            ; .arch x64
            ; mov rcx, QWORD [r10 + SLOT_AUX]
            ; call QWORD [r10 + SLOT_HANDLER]
        );

        self.load_result()?;
        if win64 {
            self.win64_save_restore(false)?;
        }
        dynasm!(self.ops ; .arch x64 ; leave);
        self.row(CfaRule::Cfa {
            reg: dw::RSP,
            offset: 8,
        });
        self.row(CfaRule::Restored(dw::RBP));
        dynasm!(self.ops ; .arch x64 ; ret);
        Ok(())
    }

    /// `sub rsp, frame`, touching every page on the way down when the frame
    /// spans a page or more (so a guard page is never skipped). Uses r11.
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

    /// Microsoft x64 "Callee/Caller saved registers": rdi, rsi and
    /// xmm6–xmm15 are nonvolatile on Win64 but volatile under SysV (the
    /// handler's convention), so a Win64 closure saves them around the call.
    fn win64_save_restore(&mut self, save: bool) -> Result<(), EmitError> {
        let base = self.frame.win64_save;
        let (d_di, d_si) = (disp(base, 0)?, disp(base, 8)?);
        if save {
            dynasm!(self.ops
                ; .arch x64
                ; mov QWORD [rsp + d_di], rdi
                ; mov QWORD [rsp + d_si], rsi
            );
        } else {
            dynasm!(self.ops
                ; .arch x64
                ; mov rdi, QWORD [rsp + d_di]
                ; mov rsi, QWORD [rsp + d_si]
            );
        }
        for k in 0..10u8 {
            let x = 6 + k;
            let d = disp(base, 16 + 16 * k as i64)?;
            // Unaligned moves: correct even if a caller misaligned the stack.
            if save {
                dynasm!(self.ops ; .arch x64 ; movups [rsp + d], Rx(x));
            } else {
                dynasm!(self.ops ; .arch x64 ; movups Rx(x), [rsp + d]);
            }
        }
        Ok(())
    }

    /// Stores every register piece into its argument's local buffer, the
    /// hidden result address into the frame, and by-reference pointers that
    /// arrive in registers into `args`. Scratch: rax, r11 only.
    fn spill_registers(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        match plan.ret {
            RetPlan::Indirect { ptr_in, .. } => {
                let d = disp(self.frame.ret_ptr, 0)?;
                match ptr_in {
                    Loc::Reg(r) => {
                        let n = arg_gpr(r, "the result address")?;
                        dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + d], Rq(n));
                    }
                    Loc::Stack(off) => {
                        let s = disp(16, off as i64)?;
                        dynasm!(self.ops
                            ; .arch x64
                            ; mov rax, QWORD [rbp + s]
                            ; mov QWORD [rsp + d], rax
                        );
                    }
                }
            }
            RetPlan::Void | RetPlan::Direct(_) => {}
        }
        for (i, arg) in plan.args.iter().enumerate() {
            match (arg, self.frame.homes[i]) {
                (ArgPlan::Direct(parts), ArgHome::Local(buf)) => {
                    for (k, p) in parts.iter().enumerate() {
                        let Loc::Reg(r) = p.loc else { continue };
                        // Win64 variadic floats come in both an XMM and a
                        // GPR (Microsoft x64 "Varargs"): the first piece
                        // that covers the bytes is used, the copy ignored.
                        if covered_before(parts, k) {
                            continue;
                        }
                        let d = disp(buf, p.offset as i64)?;
                        self.store_reg(r, p, d, i)?;
                    }
                }
                (
                    ArgPlan::ByRef {
                        ptr: Loc::Reg(r), ..
                    },
                    _,
                ) => {
                    // The caller's copy is the argument: args[i] = pointer.
                    let n = arg_gpr(*r, &format!("argument {}'s address", i + 1))?;
                    let d = disp(self.frame.argv, 8 * i as i64)?;
                    dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + d], Rq(n));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Stores one register piece of argument `i` at `[rsp + d]`, exactly its
    /// bytes. May clobber the piece's own register, rax and r11.
    fn store_reg(&mut self, r: Reg, p: &Part, d: i32, i: usize) -> Result<(), EmitError> {
        match (r, p.class) {
            (Reg::Gpr(_), PartClass::Int | PartClass::Float | PartClass::Memory) => {
                let n = arg_gpr(r, &format!("argument {}", i + 1))?;
                if p.size > 8 {
                    return err(format!(
                        "argument {}: {}-byte piece in a GPR",
                        i + 1,
                        p.size
                    ));
                }
                self.store_gpr(n, d, p.size)
            }
            (Reg::Fpr(x), PartClass::Float | PartClass::Int | PartClass::Memory) if x < 16 => {
                match p.size {
                    4 => dynasm!(self.ops ; .arch x64 ; movss DWORD [rsp + d], Rx(x)),
                    8 => dynasm!(self.ops ; .arch x64 ; movsd QWORD [rsp + d], Rx(x)),
                    16 => dynasm!(self.ops ; .arch x64 ; movups [rsp + d], Rx(x)),
                    1..=7 => {
                        dynasm!(self.ops ; .arch x64 ; movq Rq(R11), Rx(x));
                        self.store_gpr(R11, d, p.size)?;
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
                "argument {}: cannot take a {:?} piece from {:?}",
                i + 1,
                p.class,
                r
            )),
        }
    }

    /// Stores the low `size` (1–8) bytes of GPR `src` at `[rsp + d]`,
    /// writing exactly those bytes. Clobbers `src`.
    fn store_gpr(&mut self, src: u8, d: i32, size: u32) -> Result<(), EmitError> {
        let parts = chunks(size, 8);
        let last = parts.len().saturating_sub(1);
        for (k, (off, c)) in parts.into_iter().enumerate() {
            let dd = disp(d as i64, off as i64)?;
            match c {
                8 => dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + dd], Rq(src)),
                4 => dynasm!(self.ops ; .arch x64 ; mov DWORD [rsp + dd], Rd(src)),
                2 => dynasm!(self.ops ; .arch x64 ; mov WORD [rsp + dd], Rw(src)),
                _ => dynasm!(self.ops ; .arch x64 ; mov BYTE [rsp + dd], Rb(src)),
            }
            if k < last {
                let sh = (c * 8) as i8;
                dynasm!(self.ops ; .arch x64 ; shr Rq(src), sh);
            }
        }
        Ok(())
    }

    /// Copies the stack pieces of values that have a local buffer, and
    /// writes `args[i]` for by-reference pointers passed on the stack. Runs
    /// after every register argument has been spilled, so it may use rsi,
    /// rdi and rcx (`rep movsb`).
    fn stack_pieces(&mut self) -> Result<(), EmitError> {
        let plan = self.plan;
        for (i, arg) in plan.args.iter().enumerate() {
            match (arg, self.frame.homes[i]) {
                (ArgPlan::Direct(parts), ArgHome::Local(buf)) => {
                    for (k, p) in parts.iter().enumerate() {
                        let Loc::Stack(off) = p.loc else { continue };
                        if covered_before(parts, k) {
                            continue;
                        }
                        if p.class == PartClass::X87 {
                            return err(format!("argument {}: x87 class on the stack", i + 1));
                        }
                        let s = disp(16, off as i64)?;
                        let d = disp(buf, p.offset as i64)?;
                        self.copy_in(s, d, p.size)?;
                    }
                }
                (
                    ArgPlan::ByRef {
                        ptr: Loc::Stack(off),
                        ..
                    },
                    _,
                ) => {
                    let s = disp(16, *off as i64)?;
                    let d = disp(self.frame.argv, 8 * i as i64)?;
                    dynasm!(self.ops
                        ; .arch x64
                        ; mov rax, QWORD [rbp + s]
                        ; mov QWORD [rsp + d], rax
                    );
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Copies `size` bytes from `[rbp + s]` to `[rsp + d]`, exactly those
    /// bytes.
    fn copy_in(&mut self, s: i32, d: i32, size: u32) -> Result<(), EmitError> {
        if size > UNROLL_LIMIT {
            let n = size as i32;
            dynasm!(self.ops
                ; .arch x64
                ; lea rsi, [rbp + s]
                ; lea rdi, [rsp + d]
                ; mov ecx, n
                ; rep movsb
            );
            return Ok(());
        }
        for (off, c) in chunks(size, 8) {
            let src = disp(s as i64, off as i64)?;
            let dd = disp(d as i64, off as i64)?;
            match c {
                8 => dynasm!(self.ops
                    ; .arch x64
                    ; mov rax, QWORD [rbp + src]
                    ; mov QWORD [rsp + dd], rax
                ),
                4 => dynasm!(self.ops
                    ; .arch x64
                    ; mov eax, DWORD [rbp + src]
                    ; mov DWORD [rsp + dd], eax
                ),
                2 => dynasm!(self.ops
                    ; .arch x64
                    ; movzx eax, WORD [rbp + src]
                    ; mov WORD [rsp + dd], ax
                ),
                _ => dynasm!(self.ops
                    ; .arch x64
                    ; movzx eax, BYTE [rbp + src]
                    ; mov BYTE [rsp + dd], al
                ),
            }
        }
        Ok(())
    }

    /// Writes `args[i]` for every argument not written yet.
    fn fill_argv(&mut self) -> Result<(), EmitError> {
        for i in 0..self.plan.args.len() {
            let d = disp(self.frame.argv, 8 * i as i64)?;
            match self.frame.homes[i] {
                ArgHome::Local(buf) => {
                    let b = disp(buf, 0)?;
                    dynasm!(self.ops
                        ; .arch x64
                        ; lea rax, [rsp + b]
                        ; mov QWORD [rsp + d], rax
                    );
                }
                ArgHome::Caller(off) => {
                    let s = disp(16, off as i64)?;
                    dynasm!(self.ops
                        ; .arch x64
                        ; lea rax, [rbp + s]
                        ; mov QWORD [rsp + d], rax
                    );
                }
                ArgHome::Nothing => {
                    // A zero-sized value: point at the frame (valid, unread).
                    dynasm!(self.ops ; .arch x64 ; mov QWORD [rsp + d], rsp);
                }
                ArgHome::Pointer => {} // written while spilling
            }
        }
        Ok(())
    }

    /// Loads the handler's result into the plan's registers, or returns the
    /// hidden result address.
    fn load_result(&mut self) -> Result<(), EmitError> {
        let parts = match &self.plan.ret {
            RetPlan::Void => return Ok(()),
            RetPlan::Indirect { ptr_out, .. } => {
                // SysV §3.2.3 "Returning of Values" (MEMORY): "on return %rax
                // will contain the address that has been passed in by the
                // caller in %rdi"; Microsoft x64 "Return values": likewise
                // in RAX.
                if let Some(r) = ptr_out {
                    let n = match r {
                        Reg::Gpr(n) if RET_GPRS.contains(n) => *n,
                        _ => return err(format!("result address returned in {r:?}")),
                    };
                    let d = disp(self.frame.ret_ptr, 0)?;
                    dynasm!(self.ops ; .arch x64 ; mov Rq(n), QWORD [rsp + d]);
                }
                return Ok(());
            }
            RetPlan::Direct(parts) => parts.clone(),
        };
        let buf = self.frame.ret_buf;
        let mut x87: Vec<&Part> = Vec::new();
        for p in &parts {
            let d = disp(buf, p.offset as i64)?;
            match p.loc {
                Loc::Reg(Reg::Gpr(n)) if RET_GPRS.contains(&n) => {
                    if p.size > 8 {
                        return err(format!("result: {}-byte piece in a GPR", p.size));
                    }
                    self.load_gpr(n, d, p.size, p.ext)?;
                }
                Loc::Reg(Reg::Fpr(x)) if x < 16 => match p.size {
                    4 => dynasm!(self.ops ; .arch x64 ; movss Rx(x), DWORD [rsp + d]),
                    8 => dynasm!(self.ops ; .arch x64 ; movsd Rx(x), QWORD [rsp + d]),
                    16 => dynasm!(self.ops ; .arch x64 ; movups Rx(x), [rsp + d]),
                    1..=7 => {
                        // The result registers rax/rdx may already hold a
                        // piece: assemble in r11 with rcx as the spare.
                        self.load_gpr_with(R11, RCX, d, p.size, Ext::None)?;
                        dynasm!(self.ops ; .arch x64 ; movq Rx(x), Rq(R11));
                    }
                    n => return err(format!("result: {n}-byte piece in an XMM register")),
                },
                Loc::Reg(Reg::X87(_)) if p.class == PartClass::X87 => x87.push(p),
                loc => return err(format!("result: cannot load a piece into {loc:?}")),
            }
        }
        // SysV §3.2.3: x87 results are returned in st0 (and st1 for the
        // imaginary part of _Complex long double). `fld` pushes, so st1's
        // value is loaded first.
        x87.sort_by_key(|p| match p.loc {
            Loc::Reg(Reg::X87(n)) => n,
            _ => u8::MAX,
        });
        for (k, p) in x87.iter().enumerate() {
            if p.loc != Loc::Reg(Reg::X87(k as u8)) || p.size < 10 {
                return err(format!("result: unsupported x87 piece {:?}", p.loc));
            }
        }
        for p in x87.iter().rev() {
            let d = disp(buf, p.offset as i64)?;
            dynasm!(self.ops ; .arch x64 ; fld TWORD [rsp + d]);
        }
        Ok(())
    }

    /// Loads exactly `size` bytes at `[rsp + d]` into result GPR `dst` with
    /// the part's extension (r11 is the spare).
    fn load_gpr(&mut self, dst: u8, d: i32, size: u32, ext: Ext) -> Result<(), EmitError> {
        self.load_gpr_with(dst, R11, d, size, ext)
    }

    /// Loads exactly `size` (1–8) bytes at `[rsp + d]` into `dst`, applying
    /// `ext`; `tmp` is scratch. Bits above the piece are zero unless sign
    /// extension is asked for.
    fn load_gpr_with(
        &mut self,
        dst: u8,
        tmp: u8,
        d: i32,
        size: u32,
        ext: Ext,
    ) -> Result<(), EmitError> {
        if let Ext::Sign(bits) = ext {
            if u32::from(bits) > size * 8 {
                match (size, bits > 32) {
                    (1, false) => dynasm!(self.ops ; .arch x64 ; movsx Rd(dst), BYTE [rsp + d]),
                    (1, true) => dynasm!(self.ops ; .arch x64 ; movsx Rq(dst), BYTE [rsp + d]),
                    (2, false) => dynasm!(self.ops ; .arch x64 ; movsx Rd(dst), WORD [rsp + d]),
                    (2, true) => dynasm!(self.ops ; .arch x64 ; movsx Rq(dst), WORD [rsp + d]),
                    (4, true) => dynasm!(self.ops ; .arch x64 ; movsxd Rq(dst), DWORD [rsp + d]),
                    _ => {
                        return err(format!(
                            "result: sign extension of a {size}-byte piece to {bits} bits"
                        ))
                    }
                }
                return Ok(());
            }
        }
        if size == 8 {
            dynasm!(self.ops ; .arch x64 ; mov Rq(dst), QWORD [rsp + d]);
            return Ok(());
        }
        if size == 0 || size > 8 {
            return err(format!("result: {size}-byte piece in a general register"));
        }
        // Zero extension (or none): these loads leave the upper bits zero.
        for (k, (off, c)) in chunks(size, 8).into_iter().enumerate() {
            let dd = disp(d as i64, off as i64)?;
            let r = if k == 0 { dst } else { tmp };
            match c {
                4 => dynasm!(self.ops ; .arch x64 ; mov Rd(r), DWORD [rsp + dd]),
                2 => dynasm!(self.ops ; .arch x64 ; movzx Rd(r), WORD [rsp + dd]),
                _ => dynasm!(self.ops ; .arch x64 ; movzx Rd(r), BYTE [rsp + dd]),
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
}

/// Whether every byte of `parts[k]` is already covered by an earlier piece.
fn covered_before(parts: &[Part], k: usize) -> bool {
    let p = parts[k];
    (p.offset..p.offset + p.size).all(|b| {
        parts[..k]
            .iter()
            .any(|q| q.offset <= b && b < q.offset + q.size)
    })
}

/// The GPR number of an argument register, or an error for anything a SysV
/// or Win64 plan cannot mean.
fn arg_gpr(r: Reg, who: &str) -> Result<u8, EmitError> {
    match r {
        Reg::Gpr(n) if ARG_GPRS.contains(&n) => Ok(n),
        _ => err(format!("{who}: {r:?} is not an x86-64 argument register")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iced_x86::{Decoder, DecoderOptions, Formatter, IntelFormatter};

    fn disasm(bytes: &[u8]) -> Vec<String> {
        let mut d = Decoder::with_ip(64, bytes, 0, DecoderOptions::NONE);
        let mut f = IntelFormatter::new();
        let mut out = Vec::new();
        while d.can_decode() {
            let ins = d.decode();
            let mut s = String::new();
            f.format(&ins, &mut s);
            out.push(s);
        }
        out
    }

    use crate::abi::{ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan};
    use crate::types::{layout_record, FieldDecl, RecordKind, Scalar, Type};
    use std::sync::Arc;

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

    fn xmm(n: u8, offset: u32, size: u32) -> Part {
        Part {
            offset,
            size,
            loc: Loc::Reg(Reg::Fpr(n)),
            class: PartClass::Float,
            ext: Ext::None,
        }
    }

    /// DESIGN tricky case 4 on SysV, `v3 f(v3)`: xmm0 (bytes 0..8) and
    /// xmm1 (8..12) both ways. The plan is written by hand here so the test
    /// does not depend on the planner.
    #[test]
    fn golden_body_for_three_floats() {
        let sig = Signature::new(Abi::SysV64, v3(), vec![v3()]);
        let parts = vec![xmm(0, 0, 8), xmm(1, 8, 4)];
        let plan = CallPlan {
            abi: Abi::SysV64,
            args: vec![ArgPlan::Direct(parts.clone())],
            ret: RetPlan::Direct(parts),
            stack_size: 0,
            shadow_space: 0,
            copy_area_size: 0,
            al: None,
        };
        let text = disasm(&emit_closure_body(&sig, &plan).unwrap());
        let want = [
            "push rbp",
            "mov rbp,rsp",
            "sub rsp,40h",
            "movsd [rsp+10h],xmm0",
            "movss [rsp+18h],xmm1",
            "lea rax,[rsp+10h]",
            "mov [rsp],rax",
            "mov rdi,[r10+10h]",
            "lea rsi,[rsp]",
            "lea rdx,[rsp+20h]",
            "mov rcx,[r10+18h]",
            "call qword ptr [r10+8]",
            "movsd xmm0,[rsp+20h]",
            "movss xmm1,[rsp+28h]",
            "leave",
            "ret",
        ];
        assert_eq!(text, want);
    }

    #[test]
    fn refuses_what_it_cannot_emit() {
        let int = Type::Scalar(Scalar::I32);
        let sig = Signature::new(Abi::SysV64, int.clone(), vec![int.clone()]);
        let bad = |loc: Loc, class: PartClass| CallPlan {
            abi: Abi::SysV64,
            args: vec![ArgPlan::Direct(vec![Part {
                offset: 0,
                size: 4,
                loc,
                class,
                ext: Ext::None,
            }])],
            ret: RetPlan::Direct(vec![Part {
                offset: 0,
                size: 4,
                loc: Loc::Reg(Reg::Gpr(0)),
                class: PartClass::Int,
                ext: Ext::None,
            }]),
            stack_size: 0,
            shadow_space: 0,
            copy_area_size: 0,
            al: None,
        };
        // rbx is not an argument register; an x87 register is not an
        // argument location.
        assert!(emit_closure_body(&sig, &bad(Loc::Reg(Reg::Gpr(3)), PartClass::Int)).is_err());
        assert!(emit_closure_body(&sig, &bad(Loc::Reg(Reg::X87(0)), PartClass::X87)).is_err());
        // A plan for another ISA.
        let mut p = bad(Loc::Reg(Reg::Gpr(7)), PartClass::Int);
        assert!(emit_closure_body(&sig, &p).is_ok());
        p.abi = Abi::Aapcs64;
        assert!(emit_closure_body(&sig, &p).is_err());
    }

    #[test]
    fn stub_decodes_as_lea_and_jmp() {
        let b = stub_bytes(4096).unwrap();
        let text = disasm(&b);
        // At ip 0, rip after the 7-byte lea is 7: 7 + 4089 = 4096.
        assert_eq!(text[0], "lea r10,[1000h]");
        assert_eq!(text[1], "jmp qword ptr [r10]");
        assert!(text[2..].iter().all(|t| t == "int3"), "{text:?}");
        assert_eq!(text.len(), 2 + 22);
    }

    #[test]
    fn stub_distance_overflow_is_an_error() {
        assert!(stub_bytes(1 << 40).is_err());
    }

    #[test]
    fn chunks_cover_sizes() {
        assert_eq!(chunks(7, 8), vec![(0, 4), (4, 2), (6, 1)]);
        assert_eq!(chunks(12, 8), vec![(0, 8), (8, 4)]);
    }
}
