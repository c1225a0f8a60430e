//! Call planning for the Microsoft x64 calling convention (Win64).
//!
//! Sources, cited below by short name:
//! - [cc] Microsoft Learn, "x64 calling convention"
//!   (<https://learn.microsoft.com/en-us/cpp/build/x64-calling-convention>):
//!   sections "Calling convention defaults", "Parameter passing", "Varargs",
//!   "Return values"; and [stack] "x64 stack usage"
//!   (<https://learn.microsoft.com/en-us/cpp/build/stack-usage>).
//! - [gcc] gcc 12.2 `-O2 -S` on x86-64 Linux for functions declared
//!   `__attribute__((ms_abi))`: the de-facto rules where Microsoft is silent
//!   (MSVC has no `__int128` and no empty C structs).
//!
//! The whole convention is positional: argument *i* (counting the hidden
//! result pointer, when there is one, as argument 0) owns slot *i*. Slots 0–3
//! are the register pairs rcx/xmm0, rdx/xmm1, r8/xmm2, r9/xmm3; a value uses
//! the GPR or the XMM of its slot and the other one is simply skipped. Slot
//! *i* ≥ 4 is the 8-byte stack slot at `[rsp + 32 + 8*(i-4)]`, above the
//! 32-byte shadow space. No value is ever split over two locations.
//!
//! Worked examples (all checked in `tests/plan_win64.rs`):
//!
//! ```text
//! int  f(int a, double b, int c, float d, int e, float f)
//!        a: ecx   b: xmm1   c: r8d   d: xmm3   e: [rsp+32]   f: [rsp+40]
//! v3   g(v3 s)        where typedef struct { float x, y, z; } v3;
//!        result: caller's buffer address in rcx, returned in rax
//!        s: address of a 16-aligned copy in rdx
//! int  printf(const char *, ..., double)
//!        fmt: rcx   the double: xmm1 *and* rdx
//! ```

use super::x86::{R8, R9, RAX, RCX, RDX};
use super::{align_up, ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan, Unsupported};
use crate::types::{Abi, Scalar, Signature, Type};

/// The integer register of each of the four register slots ([cc] "Parameter
/// passing": "Integer valued arguments in the leftmost four positions are
/// passed in left-to-right order in RCX, RDX, R8, and R9").
const SLOT_GPRS: [u8; 4] = [RCX, RDX, R8, R9];

/// Number of register slots.
const REG_SLOTS: usize = 4;

/// [cc] "Calling convention defaults": the caller "must always allocate
/// sufficient space to store four register parameters, even if the callee
/// doesn't take that many parameters" — 4 × 8 bytes at `[rsp]..[rsp+32]`.
const SHADOW_SPACE: u32 = 32;

/// Each stack argument occupies one 8-byte slot ([cc] "Parameter passing":
/// anything that is not passed in 1, 2, 4 or 8 bytes is passed by pointer,
/// so every stack slot holds at most 8 bytes).
const STACK_SLOT: u32 = 8;

/// How one value travels, before a slot is assigned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// In the slot's GPR (or its stack slot) as an integer of the value's
    /// size, with this extension.
    Int(Ext),
    /// In the slot's XMM register (or its stack slot).
    Float,
    /// By reference: the caller copies the value into 16-byte-aligned memory
    /// in its frame and passes the address as an integer.
    Ref,
}

/// Classifies an argument type, or says why it cannot be passed.
fn classify_arg(ty: &Type) -> Result<Class, String> {
    match ty {
        Type::Void => Err("an argument cannot have type void".into()),
        Type::Scalar(s) => classify_scalar_arg(*s),
        Type::Pointer(_) => Ok(Class::Int(Ext::None)),
        // _Complex is laid out as struct { T re, im; } and follows the
        // aggregate rule: _Complex float (8 bytes) as an integer, _Complex
        // double (16 bytes) by reference. [gcc]: `ccf(_Complex float)` gets
        // both halves packed into rcx; `ccd(_Complex double)` gets the
        // address of a copy in rdx (rcx holds the result address).
        Type::Complex(s) => match s {
            Scalar::F32 | Scalar::F64 => Ok(aggregate_class(ty.size())),
            _ => Err(format!(
                "{} has no Win64 layout (long double is double on Win64)",
                ty
            )),
        },
        Type::Record(r) => {
            if r.size == 0 {
                // MSVC rejects empty structs in C (error C2016), so Microsoft
                // defines nothing; [gcc] passes the argument by reference but
                // returns it in no register at all. Refuse rather than guess.
                return Err(format!(
                    "{} is empty: the Microsoft x64 convention has no rule for zero-sized structs",
                    ty
                ));
            }
            Ok(aggregate_class(r.size))
        }
        // [cc] "Parameter passing": "__m128 types, arrays, and strings are
        // never passed by immediate value". A C array parameter is a pointer;
        // the parser never produces an array argument.
        Type::Array(..) => Err(format!(
            "{ty}: arrays are not passed by value (declare a pointer)"
        )),
    }
}

