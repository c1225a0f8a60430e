//! Call planning for the System V AMD64 psABI ("System V Application Binary
//! Interface, AMD64 Architecture Processor Supplement", §3.2.3 "Parameter
//! Passing"), as gcc implements it for C on Linux, the BSDs and macOS.
//!
//! The planner works in two steps, as the psABI text does:
//!
//! 1. *Classification*: every argument (and the result) is cut into
//!    eightbytes, and each eightbyte gets a class (INTEGER, SSE, SSEUP, X87,
//!    X87UP, COMPLEX_X87, NO_CLASS or MEMORY) by merging the classes of the
//!    scalar leaves that lie in it ([`classify`], [`merge`], [`post_merge`]).
//! 2. *Passing*: left to right, INTEGER eightbytes take the next of rdi, rsi,
//!    rdx, rcx, r8, r9 and SSE eightbytes the next of xmm0–xmm7; an argument
//!    that does not fit entirely in the remaining registers goes entirely on
//!    the stack, and later arguments may still take registers ([`plan`]).
//!
//! Things gcc does that the psABI leaves implicit, each checked against
//! `gcc -O2 -S` (gcc 12) and noted where implemented:
//! - empty structs (size 0, a gcc extension, including a struct holding only a
//!   zero-length array) take neither a register nor stack space;
//! - narrow integer arguments are extended to 32 bits by the caller;
//! - a stack argument's slot is aligned to its type's alignment (at least 8).
//!
//! What this planner refuses (an [`Unsupported`] naming the argument, never a
//! wrong plan):
//! - an eightbyte of a small aggregate that holds only padding (for example
//!   `struct { int i; } __attribute__((aligned(16)))`): gcc passes it in one
//!   register and nothing for the padding eightbyte, which a plan whose parts
//!   must cover every byte cannot express;
//! - a stack argument aligned to more than 16 bytes: gcc realigns the
//!   caller's stack to 32 for it, and plans assume a 16-byte aligned `rsp`;
//! - a result whose eightbytes mix X87 classes with others in a way the
//!   psABI does not describe;
//! - `void` or array-typed arguments (C passes arrays as pointers).

use super::x86::{R8, R9, RAX, RCX, RDI, RDX, RSI};
use super::{align_up, ArgPlan, CallPlan, Ext, Loc, Part, PartClass, Reg, RetPlan, Unsupported};
use crate::types::{Abi, Scalar, Signature, Type};

/// psABI §3.2.3 "Passing" rule 2: "the next available register of the
/// sequence %rdi, %rsi, %rdx, %rcx, %r8 and %r9 is used".
const ARG_GPRS: [u8; 6] = [RDI, RSI, RDX, RCX, R8, R9];
/// psABI §3.2.3 "Passing" rule 3: "the registers are taken in the order from
/// %xmm0 to %xmm7".
const ARG_XMMS: u8 = 8;
/// psABI §3.2.3 "Returning of Values" rule 3: "the next available register
/// of the sequence %rax, %rdx is used".
const RET_GPRS: [u8; 2] = [RAX, RDX];
/// psABI §3.2.3 "Returning of Values" rule 4: "the next available SSE
/// register of the sequence %xmm0, %xmm1 is used".
const RET_XMMS: u8 = 2;

/// The psABI's register classes (§3.2.3 "Definitions"), named as it names
/// them (hence `NoClass`).
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    /// Padding and empty structs; the initial class of every eightbyte.
    NoClass,
    /// Integral types that fit a general-purpose register.
    Integer,
    /// Types that fit an SSE register (the low eightbyte).
    Sse,
    /// The upper eightbyte of a 16-byte SSE value (`__float128`).
    SseUp,
    /// The 64-bit mantissa of a `long double`.
    X87,
    /// The exponent and padding of a `long double`.
    X87Up,
    /// `_Complex long double`.
    ComplexX87,
    /// Passed and returned in memory.
    Memory,
}

/// How a whole value is classified.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Classified {
    /// A zero-sized value: gcc passes nothing for it (no register, no stack
    /// slot; checked with `gcc -O2 -S` for `struct {}` and
    /// `struct { int x[0]; }`) and returns nothing.
    Empty,
    /// Class MEMORY: on the stack as an argument, through a hidden pointer as
    /// a result.
    Memory,
    /// One class per eightbyte (one or two of them), after the post-merger
    /// cleanup. `_Complex long double` is the single class COMPLEX_X87 for
    /// its four eightbytes.
    Eightbytes(Vec<Class>),
}

