//! Forward trampolines against gcc-compiled C callees (tests/c/callees.c).
//!
//! The case table lives in the C library (`callee_cases[]`: case name,
//! callee symbol, C declaration, whether an ms_abi twin exists), generated
//! from the same X-macro lines that define the callees, so a declaration
//! can never drift from the function it describes. For every case, the C
//! reference caller `ref_<case>(ret, argv)` calls the callee directly with
//! fixed, distinctive argument values, stores the result, and stores each
//! argument value in `argv[i]`. This test then passes exactly those
//! argument bytes through jitffi and compares with what gcc's own call
//! produced: the result bytes (every significant byte of the result type:
//! all scalar leaves, 10 bytes of an x87 long double, no padding), and the
//! sink, where callees record the arguments they received. gcc is the
//! oracle; nothing expected comes from jitffi.
//!
//! Each case runs through the four trampolines (unbound/bound ×
//! Pointers/Frame), with the SysV callee under `Abi::SysV64` and its
//! `__attribute__((ms_abi))` twin under `Abi::Win64`, in the library built
//! at -O0 and at -O2.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use common::{bytes_of_mut, cases, decls, masked, reference, significant, via_jitffi, Case, Lib};
use jitffi::call::ArgMode;
use jitffi::cdecl::Declarations;
use jitffi::Abi;

/// Cases known to fail because of a bug in jitffi (case name, ABI); they are
/// left out of `all_cases` and run by the ignored `known_bugs` test.
const KNOWN_BUGS: &[(&str, Abi)] = &[];

/// Runs one case (one ABI, one library) through the four variants; returns
/// a description of each mismatch.
fn run_case(lib: &Lib, case: &Case, abi: Abi, d: &Declarations) -> Vec<String> {
    let suffix = if abi == Abi::Win64 { "_ms" } else { "" };
    let what = format!("{} [{}{}] {}", case.name, abi, suffix, lib.path.display());
    let sig = match d.parse_signature(&case.decl) {
        Ok(s) => s,
        Err(e) => return vec![format!("{what}: parsing `{}`: {e}", case.decl)],
    };
    let target = lib.sym(&format!("{}{suffix}", case.func));
    let r = reference(lib, &sig, &format!("ref_{}{suffix}", case.name));
    let mask = significant(&sig.ret);
    let want = masked(&r.ret, &mask);
    let mut bad = Vec::new();
    for mode in [ArgMode::Pointers, ArgMode::Frame] {
        for bound in [false, true] {
            let v = format!("{mode:?}/{}", if bound { "bound" } else { "unbound" });
            match via_jitffi(lib, &sig, target, mode, bound, &r.args) {
                Err(e) => bad.push(format!("{what} {v}: {e}")),
                Ok((ret, sink)) => {
                    let got = masked(&ret, &mask);
                    if got != want {
                        bad.push(format!(
                            "{what} {v}: result {:02x?}, gcc's call gave {:02x?}",
                            ret, r.ret
                        ));
                    }
                    if sink != r.sink {
                        bad.push(format!(
                            "{what} {v}: callee received {:02x?}, from gcc's call {:02x?}",
                            sink, r.sink
                        ));
                    }
                }
            }
        }
    }
    bad
}

fn run(filter: impl Fn(&Case, Abi) -> bool) -> (usize, Vec<String>) {
    let mut bad = Vec::new();
    let mut runs = 0;
    let dsys = decls(Abi::SysV64);
    let dwin = decls(Abi::Win64);
    for opt in [0, 2] {
        let lib = common::callees(opt);
        for case in cases(lib) {
            for (abi, d) in [(Abi::SysV64, &dsys), (Abi::Win64, &dwin)] {
                if (abi == Abi::Win64 && !case.has_ms) || !filter(&case, abi) {
                    continue;
                }
                runs += 1;
                bad.extend(run_case(lib, &case, abi, d));
            }
        }
    }
    (runs, bad)
}

