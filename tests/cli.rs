//! The `jitffi` command line, run as a user would: outputs, exit codes and
//! one-line errors. Expected values come from libc/libm semantics and the
//! ABI documents.

// These tests run the jitffi binary as a child process: under qemu-user
// (the AArch64 suite) a child aarch64 process cannot start without binfmt
// support, so they run on x86-64 hosts only.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

use std::process::{Command, Output};

fn jitffi(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_jitffi"))
        .args(args)
        .output()
        .expect("run jitffi")
}

fn ok(args: &[&str]) -> String {
    let out = jitffi(args);
    assert!(
        out.status.success(),
        "jitffi {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// Runs a command that must fail: exit code 2, exactly one line on stderr
/// that starts with "jitffi: " and contains `needle`.
fn fails(args: &[&str], needle: &str) {
    let out = jitffi(args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "jitffi {args:?}: {err}");
    assert_eq!(err.lines().count(), 1, "one line expected: {err}");
    assert!(err.starts_with("jitffi: "), "{err}");
    assert!(err.contains(needle), "'{needle}' not in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod call {
    use super::*;

    #[test]
    fn scalars_strings_and_structs() {
        assert_eq!(
            ok(&["call", "libm.so.6", "double cos(double)", "0"]),
            "1.0\n"
        );
        assert_eq!(
            ok(&["call", "libm.so.6", "double sqrt(double)", "2.25"]),
            "1.5\n"
        );
        assert_eq!(
            ok(&["call", "libm.so.6", "float sqrtf(float)", "0.25"]),
            "0.5\n"
        );
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "size_t strlen(const char *)",
                "\"hello\""
            ]),
            "5\n"
        );
        assert_eq!(ok(&["call", "libc.so.6", "int abs(int)", "-0x10"]), "16\n");
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "long long llabs(long long)",
                "-9000000000LL"
            ]),
            "9000000000\n"
        );
        // div returns a struct { int quot, rem; } in rax.
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "typedef struct { int quot, rem; } div_t; div_t div(int, int)",
                "17",
                "5"
            ]),
            "{3, 2}\n"
        );
        // A char * result is printed as a quoted string, NULL as NULL.
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "char *strchr(const char *, int)",
                "\"a\\tb\"",
                "9"
            ]),
            "\"\\tb\"\n"
        );
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "char *strchr(const char *, int)",
                "\"abc\"",
                "'z'"
            ]),
            "NULL\n"
        );
        // Other pointers print as hex.
        let p = ok(&[
            "call",
            "libc.so.6",
            "void *memchr(const void *, int, size_t)",
            "NULL",
            "0",
            "0",
        ]);
        assert_eq!(p, "0x0\n");
        // A void function prints nothing.
        assert_eq!(ok(&["call", "libc.so.6", "void srand(unsigned)", "7"]), "");
    }

    #[test]
    fn variadic_types_are_inferred_from_literals() {
        // snprintf(NULL, 0, ...) returns the length it would have written.
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "int snprintf(char *, size_t, const char *, ...)",
                "NULL",
                "0",
                "\"%d %s %.3f %lld\"",
                "42",
                "\"xy\"",
                "2.5",
                "5000000000"
            ]),
            format!("{}\n", "42 xy 2.500 5000000000".len())
        );
        // The same with the variadic types written out.
        assert_eq!(
            ok(&[
                "call",
                "libc.so.6",
                "int snprintf(char *, size_t, const char *, ..., double)",
                "NULL",
                "0",
                "\"%g\"",
                "0.125"
            ]),
            "5\n"
        );
    }

    #[test]
    fn bad_input_is_one_line_and_exit_2() {
        fails(
            &["call", "libm.so.6", "double cos(double)"],
            "cos takes 1 argument, 0 given",
        );
        fails(
            &["call", "libm.so.6", "double coss(double)", "1"],
            "did you mean cos",
        );
        fails(
            &["call", "libnope.so.9", "int f(void)"],
            "cannot open library 'libnope.so.9'",
        );
        fails(
            &["call", "libc.so.6", "int abs(int)", "3000000000"],
            "does not fit in int",
        );
        fails(
            &["call", "libc.so.6", "int abs(int)", "1.5"],
            "expected an integer",
        );
        fails(&["call", "libc.so.6", "strct s f(void)"], "at 0");
        fails(
            &["call", "libc.so.6", "int abs(int)", "\"x"],
            "unterminated string",
        );
        fails(
            &[
                "call",
                "libc.so.6",
                "int printf(const char *, ..., float)",
                "\"\"",
                "1.0",
            ],
            "promoted to double",
        );
        fails(
            &[
                "call",
                "--abi",
                "aapcs64",
                "libm.so.6",
                "double cos(double)",
                "0",
            ],
            "aapcs64",
        );
        fails(
            &[
                "call",
                "--abi",
                "mips",
                "libm.so.6",
                "double cos(double)",
                "0",
            ],
            "unknown ABI 'mips'",
        );
        fails(&["frobnicate"], "unknown command 'frobnicate'");
        fails(&[], "no command");
    }
}

