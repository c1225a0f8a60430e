//! libffi's own testsuite, run against jitffi's libffi-compatible layer
//! (src/ffi_compat) and, for comparison, against a reference libffi: the
//! system's on x86-64, Debian's arm64 libffi 3.4 on AArch64.
//!
//! Gated behind the `libffi-compat` feature (run by .ci/run as
//! `cargo build --release --lib --features libffi-compat` then
//! `cargo test --release --features libffi-compat --test libffi_testsuite`):
//! the cdylib `target/<profile>/libjitffi.so` must be built with the feature
//! first (`cargo test` relinks the rlib but not always the cdylib; the test
//! refuses a stale one), so no nested cargo build is needed.
//!
//! The testsuite is the one shipped in the `libffi-sys` crate's source
//! (`libffi/testsuite/`, a dev-dependency with its `system` feature, so the
//! bundled libffi is never built); it is found with `cargo metadata`, or
//! `LIBFFI_TESTSUITE_DIR`. Nothing of it is copied into this repository.
//!
//! Each test is compiled the way libffi's DejaGnu driver does
//! (testsuite/lib/libffi.exp `run-many-tests`): `-W -Wall -Wno-psabi` at
//! `-O0` and `-O2` (`LIBFFI_TEST_OPTIMIZATION` overrides, as in libffi), and
//! on x86-64 tests that mention `ABI_NUM` also with
//! `-DABI_NUM=FFI_GNUW64 -DABI_ATTR=__MSABI__`; the bhaible tests once per
//! `-DDGTEST=n` (bhaible.exp). The object is linked twice, with
//! `-ljitffi` and with `-lffi`, against the reference `ffi.h`. A run passes
//! when it exits with 0 within the timeout and its output matches the
//! test's `dg-output` patterns.
//!
//! # AArch64, cross-tested under qemu-user
//!
//! `cargo test --release --target aarch64-unknown-linux-gnu --features
//! libffi-compat --test libffi_testsuite` (after `cargo build --release
//! --lib --target aarch64-unknown-linux-gnu --features libffi-compat`; see
//! .ci/aarch64.sh). The driver is this test binary itself, an AArch64
//! program that cargo starts under qemu-user (the runner in
//! .cargo/config.toml); it runs on the host's toolchain because qemu-user
//! passes a guest's `execve` to the host kernel, so x86-64 programs
//! (`aarch64-linux-gnu-gcc`/`-g++`, `timeout`, `cargo metadata`) start as
//! usual. What does not start is another AArch64 executable without
//! binfmt_misc, so each test program is started as `qemu-aarch64 -L
//! $QEMU_LD_PREFIX prog` ([`cross_runner`] finds out which way works by
//! starting this binary once). Keeping the driver in the target program,
//! rather than a host-side driver, keeps one `cargo test` command and one
//! code path on native AArch64 machines (where everything runs directly).
//!
//! The reference is Debian's `libffi8:arm64` and its `ffi.h`/`ffitarget.h`
//! from `libffi-dev:arm64`, unpacked (not installed) under
//! `target/aarch64-libffi` (or `$LIBFFI_AARCH64_ROOT`); tests link it with
//! `-L`/`-rpath`. [`layouts_match_ffi_h`] checks that `ffi_cif`, `ffi_type`,
//! `ffi_closure` and the `ffi_abi`/`ffi_status` values of those headers are
//! the layer's.
//!
//! Assertion: every test that passes against the reference libffi passes
//! against jitffi, except those in [`KNOWN`] (each with its reason).
#![cfg(feature = "libffi-compat")]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Tests the layer is known not to support, with the reason: none. The C++
/// unwinding tests (`unwindtest.cc`, `unwindtest_ffi_call.cc`) pass on
/// x86-64 and AArch64 alike: the generated code has unwind tables
/// (`jitffi::unwind`).
const KNOWN: &[(&str, &str)] = &[];

/// Seconds a test binary may run.
const TIMEOUT: &str = "30";