fn classify_scalar_arg(s: Scalar) -> Result<Class, String> {
    Ok(match s {
        // [cc] "Parameter passing": "Any floating-point and double-precision
        // arguments in the first four parameters are passed in XMM0 - XMM3,
        // depending on position."
        Scalar::F32 | Scalar::F64 => Class::Float,
        Scalar::F80 | Scalar::F128 => {
            return Err(format!(
                "{} has no Win64 layout (long double is double on Win64)",
                s.c_name()
            ))
        }
        // __int128 is 16 bytes, so by the aggregate rule it goes by
        // reference ([cc] "Calling convention defaults": "16-byte arguments
        // are passed by reference"). [gcc]: `ci128(__int128, int)` passes the
        // address of a 16-aligned copy in rcx and the int in edx.
        Scalar::I128 | Scalar::U128 => Class::Ref,
        // Narrow integers. [cc] "Parameter passing": "All integer arguments
        // in registers are right-justified, so the callee can ignore the
        // upper bits of the register and access only the portion of the
        // register necessary" — so the ABI requires no extension, and callees
        // (MSVC and [gcc] alike: `usenarrow` re-extends with movsbl/movzwl/
        // movzbl) never rely on it. [gcc]'s ms_abi *callers* do extend to 32
        // bits (`callnarrow`: movsbl for signed char, movzwl for unsigned
        // short, movzbl for _Bool, also for stack slots), so we do the same:
        // harmless for any callee, and identical to what gcc emits. A reader
        // of the plan (a closure) must not rely on it.
        Scalar::Bool | Scalar::U8 | Scalar::U16 => Class::Int(Ext::Zero(32)),
        Scalar::I8 | Scalar::I16 => Class::Int(Ext::Sign(32)),
        Scalar::I32 | Scalar::U32 | Scalar::I64 | Scalar::U64 | Scalar::Ptr => {
            Class::Int(Ext::None)
        }
    })
}

/// [cc] "Parameter passing": "Structs and unions of size 8, 16, 32, or 64
/// bits, and __m64 types, are passed as if they were integers of the same
/// size. Structs or unions of other sizes are passed as a pointer to memory
/// allocated by the caller." This holds whatever the members are: a struct
/// of two floats goes in a GPR, never in an XMM register.
fn aggregate_class(size: u32) -> Class {
    match size {
        1 | 2 | 4 | 8 => Class::Int(Ext::None),
        _ => Class::Ref,
    }
}

/// How the result comes back, before registers are named.
enum RetClass {
    Void,
    /// In rax, as an integer of the value's size.
    Rax,
    /// In xmm0 (float, double; and __int128 per [gcc]).
    Xmm0,
    /// Through a caller-supplied buffer whose address is the hidden first
    /// argument.
    Indirect,
}

