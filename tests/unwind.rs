//! Unwinding through generated code (x86-64 and AArch64 Linux): glibc's
//! `backtrace()` and C++ exceptions must pass through jitffi's forward
//! trampolines and closure bodies, which needs the unwind tables
//! `jitffi::unwind` registers.
//!
//! The C and C++ helpers are compiled with the target's gcc / g++ (on
//! AArch64 `$CC_aarch64_unknown_linux_gnu` / `$CXX_aarch64_unknown_linux_gnu`
//! or the Debian cross compilers, as .ci/aarch64.sh sets up; under
//! qemu-user the x86-64 compilers start as usual, see
//! tests/libffi_testsuite.rs) into CARGO_TARGET_TMPDIR. Whether a frame was
//! seen is decided by address ranges taken from symbol tables (the test
//! binary's `.symtab`, the helper library's symbol sizes), never from
//! jitffi itself.
#![cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]

use std::ffi::c_void;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};

use jitffi::call::{ArgMode, Entry, Trampoline};
use jitffi::cdecl::parse_signature;
use jitffi::closure::Closure;
use jitffi::Abi;
use object::{Object, ObjectSymbol};

const C_SRC: &str = r#"
#include <execinfo.h>

/* Fills buf with the return addresses backtrace() sees. */
int bt_here(void **buf, int max) {
    return backtrace(buf, max);
}

/* The same with six more arguments, two of them on the stack (the
   trampoline's general path). */
int bt_here8(void **buf, int max, long a, long b, long c, long d, long e,
             long f) {
    (void)a; (void)b; (void)c; (void)d; (void)e; (void)f;
    return backtrace(buf, max);
}

/* Ten arguments: two on the stack on AArch64 too (AAPCS64 C.16). */
int bt_here10(void **buf, int max, long a, long b, long c, long d, long e,
              long f, long g, long h) {
    (void)a; (void)b; (void)c; (void)d; (void)e; (void)f; (void)g; (void)h;
    return backtrace(buf, max);
}

/* A C caller of a closure: the frame the backtrace must reach. The
   volatile keeps the call from being a tail call. */
int c_calls_closure(int (*cb)(int), int x) {
    volatile int r = cb(x);
    return r + 1;
}
"#;

const CXX_SRC: &str = r#"
#include <stdexcept>

extern "C" int cxx_thrower(int x) {
    if (x) throw std::runtime_error("boom");
    return 7;
}

typedef void (*entry_t)(const void *, const void *, void *);

/* Calls target(x) through a jitffi trampoline entry; returns the result,
   or 42 if the callee's exception reached this catch. */
extern "C" int cxx_catch_through(entry_t entry, const void *target, int x) {
    /* Enough argument pointers for the 8-argument signature too. */
    long pad = 0;
    void *args[8] = {&x, &pad, &pad, &pad, &pad, &pad, &pad, &pad};
    int ret = 0;
    try {
        entry(target, args, &ret);
        return ret;
    } catch (const std::runtime_error &) {
        return 42;
    }
}

/* A jitffi raw closure handler that throws. */
extern "C" void cxx_throwing_handler(void *ctx, void *const *args, void *ret) {
    (void)ctx;
    int x = *(int *)args[0];
    if (x) throw std::runtime_error("boom");
    *(int *)ret = 7;
}

/* Calls a closure and catches what its handler threw. */
extern "C" int cxx_catch_closure(int (*fn)(int), int x) {
    try {
        return fn(x);
    } catch (const std::runtime_error &) {
        return 42;
    }
}
"#;

/// The target's C (`cxx` false) or C++ compiler: gcc / g++ on x86-64; on
/// AArch64 `$CC_aarch64_unknown_linux_gnu` / `$CXX_aarch64_unknown_linux_gnu`,
/// else the cross compiler if present, else gcc / g++ (a native AArch64
/// host).
fn compiler(cxx: bool) -> String {
    let native = if cxx { "g++" } else { "gcc" };
    if cfg!(target_arch = "x86_64") {
        return native.into();
    }
    let var = if cxx {
        "CXX_aarch64_unknown_linux_gnu"
    } else {
        "CC_aarch64_unknown_linux_gnu"
    };
    if let Some(c) = std::env::var(var).ok().filter(|c| !c.is_empty()) {
        return c;
    }
    let cross = format!("aarch64-linux-gnu-{native}");
    let found = Command::new(&cross)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        cross
    } else {
        native.into()
    }
}

