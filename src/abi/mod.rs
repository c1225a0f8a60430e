//! Call plans: where every byte of every argument and of the result goes.
//!
//! One module per calling convention classifies a [`Signature`] into a
//! [`CallPlan`]. The plan is read in both directions: a forward trampoline
//! moves values from the argument buffer into the plan's locations; a
//! closure moves them from those locations back into a buffer.
//!
//! This layer never emits code and never mentions an instruction encoding;
//! the emitters in `arch/` never decide where an argument goes.

use std::fmt;

use crate::types::{Abi, Isa, Signature, Type};

pub mod aapcs64;
pub mod sysv64;
pub mod win64;

/// A machine register, numbered as the hardware encodes it.
///
/// - x86-64 `Gpr(n)`: 0 rax, 1 rcx, 2 rdx, 3 rbx, 4 rsp, 5 rbp, 6 rsi, 7 rdi,
///   8–15 r8–r15. `Fpr(n)`: xmm*n*. `X87(n)`: st(*n*).
/// - AArch64 `Gpr(n)`: x*n* (0–30). `Fpr(n)`: v*n* (named b/h/s/d/q by the
///   part's size when printed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Reg {
    Gpr(u8),
    Fpr(u8),
    X87(u8),
}

/// x86-64 general-purpose register numbers.
pub mod x86 {
    pub const RAX: u8 = 0;
    pub const RCX: u8 = 1;
    pub const RDX: u8 = 2;
    pub const RBX: u8 = 3;
    pub const RSP: u8 = 4;
    pub const RBP: u8 = 5;
    pub const RSI: u8 = 6;
    pub const RDI: u8 = 7;
    pub const R8: u8 = 8;
    pub const R9: u8 = 9;
}

/// Where one piece of a value lives at the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Loc {
    /// In a register.
    Reg(Reg),
    /// In the outgoing argument area, at this byte offset from the stack
    /// pointer at the call instruction (so Win64's fifth argument is at 32,
    /// past the shadow space). For a closure this is the offset from the
    /// stack pointer at its entry, plus the return address on x86-64.
    Stack(u32),
}

/// How the bytes of a piece are interpreted in its location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PartClass {
    /// Integer register or integer stack slot.
    Int,
    /// Floating-point / vector register or a float in a stack slot.
    Float,
    /// A block of memory copied as bytes (SysV MEMORY class, composites on
    /// the stack).
    Memory,
    /// An x87 register (`st0`/`st1`), for SysV `long double` results.
    X87,
}

/// Extension a narrow integer gets in its location.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ext {
    /// Upper bits are unspecified.
    None,
    /// Sign-extend to `bits`.
    Sign(u8),
    /// Zero-extend to `bits`.
    Zero(u8),
}

/// One piece of a value: `size` bytes at `offset` within the value, held in
/// `loc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Part {
    /// Byte offset within the argument's (or result's) value.
    pub offset: u32,
    /// Byte count. Register parts are at most 16 bytes.
    pub size: u32,
    pub loc: Loc,
    pub class: PartClass,
    pub ext: Ext,
}

/// How one argument is passed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ArgPlan {
    /// The value itself, in one or more pieces (registers and/or stack).
    Direct(Vec<Part>),
    /// The caller copies the value into its own frame, at `copy_offset` in
    /// the plan's copy area, and passes the copy's address in `ptr`.
    ByRef { ptr: Loc, copy_offset: u32 },
    /// Zero-sized: nothing is passed (empty structs on SysV and AAPCS64).
    Ignored,
}

/// How the result comes back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum RetPlan {
    Void,
    /// In registers (rax/rdx/xmm0/xmm1/st0, x0–x7/v0–v3).
    Direct(Vec<Part>),
    /// The caller passes a result address in `ptr_in`; the callee writes the
    /// result there and, where the ABI says so, returns the address in
    /// `ptr_out`.
    Indirect {
        ptr_in: Loc,
        ptr_out: Option<Reg>,
    },
}

/// The complete plan for one call shape.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CallPlan {
    pub abi: Abi,
    pub args: Vec<ArgPlan>,
    pub ret: RetPlan,
    /// Bytes of outgoing argument area the caller reserves, including the
    /// Win64 shadow space; a multiple of 16.
    pub stack_size: u32,
    /// Win64: 32 bytes the callee may use, at the bottom of the argument
    /// area. 0 elsewhere.
    pub shadow_space: u32,
    /// Bytes of caller-frame space for by-reference copies (Win64 aggregates,
    /// AAPCS64 large composites); a multiple of 16.
    pub copy_area_size: u32,
    /// SysV variadic calls: the value `al` must hold (an upper bound on the
    /// vector registers used). `None` for non-variadic calls and other ABIs.
    pub al: Option<u8>,
}

