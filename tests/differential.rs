//! Differential testing: random signatures called through jitffi against
//! two independent oracles, gcc and libffi (see docs/differential.md).
//!
//! - gcc: generated C callees record every argument leaf they receive and
//!   return a hash-fill of the result; generated C callers call a function
//!   pointer with fixed values and record the result. jitffi trampolines
//!   (pointer/frame × unbound/bound) call the callees, and jitffi closures
//!   are called by the callers. On x86-64: SysV and Win64 (`ms_abi`); on
//!   AArch64 Linux: AAPCS64, under qemu-user with the cross gcc
//!   (`.ci/aarch64.sh`).
//! - libffi: jitffi trampolines call libffi closures; `ffi_call` calls jitffi
//!   closures (signatures libffi can describe).
//!
//! `JITFFI_DIFF_SEED` (decimal or 0x-hex) and `JITFFI_DIFF_COUNT` choose the
//! run; signature *i* of a run with seed *s* is reproduced alone by
//! `JITFFI_DIFF_SEED=s+i JITFFI_DIFF_COUNT=1`. `JITFFI_DIFF_VERBOSE=1`
//! prints each declaration before it runs (for crashes).
#![cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]

mod diff;

use std::ffi::c_void;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use diff::ffi::{self as dffi, call_through, recorder};
use diff::gen::{GenSig, Opts, Source, SplitMix, Ty};
use jitffi::call::ArgMode;
use jitffi::cdecl::parse_signature;
use jitffi::{Abi, Signature};

/// Signatures per gcc compile.
const BATCH: usize = 200;

/// The target the generated C is compiled for (the test runs its callees
/// in-process).
#[cfg(target_arch = "x86_64")]
const TARGET: &str = "x86_64-unknown-linux-gnu";
#[cfg(target_arch = "aarch64")]
const TARGET: &str = "aarch64-unknown-linux-gnu";

/// The ABIs of the generated signatures: `[main, other]`; the other one
/// (x86-64: Win64, a quarter of the signatures) is absent on AArch64.
#[cfg(target_arch = "x86_64")]
const ABIS: [Option<Abi>; 2] = [Some(Abi::SysV64), Some(Abi::Win64)];
#[cfg(target_arch = "aarch64")]
const ABIS: [Option<Abi>; 2] = [Some(Abi::Aapcs64), None];

/// Default signature counts (debug, release). Under qemu-user (AArch64)
/// the same counts take about as long as natively here (gcc dominates: the
/// cross gcc runs natively): 200 in a debug build ≈ 30 s, 2,000 in release
/// ≈ 60 s on a loaded 2-core machine. `.ci/aarch64.sh` sets
/// `JITFFI_DIFF_COUNT` explicitly.
const DEFAULT_COUNT: (u64, u64) = (200, 2000);

/// The host that builds the C. AArch64: the cross gcc when there is one
/// (`CC_aarch64_unknown_linux_gnu` or `aarch64-linux-gnu-gcc`; the test
/// runs under qemu-user, which execs the x86-64 compiler natively), else
/// the native compiler of an AArch64 host.
fn c_host() -> &'static str {
    static HOST: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();
    HOST.get_or_init(find_c_host)
}

fn find_c_host() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        return TARGET;
    }
    let cross = std::env::var_os("CC_aarch64_unknown_linux_gnu").is_some()
        || std::process::Command::new("aarch64-linux-gnu-gcc")
            .arg("--version")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    if cross {
        "x86_64-unknown-linux-gnu"
    } else {
        TARGET
    }
}

struct Config {
    seed: u64,
    count: usize,
    verbose: bool,
    /// gcc's -O level for the generated C (the ABI does not depend on it;
    /// -O0 compiles about 3x faster, for long runs).
    opt: u32,
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok()?;
    let v = v.trim();
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    Some(parsed.unwrap_or_else(|_| panic!("{name}={v} is not a number")))
}

fn config() -> Config {
    let seed = env_u64("JITFFI_DIFF_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        diff::gen::dmix(t ^ ((std::process::id() as u64) << 32))
    });
    let default = if cfg!(debug_assertions) {
        DEFAULT_COUNT.0
    } else {
        DEFAULT_COUNT.1
    };
    Config {
        seed,
        count: env_u64("JITFFI_DIFF_COUNT").unwrap_or(default) as usize,
        verbose: std::env::var_os("JITFFI_DIFF_VERBOSE").is_some_and(|v| v != "0"),
        opt: match env_u64("JITFFI_DIFF_OPT") {
            None => 2,
            Some(o @ 0..=3) => o as u32,
            Some(o) => panic!("JITFFI_DIFF_OPT={o}: want 0, 1, 2 or 3"),
        },
    }
}

