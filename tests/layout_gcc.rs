//! Struct and union layouts compared with gcc's.
//!
//! Every shape below is written as a C definition. The test generates a C
//! program that prints `sizeof`, `_Alignof` and `offsetof` of every member
//! (including nested member paths and elements of arrays of records),
//! compiles it with the host C compiler for x86-64 Linux, runs it, and
//! compares the numbers with jitffi's layouts under `Abi::SysV64`.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use jitffi::cdecl::Declarations;
use jitffi::types::Type;
use jitffi::Abi;

/// (C definitions, the type to measure).
const SHAPES: &[(&str, &str)] = &[
    ("struct s1 { char c; int i; char d; };", "struct s1"),
    ("struct s2 { char c; double d; short s; };", "struct s2"),
    ("struct s3 { char a, b, c; };", "struct s3"),
    ("struct s4 { float a, b; int c; };", "struct s4"),
    ("struct s5 { double d; char c[8]; };", "struct s5"),
    ("struct s6 { double a, b, c, d; };", "struct s6"),
    ("struct s7 { long long a, b, c; };", "struct s7"),
    ("struct s8 { float a; double b; };", "struct s8"),
    ("struct __attribute__((packed)) s9 { char c; int i; };", "struct s9"),
    ("union u10 { float f; int i; };", "union u10"),
    ("union u11 { double d; float f[2]; };", "union u11"),
    ("struct s12 { struct { float a, b; } p; float c[2]; };", "struct s12"),
    ("struct s13 { char c; __int128 i; };", "struct s13"),
    ("struct s14 { char c; long double ld; };", "struct s14"),
    (
        "struct s15 { _Bool b; char c; _Bool d; int i; _Bool e; };",
        "struct s15",
    ),
    ("struct s16 { char c; _Complex double z; };", "struct s16"),
    (
        "struct s17 { _Complex float a; char c; _Complex long double b; };",
        "struct s17",
    ),
    ("struct s18 { int m[2][3]; char c; short s[5]; };", "struct s18"),
    (
        "struct s19 { char c; struct { char a; double b; } inner[3]; char d; };",
        "struct s19",
    ),
    (
        "struct s20 { int kind; union { int i; double d; char s[12]; }; char tail; };",
        "struct s20",
    ),
    (
        "struct s21 { char c; struct { short a; long b; }; union { char x; int y; }; };",
        "struct s21",
    ),
    ("struct s22 { short n; int data[]; };", "struct s22"),
    ("struct s23 { char c; double data[]; };", "struct s23"),
    (
        "struct s24 { char c; int i __attribute__((aligned(16))); char d; };",
        "struct s24",
    ),
    ("struct __attribute__((aligned(32))) s25 { char c; };", "struct s25"),
    ("struct s26 { int i; } __attribute__((aligned(16)));", "struct s26"),
    (
        "struct __attribute__((packed)) s27 { char c; double d; short s; long long l; };",
        "struct s27",
    ),
    (
        "struct __attribute__((packed, aligned(4))) s28 { char c; int i; };",
        "struct s28",
    ),
    (
        "struct __attribute__((packed)) s29 { char c; int i __attribute__((aligned(4))); char d; };",
        "struct s29",
    ),
    (
        "struct s30 { char c; struct __attribute__((packed)) { char a; int b; } p; char d; };",
        "struct s30",
    ),
    ("struct s31 { char c; struct s9 p; short s; };", "struct s31"),
    ("union u32 { struct s1 a; struct s2 b; char c[13]; };", "union u32"),
    ("union u33 { char c; __int128 i; };", "union u33"),
    (
        "union __attribute__((packed)) u34 { char c; int i; double d; };",
        "union u34",
    ),
    (
        "union u35 { char c[5]; short s; } __attribute__((aligned(8)));",
        "union u35",
    ),
    (
        "enum e36 { E36A, E36B = 100 }; struct s36 { char c; enum e36 e; char d; };",
        "struct s36",
    ),
    (
        "enum e37 { E37N = -5, E37P = 5 }; struct s37 { enum e37 a; char b; };",
        "struct s37",
    ),
    (
        "enum __attribute__((packed)) e38 { E38A, E38B = 300 }; struct s38 { char c; enum e38 e; };",
        "struct s38",
    ),
    (
        "struct s39 { void *p; char c; void (*fn)(int); char d; };",
        "struct s39",
    ),
    (
        "struct s40 { char c; unsigned long long u; unsigned short us; signed char sc; };",
        "struct s40",
    ),
    ("struct s41 { long l; int i; };", "struct s41"),
    ("struct s42 { char c; struct s42 *next; };", "struct s42"),
    (
        "struct s43 { struct { struct { char a; int b; } y; char c; } x; double d; };",
        "struct s43",
    ),
    (
        "struct s44 { char a[3]; struct { char b[5]; } in; int i; };",
        "struct s44",
    ),
    ("struct s45 { char c; _Alignas(16) char d; };", "struct s45"),
    (
        "struct s46 { char c; _Alignas(double) char d; int e[0]; };",
        "struct s46",
    ),
    ("struct s47 { long double a[2]; char c; };", "struct s47"),
    (
        "struct s48 { __int128 a; char b; unsigned __int128 c; };",
        "struct s48",
    ),
    ("struct s49 { float f[3]; };", "struct s49"),
    ("struct s50 { double a; float b; };", "struct s50"),
    (
        "typedef struct { char c; short s; } t51; struct s51 { t51 a; t51 b[2]; char z; };",
        "struct s51",
    ),
    (
        "struct s52 { char c; union { struct { char a; double b; }; int x; }; };",
        "struct s52",
    ),
    (
        "struct s53 { union { char a; short b; } u; struct { float f; } s; char c; };",
        "struct s53",
    ),
    (
        "struct s54 { char c1; struct __attribute__((aligned(16))) { int x; } al; char c2; };",
        "struct s54",
    ),
    (
        "struct s55 { char c; int i; } __attribute__((packed, aligned(2)));",
        "struct s55",
    ),
    (
        "struct s56 { char c; long long ll __attribute__((aligned(2))); };",
        "struct s56",
    ),
    ("struct s57 { char c; struct s25 big; };", "struct s57"),
    ("struct s58 { _Complex float c[3]; char x; };", "struct s58"),
    (
        "struct s59 { char a; struct { char b; } __attribute__((aligned(8))) in; char c; };",
        "struct s59",
    ),
    (
        "union u60 { struct { char a; int b; } s; long double ld; };",
        "union u60",
    ),
    (
        "struct __attribute__((packed)) s61 { char c; struct s1 inner; };",
        "struct s61",
    ),
    (
        "struct s62 { char c; __attribute__((aligned(16))) int x, y; };",
        "struct s62",
    ),
    (
        "struct s63 { char c; size_t n; int8_t i8; uint16_t u16; int64_t i64; };",
        "struct s63",
    ),
    ("struct s65 { char c; double d __attribute__((aligned(32))); };", "struct s65"),
    ("struct s66 { short s; char c[]; };", "struct s66"),
    ("struct s67 { };", "struct s67"),
    (
        "struct s68 { char c; union { struct s6 six; struct s13 thirteen; } u[2]; };",
        "struct s68",
    ),
    (
        "typedef union { _Complex double z; double parts[2]; } t69;",
        "t69",
    ),
    (
        "struct s70 { unsigned char flags; struct { _Bool on; long double v; } e[2]; };",
        "struct s70",
    ),
    (
        "struct s71 { char c; int arr[2][2][2]; char tail; } __attribute__((aligned(64)));",
        "struct s71",
    ),
    (
        "struct __attribute__((packed)) s64 { char c; struct s26 al; };",
        "struct s64",
    ),
    (
        "union u72 { char c; int i __attribute__((aligned(8))); };",
        "union u72",
    ),
    ("struct s73 { char c; struct s9 arr[3]; int i; };", "struct s73"),
    (
        "struct s74 { char c; struct s22 fam_holder; };",
        "struct s74",
    ),
];

