//! Shared helpers for the execution tests: build a C file into a shared
//! library with the host C compiler (gcc, through the cc crate's compiler
//! detection, so `$CC` is honoured), cache it, and load it.
#![allow(dead_code)]

use std::ffi::c_void;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

/// The host triple, for the cc crate (integration tests get no `TARGET`).
fn host_triple() -> &'static str {
    if cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        "x86_64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "linux")) {
        "aarch64-unknown-linux-gnu"
    } else if cfg!(all(target_arch = "aarch64", target_os = "macos")) {
        "aarch64-apple-darwin"
    } else if cfg!(all(target_arch = "x86_64", target_os = "macos")) {
        "x86_64-apple-darwin"
    } else {
        panic!("tests/common: no C compiler set-up for this host")
    }
}

/// FNV-1a of some text (a cache key for the built library).
fn fnv(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for b in p.bytes().chain([0u8]) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Compiles `source` (with its headers `deps`, given as text only for the
/// cache key) into `<CARGO_TARGET_TMPDIR>/<stem>-O<opt>-<hash>.so` with
/// `-shared -fPIC`, unless that file already exists. The hash covers the
/// sources and the options, so a changed source is rebuilt; the file is
/// written under a temporary name and renamed, so test binaries running in
/// parallel never load a half-written library.
pub fn build_shared(source: &Path, deps: &[&str], opt: u32) -> PathBuf {
    let text = std::fs::read_to_string(source)
        .unwrap_or_else(|e| panic!("reading {}: {e}", source.display()));
    let stem = source.file_stem().unwrap().to_string_lossy().into_owned();
    let mut key: Vec<&str> = vec![&text];
    key.extend_from_slice(deps);
    let opt_s = opt.to_string();
    key.push(&opt_s);
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let out = dir.join(format!("{stem}-O{opt}-{:016x}.so", fnv(&key)));
    if out.exists() {
        return out;
    }
    let compiler = cc::Build::new()
        .target(host_triple())
        .host(host_triple())
        .opt_level(opt)
        .cargo_metadata(false)
        .cargo_warnings(false)
        .get_compiler();
    let tmp = dir.join(format!("{stem}-O{opt}.{}.tmp", std::process::id()));
    let mut cmd: Command = compiler.to_command();
    cmd.arg("-shared")
        .arg("-fPIC")
        .arg(format!("-O{opt}"))
        .arg("-Wall")
        .arg("-o")
        .arg(&tmp)
        .arg(source);
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("running the C compiler {:?}: {e}", compiler.path()));
    assert!(
        output.status.success(),
        "compiling {} failed:\n{}",
        source.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&tmp, &out).unwrap();
    out
}

/// A loaded shared library, kept loaded for the whole test process (the
/// trampolines under test hold raw pointers into it).
pub struct Lib {
    lib: libloading::Library,
    pub path: PathBuf,
}

impl Lib {
    /// The address of a symbol; panics if it is missing.
    pub fn sym(&self, name: &str) -> *const c_void {
        self.try_sym(name)
            .unwrap_or_else(|| panic!("{}: no symbol {name}", self.path.display()))
    }

    /// The address of a symbol, if the library defines it.
    pub fn try_sym(&self, name: &str) -> Option<*const c_void> {
        // SAFETY: the symbol is only taken as an address (a `*const c_void`),
        // never called through this type; its users know its real type.
        unsafe {
            self.lib
                .get::<*const c_void>(name.as_bytes())
                .ok()
                .map(|s| *s)
        }
    }
}

/// Loads a library for the rest of the process.
pub fn load(path: &Path) -> &'static Lib {
    // SAFETY: the test libraries are plain C with no initialisers that
    // could misbehave when loaded.
    let lib = unsafe { libloading::Library::new(path) }
        .unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
    Box::leak(Box::new(Lib {
        lib,
        path: path.to_owned(),
    }))
}

/// tests/c/callees.c, built at -O0 (`opt == 0`) or -O2, loaded once per
/// process.
pub fn callees(opt: u32) -> &'static Lib {
    static LIBS: OnceLock<Mutex<Vec<(u32, &'static Lib)>>> = OnceLock::new();
    let m = LIBS.get_or_init(|| Mutex::new(Vec::new()));
    let mut v = m.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, l)) = v.iter().find(|(o, _)| *o == opt) {
        return l;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/callees.c");
    let deps = [
        include_str!("../c/callees_types.h"),
        include_str!("../c/callees_cases.h"),
        include_str!("../c/callees_sizes.h"),
    ];
    let l = load(&build_shared(&src, &deps, opt));
    v.push((opt, l));
    l
}

/// A zeroed, 16-byte aligned buffer of at least `n` bytes (at least 16).
pub fn aligned(n: usize) -> Vec<u128> {
    vec![0u128; n.div_ceil(16).max(1)]
}

/// The bytes of an aligned buffer.
pub fn bytes_of(v: &[u128]) -> &[u8] {
    // SAFETY: u128 has no padding; the view covers exactly the storage.
    unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), v.len() * 16) }
}

/// The bytes of an aligned buffer, writable.
pub fn bytes_of_mut(v: &mut [u128]) -> &mut [u8] {
    // SAFETY: u128 has no invalid bit patterns and no padding; the view
    // covers exactly the storage.
    unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), v.len() * 16) }
}
