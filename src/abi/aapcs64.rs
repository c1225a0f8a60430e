//! Call planning for AAPCS64 (Linux) and Apple arm64.
//!
//! The rules are those of Arm's "Procedure Call Standard for the Arm 64-bit
//! Architecture", release 2020Q3 (ARM-software/abi-aa, `aapcs64.rst`),
//! section "Parameter Passing Rules" (stages A, B and C; rule numbers below
//! are that release's: B.1–B.6, C.1–C.17) and section "Result Return".
//! Later releases renumber the C rules slightly (and call the section 6.8).
//!
//! Apple's variant ("Writing ARM64 code for Apple platforms") is the same
//! classifier with a few flags, each asymmetry marked `Apple:` where it is
//! applied:
//! - stack arguments take only their natural size and alignment (no 8-byte
//!   slots), and HFAs spill member by member;
//! - the caller sign/zero-extends integer arguments narrower than 32 bits;
//! - variadic arguments all go on the stack, in 8-byte slots;
//! - 16-byte-aligned values need not start in an even x register;
//! - `long double` is `double` (that is in the data model, not here).
//!
//! Nothing here depends on the host: a plan is only data.

use super::{align_up, ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan, Unsupported};
use crate::types::{Abi, Record, Scalar, Signature, Type};

/// Which AArch64 convention: Arm's AAPCS64 as Linux uses it, or Apple's
/// variant of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Linux,
    Apple,
}

/// x0–x7 and v0–v7 carry arguments (AAPCS64 "Machine Registers").
const NUM_ARG_REGS: u32 = 8;
/// x8: the indirect result location register (AAPCS64 "Result Return").
const INDIRECT_RESULT_REG: u8 = 8;

/// How AAPCS64 sees one argument or result, after stage B.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Class {
    /// A size-0 composite (GNU C empty struct): nothing is passed.
    Empty,
    /// Integral or pointer type of at most 8 bytes (C.9).
    Int { size: u32, ext: Ext },
    /// A 16-byte integral type, `__int128` (C.10, C.11).
    Int128,
    /// Half/single/double/quad floating point (C.1).
    Float(Scalar),
    /// A homogeneous floating-point aggregate: `count` members of `base`
    /// (C.2). `_Complex` types are HFAs of two.
    Hfa { base: Scalar, count: u32 },
    /// A composite of at most 16 bytes that is not an HFA (C.12, C.15).
    Small(Align16),
    /// A composite larger than 16 bytes that is not an HFA: passed as a
    /// pointer to a caller copy (B.4), returned through x8.
    Large,
}

/// Whether a composite counts as 16-byte aligned for C.10 and C.14 (after
/// B.6, a composite's copy is 8- or 16-aligned).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Align16 {
    Yes,
    No,
    /// The record's alignment was raised by an `aligned` attribute, and the
    /// layout does not tell whether it was on the record (which AAPCS64
    /// ignores: "natural alignment ... before any alignment adjustment of the
    /// entire composite") or on a member (which counts). Only an error if the
    /// answer matters.
    Unknown,
}

/// Plans a call under AAPCS64 (or Apple arm64).
pub fn plan(sig: &Signature, flavor: Flavor) -> Result<CallPlan, Unsupported> {
    let apple = flavor == Flavor::Apple;
    let mut st = State {
        flavor,
        ngrn: 0,
        nsrn: 0,
        nsaa: 0,
        copies: 0,
    };
    let mut args = Vec::with_capacity(sig.args.len());
    for (i, ty) in sig.args.iter().enumerate() {
        let class = classify(ty, flavor).map_err(|r| Unsupported::arg(i, r))?;
        let variadic = sig.is_variadic_arg(i);
        let arg = if apple && variadic {
            st.apple_variadic(ty, &class)
        } else {
            st.assign(ty, &class)
        }
        .map_err(|r| Unsupported::arg(i, r))?;
        args.push(arg);
    }
    let ret = plan_ret(&sig.ret, flavor).map_err(Unsupported::ret)?;
    let too_big = |_| Unsupported::arg(sig.args.len().saturating_sub(1), "argument area too large");
    let stack_size = u32::try_from(st.nsaa.div_ceil(16) * 16).map_err(too_big)?;
    let copy_area_size = u32::try_from(st.copies.div_ceil(16) * 16).map_err(too_big)?;
    Ok(CallPlan {
        abi: match flavor {
            Flavor::Linux => Abi::Aapcs64,
            Flavor::Apple => Abi::AppleArm64,
        },
        args,
        ret,
        stack_size,
        shadow_space: 0,
        copy_area_size,
        al: None,
    })
}

