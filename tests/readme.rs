//! The README's C example, compiled with gcc against include/jitffi.h and
//! libjitffi.so, and run: what a newcomer copies must work.

// Runs a gcc-built program: x86-64 hosts only (not under qemu-user).
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::path::PathBuf;
use std::process::Command;

#[path = "support/cdylib.rs"]
mod cdylib;

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn readme_c_example_runs() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let start = readme.find("```c\n").expect("a C example in the README") + 5;
    let len = readme[start..].find("```").expect("closing fence");
    let src = &readme[start..start + len];
    let tmp = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let c = tmp.join("readme_example.c");
    std::fs::write(&c, src).expect("write the example");
    let exe = tmp.join("readme_example");
    let lib_dir = cdylib::lib_dir();
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "gcc".into()))
        .arg(format!("-I{}", root.join("include").display()))
        .arg(&c)
        .arg("-o")
        .arg(&exe)
        .arg(format!("-L{}", lib_dir.display()))
        .arg(format!("-Wl,-rpath,{}", lib_dir.display()))
        .args(["-ljitffi", "-lm"])
        .status()
        .expect("run gcc");
    assert!(status.success(), "the README's C example does not compile");
    let out = Command::new(&exe).output().expect("run the example");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1024\n");
}