fn testsuite_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("LIBFFI_TESTSUITE_DIR") {
        return Some(PathBuf::from(d));
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // Crude JSON scan: every "manifest_path":"..." value; pick libffi-sys's.
    let key = "\"manifest_path\":\"";
    text.match_indices(key)
        .filter_map(|(i, _)| {
            let rest = &text[i + key.len()..];
            let end = rest.find('"')?;
            Some(PathBuf::from(&rest[..end]))
        })
        .find(|p| {
            p.parent()
                .and_then(|d| d.file_name())
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libffi-sys-"))
        })
        .map(|m| m.parent().unwrap().join("libffi/testsuite"))
}

/// The directory holding the cdylib of this profile (target/<profile>).
fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/libffi_testsuite-HASH
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// How C is compiled, linked and run for the target, and where the
/// reference libffi is.
#[derive(Debug)]
struct Tools {
    cc: String,
    cxx: String,
    /// Prefix that runs a target executable: empty when the host runs it,
    /// `qemu-aarch64 -L SYSROOT` when this test itself runs under qemu-user
    /// without binfmt_misc (see [`cross_runner`]).
    runner: Vec<String>,
    /// The directory holding the reference `ffi.h`/`ffitarget.h`; `None`:
    /// the compiler's default include path (the system libffi-dev).
    ffi_include: Option<PathBuf>,
    /// The directory holding the reference `libffi.so`; `None`: the
    /// system's.
    ffi_lib: Option<PathBuf>,
    /// Seconds a test binary may run.
    timeout: &'static str,
}

impl Tools {
    /// The host's own compilers and the system libffi (x86-64 CI, or a
    /// native AArch64 machine with libffi-dev installed and no unpacked
    /// reference libffi).
    #[cfg(not(target_arch = "aarch64"))]
    fn detect(_target_dir: &Path) -> Tools {
        Tools {
            cc: "gcc".into(),
            cxx: "g++".into(),
            runner: Vec::new(),
            ffi_include: None,
            ffi_lib: None,
            timeout: TIMEOUT,
        }
    }

    /// AArch64 Linux: the cross compilers (`$CC_aarch64_unknown_linux_gnu`
    /// / `$CXX_aarch64_unknown_linux_gnu`, else `aarch64-linux-gnu-gcc` /
    /// `-g++` when present, else `gcc` / `g++`), the reference libffi
    /// unpacked from Debian's `libffi8:arm64` and `libffi-dev:arm64` under
    /// `$LIBFFI_AARCH64_ROOT` (default `target/aarch64-libffi`, where
    /// .ci/aarch64.sh and benches/aarch64.sh put it), and qemu when needed.
    #[cfg(target_arch = "aarch64")]
    fn detect(target_dir: &Path) -> Tools {
        fn works(tool: &str) -> bool {
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        }
        let env = |var: &str| std::env::var(var).ok().filter(|v| !v.is_empty());
        // The cross pair when the cross C compiler is there (if its g++ is
        // missing, the C++ tests then do not compile and are reported as
        // skipped, rather than being built for the host by mistake);
        // otherwise the native pair (an AArch64 host).
        let cross = works("aarch64-linux-gnu-gcc");
        let (cc0, cxx0) = if cross {
            ("aarch64-linux-gnu-gcc", "aarch64-linux-gnu-g++")
        } else {
            ("gcc", "g++")
        };
        let cc = env("CC_aarch64_unknown_linux_gnu").unwrap_or_else(|| cc0.into());
        let cxx = env("CXX_aarch64_unknown_linux_gnu").unwrap_or_else(|| cxx0.into());
        if !works(&cxx) {
            println!("note: no C++ compiler `{cxx}`: the .cc tests will not compile");
        }
        let root = std::env::var_os("LIBFFI_AARCH64_ROOT")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir.join("aarch64-libffi"));
        let include = root.join("usr/include/aarch64-linux-gnu");
        let lib = root.join("usr/lib/aarch64-linux-gnu");
        let unpacked = include.join("ffi.h").exists() && lib.join("libffi.so").exists();
        let runner = cross_runner();
        assert!(
            unpacked || runner.is_empty(),
            "no reference libffi for AArch64 under {}: unpack Debian's libffi8:arm64 and \
             libffi-dev:arm64 there (`apt-get download` + `dpkg-deb -x`, as .ci/aarch64.sh \
             does), or set LIBFFI_AARCH64_ROOT",
            root.display()
        );
        Tools {
            cc,
            cxx,
            timeout: if runner.is_empty() {
                TIMEOUT
            } else {
                TIMEOUT_QEMU
            },
            runner,
            ffi_include: unpacked.then_some(include),
            ffi_lib: unpacked.then_some(lib),
        }
    }

    /// Adds the reference libffi to a link.
    fn link_reference(&self, link: &mut Command) {
        if let Some(lib) = &self.ffi_lib {
            link.arg("-L")
                .arg(lib)
                .arg(format!("-Wl,-rpath,{}", lib.display()));
        }
        link.arg("-lffi");
    }

    /// A command running the target executable `exe` under the timeout,
    /// with `LD_PRELOAD=preload` in its environment when given.
    fn run_exe(&self, exe: &Path, preload: Option<&Path>) -> Command {
        let mut cmd = Command::new("timeout");
        cmd.arg(self.timeout);
        if let Some((prog, args)) = self.runner.split_first() {
            cmd.arg(prog).args(args);
            if let Some(p) = preload {
                // qemu's -E sets the guest's environment only: an
                // LD_PRELOAD of an AArch64 library must not reach the
                // (x86-64) qemu process itself.
                cmd.arg("-E").arg(format!("LD_PRELOAD={}", p.display()));
            }
        } else if let Some(p) = preload {
            cmd.env("LD_PRELOAD", p);
        }
        cmd.arg(exe);
        cmd
    }
}

