//! Recursive-descent parser for C declarations (C11 6.7), with gcc's
//! `__attribute__((packed))` / `aligned(N)` and `__int128`.
//!
//! Declarators are parsed into a [`Declarator`] tree first and then applied
//! to the base type inside-out (C11 6.7.6: the declarator nearest the
//! identifier binds first).

use std::collections::HashMap;
use std::sync::Arc;

use super::lex::{char_value, int_value, tokenize, Kind, Token};
use super::ParseError;
use crate::types::{
    layout_record, Abi, DataModel, FieldDecl, LayoutError, LongDouble, Record, RecordKind, Scalar,
    Signature, Type,
};

/// How deeply declarations, declarators and expressions may nest.
pub(crate) const MAX_DEPTH: u32 = 64;
/// The most `*` one declarator may have.
const MAX_POINTERS: usize = 64;
/// How deeply records and arrays may nest inside one another (keeps every
/// recursive walk over a [`Type`] shallow).
pub(crate) const MAX_TYPE_DEPTH: u32 = 64;
/// The alignment `__attribute__((aligned))` without an argument requests:
/// gcc's `__BIGGEST_ALIGNMENT__`, 16 on x86-64 and AArch64.
const BIGGEST_ALIGNMENT: u64 = 16;

type PResult<T> = Result<T, ParseError>;

fn err<T>(offset: usize, message: impl Into<String>) -> PResult<T> {
    Err(ParseError {
        offset,
        message: message.into(),
    })
}

/// A type as the parser sees it: complete object types (and `void`), plus
/// the kinds C allows only in some places.
#[derive(Clone, Debug)]
pub(crate) enum DType {
    /// A complete object type or `void`, with its C spelling (unqualified).
    Obj(Type, Arc<str>),
    /// A struct, union or enum that is declared but not (yet) defined.
    Incomplete(TagKind, Arc<str>),
    /// `T[]`: element type and its spelling.
    Unsized(Type, Arc<str>),
    /// A function type.
    Func(Arc<FuncType>),
}

/// The tag namespace's three kinds (C11 6.2.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TagKind {
    Struct,
    Union,
    Enum,
}

impl TagKind {
    fn keyword(self) -> &'static str {
        match self {
            TagKind::Struct => "struct",
            TagKind::Union => "union",
            TagKind::Enum => "enum",
        }
    }
}

/// A function type. `var_args` are the call-shape types written after `...`,
/// meaningful only for the declared function itself.
#[derive(Debug)]
pub(crate) struct FuncType {
    pub ret: DType,
    pub ret_offset: usize,
    pub params: Vec<(DType, usize)>,
    pub variadic: bool,
    pub var_args: Vec<(DType, usize)>,
    pub spelling: Arc<str>,
}

impl DType {
    fn spelling(&self) -> Arc<str> {
        match self {
            DType::Obj(_, s) => s.clone(),
            DType::Incomplete(k, t) => format!("{} {t}", k.keyword()).into(),
            DType::Unsized(_, s) => format!("{s}[]").into(),
            DType::Func(f) => f.spelling.clone(),
        }
    }

    fn same_as(&self, other: &DType) -> bool {
        match (self, other) {
            (DType::Obj(a, _), DType::Obj(b, _)) => a == b,
            (DType::Incomplete(k1, t1), DType::Incomplete(k2, t2)) => k1 == k2 && t1 == t2,
            (DType::Unsized(a, _), DType::Unsized(b, _)) => a == b,
            (DType::Func(a), DType::Func(b)) => a.spelling == b.spelling,
            _ => false,
        }
    }
}

/// What a struct/union/enum tag names.
#[derive(Clone, Debug)]
pub(crate) enum TagDef {
    Record(Arc<Record>),
    /// The enum's integer type.
    Enum(Scalar),
}

/// The names a translation unit has defined.
#[derive(Clone, Debug, Default)]
pub(crate) struct Scope {
    typedefs: HashMap<String, DType>,
    tags: HashMap<String, TagDef>,
    consts: HashMap<String, i128>,
}

impl Scope {
    /// Adds everything in `other` (already checked for conflicts).
    pub(crate) fn merge(&mut self, other: Scope) {
        self.typedefs.extend(other.typedefs);
        self.tags.extend(other.tags);
        self.consts.extend(other.consts);
    }
}

/// gcc attributes that matter for layout, gathered from one attribute list.
#[derive(Clone, Copy, Debug, Default)]
struct Attrs {
    /// Offset of a `packed` attribute.
    packed: Option<usize>,
    /// Largest `aligned(N)` requested, with its offset.
    aligned: Option<(u64, usize)>,
}

impl Attrs {
    fn add(&mut self, other: Attrs) {
        if self.packed.is_none() {
            self.packed = other.packed;
        }
        if let Some((n, off)) = other.aligned {
            if self.aligned.is_none_or(|(m, _)| n > m) {
                self.aligned = Some((n, off));
            }
        }
    }

    /// Errors if any layout attribute is present where none is supported.
    fn reject(&self, place: &str) -> PResult<()> {
        if let Some(off) = self.packed {
            return err(
                off,
                format!("attribute 'packed' is not supported on {place}"),
            );
        }
        if let Some((_, off)) = self.aligned {
            return err(
                off,
                format!("attribute 'aligned' is not supported on {place}"),
            );
        }
        Ok(())
    }
}

/// Attributes jitffi accepts and ignores: they do not change types or layouts.
const IGNORED_ATTRIBUTES: &[&str] = &[
    "noreturn",
    "nonnull",
    "format",
    "format_arg",
    "unused",
    "used",
    "deprecated",
    "unavailable",
    "nothrow",
    "leaf",
    "pure",
    "const",
    "warn_unused_result",
    "malloc",
    "visibility",
    "always_inline",
    "noinline",
    "gnu_inline",
    "artificial",
    "cold",
    "hot",
    "returns_nonnull",
    "returns_twice",
    "access",
    "alloc_size",
    "alloc_align",
    "sentinel",
    "may_alias",
    "weak",
    "nodiscard",
    "maybe_unused",
    "fd_arg",
    "fd_arg_read",
    "fd_arg_write",
    "null_terminated_string_arg",
    "designated_init",
    "flatten",
    "no_instrument_function",
    "externally_visible",
    "noclone",
    "noipa",
    "optimize",
    "target",
    "section",
    "error",
    "warning",
    "counted_by",
];

/// Keywords that start a type or qualify one (used to tell a parenthesised
/// declarator from a parameter list, and typedef names from declarator names).
const SPECIFIER_KEYWORDS: &[&str] = &[
    "void",
    "char",
    "short",
    "int",
    "long",
    "float",
    "double",
    "signed",
    "__signed",
    "__signed__",
    "unsigned",
    "_Bool",
    "bool",
    "_Complex",
    "__complex",
    "__complex__",
    "__int128",
    "struct",
    "union",
    "enum",
    "const",
    "__const",
    "__const__",
    "volatile",
    "__volatile",
    "__volatile__",
    "restrict",
    "__restrict",
    "__restrict__",
    "_Atomic",
    "_Alignas",
    "typedef",
    "extern",
    "static",
    "register",
    "auto",
    "inline",
    "__inline",
    "__inline__",
    "_Noreturn",
    "__extension__",
    "_Thread_local",
    "__thread",
    "__attribute__",
    "__attribute",
];

const QUALIFIERS: &[&str] = &[
    "const",
    "__const",
    "__const__",
    "volatile",
    "__volatile",
    "__volatile__",
    "restrict",
    "__restrict",
    "__restrict__",
];

/// Storage classes and function specifiers: accepted and ignored
/// (`typedef` is handled separately).
const IGNORED_SPECIFIERS: &[&str] = &[
    "extern",
    "static",
    "register",
    "auto",
    "inline",
    "__inline",
    "__inline__",
    "_Noreturn",
    "__extension__",
    "_Thread_local",
    "__thread",
];

/// Where a declarator appears: decides array decay and which incomplete
/// forms are allowed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Function parameter: arrays and functions decay to pointers.
    Param,
    /// Anything else.
    Other,
}

/// A parsed declarator before it is applied to its base type.
#[derive(Debug, Default)]
struct Declarator {
    /// Offsets of the `*`s, left to right.
    pointers: Vec<usize>,
    /// A parenthesised inner declarator.
    inner: Option<Box<Declarator>>,
    /// The declared name and its offset (in the innermost declarator).
    name: Option<(String, usize)>,
    /// `[n]` and `(params)` suffixes, left to right.
    suffixes: Vec<Suffix>,
    /// Attributes written after the declarator.
    attrs: Attrs,
}

impl Declarator {
    fn name(&self) -> Option<&(String, usize)> {
        match &self.inner {
            Some(d) => d.name(),
            None => self.name.as_ref(),
        }
    }