#[test]
fn explain_names_registers_for_every_abi() {
    // DESIGN.md tricky case 8: struct {ll a,b,c;} f(int).
    let decl = "struct s { long long a, b, c; }; struct s f(int)";
    let sysv = ok(&["explain", "--abi", "sysv64", decl]);
    assert!(sysv.contains("arg 1 int (4 bytes): esi"), "{sysv}");
    assert!(
        sysv.contains("hidden result address in rdi, returned in rax"),
        "{sysv}"
    );
    let win = ok(&["explain", "--abi", "win64", decl]);
    assert!(win.contains("arg 1 int (4 bytes): edx"), "{win}");
    assert!(
        win.contains("hidden result address in rcx, returned in rax"),
        "{win}"
    );
    let arm = ok(&["explain", "--abi", "aapcs64", decl]);
    assert!(arm.contains("arg 1 int (4 bytes): w0"), "{arm}");
    assert!(arm.contains("hidden result address in x8"), "{arm}");
    // Case 24 on Apple: packed stack slots 0/2/4/8.
    let apple = ok(&[
        "explain",
        "--abi",
        "apple-arm64",
        "void f(long long, long long, long long, long long, long long, long long, long long, long long, char, short, int, char)",
    ]);
    for slot in ["[sp+0]", "[sp+2]", "[sp+4]", "[sp+8]"] {
        assert!(apple.contains(slot), "{slot} missing in {apple}");
    }
    // x86-64 plans come with their code, disassembled.
    assert!(
        sysv.contains("code (") && (sysv.contains("call ") || sysv.contains("jmp ")),
        "{sysv}"
    );
    fails(&["explain", "int f(int"], "at 9");
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn symbols_lists_defined_dynamic_symbols() {
    let out = ok(&["symbols", "libm.so.6"]);
    let cos = out
        .lines()
        .find(|l| l.ends_with(" cos@@GLIBC_2.2.5"))
        .expect("cos in libm's symbols");
    // nm's format: 16 hex digits, a type letter, the name.
    assert_eq!(cos.len(), 16 + 3 + "cos@@GLIBC_2.2.5".len(), "{cos}");
    assert!(cos[..16].chars().all(|c| c.is_ascii_hexdigit()), "{cos}");
    fails(&["symbols"], "usage");
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn perf_map_names_generated_code() {
    let child = Command::new(env!("CARGO_BIN_EXE_jitffi"))
        .args(["call", "libm.so.6", "double cos(double)", "0"])
        .env("JITFFI_PERF_MAP", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn jitffi");
    let pid = child.id();
    let out = child.wait_with_output().expect("jitffi runs");
    assert!(out.status.success());
    let path = format!("/tmp/perf-{pid}.map");
    let map = std::fs::read_to_string(&path).expect("perf map written");
    let _ = std::fs::remove_file(&path);
    let line = map
        .lines()
        .find(|l| l.ends_with(" jitffi:call:double(double)"))
        .unwrap_or_else(|| panic!("no entry for cos in {map}"));
    let mut f = line.split(' ');
    let start = u64::from_str_radix(f.next().unwrap(), 16).expect("hex start");
    let size = u64::from_str_radix(f.next().unwrap(), 16).expect("hex size");
    assert!(start != 0 && size > 0 && size < 4096, "{line}");
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
#[test]
fn demo_runs() {
    let out = ok(&["demo"]);
    for needle in [
        "strlen",
        "-> 13",
        "{100000000, 7}",
        "jitffi speaks 4 ABIs",
        "after:  [-100, -7, 0, 3, 3, 19, 42, 64]",
        "libffi",
    ] {
        assert!(
            out.contains(needle),
            "'{needle}' missing from the demo:\n{out}"
        );
    }
}