/// psABI §3.2.3 classification rule 4: "Each field of an object is
/// classified recursively so that always two fields are considered. The
/// resulting class is calculated according to the classes of the fields in
/// the eightbyte".
fn merge(a: Class, b: Class) -> Class {
    use Class::*;
    if a == b {
        // (a) "If both classes are equal, this is the resulting class."
        a
    } else if a == NoClass {
        // (b) "If one of the classes is NO_CLASS, the resulting class is the
        // other class."
        b
    } else if b == NoClass {
        a
    } else if a == Memory || b == Memory {
        // (c) "If one of the classes is MEMORY, the result is the MEMORY
        // class."
        Memory
    } else if a == Integer || b == Integer {
        // (d) "If one of the classes is INTEGER, the result is the INTEGER."
        // So `union { long double ld; char c[16]; }` is INTEGER, INTEGER:
        // gcc passes it in rdi:rsi and returns it in rax:rdx.
        Integer
    } else if matches!(a, X87 | X87Up | ComplexX87) || matches!(b, X87 | X87Up | ComplexX87) {
        // (e) "If one of the classes is X87, X87UP, COMPLEX_X87 class,
        // MEMORY is used as class."
        Memory
    } else {
        // (f) "Otherwise class SSE is used."
        Sse
    }
}

/// The class of each eightbyte a scalar leaf occupies, from its first.
/// psABI §3.2.3 classification, basic types.
fn scalar_classes(s: Scalar) -> &'static [Class] {
    use Class::*;
    match s {
        // "Arguments of types (signed and unsigned) _Bool, char, short, int,
        // long, long long, and pointers are in the INTEGER class."
        Scalar::Bool
        | Scalar::I8
        | Scalar::U8
        | Scalar::I16
        | Scalar::U16
        | Scalar::I32
        | Scalar::U32
        | Scalar::I64
        | Scalar::U64
        | Scalar::Ptr => &[Integer],
        // "__int128 ... is treated as if it were implemented as
        // struct { long low, high; }".
        Scalar::I128 | Scalar::U128 => &[Integer, Integer],
        // "Arguments of types float, double, _Decimal32, _Decimal64 and
        // __m64 are in class SSE."
        Scalar::F32 | Scalar::F64 => &[Sse],
        // "The 64-bit mantissa of arguments of type long double belongs to
        // class X87, the 16-bit exponent plus 6 bytes of padding belongs to
        // class X87UP."
        Scalar::F80 => &[X87, X87Up],
        // "Arguments of types __float128, _Decimal128 and __m128 are split
        // into two halves. The least significant ones belong to class SSE,
        // the most significant one to class SSEUP."
        Scalar::F128 => &[Sse, SseUp],
    }
}

/// Merges the classes of every scalar leaf of `ty` (placed at byte `off` of
/// an aggregate of at most two eightbytes) into `classes`. Returns
/// `Ok(false)` when a leaf is misaligned (the aggregate is then MEMORY);
/// `Err` for a layout that does not fit its own size (a malformed type).
fn merge_leaves(ty: &Type, off: u32, classes: &mut [Class; 2]) -> Result<bool, String> {
    // Zero-sized members (empty structs, zero-length arrays) hold no data;
    // skipping them also bounds the array walk below (every element visited
    // has at least one byte, and the aggregate has at most 16).
    if ty.size() == 0 {
        return Ok(true);
    }
    let mut leaf = |s: Scalar, at: u32| -> Result<bool, String> {
        // Classification rule 1: an object that "contains unaligned fields"
        // has class MEMORY. This is the same test as
        // `Record::has_unaligned_fields` (a scalar leaf at an offset that is
        // not a multiple of its natural alignment), done here during the
        // walk.
        if at % s.align() != 0 {
            return Ok(false);
        }
        let first = (at / 8) as usize;
        for (k, c) in scalar_classes(s).iter().enumerate() {
            let slot = classes
                .get_mut(first + k)
                .ok_or_else(|| format!("a member at byte {at} lies outside the type's size"))?;
            *slot = merge(*slot, *c);
        }
        Ok(true)
    };
    match ty {
        Type::Void => Ok(true),
        Type::Scalar(s) => leaf(*s, off),
        Type::Pointer(_) => leaf(Scalar::Ptr, off),
        // "Arguments of complex T where T is one of the types float or
        // double are treated as if they are implemented as
        // struct complexT { T real; T imag; };". Other complex types are
        // larger than 16 bytes and never reach this walk.
        Type::Complex(s) => Ok(leaf(*s, off)? && leaf(*s, off + s.size())?),
        Type::Array(elem, _) => {
            // gcc (classify_argument, ARRAY_TYPE) classifies the *first*
            // element only, at the array's offset, and repeats its classes
            // over the array's eightbytes; then cleans the array up like
            // any aggregate. So only the first element is checked for
            // misaligned members: an array of a packed element type whose
            // size is not a multiple of its members' alignment (`struct
            // __attribute__((packed)) { char c; short s[2]; } a[3]`) has
            // misaligned members in later elements, and gcc still passes it
            // in registers (found by the gcc differential test, seed
            // 20261204005604). For elements whose members are all aligned
            // in every element this is the same as walking every leaf.
            let mut sub = [Class::NoClass; 2];
            if !merge_leaves(elem, off, &mut sub)? {
                return Ok(false);
            }
            let (first, esize) = ((off / 8) as usize, elem.size());
            let num = ((off + esize - 1) / 8) as usize - first + 1;
            let last = ((off + ty.size() - 1) / 8) as usize;
            if last > 1 {
                return Err(format!(
                    "a member at byte {off} lies outside the type's size"
                ));
            }
            let mut own = [Class::NoClass; 2];
            for i in 0..=(last - first) {
                own[first + i] = sub[first + i % num];
            }
            if !nested_cleanup(&mut own, first, last) {
                return Ok(false);
            }
            for (c, o) in classes.iter_mut().zip(own) {
                *c = merge(*c, o);
            }
            Ok(true)
        }
        Type::Record(r) => {
            // "Each field of an object is classified recursively": a nested
            // struct or union is classified on its own first, with the
            // post-merger cleanup, and only then merged into its parent (as
            // gcc's classify_argument does). The merge rules depend on the
            // order once x87 classes meet others, so a flat walk over all
            // leaves disagrees with gcc: `union { long double f; union {
            // double d; __int128 i; } v; }` is INTEGER, INTEGER (rdi:rsi)
            // only when the inner union is merged first (found by the gcc
            // differential test, seed 2700).
            let mut own = [Class::NoClass; 2];
            for f in &r.fields {
                let at = off
                    .checked_add(f.offset)
                    .ok_or_else(|| "member offset overflows".to_string())?;
                if !merge_leaves(&f.ty, at, &mut own)? {
                    return Ok(false);
                }
            }
            let first = (off / 8) as usize;
            let last = ((off + ty.size() - 1) / 8) as usize;
            if !nested_cleanup(&mut own, first, last.min(1)) {
                return Ok(false);
            }
            for (c, o) in classes.iter_mut().zip(own) {
                *c = merge(*c, o);
            }
            Ok(true)
        }
    }
}

