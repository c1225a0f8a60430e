//! C types and their layouts, as gcc computes them for each ABI's data model.
//!
//! This module knows C and the data model (`long` width, `char` signedness,
//! `long double` format); it knows nothing about registers. Every [`Type`]
//! carries its size and alignment, and every record carries its field
//! offsets, so the ABI classifiers never recompute a layout.

use std::fmt;
use std::sync::Arc;

/// Largest object size jitffi accepts for a by-value type (1 GiB). Larger
/// sizes are rejected by the layout code with a clear error: nobody passes a
/// gigabyte by value, and keeping sizes small keeps all offset arithmetic in
/// `u32` in the plans.
pub const MAX_TYPE_SIZE: u64 = 1 << 30;

/// A calling convention: a platform's rules for where arguments go.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Abi {
    /// System V AMD64 psABI (Linux, BSD, macOS on x86-64).
    SysV64,
    /// Microsoft x64 calling convention.
    Win64,
    /// Arm's Procedure Call Standard for the 64-bit architecture (Linux).
    Aapcs64,
    /// Apple's arm64 variant of AAPCS64 (macOS, iOS).
    AppleArm64,
}

/// The instruction set an ABI runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Isa {
    X86_64,
    Aarch64,
}

impl Abi {
    /// All four ABIs, in a fixed order.
    pub const ALL: [Abi; 4] = [Abi::SysV64, Abi::Win64, Abi::Aapcs64, Abi::AppleArm64];

    /// The name used on the command line and in messages.
    pub fn name(self) -> &'static str {
        match self {
            Abi::SysV64 => "sysv64",
            Abi::Win64 => "win64",
            Abi::Aapcs64 => "aapcs64",
            Abi::AppleArm64 => "apple-arm64",
        }
    }

    /// Parses a name as printed by [`Abi::name`].
    pub fn from_name(name: &str) -> Option<Abi> {
        Abi::ALL.into_iter().find(|a| a.name() == name)
    }

    /// The ABI that C code on this host uses by default, if jitffi knows one.
    pub fn host() -> Option<Abi> {
        if cfg!(all(target_arch = "x86_64", windows)) {
            Some(Abi::Win64)
        } else if cfg!(target_arch = "x86_64") {
            Some(Abi::SysV64)
        } else if cfg!(all(target_arch = "aarch64", target_vendor = "apple")) {
            Some(Abi::AppleArm64)
        } else if cfg!(target_arch = "aarch64") {
            Some(Abi::Aapcs64)
        } else {
            None
        }
    }

    /// The instruction set the ABI belongs to.
    pub fn isa(self) -> Isa {
        match self {
            Abi::SysV64 | Abi::Win64 => Isa::X86_64,
            Abi::Aapcs64 | Abi::AppleArm64 => Isa::Aarch64,
        }
    }

    /// Whether code for this ABI can be executed on the current host.
    pub fn executable_here(self) -> bool {
        match self.isa() {
            Isa::X86_64 => cfg!(target_arch = "x86_64"),
            // Apple arm64 code runs on any AArch64 (only its callees are
            // missing on Linux); jitffi's own trampolines and closures can
            // still talk to each other.
            Isa::Aarch64 => cfg!(target_arch = "aarch64"),
        }
    }

    /// The C data model that goes with the ABI.
    pub fn data_model(self) -> DataModel {
        match self {
            Abi::SysV64 => DataModel {
                long_bytes: 8,
                char_signed: true,
                long_double: LongDouble::X87,
            },
            // Microsoft x64: LLP64, and MSVC's long double is double.
            Abi::Win64 => DataModel {
                long_bytes: 4,
                char_signed: true,
                long_double: LongDouble::Double,
            },
            // AAPCS64 §10.1 (arm C/C++ language mappings): char is unsigned,
            // long double is IEEE binary128.
            Abi::Aapcs64 => DataModel {
                long_bytes: 8,
                char_signed: false,
                long_double: LongDouble::Quad,
            },
            // Apple: "the char type is signed", "long double is double".
            Abi::AppleArm64 => DataModel {
                long_bytes: 8,
                char_signed: true,
                long_double: LongDouble::Double,
            },
        }
    }
}

impl fmt::Display for Abi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `long double` is on a platform.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LongDouble {
    /// x87 80-bit extended, stored in 16 bytes with 16-byte alignment.
    X87,
    /// IEEE 754 binary128.
    Quad,
    /// Same as `double`.
    Double,
}