/// Seconds a test binary may run under qemu-user (a tenth of native speed
/// or worse; the closure tests create thousands of closures).
#[cfg(target_arch = "aarch64")]
const TIMEOUT_QEMU: &str = "120";

/// How to start an AArch64 executable from this (AArch64) process.
///
/// Under `cargo test --target aarch64-unknown-linux-gnu` on an x86-64 host,
/// this test binary runs under qemu-user (the cargo runner in
/// .cargo/config.toml). qemu-user hands a guest's `execve` to the host
/// kernel, so x86-64 tools (gcc, `timeout`, qemu itself) start normally,
/// but an AArch64 executable starts only if binfmt_misc is set up for it.
/// So: try to start this very test binary (`--list`, harmless); if that
/// works (native AArch64, or binfmt_misc) run executables directly,
/// otherwise through `qemu-aarch64 -L $QEMU_LD_PREFIX` (default
/// `/usr/aarch64-linux-gnu`, the Debian cross sysroot).
#[cfg(target_arch = "aarch64")]
fn cross_runner() -> Vec<String> {
    let direct = std::env::current_exe()
        .and_then(|exe| Command::new(exe).arg("--list").output())
        .is_ok_and(|o| o.status.success());
    if direct {
        return Vec::new();
    }
    let sysroot = std::env::var("QEMU_LD_PREFIX")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/usr/aarch64-linux-gnu".into());
    vec!["qemu-aarch64".into(), "-L".into(), sysroot]
}

/// Cargo's target directory above `libdir` (`target/<profile>` or
/// `target/<triple>/<profile>`): the outermost of the nearest three
/// ancestors holding a `CACHEDIR.TAG` (cargo writes one into both `target`
/// and `target/<triple>`).
fn target_dir(libdir: &Path) -> PathBuf {
    libdir
        .ancestors()
        .take(3)
        .filter(|d| d.join("CACHEDIR.TAG").exists())
        .last()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// One compiled-and-run variant of a test.
#[derive(Clone, Debug)]
struct Case {
    /// Display name: `dir/file.c [flags]`.
    name: String,
    /// Table row (testsuite directory).
    group: String,
    source: PathBuf,
    flags: Vec<String>,
    cxx: bool,
    /// The concatenated `dg-output` pattern.
    expect: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// Extracts `{ dg-output "..." }` strings in order, concatenated, with the
/// Tcl string escapes resolved (`\n` -> newline, `\\` -> `\`).
fn dg_output(src: &str) -> String {
    let mut out = String::new();
    let mut rest = src;
    while let Some(i) = rest.find("dg-output") {
        rest = &rest[i + "dg-output".len()..];
        let t = rest.trim_start();
        let Some(body) = t.strip_prefix('"') else {
            continue;
        };
        let mut chars = body.chars();
        let mut s = String::new();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                // Tcl: `\n` is a newline, `\X` is X (so `\\` is one
                // backslash, left for the regex level).
                '\\' => match chars.next() {
                    Some('n') => s.push('\n'),
                    Some('t') => s.push('\t'),
                    Some(o) => s.push(o),
                    None => {}
                },
                c => s.push(c),
            }
        }
        out.push_str(&s);
    }
    out
}

