//! Makes sure `libjitffi.so` exists for tests that link C programs against
//! it. `cargo test` builds the library as an rlib only, so the cdylib is
//! built here, once per test binary, with the same cargo, profile and
//! target directory.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The directory holding `libjitffi.so` (target/<profile>), built if needed.
pub fn lib_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // .../target/<profile>/deps/<test>-<hash>
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>")
            .to_path_buf();
        let target_dir = profile_dir.parent().expect("target dir").to_path_buf();
        let release = profile_dir.file_name().is_some_and(|n| n == "release");
        let mut cmd = Command::new(env!("CARGO"));
        cmd.args(["build", "--lib", "--quiet", "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(&target_dir);
        if release {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build --lib");
        assert!(status.success(), "cargo build --lib failed");
        let so = profile_dir.join("libjitffi.so");
        assert!(so.exists(), "{} was not built", so.display());
        profile_dir
    })
    .clone()
}