/// The data-model facts the C front end needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DataModel {
    /// `sizeof(long)`: 8 on LP64, 4 on LLP64 (Win64).
    pub long_bytes: u8,
    /// Whether plain `char` is signed.
    pub char_signed: bool,
    /// The format of `long double`.
    pub long_double: LongDouble,
}

/// A scalar machine type. Enums are `I32`/`U32`; `long` maps to `I32` or
/// `I64` by the data model; `long double` to `F64`, `F80` or `F128`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scalar {
    /// `_Bool`: one byte, 0 or 1.
    Bool,
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    I128,
    U128,
    F32,
    F64,
    /// x87 80-bit extended precision (16 bytes of storage).
    F80,
    /// IEEE binary128.
    F128,
    /// Any data or function pointer.
    Ptr,
}

impl Scalar {
    /// `sizeof`.
    pub fn size(self) -> u32 {
        match self {
            Scalar::Bool | Scalar::I8 | Scalar::U8 => 1,
            Scalar::I16 | Scalar::U16 => 2,
            Scalar::I32 | Scalar::U32 | Scalar::F32 => 4,
            Scalar::I64 | Scalar::U64 | Scalar::F64 | Scalar::Ptr => 8,
            Scalar::I128 | Scalar::U128 | Scalar::F80 | Scalar::F128 => 16,
        }
    }

    /// `_Alignof`. All scalars are naturally aligned on the four ABIs.
    pub fn align(self) -> u32 {
        self.size()
    }

    /// Floating-point (including x87 and quad).
    pub fn is_float(self) -> bool {
        matches!(self, Scalar::F32 | Scalar::F64 | Scalar::F80 | Scalar::F128)
    }

    /// Integer types (including `_Bool` and pointers).
    pub fn is_integer(self) -> bool {
        !self.is_float()
    }

    /// Signed integer types.
    pub fn is_signed(self) -> bool {
        matches!(
            self,
            Scalar::I8 | Scalar::I16 | Scalar::I32 | Scalar::I64 | Scalar::I128
        )
    }

    /// The name gcc would print for the scalar on an LP64 target.
    pub fn c_name(self) -> &'static str {
        match self {
            Scalar::Bool => "_Bool",
            Scalar::I8 => "signed char",
            Scalar::U8 => "unsigned char",
            Scalar::I16 => "short",
            Scalar::U16 => "unsigned short",
            Scalar::I32 => "int",
            Scalar::U32 => "unsigned int",
            Scalar::I64 => "long long",
            Scalar::U64 => "unsigned long long",
            Scalar::I128 => "__int128",
            Scalar::U128 => "unsigned __int128",
            Scalar::F32 => "float",
            Scalar::F64 => "double",
            Scalar::F80 | Scalar::F128 => "long double",
            Scalar::Ptr => "void *",
        }
    }
}

/// A C type with its layout.
///
/// Types are cheap to clone (records and array elements are shared).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Type {
    /// `void`: only as a return type.
    Void,
    /// Integers, floats, `_Bool`, enums.
    Scalar(Scalar),
    /// A pointer; `pointee` is the C spelling of what it points at, without
    /// qualifiers (`"char"`, `"void"`, `"struct node"`, `"int (const void *)"`).
    Pointer(Arc<str>),
    /// A struct or union.
    Record(Arc<Record>),
    /// `T[n]`. Arrays are only passed by value inside records.
    Array(Arc<Type>, u32),
    /// `_Complex` of `F32`, `F64`, `F80` or `F128`.
    Complex(Scalar),
}

impl Type {
    /// A pointer to `pointee` (its C spelling).
    pub fn pointer(pointee: &str) -> Type {
        Type::Pointer(Arc::from(pointee))
    }

    /// `sizeof`.
    pub fn size(&self) -> u32 {
        match self {
            Type::Void => 0,
            Type::Scalar(s) => s.size(),
            Type::Pointer(_) => 8,
            Type::Record(r) => r.size,
            // Checked against MAX_TYPE_SIZE when the array was built.
            Type::Array(t, n) => t.size() * n,
            Type::Complex(s) => 2 * s.size(),
        }
    }

    /// `_Alignof`.
    pub fn align(&self) -> u32 {
        match self {
            Type::Void => 1,
            Type::Scalar(s) => s.align(),
            Type::Pointer(_) => 8,
            Type::Record(r) => r.align,
            Type::Array(t, _) => t.align(),
            Type::Complex(s) => s.align(),
        }
    }