/// A tiny regex matcher for the dg-output patterns the testsuite uses:
/// literals, `\X` escapes (a literal X), `.` (any character) and `\n`
/// matching `\r?\n` (libffi.exp). Unanchored, as DejaGnu's `regexp`.
fn output_matches(pattern: &str, text: &str) -> bool {
    #[derive(Clone, Copy)]
    enum Tok {
        Lit(char),
        Any,
    }
    let mut toks = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                if let Some(n) = it.next() {
                    toks.push(Tok::Lit(n))
                }
            }
            '.' => toks.push(Tok::Any),
            c => toks.push(Tok::Lit(c)),
        }
    }
    let text: Vec<char> = text.chars().filter(|&c| c != '\r').collect();
    if toks.is_empty() {
        return true;
    }
    (0..=text.len()).any(|start| {
        toks.iter()
            .enumerate()
            .all(|(k, t)| match (t, text.get(start + k)) {
                (Tok::Any, Some(_)) => true,
                (Tok::Lit(a), Some(b)) => a == b,
                _ => false,
            })
    })
}

fn cases(root: &Path) -> Vec<Case> {
    let opts: Vec<String> = match std::env::var("LIBFFI_TEST_OPTIMIZATION") {
        Ok(o) => o.split_whitespace().map(String::from).collect(),
        Err(_) => vec!["-O0".into(), "-O2".into()],
    };
    // libffi.exp `run-many-tests`: the extra ABI only on x86-64.
    let mut abis: Vec<Vec<String>> = vec![vec![]];
    if cfg!(target_arch = "x86_64") {
        abis.push(vec![
            "-DABI_NUM=FFI_GNUW64".into(),
            "-DABI_ATTR=__MSABI__".into(),
        ]);
    }
    let common = ["-W", "-Wall", "-Wno-psabi", "-fno-diagnostics-color"];
    let mut out = Vec::new();
    let mut push = |group: &str, src: &Path, extra: &[String], text: &str| {
        let cxx = src.extension().is_some_and(|e| e == "cc");
        let abi_set: &[Vec<String>] = if text.contains("ABI_NUM") {
            &abis[..]
        } else {
            &abis[..1]
        };
        for opt in &opts {
            for abi in abi_set {
                let mut flags: Vec<String> = common.iter().map(|s| s.to_string()).collect();
                flags.extend(extra.iter().cloned());
                flags.push(opt.clone());
                flags.extend(abi.iter().cloned());
                let shown: Vec<&str> = extra
                    .iter()
                    .filter(|f| f.starts_with("-DDGTEST"))
                    .chain(std::iter::once(opt))
                    .chain(abi.iter().take(1))
                    .map(String::as_str)
                    .collect();
                out.push(Case {
                    name: format!(
                        "{group}/{} {}",
                        src.file_name().unwrap().to_string_lossy(),
                        shown.join(" ")
                    ),
                    group: group.to_string(),
                    source: src.to_path_buf(),
                    flags,
                    cxx,
                    expect: dg_output(text),
                });
            }
        }
    };
    for group in ["libffi.call", "libffi.closures", "libffi.complex"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(group))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.retain(|p| p.extension().is_some_and(|e| e == "c" || e == "cc"));
        files.sort();
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            push(group, &f, &[], &text);
        }
    }
    let bh = root.join("libffi.bhaible");
    let warn: Vec<String> = [
        "-Wno-unused-variable",
        "-Wno-unused-parameter",
        "-Wno-unused-but-set-variable",
        "-Wno-uninitialized",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (file, n) in [("test-call.c", 82), ("test-callback.c", 81)] {
        let src = bh.join(file);
        let text = std::fs::read_to_string(&src).unwrap_or_default();
        for i in 1..n {
            let mut extra = vec![format!("-DDGTEST={i}")];
            extra.extend(warn.iter().cloned());
            push("libffi.bhaible", &src, &extra, &text);
        }
    }
    out
}

