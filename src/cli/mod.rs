//! Command dispatch and the shared option parsing.

mod bench;
mod call;
mod demo;
mod libffi_dyn;

use std::io::Write as _;

use jitffi::abi;
use jitffi::cdecl;
use jitffi::Abi;

const USAGE: &str = "usage: jitffi <command> ...
commands:
  call [--abi A] LIB 'DECL' ARG...   call a C function and print its result as a C literal
  explain [--abi A] 'DECL'           print the call plan and the generated code
  symbols [--demangle] LIB           list defined dynamic symbols (like nm -D --defined-only)
  bench [--abi A] [--calls N] [--json] ['DECL'...]   measure direct vs jitffi vs libffi
  demo                               a tour of jitffi on libc and libm
ABIs: sysv64, win64, aapcs64, apple-arm64 (default: the host's)";

/// Runs one command line; `Err` is the one-line message for stderr.
pub fn run(args: &[String]) -> Result<(), String> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err("no command given (try 'jitffi --help')".into());
    };
    match cmd.as_str() {
        "explain" => explain(rest),
        "call" => call::run(rest),
        "symbols" => symbols(rest),
        "bench" => bench::run(rest),
        "demo" => demo::run(rest),
        "-h" | "--help" | "help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command '{other}' (try 'jitffi --help')")),
    }
}

/// Options shared by the commands, parsed from the front of the arguments.
pub struct Opts {
    pub abi: Abi,
    pub positional: Vec<String>,
    pub flags: Vec<String>,
}

/// Splits `--abi A` and boolean `--flags` (from `known_flags`) from the
/// positional arguments. After the first positional argument, everything
/// is positional (so negative numbers like `-1` are arguments).
pub fn parse_opts(args: &[String], known_flags: &[&str]) -> Result<Opts, String> {
    let mut abi = None;
    let mut positional = Vec::new();
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if !positional.is_empty() {
            positional.push(a.clone());
        } else if a == "--abi" {
            let name = args
                .get(i + 1)
                .ok_or("option '--abi' needs a value (sysv64, win64, aapcs64, apple-arm64)")?;
            abi = Some(parse_abi(name)?);
            i += 1;
        } else if let Some(name) = a.strip_prefix("--abi=") {
            abi = Some(parse_abi(name)?);
        } else if a == "--" {
            positional.extend(args[i + 1..].iter().cloned());
            break;
        } else if a.starts_with("--") {
            let name = a.split('=').next().unwrap_or(a);
            // `--calls N` is accepted as `--calls=N`.
            if known_flags.contains(&name) && !a.contains('=') && name == "--calls" {
                let v = args.get(i + 1).ok_or("option '--calls' needs a value")?;
                flags.push(format!("--calls={v}"));
                i += 2;
                continue;
            }
            if !known_flags.contains(&name) {
                return Err(format!("unknown option '{a}'"));
            }
            flags.push(a.clone());
        } else {
            positional.push(a.clone());
        }
        i += 1;
    }
    let abi = match abi {
        Some(a) => a,
        None => Abi::host().ok_or("this host has no default ABI; pass --abi")?,
    };
    Ok(Opts {
        abi,
        positional,
        flags,
    })
}

fn parse_abi(name: &str) -> Result<Abi, String> {
    Abi::from_name(name).ok_or_else(|| {
        format!("unknown ABI '{name}' (expected sysv64, win64, aapcs64 or apple-arm64)")
    })
}

fn explain(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args, &[])?;
    let [decl] = opts.positional.as_slice() else {
        return Err("usage: jitffi explain [--abi A] 'DECL'".into());
    };
    let sig = cdecl::parse_signature(decl, opts.abi).map_err(|e| format!("{e}"))?;
    let plan = abi::plan(&sig).map_err(|e| format!("{e}"))?;
    plan.validate(&sig).map_err(|e| format!("{e}"))?;
    print!("{}", plan.display(&sig));
    // The code of the C API's form: argument pointers, unbound target.
    match jitffi::call::emit(&sig, jitffi::call::ArgMode::Pointers, None) {
        Ok((_, code)) => {
            println!(
                "code ({} bytes; entry(target, args, ret), args as pointers):",
                code.len()
            );
            print!("{}", jitffi::disasm::disassemble(sig.abi.isa(), &code, 0));
        }
        Err(e) => println!("code: not available: {e}"),
    }
    Ok(())
}

fn symbols(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args, &["--demangle"])?;
    let demangle = opts.flags.iter().any(|f| f == "--demangle");
    let [lib] = opts.positional.as_slice() else {
        return Err("usage: jitffi symbols [--demangle] LIB".into());
    };
    // A path is read directly; a soname is resolved as the loader would.
    let path = if lib.contains('/') {
        std::path::PathBuf::from(lib)
    } else {
        let l = jitffi::library::Library::open(lib).map_err(|e| e.to_string())?;
        l.path()
            .map(|p| p.to_path_buf())
            .ok_or_else(|| format!("cannot find the file of library '{lib}'"))?
    };
    let syms = jitffi::library::dynamic_symbols(&path).map_err(|e| e.to_string())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for s in &syms {
        // A closed pipe (`| head`) ends the listing quietly.
        if writeln!(out, "{}", jitffi::library::format_nm_line(s, demangle)).is_err() {
            return Ok(());
        }
    }
    let _ = out.flush();
    Ok(())
}