    /// Builds `elem[len]`, rejecting arrays larger than [`MAX_TYPE_SIZE`].
    pub fn array(elem: Type, len: u64) -> Result<Type, LayoutError> {
        // The length itself must fit the u32 the array stores, even for
        // zero-sized elements.
        if len > u32::MAX as u64 {
            return Err(LayoutError::TooLarge);
        }
        (elem.size() as u64)
            .checked_mul(len)
            .filter(|s| *s <= MAX_TYPE_SIZE)
            .ok_or(LayoutError::TooLarge)?;
        if matches!(elem, Type::Void) {
            return Err(LayoutError::VoidMember);
        }
        Ok(Type::Array(Arc::new(elem), len as u32))
    }

    /// Whether this is `void`.
    pub fn is_void(&self) -> bool {
        matches!(self, Type::Void)
    }

    /// Whether this is a struct, union or array (C's aggregates, plus unions).
    pub fn is_aggregate(&self) -> bool {
        matches!(self, Type::Record(_) | Type::Array(..))
    }

    /// The record, if this is a struct or union.
    pub fn as_record(&self) -> Option<&Record> {
        match self {
            Type::Record(r) => Some(r),
            _ => None,
        }
    }

    /// Calls `f(offset, scalar)` for every scalar leaf of the type, in memory
    /// order, with its byte offset from the start of the type. Pointers are
    /// reported as [`Scalar::Ptr`]; complex numbers as their two parts. For a
    /// union every member is visited (members overlap).
    pub fn for_each_scalar(&self, base: u32, f: &mut dyn FnMut(u32, Scalar)) {
        match self {
            Type::Void => {}
            Type::Scalar(s) => f(base, *s),
            Type::Pointer(_) => f(base, Scalar::Ptr),
            Type::Complex(s) => {
                f(base, *s);
                f(base + s.size(), *s);
            }
            Type::Array(t, n) => {
                let step = t.size();
                for i in 0..*n {
                    t.for_each_scalar(base + i * step, f);
                }
            }
            Type::Record(r) => {
                for field in &r.fields {
                    field.ty.for_each_scalar(base + field.offset, f);
                }
            }
        }
    }

    /// A member's spelling inside an anonymous record: nested anonymous
    /// records are abbreviated.
    fn spell_nested(&self) -> String {
        match self {
            Type::Record(r) => r.spell(false),
            Type::Array(t, n) => format!("{}[{n}]", t.spell_nested()),
            other => other.c_spelling(),
        }
    }

    /// The C spelling of the type (for messages, plans and perf maps).
    pub fn c_spelling(&self) -> String {
        match self {
            Type::Void => "void".into(),
            Type::Scalar(s) => s.c_name().into(),
            Type::Pointer(p) => {
                if p.ends_with(')') {
                    // Function pointer: "int (const void *)" -> "int (*)(const void *)".
                    match p.find('(') {
                        Some(i) => format!("{}(*){}", &p[..i], &p[i..]),
                        None => format!("{p} *"),
                    }
                } else {
                    format!("{p} *")
                }
            }
            Type::Record(r) => r.c_spelling(),
            Type::Array(t, n) => format!("{}[{n}]", t.c_spelling()),
            Type::Complex(s) => format!("_Complex {}", s.c_name()),
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.c_spelling())
    }
}

/// Struct or union.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordKind {
    Struct,
    Union,
}

/// A member of a record, at its computed offset.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Field {
    /// `None` for an anonymous struct/union member.
    pub name: Option<String>,
    pub ty: Type,
    /// Byte offset from the start of the record.
    pub offset: u32,
}

/// A laid-out struct or union.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Record {
    pub kind: RecordKind,
    /// The tag (`struct tag`), or a typedef name for anonymous records.
    pub tag: Option<String>,
    pub fields: Vec<Field>,
    pub size: u32,
    pub align: u32,
    /// `__attribute__((packed))`: some member may be misaligned.
    pub packed: bool,
}

impl Record {
    /// `struct tag`, `union tag`, or the members spelled out when anonymous
    /// (an anonymous record nested inside is abbreviated to `struct {…}`,
    /// so the spelling stays linear in the declaration's length).
    pub fn c_spelling(&self) -> String {
        self.spell(true)
    }