/// Runs `cmd` under `timeout`; returns (success, combined output).
fn run(cmd: &mut Command) -> (bool, String) {
    match cmd.output() {
        Ok(o) => {
            let mut s = String::from_utf8_lossy(&o.stdout).into_owned();
            let err = String::from_utf8_lossy(&o.stderr);
            let ok = o.status.success();
            if !ok {
                s.push_str(&err);
                s.push_str(&format!("\n[{}]", o.status));
            }
            (ok, s)
        }
        Err(e) => (false, format!("cannot run: {e}")),
    }
}

/// The most telling line of a tool's output: its first line mentioning an
/// error, else its last line that is not `run`'s exit-status marker.
fn first_line(s: &str) -> String {
    let mut lines = s.lines().filter(|l| !l.trim().is_empty());
    lines
        .clone()
        .find(|l| l.contains("error") || l.contains("Error"))
        .or_else(|| lines.rfind(|l| !l.starts_with("[exit status") && !l.starts_with("[signal")))
        .or_else(|| s.lines().rev().find(|l| !l.trim().is_empty()))
        .unwrap_or("")
        .chars()
        .take(160)
        .collect()
}

/// Compiles the case once, links it against both libraries, runs both.
fn run_case(c: &Case, t: &Tools, work: &Path, libdir: &Path, id: usize) -> [Outcome; 2] {
    let obj = work.join(format!("t{id}.o"));
    let cc = if c.cxx { &t.cxx } else { &t.cc };
    let dir = c.source.parent().unwrap();
    let mut compile = Command::new(cc);
    compile.args(&c.flags).arg("-I").arg(work);
    if let Some(inc) = &t.ffi_include {
        compile.arg("-I").arg(inc);
    }
    let (ok, msg) = run(compile
        .arg("-I")
        .arg(dir)
        .arg("-c")
        .arg(&c.source)
        .arg("-o")
        .arg(&obj));
    if !ok {
        let why = format!(
            "does not compile against the reference ffi.h: {}",
            first_line(&msg)
        );
        return [Outcome::Skip(why.clone()), Outcome::Skip(why)];
    }
    let mut res = Vec::new();
    for (k, lib) in ["jitffi", "ffi"].iter().enumerate() {
        let exe = work.join(format!("t{id}_{k}"));
        let mut link = Command::new(cc);
        link.arg(&obj).arg("-o").arg(&exe);
        if *lib == "jitffi" {
            link.arg("-L")
                .arg(libdir)
                .arg(format!("-Wl,-rpath,{}", libdir.display()))
                .arg("-ljitffi");
        } else {
            t.link_reference(&mut link);
        }
        link.args(["-lm", "-lpthread"]);
        let (ok, msg) = run(&mut link);
        if !ok {
            res.push(Outcome::Skip(format!(
                "does not link: {}",
                first_line(&msg)
            )));
            continue;
        }
        let (ok, out) = run(&mut t.run_exe(&exe, None));
        let _ = std::fs::remove_file(&exe);
        res.push(if !ok {
            Outcome::Fail(first_line(&out))
        } else if !output_matches(&c.expect, &out) {
            Outcome::Fail(format!(
                "output does not match dg-output {:?}: got {:?}",
                c.expect.chars().take(80).collect::<String>(),
                out.chars().take(120).collect::<String>()
            ))
        } else {
            Outcome::Pass
        });
    }
    let _ = std::fs::remove_file(&obj);
    [res[0].clone(), res[1].clone()]
}