fn classify_ret(ty: &Type) -> Result<RetClass, String> {
    Ok(match ty {
        Type::Void => RetClass::Void,
        Type::Pointer(_) => RetClass::Rax,
        Type::Scalar(s) => match s {
            // [cc] "Return values": "A scalar return value that can fit into
            // 64 bits, including the __m64 type, is returned through RAX.
            // Non-scalar types including floats, doubles, and vector types
            // such as __m128, __m128i, __m128d are returned in XMM0."
            Scalar::F32 | Scalar::F64 => RetClass::Xmm0,
            Scalar::F80 | Scalar::F128 => {
                return Err(format!(
                    "{} has no Win64 layout (long double is double on Win64)",
                    s.c_name()
                ))
            }
            // Microsoft has no __int128. [gcc] returns it in xmm0, like an
            // __m128 (`callri`: `movaps %xmm0, 32(%rsp)` after the call, no
            // hidden pointer: the int argument stays in ecx). Clang agrees
            // since LLVM 18.
            Scalar::I128 | Scalar::U128 => RetClass::Xmm0,
            _ => RetClass::Rax,
        },
        // _Complex float is an 8-byte aggregate: rax ([gcc] `callccf`: the
        // result comes back in rax). _Complex double is 16 bytes: hidden
        // pointer ([gcc] `callccd`: result address in rcx).
        Type::Complex(s) => match s {
            Scalar::F32 | Scalar::F64 => aggregate_ret(ty.size()),
            _ => {
                return Err(format!(
                    "{} has no Win64 layout (long double is double on Win64)",
                    ty
                ))
            }
        },
        Type::Record(r) => {
            if r.size == 0 {
                // [gcc] passes no hidden pointer and sets no register for an
                // empty struct result; MSVC C has no empty structs.
                return Err(format!(
                    "{} is empty: the Microsoft x64 convention has no rule for zero-sized structs",
                    ty
                ));
            }
            aggregate_ret(r.size)
        }
        Type::Array(..) => return Err(format!("{ty}: a function cannot return an array")),
    })
}

/// [cc] "Return values": "User-defined types can be returned by value from
/// global functions and static member functions. To return a user-defined
/// type by value in RAX, it must have a length of 1, 2, 4, 8, 16, 32, or 64
/// bits. [...] Otherwise, the caller must allocate memory for the return
/// value and pass a pointer to it as the first argument. The remaining
/// arguments are then shifted one argument to the right. The same pointer
/// must be returned by the callee in RAX." (The further C++ conditions — no
/// user-defined constructor, destructor, copy assignment — always hold for C
/// structs.) A struct of two floats comes back in rax, not xmm0 ([gcc]
/// `callfv2`: `movq %rax, %xmm0` after the call).
fn aggregate_ret(size: u32) -> RetClass {
    match size {
        1 | 2 | 4 | 8 => RetClass::Rax,
        _ => RetClass::Indirect,
    }
}

fn reg_part(size: u32, reg: Reg, class: PartClass, ext: Ext) -> Part {
    Part {
        offset: 0,
        size,
        loc: Loc::Reg(reg),
        class,
        ext,
    }
}