/// The post-merger cleanup (psABI §3.2.3 rule 5) on the eightbytes
/// `first..=last` that a nested aggregate occupies; `false` when it makes
/// the aggregate MEMORY (which makes everything containing it MEMORY).
fn nested_cleanup(classes: &mut [Class; 2], first: usize, last: usize) -> bool {
    use Class::*;
    for i in first..=last {
        // (a) MEMORY anywhere: the whole aggregate is in memory.
        if classes[i] == Memory {
            return false;
        }
        // (b) X87UP not preceded by X87 (within the aggregate): memory.
        if classes[i] == X87Up && (i == first || classes[i - 1] != X87) {
            return false;
        }
        // (d) SSEUP not preceded by SSE or SSEUP becomes SSE.
        if classes[i] == SseUp && (i == first || !matches!(classes[i - 1], Sse | SseUp)) {
            classes[i] = Sse;
        }
    }
    true
}

/// psABI §3.2.3 classification rule 5, the post-merger cleanup, on an
/// aggregate of one or two eightbytes.
fn post_merge(classes: &mut [Class]) -> Classified {
    use Class::*;
    // (a) "If one of the classes is MEMORY, the whole argument is passed in
    // memory."
    if classes.contains(&Memory) {
        return Classified::Memory;
    }
    for i in 0..classes.len() {
        // (b) "If X87UP is not preceded by X87, the whole argument is passed
        // in memory." (So `union { long double ld; int i; }`, classes
        // INTEGER, X87UP, is MEMORY; gcc agrees since 4.4.)
        if classes[i] == X87Up && (i == 0 || classes[i - 1] != X87) {
            return Classified::Memory;
        }
        // (d) "If SSEUP is not preceded by SSE or SSEUP, it is converted to
        // SSE."
        if classes[i] == SseUp && (i == 0 || !matches!(classes[i - 1], Sse | SseUp)) {
            classes[i] = Sse;
        }
    }
    // (c) "If the size of the aggregate exceeds two eightbytes and the first
    // eightbyte isn't SSE or any other eightbyte isn't SSEUP, the whole
    // argument is passed in memory" is decided in `classify`: without vector
    // types, every aggregate over 16 bytes is MEMORY.
    Classified::Eightbytes(classes.to_vec())
}