#[test]
fn dg_output_matcher() {
    assert!(output_matches("1 2\nres: 3", "x 1 2\r\nres: 3\n"));
    assert!(output_matches("\\-2.5", "-2.5"));
    assert!(!output_matches("1 2\nres: 4", "1 2\nres: 3\n"));
    assert_eq!(
        dg_output("/* { dg-output \"a\\\\-1\" } */\n/* { dg-output \"\\nb\" } */"),
        "a\\-1\nb"
    );
}

#[test]
fn libffi_testsuite() {
    let Some(root) = testsuite_dir().filter(|d| d.join("libffi.call").is_dir()) else {
        panic!("libffi testsuite not found: libffi-sys source missing (cargo fetch), or set LIBFFI_TESTSUITE_DIR");
    };
    let libdir = lib_dir();
    assert!(
        libdir.join("libjitffi.so").exists(),
        "{} missing",
        libdir.join("libjitffi.so").display()
    );
    // `cargo test` relinks the rlib but not always the cdylib: refuse a
    // libjitffi.so older than the library the test binary was built from.
    let so_time = std::fs::metadata(libdir.join("libjitffi.so"))
        .and_then(|m| m.modified())
        .ok();
    let rlib_time = std::fs::read_dir(libdir.join("deps"))
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| {
            let n = e.file_name().to_string_lossy().to_string();
            n.starts_with("libjitffi-") && n.ends_with(".rlib")
        })
        .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
        .max();
    assert!(
        so_time >= rlib_time,
        "{} is older than the jitffi rlib: run `cargo build --lib --features libffi-compat` \
         (with the same profile) before this test",
        libdir.join("libjitffi.so").display()
    );
    let tools = Tools::detect(&target_dir(&libdir));
    let work = libdir.join("libffi-testsuite");
    std::fs::create_dir_all(&work).unwrap();
    // The testsuite's ffitest.h includes the build's fficonfig.h; these are
    // the facts configure finds on glibc.
    std::fs::write(
        work.join("fficonfig.h"),
        "#define HAVE_STDINT_H 1\n#define HAVE_INTTYPES_H 1\n#define HAVE_MMAP_ANON 1\n",
    )
    .unwrap();
    let all = cases(&root);
    let filter = std::env::var("LIBFFI_TEST_FILTER").ok();
    let all: Vec<Case> = all
        .into_iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, [Outcome; 2])>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .min(4);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = all.get(i) else { break };
                let r = run_case(c, &tools, &work, &libdir, i);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|r| r.0);

    // Table: per group and library, passed / failed / skipped.
    let mut table: BTreeMap<(String, usize), [usize; 3]> = BTreeMap::new();
    let known: BTreeMap<&str, &str> = KNOWN.iter().copied().collect();
    let mut regressions = Vec::new();
    let mut listed = Vec::new();
    for (i, r) in &results {
        let c = &all[*i];
        for (k, o) in r.iter().enumerate() {
            let e = table.entry((c.group.clone(), k)).or_default();
            match o {
                Outcome::Pass => e[0] += 1,
                Outcome::Fail(_) => e[1] += 1,
                Outcome::Skip(_) => e[2] += 1,
            }
        }
        let file = c.source.file_name().unwrap().to_string_lossy().to_string();
        match (&r[0], &r[1]) {
            (Outcome::Pass, Outcome::Pass) => {}
            (Outcome::Pass, o) => {
                if let Outcome::Fail(m) | Outcome::Skip(m) = o {
                    listed.push(format!(
                        "{} (passes with jitffi; fails with the reference libffi: {m})",
                        c.name
                    ));
                }
            }
            (o, Outcome::Pass) => {
                let why = match o {
                    Outcome::Fail(m) | Outcome::Skip(m) => m.clone(),
                    Outcome::Pass => unreachable!(),
                };
                if let Some(reason) = known.get(file.as_str()) {
                    listed.push(format!("{}: {reason}", c.name));
                } else {
                    regressions.push(format!("{}: {why}", c.name));
                }
            }
            (o, _) => {
                if let Outcome::Fail(m) | Outcome::Skip(m) = o {
                    listed.push(format!(
                        "{} (fails with the reference libffi too): {m}",
                        c.name
                    ));
                }
            }
        }
    }
    println!(
        "\nlibffi testsuite ({}), {} cases; {} / {}{}; reference libffi: {}",
        root.display(),
        all.len(),
        tools.cc,
        tools.cxx,
        if tools.runner.is_empty() {
            String::new()
        } else {
            format!(", run under `{}`", tools.runner.join(" "))
        },
        tools
            .ffi_lib
            .as_ref()
            .map_or("the system's".to_string(), |l| l.display().to_string())
    );
    println!(
        "{:<18} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "", "jitffi", "", "", "libffi", "", ""
    );
    println!(
        "{:<18} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "group", "passed", "failed", "skipped", "passed", "failed", "skipped"
    );
    let mut tot = [[0usize; 3]; 2];
    let groups: Vec<String> = {
        let mut g: Vec<String> = table.keys().map(|k| k.0.clone()).collect();
        g.dedup();
        g
    };
    for g in &groups {
        let j = table.get(&(g.clone(), 0)).copied().unwrap_or_default();
        let l = table.get(&(g.clone(), 1)).copied().unwrap_or_default();
        for k in 0..3 {
            tot[0][k] += j[k];
            tot[1][k] += l[k];
        }
        println!(
            "{:<18} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
            g, j[0], j[1], j[2], l[0], l[1], l[2]
        );
    }
    println!(
        "{:<18} {:>8} {:>8} {:>8}   {:>8} {:>8} {:>8}",
        "total", tot[0][0], tot[0][1], tot[0][2], tot[1][0], tot[1][1], tot[1][2]
    );
    if !listed.is_empty() {
        println!("\nnot passing against one of the libraries (with the reason):");
        for l in &listed {
            println!("  {l}");
        }
    }
    if !regressions.is_empty() {
        println!("\nREGRESSIONS (pass with libffi, not with jitffi):");
        for r in &regressions {
            println!("  {r}");
        }
    }
    assert!(
        regressions.is_empty(),
        "{} tests pass against the reference libffi but not against jitffi",
        regressions.len()
    );
}