    fn spell(&self, expand: bool) -> String {
        let kw = match self.kind {
            RecordKind::Struct => "struct",
            RecordKind::Union => "union",
        };
        match &self.tag {
            Some(t) => format!("{kw} {t}"),
            None if !expand => format!("{kw} {{…}}"),
            None => {
                let mut s = format!("{kw} {{");
                for f in &self.fields {
                    s.push(' ');
                    s.push_str(&f.ty.spell_nested());
                    if let Some(n) = &f.name {
                        s.push(' ');
                        s.push_str(n);
                    }
                    s.push(';');
                }
                s.push_str(" }");
                s
            }
        }
    }

    /// Whether any scalar leaf sits at an offset that is not a multiple of
    /// its natural alignment (possible only in packed records).
    pub fn has_unaligned_fields(&self) -> bool {
        // Only the first element of an array is checked, as gcc's x86-64
        // classifier does (it classifies an array by its first element):
        // a packed element type whose size is not a multiple of its
        // members' alignment leaves later elements misaligned, and gcc
        // does not look at them. The walk is linear in the declaration,
        // not in the array lengths.
        fn unaligned(ty: &Type, base: u32) -> bool {
            match ty {
                Type::Void => false,
                Type::Scalar(s) => base % s.align() != 0,
                Type::Pointer(_) => base % 8 != 0,
                Type::Complex(s) => base % s.align() != 0,
                Type::Array(t, n) => *n > 0 && unaligned(t, base),
                Type::Record(r) => r.fields.iter().any(|f| unaligned(&f.ty, base + f.offset)),
            }
        }
        self.fields.iter().any(|f| unaligned(&f.ty, f.offset))
    }
}

/// Why a layout could not be computed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The object would exceed [`MAX_TYPE_SIZE`].
    TooLarge,
    /// A member or element of type `void`.
    VoidMember,
    /// `aligned(N)` with N not a power of two, or above 2^28.
    BadAlignment(u64),
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LayoutError::TooLarge => write!(f, "type is larger than {MAX_TYPE_SIZE} bytes"),
            LayoutError::VoidMember => write!(f, "member has type void"),
            LayoutError::BadAlignment(n) => {
                write!(
                    f,
                    "requested alignment {n} is not a power of two up to 2^28"
                )
            }
        }
    }
}

impl std::error::Error for LayoutError {}

/// One member as declared, before layout.
#[derive(Clone, Debug)]
pub struct FieldDecl {
    pub name: Option<String>,
    pub ty: Type,
    /// `__attribute__((aligned(N)))` on the member.
    pub aligned: Option<u64>,
}

/// Lays out a struct or union exactly as gcc does on the four ABIs
/// (no bit-fields; those are rejected by the parser).
///
/// - Each member is placed at the next multiple of its alignment: its
///   natural alignment, or 1 in a packed record, raised by a member
///   `aligned(N)` (gcc: "packed ... unless a larger value is specified
///   with the aligned attribute").
/// - The record's alignment is the largest member alignment, raised by a
///   record `aligned(N)`; its size is rounded up to that alignment.
/// - Union members all sit at offset 0.
pub fn layout_record(
    kind: RecordKind,
    tag: Option<String>,
    members: Vec<FieldDecl>,
    packed: bool,
    aligned: Option<u64>,
) -> Result<Record, LayoutError> {
    fn check_align(n: u64) -> Result<u64, LayoutError> {
        if n == 0 || !n.is_power_of_two() || n > (1 << 28) {
            Err(LayoutError::BadAlignment(n))
        } else {
            Ok(n)
        }
    }
    let mut offset: u64 = 0;
    let mut size: u64 = 0;
    let mut align: u64 = 1;
    let mut fields = Vec::with_capacity(members.len());
    for m in members {
        if m.ty.is_void() {
            return Err(LayoutError::VoidMember);
        }
        let natural = if packed { 1 } else { m.ty.align() as u64 };
        let a = match m.aligned {
            Some(n) => natural.max(check_align(n)?),
            None => natural,
        };
        align = align.max(a);
        let at = match kind {
            RecordKind::Struct => offset.div_ceil(a) * a,
            RecordKind::Union => 0,
        };
        let end = at + m.ty.size() as u64;
        if end > MAX_TYPE_SIZE {
            return Err(LayoutError::TooLarge);
        }
        offset = end;
        size = size.max(end);
        fields.push(Field {
            name: m.name,
            ty: m.ty,
            offset: at as u32,
        });
    }
    if let Some(n) = aligned {
        align = align.max(check_align(n)?);
    }
    let size = size.div_ceil(align) * align;
    if size > MAX_TYPE_SIZE {
        return Err(LayoutError::TooLarge);
    }
    Ok(Record {
        kind,
        tag,
        fields,
        size: size as u32,
        align: align as u32,
        packed,
    })
}