/// Classifies a whole argument or result type (psABI §3.2.3
/// "Classification").
fn classify(ty: &Type) -> Result<Classified, String> {
    use Class::*;
    match ty {
        Type::Void => Err("an argument cannot have type void".into()),
        Type::Array(..) => Err(
            "an array cannot be passed or returned by value; C passes a pointer to its first element"
                .into(),
        ),
        Type::Scalar(s) => Ok(Classified::Eightbytes(scalar_classes(*s).to_vec())),
        Type::Pointer(_) => Ok(Classified::Eightbytes(vec![Integer])),
        Type::Complex(s) => match s {
            // `_Complex float` is one SSE eightbyte, `_Complex double` two
            // (treated as struct { T real; T imag; }).
            Scalar::F32 => Ok(Classified::Eightbytes(vec![Sse])),
            Scalar::F64 => Ok(Classified::Eightbytes(vec![Sse, Sse])),
            // "A variable of type complex long double is classified as type
            // COMPLEX_X87."
            Scalar::F80 => Ok(Classified::Eightbytes(vec![ComplexX87])),
            // 32 bytes: four eightbytes SSE, SSEUP, SSE, SSEUP, which cleanup
            // rule (c) sends to memory. gcc 12 passes `_Complex _Float128` on
            // the stack and returns it through a hidden pointer.
            Scalar::F128 => Ok(Classified::Memory),
            other => Err(format!("_Complex {} is not a C type", other.c_name())),
        },
        Type::Record(r) => {
            let size = r.size;
            if size == 0 {
                return Ok(Classified::Empty);
            }
            // Classification rule 1: "If the size of an object is larger than
            // two eightbytes [...] it has class MEMORY" (the later text's
            // exception for __m256/__m512 does not arise: jitffi has no vector
            // types). Deciding this first also keeps the leaf walk short.
            if size > 16 {
                return Ok(Classified::Memory);
            }
            // Rule 3: "If the size of the aggregate exceeds a single
            // eightbyte, each is classified separately. Each eightbyte gets
            // initialized to class NO_CLASS."
            let words = size.div_ceil(8) as usize;
            let mut classes = [NoClass; 2];
            if !merge_leaves(ty, 0, &mut classes)? {
                // Rule 1: "... or it contains unaligned fields, it has class
                // MEMORY."
                return Ok(Classified::Memory);
            }
            let classified = post_merge(&mut classes[..words]);
            if let Classified::Eightbytes(cs) = &classified {
                if let Some(i) = cs.iter().position(|c| *c == NoClass) {
                    return Err(format!(
                        "eightbyte {i} of {} holds only padding; gcc passes no register for it, \
                         which jitffi cannot express yet",
                        ty.c_spelling()
                    ));
                }
            }
            Ok(classified)
        }
    }
}

/// How the caller extends a narrow integer. The psABI only says (§3.2.3)
/// "When a value of type _Bool is returned or passed in a register or on
/// the stack, bit 0 contains the truth value and bits 1 to 7 shall be zero"
/// (older revisions: "the upper 63 bits of the eightbyte shall be zero");
/// gcc and clang extend every integer narrower than `int` to 32 bits
/// (`movsbl`/`movzwl`/`movzbl` before the call, checked with `gcc -O2 -S`),
/// and clang-compiled callees rely on it. A 32-bit register write also
/// clears bits 32–63, which meets the older `_Bool` wording. Results are
/// planned with the same extension.
fn narrow_ext(ty: &Type) -> Ext {
    match ty {
        Type::Scalar(Scalar::I8 | Scalar::I16) => Ext::Sign(32),
        Type::Scalar(Scalar::Bool | Scalar::U8 | Scalar::U16) => Ext::Zero(32),
        _ => Ext::None,
    }
}

/// Register parts for a value classified into `classes` (no MEMORY, no X87
/// classes, no NO_CLASS): one part per eightbyte holding the value's bytes in
/// it (a 12-byte struct's second part is 4 bytes); an SSE eightbyte followed
/// by SSEUP is one 16-byte part in one XMM register (psABI "Passing" rule 4:
/// "If the class is SSEUP, the eightbyte is passed in the next available
/// eightbyte chunk of the last used vector register").
fn register_parts(
    ty: &Type,
    classes: &[Class],
    gprs: &[u8],
    next_gpr: &mut usize,
    next_xmm: &mut u8,
) -> Vec<Part> {
    let size = ty.size();
    let ext = narrow_ext(ty);
    let mut parts = Vec::with_capacity(classes.len());
    let mut i = 0;
    while i < classes.len() {
        let offset = 8 * i as u32;
        let (loc, class, words) = match classes[i] {
            Class::Integer => {
                let r = gprs[*next_gpr];
                *next_gpr += 1;
                (Reg::Gpr(r), PartClass::Int, 1)
            }
            _ => {
                // SSE (an SSEUP never comes first after the cleanup).
                let r = *next_xmm;
                *next_xmm += 1;
                let words = if classes.get(i + 1) == Some(&Class::SseUp) {
                    2
                } else {
                    1
                };
                (Reg::Fpr(r), PartClass::Float, words)
            }
        };
        parts.push(Part {
            offset,
            size: (size - offset).min(8 * words as u32),
            loc: Loc::Reg(loc),
            class,
            ext,
        });
        i += words;
    }
    parts
}

