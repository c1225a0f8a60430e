//! Forward trampolines: the Rust API over plan + emitter + code arena. (In progress.)
