//! Instruction-set emitters: they emit exactly what a `CallPlan` says.
//!
//! An emitter never decides where an argument goes; that is the planner's
//! job (`crate::abi`). It only turns each planned move into instructions,
//! and refuses (with an [`EmitError`]) any plan shape it does not handle,
//! rather than emitting wrong code.
//!
//! All emitters assemble at base address 0 into a `Vec<u8>`; the code is
//! position independent (absolute addresses appear only as immediates), so
//! it can be copied anywhere in executable memory.

use std::fmt;

/// AArch64: one emitter for both AAPCS64 and Apple arm64 plans.
pub mod aarch64;
/// x86-64: one emitter for both SysV and Win64 plans.
pub mod x86_64;

/// Where the trampoline finds argument `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSource<'a> {
    /// `args` is `void *const *`; argument `i` is at `args[i]` (libffi-style).
    Pointers,
    /// `args` points at a packed frame; argument `i` is at `args + offsets[i]`.
    Frame(&'a [u32]),
}

/// Which function the trampoline calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The `target` parameter, given per call.
    Unbound,
    /// An address baked into the code.
    Bound(u64),
}

/// The emitter could not encode a plan (an unsupported shape, or offsets
/// too large for the instruction set).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmitError(pub String);

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for EmitError {}

impl From<EmitError> for crate::Error {
    fn from(e: EmitError) -> Self {
        crate::Error::Emit(e.0)
    }
}

/// Splits `size` bytes into load/store chunks of 8, 4, 2 and 1 bytes (at
/// most `max`, 8 or 4), as `(offset, chunk)` pairs in ascending order: how
/// both emitters move a piece whose size is not a power of two without
/// touching a byte outside it.
pub(crate) fn chunks(size: u32, max: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut off = 0;
    for c in [8u32, 4, 2, 1] {
        if c > max {
            continue;
        }
        while size - off >= c {
            out.push((off, c));
            off += c;
        }
    }
    out
}

/// The closure data slot that both ISAs' stubs and bodies read, one per
/// 32-byte stub at a fixed distance (`src/exec/stubs.rs`'s `Slot` is checked
/// against these offsets at compile time).
pub mod slot {
    /// Bytes of one closure stub, and of one data slot.
    pub const SIZE: usize = 32;
    /// Offset of the body address.
    pub const BODY: u32 = 0;
    /// Offset of the handler address.
    pub const HANDLER: u32 = 8;
    /// Offset of the handler's context pointer.
    pub const CTX: u32 = 16;
    /// Offset of the spare word (passed to the handler as a fourth argument).
    pub const AUX: u32 = 24;
}