    /// Whether the declarator derives nothing (a bare name or nothing).
    fn is_plain(&self) -> bool {
        self.pointers.is_empty() && self.suffixes.is_empty() && self.inner.is_none()
    }
}

#[derive(Debug)]
enum Suffix {
    /// `[n]` or `[]`.
    Array(Option<u64>, usize),
    /// `(params)`, already resolved (parameter types do not depend on the
    /// declarator around them).
    Func(Params, usize),
}

#[derive(Debug)]
struct Params {
    params: Vec<(DType, usize)>,
    variadic: bool,
    var_args: Vec<(DType, usize)>,
}

/// Declaration specifiers, gathered.
struct Specs {
    start: usize,
    typedef: bool,
    base: DType,
    /// Attributes in the specifier list: they apply to the declaration.
    attrs: Attrs,
    /// `_Alignas` on the declaration.
    alignas: Option<(u64, usize)>,
    /// The specifiers defined an anonymous struct or union (a candidate
    /// anonymous member).
    anonymous_record: bool,
    /// The specifiers defined or declared a tag (`struct s {...};` is a
    /// complete declaration without declarators).
    declares_tag: bool,
}

/// What to parse.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Definitions only.
    Define,
    /// Definitions, then one function declaration.
    Signature,
}

pub(crate) struct Parser<'a> {
    src: &'a str,
    toks: Vec<Token>,
    pos: usize,
    depth: u32,
    abi: Abi,
    dm: DataModel,
    base: &'a Scope,
    /// Definitions made by this text.
    pub(crate) local: Scope,
}

/// The <stdint.h>/<stddef.h> names jitffi knows without a header, for an ABI.
fn builtin_typedef(name: &str, abi: Abi) -> Option<Scalar> {
    use Scalar::*;
    Some(match name {
        "int8_t" => I8,
        "uint8_t" => U8,
        "int16_t" => I16,
        "uint16_t" => U16,
        "int32_t" => I32,
        "uint32_t" => U32,
        "int64_t" | "intptr_t" | "ssize_t" | "ptrdiff_t" | "intmax_t" => I64,
        "uint64_t" | "uintptr_t" | "size_t" | "uintmax_t" => U64,
        "__int128_t" => I128,
        "__uint128_t" => U128,
        "char16_t" => U16,
        "char32_t" => U32,
        // wchar_t: int on x86-64 Linux and Apple; unsigned int on AArch64
        // Linux (AAPCS64 §10.1.1); unsigned short on Windows.
        "wchar_t" => match abi {
            Abi::SysV64 | Abi::AppleArm64 => I32,
            Abi::Aapcs64 => U32,
            Abi::Win64 => U16,
        },
        _ => return None,
    })
}

/// `va_list` for an ABI.
fn va_list_type(abi: Abi) -> Type {
    let field = |name: &str, ty: Type| FieldDecl {
        name: Some(name.to_string()),
        ty,
        aligned: None,
    };
    let record = |tag: &str, fields: Vec<FieldDecl>| {
        layout_record(
            RecordKind::Struct,
            Some(tag.to_string()),
            fields,
            false,
            None,
        )
        .map(|r| Type::Record(Arc::new(r)))
    };
    let built = match abi {
        // SysV psABI §3.5.7: `typedef struct __va_list_tag { unsigned int
        // gp_offset, fp_offset; void *overflow_arg_area, *reg_save_area; }
        // va_list[1];` (an array, so it decays to a pointer as a parameter).
        Abi::SysV64 => record(
            "__va_list_tag",
            vec![
                field("gp_offset", Type::Scalar(Scalar::U32)),
                field("fp_offset", Type::Scalar(Scalar::U32)),
                field("overflow_arg_area", Type::pointer("void")),
                field("reg_save_area", Type::pointer("void")),
            ],
        )
        .and_then(|t| Type::array(t, 1)),
        // AAPCS64 §10.1.5 (Appendix B): `struct __va_list { void *__stack,
        // *__gr_top, *__vr_top; int __gr_offs, __vr_offs; }`, passed by value.
        Abi::Aapcs64 => record(
            "__va_list",
            vec![
                field("__stack", Type::pointer("void")),
                field("__gr_top", Type::pointer("void")),
                field("__vr_top", Type::pointer("void")),
                field("__gr_offs", Type::Scalar(Scalar::I32)),
                field("__vr_offs", Type::Scalar(Scalar::I32)),
            ],
        ),
        // Microsoft x64 and Apple arm64: `char *`.
        Abi::Win64 | Abi::AppleArm64 => Ok(Type::pointer("char")),
    };
    // The layouts above are fixed and small; they cannot fail.
    built.unwrap_or_else(|_| Type::pointer("char"))
}

fn layout_error(offset: usize, e: LayoutError, what: &str) -> ParseError {
    ParseError {
        offset,
        message: format!("{what}: {e}"),
    }
}

/// Inserts `[n]` after the element spelling (so `int[4]` becomes
/// `int[3][4]`).
fn array_spelling(elem: &Type, elem_sp: &str, dims: &str) -> String {
    match (elem, elem_sp.find('[')) {
        (Type::Array(..), Some(i)) => format!("{}{dims}{}", &elem_sp[..i], &elem_sp[i..]),
        _ => format!("{elem_sp}{dims}"),
    }
}