/// A program linked against the system libffi.so.8 runs on jitffi under
/// `LD_PRELOAD`: `ffi_call` resolves into libjitffi.so, a call and a
/// closure (with the `ffi_arg` widening of a `short` result) work, and both
/// runs print a timing of `ffi_call` on `i64 add3(i64, i64, i64)` (reported,
/// not asserted).
#[test]
fn ld_preload_system_libffi_program() {
    let libdir = lib_dir();
    let so = libdir.join("libjitffi.so");
    let exe = libdir.join("libffi-preload-demo");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/c/libffi_preload.c");
    let tools = Tools::detect(&target_dir(&libdir));
    let mut build = Command::new(&tools.cc);
    build.arg("-O2").arg(&src);
    if let Some(inc) = &tools.ffi_include {
        build.arg("-I").arg(inc);
    }
    build.arg("-o").arg(&exe);
    tools.link_reference(&mut build);
    build.arg("-ldl");
    let (ok, msg) = run(&mut build);
    assert!(ok, "cannot build the demo against -lffi: {msg}");
    let (ok, plain) = run(&mut tools.run_exe(&exe, None));
    assert!(ok, "demo fails with the reference libffi: {plain}");
    assert!(plain.contains("libffi.so"), "{plain}");
    let (ok, pre) = run(&mut tools.run_exe(&exe, Some(&so)));
    assert!(ok, "demo fails under LD_PRELOAD={}: {pre}", so.display());
    assert!(
        pre.contains("ffi_call from: ") && pre.contains("libjitffi.so"),
        "ffi_call did not resolve into jitffi: {pre}"
    );
    println!("reference libffi:\n{plain}\nLD_PRELOAD=libjitffi.so:\n{pre}");
}

