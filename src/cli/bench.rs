//! `jitffi bench`: direct calls vs jitffi vs libffi, measured in one run.
//!
//! Each measurement runs a batch of calls, takes the median over several
//! batches, and reports nanoseconds per call. This is a quick in-process
//! table for users; the criterion benches in benches/ are the careful
//! measurement.

use std::ffi::c_void;
use std::hint::black_box;
use std::io::Write as _;
use std::sync::Arc;
use std::time::Instant;

use jitffi::call::{ArgMode, Trampoline};
use jitffi::types::{Scalar, Signature, Type};
use jitffi::Abi;

use super::libffi_dyn::{Libffi, PreparedCif};
use super::parse_opts;

// ---- Built-in callees: the issue's benchmark rows. ----

#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pair {
    pub a: i64,
    pub b: f64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct Quad {
    pub a: i64,
    pub b: i64,
    pub c: i64,
    pub d: i64,
}

#[inline(never)]
pub extern "C" fn add3(a: i64, b: i64, c: i64) -> i64 {
    a.wrapping_add(b).wrapping_add(c)
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
extern "C" fn mix8(a: i64, b: i64, c: i64, d: i64, e: f64, f: f64, g: f64, h: f64) -> f64 {
    (a + b + c + d) as f64 + e + f + g + h
}

#[inline(never)]
extern "C" fn pair_by_value(p: Pair, k: i32) -> f64 {
    p.a as f64 * k as f64 + p.b
}

#[inline(never)]
extern "C" fn quad_sret(x: i64) -> Quad {
    Quad {
        a: x,
        b: x + 1,
        c: x + 2,
        d: x + 3,
    }
}

#[inline(never)]
#[allow(clippy::too_many_arguments)]
extern "C" fn args12(
    a: i64,
    b: f64,
    c: i64,
    d: f64,
    e: i64,
    f: f64,
    g: i64,
    h: f64,
    i: i64,
    j: f64,
    k: i64,
    l: f64,
) -> f64 {
    (a + c + e + g + i + k) as f64 + b + d + f + h + j + l
}

/// A benchmark row: a declaration, its callee, and a direct call of it.
pub struct Row {
    pub decl: String,
    pub target: *const c_void,
    /// Calls the target directly `n` times (None for declarations that are
    /// not built in).
    pub direct: Option<fn(u64)>,
}

fn direct_add3(n: u64) {
    let f = black_box(add3 as extern "C" fn(i64, i64, i64) -> i64);
    for i in 0..n {
        black_box(f(black_box(i as i64), 2, 3));
    }
}

fn direct_mix8(n: u64) {
    let f = black_box(mix8 as extern "C" fn(i64, i64, i64, i64, f64, f64, f64, f64) -> f64);
    for i in 0..n {
        black_box(f(black_box(i as i64), 2, 3, 4, 0.5, 1.5, 2.5, 3.5));
    }
}

fn direct_pair(n: u64) {
    let f = black_box(pair_by_value as extern "C" fn(Pair, i32) -> f64);
    for i in 0..n {
        black_box(f(
            black_box(Pair {
                a: i as i64,
                b: 0.5,
            }),
            3,
        ));
    }
}

fn direct_quad(n: u64) {
    let f = black_box(quad_sret as extern "C" fn(i64) -> Quad);
    for i in 0..n {
        black_box(f(black_box(i as i64)));
    }
}

fn direct_args12(n: u64) {
    type F12 = extern "C" fn(i64, f64, i64, f64, i64, f64, i64, f64, i64, f64, i64, f64) -> f64;
    let f = black_box(args12 as F12);
    for i in 0..n {
        black_box(f(
            black_box(i as i64),
            0.5,
            2,
            1.5,
            3,
            2.5,
            4,
            3.5,
            5,
            4.5,
            6,
            5.5,
        ));
    }
}

/// The issue's benchmark rows, with callees built into this binary.
pub fn builtin_rows() -> Vec<Row> {
    vec![
        Row {
            decl: "long long add3(long long, long long, long long)".into(),
            target: add3 as *const c_void,
            direct: Some(direct_add3),
        },
        Row {
            decl: "double mix8(long long, long long, long long, long long, double, double, double, double)".into(),
            target: mix8 as *const c_void,
            direct: Some(direct_mix8),
        },
        Row {
            decl: "struct pair { long long a; double b; }; double pair_by_value(struct pair, int)"
                .into(),
            target: pair_by_value as *const c_void,
            direct: Some(direct_pair),
        },
        Row {
            decl: "struct quad { long long a, b, c, d; }; struct quad quad_sret(long long)".into(),
            target: quad_sret as *const c_void,
            direct: Some(direct_quad),
        },
        Row {
            decl: "double args12(long long, double, long long, double, long long, double, long long, double, long long, double, long long, double)".into(),
            target: args12 as *const c_void,
            direct: Some(direct_args12),
        },
    ]
}

// ---- Measuring. ----

/// Median ns per call of `f(n)` over `samples` batches of `n` calls.
pub fn measure(n: u64, samples: usize, mut f: impl FnMut(u64)) -> f64 {
    f(n / 10 + 1); // warm up
    let mut times: Vec<f64> = (0..samples)
        .map(|_| {
            let t = Instant::now();
            f(n);
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .collect();
    times.sort_by(|a, b| a.total_cmp(b));
    times[times.len() / 2]
}

/// Argument storage for one call of `sig`: distinctive but harmless values
/// (1 for integers, 0.5 for floats, zeroed structs, pointers to a zeroed
/// 4 KiB buffer), and the pointer array.
pub struct ArgValues {
    _store: Vec<Vec<u64>>,
    _zero_page: Box<[u64; 512]>,
    pub ptrs: Vec<*const c_void>,
}

impl ArgValues {
    pub fn new(sig: &Signature) -> ArgValues {
        let zero_page = Box::new([0u64; 512]);
        let mut store: Vec<Vec<u64>> = sig
            .args
            .iter()
            .map(|t| {
                let mut w = vec![0u64; (t.size() as usize).div_ceil(8).max(2)];
                match t {
                    Type::Scalar(Scalar::F32) => w[0] = 0.5f32.to_bits() as u64,
                    Type::Scalar(Scalar::F64) => w[0] = 0.5f64.to_bits(),
                    Type::Scalar(s) if s.is_integer() && *s != Scalar::Ptr => w[0] = 1,
                    Type::Pointer(_) | Type::Scalar(Scalar::Ptr) => {
                        w[0] = zero_page.as_ptr() as u64
                    }
                    _ => {}
                }
                w
            })
            .collect();
        let ptrs = store
            .iter_mut()
            .map(|w| w.as_ptr() as *const c_void)
            .collect();
        ArgValues {
            _store: store,
            _zero_page: zero_page,
            ptrs,
        }
    }

    /// The same values packed into a frame with the signature's layout.
    pub fn frame(&self, sig: &Signature) -> Vec<u64> {
        let (offsets, size) = sig.frame_layout();
        let mut frame = vec![0u64; (size as usize).div_ceil(8).max(1)];
        // SAFETY: viewing the u64 buffer as bytes; each copy stays inside it
        // because frame_layout's size covers every offset + size.
        unsafe {
            let base = frame.as_mut_ptr().cast::<u8>();
            for ((p, off), t) in self.ptrs.iter().zip(&offsets).zip(&sig.args) {
                std::ptr::copy_nonoverlapping(
                    p.cast::<u8>(),
                    base.add(*off as usize),
                    t.size() as usize,
                );
            }
        }
        frame
    }
}

/// One measured row.
pub struct Measured {
    pub decl: String,
    pub direct: Option<f64>,
    pub bound: f64,
    pub unbound: f64,
    pub frame: f64,
    pub libffi: Option<f64>,
}

/// Measures one row: direct (when built in), jitffi bound/unbound pointer
/// mode and bound frame mode, and libffi with a prepared cif.
pub fn measure_row(
    row: &Row,
    sig: &Signature,
    calls: u64,
    libffi: Option<&Arc<Libffi>>,
) -> Result<Measured, String> {
    const SAMPLES: usize = 9;
    let e = |e: jitffi::Error| format!("{}: {e}", sig.c_decl());
    let bound = Trampoline::compile(sig, ArgMode::Pointers, Some(row.target)).map_err(e)?;
    let unbound = Trampoline::compile(sig, ArgMode::Pointers, None).map_err(e)?;
    let framed = Trampoline::compile(sig, ArgMode::Frame, Some(row.target)).map_err(e)?;
    let vals = ArgValues::new(sig);
    let frame = vals.frame(sig);
    let mut ret = vec![0u64; sig.ret_buffer_size().div_ceil(8).max(2)];
    let rp = ret.as_mut_ptr() as *mut c_void;
    let args = vals.ptrs.as_ptr() as *const c_void;
    let target = row.target;

    let direct = row.direct.map(|f| measure(calls, SAMPLES, f));
    let bound_entry = bound.entry();
    // SAFETY (all three loops): each trampoline was compiled for `sig` and
    // `target` has that signature (a built-in callee, or a symbol the user
    // declared); args/frame hold one value per argument of its type; ret
    // holds ret_buffer_size bytes.
    let t_bound = measure(calls, SAMPLES, |n| unsafe {
        for _ in 0..n {
            bound_entry(std::ptr::null(), black_box(args), rp);
        }
    });
    let unbound_entry = unbound.entry();
    let t_unbound = measure(calls, SAMPLES, |n| unsafe {
        for _ in 0..n {
            unbound_entry(black_box(target), black_box(args), rp);
        }
    });
    let frame_entry = framed.entry();
    let fp = frame.as_ptr() as *const c_void;
    let t_frame = measure(calls, SAMPLES, |n| unsafe {
        for _ in 0..n {
            frame_entry(std::ptr::null(), black_box(fp), rp);
        }
    });
    let t_libffi = match libffi.map(|l| l.prepare(sig)) {
        Some(Ok(cif)) => Some(measure_libffi(&cif, target, &vals, rp, calls, SAMPLES)),
        _ => None,
    };
    Ok(Measured {
        decl: sig.c_decl(),
        direct,
        bound: t_bound,
        unbound: t_unbound,
        frame: t_frame,
        libffi: t_libffi,
    })
}

fn measure_libffi(
    cif: &PreparedCif,
    target: *const c_void,
    vals: &ArgValues,
    ret: *mut c_void,
    calls: u64,
    samples: usize,
) -> f64 {
    let args = vals.ptrs.as_ptr();
    // SAFETY: the cif describes the same signature as the target; args and
    // ret as for the jitffi rows (ret holds at least 16 bytes).
    measure(calls, samples, |n| unsafe {
        for _ in 0..n {
            cif.call(black_box(target), black_box(args), ret);
        }
    })
}

fn fmt_ns(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

fn fmt_ratio(a: Option<f64>, b: Option<f64>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "-".into(),
    }
}

// ---- Closures: creation and upcalls. ----

/// The jitffi handler for `int f(int, int)`: adds its arguments.
extern "C" fn jit_add_handler(_ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: called by an int(int, int) closure: two int pointers, an int
    // result buffer.
    unsafe {
        let (a, b) = (*(*args as *const i32), *(*args.add(1) as *const i32));
        *(ret as *mut i32) = a.wrapping_add(b);
    }
}

/// The same handler in libffi's shape.
///
/// # Safety
/// Only libffi calls it, for an `int(int, int)` cif: `args` holds two int
/// pointers and `ret` an `ffi_arg`.
unsafe extern "C" fn ffi_add_handler(
    _cif: *mut c_void,
    ret: *mut c_void,
    args: *mut *mut c_void,
    _user: *mut c_void,
) {
    // SAFETY: as above; libffi widens int results to ffi_arg (8 bytes).
    unsafe {
        let (a, b) = (*(*args as *const i32), *(*args.add(1) as *const i32));
        *(ret as *mut i64) = a.wrapping_add(b) as i64;
    }
}

#[inline(never)]
extern "C" fn add2(a: i32, b: i32) -> i32 {
    a.wrapping_add(b)
}

/// Closure rows: create + free, and an upcall of `int(int, int)`.
pub struct ClosureRows {
    pub create_jitffi: f64,
    pub create_libffi: Option<f64>,
    pub call_direct: f64,
    pub call_jitffi: f64,
    pub call_libffi: Option<f64>,
}

pub fn measure_closures(
    abi: Abi,
    calls: u64,
    libffi: Option<&Arc<Libffi>>,
) -> Result<ClosureRows, String> {
    const SAMPLES: usize = 9;
    let sig =
        jitffi::cdecl::parse_signature("int add2(int, int)", abi).map_err(|e| e.to_string())?;
    let creations = (calls / 20).max(1000);
    // A runtime prepares the closure type once per signature, then creates
    // closures from it (Closure::new_raw also looks the body up each time).
    let ty = jitffi::closure::Closure::prepare(&sig).map_err(|e| e.to_string())?;
    let create_jitffi = measure(creations, SAMPLES, |n| {
        for _ in 0..n {
            // SAFETY: the handler implements int(int, int) and needs no ctx.
            let c = unsafe { ty.create_raw(jit_add_handler, std::ptr::null_mut()) };
            drop(black_box(c));
        }
    });
    let cif = match libffi.map(|l| l.prepare(&sig)) {
        Some(Ok(cif)) => Some(cif),
        _ => None,
    };
    let create_libffi = cif.as_ref().map(|cif| {
        measure(creations, SAMPLES, |n| {
            for _ in 0..n {
                // SAFETY: the handler implements the cif's int(int, int).
                drop(black_box(unsafe {
                    cif.closure(ffi_add_handler, std::ptr::null_mut())
                }));
            }
        })
    });
    type Add2 = unsafe extern "C" fn(i32, i32) -> i32;
    let upcall = |f: Add2| {
        measure(calls, SAMPLES, |n| {
            let f = black_box(f);
            for i in 0..n {
                // SAFETY: f is an int(int, int) function for the whole loop.
                black_box(unsafe { f(black_box(i as i32), 2) });
            }
        })
    };
    let call_direct = upcall(add2);
    // SAFETY: the handler implements int(int, int); the closure outlives
    // the measurement; its code pointer has the Add2 type.
    let jit =
        unsafe { jitffi::closure::Closure::new_raw(&sig, jit_add_handler, std::ptr::null_mut()) }
            .map_err(|e| e.to_string())?;
    let call_jitffi = upcall(unsafe { std::mem::transmute::<*const c_void, Add2>(jit.code_ptr()) });
    let call_libffi = match &cif {
        Some(cif) => {
            // SAFETY: as above, for libffi's closure.
            let c = unsafe { cif.closure(ffi_add_handler, std::ptr::null_mut()) };
            c.map(|c| upcall(unsafe { std::mem::transmute::<*const c_void, Add2>(c.code()) }))
        }
        None => None,
    };
    Ok(ClosureRows {
        create_jitffi,
        create_libffi,
        call_direct,
        call_jitffi,
        call_libffi,
    })
}

/// Prints the closure rows.
pub fn print_closures(c: &ClosureRows) {
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>9}",
        "closures, ns (median)", "direct", "jitffi", "libffi", "ffi/jit"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>9}",
        "create + free, int(int, int), prepared type",
        "-",
        fmt_ns(Some(c.create_jitffi)),
        fmt_ns(c.create_libffi),
        fmt_ratio(c.create_libffi, Some(c.create_jitffi)),
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>9}",
        "upcall int(int, int)",
        fmt_ns(Some(c.call_direct)),
        fmt_ns(Some(c.call_jitffi)),
        fmt_ns(c.call_libffi),
        fmt_ratio(c.call_libffi, Some(c.call_jitffi)),
    );
}