/// Plans a call under the System V AMD64 psABI.
pub fn plan(sig: &Signature) -> Result<CallPlan, Unsupported> {
    let mut next_gpr = 0usize;
    let mut next_xmm = 0u8;

    // "Returning of Values" (psABI §3.2.3).
    let ret = if sig.ret.is_void() {
        RetPlan::Void
    } else {
        match classify(&sig.ret).map_err(Unsupported::ret)? {
            Classified::Empty => RetPlan::Void,
            // Rule 2: "If the type has class MEMORY, then the caller provides
            // space for the return value and passes the address of this
            // storage in %rdi as if it were the first argument to the
            // function. [...] On return %rax will contain the address that
            // has been passed in by the caller in %rdi."
            Classified::Memory => {
                next_gpr = 1;
                RetPlan::Indirect {
                    ptr_in: Loc::Reg(Reg::Gpr(RDI)),
                    ptr_out: Some(Reg::Gpr(RAX)),
                }
            }
            Classified::Eightbytes(cs) => RetPlan::Direct(ret_parts(&sig.ret, &cs)?),
        }
    };

    // "Passing" (psABI §3.2.3): registers are assigned left to right.
    let mut args = Vec::with_capacity(sig.args.len());
    let mut stack: u32 = 0;
    for (i, ty) in sig.args.iter().enumerate() {
        // Variadic arguments are classified and passed exactly like named
        // ones on SysV; only %al differs (below).
        let classified = classify(ty).map_err(|m| Unsupported::arg(i, m))?;
        let classes = match classified {
            Classified::Empty => {
                args.push(ArgPlan::Ignored);
                continue;
            }
            Classified::Memory => None,
            // "Passing" rule 6: "If the class is X87, X87UP or COMPLEX_X87,
            // it is passed in memory."
            Classified::Eightbytes(cs)
                if cs
                    .iter()
                    .any(|c| matches!(c, Class::X87 | Class::X87Up | Class::ComplexX87)) =>
            {
                None
            }
            Classified::Eightbytes(cs) => Some(cs),
        };
        if let Some(cs) = classes {
            let need_gpr = cs.iter().filter(|c| **c == Class::Integer).count();
            let need_xmm = cs.iter().filter(|c| **c == Class::Sse).count() as u8;
            // "If there are no registers available for any eightbyte of an
            // argument, the whole argument is passed on the stack. If
            // registers have already been assigned for some eightbytes of
            // such an argument, the assignments get reverted." Registers left
            // free stay available to later arguments (gcc: seven doubles,
            // struct { double a, b; }, double puts the struct on the stack
            // and the last double in xmm7).
            if next_gpr + need_gpr <= ARG_GPRS.len() && next_xmm + need_xmm <= ARG_XMMS {
                let parts = register_parts(ty, &cs, &ARG_GPRS, &mut next_gpr, &mut next_xmm);
                args.push(ArgPlan::Direct(parts));
                continue;
            }
        }
        let (part, end) = stack_part(ty, stack).map_err(|m| Unsupported::arg(i, m))?;
        stack = end;
        args.push(ArgPlan::Direct(vec![part]));
    }

    // §3.2.3 "The end of the input argument area shall be aligned on a 16
    // [...] byte boundary."
    // (`stack_part` keeps `stack` at most u32::MAX - 15.)
    let stack_size = align_up(stack, 16);

    Ok(CallPlan {
        abi: Abi::SysV64,
        args,
        ret,
        stack_size,
        shadow_space: 0,
        // SysV never passes by reference to a caller copy: MEMORY-class
        // arguments are copied into the argument area itself.
        copy_area_size: 0,
        // "For calls that may call functions that use varargs or stdargs
        // [...] %al is used as hidden argument to specify the number of
        // vector registers used. The contents of %al do not need to match
        // exactly the number of registers, but must be an upper bound on the
        // number of vector registers used and is in the range 0–8 inclusive."
        // We give the exact count.
        al: sig.variadic.then_some(next_xmm),
    })
}

