//! Build script: with the `libffi-compat` feature, gives the cdylib
//! libffi's symbol versions (src/ffi_compat/libffi.map).
//!
//! rustc passes its own version script for a cdylib, with an anonymous
//! version node. GNU ld refuses an anonymous node next to named ones
//! ("anonymous version tag cannot be combined with other version tags");
//! lld merges them. rustc links x86_64-unknown-linux-gnu with its bundled
//! rust-lld by default (Rust 1.90 and later) but other targets (the
//! aarch64-linux-gnu cross build) with the C compiler's default, GNU ld. So
//! when the toolchain ships rust-lld's `gcc-ld/ld.lld` wrapper, the cdylib
//! link is told to use it (`-fuse-ld=lld -B <dir>`, exactly what rustc
//! itself passes for its lld default).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=src/ffi_compat/libffi.map");
    if std::env::var_os("CARGO_FEATURE_LIBFFI_COMPAT").is_some()
        && std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux")
    {
        let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".into());
        println!(
            "cargo:rustc-cdylib-link-arg=-Wl,--version-script={dir}/src/ffi_compat/libffi.map"
        );
        if let Some(gcc_ld) = rust_lld_gcc_ld() {
            println!("cargo:rustc-cdylib-link-arg=-fuse-ld=lld");
            println!("cargo:rustc-cdylib-link-arg=-B{}", gcc_ld.display());
        }
    }
}

/// `<sysroot>/lib/rustlib/<host>/bin/gcc-ld` when it holds `ld.lld`.
fn rust_lld_gcc_ld() -> Option<PathBuf> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let host = std::env::var("HOST").ok()?;
    let out = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = String::from_utf8(out.stdout).ok()?;
    let dir = PathBuf::from(sysroot.trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/gcc-ld");
    dir.join("ld.lld").exists().then_some(dir)
}
