//! `ffi_type`: libffi's type descriptors, the exported `ffi_type_*` globals,
//! libffi's aggregate layout rule, and the translation of an `ffi_type` tree
//! into a jitffi [`Type`].

use crate::types::{layout_record, FieldDecl, RecordKind, Scalar, Type};

use super::{FfiAbi, FfiStatus, FFI_BAD_TYPEDEF};

/// `ffi_type` (ffi.h): `{ size_t size; unsigned short alignment;
/// unsigned short type; struct _ffi_type **elements; }`.
#[repr(C)]
#[derive(Debug)]
pub struct FfiType {
    pub size: usize,
    pub alignment: u16,
    pub type_: u16,
    /// For `FFI_TYPE_STRUCT`: a NULL-terminated array of member types; for
    /// `FFI_TYPE_COMPLEX`: `{ component, NULL }`.
    pub elements: *mut *mut FfiType,
}

// The `type` codes of ffi.h.
pub const FFI_TYPE_VOID: u16 = 0;
pub const FFI_TYPE_INT: u16 = 1;
pub const FFI_TYPE_FLOAT: u16 = 2;
pub const FFI_TYPE_DOUBLE: u16 = 3;
pub const FFI_TYPE_LONGDOUBLE: u16 = 4;
pub const FFI_TYPE_UINT8: u16 = 5;
pub const FFI_TYPE_SINT8: u16 = 6;
pub const FFI_TYPE_UINT16: u16 = 7;
pub const FFI_TYPE_SINT16: u16 = 8;
pub const FFI_TYPE_UINT32: u16 = 9;
pub const FFI_TYPE_SINT32: u16 = 10;
pub const FFI_TYPE_UINT64: u16 = 11;
pub const FFI_TYPE_SINT64: u16 = 12;
pub const FFI_TYPE_STRUCT: u16 = 13;
pub const FFI_TYPE_POINTER: u16 = 14;
pub const FFI_TYPE_COMPLEX: u16 = 15;

/// Nesting deeper than this is refused (a cyclic `elements` graph would
/// otherwise recurse forever, in libffi too).
const MAX_DEPTH: u32 = 256;

/// libffi's `initialize_aggregate` (prep_cif.c), step for step: each
/// member at the next multiple of its `alignment`, the struct aligned to the
/// largest member alignment, size rounded up to it; members whose `size` is
/// 0 are initialised first. Writes `size` and `alignment` back into `t` (as
/// libffi does, and as callers rely on) and the member offsets into
/// `offsets` when given. A zero-sized result is `FFI_BAD_TYPEDEF`.
///
/// # Safety
///
/// `t` must be NULL or point at a writable `ffi_type` whose `elements` is
/// NULL or a NULL-terminated array of valid `ffi_type` pointers (likewise
/// recursively); `offsets`, when given, must have room for one `size_t`
/// per member.
pub unsafe fn initialize_aggregate(
    t: *mut FfiType,
    mut offsets: Option<*mut usize>,
    depth: u32,
) -> Result<(), FfiStatus> {
    if t.is_null() || depth > MAX_DEPTH {
        return Err(FFI_BAD_TYPEDEF);
    }
    // SAFETY: t is non-null and valid per the contract.
    let ty = unsafe { &mut *t };
    if ty.elements.is_null() {
        return Err(FFI_BAD_TYPEDEF);
    }
    let mut size: usize = 0;
    let mut align: usize = 0;
    let mut p = ty.elements;
    loop {
        // SAFETY: elements is NULL-terminated; p never passes the NULL.
        let e = unsafe { *p };
        if e.is_null() {
            break;
        }
        // SAFETY: e is a member type pointer (valid per the contract).
        if unsafe { (*e).size } == 0 {
            // SAFETY: same contract, one level down.
            unsafe { initialize_aggregate(e, None, depth + 1)? };
        }
        // SAFETY: as above.
        let (esize, ealign) = unsafe { ((*e).size, (*e).alignment as usize) };
        let a = ealign.max(1);
        size = size.div_ceil(a).checked_mul(a).ok_or(FFI_BAD_TYPEDEF)?;
        if let Some(o) = offsets.as_mut() {
            // SAFETY: the caller gave room for one offset per member.
            unsafe {
                **o = size;
                *o = o.add(1);
            }
        }
        size = size.checked_add(esize).ok_or(FFI_BAD_TYPEDEF)?;
        align = align.max(ealign);
        // SAFETY: not yet at the terminator.
        p = unsafe { p.add(1) };
    }
    if align > u16::MAX as usize {
        return Err(FFI_BAD_TYPEDEF);
    }
    let a = align.max(1);
    size = size.div_ceil(a).checked_mul(a).ok_or(FFI_BAD_TYPEDEF)?;
    ty.size = size;
    ty.alignment = align as u16;
    if size == 0 {
        Err(FFI_BAD_TYPEDEF)
    } else {
        Ok(())
    }
}

