//! Library loading, symbol lookup, and the `nm -D --defined-only` listing.
//!
//! The listings are compared line by line with GNU nm's own output (run as a
//! subprocess, in the C locale so that its `strcoll` sort is byte order);
//! nm is the oracle, never the code under test.

use std::path::{Path, PathBuf};
use std::process::Command;

use jitffi::library::{dynamic_symbols, format_nm_line, Library};
use jitffi::Error;

/// True when `tool --version` runs; otherwise prints why a test is skipped.
fn have(tool: &str, test: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        eprintln!("skipping {test}: `{tool}` is not installed");
    }
    ok
}

/// `nm -D --defined-only [extra] path`, one string per line.
fn nm(path: &Path, extra: &[&str]) -> Vec<String> {
    let out = Command::new("nm")
        .env("LC_ALL", "C")
        .args(["-D", "--defined-only"])
        .args(extra)
        .arg(path)
        .output()
        .expect("run nm");
    assert!(
        out.status.success(),
        "nm failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn ours(path: &Path, demangle: bool) -> Vec<String> {
    dynamic_symbols(path)
        .unwrap_or_else(|e| panic!("dynamic_symbols({}): {e}", path.display()))
        .iter()
        .map(|s| format_nm_line(s, demangle))
        .collect()
}

/// Asserts equal listings, reporting the first differing lines.
fn assert_same(what: &str, expected: &[String], got: &[String]) {
    if expected == got {
        return;
    }
    let mut report = Vec::new();
    for i in 0..expected.len().max(got.len()) {
        let e = expected.get(i).map(String::as_str).unwrap_or("<none>");
        let g = got.get(i).map(String::as_str).unwrap_or("<none>");
        if e != g {
            report.push(format!("line {}:\n  nm:     {e}\n  jitffi: {g}", i + 1));
            if report.len() == 10 {
                break;
            }
        }
    }
    panic!(
        "{what}: {} lines from nm, {} from jitffi; first differences:\n{}",
        expected.len(),
        got.len(),
        report.join("\n")
    );
}

fn soname_path(soname: &str) -> PathBuf {
    let lib = Library::open(soname).unwrap_or_else(|e| panic!("{e}"));
    lib.path()
        .unwrap_or_else(|| panic!("no path for {soname}"))
        .to_path_buf()
}

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "under qemu-user the guest's library paths and host tools (nm, g++) do not match"
)]
fn listing_matches_nm_for_libm() {
    if !have("nm", "listing_matches_nm_for_libm") {
        return;
    }
    let path = soname_path("libm.so.6");
    assert_same("libm", &nm(&path, &[]), &ours(&path, false));
}

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "under qemu-user the guest's library paths and host tools (nm, g++) do not match"
)]
fn listing_matches_nm_for_libc() {
    if !have("nm", "listing_matches_nm_for_libc") {
        return;
    }
    let path = soname_path("libc.so.6");
    let expected = nm(&path, &[]);
    // The listing must contain the cases the letters and versions are for.
    for needle in [
        " A GLIBC_2.2.5",        // version definition symbol, absolute
        " i memcpy@@GLIBC_2.14", // GNU indirect function, default version
        " T memcpy@GLIBC_2.2.5", // hidden (non-default) version
        " V environ@@GLIBC_2.2.5",
        " B errno@@GLIBC_PRIVATE", // TLS in .tbss
    ] {
        assert!(
            expected.iter().any(|l| l.ends_with(needle)),
            "nm's libc listing lacks `{needle}`: the test's premise is wrong"
        );
    }
    assert_same("libc", &expected, &ours(&path, false));
    // Demangling changes nothing in a C library.
    assert_same("libc demangled", &expected, &ours(&path, true));
}