/// The marshalling state of stage A (A.1, A.2, A.4) plus the caller's copy
/// area for B.4 copies. Offsets are `u64` so no sum of `u32` sizes overflows.
struct State {
    flavor: Flavor,
    /// Next general-purpose register number.
    ngrn: u32,
    /// Next SIMD and floating-point register number.
    nsrn: u32,
    /// Next stacked argument address, as an offset from sp at the call.
    nsaa: u64,
    /// Bytes of by-reference copies so far (each copy 16-aligned).
    copies: u64,
}

impl State {
    fn apple(&self) -> bool {
        self.flavor == Flavor::Apple
    }

    /// Stage C for one argument (named, or any argument on Linux).
    fn assign(&mut self, ty: &Type, class: &Class) -> Result<ArgPlan, String> {
        let size = ty.size();
        match *class {
            Class::Empty => Ok(ArgPlan::Ignored),
            Class::Float(s) => {
                // C.1: the next v register, if one is left.
                if self.nsrn < NUM_ARG_REGS {
                    let r = self.take_fpr(1);
                    return Ok(direct(vec![reg_part(
                        0,
                        size,
                        Reg::Fpr(r),
                        PartClass::Float,
                    )]));
                }
                // C.4–C.6: on the stack; quad aligned to 16, others 8 (C.5
                // widens half/single to 8 bytes). Apple: natural size and
                // alignment, no 8-byte slot.
                let (align, slot) = self.scalar_slot(s.size());
                let off = self.stack_alloc(align, slot)?;
                Ok(direct(vec![stack_part(0, size, off, PartClass::Float)]))
            }
            Class::Hfa { base, count } => {
                let m = base.size();
                // C.2: one v register per member, if all fit.
                if self.nsrn + count <= NUM_ARG_REGS {
                    let first = self.take_fpr(count);
                    let parts = (0..count)
                        .map(|k| reg_part(k * m, m, Reg::Fpr(first + k as u8), PartClass::Float))
                        .collect();
                    return Ok(direct(parts));
                }
                // C.3: no v register is used after an HFA goes to the stack
                // (no back-filling).
                self.nsrn = NUM_ARG_REGS;
                if self.apple() {
                    // Apple: an HFA on the stack is spilled as if each member
                    // were a separate argument, at the member's natural
                    // alignment, with no rounding to 8 bytes (clang and
                    // LLVM's Darwin PCS; openjdk's MacOsAArch64CallArranger
                    // "requiresSubSlotStackPacking").
                    let mut parts = Vec::with_capacity(count as usize);
                    for k in 0..count {
                        let off = self.stack_alloc(m as u64, m as u64)?;
                        parts.push(stack_part(k * m, m, off, PartClass::Float));
                    }
                    return Ok(direct(parts));
                }
                // C.3/C.4/C.6: the whole HFA laid out as in memory, at
                // max(8, natural alignment), size rounded up to 8. (The
                // natural alignment is the base type's unless an `aligned`
                // attribute raised it, which only matters off a 16 boundary.)
                let align = if base.align() >= 16
                    || (self.nsaa % 16 != 0 && is_align16(natural_align16(ty), ty)?)
                {
                    16
                } else {
                    8
                };
                let off = self.stack_alloc(align, align_up(size, 8) as u64)?;
                Ok(direct(vec![stack_part(0, size, off, PartClass::Memory)]))
            }
            Class::Int { size: n, ext } => {
                // Apple: the caller extends arguments narrower than 32 bits
                // in registers; AAPCS64 leaves that to the callee (upper bits
                // unspecified).
                let ext = if self.apple() { ext } else { Ext::None };
                // C.9: the next x register, if one is left.
                if self.ngrn < NUM_ARG_REGS {
                    let r = self.take_gpr(1);
                    let mut p = reg_part(0, n, Reg::Gpr(r), PartClass::Int);
                    p.ext = ext;
                    return Ok(direct(vec![p]));
                }
                // C.13, C.14, C.16, C.17: an 8-byte slot. Apple: natural
                // size and alignment.
                let (align, slot) = self.scalar_slot(n);
                let off = self.stack_alloc(align, slot)?;
                Ok(direct(vec![stack_part(0, n, off, PartClass::Int)]))
            }
            Class::Int128 => {
                // C.10: 16-byte alignment rounds NGRN up to even. Apple: not
                // required ("Apple platforms allow the argument to start in
                // an odd-numbered xN register"; clang, cranelift agree).
                if !self.apple() {
                    self.ngrn = align_up(self.ngrn, 2);
                }
                // C.11: a register pair, lower half in x[NGRN].
                if self.ngrn + 2 <= NUM_ARG_REGS {
                    let r = self.take_gpr(2);
                    return Ok(direct(vec![
                        reg_part(0, 8, Reg::Gpr(r), PartClass::Int),
                        reg_part(8, 8, Reg::Gpr(r + 1), PartClass::Int),
                    ]));
                }
                // C.13, C.14, C.17: never split; 16-aligned 16 bytes.
                self.ngrn = NUM_ARG_REGS;
                let off = self.stack_alloc(16, 16)?;
                Ok(direct(vec![stack_part(0, 16, off, PartClass::Int)]))
            }
            Class::Small(a16) => {
                let words = size.div_ceil(8); // B.5: size rounded up to 8
                                              // C.10: a 16-aligned composite starts at an even register.
                                              // Apple: not required (as for __int128 above).
                if !self.apple()
                    && self.ngrn % 2 == 1
                    && self.ngrn + words <= NUM_ARG_REGS
                    && is_align16(a16, ty)?
                {
                    self.ngrn += 1;
                }
                // C.12: consecutive x registers if all of it fits.
                if self.ngrn + words <= NUM_ARG_REGS {
                    let first = self.take_gpr(words);
                    return Ok(direct(gpr_chunks(size, first)));
                }
                // C.13: no x register is used after this; C.14, C.15: the
                // whole composite on the stack (never split), 8- or
                // 16-aligned (B.6), in a multiple of 8 bytes (B.5). Apple
                // composites get the same 8-byte slots (clang coerces them to
                // i64 arrays; openjdk pads them to a slot).
                self.ngrn = NUM_ARG_REGS;
                let align = if self.nsaa % 16 != 0 && is_align16(a16, ty)? {
                    16
                } else {
                    8
                };
                let off = self.stack_alloc(align, words as u64 * 8)?;
                Ok(direct(vec![stack_part(0, size, off, PartClass::Memory)]))
            }
            Class::Large => {
                // B.4: copied to caller memory, replaced by a pointer, which
                // then goes by C.9 / C.16–C.17 like any pointer.
                let copy_offset = self.alloc_copy(size)?;
                let ptr = if self.ngrn < NUM_ARG_REGS {
                    Loc::Reg(Reg::Gpr(self.take_gpr(1)))
                } else {
                    Loc::Stack(self.stack_alloc(8, 8)?)
                };
                Ok(ArgPlan::ByRef { ptr, copy_offset })
            }
        }
    }

