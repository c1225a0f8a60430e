//! Fuzz bytes drive the differential generator (one byte per decision);
//! the signature is checked in-process against libffi both ways: jitffi
//! trampolines calling libffi closures, and `ffi_call` calling jitffi
//! closures (tests/diff/ffi.rs). Any disagreement panics with the
//! declaration.
//!
//! Run: `cargo +nightly fuzz run diff_libffi -- -max_total_time=300`
#![no_main]

#[allow(dead_code)]
#[path = "../../tests/diff/mod.rs"]
mod diff;

use diff::ffi::{check_libffi, eligible};
use diff::gen::{Bytes, GenSig, Opts, Source};
use jitffi::cdecl::parse_signature;
use jitffi::Abi;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut src = Bytes::new(data);
    let abi = if src.below(4) == 0 {
        Abi::Win64
    } else {
        Abi::SysV64
    };
    let g = GenSig::generate(&mut src, Opts::libffi(abi), "f_");
    if !eligible(&g) {
        return;
    }
    let decl = g.decl();
    let jsig = match parse_signature(&decl, abi) {
        Ok(s) => s,
        Err(e) => panic!("jitffi cannot parse a generated declaration: {e}\n{decl}"),
    };
    for (j, t) in jsig.args.iter().zip(&g.args) {
        assert_eq!(
            (j.size(), j.align()),
            (g.size(t), g.align(t)),
            "layout differs\n{decl}"
        );
    }
    if jitffi::abi::plan(&jsig).is_err() {
        return; // Unsupported: skipped, as in the test.
    }
    if let Err(m) = check_libffi(&g, &jsig) {
        panic!(
            "MISMATCH [libffi, {abi}]: {m}\n  declaration: {}",
            decl.replace('\n', " ")
        );
    }
});