/// A small C++ library: namespaces, an overload, template instances, a
/// class with virtual members, data, and an `extern "C"` function.
const CXX_SOURCE: &str = r#"
#include <string>
#include <vector>
namespace geo {
struct Point { double x, y; };
double dot(const Point &a, const Point &b) { return a.x * b.x + a.y * b.y; }
int scale(int v, int k) { return v * k; }
double scale(double v, double k) { return v * k; }
long scale(long v, const Point *p) { return v + (long)p->x; }
template <typename T> T twice(T v) { return v + v; }
template int twice<int>(int);
template double twice<double>(double);
template <typename T, int N> struct Grid { T cells[N]; T sum() const; };
template <typename T, int N> T Grid<T, N>::sum() const {
    T s = 0; for (int i = 0; i < N; i++) s += cells[i]; return s;
}
template struct Grid<float, 4>;
class Shape {
public:
    virtual ~Shape();
    virtual double area() const;
    static int count;
};
Shape::~Shape() {}
double Shape::area() const { return 0; }
int Shape::count = 3;
namespace detail {
unsigned long hash(const char *s) { unsigned long h = 5381; while (*s) h = h * 33 + *s++; return h; }
}
std::string label(const std::vector<int> &v) { return std::to_string(v.size()); }
int counter;
extern const int table[4] = {1, 2, 3, 4};
}
extern "C" int plain_c(int x) { return geo::scale(x, 2); }
"#;

/// Builds the C++ test library once per test process; `None` without g++.
fn cxx_library(test: &str) -> Option<PathBuf> {
    if !have("g++", test) {
        return None;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "library-{}-{}",
        std::process::id(),
        test
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let src = dir.join("cxxlib.cpp");
    let lib = dir.join("libjitffi_cxxtest.so");
    std::fs::write(&src, CXX_SOURCE).expect("write C++ source");
    let out = Command::new("g++")
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&lib)
        .arg(&src)
        .output()
        .expect("run g++");
    assert!(
        out.status.success(),
        "g++ failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(lib)
}

#[test]
fn listing_matches_nm_for_a_cxx_library() {
    let test = "listing_matches_nm_for_a_cxx_library";
    if !have("nm", test) {
        return;
    }
    let Some(lib) = cxx_library(test) else {
        return;
    };
    let plain = nm(&lib, &[]);
    let demangled = nm(&lib, &["--demangle"]);
    for needle in [
        " T geo::scale(int, int)",
        " T geo::scale(double, double)",
        " W int geo::twice<int>(int)", // explicit instantiations are weak
        " V typeinfo for geo::Shape",
        " u std::__detail::__to_chars_10_impl<unsigned long>(char*, unsigned int, unsigned long)::__digits",
        " W geo::Grid<float, 4>::sum() const",
        " T plain_c",
    ] {
        assert!(
            demangled.iter().any(|l| l.ends_with(needle)),
            "nm's demangled listing lacks `{needle}`: the test's premise is wrong"
        );
    }
    assert_same("C++ library", &plain, &ours(&lib, false));
    assert_same("C++ library demangled", &demangled, &ours(&lib, true));
}

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "under qemu-user the guest's library paths and host tools (nm, g++) do not match"
)]
fn cxx_symbols_are_found_by_mangled_name() {
    let Some(lib) = cxx_library("cxx_symbols_are_found_by_mangled_name") else {
        return;
    };
    let l = Library::open(lib.to_str().unwrap()).unwrap();
    let plain = l.symbol("plain_c").unwrap();
    // SAFETY: plain_c is `extern "C" int plain_c(int)` in CXX_SOURCE.
    let f: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(plain) };
    assert_eq!(f(21), 42);
    assert!(l.symbol("_ZN3geo5scaleEii").is_ok());
    // A near miss on a mangled name suggests the real one.
    match l.symbol("_ZN3geo5scaleEjj") {
        Err(Error::Symbol { similar, .. }) => {
            assert!(
                similar.iter().any(|s| s == "_ZN3geo5scaleEii"),
                "{similar:?}"
            )
        }
        other => panic!("expected Error::Symbol, got {other:?}"),
    }
}