/// `(member path, offset)` pairs.
type MemberOffsets = Vec<(String, u32)>;

/// `(path, offset)` for every named member, nested members (through
/// anonymous members as C sees them) and the last element of arrays of
/// records.
fn member_paths(ty: &Type, prefix: &str, base: u32, out: &mut MemberOffsets) {
    let Some(rec) = ty.as_record() else {
        return;
    };
    for f in &rec.fields {
        let off = base + f.offset;
        let path = match &f.name {
            Some(n) => format!("{prefix}{n}"),
            None => {
                // Anonymous member: its members belong to the outer record.
                member_paths(&f.ty, prefix, off, out);
                continue;
            }
        };
        out.push((path.clone(), off));
        match &f.ty {
            Type::Record(_) => member_paths(&f.ty, &format!("{path}."), off, out),
            Type::Array(elem, n) if *n > 1 && elem.as_record().is_some() => {
                let k = n - 1;
                let at = off + k * elem.size();
                out.push((format!("{path}[{k}]"), at));
                member_paths(elem, &format!("{path}[{k}]."), at, out);
            }
            _ => {}
        }
    }
}

fn find_compiler() -> Option<String> {
    ["cc", "gcc"].into_iter().map(String::from).find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

#[test]
fn layouts_match_gcc() {
    assert!(SHAPES.len() >= 60, "at least 60 shapes");
    if !cfg!(all(target_arch = "x86_64", target_os = "linux")) {
        eprintln!(
            "\n\n*** layout_gcc: SKIPPED: the generated program must run as x86-64 Linux \
             (SysV) code ***\n"
        );
        return;
    }
    let Some(compiler) = find_compiler() else {
        eprintln!("\n\n*** layout_gcc: SKIPPED: no C compiler (cc or gcc) found in PATH ***\n");
        return;
    };

    let mut decls = Declarations::new(Abi::SysV64);
    // Per shape: jitffi's size, alignment and member offsets.
    let mut expected: Vec<(u32, u32, MemberOffsets)> = Vec::new();
    let mut defs = String::new();
    let mut body = String::new();
    for (i, (def, name)) in SHAPES.iter().enumerate() {
        if let Err(e) = decls.define(def) {
            panic!("shape {i} `{def}`: {e}");
        }
        let ty = decls
            .parse_type(name)
            .unwrap_or_else(|e| panic!("shape {i} `{name}`: {e}"));
        let mut paths = Vec::new();
        member_paths(&ty, "", 0, &mut paths);
        defs.push_str(def);
        defs.push('\n');
        writeln!(
            body,
            "    printf(\"%d %zu %zu\", {i}, sizeof({name}), _Alignof({name}));"
        )
        .unwrap();
        for (p, _) in &paths {
            writeln!(body, "    printf(\" %zu\", offsetof({name}, {p}));").unwrap();
        }
        body.push_str("    printf(\"\\n\");\n");
        expected.push((ty.size(), ty.align(), paths));
    }
    let program = format!(
        "#include <stdio.h>\n#include <stddef.h>\n#include <stdint.h>\n\n{defs}\n\
         int main(void) {{\n{body}    return 0;\n}}\n"
    );

    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("layout_gcc");
    std::fs::create_dir_all(&dir).unwrap();
    let c_file = dir.join("layouts.c");
    let exe = dir.join("layouts");
    std::fs::write(&c_file, &program).unwrap();
    let out = Command::new(&compiler)
        .args(["-std=gnu11", "-O0", "-w", "-o"])
        .arg(&exe)
        .arg(&c_file)
        .output()
        .expect("run the C compiler");
    assert!(
        out.status.success(),
        "{compiler} failed on {}:\n{}",
        c_file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe).output().expect("run the layout program");
    assert!(run.status.success());
    let text = String::from_utf8(run.stdout).unwrap();

    let mut failures = Vec::new();
    let mut lines = 0;
    for line in text.lines() {
        let nums: Vec<u64> = line
            .split_whitespace()
            .map(|w| w.parse().unwrap())
            .collect();
        let i = nums[0] as usize;
        let (size, align, paths) = &expected[i];
        let (name, def) = (SHAPES[i].1, SHAPES[i].0);
        if (nums[1], nums[2]) != (*size as u64, *align as u64) {
            failures.push(format!(
                "{name}: gcc size/align {}/{}, jitffi {size}/{align}   [{def}]",
                nums[1], nums[2]
            ));
        }
        assert_eq!(nums.len(), 3 + paths.len(), "{name}");
        for ((p, off), gcc) in paths.iter().zip(&nums[3..]) {
            if *off as u64 != *gcc {
                failures.push(format!(
                    "{name}: offsetof({p}) gcc {gcc}, jitffi {off}   [{def}]"
                ));
            }
        }
        lines += 1;
    }
    assert_eq!(lines, SHAPES.len(), "one line per shape");
    assert!(
        failures.is_empty(),
        "{} layout differences from gcc (program: {}):\n{}",
        failures.len(),
        c_file.display(),
        failures.join("\n")
    );
}