/// How an ABI's `long double` is expressed as a jitffi type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDoubleMap {
    /// SysV x86-64: x87 extended.
    X87,
    /// AAPCS64: IEEE quad.
    Quad,
    /// `FFI_GNUW64`: gcc for Windows makes `long double` the 16-byte x87
    /// type, which the Microsoft x64 convention passes like any 16-byte
    /// aggregate: by reference to a caller copy, and returns through a hidden
    /// pointer ("Parameter passing": "Structs and unions of size 8, 16, 32,
    /// or 64 bits ... are passed as if they were integers of the same size.
    /// ... Any argument that doesn't fit in 8 bytes ... must be passed by
    /// reference"; "Return values": "Otherwise, the caller must allocate
    /// memory for the return value and pass a pointer to it"). So an opaque
    /// 16-byte, 16-aligned record is exactly right; its members are never
    /// classified.
    OpaqueRecord,
    /// `FFI_WIN64` (MSVC: `long double` is `double`, 8 bytes): not mappable
    /// from the 16-byte `ffi_type_longdouble` of this platform.
    Reject,
}

fn opaque_record(size: u32) -> Result<Type, FfiStatus> {
    // Two (or four) u64 members with the record aligned to 16: size and
    // alignment match the x87 long double (or its complex pair).
    let n = size / 8;
    let members = (0..n)
        .map(|_| FieldDecl {
            name: None,
            ty: Type::Scalar(Scalar::U64),
            aligned: None,
        })
        .collect();
    let r = layout_record(RecordKind::Struct, None, members, false, Some(16))
        .map_err(|_| FFI_BAD_TYPEDEF)?;
    Ok(Type::Record(std::sync::Arc::new(r)))
}

