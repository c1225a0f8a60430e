//! Shared by `tests/differential.rs` and `fuzz/fuzz_targets/diff_libffi.rs`.

pub mod cgen;
pub mod ffi;
pub mod gen;