/// A function type: what a trampoline or closure is compiled from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Signature {
    /// The calling convention.
    pub abi: Abi,
    /// The return type (`Type::Void` for none).
    pub ret: Type,
    /// All arguments of one call: the fixed ones, then the variadic ones.
    pub args: Vec<Type>,
    /// How many of `args` are named parameters; the rest are variadic.
    pub fixed_args: usize,
    /// Whether the function is declared with `...`.
    pub variadic: bool,
    /// The declared function name, if any.
    pub name: Option<String>,
}

impl Signature {
    /// A non-variadic signature.
    pub fn new(abi: Abi, ret: Type, args: Vec<Type>) -> Signature {
        let fixed_args = args.len();
        Signature {
            abi,
            ret,
            args,
            fixed_args,
            variadic: false,
            name: None,
        }
    }

    /// Whether argument `i` is in the variadic part.
    pub fn is_variadic_arg(&self, i: usize) -> bool {
        i >= self.fixed_args
    }

    /// Offsets of each argument in a packed argument frame (each at the next
    /// multiple of its alignment), and the frame's total size.
    pub fn frame_layout(&self) -> (Vec<u32>, u32) {
        let mut off = 0u32;
        let mut offsets = Vec::with_capacity(self.args.len());
        for t in &self.args {
            let a = t.align().max(1);
            off = off.div_ceil(a) * a;
            offsets.push(off);
            off += t.size();
        }
        (offsets, off.div_ceil(16) * 16)
    }

    /// Bytes a return buffer must hold: the return type's size rounded up to
    /// a multiple of 8 (so register-sized stores never overflow), at least 8,
    /// or 0 for `void`.
    pub fn ret_buffer_size(&self) -> usize {
        if self.ret.is_void() {
            0
        } else {
            (self.ret.size().div_ceil(8) * 8).max(8) as usize
        }
    }

    /// The declaration in C syntax, e.g. `double cos(double)`; variadic
    /// types are written after the ellipsis.
    pub fn c_decl(&self) -> String {
        let mut s = format!(
            "{} {}(",
            self.ret.c_spelling(),
            self.name.as_deref().unwrap_or("")
        );
        let mut parts: Vec<String> = self.args[..self.fixed_args]
            .iter()
            .map(|t| t.c_spelling())
            .collect();
        if self.variadic {
            parts.push("...".into());
            parts.extend(self.args[self.fixed_args..].iter().map(|t| t.c_spelling()));
        }
        if parts.is_empty() {
            parts.push("void".into());
        }
        s.push_str(&parts.join(", "));
        s.push(')');
        s
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.c_decl())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(ty: Type) -> FieldDecl {
        FieldDecl {
            name: None,
            ty,
            aligned: None,
        }
    }

    #[test]
    fn struct_padding_and_tail() {
        // struct { char c; int i; char d; }: offsets 0, 4, 8; size 12 (gcc).
        let r = layout_record(
            RecordKind::Struct,
            None,
            vec![
                f(Type::Scalar(Scalar::I8)),
                f(Type::Scalar(Scalar::I32)),
                f(Type::Scalar(Scalar::I8)),
            ],
            false,
            None,
        )
        .unwrap();
        let offs: Vec<u32> = r.fields.iter().map(|f| f.offset).collect();
        assert_eq!(offs, [0, 4, 8]);
        assert_eq!((r.size, r.align), (12, 4));
    }

    #[test]
    fn packed_and_aligned() {
        // struct __attribute__((packed)) { char c; int i; }: size 5, align 1.
        let r = layout_record(
            RecordKind::Struct,
            None,
            vec![f(Type::Scalar(Scalar::I8)), f(Type::Scalar(Scalar::I32))],
            true,
            None,
        )
        .unwrap();
        assert_eq!((r.fields[1].offset, r.size, r.align), (1, 5, 1));
        assert!(r.has_unaligned_fields());
        // struct __attribute__((aligned(16))) { int i; }: size 16, align 16.
        let r = layout_record(
            RecordKind::Struct,
            None,
            vec![f(Type::Scalar(Scalar::I32))],
            false,
            Some(16),
        )
        .unwrap();
        assert_eq!((r.size, r.align), (16, 16));
    }

    #[test]
    fn huge_array_is_an_error() {
        assert_eq!(
            Type::array(Type::Scalar(Scalar::U8), 1 << 40),
            Err(LayoutError::TooLarge)
        );
    }
}