    /// Apple: "the caller places all variadic arguments on the stack", each
    /// in 8-byte-aligned slots of a multiple of 8 bytes (16-aligned for
    /// 16-aligned types); registers are never used, even when some are
    /// left. Composites larger than 16 bytes are still passed by reference.
    fn apple_variadic(&mut self, ty: &Type, class: &Class) -> Result<ArgPlan, String> {
        let size = ty.size();
        let pclass = match *class {
            Class::Empty => return Ok(ArgPlan::Ignored),
            Class::Large => {
                let copy_offset = self.alloc_copy(size)?;
                let off = self.stack_alloc(8, 8)?;
                return Ok(ArgPlan::ByRef {
                    ptr: Loc::Stack(off),
                    copy_offset,
                });
            }
            Class::Int { size: n, .. } if n < 4 => {
                return Err(format!(
                    "a variadic {ty} is promoted to int by C; pass an int"
                ))
            }
            Class::Float(Scalar::F32) => {
                return Err("a variadic float is promoted to double by C; pass a double".into())
            }
            Class::Int { .. } | Class::Int128 => PartClass::Int,
            Class::Float(_) => PartClass::Float,
            Class::Hfa { .. } | Class::Small(_) => PartClass::Memory,
        };
        let align = if ty.align() >= 16 { 16 } else { 8 };
        let off = self.stack_alloc(align, align_up(size, 8) as u64)?;
        Ok(direct(vec![stack_part(0, size, off, pclass)]))
    }