/// Places an argument in the stack argument area at the first suitable
/// offset at or after `at`; returns its part and the end of its slot.
///
/// psABI §3.2.3: "The size of each argument gets rounded up to eightbytes"
/// (so every slot is 8-aligned), arguments "passed in memory are pushed on
/// the stack in reversed (right-to-left) order" (the first one at the lowest
/// address), and "arguments of type __int128 that are stored in memory must
/// be aligned on a 16-byte boundary". gcc aligns every stack slot to the
/// type's alignment (at least 8): long double, __int128 and 16-aligned
/// structs get 16-aligned slots (checked with `gcc -O2 -S`: five `long long`,
/// `__int128`, `long long` puts the __int128 at [rsp+0] and the last
/// `long long` in r9).
fn stack_part(ty: &Type, at: u32) -> Result<(Part, u32), String> {
    let align = ty.align().max(8);
    if align > 16 {
        // gcc realigns the caller's stack to 32 for a 32-aligned stack
        // argument; plans assume rsp is 16-aligned at the call.
        return Err(format!(
            "{} needs a {align}-byte aligned stack slot; only 16 is supported",
            ty.c_spelling()
        ));
    }
    let size = ty.size();
    let offset = align_up(at, align);
    let end = offset
        .checked_add(align_up(size, 8))
        .filter(|e| *e <= u32::MAX - 15)
        .ok_or_else(|| "argument area too large".to_string())?;
    // Scalars that fit an eightbyte move as integers or floats (with their
    // extension); anything else (aggregates, __int128, long double, complex
    // numbers) is copied as bytes.
    let class = match ty {
        Type::Scalar(s) if s.size() <= 8 && s.is_float() => PartClass::Float,
        Type::Scalar(s) if s.size() <= 8 => PartClass::Int,
        Type::Pointer(_) => PartClass::Int,
        _ => PartClass::Memory,
    };
    let part = Part {
        offset: 0,
        size,
        loc: Loc::Stack(offset),
        class,
        ext: if class == PartClass::Int {
            narrow_ext(ty)
        } else {
            Ext::None
        },
    };
    Ok((part, end))
}

/// Result parts for a value returned in registers (psABI §3.2.3 "Returning
/// of Values" rules 3–8).
fn ret_parts(ty: &Type, classes: &[Class]) -> Result<Vec<Part>, Unsupported> {
    use Class::*;
    match classes {
        // Rules 7 and 6: "If the class is X87, the value is returned on the
        // X87 stack in %st0 as 80-bit x87 number." "If the class is X87UP,
        // the value is returned together with the previous X87 value in
        // %st0." The part covers the 16 bytes of storage; an emitter stores
        // 10 of them with `fstp tword`.
        [X87, X87Up] => Ok(vec![x87_part(0, ty.size().min(16), 0)]),
        // Rule 8: "If the class is COMPLEX_X87, the real part of the value
        // is returned in %st0 and the imaginary part in %st1."
        [ComplexX87] => Ok(vec![x87_part(0, 16, 0), x87_part(16, 16, 1)]),
        cs if cs.iter().any(|c| matches!(c, X87 | X87Up | ComplexX87)) => Err(Unsupported::ret(
            format!(
                "{}: an x87 value mixed with other data in one result is not described by the psABI",
                ty.c_spelling()
            ),
        )),
        // Rules 3–5: INTEGER eightbytes take rax then rdx, SSE eightbytes
        // xmm0 then xmm1, SSEUP the upper half of the last used XMM.
        cs => {
            let (mut g, mut x) = (0usize, 0u8);
            let parts = register_parts(ty, cs, &RET_GPRS, &mut g, &mut x);
            debug_assert!(g <= RET_GPRS.len() && x <= RET_XMMS);
            Ok(parts)
        }
    }
}

