//! The C declaration parser: C text in, [`Signature`]s and [`Type`]s with
//! gcc's layouts out.
//!
//! It accepts what a header says about a function: zero or more `struct`,
//! `union`, `enum` and `typedef` definitions separated by `;`, then one
//! function declaration:
//!
//! ```
//! use jitffi::cdecl::parse_signature;
//! use jitffi::Abi;
//!
//! let sig = parse_signature(
//!     "typedef struct { float x, y; } vec2; vec2 add(vec2 a, vec2 b)",
//!     Abi::SysV64,
//! )
//! .unwrap();
//! assert_eq!(sig.name.as_deref(), Some("add"));
//! assert_eq!(sig.args.len(), 2);
//! assert_eq!(sig.ret.size(), 8);
//! ```
//!
//! The variadic part of one call is written after the ellipsis (C's grammar
//! allows nothing there): `int printf(const char *, ..., int, double)`. The
//! default argument promotions apply to those types, so `float`, `char`,
//! `short` and `_Bool` are rejected with the type to write instead.
//!
//! It knows the data model of each [`Abi`] (`char` signedness, `long`
//! width, `long double` format) and nothing about registers. Layouts come
//! from [`crate::types::layout_record`] and [`Type::array`]. Errors carry
//! the byte offset and say what was expected; no input makes it panic, and
//! nesting is limited so no input can exhaust the stack.

mod lex;
mod parse;

use std::fmt;

use crate::types::{Abi, Signature, Type};
use parse::{Mode, Parser, Scope};

/// A parse error: what was expected, and the byte offset where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// Byte offset into the declaration text.
    pub offset: usize,
    /// What went wrong, e.g. `unknown type name 'strct'`.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at {}", self.message, self.offset)
    }
}

impl std::error::Error for ParseError {}

/// Parses definitions followed by one function declaration, for `abi`.
///
/// Equivalent to `Declarations::new(abi).parse_signature(src)`.
pub fn parse_signature(src: &str, abi: Abi) -> Result<Signature, ParseError> {
    Declarations::new(abi).parse_signature(src)
}

/// A registry of struct, union, enum and typedef definitions for one ABI,
/// so a runtime declares a header's types once and reuses them.
///
/// ```
/// use jitffi::cdecl::Declarations;
/// use jitffi::Abi;
///
/// let mut decls = Declarations::new(Abi::SysV64);
/// decls.define("struct point { int x, y; }; typedef struct point point_t;").unwrap();
/// let sig = decls.parse_signature("double dist(point_t a, const struct point *b)").unwrap();
/// assert_eq!(sig.args[0].size(), 8);
/// assert_eq!(decls.parse_type("struct point").unwrap().align(), 4);
/// ```
#[derive(Clone, Debug)]
pub struct Declarations {
    abi: Abi,
    scope: Scope,
}

impl Declarations {
    /// An empty registry (the <stdint.h> names are always known).
    pub fn new(abi: Abi) -> Declarations {
        Declarations {
            abi,
            scope: Scope::default(),
        }
    }

    /// The ABI whose data model the definitions use.
    pub fn abi(&self) -> Abi {
        self.abi
    }

    /// Adds zero or more `struct`/`union`/`enum`/`typedef` definitions,
    /// separated by `;`. On error nothing is added. Redefining a name with
    /// the same type is allowed; with a different type it is an error.
    pub fn define(&mut self, src: &str) -> Result<(), ParseError> {
        let mut p = Parser::new(src, self.abi, &self.scope)?;
        p.parse(Mode::Define)?;
        let local = std::mem::take(&mut p.local);
        self.scope.merge(local);
        Ok(())
    }

    /// Parses definitions followed by one function declaration. The
    /// registry's definitions are visible; the text's own definitions are
    /// local to this call.
    pub fn parse_signature(&self, src: &str) -> Result<Signature, ParseError> {
        let mut p = Parser::new(src, self.abi, &self.scope)?;
        match p.parse(Mode::Signature)? {
            Some(sig) => Ok(sig),
            // parse() in Signature mode returns a signature or an error.
            None => Err(ParseError {
                offset: src.len(),
                message: "expected a function declaration".into(),
            }),
        }
    }

    /// Parses a type name such as `struct point`, `unsigned long` or
    /// `int (*)(void)`.
    pub fn parse_type(&self, src: &str) -> Result<Type, ParseError> {
        let mut p = Parser::new(src, self.abi, &self.scope)?;
        p.parse_type()
    }
}