    /// Alignment and slot size of a scalar of `n` bytes on the stack:
    /// AAPCS64 C.4/C.5/C.14/C.16 use slots of at least 8 bytes aligned to at
    /// least 8. Apple: "function arguments may consume slots on the stack
    /// that are not multiples of 8 bytes", aligned to their natural alignment.
    fn scalar_slot(&self, n: u32) -> (u64, u64) {
        let n = n as u64;
        if self.apple() {
            (n, n)
        } else {
            (n.max(8), n.max(8))
        }
    }

    /// Rounds NSAA up to `align`, reserves `size` bytes, returns the offset.
    fn stack_alloc(&mut self, align: u64, size: u64) -> Result<u32, String> {
        let off = self.nsaa.div_ceil(align) * align;
        self.nsaa = off + size;
        u32::try_from(off)
            .ok()
            .filter(|_| self.nsaa <= u32::MAX as u64)
            .ok_or_else(|| "stack argument area too large".to_string())
    }

    /// Reserves a 16-aligned copy for a B.4 argument.
    fn alloc_copy(&mut self, size: u32) -> Result<u32, String> {
        let off = self.copies;
        self.copies = off + align_up(size, 16) as u64;
        u32::try_from(off)
            .ok()
            .filter(|_| self.copies <= u32::MAX as u64)
            .ok_or_else(|| "by-reference copies too large".to_string())
    }

    fn take_gpr(&mut self, n: u32) -> u8 {
        let r = self.ngrn as u8;
        self.ngrn += n;
        r
    }

    fn take_fpr(&mut self, n: u32) -> u8 {
        let r = self.nsrn as u8;
        self.nsrn += n;
        r
    }
}

/// "Result Return": a result that would be passed in registers as the first
/// argument of `void f(T)` comes back in those registers; any other result
/// is written to memory whose address the caller passes in x8.
fn plan_ret(ty: &Type, flavor: Flavor) -> Result<RetPlan, String> {
    if ty.is_void() {
        return Ok(RetPlan::Void);
    }
    let class = classify(ty, flavor)?;
    Ok(match class {
        Class::Empty => RetPlan::Void,
        Class::Large => RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(INDIRECT_RESULT_REG)),
            // AAPCS64 does not require the callee to return or preserve x8.
            ptr_out: None,
        },
        Class::Int { size, ext } => {
            let mut p = reg_part(0, size, Reg::Gpr(0), PartClass::Int);
            // Apple: the callee extends narrow results to 32 bits, as the
            // caller does for arguments (clang marks them signext/zeroext).
            if flavor == Flavor::Apple {
                p.ext = ext;
            }
            RetPlan::Direct(vec![p])
        }
        Class::Int128 => RetPlan::Direct(vec![
            reg_part(0, 8, Reg::Gpr(0), PartClass::Int),
            reg_part(8, 8, Reg::Gpr(1), PartClass::Int),
        ]),
        Class::Float(_) => {
            RetPlan::Direct(vec![reg_part(0, ty.size(), Reg::Fpr(0), PartClass::Float)])
        }
        Class::Hfa { base, count } => {
            let m = base.size();
            RetPlan::Direct(
                (0..count)
                    .map(|k| reg_part(k * m, m, Reg::Fpr(k as u8), PartClass::Float))
                    .collect(),
            )
        }
        Class::Small(_) => RetPlan::Direct(gpr_chunks(ty.size(), 0)),
    })
}