/// Compiles `src` with `compiler` into a shared library once per process.
fn build(compiler: &str, name: &str, ext: &str, src: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let c = dir.join(format!("{name}.{ext}"));
    let so = dir.join(format!("lib{name}-{}.so", std::process::id()));
    std::fs::write(&c, src).expect("write source");
    let status = Command::new(compiler)
        .args(["-shared", "-fPIC", "-O1", "-g", "-o"])
        .arg(&so)
        .arg(&c)
        .status()
        .unwrap_or_else(|e| panic!("run {compiler}: {e}"));
    assert!(status.success(), "{compiler} {} failed", c.display());
    so
}

struct CLib {
    lib: libloading::Library,
    path: PathBuf,
}

fn clib() -> &'static CLib {
    static L: OnceLock<CLib> = OnceLock::new();
    L.get_or_init(|| {
        let path = build(&compiler(false), "unwind_bt", "c", C_SRC);
        // SAFETY: a library we just built, with no initialisers.
        let lib = unsafe { libloading::Library::new(&path) }.expect("load the C helper");
        CLib { lib, path }
    })
}

fn sym(lib: &libloading::Library, name: &str) -> *const c_void {
    // SAFETY: only the address is taken.
    let s = unsafe { lib.get::<*const c_void>(name.as_bytes()) }.expect(name);
    *s
}

/// The run-time address range of `name` in the ELF file at `path`, given
/// the run-time address of the same symbol.
fn range_of(path: &std::path::Path, name: &str, runtime: usize) -> std::ops::Range<usize> {
    let data = std::fs::read(path).expect("read ELF");
    let file = object::File::parse(&*data).expect("parse ELF");
    let s = file
        .symbols()
        .chain(file.dynamic_symbols())
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("symbol {name} in {}", path.display()));
    assert!(s.size() > 0, "{name} has a size");
    let start = runtime;
    start..start + s.size() as usize
}

fn sig(decl: &str) -> jitffi::Signature {
    let abi = Abi::host().expect("a host ABI");
    parse_signature(decl, abi).unwrap_or_else(|e| panic!("{decl}: {e}"))
}

/// Return addresses the C helper's backtrace saw.
type Frames = Vec<usize>;

/// The Rust frame the backtrace must reach: it calls the trampoline.
///
/// # Safety
///
/// `entry` must be a trampoline entry for `target`'s signature, and
/// `args`/`ret` buffers that signature's call reads and writes.
#[no_mangle]
#[inline(never)]
pub unsafe extern "C" fn jitffi_unwind_test_marker(
    entry: Entry,
    target: *const c_void,
    args: *const c_void,
    ret: *mut c_void,
) {
    // SAFETY: the caller passes a trampoline entry of target's signature
    // and matching argument and result buffers.
    unsafe { entry(target, args, ret) };
    // Keeps the call from being a tail call (the marker's frame must stay).
    std::hint::black_box(());
}

fn marker_range() -> std::ops::Range<usize> {
    let exe = std::fs::read_link("/proc/self/exe").expect("/proc/self/exe");
    range_of(
        &exe,
        "jitffi_unwind_test_marker",
        jitffi_unwind_test_marker as *const () as usize,
    )
}

fn contains(frames: &Frames, r: &std::ops::Range<usize>) -> bool {
    // A return address is just past the call: inside, or at the end of,
    // the caller's range.
    frames.iter().any(|&a| a > r.start && a <= r.end)
}

