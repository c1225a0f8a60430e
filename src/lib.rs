//! jitffi: a JIT trampoline compiler for C calls.
//!
//! A C function signature is compiled once into machine code specialised for
//! it, so a runtime can call native functions at nearly the cost of a direct
//! call. The pipeline: [`cdecl`] parses C declaration text into a
//! [`Signature`]; [`abi`] plans where every byte goes under one of four
//! calling conventions; the emitters in `arch` turn the plan into code; and
//! [`exec`] places the code into W^X memory.

pub mod abi;
pub mod call;
pub mod capi;
pub mod cdecl;
pub mod closure;
pub mod disasm;
pub mod error;
pub mod exec;
#[cfg(feature = "libffi-compat")]
pub mod ffi_compat;
pub mod library;
pub mod perfmap;
pub mod types;
pub mod unwind;
pub mod value;

#[path = "../arch/mod.rs"]
pub mod arch;

/// The README's Rust examples, compiled and run as doc tests.
#[cfg(all(doctest, target_arch = "x86_64", target_os = "linux"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

pub use error::Error;
pub use types::{Abi, Signature, Type};