impl<'a> Parser<'a> {
    pub(crate) fn new(src: &'a str, abi: Abi, base: &'a Scope) -> PResult<Parser<'a>> {
        Ok(Parser {
            src,
            toks: tokenize(src)?,
            pos: 0,
            depth: 0,
            abi,
            dm: abi.data_model(),
            base,
            local: Scope::default(),
        })
    }

    // ----- token helpers -------------------------------------------------

    fn tok(&self) -> Token {
        self.toks[self.pos.min(self.toks.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> Token {
        self.toks[(self.pos + n).min(self.toks.len() - 1)]
    }

    fn text(&self, t: Token) -> &'a str {
        &self.src[t.start..t.end]
    }

    fn off(&self) -> usize {
        self.tok().start
    }

    fn bump(&mut self) -> Token {
        let t = self.tok();
        if t.kind != Kind::Eof {
            self.pos += 1;
        }
        t
    }

    fn is_punct(&self, p: &str) -> bool {
        let t = self.tok();
        t.kind == Kind::Punct && self.text(t) == p
    }

    fn is_ident(&self, word: &str) -> bool {
        let t = self.tok();
        t.kind == Kind::Ident && self.text(t) == word
    }

    fn eat_punct(&mut self, p: &str) -> bool {
        if self.is_punct(p) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// A description of the current token for "expected X, found Y".
    fn found(&self) -> String {
        let t = self.tok();
        match t.kind {
            Kind::Eof => "end of input".into(),
            _ => format!("'{}'", self.text(t)),
        }
    }

    fn expect_punct(&mut self, p: &str, context: &str) -> PResult<()> {
        if self.eat_punct(p) {
            Ok(())
        } else {
            err(
                self.off(),
                format!("expected '{p}' {context}, found {}", self.found()),
            )
        }
    }

    fn enter(&mut self) -> PResult<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return err(
                self.off(),
                format!("declaration nested too deeply (limit {MAX_DEPTH})"),
            );
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    // ----- scope ---------------------------------------------------------

    fn lookup_typedef(&self, name: &str) -> Option<DType> {
        let d = self
            .local
            .typedefs
            .get(name)
            .or_else(|| self.base.typedefs.get(name))
            .cloned();
        if d.is_some() {
            return d;
        }
        if let Some(s) = builtin_typedef(name, self.abi) {
            return Some(DType::Obj(Type::Scalar(s), name.into()));
        }
        if matches!(name, "va_list" | "__builtin_va_list" | "__gnuc_va_list") {
            return Some(DType::Obj(va_list_type(self.abi), name.into()));
        }
        None
    }

    fn lookup_tag(&self, name: &str) -> Option<&TagDef> {
        self.local
            .tags
            .get(name)
            .or_else(|| self.base.tags.get(name))
    }

    fn lookup_const(&self, name: &str) -> Option<i128> {
        self.local
            .consts
            .get(name)
            .or_else(|| self.base.consts.get(name))
            .copied()
    }

    /// Whether the current token can start a type name.
    fn starts_type(&self) -> bool {
        let t = self.tok();
        if t.kind != Kind::Ident {
            return false;
        }
        let w = self.text(t);
        SPECIFIER_KEYWORDS.contains(&w) || self.lookup_typedef(w).is_some()
    }

    // ----- attributes ----------------------------------------------------

    /// Parses any number of `__attribute__((...))` lists.
    fn attributes(&mut self) -> PResult<Attrs> {
        let mut attrs = Attrs::default();
        while self.is_ident("__attribute__") || self.is_ident("__attribute") {
            self.bump();
            self.expect_punct("(", "after '__attribute__'")?;
            self.expect_punct("(", "after '__attribute__('")?;
            loop {
                if self.is_punct(")") {
                    break;
                }
                if self.eat_punct(",") {
                    continue;
                }
                let t = self.tok();
                if t.kind != Kind::Ident {
                    return err(
                        t.start,
                        format!("expected an attribute name, found {}", self.found()),
                    );
                }
                self.bump();
                let raw = self.text(t);
                let name = raw
                    .strip_prefix("__")
                    .and_then(|n| n.strip_suffix("__"))
                    .unwrap_or(raw);
                match name {
                    "packed" => {
                        attrs.packed = Some(t.start);
                    }
                    "aligned" => {
                        let n = if self.eat_punct("(") {
                            let v = self.const_expr()?;
                            self.expect_punct(")", "after the alignment")?;
                            if v <= 0 || v > (1 << 28) || !(v as u64).is_power_of_two() {
                                return err(
                                    t.start,
                                    format!(
                                        "requested alignment {v} is not a power of two up to 2^28"
                                    ),
                                );
                            }
                            v as u64
                        } else {
                            BIGGEST_ALIGNMENT
                        };
                        attrs.add(Attrs {
                            packed: None,
                            aligned: Some((n, t.start)),
                        });
                    }
                    _ if IGNORED_ATTRIBUTES.contains(&name) => self.skip_balanced_args()?,
                    "vector_size"
                    | "mode"
                    | "ms_abi"
                    | "sysv_abi"
                    | "regparm"
                    | "vectorcall"
                    | "stdcall"
                    | "fastcall"
                    | "cdecl"
                    | "scalar_storage_order"
                    | "transparent_union"
                    | "ms_struct"
                    | "gcc_struct"
                    | "aarch64_vector_pcs" => {
                        return err(t.start, format!("attribute '{raw}' is not supported"))
                    }
                    _ => return err(t.start, format!("unknown attribute '{raw}'")),
                }
            }
            self.expect_punct(")", "to close the attribute list")?;
            self.expect_punct(")", "to close '__attribute__'")?;
        }
        Ok(attrs)
    }

    /// Skips `( ... )` with balanced parentheses, if present.
    fn skip_balanced_args(&mut self) -> PResult<()> {
        if !self.is_punct("(") {
            return Ok(());
        }
        let open = self.off();
        let mut level = 0usize;
        loop {
            let t = self.bump();
            match (t.kind, self.text(t)) {
                (Kind::Eof, _) => return err(open, "unbalanced '(' in attribute arguments"),
                (Kind::Punct, "(") => level += 1,
                (Kind::Punct, ")") => {
                    level -= 1;
                    if level == 0 {
                        return Ok(());
                    }
                }
                _ => {}
            }
        }
    }

    /// Skips an `asm("name")` label after a declarator.
    fn asm_label(&mut self) -> PResult<()> {
        while self.is_ident("__asm__") || self.is_ident("__asm") || self.is_ident("asm") {
            self.bump();
            if !self.is_punct("(") {
                return err(
                    self.off(),
                    format!("expected '(' after 'asm', found {}", self.found()),
                );
            }
            self.skip_balanced_args()?;
        }
        Ok(())
    }

    // ----- declaration specifiers ---------------------------------------

    /// Parses declaration specifiers (C11 6.7.1-6.7.5).
    fn specifiers(&mut self, allow_typedef: bool) -> PResult<Specs> {
        self.enter()?;
        let r = self.specifiers_inner(allow_typedef);
        self.leave();
        r
    }

    fn specifiers_inner(&mut self, allow_typedef: bool) -> PResult<Specs> {
        let start = self.off();
        let mut typedef = false;
        let mut attrs = Attrs::default();
        let mut alignas: Option<(u64, usize)> = None;
        // Counts of each type keyword, with the words as written.
        let mut words: Vec<(&'a str, usize)> = Vec::new();
        let mut named: Option<DType> = None;
        let mut anonymous_record = false;
        let mut declares_tag = false;
        let mut any = false;
        loop {
            let t = self.tok();
            if t.kind != Kind::Ident {
                break;
            }
            let w = self.text(t);
            if QUALIFIERS.contains(&w) || IGNORED_SPECIFIERS.contains(&w) {
                self.bump();
                any = true;
                continue;
            }
            match w {
                "typedef" => {
                    if !allow_typedef {
                        return err(t.start, "'typedef' is not allowed here");
                    }
                    self.bump();
                    typedef = true;
                    any = true;
                }
                "__attribute__" | "__attribute" => {
                    attrs.add(self.attributes()?);
                    any = true;
                }
                "_Alignas" => {
                    self.bump();
                    self.expect_punct("(", "after '_Alignas'")?;
                    let n = if self.starts_type() {
                        let ty = self.type_name_inner()?;
                        ty.align() as u64
                    } else {
                        let v = self.const_expr()?;
                        if !(0..=(1 << 28)).contains(&v)
                            || (v != 0 && !(v as u64).is_power_of_two())
                        {
                            return err(
                                t.start,
                                format!("requested alignment {v} is not a power of two up to 2^28"),
                            );
                        }
                        v as u64
                    };
                    self.expect_punct(")", "after the '_Alignas' operand")?;
                    // _Alignas(0) has no effect (C11 6.7.5p6).
                    if n > 0 && alignas.is_none_or(|(m, _)| n > m) {
                        alignas = Some((n, t.start));
                    }
                    any = true;
                }
                "_Atomic" => return err(t.start, "'_Atomic' is not supported"),
                "void" | "char" | "short" | "int" | "long" | "float" | "double" | "signed"
                | "__signed" | "__signed__" | "unsigned" | "_Bool" | "bool" | "_Complex"
                | "__complex" | "__complex__" | "__int128" => {
                    if named.is_some() {
                        return err(
                            t.start,
                            format!("cannot combine '{w}' with the type before it"),
                        );
                    }
                    self.bump();
                    words.push((w, t.start));
                    any = true;
                }
                "struct" | "union" | "enum" => {
                    if named.is_some() || !words.is_empty() {
                        return err(
                            t.start,
                            format!("cannot combine '{w}' with the type before it"),
                        );
                    }
                    self.bump();
                    let (d, anon) = if w == "enum" {
                        (self.enum_specifier()?, false)
                    } else {
                        let kind = if w == "struct" {
                            RecordKind::Struct
                        } else {
                            RecordKind::Union
                        };
                        self.record_specifier(kind)?
                    };
                    named = Some(d);
                    anonymous_record = anon;
                    declares_tag = true;
                    any = true;
                }
                _ => {
                    if named.is_some() || !words.is_empty() {
                        // The declarator's name.
                        break;
                    }
                    match self.lookup_typedef(w) {
                        Some(mut d) => {
                            // A typedef of a struct declared before its
                            // definition refers to the definition now.
                            if let DType::Incomplete(kind, tag) = &d {
                                if let Some(c) = self.complete_tag(*kind, tag) {
                                    d = c;
                                }
                            }
                            self.bump();
                            named = Some(d);
                            any = true;
                        }
                        None => {
                            return err(t.start, format!("unknown type name '{w}'"));
                        }
                    }
                }
            }
        }
        let base = match named {
            Some(d) => d,
            None if words.is_empty() => {
                let what = if any {
                    format!("expected a type name, found {}", self.found())
                } else {
                    format!("expected a type, found {}", self.found())
                };
                return err(self.off(), what);
            }
            None => self.resolve_words(&words)?,
        };
        Ok(Specs {
            start,
            typedef,
            base,
            attrs,
            alignas,
            anonymous_record,
            declares_tag,
        })
    }

    /// The type named by a list of type keywords in any order (C11 6.7.2p2).
    fn resolve_words(&self, words: &[(&str, usize)]) -> PResult<DType> {
        let (mut void, mut bool_, mut char_, mut short, mut int, mut long) = (0, 0, 0, 0, 0, 0);
        let (mut signed, mut unsigned, mut float, mut double, mut complex, mut i128_) =
            (0, 0, 0, 0, 0, 0);
        for (w, _) in words {
            match *w {
                "void" => void += 1,
                "_Bool" | "bool" => bool_ += 1,
                "char" => char_ += 1,
                "short" => short += 1,
                "int" => int += 1,
                "long" => long += 1,
                "signed" | "__signed" | "__signed__" => signed += 1,
                "unsigned" => unsigned += 1,
                "float" => float += 1,
                "double" => double += 1,
                "_Complex" | "__complex" | "__complex__" => complex += 1,
                _ => i128_ += 1,
            }
        }
        let start = words.first().map_or(self.off(), |w| w.1);
        let spelled = || words.iter().map(|w| w.0).collect::<Vec<_>>().join(" ");
        let invalid = || err(start, format!("invalid type '{}'", spelled()));
        if signed > 0 && unsigned > 0 {
            return err(
                start,
                format!("both 'signed' and 'unsigned' in '{}'", spelled()),
            );
        }
        if [
            void, bool_, char_, short, int, signed, unsigned, float, double, complex, i128_,
        ]
        .iter()
        .any(|&c| c > 1)
            || long > 2
        {
            return invalid();
        }
        let sign = signed + unsigned;
        let total =
            void + bool_ + char_ + short + int + long + sign + float + double + complex + i128_;
        let uns = unsigned > 0;
        let (sc, name): (Scalar, &str) = if void == 1 {
            if total != 1 {
                return invalid();
            }
            return Ok(DType::Obj(Type::Void, "void".into()));
        } else if bool_ == 1 {
            if total != 1 {
                return invalid();
            }
            (Scalar::Bool, "_Bool")
        } else if char_ == 1 {
            if total != 1 + sign {
                return invalid();
            }
            match (signed, unsigned) {
                (1, _) => (Scalar::I8, "signed char"),
                (_, 1) => (Scalar::U8, "unsigned char"),
                _ if self.dm.char_signed => (Scalar::I8, "char"),
                _ => (Scalar::U8, "char"),
            }
        } else if i128_ == 1 {
            if total != 1 + sign {
                return invalid();
            }
            if uns {
                (Scalar::U128, "unsigned __int128")
            } else {
                (Scalar::I128, "__int128")
            }
        } else if float == 1 || double == 1 || complex == 1 {
            if sign + short + int + char_ > 0 || float + double > 1 {
                if complex == 1 && float + double == 0 {
                    return err(start, "complex integer types are not supported");
                }
                return invalid();
            }
            let (s, n) = if float == 1 {
                if long > 0 {
                    return invalid();
                }
                (Scalar::F32, "float")
            } else if long == 1 {
                let s = match self.dm.long_double {
                    LongDouble::X87 => Scalar::F80,
                    LongDouble::Quad => Scalar::F128,
                    LongDouble::Double => Scalar::F64,
                };
                (s, "long double")
            } else if long == 0 {
                // `_Complex` alone is `_Complex double` (a gcc extension).
                (Scalar::F64, "double")
            } else {
                return invalid();
            };
            if complex == 1 {
                return Ok(DType::Obj(Type::Complex(s), format!("_Complex {n}").into()));
            }
            (s, n)
        } else if short == 1 {
            if long > 0 {
                return invalid();
            }
            if uns {
                (Scalar::U16, "unsigned short")
            } else {
                (Scalar::I16, "short")
            }
        } else if long == 1 {
            let wide = self.dm.long_bytes == 8;
            match (uns, wide) {
                (false, true) => (Scalar::I64, "long"),
                (true, true) => (Scalar::U64, "unsigned long"),
                (false, false) => (Scalar::I32, "long"),
                (true, false) => (Scalar::U32, "unsigned long"),
            }
        } else if long == 2 {
            if uns {
                (Scalar::U64, "unsigned long long")
            } else {
                (Scalar::I64, "long long")
            }
        } else if uns {
            (Scalar::U32, "unsigned int")
        } else {
            (Scalar::I32, "int")
        };
        Ok(DType::Obj(Type::Scalar(sc), name.into()))
    }

    /// The complete type a tag names now, if it is defined.
    fn complete_tag(&self, kind: TagKind, tag: &str) -> Option<DType> {
        match (kind, self.lookup_tag(tag)?) {
            (TagKind::Enum, TagDef::Enum(s)) => {
                Some(DType::Obj(Type::Scalar(*s), format!("enum {tag}").into()))
            }
            (TagKind::Struct, TagDef::Record(r)) if r.kind == RecordKind::Struct => Some(
                DType::Obj(Type::Record(r.clone()), format!("struct {tag}").into()),
            ),
            (TagKind::Union, TagDef::Record(r)) if r.kind == RecordKind::Union => Some(DType::Obj(
                Type::Record(r.clone()),
                format!("union {tag}").into(),
            )),
            _ => None,
        }
    }

    /// Checks that `tag` is not already a different kind of tag.
    fn check_tag_kind(&self, kind: TagKind, tag: &str, offset: usize) -> PResult<()> {
        let other = match self.lookup_tag(tag) {
            None => return Ok(()),
            Some(TagDef::Enum(_)) => TagKind::Enum,
            Some(TagDef::Record(r)) => match r.kind {
                RecordKind::Struct => TagKind::Struct,
                RecordKind::Union => TagKind::Union,
            },
        };
        if other != kind {
            return err(
                offset,
                format!(
                    "'{} {tag}' was defined as '{} {tag}'",
                    kind.keyword(),
                    other.keyword()
                ),
            );
        }
        Ok(())
    }

    /// `struct`/`union` after the keyword (C11 6.7.2.1). Returns the type
    /// and whether it is an anonymous definition.
    fn record_specifier(&mut self, kind: RecordKind) -> PResult<(DType, bool)> {
        let tkind = match kind {
            RecordKind::Struct => TagKind::Struct,
            RecordKind::Union => TagKind::Union,
        };
        let kw = tkind.keyword();
        let mut attrs = self.attributes()?;
        let mut tag: Option<(String, usize)> = None;
        let t = self.tok();
        if t.kind == Kind::Ident && !self.is_ident("__attribute__") && !self.is_ident("__attribute")
        {
            let name = self.text(t);
            if SPECIFIER_KEYWORDS.contains(&name) {
                return err(
                    t.start,
                    format!("expected a tag or '{{' after '{kw}', found '{name}'"),
                );
            }
            self.bump();
            tag = Some((name.to_string(), t.start));
            attrs.add(self.attributes()?);
        }
        if !self.is_punct("{") {
            let Some((tag, off)) = tag else {
                return err(
                    self.off(),
                    format!(
                        "expected a tag or '{{' after '{kw}', found {}",
                        self.found()
                    ),
                );
            };
            attrs.reject(&format!("a reference to '{kw} {tag}'"))?;
            self.check_tag_kind(tkind, &tag, off)?;
            let d = self
                .complete_tag(tkind, &tag)
                .unwrap_or_else(|| DType::Incomplete(tkind, tag.into()));
            return Ok((d, false));
        }
        let open = self.off();
        self.bump();
        if let Some((tag, off)) = &tag {
            self.check_tag_kind(tkind, tag, *off)?;
        }
        let mut members: Vec<FieldDecl> = Vec::new();
        let mut offsets: Vec<usize> = Vec::new();
        let mut flexible: Option<(usize, String)> = None;
        while !self.is_punct("}") {
            if self.tok().kind == Kind::Eof {
                return err(open, format!("unterminated '{kw}' body: expected '}}'"));
            }
            if self.eat_punct(";") {
                continue;
            }
            if let Some((off, name)) = &flexible {
                return err(
                    *off,
                    format!("flexible array member '{name}' is not the last member"),
                );
            }
            self.member_declaration(&mut members, &mut offsets, &mut flexible)?;
        }
        self.bump();
        attrs.add(self.attributes()?);
        if let Some((off, name)) = &flexible {
            if kind == RecordKind::Union {
                return err(*off, format!("flexible array member '{name}' in a union"));
            }
            if members.len() == 1 {
                return err(
                    *off,
                    format!("flexible array member '{name}' in a struct with no other members"),
                );
            }
        }
        // Duplicate member names, including those of anonymous members
        // (C11 6.7.2.1p13: their members are members of the outer record).
        let mut seen: HashMap<String, ()> = HashMap::new();
        for (m, off) in members.iter().zip(&offsets) {
            let mut names = Vec::new();
            match &m.name {
                Some(n) => names.push(n.clone()),
                None => collect_anonymous_names(&m.ty, &mut names),
            }
            for n in names {
                if seen.insert(n.clone(), ()).is_some() {
                    return err(*off, format!("duplicate member '{n}'"));
                }
            }
        }
        let rec = layout_record(
            kind,
            tag.as_ref().map(|t| t.0.clone()),
            members,
            attrs.packed.is_some(),
            attrs.aligned.map(|a| a.0),
        )
        .map_err(|e| layout_error(open, e, &format!("cannot lay out this {kw}")))?;
        let mut memo = HashMap::new();
        if rec
            .fields
            .iter()
            .any(|f| type_depth(&f.ty, &mut memo) >= MAX_TYPE_DEPTH)
        {
            return err(
                open,
                format!("types nested more than {MAX_TYPE_DEPTH} deep"),
            );
        }
        let rec = Arc::new(rec);
        match tag {
            Some((tag, off)) => {
                if let Some(TagDef::Record(prev)) = self.lookup_tag(&tag) {
                    if **prev != *rec {
                        return err(off, format!("redefinition of '{kw} {tag}'"));
                    }
                }
                self.local
                    .tags
                    .insert(tag.clone(), TagDef::Record(rec.clone()));
                Ok((
                    DType::Obj(Type::Record(rec), format!("{kw} {tag}").into()),
                    false,
                ))
            }
            None => {
                let sp = bounded_spelling(&Type::Record(rec.clone()));
                Ok((DType::Obj(Type::Record(rec), sp.into()), true))
            }
        }
    }

    /// One member declaration inside a struct or union body.
    fn member_declaration(
        &mut self,
        members: &mut Vec<FieldDecl>,
        offsets: &mut Vec<usize>,
        flexible: &mut Option<(usize, String)>,
    ) -> PResult<()> {
        let specs = self.specifiers(false)?;
        let mut decl_align = specs.alignas.map(|a| a.0);
        if let Some(off) = specs.attrs.packed {
            return err(
                off,
                "attribute 'packed' on a member is not supported; put it on the struct",
            );
        }
        if let Some((n, _)) = specs.attrs.aligned {
            decl_align = Some(decl_align.map_or(n, |m| m.max(n)));
        }
        if self.is_punct(";") {
            if specs.anonymous_record {
                // An anonymous struct or union member (C11 6.7.2.1p13).
                members.push(FieldDecl {
                    name: None,
                    ty: match &specs.base {
                        DType::Obj(t, _) => t.clone(),
                        _ => return err(specs.start, "expected a member"),
                    },
                    aligned: decl_align,
                });
                offsets.push(specs.start);
            } else if !specs.declares_tag {
                return err(
                    self.off(),
                    format!("expected a member name, found {}", self.found()),
                );
            }
            self.bump();
            return Ok(());
        }
        loop {
            let d = self.declarator()?;
            if self.is_punct(":") {
                return err(self.off(), "bit-fields are not supported");
            }
            let Some((name, noff)) = d.name().cloned() else {
                return err(
                    self.off(),
                    format!("expected a member name, found {}", self.found()),
                );
            };
            if let Some(off) = d.attrs.packed {
                return err(
                    off,
                    "attribute 'packed' on a member is not supported; put it on the struct",
                );
            }
            let mut align = decl_align;
            if let Some((n, _)) = d.attrs.aligned {
                align = Some(align.map_or(n, |m| m.max(n)));
            }
            let ty = self.apply(specs.base.clone(), &d, Ctx::Other)?;
            let ty = match ty {
                DType::Obj(Type::Void, _) => {
                    return err(noff, format!("member '{name}' has type void"))
                }
                DType::Obj(t, _) => t,
                DType::Func(_) => return err(noff, format!("member '{name}' has a function type")),
                DType::Incomplete(k, t) => {
                    return err(
                        noff,
                        format!("member '{name}' has incomplete type '{} {t}'", k.keyword()),
                    )
                }
                DType::Unsized(elem, _) => {
                    // A flexible array member (C11 6.7.2.1p18): size 0 here.
                    if flexible.is_none() {
                        *flexible = Some((noff, name.clone()));
                    }
                    Type::array(elem, 0)
                        .map_err(|e| layout_error(noff, e, &format!("member '{name}'")))?
                }
            };
            if flexible.is_some() && self.is_punct(",") {
                let (off, n) = flexible.clone().unwrap_or_default();
                return err(
                    off,
                    format!("flexible array member '{n}' is not the last member"),
                );
            }
            members.push(FieldDecl {
                name: Some(name),
                ty,
                aligned: align,
            });
            offsets.push(noff);
            if self.eat_punct(",") {
                continue;
            }
            self.expect_punct(";", "after a member declaration")?;
            return Ok(());
        }
    }

    /// `enum` after the keyword (C11 6.7.2.2). gcc: the type is `unsigned
    /// int` if no enumerator is negative, else `int`; wider if needed;
    /// with `packed`, the smallest type that holds every value.
    fn enum_specifier(&mut self) -> PResult<DType> {
        let mut attrs = self.attributes()?;
        let mut tag: Option<(String, usize)> = None;
        let t = self.tok();
        if t.kind == Kind::Ident {
            let name = self.text(t);
            if SPECIFIER_KEYWORDS.contains(&name) {
                return err(
                    t.start,
                    format!("expected a tag or '{{' after 'enum', found '{name}'"),
                );
            }
            self.bump();
            tag = Some((name.to_string(), t.start));
            attrs.add(self.attributes()?);
        }
        if !self.is_punct("{") {
            let Some((tag, off)) = tag else {
                return err(
                    self.off(),
                    format!(
                        "expected a tag or '{{' after 'enum', found {}",
                        self.found()
                    ),
                );
            };
            self.check_tag_kind(TagKind::Enum, &tag, off)?;
            attrs.reject(&format!("a reference to 'enum {tag}'"))?;
            return Ok(self
                .complete_tag(TagKind::Enum, &tag)
                .unwrap_or_else(|| DType::Incomplete(TagKind::Enum, tag.into())));
        }
        let open = self.off();
        self.bump();
        if let Some((tag, off)) = &tag {
            self.check_tag_kind(TagKind::Enum, tag, *off)?;
        }
        let mut next: i128 = 0;
        let (mut min, mut max) = (0i128, 0i128);
        let mut count = 0usize;
        while !self.is_punct("}") {
            let t = self.tok();
            if t.kind != Kind::Ident || SPECIFIER_KEYWORDS.contains(&self.text(t)) {
                return err(
                    t.start,
                    format!("expected an enumerator name, found {}", self.found()),
                );
            }
            self.bump();
            let name = self.text(t);
            self.attributes()?.reject("an enumerator")?;
            if self.eat_punct("=") {
                next = self.const_expr()?;
            }
            if next < i64::MIN as i128 || next > u64::MAX as i128 {
                return err(
                    t.start,
                    format!("value of enumerator '{name}' is out of range"),
                );
            }
            if let Some(prev) = self.lookup_const(name) {
                if prev != next {
                    return err(t.start, format!("redefinition of enumerator '{name}'"));
                }
            }
            self.local.consts.insert(name.to_string(), next);
            if count == 0 {
                (min, max) = (next, next);
            } else {
                min = min.min(next);
                max = max.max(next);
            }
            count += 1;
            next += 1;
            if !self.eat_punct(",") {
                break;
            }
        }
        self.expect_punct("}", "to close the enum")?;
        attrs.add(self.attributes()?);
        if let Some((_, off)) = attrs.aligned {
            return err(off, "attribute 'aligned' is not supported on an enum");
        }
        if count == 0 {
            return err(open, "an enum needs at least one enumerator");
        }
        let sc = if attrs.packed.is_some() {
            if min >= 0 {
                [Scalar::U8, Scalar::U16, Scalar::U32, Scalar::U64]
                    .into_iter()
                    .find(|s| max < 1i128 << (8 * s.size()))
            } else {
                [Scalar::I8, Scalar::I16, Scalar::I32, Scalar::I64]
                    .into_iter()
                    .find(|s| {
                        let half = 1i128 << (8 * s.size() - 1);
                        min >= -half && max < half
                    })
            }
        } else if min >= 0 {
            if max <= u32::MAX as i128 {
                Some(Scalar::U32)
            } else {
                Some(Scalar::U64)
            }
        } else if min >= i32::MIN as i128 && max <= i32::MAX as i128 {
            Some(Scalar::I32)
        } else if max <= i64::MAX as i128 {
            Some(Scalar::I64)
        } else {
            None
        };
        let Some(sc) = sc else {
            return err(open, "enumerator values do not fit one integer type");
        };
        match tag {
            Some((tag, off)) => {
                if let Some(TagDef::Enum(prev)) = self.lookup_tag(&tag) {
                    if *prev != sc {
                        return err(off, format!("redefinition of 'enum {tag}'"));
                    }
                }
                self.local.tags.insert(tag.clone(), TagDef::Enum(sc));
                Ok(DType::Obj(Type::Scalar(sc), format!("enum {tag}").into()))
            }
            None => Ok(DType::Obj(Type::Scalar(sc), sc.c_name().into())),
        }
    }

    // ----- declarators ---------------------------------------------------

    /// Parses a declarator, concrete or abstract (C11 6.7.6, 6.7.7).
    fn declarator(&mut self) -> PResult<Declarator> {
        self.enter()?;
        let r = self.declarator_inner();
        self.leave();
        r
    }

    fn declarator_inner(&mut self) -> PResult<Declarator> {
        let mut d = Declarator::default();
        loop {
            if self.is_punct("*") {
                if d.pointers.len() >= MAX_POINTERS {
                    return err(
                        self.off(),
                        format!("more than {MAX_POINTERS} levels of pointers"),
                    );
                }
                d.pointers.push(self.off());
                self.bump();
            } else if self.tok().kind == Kind::Ident && QUALIFIERS.contains(&self.text(self.tok()))
            {
                self.bump();
            } else if self.is_ident("__attribute__") || self.is_ident("__attribute") {
                self.attributes()?.reject("a pointer")?;
            } else {
                break;
            }
        }
        let t = self.tok();
        // Any identifier here is the declared name, even a typedef name
        // (C11 6.2.1p4: an inner declaration hides it).
        if t.kind == Kind::Ident && !SPECIFIER_KEYWORDS.contains(&self.text(t)) && !self.is_asm() {
            d.name = Some((self.text(t).to_string(), t.start));
            self.bump();
        } else if self.is_punct("(") && self.paren_is_declarator() {
            self.bump();
            d.inner = Some(Box::new(self.declarator()?));
            self.expect_punct(")", "to close the declarator")?;
        } else if t.kind == Kind::Ident
            && SPECIFIER_KEYWORDS.contains(&self.text(t))
            && !self.is_ident("__attribute__")
            && !self.is_ident("__attribute")
        {
            return err(
                t.start,
                format!("expected a name or ')', found '{}'", self.text(t)),
            );
        }
        loop {
            if d.suffixes.len() >= MAX_POINTERS && (self.is_punct("[") || self.is_punct("(")) {
                return err(
                    self.off(),
                    format!("more than {MAX_POINTERS} array or function suffixes"),
                );
            }
            if self.is_punct("[") {
                let off = self.off();
                self.bump();
                d.suffixes.push(Suffix::Array(self.array_size()?, off));
            } else if self.is_punct("(") {
                let off = self.off();
                self.bump();
                let p = self.params()?;
                d.suffixes.push(Suffix::Func(p, off));
            } else {
                break;
            }
        }
        self.asm_label()?;
        d.attrs = self.attributes()?;
        Ok(d)
    }

    fn is_asm(&self) -> bool {
        self.is_ident("__asm__") || self.is_ident("__asm") || self.is_ident("asm")
    }

    /// After a `(` in a declarator: a nested declarator, or a parameter list?
    fn paren_is_declarator(&self) -> bool {
        let t = self.peek_at(1);
        match t.kind {
            Kind::Punct => matches!(self.text(t), "*" | "(" | "["),
            Kind::Ident => {
                let w = self.text(t);
                if w == "__attribute__" || w == "__attribute" {
                    return true;
                }
                !(SPECIFIER_KEYWORDS.contains(&w) || self.lookup_typedef(w).is_some())
            }
            _ => false,
        }
    }

    /// The inside of `[...]` up to and including `]`.
    fn array_size(&mut self) -> PResult<Option<u64>> {
        // C11 6.7.6.2: `static` and qualifiers may appear in parameter arrays.
        while self.tok().kind == Kind::Ident
            && (QUALIFIERS.contains(&self.text(self.tok())) || self.is_ident("static"))
        {
            self.bump();
        }
        if self.eat_punct("]") {
            return Ok(None);
        }
        if self.is_punct("*")
            && self.peek_at(1).kind == Kind::Punct
            && self.text(self.peek_at(1)) == "]"
        {
            self.bump();
            self.bump();
            return Ok(None);
        }
        let off = self.off();
        let n = self.const_expr()?;
        self.expect_punct("]", "after the array size")?;
        if n < 0 {
            return err(off, format!("array size {n} is negative"));
        }
        if n > u32::MAX as i128 {
            return err(off, format!("array size {n} is too large"));
        }
        Ok(Some(n as u64))
    }

    /// A parameter list after `(`, through `)`.
    fn params(&mut self) -> PResult<Params> {
        self.enter()?;
        let r = self.params_inner();
        self.leave();
        r
    }

    fn params_inner(&mut self) -> PResult<Params> {
        let mut p = Params {
            params: Vec::new(),
            variadic: false,
            var_args: Vec::new(),
        };
        if self.eat_punct(")") {
            return Ok(p);
        }
        loop {
            if self.is_punct("...") {
                self.bump();
                p.variadic = true;
                // jitffi: the types of this call's variadic arguments follow.
                while self.eat_punct(",") {
                    let off = self.off();
                    let (ty, _) = self.param(true)?;
                    if let DType::Obj(Type::Void, _) = ty {
                        return err(off, "a variadic argument cannot have type void");
                    }
                    p.var_args.push((ty, off));
                }
                self.expect_punct(")", "after '...' and the variadic argument types")?;
                return Ok(p);
            }
            let off = self.off();
            let (ty, plain_void) = self.param(false)?;
            if let DType::Obj(Type::Void, _) = ty {
                if plain_void && p.params.is_empty() && self.is_punct(")") {
                    self.bump();
                    return Ok(p);
                }
                if plain_void {
                    return err(off, "'void' must be the only parameter");
                }
                return err(off, "a parameter cannot have type void");
            }
            p.params.push((ty, off));
            if self.eat_punct(")") {
                return Ok(p);
            }
            if !self.eat_punct(",") {
                return err(
                    self.off(),
                    format!(
                        "expected ',' or ')' in the parameter list, found {}",
                        self.found()
                    ),
                );
            }
        }
    }

    /// One parameter (or variadic argument type): the adjusted type, and
    /// whether it was written as a plain `void` with no declarator.
    fn param(&mut self, variadic: bool) -> PResult<(DType, bool)> {
        let specs = self.specifiers(false)?;
        specs.attrs.reject("a parameter")?;
        let d = self.declarator()?;
        d.attrs.reject("a parameter")?;
        let plain_void = d.is_plain() && d.name.is_none();
        let ty = self.apply(specs.base, &d, Ctx::Param)?;
        if variadic {
            // C11 6.5.2.2p6-7: default argument promotions apply to the
            // arguments matching `...`.
            if let DType::Obj(Type::Scalar(s), _) = &ty {
                let to = match s {
                    Scalar::F32 => Some("double"),
                    Scalar::Bool | Scalar::I8 | Scalar::U8 | Scalar::I16 | Scalar::U16 => {
                        Some("int")
                    }
                    _ => None,
                };
                if let Some(to) = to {
                    let written = self.src[specs.start..self.tok().start]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" ");
                    return err(
                        specs.start,
                        format!(
                            "variadic argument of type {written} is promoted to {to}; write '{to}'"
                        ),
                    );
                }
            }
        }
        Ok((ty, plain_void))
    }

    /// Applies a declarator to its base type, inside-out.
    fn apply(&self, base: DType, d: &Declarator, ctx: Ctx) -> PResult<DType> {
        let mut t = base;
        for &off in &d.pointers {
            t = self.pointer_to(t, off)?;
        }
        let innermost = d.inner.is_none();
        // Offset of the derivation applied last (for "function returning ...").
        let mut last: Option<usize> = None;
        for (i, s) in d.suffixes.iter().enumerate().rev() {
            let prev = last;
            last = Some(match s {
                Suffix::Array(_, off) | Suffix::Func(_, off) => *off,
            });
            t = match s {
                // C11 6.7.6.3p7: a parameter of array type is adjusted to a
                // pointer to the element type.
                Suffix::Array(_, off) if ctx == Ctx::Param && innermost && i == 0 => {
                    self.array_of(t.clone(), Some(0), *off)?;
                    self.pointer_to(t, *off)?
                }
                Suffix::Array(n, off) => self.array_of(t, *n, *off)?,
                Suffix::Func(p, off) => self.function_returning(t, p, prev.unwrap_or(*off))?,
            };
        }
        if let Some(inner) = &d.inner {
            t = self.apply(t, inner, ctx)?;
        }
        if ctx == Ctx::Param && innermost {
            // C11 6.7.6.3p8: a parameter of function type is adjusted to a
            // pointer to the function.
            let off = d.name.as_ref().map_or(self.off(), |n| n.1);
            if let DType::Func(_) = t {
                t = self.pointer_to(t, off)?;
            }
            // An array type from a typedef (C11 6.7.6.3p7 again).
            if let DType::Obj(Type::Array(elem, _), sp) = &t {
                let elem_sp = match (sp.find('['), &**elem) {
                    (Some(i), _) if sp.ends_with(']') => {
                        let j = sp[i..].find(']').map_or(sp.len(), |j| i + j + 1);
                        format!("{}{}", &sp[..i], &sp[j..])
                    }
                    (_, Type::Scalar(Scalar::I8)) if self.dm.char_signed => "char".to_string(),
                    (_, Type::Scalar(Scalar::U8)) if !self.dm.char_signed => "char".to_string(),
                    (_, e) => bounded_spelling(e),
                };
                let elem = DType::Obj((**elem).clone(), elem_sp.into());
                t = self.pointer_to(elem, off)?;
            }
        }
        Ok(t)
    }

    fn pointer_to(&self, t: DType, off: usize) -> PResult<DType> {
        let (pointee, sp): (Arc<str>, String) = match &t {
            DType::Obj(ty, s) => {
                let sp = match (ty, s.find('[')) {
                    (Type::Array(..), Some(i)) => format!("{} (*){}", &s[..i], &s[i..]),
                    _ => format!("{s} *"),
                };
                (s.clone(), sp)
            }
            DType::Incomplete(..) => {
                let s = t.spelling();
                let sp = format!("{s} *");
                (s, sp)
            }
            DType::Unsized(_, s) => (format!("{s}[]").into(), format!("{s} (*)[]")),
            DType::Func(f) => {
                if let Some((_, off)) = f.var_args.first() {
                    return err(
                        *off,
                        "variadic argument types are only allowed in the declared function",
                    );
                }
                let s = &f.spelling;
                let sp = match s.find('(') {
                    Some(i) => format!("{}(*){}", &s[..i], &s[i..]),
                    None => format!("{s} *"),
                };
                (s.clone(), sp)
            }
        };
        let _ = off;
        Ok(DType::Obj(Type::pointer(&pointee), sp.into()))
    }

    fn array_of(&self, t: DType, n: Option<u64>, off: usize) -> PResult<DType> {
        let (elem, elem_sp) = match t {
            DType::Obj(Type::Void, _) => return err(off, "array of void"),
            DType::Obj(ty, sp) => (ty, sp),
            DType::Func(_) => return err(off, "array of functions"),
            DType::Incomplete(k, tag) => {
                return err(
                    off,
                    format!("array has incomplete element type '{} {tag}'", k.keyword()),
                )
            }
            DType::Unsized(_, sp) => {
                return err(off, format!("array has incomplete element type '{sp}[]'"))
            }
        };
        let Some(n) = n else {
            return Ok(DType::Unsized(elem, elem_sp));
        };
        if type_depth(&elem, &mut HashMap::new()) >= MAX_TYPE_DEPTH {
            return err(off, format!("types nested more than {MAX_TYPE_DEPTH} deep"));
        }
        let sp = array_spelling(&elem, &elem_sp, &format!("[{n}]"));
        let ty = Type::array(elem, n).map_err(|e| layout_error(off, e, "array"))?;
        Ok(DType::Obj(ty, sp.into()))
    }

    /// `off` is where the error for an invalid return type is reported.
    fn function_returning(&self, t: DType, p: &Params, off: usize) -> PResult<DType> {
        match &t {
            DType::Obj(Type::Array(..), _) | DType::Unsized(..) => {
                return err(off, "function returning an array")
            }
            DType::Func(_) => return err(off, "function returning a function"),
            _ => {}
        }
        let mut parts: Vec<String> = p
            .params
            .iter()
            .map(|(d, _)| d.spelling().to_string())
            .collect();
        if p.variadic {
            parts.push("...".into());
        }
        if parts.is_empty() {
            parts.push("void".into());
        }
        let spelling = format!("{} ({})", t.spelling(), parts.join(", "));
        Ok(DType::Func(Arc::new(FuncType {
            ret: t,
            ret_offset: off,
            params: p.params.clone(),
            variadic: p.variadic,
            var_args: p.var_args.clone(),
            spelling: spelling.into(),
        })))
    }

    // ----- constant expressions (C11 6.6) --------------------------------

    /// An integer constant expression.
    fn const_expr(&mut self) -> PResult<i128> {
        self.enter()?;
        let r = self.conditional();
        self.leave();
        r
    }

    fn conditional(&mut self) -> PResult<i128> {
        let c = self.binary(0)?;
        if self.eat_punct("?") {
            let a = self.const_expr()?;
            self.expect_punct(":", "in a conditional expression")?;
            let b = self.const_expr()?;
            return Ok(if c != 0 { a } else { b });
        }
        Ok(c)
    }

    fn binary(&mut self, min_prec: u8) -> PResult<i128> {
        let mut lhs = self.unary()?;
        loop {
            let t = self.tok();
            if t.kind != Kind::Punct {
                break;
            }
            let op = self.text(t);
            let prec = match op {
                "||" => 1,
                "&&" => 2,
                "|" => 3,
                "^" => 4,
                "&" => 5,
                "==" | "!=" => 6,
                "<" | ">" | "<=" | ">=" => 7,
                "<<" | ">>" => 8,
                "+" | "-" => 9,
                "*" | "/" | "%" => 10,
                _ => break,
            };
            if prec < min_prec {
                break;
            }
            self.bump();
            let rhs = self.binary(prec + 1)?;
            let overflow = || {
                err(
                    t.start,
                    format!("overflow in constant expression at '{op}'"),
                )
            };
            lhs = match op {
                "||" => ((lhs != 0) || (rhs != 0)) as i128,
                "&&" => ((lhs != 0) && (rhs != 0)) as i128,
                "|" => lhs | rhs,
                "^" => lhs ^ rhs,
                "&" => lhs & rhs,
                "==" => (lhs == rhs) as i128,
                "!=" => (lhs != rhs) as i128,
                "<" => (lhs < rhs) as i128,
                ">" => (lhs > rhs) as i128,
                "<=" => (lhs <= rhs) as i128,
                ">=" => (lhs >= rhs) as i128,
                "<<" | ">>" => {
                    if !(0..64).contains(&rhs) {
                        return err(t.start, format!("shift count {rhs} is out of range"));
                    }
                    if op == "<<" {
                        match lhs.checked_mul(1i128 << rhs) {
                            Some(v) => v,
                            None => return overflow(),
                        }
                    } else {
                        lhs >> rhs
                    }
                }
                "+" => lhs.checked_add(rhs).map_or_else(overflow, Ok)?,
                "-" => lhs.checked_sub(rhs).map_or_else(overflow, Ok)?,
                "*" => lhs.checked_mul(rhs).map_or_else(overflow, Ok)?,
                _ => {
                    if rhs == 0 {
                        return err(t.start, "division by zero in constant expression");
                    }
                    let v = if op == "/" {
                        lhs.checked_div(rhs)
                    } else {
                        lhs.checked_rem(rhs)
                    };
                    v.map_or_else(overflow, Ok)?
                }
            };
            // Keep values in the range C's widest integer types can hold.
            if lhs < i64::MIN as i128 || lhs > u64::MAX as i128 {
                return overflow();
            }
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<i128> {
        let t = self.tok();
        if t.kind == Kind::Punct {
            let op = self.text(t);
            if matches!(op, "-" | "+" | "~" | "!") {
                self.bump();
                self.enter()?;
                let v = self.unary();
                self.leave();
                let v = v?;
                return Ok(match op {
                    "-" => -v,
                    "+" => v,
                    "~" => !v,
                    _ => (v == 0) as i128,
                });
            }
            if op == "(" {
                self.bump();
                if self.starts_type() {
                    return err(t.start, "casts are not supported in constant expressions");
                }
                let v = self.const_expr()?;
                self.expect_punct(")", "to close the parenthesis")?;
                return Ok(v);
            }
        }
        match t.kind {
            Kind::Number => {
                self.bump();
                int_value(self.text(t), t.start)
            }
            Kind::Char => {
                self.bump();
                char_value(self.text(t), t.start)
            }
            Kind::Ident => {
                let w = self.text(t);
                if matches!(
                    w,
                    "sizeof" | "_Alignof" | "__alignof__" | "__alignof" | "alignof"
                ) {
                    self.bump();
                    self.expect_punct(
                        "(",
                        &format!("after '{w}' (only '{w}(type)' is supported)"),
                    )?;
                    let ty = self.type_name_inner()?;
                    self.expect_punct(")", &format!("to close '{w}('"))?;
                    return Ok(if w == "sizeof" {
                        ty.size() as i128
                    } else {
                        ty.align() as i128
                    });
                }
                match self.lookup_const(w) {
                    Some(v) => {
                        self.bump();
                        Ok(v)
                    }
                    None => err(
                        t.start,
                        format!(
                            "'{w}' is not a constant (expected an integer constant expression)"
                        ),
                    ),
                }
            }
            _ => err(
                t.start,
                format!(
                    "expected an integer constant expression, found {}",
                    self.found()
                ),
            ),
        }
    }

    // ----- type names and top level -------------------------------------

    /// A type name (C11 6.7.7) as a complete object type or void.
    fn type_name_inner(&mut self) -> PResult<Type> {
        let start = self.off();
        let specs = self.specifiers(false)?;
        specs.attrs.reject("a type name")?;
        let d = self.declarator()?;
        if let Some((n, off)) = d.name() {
            return err(
                *off,
                format!("expected a type name without a declarator name, found '{n}'"),
            );
        }
        d.attrs.reject("a type name")?;
        match self.apply(specs.base, &d, Ctx::Other)? {
            DType::Obj(t, _) => Ok(t),
            DType::Incomplete(k, t) => err(start, format!("incomplete type '{} {t}'", k.keyword())),
            DType::Unsized(_, sp) => err(start, format!("incomplete type '{sp}[]'")),
            DType::Func(f) => err(
                start,
                format!(
                    "'{}' is a function type, not an object type; write a pointer to it",
                    f.spelling
                ),
            ),
        }
    }

    /// `src` as one type name, optionally followed by `;`.
    pub(crate) fn parse_type(&mut self) -> PResult<Type> {
        let t = self.type_name_inner()?;
        self.eat_punct(";");
        if self.tok().kind != Kind::Eof {
            return err(
                self.off(),
                format!(
                    "expected end of input after the type name, found {}",
                    self.found()
                ),
            );
        }
        Ok(t)
    }

    /// Definitions, then (in [`Mode::Signature`]) one function declaration.
    pub(crate) fn parse(&mut self, mode: Mode) -> PResult<Option<Signature>> {
        loop {
            while self.eat_punct(";") {}
            if self.tok().kind == Kind::Eof {
                if mode == Mode::Signature {
                    return err(
                        self.off(),
                        "expected a function declaration, found end of input",
                    );
                }
                return Ok(None);
            }
            if let Some(sig) = self.external_declaration(mode)? {
                while self.eat_punct(";") {}
                if self.tok().kind != Kind::Eof {
                    return err(
                        self.off(),
                        format!(
                            "expected end of input after the function declaration, found {}",
                            self.found()
                        ),
                    );
                }
                return Ok(Some(sig));
            }
        }
    }

    /// One declaration; a function declaration yields its signature.
    fn external_declaration(&mut self, mode: Mode) -> PResult<Option<Signature>> {
        let specs = self.specifiers(true)?;
        if self.is_punct(";") {
            if specs.typedef {
                return err(self.off(), "expected a name for the typedef");
            }
            if !specs.declares_tag {
                return err(
                    self.off(),
                    format!("expected a declarator, found {}", self.found()),
                );
            }
            specs.attrs.reject("a declaration without a declarator")?;
            self.bump();
            return Ok(None);
        }
        if specs.typedef {
            specs.attrs.reject("a typedef")?;
            if let Some((_, off)) = specs.alignas {
                return err(off, "'_Alignas' is not supported on a typedef");
            }
            loop {
                let d = self.declarator()?;
                d.attrs.reject("a typedef")?;
                let Some((name, noff)) = d.name().cloned() else {
                    return err(
                        self.off(),
                        format!("expected a name for the typedef, found {}", self.found()),
                    );
                };
                let ty = self.apply(specs.base.clone(), &d, Ctx::Other)?;
                self.define_typedef(name, noff, ty)?;
                if !self.eat_punct(",") {
                    break;
                }
            }
            if !self.is_punct(";") && self.tok().kind != Kind::Eof {
                return err(
                    self.off(),
                    format!("expected ';' after the typedef, found {}", self.found()),
                );
            }
            return Ok(None);
        }
        // A function declaration.
        let doff = self.off();
        let d = self.declarator()?;
        let ty = self.apply(specs.base, &d, Ctx::Other)?;
        let DType::Func(f) = ty else {
            let what = match d.name() {
                Some((n, _)) => format!("'{n}' is not a function"),
                None => "expected a function declaration".to_string(),
            };
            return err(d.name().map_or(doff, |n| n.1), what);
        };
        if mode == Mode::Define {
            return err(
                doff,
                "expected a definition (struct, union, enum or typedef), found a function declaration",
            );
        }
        if let Some((_, off)) = specs.alignas {
            return err(off, "'_Alignas' is not allowed on a function");
        }
        if self.is_punct(",") {
            return err(self.off(), "expected one function declaration, found ','");
        }
        if self.is_punct("{") {
            return err(
                self.off(),
                "function bodies are not supported; write a declaration",
            );
        }
        let ret = match &f.ret {
            DType::Obj(t, _) => t.clone(),
            other => {
                return err(
                    specs.start,
                    format!("function returns incomplete type '{}'", other.spelling()),
                )
            }
        };
        let mut args = Vec::with_capacity(f.params.len() + f.var_args.len());
        for (i, (p, off)) in f.params.iter().chain(&f.var_args).enumerate() {
            match p {
                DType::Obj(t, _) => args.push(t.clone()),
                other => {
                    return err(
                        *off,
                        format!(
                            "parameter {} has incomplete type '{}'",
                            i + 1,
                            other.spelling()
                        ),
                    )
                }
            }
        }
        let _ = f.ret_offset;
        Ok(Some(Signature {
            abi: self.abi,
            ret,
            args,
            fixed_args: f.params.len(),
            variadic: f.variadic,
            name: d.name().map(|n| n.0.clone()),
        }))
    }

    fn define_typedef(&mut self, name: String, off: usize, ty: DType) -> PResult<()> {
        let ty = match ty {
            DType::Unsized(..) => {
                return err(
                    off,
                    format!("typedef '{name}' of an array of unknown size is not supported"),
                )
            }
            DType::Func(f) if !f.var_args.is_empty() => {
                return err(
                    f.var_args[0].1,
                    "variadic argument types are only allowed in the declared function",
                )
            }
            // An anonymous record takes the typedef's name as its tag
            // (see `Record::tag`).
            DType::Obj(Type::Record(r), _) if r.tag.is_none() => {
                let mut r = (*r).clone();
                r.tag = Some(name.clone());
                DType::Obj(Type::Record(Arc::new(r)), name.as_str().into())
            }
            DType::Obj(t, _) => DType::Obj(t, name.as_str().into()),
            // Spelled by its name from now on (keeps spellings short).
            DType::Func(f) => DType::Func(Arc::new(FuncType {
                ret: f.ret.clone(),
                ret_offset: f.ret_offset,
                params: f.params.clone(),
                variadic: f.variadic,
                var_args: Vec::new(),
                spelling: name.as_str().into(),
            })),
            other => other,
        };
        if let Some(prev) = self.lookup_typedef(&name) {
            let same = match (&prev, &ty) {
                // A re-declared anonymous record compares by layout.
                (DType::Obj(Type::Record(a), _), DType::Obj(Type::Record(b), _)) => {
                    a.fields == b.fields && a.size == b.size && a.align == b.align
                }
                _ => prev.same_as(&ty),
            };
            if !same {
                return err(off, format!("conflicting types for typedef '{name}'"));
            }
        }
        self.local.typedefs.insert(name, ty);
        Ok(())
    }
}

/// How many records and arrays nest in `t` (1 for a scalar). Shared
/// records are measured once.
fn type_depth(t: &Type, memo: &mut HashMap<*const Record, u32>) -> u32 {
    match t {
        Type::Record(r) => {
            let p = Arc::as_ptr(r);
            if let Some(d) = memo.get(&p) {
                return *d;
            }
            let d = 1 + r
                .fields
                .iter()
                .map(|f| type_depth(&f.ty, memo))
                .max()
                .unwrap_or(0);
            memo.insert(p, d);
            d
        }
        Type::Array(e, _) => 1 + type_depth(e, memo),
        _ => 1,
    }
}

/// The C spelling of a type, cut short after a few hundred characters
/// (nested anonymous records can make the full text exponentially long).
fn bounded_spelling(t: &Type) -> String {
    const LIMIT: usize = 200;
    fn go(t: &Type, out: &mut String) {
        if out.len() > LIMIT {
            return;
        }
        match t {
            Type::Record(r) if r.tag.is_none() => {
                out.push_str(match r.kind {
                    RecordKind::Struct => "struct {",
                    RecordKind::Union => "union {",
                });
                for f in &r.fields {
                    if out.len() > LIMIT {
                        out.push_str(" ...");
                        break;
                    }
                    out.push(' ');
                    go(&f.ty, out);
                    if let Some(n) = &f.name {
                        out.push(' ');
                        out.push_str(n);
                    }
                    out.push(';');
                }
                out.push_str(" }");
            }
            Type::Array(e, n) => {
                go(e, out);
                out.push_str(&format!("[{n}]"));
            }
            other => out.push_str(&other.c_spelling()),
        }
    }
    let mut s = String::new();
    go(t, &mut s);
    s
}

/// Names of the members of an anonymous member, recursively.
fn collect_anonymous_names(t: &Type, out: &mut Vec<String>) {
    if let Type::Record(r) = t {
        for f in &r.fields {
            match &f.name {
                Some(n) => out.push(n.clone()),
                None => collect_anonymous_names(&f.ty, out),
            }
        }
    }
}