/// Calls `target` (`int f(void **, int, ...)`) through a trampoline of
/// `decl`, from the marker, with a 64-entry buffer.
fn backtrace_through(decl: &str, target: &str, mode_bound: bool, extra: usize) -> (Frames, i32) {
    let l = clib();
    let f = sym(&l.lib, target);
    let s = sig(decl);
    let t = Trampoline::compile(&s, ArgMode::Pointers, mode_bound.then_some(f)).expect("compile");
    let mut buf = vec![std::ptr::null_mut::<c_void>(); 64];
    let mut bufp = buf.as_mut_ptr();
    let mut max: i32 = 64;
    let longs: Vec<i64> = (0..extra as i64).collect();
    let mut args: Vec<*const c_void> = vec![
        &mut bufp as *mut _ as *const c_void,
        &mut max as *mut _ as *const c_void,
    ];
    for v in &longs {
        args.push(v as *const i64 as *const c_void);
    }
    let mut ret = [0u64; 2];
    // SAFETY: the entry was compiled for f's declaration; args points at
    // every argument, ret holds the int result.
    unsafe {
        jitffi_unwind_test_marker(
            t.entry(),
            f,
            args.as_ptr() as *const c_void,
            ret.as_mut_ptr() as *mut c_void,
        )
    };
    let n = ret[0] as i32;
    let frames = buf[..n.max(0) as usize]
        .iter()
        .map(|&p| p as usize)
        .collect();
    (frames, n)
}

#[test]
fn backtrace_passes_a_forward_trampoline() {
    let marker = marker_range();
    for (decl, target, bound, extra) in [
        // x86-64 fast path: `push rdx` (ret) before the call. AArch64 has
        // one shape: frame record, x19–x21 saved.
        ("int bt_here(void **, int);", "bt_here", false, 0),
        ("int bt_here(void **, int);", "bt_here", true, 0),
        // x86-64 general path: frame pointer, callee-saved pushes, stack
        // arguments (on AArch64 the two last arguments stay in x6, x7).
        (
            "int bt_here8(void **, int, long, long, long, long, long, long);",
            "bt_here8",
            false,
            6,
        ),
        (
            "int bt_here10(void **, int, long, long, long, long, long, long, long, long);",
            "bt_here10",
            true,
            8,
        ),
    ] {
        let (frames, n) = backtrace_through(decl, target, bound, extra);
        assert!(n > 2, "{decl}: {n} frames");
        assert!(
            contains(&frames, &marker),
            "{decl} (bound: {bound}): the marker {marker:x?} is not among {n} return addresses \
             {frames:x?}"
        );
    }
}

#[test]
fn backtrace_passes_a_closure_body() {
    let l = clib();
    let bt: extern "C" fn(*mut *mut c_void, i32) -> i32 =
        // SAFETY: bt_here's C type.
        unsafe { std::mem::transmute(sym(&l.lib, "bt_here")) };
    let caller_addr = sym(&l.lib, "c_calls_closure");
    let caller_range = range_of(&l.path, "c_calls_closure", caller_addr as usize);
    let caller: extern "C" fn(*const c_void, i32) -> i32 =
        // SAFETY: c_calls_closure's C type (a function pointer is a pointer).
        unsafe { std::mem::transmute(caller_addr) };

    {
        let decl = "int cb(int);";
        let seen: Arc<Mutex<Frames>> = Arc::default();
        let seen2 = seen.clone();
        let c = Closure::new(&sig(decl), move |args, ret| {
            let mut buf = vec![std::ptr::null_mut::<c_void>(); 64];
            let n = bt(buf.as_mut_ptr(), 64);
            *seen2.lock().unwrap() = buf[..n.max(0) as usize]
                .iter()
                .map(|&p| p as usize)
                .collect();
            // SAFETY: args[0] is the int argument, ret an int buffer.
            unsafe { *(ret as *mut i32) = *(args[0] as *const i32) * 2 };
        })
        .expect("closure");
        assert_eq!(caller(c.code_ptr(), 20), 41);
        let frames = seen.lock().unwrap().clone();
        assert!(
            contains(&frames, &caller_range),
            "{decl}: the C caller {caller_range:x?} is not among the return addresses \
             {frames:x?}"
        );
    }
}

/// Runs `name` (a test of this file) in a child process with
/// `JITFFI_UNWIND_CHILD` set, so an abort (std::terminate) fails the test
/// instead of killing the test runner.
fn in_child(name: &str) -> Option<String> {
    if std::env::var_os("JITFFI_UNWIND_CHILD").is_some() {
        return None;
    }
    let out = child_command()
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env("JITFFI_UNWIND_CHILD", "1")
        .output()
        .expect("run the child");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "child {name} failed ({:?}):\n{all}",
        out.status
    );
    Some(all)
}

