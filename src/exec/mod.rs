//! Executable memory. (Implementation in progress.)

pub mod stubs;