/// A signature the planner cannot (yet) handle correctly: never a wrong plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unsupported {
    /// `Some(i)` for argument `i`, `None` for the return value.
    pub arg: Option<usize>,
    pub reason: String,
}

impl fmt::Display for Unsupported {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.arg {
            Some(i) => write!(f, "unsupported argument {}: {}", i + 1, self.reason),
            None => write!(f, "unsupported signature: {}", self.reason),
        }
    }
}

impl std::error::Error for Unsupported {}

impl Unsupported {
    pub fn arg(i: usize, reason: impl Into<String>) -> Unsupported {
        Unsupported {
            arg: Some(i),
            reason: reason.into(),
        }
    }
    pub fn ret(reason: impl Into<String>) -> Unsupported {
        Unsupported {
            arg: None,
            reason: reason.into(),
        }
    }
}

/// The largest outgoing-argument area plus by-reference copies a call may
/// need (1 MiB): a larger one would overflow a thread's stack (often 2 MiB
/// for spawned threads) instead of failing cleanly.
pub const MAX_CALL_FRAME: u64 = 1 << 20;

/// Plans a call for the signature's ABI.
pub fn plan(sig: &Signature) -> Result<CallPlan, Unsupported> {
    let plan = match sig.abi {
        Abi::SysV64 => sysv64::plan(sig),
        Abi::Win64 => win64::plan(sig),
        Abi::Aapcs64 => aapcs64::plan(sig, aapcs64::Flavor::Linux),
        Abi::AppleArm64 => aapcs64::plan(sig, aapcs64::Flavor::Apple),
    }?;
    debug_assert_eq!(plan.validate(sig), Ok(()), "{}", plan.display(sig));
    let frame = plan.stack_size as u64 + plan.copy_area_size as u64;
    if frame > MAX_CALL_FRAME {
        return Err(Unsupported {
            arg: None,
            reason: format!(
                "the call needs {frame} bytes of stack for its arguments; the limit is {MAX_CALL_FRAME}"
            ),
        });
    }
    Ok(plan)
}

/// A broken invariant found by [`CallPlan::validate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlanError(pub String);

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid call plan: {}", self.0)
    }
}

impl std::error::Error for PlanError {}

/// Rounds `x` up to a multiple of `a` (a power of two or any positive value).
pub fn align_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a) * a
}

/// Which value a location belongs to, for validation messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Arg(usize),
    Result,
    ResultAddress,
}

impl fmt::Display for Who {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Who::Arg(i) => write!(f, "argument {}", i + 1),
            Who::Result => f.write_str("result"),
            Who::ResultAddress => f.write_str("result address"),
        }
    }
}

/// Locations taken so far while validating (small: linear search).
#[derive(Default)]
struct Seen {
    regs: Vec<(Reg, Who)>,
    stack: Vec<(u32, u32, Who)>,
}

/// Every piece inside the value, register pieces at most 16 bytes, and
/// every byte of the value covered (by sorted intervals: values can be up
/// to 1 GiB).
fn check_parts(parts: &[Part], ty: &Type, who: Who) -> Result<(), PlanError> {
    let size = ty.size();
    let mut spans: Vec<(u32, u32)> = Vec::with_capacity(parts.len());
    for p in parts {
        if p.size == 0 || p.offset as u64 + p.size as u64 > size as u64 {
            return Err(PlanError(format!(
                "{who}: piece {}..{} outside the value",
                p.offset,
                p.offset as u64 + p.size as u64
            )));
        }
        if matches!(p.loc, Loc::Reg(_)) && p.size > 16 {
            return Err(PlanError(format!("{who}: {}-byte register piece", p.size)));
        }
        spans.push((p.offset, p.offset + p.size));
    }
    spans.sort_unstable();
    let mut reached = 0u32;
    for (start, end) in spans {
        if start > reached {
            break;
        }
        reached = reached.max(end);
    }
    if reached < size {
        return Err(PlanError(format!("{who}: byte {reached} is not passed")));
    }
    Ok(())
}