#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "under qemu-user the guest's library paths and host tools (nm, g++) do not match"
)]
fn opens_by_soname_and_by_path() {
    let by_name = Library::open("libm.so.6").unwrap();
    assert_eq!(by_name.name(), "libm.so.6");
    let path = by_name.path().expect("libm's path").to_path_buf();
    assert!(path.is_absolute() && path.exists(), "{}", path.display());
    assert!(path.to_string_lossy().contains("libm"));

    let by_path = Library::open(path.to_str().unwrap()).unwrap();
    assert_eq!(by_path.path(), Some(path.as_path()));

    let a = by_name.symbol("cos").unwrap();
    let b = by_path.symbol("cos").unwrap();
    assert_eq!(a, b, "one library, one address");
    // SAFETY: cos is `double cos(double)` (C99 7.12.4.5).
    let cos: extern "C" fn(f64) -> f64 = unsafe { std::mem::transmute(a) };
    assert_eq!(cos(0.0), 1.0);
}

#[test]
fn a_missing_library_is_named_in_the_error() {
    let name = "libjitffi-no-such-library.so.7";
    match Library::open(name) {
        Err(e @ Error::Library { .. }) => {
            let msg = e.to_string();
            assert!(msg.contains(name), "{msg}");
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            let Error::Library { name: n, reason } = e else {
                unreachable!()
            };
            assert_eq!(n, name);
            // dlerror names the file it could not open.
            assert!(reason.contains(name), "dlerror text: {reason}");
        }
        other => panic!("expected Error::Library, got {other:?}"),
    }
    assert!(matches!(
        Library::open("/nonexistent/dir/libm.so.6"),
        Err(Error::Library { .. })
    ));
    assert!(matches!(Library::open(""), Err(Error::Library { .. })));
    // A file that is not a library.
    let cargo_toml = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    match Library::open(cargo_toml) {
        Err(e @ Error::Library { .. }) => assert!(!e.to_string().contains('\n')),
        other => panic!("expected Error::Library, got {other:?}"),
    }
    assert!(matches!(
        dynamic_symbols(Path::new(cargo_toml)),
        Err(Error::Library { .. })
    ));
    assert!(matches!(
        dynamic_symbols(Path::new("/nonexistent/libx.so")),
        Err(Error::Library { .. })
    ));
}

#[test]
fn a_missing_symbol_suggests_close_names() {
    let libm = Library::open("libm.so.6").unwrap();
    match libm.symbol("coss") {
        Err(e @ Error::Symbol { .. }) => {
            let msg = e.to_string();
            assert!(!msg.contains('\n'), "one line: {msg:?}");
            assert!(msg.contains("coss") && msg.contains("libm.so.6"), "{msg}");
            let Error::Symbol {
                name,
                library,
                similar,
            } = e
            else {
                unreachable!()
            };
            assert_eq!(name, "coss");
            assert_eq!(library, "libm.so.6");
            assert_eq!(
                similar.first().map(String::as_str),
                Some("cos"),
                "{similar:?}"
            );
            assert!(similar.len() <= 3, "{similar:?}");
            // libm exports cosf, cosh and cosl at distance 1 as well; ties
            // are alphabetical.
            assert_eq!(similar, ["cos", "cosf", "cosh"]);
        }
        other => panic!("expected Error::Symbol, got {other:?}"),
    }
    // Nothing close: no suggestions, still an error.
    match libm.symbol("jitffi_nothing_like_this") {
        Err(Error::Symbol { similar, .. }) => assert!(similar.is_empty(), "{similar:?}"),
        other => panic!("expected Error::Symbol, got {other:?}"),
    }
    // Names that cannot be C strings are errors too, not panics.
    assert!(matches!(libm.symbol("co\0s"), Err(Error::Symbol { .. })));
    let e = libm.symbol("line\nbreak").unwrap_err().to_string();
    assert!(!e.contains('\n'), "one line: {e:?}");
}