/// The layouts and constants the layer exposes match the reference
/// `ffi.h`/`ffitarget.h` of the target, as the target's C compiler sees
/// them: `ffi_cif`, `ffi_type`, `ffi_closure` (its trampoline area and
/// where `cif`/`fun`/`user_data` sit), the `ffi_abi` numbering and
/// `ffi_status` values.
#[test]
fn layouts_match_ffi_h() {
    use jitffi::ffi_compat::{self as fc, abi};
    let libdir = lib_dir();
    let tools = Tools::detect(&target_dir(&libdir));
    let work = libdir.join("libffi-testsuite");
    std::fs::create_dir_all(&work).unwrap();
    let src = work.join("layouts.c");
    let exe = work.join("layouts");
    std::fs::write(
        &src,
        r#"#include <ffi.h>
#include <stddef.h>
#include <stdio.h>
int main(void) {
  printf("cif %zu %zu %zu %zu %zu\n", sizeof(ffi_cif), offsetof(ffi_cif, arg_types),
         offsetof(ffi_cif, rtype), offsetof(ffi_cif, bytes), offsetof(ffi_cif, flags));
  printf("type %zu %zu %zu\n", sizeof(ffi_type), offsetof(ffi_type, type),
         offsetof(ffi_type, elements));
  printf("closure %zu %d %zu %zu %zu\n", sizeof(ffi_closure), FFI_TRAMPOLINE_SIZE,
         offsetof(ffi_closure, cif), offsetof(ffi_closure, fun),
         offsetof(ffi_closure, user_data));
  printf("abi %d %d %d\n", FFI_FIRST_ABI, FFI_DEFAULT_ABI, FFI_LAST_ABI);
  printf("status %d %d %d %d\n", FFI_OK, FFI_BAD_TYPEDEF, FFI_BAD_ABI, FFI_BAD_ARGTYPE);
  printf("ldouble %zu %zu\n", sizeof(long double), _Alignof(long double));
  return 0;
}
"#,
    )
    .unwrap();
    let mut build = Command::new(&tools.cc);
    build.arg(&src).arg("-o").arg(&exe);
    if let Some(inc) = &tools.ffi_include {
        build.arg("-I").arg(inc);
    }
    let (ok, msg) = run(&mut build);
    assert!(ok, "cannot compile the layout probe: {msg}");
    let (ok, out) = run(&mut tools.run_exe(&exe, None));
    assert!(ok, "layout probe fails: {out}");
    let ptr = std::mem::size_of::<usize>();
    let cif = std::mem::size_of::<fc::FfiCif>();
    let ty = std::mem::size_of::<fc::types::FfiType>();
    let ours = format!(
        "cif {cif} {} {} {} {}\ntype {ty} {} {}\nclosure {} {} {} {} {}\n\
         abi {} {} {}\nstatus {} {} {} {}\nldouble 16 16\n",
        std::mem::offset_of!(fc::FfiCif, arg_types),
        std::mem::offset_of!(fc::FfiCif, rtype),
        std::mem::offset_of!(fc::FfiCif, bytes),
        std::mem::offset_of!(fc::FfiCif, flags),
        std::mem::offset_of!(fc::types::FfiType, type_),
        std::mem::offset_of!(fc::types::FfiType, elements),
        fc::CLOSURE_SIZE,
        fc::TRAMPOLINE_SIZE,
        fc::TRAMPOLINE_SIZE,
        fc::TRAMPOLINE_SIZE + ptr,
        fc::TRAMPOLINE_SIZE + 2 * ptr,
        abi::FFI_FIRST_ABI,
        abi::FFI_DEFAULT_ABI,
        abi::FFI_LAST_ABI,
        fc::FFI_OK,
        fc::FFI_BAD_TYPEDEF,
        fc::FFI_BAD_ABI,
        fc::FFI_BAD_ARGTYPE,
    );
    println!("{}", out.trim_end());
    // ffi_type_longdouble is exported as 16 bytes, 16-aligned (symbols.rs).
    assert_eq!(out, ours, "ffi.h (left) vs src/ffi_compat (right)");
}
