//! The C declaration parser. (Implementation in progress.)

use std::fmt;

use crate::types::{Abi, Signature};

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

/// Parses definitions followed by one function declaration.
pub fn parse_signature(_src: &str, _abi: Abi) -> Result<Signature, ParseError> {
    Err(ParseError {
        offset: 0,
        message: "the parser is not implemented yet".into(),
    })
}