#[test]
fn this_program_finds_libc_symbols() {
    let me = Library::this().unwrap();
    let p = me.symbol("strlen").unwrap();
    // SAFETY: strlen is `size_t strlen(const char *)` (C99 7.21.6.3).
    let strlen: extern "C" fn(*const std::ffi::c_char) -> usize = unsafe { std::mem::transmute(p) };
    assert_eq!(strlen(c"jitffi".as_ptr()), 6);
    assert!(me.path().is_some_and(Path::exists));
    assert!(matches!(
        me.symbol("jitffi_no_such_symbol_here"),
        Err(Error::Symbol { .. })
    ));
}

#[test]
fn library_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Library>();
    let libm = std::sync::Arc::new(Library::open("libm.so.6").unwrap());
    let t = {
        let libm = libm.clone();
        std::thread::spawn(move || libm.symbol("sin").map(|p| p as usize).unwrap())
    };
    assert_eq!(t.join().unwrap(), libm.symbol("sin").unwrap() as usize);
}

/// libstdc++ exercises what the small library cannot: thousands of
/// templates, abbreviations (`std::string`, `std::istream`), local statics,
/// thunks, and versioned C++ symbols.
#[test]
#[cfg_attr(
    not(target_arch = "x86_64"),
    ignore = "under qemu-user the guest's library paths and host tools (nm, g++) do not match"
)]
fn listing_matches_nm_for_libstdcxx() {
    let test = "listing_matches_nm_for_libstdcxx";
    if !have("nm", test) {
        return;
    }
    let Ok(lib) = Library::open("libstdc++.so.6") else {
        eprintln!("skipping {test}: libstdc++.so.6 is not installed");
        return;
    };
    let path = lib.path().expect("libstdc++'s path").to_path_buf();
    assert_same("libstdc++", &nm(&path, &[]), &ours(&path, false));
    let demangled = nm(&path, &["--demangle"]);
    assert!(
        demangled
            .iter()
            .any(|l| l.contains(" std::istream::gcount() const@@GLIBCXX_3.4")),
        "nm's listing lacks std::istream::gcount: the test's premise is wrong"
    );
    assert_same("libstdc++ demangled", &demangled, &ours(&path, true));
}

/// Rust symbols in both manglings: rustc builds a small dylib (which also
/// exports much of std) with the legacy and the v0 scheme.
#[test]
fn listing_matches_nm_for_rust_dylibs() {
    let test = "listing_matches_nm_for_rust_dylibs";
    if !have("nm", test) || !have("rustc", test) {
        return;
    }
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("library-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    let src = dir.join("rlib.rs");
    std::fs::write(
        &src,
        r#"
pub struct Wrapper<T>(pub T);
impl<T: Copy + std::ops::Add<Output = T>> Wrapper<T> {
    #[inline(never)]
    pub fn doubled(&self) -> T { self.0 + self.0 }
}
pub mod inner { pub fn sum(xs: &[i32]) -> i32 { xs.iter().sum() } }
pub fn use_all() -> i64 { Wrapper(2i64).doubled() + Wrapper(1.5f64).doubled() as i64 }
pub static GLOBAL: u32 = 7;
"#,
    )
    .expect("write Rust source");
    for (mangling, needle) in [
        ("legacy", " T lib::inner::sum"),
        ("v0", " T <lib::Wrapper<i64>>::doubled"),
    ] {
        let lib = dir.join(format!("lib{mangling}.so"));
        let mut cmd = Command::new("rustc");
        cmd.args(["--crate-type", "dylib", "--crate-name", "lib", "-O", "-o"])
            .arg(&lib)
            .arg(&src);
        if mangling == "v0" {
            cmd.arg("-Csymbol-mangling-version=v0");
        }
        let out = cmd.output().expect("run rustc");
        assert!(
            out.status.success(),
            "rustc failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let demangled = nm(&lib, &["--demangle"]);
        assert!(
            demangled.iter().any(|l| l.ends_with(needle)),
            "nm's {mangling} listing lacks `{needle}`: the test's premise is wrong"
        );
        assert_same(mangling, &nm(&lib, &[]), &ours(&lib, false));
        assert_same(
            &format!("{mangling} demangled"),
            &demangled,
            &ours(&lib, true),
        );
    }
}