/// Translates an (initialised) `ffi_type` into a jitffi [`Type`].
///
/// # Safety
///
/// `t` must be NULL or point at a valid `ffi_type` whose aggregates have
/// been initialised (nonzero sizes), with NULL-terminated `elements`.
pub unsafe fn to_type(t: *const FfiType, ld: LongDoubleMap, depth: u32) -> Result<Type, FfiStatus> {
    if t.is_null() || depth > MAX_DEPTH {
        return Err(FFI_BAD_TYPEDEF);
    }
    // SAFETY: non-null and valid per the contract.
    let ty = unsafe { &*t };
    let s = |x| Ok(Type::Scalar(x));
    match ty.type_ {
        FFI_TYPE_VOID => Ok(Type::Void),
        FFI_TYPE_INT | FFI_TYPE_SINT32 => s(Scalar::I32),
        FFI_TYPE_UINT32 => s(Scalar::U32),
        FFI_TYPE_UINT8 => s(Scalar::U8),
        FFI_TYPE_SINT8 => s(Scalar::I8),
        FFI_TYPE_UINT16 => s(Scalar::U16),
        FFI_TYPE_SINT16 => s(Scalar::I16),
        FFI_TYPE_UINT64 => s(Scalar::U64),
        FFI_TYPE_SINT64 => s(Scalar::I64),
        FFI_TYPE_FLOAT => s(Scalar::F32),
        FFI_TYPE_DOUBLE => s(Scalar::F64),
        FFI_TYPE_POINTER => Ok(Type::pointer("void")),
        FFI_TYPE_LONGDOUBLE => match ld {
            LongDoubleMap::X87 => s(Scalar::F80),
            LongDoubleMap::Quad => s(Scalar::F128),
            LongDoubleMap::OpaqueRecord => opaque_record(16),
            LongDoubleMap::Reject => Err(FFI_BAD_TYPEDEF),
        },
        FFI_TYPE_COMPLEX => {
            if ty.elements.is_null() {
                return Err(FFI_BAD_TYPEDEF);
            }
            // SAFETY: elements is a valid array with at least one entry
            // (the component, then NULL).
            let c = unsafe { *ty.elements };
            if c.is_null() {
                return Err(FFI_BAD_TYPEDEF);
            }
            // SAFETY: c is a valid ffi_type.
            match unsafe { (*c).type_ } {
                FFI_TYPE_FLOAT => Ok(Type::Complex(Scalar::F32)),
                FFI_TYPE_DOUBLE => Ok(Type::Complex(Scalar::F64)),
                FFI_TYPE_LONGDOUBLE => match ld {
                    LongDoubleMap::X87 => Ok(Type::Complex(Scalar::F80)),
                    LongDoubleMap::Quad => Ok(Type::Complex(Scalar::F128)),
                    LongDoubleMap::OpaqueRecord => opaque_record(32),
                    LongDoubleMap::Reject => Err(FFI_BAD_TYPEDEF),
                },
                // GNU C's `_Complex int` and friends (libffi.complex/
                // complex_int.c): laid out and passed as a struct of the
                // real and imaginary parts, which is how gcc treats them
                // (the psABI has no complex-integer rule of its own).
                FFI_TYPE_INT | FFI_TYPE_UINT8..=FFI_TYPE_SINT64 => {
                    // SAFETY: c is a valid scalar ffi_type.
                    let part = unsafe { to_type(c, ld, depth + 1)? };
                    let members = (0..2)
                        .map(|_| FieldDecl {
                            name: None,
                            ty: part.clone(),
                            aligned: None,
                        })
                        .collect();
                    let r = layout_record(RecordKind::Struct, None, members, false, None)
                        .map_err(|_| FFI_BAD_TYPEDEF)?;
                    Ok(Type::Record(std::sync::Arc::new(r)))
                }
                _ => Err(FFI_BAD_TYPEDEF),
            }
        }
        FFI_TYPE_STRUCT => {
            if ty.elements.is_null() {
                return Err(FFI_BAD_TYPEDEF);
            }
            let mut members = Vec::new();
            let mut p = ty.elements as *const *mut FfiType;
            loop {
                // SAFETY: NULL-terminated array.
                let e = unsafe { *p };
                if e.is_null() {
                    break;
                }
                // SAFETY: e is a valid member type.
                let m = unsafe { to_type(e, ld, depth + 1)? };
                if m.is_void() {
                    return Err(FFI_BAD_TYPEDEF);
                }
                members.push(FieldDecl {
                    name: None,
                    ty: m,
                    aligned: None,
                });
                // SAFETY: not yet at the terminator.
                p = unsafe { p.add(1) };
            }
            // The ffi_type may claim a larger alignment than its members
            // have; honour it (it changes the layout only by padding).
            let want_align = ty.alignment as u64;
            let aligned = (want_align.is_power_of_two()).then_some(want_align);
            let r = layout_record(RecordKind::Struct, None, members, false, aligned)
                .map_err(|_| FFI_BAD_TYPEDEF)?;
            // libffi lays out by the members' own ffi_type sizes and
            // alignments; a type whose declared layout differs from the C
            // layout of its members cannot be described to the planner.
            if r.size as usize != ty.size || r.align != want_align as u32 {
                return Err(FFI_BAD_TYPEDEF);
            }
            Ok(Type::Record(std::sync::Arc::new(r)))
        }
        _ => Err(FFI_BAD_TYPEDEF),
    }
}

/// How `long double` is passed for an `ffi_abi` value of this host.
#[cfg(target_arch = "x86_64")]
pub fn long_double_map(abi: FfiAbi) -> LongDoubleMap {
    use super::abi::*;
    match abi {
        FFI_WIN64 => LongDoubleMap::Reject,
        FFI_GNUW64 => LongDoubleMap::OpaqueRecord,
        _ => LongDoubleMap::X87,
    }
}

/// How `long double` is passed for an `ffi_abi` value of this host:
/// AAPCS64 §5.1 (Table 3, "Quad-precision Floating Point") / C.3: `long
/// double` is IEEE binary128 in a Q register on Linux; Apple arm64 makes
/// it `double`, which this 16-byte `ffi_type_longdouble` cannot describe.
#[cfg(not(target_arch = "x86_64"))]
pub fn long_double_map(_abi: FfiAbi) -> LongDoubleMap {
    if cfg!(target_vendor = "apple") {
        LongDoubleMap::Reject
    } else {
        LongDoubleMap::Quad
    }
}