/// Plans a call under the Microsoft x64 calling convention.
///
/// Returns [`Unsupported`] for types the convention does not define for C:
/// empty structs, `long double` formats other than double, bare arrays, and
/// by-reference aggregates aligned to more than 16 bytes (the caller's copy
/// area is only 16-byte aligned).
pub fn plan(sig: &Signature) -> Result<CallPlan, Unsupported> {
    let ret_class = classify_ret(&sig.ret).map_err(Unsupported::ret)?;
    let ret = match ret_class {
        RetClass::Void => RetPlan::Void,
        RetClass::Rax => RetPlan::Direct(vec![reg_part(
            sig.ret.size(),
            Reg::Gpr(RAX),
            PartClass::Int,
            // [gcc] ms_abi callees return narrow integers unextended
            // (`rsc`: `leal (%rcx,%rcx,2), %eax`; `rb`: `setg %al`) and
            // callers extend them after the call (`callxsc`: movsbl %al).
            Ext::None,
        )]),
        RetClass::Xmm0 => RetPlan::Direct(vec![reg_part(
            sig.ret.size(),
            Reg::Fpr(0),
            PartClass::Float,
            Ext::None,
        )]),
        // [cc] "Return values" (quoted at `aggregate_ret`): the address takes
        // slot 0 (rcx) and comes back in rax.
        RetClass::Indirect => RetPlan::Indirect {
            ptr_in: Loc::Reg(Reg::Gpr(SLOT_GPRS[0])),
            ptr_out: Some(Reg::Gpr(RAX)),
        },
    };
    let first_slot = usize::from(matches!(ret_class, RetClass::Indirect));

    let too_many = |i: usize| Unsupported::arg(i, "too many arguments");
    let mut args = Vec::with_capacity(sig.args.len());
    let mut stack_end = SHADOW_SPACE;
    let mut copy_end: u32 = 0;
    for (i, ty) in sig.args.iter().enumerate() {
        let class = classify_arg(ty).map_err(|m| Unsupported::arg(i, m))?;
        let slot = first_slot + i;
        // Where the slot's 8 bytes live when it is past the registers.
        let stack_loc = if slot >= REG_SLOTS {
            let off = u32::try_from(slot - REG_SLOTS)
                .ok()
                .and_then(|n| n.checked_mul(STACK_SLOT))
                .and_then(|n| n.checked_add(SHADOW_SPACE))
                // Leave room for the slot itself and the rounding to 16.
                .filter(|n| *n <= u32::MAX - 32)
                .ok_or_else(|| too_many(i))?;
            stack_end = off + STACK_SLOT;
            Some(Loc::Stack(off))
        } else {
            None
        };
        let gpr = |slot: usize| Loc::Reg(Reg::Gpr(SLOT_GPRS[slot]));
        let plan = match class {
            Class::Int(ext) => ArgPlan::Direct(vec![Part {
                offset: 0,
                size: ty.size(),
                loc: stack_loc.unwrap_or_else(|| gpr(slot)),
                class: PartClass::Int,
                ext,
            }]),
            Class::Float => {
                let size = ty.size();
                match stack_loc {
                    Some(loc) => ArgPlan::Direct(vec![Part {
                        offset: 0,
                        size,
                        loc,
                        class: PartClass::Float,
                        ext: Ext::None,
                    }]),
                    None => {
                        let xmm = reg_part(size, Reg::Fpr(slot as u8), PartClass::Float, Ext::None);
                        if sig.is_variadic_arg(i) {
                            // [cc] "Varargs": "For floating-point values only,
                            // both the integer register and the floating-point
                            // register must contain the value, in case the
                            // callee expects the value in the integer
                            // registers." [gcc] `callvf(1, 2.5, 3)`: 2.5 in
                            // both xmm1 and rdx. Only for register slots; a
                            // stack slot holds the value once.
                            let mut in_gpr = xmm;
                            in_gpr.loc = gpr(slot);
                            in_gpr.class = PartClass::Int;
                            ArgPlan::Direct(vec![xmm, in_gpr])
                        } else {
                            ArgPlan::Direct(vec![xmm])
                        }
                    }
                }
            }
            Class::Ref => {
                // [cc] "Parameter passing": "For these aggregate types passed
                // as a pointer, including __m128, the caller-allocated
                // temporary memory must be 16-byte aligned." Copies are laid
                // out in argument order, each at the next multiple of 16.
                if ty.align() > 16 {
                    return Err(Unsupported::arg(
                        i,
                        format!(
                            "{ty} is aligned to {} bytes; by-reference copies are only 16-byte aligned",
                            ty.align()
                        ),
                    ));
                }
                let copy_offset = align_up(copy_end, 16);
                copy_end = copy_offset
                    .checked_add(ty.size())
                    .filter(|e| *e <= u32::MAX - 16)
                    .ok_or_else(|| Unsupported::arg(i, "by-reference copies are too large"))?;
                ArgPlan::ByRef {
                    ptr: stack_loc.unwrap_or_else(|| gpr(slot)),
                    copy_offset,
                }
            }
        };
        args.push(plan);
    }

    Ok(CallPlan {
        abi: Abi::Win64,
        args,
        ret,
        // [stack]: "The stack will always be maintained 16-byte aligned,
        // except within the prolog". The area holds the shadow space and
        // the stack slots.
        stack_size: align_up(stack_end, 16),
        shadow_space: SHADOW_SPACE,
        copy_area_size: align_up(copy_end, 16),
        // No `al` on Win64: [cc] "Varargs" passes variadic arguments like
        // any others, with the float duplication above.
        al: None,
    })
}

#[cfg(test)]
mod tests {
    //! Hand-built signatures; the table tests with C declarations are in
    //! tests/plan_win64.rs.
    use super::*;
    use crate::types::{layout_record, FieldDecl, RecordKind};
    use std::sync::Arc;

    fn st(members: &[Scalar]) -> Type {
        let fields = members
            .iter()
            .map(|s| FieldDecl {
                name: None,
                ty: Type::Scalar(*s),
                aligned: None,
            })
            .collect();
        Type::Record(Arc::new(
            layout_record(RecordKind::Struct, None, fields, false, None).unwrap(),
        ))
    }

    fn planned(sig: &Signature) -> CallPlan {
        let p = plan(sig).unwrap();
        p.validate(sig).unwrap();
        p
    }

    const I32: Type = Type::Scalar(Scalar::I32);
    const F64: Type = Type::Scalar(Scalar::F64);

