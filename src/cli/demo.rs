//! `jitffi demo`: the whole story in a few seconds, using only libc and libm.

use std::ffi::c_void;

use jitffi::call::{ArgMode, Trampoline};
use jitffi::closure::Closure;
use jitffi::library::Library;
use jitffi::Abi;

use super::bench::{builtin_rows, measure_row, print_table};
use super::call::call_decl;
use super::libffi_dyn::Libffi;

fn heading(s: &str) {
    println!("\n== {s}");
}

fn show_call(lib: &str, decl: &str, args: &[&str], abi: Abi) -> Result<(), String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let result = call_decl(lib, decl, &args, abi)?;
    println!("  {decl}");
    println!(
        "    ({}) -> {}",
        args.join(", "),
        result.as_deref().unwrap_or("(void)")
    );
    Ok(())
}

pub fn run(args: &[String]) -> Result<(), String> {
    if !args.is_empty() {
        return Err("usage: jitffi demo (it takes no arguments)".into());
    }
    let abi = Abi::host().ok_or("this host has no default ABI")?;
    if !abi.executable_here() {
        return Err(format!("{abi} code cannot be executed on this host"));
    }
    println!("jitffi demo: C declarations compiled once into {abi} machine code, then called.");

    heading("1. Calling libc and libm through compiled trampolines");
    show_call(
        "libc.so.6",
        "size_t strlen(const char *s)",
        &["\"hello, jitffi\""],
        abi,
    )?;
    show_call("libm.so.6", "double cos(double x)", &["1.0"], abi)?;
    show_call(
        "libc.so.6",
        "typedef struct { long quot, rem; } ldiv_t; ldiv_t ldiv(long num, long den)",
        &["1000000007", "10"],
        abi,
    )?;

    // snprintf needs a buffer, so use the Rust API directly: a variadic
    // call shape with its variadic types written after the ellipsis.
    let decl = "int snprintf(char *buf, size_t n, const char *fmt, ..., const char *, int, double)";
    let sig = jitffi::cdecl::parse_signature(decl, abi).map_err(|e| e.to_string())?;
    let libc = Library::open("libc.so.6").map_err(|e| e.to_string())?;
    let target = libc.symbol("snprintf").map_err(|e| e.to_string())?;
    let tramp =
        Trampoline::compile(&sig, ArgMode::Pointers, Some(target)).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 80];
    let (bp, n, fmt, name, abis, pi) = (
        buf.as_mut_ptr(),
        buf.len(),
        c"%s speaks %d ABIs; pi is about %.5f".as_ptr(),
        c"jitffi".as_ptr(),
        4i32,
        std::f64::consts::PI,
    );
    let argv: [*const c_void; 6] = [
        &bp as *const _ as *const c_void,
        &n as *const _ as *const c_void,
        &fmt as *const _ as *const c_void,
        &name as *const _ as *const c_void,
        &abis as *const _ as *const c_void,
        &pi as *const _ as *const c_void,
    ];
    let mut ret = [0u64; 2];
    // SAFETY: the trampoline is compiled for snprintf's call shape; each
    // argv entry points at a value of its argument's type; buf outlives the
    // call and n is its size.
    unsafe {
        tramp
            .call(std::ptr::null(), &argv, ret.as_mut_ptr().cast())
            .map_err(|e| e.to_string())?;
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    println!("  {decl}");
    println!(
        "    (buf, 80, \"%s speaks %d ABIs; pi is about %.5f\", \"jitffi\", 4, {pi}) -> {}, buf = \"{}\"",
        ret[0] as i32,
        String::from_utf8_lossy(&buf[..len])
    );

    heading("2. A closure as a C callback: qsort with a Rust comparator");
    let cmp_sig = jitffi::cdecl::parse_signature("int cmp(const void *, const void *)", abi)
        .map_err(|e| e.to_string())?;
    let cmp = Closure::new(&cmp_sig, |args, ret| {
        // SAFETY: qsort passes two pointers to elements of the i32 array.
        unsafe {
            let a = **(args[0] as *const *const i32);
            let b = **(args[1] as *const *const i32);
            *(ret as *mut i32) = a.cmp(&b) as i32;
        }
    })
    .map_err(|e| e.to_string())?;
    let qsort = libc.symbol("qsort").map_err(|e| e.to_string())?;
    type QsortFn = unsafe extern "C" fn(
        *mut c_void,
        usize,
        usize,
        unsafe extern "C" fn(*const c_void, *const c_void) -> i32,
    );
    let mut data = [42, -7, 19, 0, 3, 3, -100, 64];
    println!("  before: {data:?}");
    // SAFETY: qsort has this C type; the closure's code pointer is a C
    // function of type int(const void *, const void *) while `cmp` lives.
    unsafe {
        let qsort = std::mem::transmute::<*const c_void, QsortFn>(qsort);
        let code = std::mem::transmute::<
            *const c_void,
            unsafe extern "C" fn(*const c_void, *const c_void) -> i32,
        >(cmp.code_ptr());
        qsort(data.as_mut_ptr().cast(), data.len(), 4, code);
    }
    println!("  after:  {data:?}");

    heading("3. What one call compiles to");
    let ldiv = "typedef struct { long quot, rem; } ldiv_t; ldiv_t ldiv(long num, long den)";
    let sig = jitffi::cdecl::parse_signature(ldiv, abi).map_err(|e| e.to_string())?;
    let (plan, code) =
        jitffi::call::emit(&sig, ArgMode::Pointers, None).map_err(|e| e.to_string())?;
    print!("{}", plan.display(&sig));
    println!("  code ({} bytes):", code.len());
    for line in jitffi::disasm::disassemble(abi.isa(), &code, 0).lines() {
        println!("    {line}");
    }
    println!("  (any ABI on any host: jitffi explain --abi aapcs64 '{ldiv}')");

    heading("4. Cost per call, measured now");
    let libffi = Libffi::open();
    let mut rows = Vec::new();
    for row in builtin_rows().iter().take(2) {
        let sig = jitffi::cdecl::parse_signature(&row.decl, abi).map_err(|e| e.to_string())?;
        rows.push(measure_row(row, &sig, 100_000, libffi.as_ref())?);
    }
    print_table(&rows);
    println!("  bound/unbound/frame: jitffi trampolines; ffi/bnd: how many times slower libffi's ffi_call is.");
    println!("  More rows: jitffi bench; careful numbers: cargo bench (see README).");
    Ok(())
}