/// Stage B classification of one type.
fn classify(ty: &Type, flavor: Flavor) -> Result<Class, String> {
    match ty {
        Type::Void => Err("an argument cannot have type void".into()),
        Type::Pointer(_) => Ok(Class::Int {
            size: 8,
            ext: Ext::None,
        }),
        Type::Scalar(s) => match s {
            Scalar::F80 => Err("x87 long double does not exist on AArch64".into()),
            Scalar::F32 | Scalar::F64 | Scalar::F128 => Ok(Class::Float(*s)),
            Scalar::I128 | Scalar::U128 => Ok(Class::Int128),
            _ => Ok(Class::Int {
                size: s.size(),
                ext: narrow_ext(*s),
            }),
        },
        // AAPCS64 "Arithmetic Types": a complex type is laid out as a struct
        // of two floats of its base type, so it is an HFA of two.
        Type::Complex(s) => match s {
            Scalar::F32 | Scalar::F64 | Scalar::F128 => Ok(Class::Hfa { base: *s, count: 2 }),
            _ => Err(format!("{ty} is not supported on AArch64")),
        },
        Type::Record(_) | Type::Array(..) => classify_composite(ty, flavor),
    }
}

fn classify_composite(ty: &Type, flavor: Flavor) -> Result<Class, String> {
    let size = ty.size();
    // AAPCS64 has no empty composites; GNU C's empty structs (size 0) are
    // ignored as arguments by gcc (checked: `g(1, e, 2)` passes 2 in w1) and
    // by Apple ("empty struct types are ignored for parameter passing").
    if size == 0 {
        return Ok(Class::Empty);
    }
    // B.3: an HFA is used unmodified (even when larger than 16 bytes). At
    // most four members of at most 16 bytes: larger types are never HFAs
    // (and are not walked leaf by leaf).
    if size <= 64 {
        if let Some((base, count)) = hfa(ty) {
            return Ok(Class::Hfa { base, count });
        }
    }
    // B.4: larger composites are copied and passed by reference.
    if size > 16 {
        return Ok(Class::Large);
    }
    let a16 = match flavor {
        // Apple: clang uses the type's alignment including any `aligned`
        // attribute on the record (max(8, align), 16 if 16).
        Flavor::Apple => {
            if ty.align() >= 16 {
                Align16::Yes
            } else {
                Align16::No
            }
        }
        Flavor::Linux => natural_align16(ty),
    };
    Ok(Class::Small(a16))
}

/// AAPCS64 "Composite Types": the natural alignment of a composite is the
/// largest alignment of its top-level members (after member alignment
/// modifiers, before any adjustment of the whole composite); B.6 then makes
/// the copy 8-aligned (natural alignment <= 8) or 16-aligned (>= 16).
fn natural_align16(ty: &Type) -> Align16 {
    let bucket = |a: u32| {
        if a >= 16 {
            Align16::Yes
        } else {
            Align16::No
        }
    };
    match ty {
        Type::Record(r) => {
            let members = members_align(r);
            let (lo, hi) = (bucket(members), bucket(r.align));
            if lo == hi {
                lo
            } else {
                Align16::Unknown
            }
        }
        _ => bucket(ty.align()),
    }
}

/// The largest natural alignment of the record's members (1 if packed).
fn members_align(r: &Record) -> u32 {
    if r.packed {
        return 1;
    }
    r.fields.iter().map(|f| f.ty.align()).max().unwrap_or(1)
}

fn is_align16(a: Align16, ty: &Type) -> Result<bool, String> {
    match a {
        Align16::Yes => Ok(true),
        Align16::No => Ok(false),
        Align16::Unknown => Err(format!(
            "{ty} is over-aligned by an aligned attribute; AAPCS64 places it differently \
             depending on whether the attribute is on the struct or on a member"
        )),
    }
}

/// AAPCS64 "Homogeneous Aggregates": a composite whose fundamental data
/// types are all the same floating-point type, with at most four uniquely
/// addressable members. Layout-based, as gcc's `aapcs_vfp_sub_candidate`:
/// every leaf must have the same floating type, and the leaves must tile the
/// whole object (so padding, e.g. from an `aligned` member, disqualifies it).
/// Union members overlap, so `union { float a; float b[2]; }` is an HFA of
/// two floats, while `union { double d; float f[2]; }` mixes types and is
/// not an HFA.
fn hfa(ty: &Type) -> Option<(Scalar, u32)> {
    let mut base: Option<Scalar> = None;
    let mut ok = true;
    // Which of the (at most four) member slots some leaf fills.
    let mut covered = [false; 4];
    ty.for_each_scalar(0, &mut |off, s| {
        if !matches!(s, Scalar::F32 | Scalar::F64 | Scalar::F128) || base.is_some_and(|b| b != s) {
            ok = false;
            return;
        }
        base = Some(s);
        let m = s.size();
        match covered.get_mut((off / m) as usize) {
            Some(c) if off % m == 0 => *c = true,
            _ => ok = false,
        }
    });
    let base = base.filter(|_| ok)?;
    let m = base.size();
    let size = ty.size();
    let count = size / m;
    if size % m != 0 || !(1..=4).contains(&count) {
        return None;
    }
    if covered[..count as usize].iter().all(|c| *c) {
        Some((base, count))
    } else {
        None
    }
}

