//! The crate's error type: one enum, each variant naming what failed.

use std::fmt;

use crate::abi::{PlanError, Unsupported};
use crate::cdecl::ParseError;

/// Anything that can go wrong between a declaration and a call.
#[derive(Debug)]
pub enum Error {
    /// The declaration text did not parse.
    Parse(ParseError),
    /// The signature cannot be planned (correctly) on its ABI.
    Unsupported(Unsupported),
    /// A plan broke an invariant (a bug in jitffi, reported, never executed).
    Plan(PlanError),
    /// The emitter could not encode the plan.
    Emit(String),
    /// Executable memory could not be obtained or protected.
    Exec(std::io::Error),
    /// The signature's ABI cannot execute on this host.
    NotExecutable(crate::types::Abi),
    /// A library could not be opened.
    Library { name: String, reason: String },
    /// A symbol is not exported by a library.
    Symbol {
        name: String,
        library: String,
        /// Up to three exported names close to `name`.
        similar: Vec<String>,
    },
    /// A call-time argument does not fit (wrong count, wrong value).
    Argument(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Parse(e) => write!(f, "{e}"),
            Error::Unsupported(e) => write!(f, "{e}"),
            Error::Plan(e) => write!(f, "{e}"),
            Error::Emit(m) => write!(f, "cannot emit code: {m}"),
            Error::Exec(e) => write!(f, "executable memory: {e}"),
            Error::NotExecutable(abi) => {
                write!(f, "{abi} code cannot be executed on this host")
            }
            Error::Library { name, reason } => write!(f, "cannot open library '{name}': {reason}"),
            Error::Symbol {
                name,
                library,
                similar,
            } => {
                write!(f, "symbol '{name}' not found in '{library}'")?;
                if !similar.is_empty() {
                    write!(f, " (did you mean {}?)", similar.join(", "))?;
                }
                Ok(())
            }
            Error::Argument(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Error {}

impl From<ParseError> for Error {
    fn from(e: ParseError) -> Self {
        Error::Parse(e)
    }
}

impl From<Unsupported> for Error {
    fn from(e: Unsupported) -> Self {
        Error::Unsupported(e)
    }
}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Self {
        Error::Plan(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Exec(e)
    }
}