/// A command that starts this test binary again. Under qemu-user (the
/// AArch64 suite on an x86-64 host, the cargo runner in
/// .cargo/config.toml) a guest's `execve` of another AArch64 program works
/// only with binfmt_misc; without it the child is started as
/// `qemu-aarch64 -L $QEMU_LD_PREFIX exe` (as tests/libffi_testsuite.rs
/// does).
fn child_command() -> Command {
    let exe = std::env::current_exe().expect("current_exe");
    if cfg!(target_arch = "x86_64") {
        return Command::new(exe);
    }
    let direct = Command::new(&exe)
        .arg("--list")
        .output()
        .is_ok_and(|o| o.status.success());
    if direct {
        return Command::new(exe);
    }
    let sysroot = std::env::var("QEMU_LD_PREFIX")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/usr/aarch64-linux-gnu".into());
    let mut c = Command::new("qemu-aarch64");
    c.arg("-L").arg(sysroot).arg(exe);
    c
}

fn cxxlib() -> libloading::Library {
    let path = build(&compiler(true), "unwind_cxx", "cc", CXX_SRC);
    // SAFETY: a library we just built; its initialisers are libstdc++'s.
    unsafe { libloading::Library::new(&path) }.expect("load the C++ helper")
}

#[test]
fn cxx_exception_passes_a_forward_trampoline() {
    if let Some(out) = in_child("cxx_exception_passes_a_forward_trampoline") {
        assert!(out.contains("caught: 42"), "{out}");
        return;
    }
    let lib = cxxlib();
    let thrower = sym(&lib, "cxx_thrower");
    let catch: extern "C" fn(Entry, *const c_void, i32) -> i32 =
        // SAFETY: cxx_catch_through's C type.
        unsafe { std::mem::transmute(sym(&lib, "cxx_catch_through")) };
    for bound in [false, true] {
        let t = Trampoline::compile(
            &sig("int cxx_thrower(int);"),
            ArgMode::Pointers,
            bound.then_some(thrower),
        )
        .expect("compile");
        assert_eq!(catch(t.entry(), thrower, 0), 7);
        let r = catch(t.entry(), thrower, 1);
        assert_eq!(r, 42);
        println!("caught: {r}");
    }
    // The general path (stack arguments) too.
    let t = Trampoline::compile(
        &sig("int cxx_thrower(int, long, long, long, long, long, long, long);"),
        ArgMode::Pointers,
        None,
    )
    .expect("compile");
    if cfg!(target_arch = "x86_64") {
        assert!(t.code().starts_with(&[0x55]), "general path: push rbp");
    } else {
        // stp x29, x30, [sp, #-16]! (0xa9bf7bfd): the frame record.
        assert!(
            t.code().starts_with(&[0xfd, 0x7b, 0xbf, 0xa9]),
            "frame record"
        );
    }
    // cxx_thrower reads only its first argument; the callee-side extra
    // arguments are simply ignored by the C++ function.
    assert_eq!(catch(t.entry(), thrower, 1), 42);
}

#[test]
fn cxx_exception_passes_a_closure_body() {
    if let Some(out) = in_child("cxx_exception_passes_a_closure_body") {
        assert!(out.contains("caught: 42"), "{out}");
        return;
    }
    let lib = cxxlib();
    let handler: jitffi::closure::RawHandler =
        // SAFETY: cxx_throwing_handler's C type is RawHandler's.
        unsafe { std::mem::transmute(sym(&lib, "cxx_throwing_handler")) };
    let catch: extern "C" fn(*const c_void, i32) -> i32 =
        // SAFETY: cxx_catch_closure's C type.
        unsafe { std::mem::transmute(sym(&lib, "cxx_catch_closure")) };
    // SAFETY: the handler needs no context and writes an int result.
    let c = unsafe { Closure::new_raw(&sig("int f(int);"), handler, std::ptr::null_mut()) }
        .expect("closure");
    assert_eq!(catch(c.code_ptr(), 0), 7);
    let r = catch(c.code_ptr(), 1);
    assert_eq!(r, 42);
    println!("caught: {r}");
}