/// Apple extends narrow integers to 32 bits by their signedness (`_Bool` is
/// unsigned); the extension is only applied where the flavor asks for it.
fn narrow_ext(s: Scalar) -> Ext {
    if s.size() >= 4 {
        Ext::None
    } else if s.is_signed() {
        Ext::Sign(32)
    } else {
        Ext::Zero(32)
    }
}

/// C.12: a composite "loaded into the registers from a double-word-aligned
/// address": 8-byte chunks in consecutive x registers from x`first`.
fn gpr_chunks(size: u32, first: u8) -> Vec<Part> {
    (0..size.div_ceil(8))
        .map(|k| {
            let off = k * 8;
            reg_part(
                off,
                (size - off).min(8),
                Reg::Gpr(first + k as u8),
                PartClass::Int,
            )
        })
        .collect()
}

fn direct(parts: Vec<Part>) -> ArgPlan {
    ArgPlan::Direct(parts)
}

fn reg_part(offset: u32, size: u32, r: Reg, class: PartClass) -> Part {
    Part {
        offset,
        size,
        loc: Loc::Reg(r),
        class,
        ext: Ext::None,
    }
}

fn stack_part(offset: u32, size: u32, at: u32, class: PartClass) -> Part {
    Part {
        offset,
        size,
        loc: Loc::Stack(at),
        class,
        ext: Ext::None,
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built signatures (the table tests in `tests/plan_aapcs64.rs` and
    //! `tests/plan_apple_arm64.rs` use C declarations). Expected locations
    //! from AAPCS64 stage C, checked against aarch64-linux-gnu-gcc 12 -O2 and
    //! clang -target arm64-apple-macos11.
    use super::*;
    use crate::abi::reg_name;
    use crate::types::{layout_record, FieldDecl, RecordKind};
    use std::sync::Arc;

    fn sc(s: Scalar) -> Type {
        Type::Scalar(s)
    }

    fn st(members: &[Type]) -> Type {
        let fields = members
            .iter()
            .map(|t| FieldDecl {
                name: None,
                ty: t.clone(),
                aligned: None,
            })
            .collect();
        Type::Record(Arc::new(
            layout_record(RecordKind::Struct, None, fields, false, None).unwrap(),
        ))
    }

    fn render(abi: Abi, parts: &[Part], ty: &Type) -> String {
        parts
            .iter()
            .map(|p| {
                let mut s = match p.loc {
                    Loc::Reg(r) => reg_name(abi, r, p.size),
                    Loc::Stack(o) => format!("[sp+{o}]"),
                };
                if parts.len() > 1 || p.size != ty.size() {
                    s += &format!("[{}..{}]", p.offset, p.offset + p.size);
                }
                s
            })
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn args(sig: &Signature, flavor: Flavor) -> String {
        let plan = plan(sig, flavor).unwrap();
        plan.validate(sig).unwrap();
        plan.args
            .iter()
            .zip(&sig.args)
            .map(|(a, t)| match a {
                ArgPlan::Direct(p) => render(plan.abi, p, t),
                ArgPlan::ByRef { ptr, copy_offset } => match ptr {
                    Loc::Reg(r) => format!("ref {} copy@{copy_offset}", reg_name(plan.abi, *r, 8)),
                    Loc::Stack(o) => format!("ref [sp+{o}] copy@{copy_offset}"),
                },
                ArgPlan::Ignored => "-".into(),
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn sig(abi: Abi, args: Vec<Type>) -> Signature {
        Signature::new(abi, Type::Void, args)
    }

    #[test]
    fn hfa_detection() {
        let f = sc(Scalar::F32);
        let d = sc(Scalar::F64);
        assert_eq!(
            hfa(&st(&[f.clone(), f.clone(), f.clone()])),
            Some((Scalar::F32, 3))
        );
        assert_eq!(hfa(&st(&[f.clone(), d.clone()])), None); // case 9
        assert_eq!(hfa(&st(&vec![d.clone(); 5])), None); // case 7
        assert_eq!(hfa(&Type::Complex(Scalar::F64)), Some((Scalar::F64, 2)));
        // case 14: nested struct and array
        let inner = st(&[f.clone(), f.clone()]);
        let arr = Type::array(f.clone(), 2).unwrap();
        assert_eq!(hfa(&st(&[inner, arr])), Some((Scalar::F32, 4)));
        // case 13: union { double d; float f[2]; } mixes types
        let u = layout_record(
            RecordKind::Union,
            None,
            vec![
                FieldDecl {
                    name: None,
                    ty: d.clone(),
                    aligned: None,
                },
                FieldDecl {
                    name: None,
                    ty: Type::array(f.clone(), 2).unwrap(),
                    aligned: None,
                },
            ],
            false,
            None,
        )
        .unwrap();
        assert_eq!(hfa(&Type::Record(Arc::new(u))), None);
        // union { float a; float b[2]; }: an HFA of two floats
        let u = layout_record(
            RecordKind::Union,
            None,
            vec![
                FieldDecl {
                    name: None,
                    ty: f.clone(),
                    aligned: None,
                },
                FieldDecl {
                    name: None,
                    ty: Type::array(f.clone(), 2).unwrap(),
                    aligned: None,
                },
            ],
            false,
            None,
        )
        .unwrap();
        assert_eq!(hfa(&Type::Record(Arc::new(u))), Some((Scalar::F32, 2)));
    }

    #[test]
    fn no_backfill_after_hfa_on_stack() {
        // case 19: six doubles, struct {double a,b,c;}, double (gcc: struct
        // at [sp+0], last double at [sp+24]).
        let d = sc(Scalar::F64);
        let mut a = vec![d.clone(); 6];
        a.push(st(&[d.clone(), d.clone(), d.clone()]));
        a.push(d.clone());
        let s = sig(Abi::Aapcs64, a);
        assert_eq!(
            args(&s, Flavor::Linux),
            "d0, d1, d2, d3, d4, d5, [sp+0], [sp+24]"
        );
        assert_eq!(
            args(&s, Flavor::Apple),
            "d0, d1, d2, d3, d4, d5, [sp+0][0..8] [sp+8][8..16] [sp+16][16..24], [sp+24]"
        );
    }

    #[test]
    fn int128_pairs() {
        let s = sig(Abi::Aapcs64, vec![sc(Scalar::I32), sc(Scalar::I128)]);
        assert_eq!(args(&s, Flavor::Linux), "w0, x2[0..8] x3[8..16]");
        assert_eq!(args(&s, Flavor::Apple), "w0, x1[0..8] x2[8..16]");
    }

    #[test]
    fn packed_stack_on_apple() {
        // case 24
        let mut a = vec![sc(Scalar::I64); 8];
        a.extend([
            sc(Scalar::I8),
            sc(Scalar::I16),
            sc(Scalar::I32),
            sc(Scalar::I8),
        ]);
        let s = sig(Abi::Aapcs64, a);
        let l = plan(&s, Flavor::Linux).unwrap();
        let ap = plan(&s, Flavor::Apple).unwrap();
        assert!(args(&s, Flavor::Linux).ends_with("[sp+0], [sp+8], [sp+16], [sp+24]"));
        assert!(args(&s, Flavor::Apple).ends_with("[sp+0], [sp+2], [sp+4], [sp+8]"));
        assert_eq!((l.stack_size, ap.stack_size), (32, 16));
    }

    #[test]
    fn large_by_reference_and_x8_result() {
        let d = sc(Scalar::F64);
        let big = st(&vec![d; 5]);
        let s = Signature::new(Abi::Aapcs64, big.clone(), vec![big.clone(), big]);
        let p = plan(&s, Flavor::Linux).unwrap();
        p.validate(&s).unwrap();
        assert_eq!(args(&s, Flavor::Linux), "ref x0 copy@0, ref x1 copy@48");
        assert_eq!(p.copy_area_size, 96);
        assert_eq!(
            p.ret,
            RetPlan::Indirect {
                ptr_in: Loc::Reg(Reg::Gpr(8)),
                ptr_out: None
            }
        );
    }
}