    #[test]
    fn positional_slots() {
        // [cc] "Parameter passing" example func3(int a, double b, int c,
        // float d, int e, float f): a RCX, b XMM1, c R8, d XMM3, e and f on
        // the stack.
        let f32t = Type::Scalar(Scalar::F32);
        let sig = Signature::new(
            Abi::Win64,
            Type::Void,
            vec![I32, F64, I32, f32t.clone(), I32, f32t],
        );
        let p = planned(&sig);
        let locs: Vec<Loc> = p
            .args
            .iter()
            .map(|a| match a {
                ArgPlan::Direct(parts) => parts[0].loc,
                _ => panic!("{a:?}"),
            })
            .collect();
        assert_eq!(
            locs,
            [
                Loc::Reg(Reg::Gpr(RCX)),
                Loc::Reg(Reg::Fpr(1)),
                Loc::Reg(Reg::Gpr(R8)),
                Loc::Reg(Reg::Fpr(3)),
                Loc::Stack(32),
                Loc::Stack(40),
            ]
        );
        assert_eq!((p.stack_size, p.shadow_space, p.al), (48, 32, None));
    }

    #[test]
    fn hidden_pointer_shifts_slots() {
        // struct { long long a, b, c; } f(int): result address in rcx, int
        // in rdx (DESIGN tricky case 8).
        let s = st(&[Scalar::I64, Scalar::I64, Scalar::I64]);
        let sig = Signature::new(Abi::Win64, s, vec![I32]);
        let p = planned(&sig);
        assert_eq!(
            p.ret,
            RetPlan::Indirect {
                ptr_in: Loc::Reg(Reg::Gpr(RCX)),
                ptr_out: Some(Reg::Gpr(RAX))
            }
        );
        assert_eq!(
            p.args[0],
            ArgPlan::Direct(vec![reg_part(4, Reg::Gpr(RDX), PartClass::Int, Ext::None)])
        );
    }

    #[test]
    fn variadic_double_in_both() {
        let mut sig = Signature::new(Abi::Win64, I32, vec![I32, F64]);
        sig.fixed_args = 1;
        sig.variadic = true;
        let p = planned(&sig);
        assert_eq!(
            p.args[1],
            ArgPlan::Direct(vec![
                reg_part(8, Reg::Fpr(1), PartClass::Float, Ext::None),
                reg_part(8, Reg::Gpr(RDX), PartClass::Int, Ext::None),
            ])
        );
    }

    #[test]
    fn by_reference_copies() {
        // Two 12-byte structs and a 3-byte one: copies at 0, 16, 32.
        let s12 = st(&[Scalar::F32, Scalar::F32, Scalar::I32]);
        let s3 = st(&[Scalar::I8, Scalar::I8, Scalar::I8]);
        let sig = Signature::new(Abi::Win64, Type::Void, vec![s12.clone(), s3, s12]);
        let p = planned(&sig);
        let offs: Vec<u32> = p
            .args
            .iter()
            .map(|a| match a {
                ArgPlan::ByRef { copy_offset, .. } => *copy_offset,
                _ => panic!("{a:?}"),
            })
            .collect();
        assert_eq!(offs, [0, 16, 32]);
        assert_eq!(p.copy_area_size, 48);
    }

    #[test]
    fn unsupported_inputs_are_errors() {
        let empty = st(&[]);
        for sig in [
            Signature::new(Abi::Win64, Type::Void, vec![empty.clone()]),
            Signature::new(Abi::Win64, empty, vec![]),
            Signature::new(Abi::Win64, Type::Void, vec![Type::Void]),
            Signature::new(Abi::Win64, Type::Scalar(Scalar::F80), vec![]),
            Signature::new(Abi::Win64, Type::Void, vec![Type::Complex(Scalar::F128)]),
            Signature::new(
                Abi::Win64,
                Type::Void,
                vec![Type::array(Type::Scalar(Scalar::I8), 4).unwrap()],
            ),
        ] {
            assert!(plan(&sig).is_err(), "{sig}");
        }
    }

    #[test]
    fn many_arguments() {
        let sig = Signature::new(Abi::Win64, Type::Void, vec![I32; 1000]);
        let p = planned(&sig);
        assert_eq!(p.stack_size, align_up(32 + 8 * 996, 16));
    }
}
