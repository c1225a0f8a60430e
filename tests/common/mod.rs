//! Shared helpers for the execution tests: build a C file into a shared
//! library with the host C compiler (gcc, through the cc crate's compiler
//! detection, so `$CC` is honoured), cache it, and load it.
#![allow(dead_code)]

use std::ffi::{c_char, c_int, c_void, CStr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use jitffi::call::{ArgMode, Trampoline};
use jitffi::cdecl::Declarations;
use jitffi::types::Scalar;
use jitffi::{Abi, Signature, Type};

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
        include_str!("../c/callees_floats.h"),
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

// ---- the callee library's case table and reference calls ----------------

/// The struct and union definitions the declarations use.
pub const TYPES: &str = include_str!("../c/callees_types.h");

#[repr(C)]
struct RawCase {
    name: *const c_char,
    func: *const c_char,
    decl: *const c_char,
    has_ms: c_int,
}

#[derive(Clone, Debug)]
pub struct Case {
    /// The case: reference callers `ref_<name>` (and `ref_<name>_ms`).
    pub name: String,
    /// The callee symbol (and `<func>_ms`).
    pub func: String,
    /// The jitffi declaration (types from callees_types.h).
    pub decl: String,
    /// Whether the ms_abi twin exists.
    pub has_ms: bool,
}

pub fn cstr(p: *const c_char) -> String {
    // SAFETY: the table's strings are NUL-terminated literals in the library.
    unsafe { CStr::from_ptr(p) }.to_str().unwrap().to_owned()
}

/// The case table of a built callee library.
pub fn cases(lib: &Lib) -> Vec<Case> {
    let mut p = lib.sym("callee_cases").cast::<RawCase>();
    let mut out = Vec::new();
    // SAFETY: callee_cases is an array of RawCase (same layout as the C
    // struct) ending with an all-null entry.
    unsafe {
        while !(*p).name.is_null() {
            out.push(Case {
                name: cstr((*p).name),
                func: cstr((*p).func),
                decl: cstr((*p).decl),
                has_ms: (*p).has_ms != 0,
            });
            p = p.add(1);
        }
    }
    out
}

pub fn decls(abi: Abi) -> Declarations {
    let mut d = Declarations::new(abi);
    d.define(TYPES)
        .unwrap_or_else(|e| panic!("callees_types.h under {abi}: {e}"));
    d
}

/// Which bytes of a value of type `t` are significant: every scalar leaf
/// (an x87 long double has 10), none of the padding.
pub fn significant(t: &Type) -> Vec<bool> {
    let mut mask = vec![false; t.size() as usize];
    t.for_each_scalar(0, &mut |off, s| {
        let n = if s == Scalar::F80 { 10 } else { s.size() };
        for m in &mut mask[off as usize..(off + n) as usize] {
            *m = true;
        }
    });
    mask
}

pub fn masked(bytes: &[u8], mask: &[bool]) -> Vec<Option<u8>> {
    mask.iter()
        .zip(bytes)
        .map(|(&m, &b)| m.then_some(b))
        .collect()
}

pub type RefFn = unsafe extern "C" fn(*mut c_void, *mut *mut c_void);

/// Resets the library's sink, runs `f`, and returns what callees recorded.
pub fn with_sink(lib: &Lib, f: impl FnOnce()) -> Vec<u8> {
    // SAFETY: these are the C functions `void sink_reset(void)`,
    // `size_t sink_len(void)` and `const unsigned char *sink_data(void)`.
    unsafe {
        let reset: unsafe extern "C" fn() = std::mem::transmute(lib.sym("sink_reset"));
        let len: unsafe extern "C" fn() -> usize = std::mem::transmute(lib.sym("sink_len"));
        let data: unsafe extern "C" fn() -> *const u8 = std::mem::transmute(lib.sym("sink_data"));
        reset();
        f();
        let n = len();
        assert!(n <= 1024, "sink overflow ({n} bytes)");
        std::slice::from_raw_parts(data(), n).to_vec()
    }
}

/// One reference call: the result bytes, the argument bytes, the sink.
pub struct Reference {
    /// The result's bytes (sizeof the result type).
    pub ret: Vec<u8>,
    /// Each argument's bytes, in a 16-byte aligned buffer.
    pub args: Vec<Vec<u128>>,
    /// What the callee recorded.
    pub sink: Vec<u8>,
}

pub fn reference(lib: &Lib, sig: &Signature, ref_sym: &str) -> Reference {
    let f: RefFn = {
        let p = lib.sym(ref_sym);
        // SAFETY: every ref_* symbol is `void ref_x(void *ret, void **argv)`.
        unsafe { std::mem::transmute::<*const c_void, RefFn>(p) }
    };
    let mut args: Vec<Vec<u128>> = sig
        .args
        .iter()
        .map(|t| aligned(t.size() as usize))
        .collect();
    let mut ptrs: Vec<*mut c_void> = args.iter_mut().map(|b| b.as_mut_ptr().cast()).collect();
    let mut ret = aligned(sig.ret.size() as usize + 16);
    let sink = with_sink(lib, || {
        // SAFETY: ret holds the result type; argv[i] holds at least
        // sizeof(argument i) bytes (the C side writes exactly that).
        unsafe { f(ret.as_mut_ptr().cast(), ptrs.as_mut_ptr()) }
    });
    Reference {
        ret: bytes_of(&ret)[..sig.ret.size() as usize].to_vec(),
        args,
        sink,
    }
}

/// Calls the trampoline's entry: `(entry, target, args, ret)`. The
/// default is `Trampoline::call_raw`; the conformance tests call the entry
/// from an assembly caller instead.
pub type Invoke<'a> = &'a dyn Fn(&Trampoline, *const c_void, *const c_void, *mut c_void);

/// Calls `target` through one trampoline variant with the argument bytes
/// `args`; returns the result bytes and the sink.
pub fn via_jitffi(
    lib: &Lib,
    sig: &Signature,
    target: *const c_void,
    mode: ArgMode,
    bound: bool,
    args: &[Vec<u128>],
) -> Result<(Vec<u8>, Vec<u8>), String> {
    via_jitffi_with(lib, sig, target, mode, bound, args, None)
}

/// [`via_jitffi`], with the entry called by `invoke` when given.
pub fn via_jitffi_with(
    lib: &Lib,
    sig: &Signature,
    target: *const c_void,
    mode: ArgMode,
    bound: bool,
    args: &[Vec<u128>],
    invoke: Option<Invoke<'_>>,
) -> Result<(Vec<u8>, Vec<u8>), String> {
    let t = Trampoline::compile(sig, mode, bound.then_some(target)).map_err(|e| e.to_string())?;
    let mut ret = aligned(t.ret_buffer_size());
    let ret_ptr: *mut c_void = if t.ret_buffer_size() == 0 {
        std::ptr::null_mut()
    } else {
        ret.as_mut_ptr().cast()
    };
    let callee = if bound { std::ptr::null() } else { target };
    let mut err = None;
    let ptrs: Vec<*const c_void> = args.iter().map(|b| b.as_ptr().cast()).collect();
    let mut frame = aligned(t.frame_size());
    if mode == ArgMode::Frame {
        let fb = bytes_of_mut(&mut frame);
        for ((a, &off), ty) in args.iter().zip(t.frame_offsets()).zip(&sig.args) {
            let n = ty.size() as usize;
            fb[off as usize..off as usize + n].copy_from_slice(&bytes_of(a)[..n]);
        }
    }
    let args_ptr: *const c_void = match mode {
        ArgMode::Pointers => ptrs.as_ptr().cast(),
        ArgMode::Frame => frame.as_ptr().cast(),
    };
    let sink = with_sink(lib, || match (invoke, mode) {
        (Some(f), _) => f(&t, callee, args_ptr, ret_ptr),
        (None, ArgMode::Pointers) => {
            // SAFETY: the signature is the callee's declaration (from the
            // same C source); each pointer points at a value of its
            // argument's type; ret holds ret_buffer_size() bytes.
            if let Err(e) = unsafe { t.call(callee, &ptrs, ret_ptr) } {
                err = Some(e.to_string());
            }
        }
        (None, ArgMode::Frame) => {
            // SAFETY: as above, with a frame laid out by frame_offsets().
            unsafe { t.call_raw(callee, args_ptr, ret_ptr) }
        }
    });
    if let Some(e) = err {
        return Err(e);
    }
    Ok((bytes_of(&ret)[..sig.ret.size() as usize].to_vec(), sink))
}