impl CallPlan {
    /// Checks the plan's invariants against its signature:
    /// - one plan per argument;
    /// - no register used by two different values (a Win64 variadic float
    ///   in both an XMM and a GPR is two registers, not a reuse);
    /// - no two stack pieces overlap, all lie inside the argument area and
    ///   past the shadow space, and each is aligned to 8 bytes (AArch64
    ///   Apple: to the piece's natural alignment, at least its size up to 8);
    /// - every byte of every direct argument and result is covered by a piece;
    /// - register pieces are at most 16 bytes; by-reference copies lie
    ///   inside the copy area, aligned to 16;
    /// - stack and copy areas are multiples of 16.
    pub fn validate(&self, sig: &Signature) -> Result<(), PlanError> {
        let err = |m: String| Err(PlanError(m));
        if self.args.len() != sig.args.len() {
            return err(format!(
                "{} argument plans for {} arguments",
                self.args.len(),
                sig.args.len()
            ));
        }
        if self.stack_size % 16 != 0 || self.copy_area_size % 16 != 0 {
            return err("stack or copy area not a multiple of 16".into());
        }
        let mut seen = Seen::default();
        match &self.ret {
            RetPlan::Void => {
                if !sig.ret.is_void() && sig.ret.size() != 0 {
                    return err("non-void result planned as void".into());
                }
            }
            RetPlan::Direct(parts) => {
                check_parts(parts, &sig.ret, Who::Result)?;
                if parts.iter().any(|p| !matches!(p.loc, Loc::Reg(_))) {
                    return err("result piece on the stack".into());
                }
                // Result registers are outputs: they may coincide with
                // argument registers, so they are not recorded in `seen`.
            }
            RetPlan::Indirect { ptr_in, .. } => {
                self.check_loc(&mut seen, *ptr_in, 8, Who::ResultAddress)?;
            }
        }
        let mut copies: Vec<(u32, u32, Who)> = Vec::new();
        for (i, (a, ty)) in self.args.iter().zip(&sig.args).enumerate() {
            let who = Who::Arg(i);
            match a {
                ArgPlan::Direct(parts) => {
                    check_parts(parts, ty, who)?;
                    for p in parts {
                        self.check_loc(&mut seen, p.loc, p.size, who)?;
                    }
                }
                ArgPlan::ByRef { ptr, copy_offset } => {
                    self.check_loc(&mut seen, *ptr, 8, who)?;
                    let end = copy_offset + ty.size();
                    if copy_offset % 16 != 0 || end > self.copy_area_size {
                        return err(format!(
                            "{who}: copy at {copy_offset}..{end} outside the copy area {}",
                            self.copy_area_size
                        ));
                    }
                    copies.push((*copy_offset, end, who));
                }
                ArgPlan::Ignored => {
                    if ty.size() != 0 {
                        return err(format!("{who}: a {}-byte value is ignored", ty.size()));
                    }
                }
            }
        }
        copies.sort_unstable_by_key(|(off, _, _)| *off);
        for pair in copies.windows(2) {
            if pair[1].0 < pair[0].1 {
                return err(format!("{}: overlapping by-reference copy", pair[1].2));
            }
        }
        seen.stack.sort_unstable_by_key(|(off, _, _)| *off);
        for pair in seen.stack.windows(2) {
            let ((o1, s1, w1), (o2, _, w2)) = (pair[0], pair[1]);
            if o2 < o1 + s1 {
                return err(format!(
                    "stack bytes {o2}.. of {w2} overlap {w1} at {o1}..{}",
                    o1 + s1
                ));
            }
        }
        Ok(())
    }

    /// Records one location, checking it against everything seen so far.
    fn check_loc(&self, seen: &mut Seen, loc: Loc, size: u32, who: Who) -> Result<(), PlanError> {
        match loc {
            Loc::Reg(r) => {
                if let Some((_, prev)) = seen.regs.iter().find(|(reg, _)| *reg == r) {
                    let name = reg_name(self.abi, r, 8);
                    return Err(PlanError(if *prev == who {
                        format!("{name} used twice by {who}")
                    } else {
                        format!("{name} used by both {prev} and {who}")
                    }));
                }
                seen.regs.push((r, who));
                Ok(())
            }
            Loc::Stack(off) => {
                // Stack slots are 8-byte aligned, except Apple arm64, which
                // packs stack arguments by their natural alignment.
                let min_align = match self.abi {
                    Abi::AppleArm64 => size.clamp(1, 8).next_power_of_two().min(8),
                    _ => 8,
                };
                if off % min_align != 0 {
                    return Err(PlanError(format!(
                        "{who}: stack offset {off} not {min_align}-aligned"
                    )));
                }
                if off < self.shadow_space || off as u64 + size as u64 > self.stack_size as u64 {
                    return Err(PlanError(format!(
                        "{who}: stack bytes {off}..{} outside the argument area {}..{}",
                        off as u64 + size as u64,
                        self.shadow_space,
                        self.stack_size
                    )));
                }
                // Overlaps are checked once all pieces are in (sorted), so
                // validation stays O(n log n) for calls with many stack
                // arguments.
                seen.stack.push((off, size, who));
                Ok(())
            }
        }
    }

    /// The plan as readable text, naming registers as the ABI documents do.
    pub fn display<'a>(&'a self, sig: &'a Signature) -> PlanDisplay<'a> {
        PlanDisplay { plan: self, sig }
    }
}