/// Prints measured rows as a table (ns per call, medians).
pub fn print_table(rows: &[Measured]) {
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
        "ns/call (median)", "direct", "bound", "unbound", "frame", "libffi", "bnd/dir", "ffi/bnd"
    );
    for m in rows {
        let mut name = m.decl.clone();
        if name.len() > 44 {
            name.truncate(41);
            name.push_str("...");
        }
        println!(
            "{:<44} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9}",
            name,
            fmt_ns(m.direct),
            fmt_ns(Some(m.bound)),
            fmt_ns(Some(m.unbound)),
            fmt_ns(Some(m.frame)),
            fmt_ns(m.libffi),
            fmt_ratio(Some(m.bound), m.direct),
            fmt_ratio(m.libffi, Some(m.bound)),
        );
    }
}

fn json_num(v: Option<f64>) -> String {
    v.map_or("null".into(), |v| format!("{v:.3}"))
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// Finds the function a user declaration names: a built-in callee, then
/// the running program (libc and what it loaded), then libm.
fn find_target(sig: &Signature) -> Result<*const c_void, String> {
    let name = sig
        .name
        .as_deref()
        .ok_or("a benchmark declaration must name its function")?;
    if let Some(r) = builtin_rows()
        .into_iter()
        .find(|r| r.decl.contains(&format!(" {name}(")) || r.decl.contains(&format!("*{name}(")))
    {
        return Ok(r.target);
    }
    let this = jitffi::library::Library::this().map_err(|e| e.to_string())?;
    if let Ok(p) = this.symbol(name) {
        return Ok(p);
    }
    let libm = jitffi::library::Library::open("libm.so.6").map_err(|e| e.to_string())?;
    let p = libm.symbol(name).map_err(|e| e.to_string())?;
    // Keep libm loaded for the rest of the process.
    std::mem::forget(libm);
    Ok(p)
}

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args, &["--calls", "--json"])?;
    let json = opts.flags.iter().any(|f| f == "--json");
    let mut calls: u64 = 200_000;
    for f in &opts.flags {
        if let Some(v) = f.strip_prefix("--calls=") {
            calls = v
                .replace('_', "")
                .parse()
                .map_err(|_| format!("--calls needs a positive integer, got '{v}'"))?;
        } else if f == "--calls" {
            return Err("--calls needs a value: --calls=N".into());
        }
    }
    if calls == 0 {
        return Err("--calls must be positive".into());
    }
    let abi = opts.abi;
    if !abi.executable_here() {
        return Err(format!("{abi} code cannot be executed on this host"));
    }
    let rows: Vec<Row> = if opts.positional.is_empty() {
        if abi != Abi::host().unwrap_or(abi) {
            return Err(format!(
                "the built-in rows are {} functions; give declarations of {abi} functions",
                Abi::host().map_or("host", |a| a.name())
            ));
        }
        builtin_rows()
    } else {
        opts.positional
            .iter()
            .map(|d| {
                let sig = jitffi::cdecl::parse_signature(d, abi).map_err(|e| e.to_string())?;
                Ok(Row {
                    decl: d.clone(),
                    target: find_target(&sig)?,
                    direct: builtin_rows()
                        .into_iter()
                        .find(|r| r.decl == *d)
                        .and_then(|r| r.direct),
                })
            })
            .collect::<Result<_, String>>()?
    };
    let libffi = Libffi::open();
    let mut measured = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let sig = jitffi::cdecl::parse_signature(&row.decl, abi).map_err(|e| e.to_string())?;
        eprint!(
            "\rbench [{}/{}] {:<60}",
            i + 1,
            rows.len(),
            sig.c_decl().chars().take(60).collect::<String>()
        );
        let _ = std::io::stderr().flush();
        measured.push(measure_row(row, &sig, calls, libffi.as_ref())?);
    }
    eprint!("\rbench: closures{:<66}", "");
    let _ = std::io::stderr().flush();
    let closures = measure_closures(abi, calls, libffi.as_ref())?;
    eprint!("\r{:<80}\r", "");
    if json {
        let items: Vec<String> = measured
            .iter()
            .map(|m| {
                format!(
                    "{{\"decl\":{},\"direct_ns\":{},\"jitffi_bound_ns\":{},\"jitffi_unbound_ns\":{},\"jitffi_frame_ns\":{},\"libffi_ns\":{}}}",
                    json_str(&m.decl),
                    json_num(m.direct),
                    json_num(Some(m.bound)),
                    json_num(Some(m.unbound)),
                    json_num(Some(m.frame)),
                    json_num(m.libffi)
                )
            })
            .collect();
        let c = &closures;
        println!(
            "{{\"abi\":{},\"calls_per_sample\":{calls},\"rows\":[{}],\"closures\":{{\"create_free_jitffi_ns\":{},\"create_free_libffi_ns\":{},\"upcall_direct_ns\":{},\"upcall_jitffi_ns\":{},\"upcall_libffi_ns\":{}}}}}",
            json_str(abi.name()),
            items.join(","),
            json_num(Some(c.create_jitffi)),
            json_num(c.create_libffi),
            json_num(Some(c.call_direct)),
            json_num(Some(c.call_jitffi)),
            json_num(c.call_libffi)
        );
    } else {
        println!("{calls} calls per sample, median of 9 samples; {abi}");
        print_table(&measured);
        println!();
        print_closures(&closures);
        if libffi.is_none() {
            println!("(libffi not found: no libffi column)");
        }
    }
    Ok(())
}