#[test]
fn registrations_come_and_go() {
    // Many trampolines compiled and dropped: each registers and deregisters
    // its tables (libgcc aborts on deregistering an unknown section, and a
    // stale one would describe reused code). Then unwinding still works.
    for k in 0..200 {
        let decl = format!("int f(int, int{});", ", int".repeat(k % 7));
        let t = Trampoline::compile(&sig(&decl), ArgMode::Frame, None).expect("compile");
        drop(t);
    }
    let (frames, _) = backtrace_through("int bt_here(void **, int);", "bt_here", false, 0);
    assert!(contains(&frames, &marker_range()));
}

#[test]
// The host's gdb cannot run the AArch64 jitffi binary (under qemu-user it
// would need qemu's gdb stub and gdb-multiarch): x86-64 only.
#[cfg(target_arch = "x86_64")]
fn gdb_backtrace_walks_and_names_a_trampoline() {
    // gdb reads jitffi's objects through its JIT interface (the process is
    // traced, so jitffi registers them). Skipped without gdb.
    let Ok(v) = Command::new("gdb").arg("--version").output() else {
        eprintln!("no gdb: skipped");
        return;
    };
    assert!(v.status.success());
    let out = Command::new("gdb")
        .args([
            "-batch",
            "-nx",
            "-ex",
            "set breakpoint pending on",
            "-ex",
            "break div",
            "-ex",
            "run",
            "-ex",
            "bt",
            "--args",
            env!("CARGO_BIN_EXE_jitffi"),
            "call",
            "libc.so.6",
            "typedef struct {int q, r;} d; d div(int, int)",
            "7",
            "2",
        ])
        .output()
        .expect("run gdb");
    let text = String::from_utf8_lossy(&out.stdout);
    let frames: Vec<&str> = text.lines().filter(|l| l.starts_with('#')).collect();
    assert!(frames.len() >= 3, "{text}");
    assert!(frames[0].contains("div"), "{text}");
    assert!(
        frames[1].contains("jitffi:call:struct d(int, int)"),
        "{text}"
    );
    // The frame above the trampoline is its Rust caller, not a bogus one.
    assert!(frames[2].contains("call_raw"), "{text}");
    assert!(!text.contains("?? ()"), "{text}");
}

/// libgcc's `struct dwarf_eh_bases` (unwind-dw2-fde.h).
#[repr(C)]
struct EhBases {
    tbase: *mut c_void,
    dbase: *mut c_void,
    func: *mut c_void,
}

extern "C" {
    /// libgcc: the FDE covering `pc`, or null (unwind-dw2-fde-dip.c).
    fn _Unwind_Find_FDE(pc: *mut c_void, bases: *mut EhBases) -> *const c_void;
}

fn fde_start(pc: *const c_void) -> Option<usize> {
    let mut b = EhBases {
        tbase: std::ptr::null_mut(),
        dbase: std::ptr::null_mut(),
        func: std::ptr::null_mut(),
    };
    // SAFETY: a lookup; `b` is written only.
    let f = unsafe { _Unwind_Find_FDE(pc as *mut c_void, &mut b) };
    (!f.is_null()).then_some(b.func as usize)
}

#[test]
fn the_unwinder_finds_an_fde_for_every_kind_of_code() {
    let s = sig("int f(int, int);");
    let t = Trampoline::compile(&s, ArgMode::Frame, None).expect("compile");
    let entry = t.entry() as *const c_void;
    // SAFETY: an address inside the trampoline's code.
    let inside = unsafe { entry.cast::<u8>().add(t.code().len() - 1) }.cast();
    assert_eq!(fde_start(entry), Some(entry as usize));
    assert_eq!(fde_start(inside), Some(entry as usize));

    let c = Closure::new(&s, |_, _| {}).expect("closure");
    // The stub: its run's FDE covers it.
    let stub = c.code_ptr();
    assert!(fde_start(stub).is_some_and(|f| f <= stub as usize));
}