fn x87_part(offset: u32, size: u32, st: u8) -> Part {
    Part {
        offset,
        size,
        loc: Loc::Reg(Reg::X87(st)),
        class: PartClass::X87,
        ext: Ext::None,
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built types; the table tests over C declarations are in
    //! tests/plan_sysv64.rs.
    use super::*;
    use crate::types::{layout_record, FieldDecl, RecordKind};
    use std::sync::Arc;

    fn s(x: Scalar) -> Type {
        Type::Scalar(x)
    }

    fn rec(kind: RecordKind, packed: bool, aligned: Option<u64>, members: Vec<Type>) -> Type {
        let members = members
            .into_iter()
            .map(|ty| FieldDecl {
                name: None,
                ty,
                aligned: None,
            })
            .collect();
        Type::Record(Arc::new(
            layout_record(kind, None, members, packed, aligned).unwrap(),
        ))
    }

    fn st(members: Vec<Type>) -> Type {
        rec(RecordKind::Struct, false, None, members)
    }

    fn un(members: Vec<Type>) -> Type {
        rec(RecordKind::Union, false, None, members)
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

    fn gpr(n: u8) -> Loc {
        Loc::Reg(Reg::Gpr(n))
    }

    fn xmm(n: u8) -> Loc {
        Loc::Reg(Reg::Fpr(n))
    }

    fn planned(ret: Type, args: Vec<Type>) -> CallPlan {
        let sig = Signature::new(Abi::SysV64, ret, args);
        let p = plan(&sig).unwrap();
        assert_eq!(p.validate(&sig), Ok(()), "{}", p.display(&sig));
        p
    }

    #[test]
    fn merge_rules() {
        use Class::*;
        assert_eq!(merge(Integer, Sse), Integer);
        assert_eq!(merge(Sse, NoClass), Sse);
        assert_eq!(merge(X87, Sse), Memory);
        assert_eq!(merge(X87, Integer), Integer);
        assert_eq!(merge(SseUp, Sse), Sse);
        assert_eq!(merge(Memory, Integer), Memory);
    }

    #[test]
    fn float_float_int_struct() {
        // DESIGN tricky cases 1 and 2: struct { float a, b; int c; }:
        // xmm0 <- bytes 0..8, edi <- bytes 8..12; returned in xmm0 + eax.
        let t = st(vec![s(Scalar::F32), s(Scalar::F32), s(Scalar::I32)]);
        let p = planned(t.clone(), vec![t]);
        assert_eq!(
            p.args[0],
            ArgPlan::Direct(vec![
                part(0, 8, xmm(0), PartClass::Float),
                part(8, 4, gpr(RDI), PartClass::Int)
            ])
        );
        assert_eq!(
            p.ret,
            RetPlan::Direct(vec![
                part(0, 8, xmm(0), PartClass::Float),
                part(8, 4, gpr(RAX), PartClass::Int)
            ])
        );
        assert_eq!((p.stack_size, p.al), (0, None));
    }

    #[test]
    fn big_struct_is_memory_and_sret() {
        // DESIGN tricky case 8: struct { ll a, b, c; } f(int): hidden result
        // pointer in rdi (returned in rax), the int moves to esi.
        let t = st(vec![s(Scalar::I64); 3]);
        let p = planned(t.clone(), vec![s(Scalar::I32), t]);
        assert_eq!(
            p.ret,
            RetPlan::Indirect {
                ptr_in: gpr(RDI),
                ptr_out: Some(Reg::Gpr(RAX))
            }
        );
        assert_eq!(
            p.args[0],
            ArgPlan::Direct(vec![part(0, 4, gpr(RSI), PartClass::Int)])
        );
        assert_eq!(
            p.args[1],
            ArgPlan::Direct(vec![part(0, 24, Loc::Stack(0), PartClass::Memory)])
        );
        assert_eq!(p.stack_size, 32);
    }

    #[test]
    fn long_double_and_int128() {
        // DESIGN tricky case 27 and 15 with hand-built types.
        let p = planned(
            s(Scalar::F80),
            vec![s(Scalar::F80), s(Scalar::I32), s(Scalar::F80)],
        );
        assert_eq!(
            p.args[0],
            ArgPlan::Direct(vec![part(0, 16, Loc::Stack(0), PartClass::Memory)])
        );
        assert_eq!(
            p.args[2],
            ArgPlan::Direct(vec![part(0, 16, Loc::Stack(16), PartClass::Memory)])
        );
        assert_eq!(p.ret, RetPlan::Direct(vec![x87_part(0, 16, 0)]));
        let p = planned(s(Scalar::I128), vec![s(Scalar::I128), s(Scalar::I128)]);
        assert_eq!(
            p.args[1],
            ArgPlan::Direct(vec![
                part(0, 8, gpr(RDX), PartClass::Int),
                part(8, 8, gpr(RCX), PartClass::Int)
            ])
        );
        assert_eq!(
            p.ret,
            RetPlan::Direct(vec![
                part(0, 8, gpr(RAX), PartClass::Int),
                part(8, 8, gpr(RDX), PartClass::Int)
            ])
        );
    }

    #[test]
    fn unions_with_long_double() {
        // union { long double ld; char c[16]; }: INTEGER, INTEGER (gcc: rdi,
        // rsi); union { long double ld; int i; }: MEMORY.
        let chars = Type::array(s(Scalar::I8), 16).unwrap();
        let a = un(vec![s(Scalar::F80), chars]);
        let b = un(vec![s(Scalar::F80), s(Scalar::I32)]);
        assert_eq!(
            classify(&a),
            Ok(Classified::Eightbytes(vec![Class::Integer, Class::Integer]))
        );
        assert_eq!(classify(&b), Ok(Classified::Memory));
    }

    #[test]
    fn packed_and_padding() {
        // Packed struct { char c; int i; }: misaligned int, MEMORY.
        let t = rec(
            RecordKind::Struct,
            true,
            None,
            vec![s(Scalar::I8), s(Scalar::I32)],
        );
        assert_eq!(classify(&t), Ok(Classified::Memory));
        // Packed but aligned members are classified normally.
        let t = rec(
            RecordKind::Struct,
            true,
            None,
            vec![s(Scalar::I32), s(Scalar::I32)],
        );
        assert_eq!(
            classify(&t),
            Ok(Classified::Eightbytes(vec![Class::Integer]))
        );
        // A padding-only eightbyte is refused, not guessed.
        let t = rec(RecordKind::Struct, false, Some(16), vec![s(Scalar::I32)]);
        assert!(classify(&t).is_err());
        let sig = Signature::new(Abi::SysV64, Type::Void, vec![s(Scalar::I32), t]);
        assert_eq!(plan(&sig).unwrap_err().arg, Some(1));
    }

    #[test]
    fn empty_and_zero_length() {
        let empty = st(vec![]);
        let zla = st(vec![Type::array(s(Scalar::I32), 0).unwrap()]);
        // Millions of empty elements: still no long walk (size 0 first).
        let many = st(vec![
            Type::array(st(vec![]), 1 << 30).unwrap(),
            s(Scalar::I8),
        ]);
        let p = planned(empty.clone(), vec![empty, zla, many]);
        assert_eq!(p.args[0], ArgPlan::Ignored);
        assert_eq!(p.args[1], ArgPlan::Ignored);
        assert_eq!(
            p.args[2],
            ArgPlan::Direct(vec![part(0, 1, gpr(RDI), PartClass::Int)])
        );
        assert_eq!(p.ret, RetPlan::Void);
    }

    #[test]
    fn bad_types_are_unsupported() {
        let sig = Signature::new(
            Abi::SysV64,
            Type::Void,
            vec![Type::array(s(Scalar::I32), 4).unwrap()],
        );
        assert_eq!(plan(&sig).unwrap_err().arg, Some(0));
        let sig = Signature::new(Abi::SysV64, Type::Void, vec![Type::Void]);
        assert_eq!(plan(&sig).unwrap_err().arg, Some(0));
        let sig = Signature::new(Abi::SysV64, Type::Complex(Scalar::I32), vec![]);
        assert_eq!(plan(&sig).unwrap_err().arg, None);
        let t = rec(RecordKind::Struct, false, Some(32), vec![s(Scalar::I32)]);
        let sig = Signature::new(Abi::SysV64, Type::Void, vec![t]);
        assert_eq!(plan(&sig).unwrap_err().arg, Some(0));
    }

    #[test]
    fn every_plan_validates() {
        // Many shapes, many positions: each plan is either refused or
        // passes validate(), and never panics.
        let chars = |n| Type::array(s(Scalar::U8), n).unwrap();
        let pool = vec![
            s(Scalar::Bool),
            s(Scalar::I8),
            s(Scalar::U16),
            s(Scalar::I32),
            s(Scalar::U64),
            s(Scalar::F32),
            s(Scalar::F64),
            s(Scalar::F80),
            s(Scalar::I128),
            s(Scalar::F128),
            Type::pointer("void"),
            Type::Complex(Scalar::F32),
            Type::Complex(Scalar::F64),
            Type::Complex(Scalar::F80),
            Type::Complex(Scalar::F128),
            st(vec![]),
            st(vec![chars(3)]),
            st(vec![chars(13)]),
            st(vec![s(Scalar::F32), s(Scalar::F32), s(Scalar::I32)]),
            st(vec![s(Scalar::F64), s(Scalar::F64)]),
            st(vec![s(Scalar::F64); 3]),
            st(vec![s(Scalar::F80)]),
            un(vec![s(Scalar::F80), s(Scalar::I32)]),
            un(vec![s(Scalar::F128), s(Scalar::F64)]),
            rec(
                RecordKind::Struct,
                true,
                None,
                vec![s(Scalar::I8), s(Scalar::I64)],
            ),
            rec(
                RecordKind::Struct,
                false,
                Some(16),
                vec![s(Scalar::I64), s(Scalar::I64)],
            ),
            rec(RecordKind::Struct, false, Some(16), vec![s(Scalar::I32)]),
            Type::Void,
        ];
        let mut planned = 0;
        for (i, ret) in pool.iter().enumerate() {
            for k in 0..pool.len() {
                // A rolling window of 12 arguments starting at k.
                let args: Vec<Type> = (0..12)
                    .map(|j| pool[(k + j * (i + 1)) % pool.len()].clone())
                    .collect();
                for variadic in [false, true] {
                    let mut sig = Signature::new(Abi::SysV64, ret.clone(), args.clone());
                    if variadic {
                        sig.variadic = true;
                        sig.fixed_args = 1;
                    }
                    if let Ok(p) = plan(&sig) {
                        assert_eq!(p.validate(&sig), Ok(()), "{}", p.display(&sig));
                        assert!(p.al.is_some() == variadic && p.al.unwrap_or(0) <= 8);
                        planned += 1;
                    }
                }
            }
        }
        assert!(planned > 100, "{planned}");
    }

    #[test]
    fn float128_is_one_xmm() {
        let p = planned(s(Scalar::F128), vec![s(Scalar::F64), s(Scalar::F128)]);
        assert_eq!(
            p.args[1],
            ArgPlan::Direct(vec![part(0, 16, xmm(1), PartClass::Float)])
        );
        assert_eq!(
            p.ret,
            RetPlan::Direct(vec![part(0, 16, xmm(0), PartClass::Float)])
        );
    }
}
