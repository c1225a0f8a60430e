//! The C API contract from C: tests/c/capi_test.c is compiled with gcc
//! against include/jitffi.h, linked with the cdylib cargo built for this
//! test run, and run.

use std::path::PathBuf;
use std::process::Command;

#[path = "support/cdylib.rs"]
mod cdylib;

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "runs a gcc-built program: not under qemu-user"
)]
fn c_program_uses_the_c_api() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let lib_dir = cdylib::lib_dir();
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("capi_test");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .args(["-std=c11", "-O2", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg(root.join("tests/c/capi_test.c"))
        .arg(format!("-I{}", root.join("include").display()))
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-ljitffi", "-lm"])
        .status()
        .expect("run the C compiler");
    assert!(status.success(), "compiling capi_test.c failed");
    let run = Command::new(&out).output().expect("run capi_test");
    let stdout = String::from_utf8_lossy(&run.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&run.stderr));
    assert!(run.status.success(), "capi_test failed:\n{stdout}");
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