/// Set by `JITFFI_DIFF_VERBOSE`: [`stage`] prints.
static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// With `JITFFI_DIFF_VERBOSE`, names the step about to run (to place a
/// crash).
fn stage(what: &str) {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        say(&format!("  {what}"));
    }
}

/// Straight to stderr, past the test harness's capture (so a crash still
/// shows the seed).
fn say(msg: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{msg}");
}

/// The ABI of a signature: x86-64: a quarter of them Win64.
fn pick_abi(r: &mut SplitMix) -> Abi {
    match ABIS {
        [main, Some(other)] => {
            if r.below(4) == 0 {
                other
            } else {
                main.unwrap()
            }
        }
        [main, None] => main.unwrap(),
    }
}

/// Signature `i` of a run: its own seed.
fn gen_sig(seed: u64, slot: usize) -> GenSig {
    let mut r = SplitMix(seed);
    let abi = pick_abi(&mut r);
    GenSig::generate(&mut r, Opts::gcc(abi), &format!("d{slot}_"))
}

/// The libffi-describable signature drawn from the same seed.
fn gen_ffi_sig(seed: u64) -> GenSig {
    let mut r = SplitMix(seed ^ 0x6c69_6266_6669_0000);
    let abi = pick_abi(&mut r);
    GenSig::generate(&mut r, Opts::libffi(abi), "f_")
}

struct Batch {
    sigs: Vec<(u64, GenSig)>,
    lib: Result<PathBuf, String>,
}

