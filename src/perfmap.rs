//! Names for generated code, for profilers: with `JITFFI_PERF_MAP=1` in the
//! environment, every trampoline and closure body is appended to
//! `/tmp/perf-<pid>.map` as `START SIZE NAME` (hex start and size), the
//! format `perf report` reads for JIT code, with a name derived from the
//! declaration: `jitffi:call:double(double)`, `jitffi:closure:int(const
//! void *, const void *)`.

use std::io::Write as _;
use std::sync::{Mutex, OnceLock};

use crate::types::Signature;

/// What kind of code a map entry names.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// A forward trampoline.
    Call,
    /// A reverse closure body.
    Closure,
}

fn enabled() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var("JITFFI_PERF_MAP").is_ok_and(|v| v == "1"))
}

/// The path of this process's map file.
pub fn map_path() -> std::path::PathBuf {
    std::path::PathBuf::from(format!("/tmp/perf-{}.map", std::process::id()))
}

/// The profiler name of a signature's code: `jitffi:call:ret(args)`.
pub fn symbol_name(kind: Kind, sig: &Signature) -> String {
    let mut unnamed = sig.clone();
    unnamed.name = None;
    // c_decl gives "ret (args)"; the profiler name has no space before '('.
    let decl = unnamed.c_decl().replacen(" (", "(", 1);
    let kind = match kind {
        Kind::Call => "call",
        Kind::Closure => "closure",
    };
    // One line per entry: no newlines in the name.
    format!("jitffi:{kind}:{decl}").replace('\n', " ")
}

/// Appends an entry for `len` bytes of code at `start` when enabled.
/// Failures to write are ignored: naming code must never break a call.
pub fn record(kind: Kind, sig: &Signature, start: *const u8, len: usize) {
    if !enabled() {
        return;
    }
    static FILE: Mutex<Option<std::fs::File>> = Mutex::new(None);
    let mut guard = FILE.lock().unwrap_or_else(|e| e.into_inner());
    if guard.is_none() {
        *guard = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(map_path())
            .ok();
    }
    if let Some(f) = guard.as_mut() {
        let line = format!(
            "{:x} {:x} {}\n",
            start as usize,
            len,
            symbol_name(kind, sig)
        );
        let _ = f.write_all(line.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_declaration() {
        let sig = crate::cdecl::parse_signature("double cos(double)", crate::Abi::SysV64).unwrap();
        assert_eq!(symbol_name(Kind::Call, &sig), "jitffi:call:double(double)");
        let sig = crate::cdecl::parse_signature("int f(void)", crate::Abi::SysV64).unwrap();
        assert_eq!(symbol_name(Kind::Closure, &sig), "jitffi:closure:int(void)");
    }
}