/// The name of register `r` holding a `size`-byte piece, as the ABI's
/// documents write it: `edi`/`rdi`, `xmm0`, `st0`, `w0`/`x0`, `s0`/`d0`/`q0`.
pub fn reg_name(abi: Abi, r: Reg, size: u32) -> String {
    const X86_64: [&str; 16] = [
        "rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12",
        "r13", "r14", "r15",
    ];
    const X86_32: [&str; 16] = [
        "eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi", "r8d", "r9d", "r10d", "r11d",
        "r12d", "r13d", "r14d", "r15d",
    ];
    match (abi.isa(), r) {
        (Isa::X86_64, Reg::Gpr(n)) if n < 16 => {
            if size <= 4 {
                X86_32[n as usize].into()
            } else {
                X86_64[n as usize].into()
            }
        }
        (Isa::X86_64, Reg::Fpr(n)) => format!("xmm{n}"),
        (Isa::X86_64, Reg::X87(n)) => format!("st{n}"),
        (Isa::Aarch64, Reg::Gpr(n)) => {
            if size <= 4 {
                format!("w{n}")
            } else {
                format!("x{n}")
            }
        }
        (Isa::Aarch64, Reg::Fpr(n)) => {
            let p = match size {
                1 => 'b',
                2 => 'h',
                4 => 's',
                8 => 'd',
                _ => 'q',
            };
            format!("{p}{n}")
        }
        (_, r) => format!("{r:?}"),
    }
}

fn loc_name(abi: Abi, loc: Loc, size: u32) -> String {
    match loc {
        Loc::Reg(r) => reg_name(abi, r, size),
        Loc::Stack(off) => match abi.isa() {
            Isa::X86_64 => format!("[rsp+{off}]"),
            Isa::Aarch64 => format!("[sp+{off}]"),
        },
    }
}

fn write_parts(f: &mut fmt::Formatter<'_>, abi: Abi, parts: &[Part], ty: &Type) -> fmt::Result {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        f.write_str(&loc_name(abi, p.loc, p.size))?;
        if parts.len() > 1 || p.offset != 0 || p.size != ty.size() {
            write!(f, " <- bytes {}..{}", p.offset, p.offset + p.size)?;
        }
        match p.ext {
            Ext::None => {}
            Ext::Sign(b) => write!(f, " (sign-extended to {b} bits)")?,
            Ext::Zero(b) => write!(f, " (zero-extended to {b} bits)")?,
        }
    }
    Ok(())
}

/// See [`CallPlan::display`].
pub struct PlanDisplay<'a> {
    plan: &'a CallPlan,
    sig: &'a Signature,
}

impl fmt::Display for PlanDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (plan, sig) = (self.plan, self.sig);
        let abi = plan.abi;
        writeln!(f, "{}  [{}]", sig.c_decl(), abi)?;
        for (i, (a, ty)) in plan.args.iter().zip(&sig.args).enumerate() {
            let var = if sig.is_variadic_arg(i) {
                " variadic"
            } else {
                ""
            };
            write!(f, "  arg {}{var} {} ({} bytes): ", i + 1, ty, ty.size())?;
            match a {
                ArgPlan::Direct(parts) => write_parts(f, abi, parts, ty)?,
                ArgPlan::ByRef { ptr, copy_offset } => write!(
                    f,
                    "by reference: {} <- address of copy at frame copy area +{copy_offset}",
                    loc_name(abi, *ptr, 8)
                )?,
                ArgPlan::Ignored => f.write_str("nothing (empty)")?,
            }
            writeln!(f)?;
        }
        write!(f, "  ret {} ({} bytes): ", sig.ret, sig.ret.size())?;
        match &plan.ret {
            RetPlan::Void => f.write_str("none")?,
            RetPlan::Direct(parts) => write_parts(f, abi, parts, &sig.ret)?,
            RetPlan::Indirect { ptr_in, ptr_out } => {
                write!(
                    f,
                    "via hidden result address in {}",
                    loc_name(abi, *ptr_in, 8)
                )?;
                if let Some(r) = ptr_out {
                    write!(f, ", returned in {}", reg_name(abi, *r, 8))?;
                }
            }
        }
        writeln!(f)?;
        write!(f, "  stack: {} bytes", plan.stack_size)?;
        if plan.shadow_space > 0 {
            write!(
                f,
                " (including {} bytes of shadow space)",
                plan.shadow_space
            )?;
        }
        if plan.copy_area_size > 0 {
            write!(f, "; copies: {} bytes", plan.copy_area_size)?;
        }
        if let Some(al) = plan.al {
            write!(f, "; al = {al}")?;
        }
        writeln!(f)
    }
}