/// Compiles the batch's C files (in parallel, one gcc per file) and links
/// them into one shared library.
fn compile(dir: &Path, n: usize, srcs: &[String], opt: u32) -> Result<PathBuf, String> {
    let pid = std::process::id();
    let so = dir.join(format!("libbatch_{pid}_{n}.so"));
    let opt_flag = format!("-O{opt}");
    let compiler = cc::Build::new()
        .opt_level(opt)
        .cargo_metadata(false)
        .target(TARGET)
        .host(c_host())
        .get_compiler();
    let mut jobs = Vec::new();
    for (k, src) in srcs.iter().enumerate() {
        let c = dir.join(format!("batch_{pid}_{n}_{k}.c"));
        let o = dir.join(format!("batch_{pid}_{n}_{k}.o"));
        std::fs::write(&c, src).map_err(|e| e.to_string())?;
        let child = compiler
            .to_command()
            .args(["-c", "-fPIC", &opt_flag, "-w", "-o"])
            .arg(&o)
            .arg(&c)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .map_err(|e| format!("running the C compiler: {e}"))?;
        jobs.push((c, o, child));
    }
    let mut objs = Vec::new();
    let mut failure = None;
    for (c, o, child) in jobs {
        let out = child.wait_with_output().map_err(|e| e.to_string())?;
        if !out.status.success() && failure.is_none() {
            failure = Some(format!(
                "gcc failed on {}:\n{}",
                c.display(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .take(30)
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        } else if std::env::var_os("JITFFI_DIFF_KEEP").is_none() {
            let _ = std::fs::remove_file(&c);
        }
        objs.push(o);
    }
    if let Some(f) = failure {
        return Err(f);
    }
    let out = compiler
        .to_command()
        .args(["-shared", "-o"])
        .arg(&so)
        .args(&objs)
        .output()
        .map_err(|e| format!("linking: {e}"))?;
    for o in &objs {
        let _ = std::fs::remove_file(o);
    }
    if !out.status.success() {
        return Err(format!(
            "linking failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(so)
}

enum Outcome {
    Ok,
    Unsupported(String),
    Mismatch(String),
}

#[derive(Default)]
struct Stats {
    sigs: usize,
    unsupported: usize,
    unsupported_reasons: std::collections::BTreeMap<String, usize>,
    gcc_checked: [usize; 2],
    ffi_checked: [usize; 2],
    ffi_alternate: usize,
    ffi_skipped: usize,
    ffi_refused: usize,
    variadic: usize,
    mismatches: Vec<String>,
}

fn arg_types(g: &GenSig) -> Vec<(String, &Ty)> {
    dffi::arg_types(g)
}

fn describe(g: &GenSig, what: &str, got: &[u8], want: &[u8], types: &[(String, &Ty)]) -> String {
    let at = got
        .iter()
        .zip(want)
        .position(|(x, y)| x != y)
        .unwrap_or(got.len().min(want.len()));
    format!(
        "{what}: {} (got {} bytes, want {}; at {at}: got {:02x?}, want {:02x?})",
        g.locate(types, at),
        got.len(),
        want.len(),
        &got[at.min(got.len())..(at + 16).min(got.len())],
        &want[at.min(want.len())..(at + 16).min(want.len())],
    )
}

/// Parses the declaration with jitffi and checks its layouts against the
/// generator's (which gcc has checked with `_Static_assert`).
fn parse(g: &GenSig) -> Result<Signature, Outcome> {
    let decl = g.decl();
    let jsig = parse_signature(&decl, g.abi)
        .map_err(|e| Outcome::Mismatch(format!("jitffi cannot parse it: {e}")))?;
    let mut pairs: Vec<(&jitffi::Type, &Ty, String)> = jsig
        .args
        .iter()
        .zip(&g.args)
        .enumerate()
        .map(|(i, (j, t))| (j, t, format!("argument {i}")))
        .collect();
    if let Some(t) = &g.ret {
        pairs.push((&jsig.ret, t, "result".into()));
    }
    if jsig.args.len() != g.args.len() || jsig.fixed_args != g.nfixed {
        return Err(Outcome::Mismatch(format!(
            "jitffi reads {} arguments ({} fixed), want {} ({})",
            jsig.args.len(),
            jsig.fixed_args,
            g.args.len(),
            g.nfixed
        )));
    }
    for (j, t, name) in pairs {
        if (j.size(), j.align()) != (g.size(t), g.align(t)) {
            return Err(Outcome::Mismatch(format!(
                "layout of {name}: jitffi size {} align {}, gcc {} {}",
                j.size(),
                j.align(),
                g.size(t),
                g.align(t)
            )));
        }
    }
    if let Err(u) = jitffi::abi::plan(&jsig) {
        return Err(Outcome::Unsupported(u.reason));
    }
    Ok(jsig)
}

struct CLib {
    lib: libloading::Library,
    buf: *mut u8,
    len: *mut usize,
}

impl CLib {
    fn open(path: &Path) -> Result<CLib, String> {
        // SAFETY: our own generated library; it has no initialisers.
        let lib = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
        // SAFETY: data symbols of the generated prelude, with these types.
        let (buf, len) = unsafe {
            (
                *lib.get::<*mut u8>(b"diff_buf").map_err(|e| e.to_string())?,
                *lib.get::<*mut usize>(b"diff_len")
                    .map_err(|e| e.to_string())?,
            )
        };
        Ok(CLib { lib, buf, len })
    }

    fn func(&self, name: &str) -> Result<*const c_void, String> {
        // SAFETY: the address of a generated function; only called through
        // types built from its signature.
        unsafe {
            self.lib
                .get::<*const c_void>(name.as_bytes())
                .map(|s| *s)
                .map_err(|e| e.to_string())
        }
    }

    /// The argument bytes the last callee recorded (and resets them).
    fn take_dump(&self) -> Vec<u8> {
        // SAFETY: diff_len <= sizeof diff_buf (1 MiB); the test is the
        // only user of the library's globals.
        unsafe {
            let n = (*self.len).min(1 << 20);
            let v = std::slice::from_raw_parts(self.buf, n).to_vec();
            *self.len = 0;
            std::ptr::write_bytes(self.buf, 0x5a, n);
            v
        }
    }
}

fn check_gcc(g: &GenSig, lib: &CLib) -> Outcome {
    let jsig = match parse(g) {
        Ok(s) => s,
        Err(o) => return o,
    };
    match run_gcc(g, &jsig, lib) {
        Ok(()) => Outcome::Ok,
        Err(m) => Outcome::Mismatch(m),
    }
}

fn run_gcc(g: &GenSig, jsig: &Signature, lib: &CLib) -> Result<(), String> {
    let (_, want_args) = g.expected_args();
    let (ret_img, want_ret) = g.expected_ret(&want_args);
    let types = arg_types(g);
    let rtypes: Vec<(String, &Ty)> = g.ret.iter().map(|t| ("ret".to_string(), t)).collect();

    // Forward: jitffi trampolines call the gcc-compiled callee.
    let callee = lib.func(&g.callee_name())?;
    lib.take_dump();
    for mode in [ArgMode::Pointers, ArgMode::Frame] {
        for bound in [false, true] {
            stage(&format!("gcc forward {mode:?} bound={bound}"));
            let got_ret = call_through(g, jsig, mode, bound, callee)?;
            let raw = lib.take_dump();
            let got_args = g.dump_of_raw_args(&raw).unwrap_or(raw);
            let what = format!("jitffi {mode:?} bound={bound} -> gcc callee");
            if got_args != want_args {
                return Err(describe(
                    g,
                    &format!("{what}: argument"),
                    &got_args,
                    &want_args,
                    &types,
                ));
            }
            if got_ret != want_ret {
                return Err(describe(
                    g,
                    &format!("{what}: result"),
                    &got_ret,
                    &want_ret,
                    &rtypes,
                ));
            }
        }
    }

    // Reverse: the gcc-compiled caller calls a jitffi closure.
    let caller = lib.func(&g.caller_name())?;
    // SAFETY: the generated caller has exactly this C type.
    let caller: extern "C" fn(*const c_void, *const *const u8, *mut u8) -> usize =
        unsafe { std::mem::transmute(caller) };
    let (c, seen) = recorder(g, jsig, ret_img)?;
    let (imgs, _) = g.expected_args();
    let ptrs: Vec<*const u8> = imgs.iter().map(|v| v.as_ptr()).collect();
    let rsize = g.ret.as_ref().map_or(0, |t| g.size(t) as usize);
    let mut out = vec![0u128; rsize.div_ceil(16) + 1];
    stage("gcc reverse");
    let n = caller(c.code_ptr(), ptrs.as_ptr(), out.as_mut_ptr().cast());
    if n != rsize {
        return Err(format!(
            "gcc caller returned {n} result bytes, want {rsize}"
        ));
    }
    let got_ret = match &g.ret {
        None => Vec::new(),
        // SAFETY: out holds the result's rsize bytes.
        Some(t) => unsafe { g.dump_from(t, out.as_ptr().cast()) },
    };
    let got_args = seen.lock().unwrap().clone();
    if got_args != want_args {
        return Err(describe(
            g,
            "gcc caller -> jitffi closure: argument",
            &got_args,
            &want_args,
            &types,
        ));
    }
    if got_ret != want_ret {
        return Err(describe(
            g,
            "gcc caller -> jitffi closure: result",
            &got_ret,
            &want_ret,
            &rtypes,
        ));
    }
    Ok(())
}

fn record_mismatch(stats: &mut Stats, oracle: &str, seed: u64, g: &GenSig, msg: &str) {
    let report = format!(
        "MISMATCH [{oracle}, {}] reproduce with JITFFI_DIFF_SEED={seed} JITFFI_DIFF_COUNT=1\n  {}\n  declaration: {}",
        g.abi,
        msg,
        g.decl().replace('\n', " ")
    );
    say(&report);
    stats.mismatches.push(report);
}

#[test]
fn differential() {
    let cfg = config();
    VERBOSE.store(cfg.verbose, std::sync::atomic::Ordering::Relaxed);
    let start = Instant::now();
    say(&format!(
        "differential: seed {} (JITFFI_DIFF_SEED), {} signatures (JITFFI_DIFF_COUNT), gcc -O{} (JITFFI_DIFF_OPT)",
        cfg.seed, cfg.count, cfg.opt
    ));
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("differential");
    std::fs::create_dir_all(&dir).unwrap();

    // A producer thread generates and compiles batch k+1 while batch k runs.
    let (tx, rx) = mpsc::sync_channel::<Batch>(1);
    let (seed, count, verbose, opt) = (cfg.seed, cfg.count, cfg.verbose, cfg.opt);
    let dir2 = dir.clone();
    let producer = std::thread::spawn(move || {
        for (n, first) in (0..count).step_by(BATCH).enumerate() {
            let sigs: Vec<(u64, GenSig)> = (first..count.min(first + BATCH))
                .map(|i| {
                    let s = seed.wrapping_add(i as u64);
                    (s, gen_sig(s, i - first))
                })
                .collect();
            let gs: Vec<GenSig> = sigs.iter().map(|(_, g)| g.clone()).collect();
            let t0 = Instant::now();
            let parts = std::thread::available_parallelism().map_or(2, |n| n.get().min(4));
            let lib = compile(&dir2, n, &diff::cgen::batch_sources(&gs, parts), opt);
            if verbose {
                say(&format!(
                    "batch {n}: gcc {:.2} s",
                    t0.elapsed().as_secs_f64()
                ));
            }
            if tx.send(Batch { sigs, lib }).is_err() {
                return;
            }
        }
    });

    let mut st = Stats::default();
    let ffi = dffi::available();
    if let Err(e) = &ffi {
        say(&format!(
            "libffi oracle skipped: libffi cannot be loaded ({e}); see docs/differential.md"
        ));
    }
    for batch in rx {
        let path = match batch.lib {
            Ok(p) => p,
            Err(e) => panic!("{e}"),
        };
        let lib = CLib::open(&path).unwrap_or_else(|e| panic!("loading {}: {e}", path.display()));
        for (seed, g) in &batch.sigs {
            st.sigs += 1;
            if g.variadic {
                st.variadic += 1;
            }
            if cfg.verbose {
                say(&format!("[{seed}] {}", g.decl().replace('\n', " ")));
            }
            match check_gcc(g, &lib) {
                Outcome::Ok => st.gcc_checked[(g.abi == Abi::Win64) as usize] += 1,
                Outcome::Unsupported(r) => {
                    st.unsupported += 1;
                    *st.unsupported_reasons.entry(r).or_default() += 1;
                    continue;
                }
                Outcome::Mismatch(m) => {
                    record_mismatch(&mut st, "gcc", *seed, g, &m);
                    continue;
                }
            }
            if ffi.is_err() {
                continue;
            }
            // libffi: this signature if libffi can describe it, else one
            // drawn from the same seed without unions, packed records and
            // __int128.
            let alt;
            let fg = if dffi::eligible(g) {
                g
            } else {
                alt = gen_ffi_sig(*seed);
                if !dffi::eligible(&alt) {
                    st.ffi_skipped += 1;
                    continue;
                }
                st.ffi_alternate += 1;
                &alt
            };
            let jsig = match parse(fg) {
                Ok(s) => s,
                Err(Outcome::Mismatch(m)) => {
                    record_mismatch(&mut st, "libffi", *seed, fg, &m);
                    continue;
                }
                Err(_) => {
                    st.unsupported += 1;
                    continue;
                }
            };
            stage(&format!("libffi: {}", fg.decl().replace('\n', " ")));
            match dffi::check_libffi(fg, &jsig) {
                Ok(true) => st.ffi_checked[(fg.abi == Abi::Win64) as usize] += 1,
                Ok(false) => st.ffi_refused += 1,
                Err(m) => record_mismatch(&mut st, "libffi", *seed, fg, &m),
            }
        }
        drop(lib);
        let _ = std::fs::remove_file(&path);
    }
    producer.join().unwrap();

    let secs = start.elapsed().as_secs_f64();
    let per_abi = |n: [usize; 2]| {
        ABIS.iter()
            .zip(n)
            .filter_map(|(a, n)| a.map(|a| format!("{n} {a}")))
            .collect::<Vec<_>>()
            .join(" + ")
    };
    let summary = format!(
        "{} signatures, {} mismatches\n  seed {}; {:.1} s; checked against gcc: {} ({} variadic in total); \
         against libffi: {} ({} of them drawn without unions/packed/__int128; refused by ffi_prep_cif: {}; none describable: {}); \
         skipped as Unsupported by jitffi's planner: {}",
        st.sigs,
        st.mismatches.len(),
        cfg.seed,
        secs,
        per_abi(st.gcc_checked),
        st.variadic,
        if ffi.is_ok() {
            per_abi(st.ffi_checked)
        } else {
            "not run".into()
        },
        st.ffi_alternate,
        st.ffi_refused,
        st.ffi_skipped,
        st.unsupported,
    );
    say(&summary);
    for (r, n) in &st.unsupported_reasons {
        say(&format!("  unsupported ×{n}: {r}"));
    }
    println!("{summary}");
    assert!(
        st.mismatches.is_empty(),
        "{} mismatches (seed {}):\n{}",
        st.mismatches.len(),
        cfg.seed,
        st.mismatches.join("\n")
    );
}