#[test]
fn all_cases() {
    let known = |c: &Case, abi: Abi| KNOWN_BUGS.iter().any(|&(n, a)| n == c.name && a == abi);
    let (runs, bad) = run(|c, abi| !known(c, abi));
    eprintln!("exec_callees: {runs} case/ABI/library runs, 4 trampolines each");
    assert!(runs > 300, "only {runs} runs");
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
#[ignore = "known jitffi bugs, listed in KNOWN_BUGS"]
fn known_bugs() {
    if KNOWN_BUGS.is_empty() {
        return;
    }
    let (runs, bad) = run(|c, abi| KNOWN_BUGS.iter().any(|&(n, a)| n == c.name && a == abi));
    assert!(runs > 0);
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The table covers what the suite promises: at least 60 callee functions,
/// every DESIGN.md tricky case, every struct size 1..64 in and out, and the
/// scalar types.
#[test]
fn table_coverage() {
    let lib = common::callees(0);
    let all = cases(lib);
    let mut funcs: Vec<&str> = all.iter().map(|c| c.func.as_str()).collect();
    funcs.sort();
    funcs.dedup();
    assert!(funcs.len() >= 60, "{} functions", funcs.len());
    for i in 1..=28 {
        let n = format!("tc{i}");
        assert!(all.iter().any(|c| c.name == n), "tricky case {n} missing");
    }
    for n in 1..=64 {
        for f in [format!("ret_s{n}"), format!("arg_s{n}")] {
            let c = all
                .iter()
                .find(|c| c.name == f)
                .unwrap_or_else(|| panic!("{f}"));
            assert!(c.has_ms, "{f} has no ms_abi twin");
        }
    }
    for t in [
        "char",
        "signed char",
        "unsigned char",
        "short",
        "unsigned short",
        "int",
        "unsigned",
        "long",
        "unsigned long",
        "long long",
        "_Bool",
        "float",
        "double",
        "long double",
        "__int128",
        "unsigned __int128",
        "size_t",
        "_Complex float",
        "_Complex double",
        "_Complex long double",
        "...",
    ] {
        assert!(
            all.iter().any(|c| c.decl.contains(t)),
            "no declaration mentions {t}"
        );
    }
    // Every case's symbols exist in both builds.
    for opt in [0, 2] {
        let lib = common::callees(opt);
        for c in cases(lib) {
            lib.sym(&c.func);
            lib.sym(&format!("ref_{}", c.name));
            if c.has_ms {
                lib.sym(&format!("{}_ms", c.func));
                lib.sym(&format!("ref_{}_ms", c.name));
            }
        }
    }
}

/// The harness can fail: a changed argument, or a wrong declaration, is
/// noticed.
#[test]
fn harness_detects_wrong_arguments() {
    let lib = common::callees(2);
    let all = cases(lib);
    for (name, abi) in [
        ("mix_narrow", Abi::SysV64),
        ("tc17", Abi::SysV64),
        ("tc23", Abi::Win64),
        ("arg_s13", Abi::Win64),
        ("vmix4", Abi::SysV64),
    ] {
        let case = all.iter().find(|c| c.name == name).unwrap();
        let suffix = if abi == Abi::Win64 { "_ms" } else { "" };
        let sig = decls(abi).parse_signature(&case.decl).unwrap();
        let target = lib.sym(&format!("{}{suffix}", case.func));
        let mut r = reference(lib, &sig, &format!("ref_{}{suffix}", case.name));
        // Flip one bit of the last argument.
        let last = r.args.len() - 1;
        bytes_of_mut(&mut r.args[last])[0] ^= 0x04;
        let (ret, sink) = via_jitffi(lib, &sig, target, ArgMode::Pointers, false, &r.args).unwrap();
        assert!(
            ret != r.ret || sink != r.sink,
            "{name}: a changed argument went unnoticed"
        );
    }
    // A declaration that swaps two argument types is noticed too.
    let sig = decls(Abi::SysV64)
        .parse_signature("double tc23(double b, int a, int c, double d, int e, double f)")
        .unwrap();
    let right = decls(Abi::SysV64)
        .parse_signature("double tc23(int a, double b, int c, double d, int e, double f)")
        .unwrap();
    let r = reference(lib, &right, "ref_tc23");
    let mut args = r.args.clone();
    args.swap(0, 1);
    let (ret, _) = via_jitffi(lib, &sig, lib.sym("tc23"), ArgMode::Frame, true, &args).unwrap();
    // Same values, but int/double registers are separate classes in SysV: the
    // swapped declaration still delivers them right. So this must MATCH.
    assert_eq!(
        ret, r.ret,
        "SysV: int and double go to separate register files"
    );
    let wsig = decls(Abi::Win64)
        .parse_signature("double tc23(double b, int a, int c, double d, int e, double f)")
        .unwrap();
    let wright = decls(Abi::Win64)
        .parse_signature("double tc23(int a, double b, int c, double d, int e, double f)")
        .unwrap();
    let r = reference(lib, &wright, "ref_tc23_ms");
    let mut args = r.args.clone();
    args.swap(0, 1);
    let (ret, _) = via_jitffi(lib, &wsig, lib.sym("tc23_ms"), ArgMode::Frame, true, &args).unwrap();
    // Win64 slots are positional: the swapped declaration puts 1 in xmm0
    // and 2.5 in rdx, which the callee reads from rcx and xmm1.
    assert_ne!(ret, r.ret, "Win64: positional slots must tell the swap");
}

/// The x87 status word's TOP field (bits 11–13): 0 when the register stack
/// is empty, as the SysV psABI §3.2.1 requires at every call boundary
/// (apart from st0 holding a long double result until the caller pops it).
fn x87_top() -> u16 {
    let sw: u16;
    // SAFETY: fnstsw only reads the FPU status word into ax.
    unsafe { std::arch::asm!("fnstsw ax", out("ax") sw, options(nomem, nostack, preserves_flags)) };
    (sw >> 11) & 7
}

/// A trampoline for an x87 result must pop st0 into `ret`: called more
/// times than the x87 stack has registers, every result stays right and
/// the stack is empty after each call.
#[test]
fn x87_stack_balanced() {
    let lib = common::callees(2);
    let all = cases(lib);
    let d = decls(Abi::SysV64);
    for name in ["ret_ld", "tc27", "cplx_ld", "ld_in"] {
        let case = all.iter().find(|c| c.name == name).unwrap();
        let sig = d.parse_signature(&case.decl).unwrap();
        let target = lib.sym(&case.func);
        let r = reference(lib, &sig, &format!("ref_{name}"));
        let mask = significant(&sig.ret);
        assert_eq!(x87_top(), 0, "x87 stack not empty before {name}");
        for i in 0..12 {
            for (mode, bound) in [(ArgMode::Pointers, false), (ArgMode::Frame, true)] {
                let (ret, _) = via_jitffi(lib, &sig, target, mode, bound, &r.args).unwrap();
                assert_eq!(
                    masked(&ret, &mask),
                    masked(&r.ret, &mask),
                    "{name} call {i}"
                );
                assert_eq!(
                    x87_top(),
                    0,
                    "{name} call {i}: x87 stack not empty after the call"
                );
            }
        }
    }
}
