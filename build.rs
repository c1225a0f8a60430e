//! Build script: with the `libffi-compat` feature, gives the cdylib
//! libffi's symbol versions (src/ffi_compat/libffi.map).

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
    }
}
