//! Tests of the C declaration parser. Expected sizes, alignments and
//! offsets are gcc's (x86-64 / AArch64 Linux, MSVC-compatible data model
//! for Win64); `layout_gcc.rs` checks many more layouts against gcc itself.

use jitffi::cdecl::{parse_signature, Declarations, ParseError};
use jitffi::types::{Record, RecordKind, Scalar, Type};
use jitffi::{Abi, Signature};

fn sig(src: &str) -> Signature {
    sig_for(src, Abi::SysV64)
}

fn sig_for(src: &str, abi: Abi) -> Signature {
    match parse_signature(src, abi) {
        Ok(s) => s,
        Err(e) => panic!("`{src}` on {abi}: {e}"),
    }
}

fn parse_err(src: &str) -> ParseError {
    match parse_signature(src, Abi::SysV64) {
        Ok(s) => panic!("`{src}` parsed as `{s}`, expected an error"),
        Err(e) => e,
    }
}

/// Asserts the error message contains `msg` and is at the offset of the
/// first occurrence of `at` in `src`.
fn assert_err(src: &str, msg: &str, at: &str) {
    let e = parse_err(src);
    assert!(
        e.message.contains(msg),
        "`{src}`: message `{}` does not contain `{msg}`",
        e.message
    );
    let off = src.find(at).expect("marker in source");
    assert_eq!(e.offset, off, "`{src}`: error `{e}` at the wrong offset");
}

fn ty(src: &str) -> Type {
    ty_for(src, Abi::SysV64)
}

fn ty_for(src: &str, abi: Abi) -> Type {
    match Declarations::new(abi).parse_type(src) {
        Ok(t) => t,
        Err(e) => panic!("type `{src}` on {abi}: {e}"),
    }
}

fn sc(s: Scalar) -> Type {
    Type::Scalar(s)
}

fn rec(t: &Type) -> &Record {
    t.as_record().expect("a record")
}

fn offsets(t: &Type) -> Vec<u32> {
    rec(t).fields.iter().map(|f| f.offset).collect()
}

fn ptr(p: &str) -> Type {
    Type::pointer(p)
}

// ----- the examples from the issue ----------------------------------------

#[test]
fn cos() {
    let s = sig("double cos(double)");
    assert_eq!(s.name.as_deref(), Some("cos"));
    assert_eq!(s.ret, sc(Scalar::F64));
    assert_eq!(s.args, vec![sc(Scalar::F64)]);
    assert_eq!((s.fixed_args, s.variadic), (1, false));
    assert_eq!(s.abi, Abi::SysV64);
}

#[test]
fn printf_declares_a_variadic_function() {
    let s = sig("int printf(const char *fmt, ...)");
    assert_eq!(s.name.as_deref(), Some("printf"));
    assert_eq!(s.ret, sc(Scalar::I32));
    assert_eq!(s.args, vec![ptr("char")]);
    assert_eq!((s.fixed_args, s.variadic), (1, true));
}

#[test]
fn variadic_argument_types_follow_the_ellipsis() {
    let s = sig("int printf(const char *, ..., int, double)");
    assert_eq!(s.args, vec![ptr("char"), sc(Scalar::I32), sc(Scalar::F64)]);
    assert_eq!((s.fixed_args, s.variadic), (1, true));
    assert!(!s.is_variadic_arg(0) && s.is_variadic_arg(1) && s.is_variadic_arg(2));
    // Pointers, long, long double, structs are passed as they are.
    let s = sig("struct big { double a, b, c; }; \
         int f(int n, ..., char *, long, long double, struct big, unsigned long long)");
    assert_eq!(s.args.len(), 6);
    assert_eq!(s.fixed_args, 1);
    assert_eq!(s.args[2], sc(Scalar::I64));
    assert_eq!(s.args[3], sc(Scalar::F80));
    assert_eq!(s.args[4].size(), 24);
    // No fixed parameter at all (C23).
    let s = sig("void g(...)");
    assert_eq!((s.fixed_args, s.variadic, s.args.len()), (0, true, 0));
}

#[test]
fn default_argument_promotions_are_enforced() {
    let src = "int printf(const char *fmt, ..., int, float)";
    let e = parse_err(src);
    assert_eq!(
        e.message,
        "variadic argument of type float is promoted to double; write 'double'"
    );
    assert_eq!(e.offset, src.find("float").unwrap());
    assert_eq!(
        e.to_string(),
        format!(
            "variadic argument of type float is promoted to double; write 'double' at {}",
            e.offset
        )
    );
    for (t, to) in [
        ("char", "int"),
        ("signed char", "int"),
        ("unsigned char", "int"),
        ("short", "int"),
        ("unsigned short", "int"),
        ("short int", "int"),
        ("_Bool", "int"),
        ("bool", "int"),
        ("int8_t", "int"),
        ("uint16_t", "int"),
    ] {
        let src = format!("int f(int n, ..., {t})");
        let e = parse_err(&src);
        assert_eq!(
            e.message,
            format!("variadic argument of type {t} is promoted to {to}; write '{to}'"),
            "{src}"
        );
        assert_eq!(e.offset, 18, "{src}");
    }
    // A typedef of float is promoted too.
    let e = parse_err("typedef float real; int f(int, ..., real)");
    assert!(e.message.contains("promoted to double"), "{e}");
    // wchar_t is unsigned short on Win64 only.
    assert!(parse_signature("int f(int, ..., wchar_t)", Abi::Win64).is_err());
    assert!(parse_signature("int f(int, ..., wchar_t)", Abi::SysV64).is_ok());
}

#[test]
fn typedef_struct_vec2() {
    let s = sig("typedef struct { float x, y; } vec2; vec2 add(vec2 a, vec2 b)");
    assert_eq!(s.name.as_deref(), Some("add"));
    assert_eq!(s.args.len(), 2);
    let r = rec(&s.ret);
    assert_eq!(r.kind, RecordKind::Struct);
    assert_eq!((r.size, r.align), (8, 4));
    assert_eq!(offsets(&s.ret), [0, 4]);
    assert_eq!(r.fields[1].name.as_deref(), Some("y"));
    assert_eq!(s.args[0], s.ret);
}

// ----- parameters ---------------------------------------------------------

#[test]
fn parameter_forms() {
    // Names optional, (void), empty list, trailing semicolon.
    assert_eq!(sig("int f(int, int b)").args.len(), 2);
    assert_eq!(sig("int f(void)").args.len(), 0);
    assert_eq!(sig("int f()").args.len(), 0);
    assert_eq!(sig("int f(void);").args.len(), 0);
    assert_eq!(sig("void f(void);;").ret, Type::Void);
    // Qualifiers are accepted and ignored.
    let s = sig("const volatile int f(const int a, int * const restrict p, \
         char *__restrict q, const char *__restrict__ const r, volatile double)");
    assert_eq!(
        s.args,
        vec![
            sc(Scalar::I32),
            ptr("int"),
            ptr("char"),
            ptr("char"),
            sc(Scalar::F64)
        ]
    );
    assert_eq!(s.ret, sc(Scalar::I32));
    // Storage classes and function specifiers are ignored.
    assert_eq!(sig("extern inline int f(register int x)").args.len(), 1);
    assert_eq!(
        sig("static __inline__ _Noreturn void f(void)")
            .name
            .as_deref(),
        Some("f")
    );
}

#[test]
fn array_parameters_decay() {
    let s = sig("int f(int a[], char s[10], double m[3][4], int q[static 4], const int c[const])");
    assert_eq!(
        s.args,
        vec![
            ptr("int"),
            ptr("char"),
            ptr("double[4]"),
            ptr("int"),
            ptr("int")
        ]
    );
    // char *argv[]: pointer to char *.
    assert_eq!(
        sig("int main(int argc, char *argv[])").args[1],
        ptr("char *")
    );
}

#[test]
fn function_pointers() {
    let s = sig(
        "void qsort(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));",
    );
    assert_eq!(s.args.len(), 4);
    assert_eq!(s.args[0], ptr("void"));
    assert_eq!(s.args[1], sc(Scalar::U64));
    match &s.args[3] {
        Type::Pointer(p) => assert!(p.starts_with("int (") && p.ends_with(')'), "{p}"),
        t => panic!("{t:?}"),
    }
    assert_eq!(s.args[3].size(), 8);
    // A parameter of function type decays to a pointer.
    let s = sig("void atexit2(void f(void))");
    assert_eq!(s.args[0], ptr("void (void)"));
    // Function-pointer typedef.
    let s = sig("typedef int (*cmp_t)(const void *, const void *); void sort(void *, cmp_t)");
    assert!(matches!(&s.args[1], Type::Pointer(p) if p.ends_with(')')));
    // Function typedef, used through a pointer.
    let s = sig("typedef void handler(int); handler *signal(int, handler *)");
    assert_eq!(s.ret.size(), 8);
    assert!(matches!(s.ret, Type::Pointer(_)));
    // signal() spelled the classic way: returns a function pointer.
    let s = sig("void (*signal(int sig, void (*func)(int)))(int)");
    assert_eq!(s.name.as_deref(), Some("signal"));
    assert_eq!(s.args, vec![sc(Scalar::I32), ptr("void (int)")]);
    assert_eq!(s.ret, ptr("void (int)"));
    // A function declared through a function typedef.
    let s = sig("typedef double unary(double); unary sin");
    assert_eq!(s.name.as_deref(), Some("sin"));
    assert_eq!(s.args, vec![sc(Scalar::F64)]);
    // Parenthesised name.
    assert_eq!(sig("int (f)(int)").name.as_deref(), Some("f"));
    // Pointer to array parameter.
    assert_eq!(sig("void f(int (*rows)[4])").args[0], ptr("int[4]"));
}

#[test]
fn pointee_spellings() {
    let s = sig(
        "struct node; union u { int i; }; enum e { X }; \
         void f(char *, const char **, void *, struct node *, union u *, enum e *, unsigned char *, long *)",
    );
    assert_eq!(
        s.args,
        vec![
            ptr("char"),
            ptr("char *"),
            ptr("void"),
            ptr("struct node"),
            ptr("union u"),
            ptr("enum e"),
            ptr("unsigned char"),
            ptr("long"),
        ]
    );
}

// ----- scalar types -------------------------------------------------------

#[test]
fn integer_spellings() {
    use Scalar::*;
    // (spelling, SysV64, Win64)
    let table: &[(&str, Scalar, Scalar)] = &[
        ("signed char", I8, I8),
        ("char signed", I8, I8),
        ("unsigned char", U8, U8),
        ("short", I16, I16),
        ("short int", I16, I16),
        ("signed short", I16, I16),
        ("int short signed", I16, I16),
        ("unsigned short", U16, U16),
        ("unsigned short int", U16, U16),
        ("short unsigned", U16, U16),
        ("int", I32, I32),
        ("signed", I32, I32),
        ("signed int", I32, I32),
        ("__signed__ int", I32, I32),
        ("unsigned", U32, U32),
        ("unsigned int", U32, U32),
        ("int unsigned", U32, U32),
        ("long", I64, I32),
        ("long int", I64, I32),
        ("signed long", I64, I32),
        ("int long signed", I64, I32),
        ("unsigned long", U64, U32),
        ("long unsigned int", U64, U32),
        ("unsigned long int", U64, U32),
        ("long long", I64, I64),
        ("long long int", I64, I64),
        ("signed long long", I64, I64),
        ("long signed long", I64, I64),
        ("unsigned long long", U64, U64),
        ("long long unsigned int", U64, U64),
        ("long int long unsigned", U64, U64),
        ("__int128", I128, I128),
        ("signed __int128", I128, I128),
        ("unsigned __int128", U128, U128),
        ("__int128 unsigned", U128, U128),
        ("__int128_t", I128, I128),
        ("__uint128_t", U128, U128),
        ("_Bool", Bool, Bool),
        ("bool", Bool, Bool),
        ("float", F32, F32),
        ("double", F64, F64),
    ];
    for &(spelling, sysv, win) in table {
        assert_eq!(
            ty_for(spelling, Abi::SysV64),
            sc(sysv),
            "{spelling} on sysv64"
        );
        assert_eq!(ty_for(spelling, Abi::Win64), sc(win), "{spelling} on win64");
        assert_eq!(
            ty_for(spelling, Abi::Aapcs64),
            sc(sysv),
            "{spelling} on aapcs64"
        );
        assert_eq!(
            ty_for(spelling, Abi::AppleArm64),
            sc(sysv),
            "{spelling} on apple-arm64"
        );
    }
    assert_eq!(ty("void"), Type::Void);
}

#[test]
fn char_signedness_per_abi() {
    // signed on x86-64 (SysV, Win64) and Apple arm64; unsigned on AArch64 Linux.
    assert_eq!(ty_for("char", Abi::SysV64), sc(Scalar::I8));
    assert_eq!(ty_for("char", Abi::Win64), sc(Scalar::I8));
    assert_eq!(ty_for("char", Abi::AppleArm64), sc(Scalar::I8));
    assert_eq!(ty_for("char", Abi::Aapcs64), sc(Scalar::U8));
    // Explicit signedness is the same everywhere.
    for abi in Abi::ALL {
        assert_eq!(ty_for("signed char", abi), sc(Scalar::I8));
        assert_eq!(ty_for("unsigned char", abi), sc(Scalar::U8));
    }
    // char * keeps the spelling "char" on every ABI.
    for abi in Abi::ALL {
        assert_eq!(sig_for("int puts(const char *)", abi).args[0], ptr("char"));
    }
}

#[test]
fn long_and_long_double_per_abi() {
    assert_eq!(
        sig_for("long f(unsigned long)", Abi::Win64).ret,
        sc(Scalar::I32)
    );
    assert_eq!(
        sig_for("long f(unsigned long)", Abi::Win64).args[0],
        sc(Scalar::U32)
    );
    assert_eq!(sig_for("long f(long)", Abi::Aapcs64).ret, sc(Scalar::I64));
    // long double: x87 on SysV, quad on AArch64 Linux, double on Win64 and Apple.
    let ld = "long double";
    assert_eq!(ty_for(ld, Abi::SysV64), sc(Scalar::F80));
    assert_eq!(ty_for(ld, Abi::Aapcs64), sc(Scalar::F128));
    assert_eq!(ty_for(ld, Abi::Win64), sc(Scalar::F64));
    assert_eq!(ty_for(ld, Abi::AppleArm64), sc(Scalar::F64));
    assert_eq!(ty_for("double long", Abi::SysV64), sc(Scalar::F80));
    assert_eq!(ty_for(ld, Abi::SysV64).size(), 16);
    assert_eq!(ty_for(ld, Abi::SysV64).align(), 16);
    // A struct holding long double follows the model.
    let src = "struct s { char c; long double x; }";
    assert_eq!(ty_for(src, Abi::SysV64).size(), 32);
    assert_eq!(ty_for(src, Abi::Aapcs64).size(), 32);
    assert_eq!(ty_for(src, Abi::Win64).size(), 16);
    assert_eq!(ty_for(src, Abi::AppleArm64).size(), 16);
}

#[test]
fn stdint_names() {
    use Scalar::*;
    for (name, s) in [
        ("int8_t", I8),
        ("uint8_t", U8),
        ("int16_t", I16),
        ("uint16_t", U16),
        ("int32_t", I32),
        ("uint32_t", U32),
        ("int64_t", I64),
        ("uint64_t", U64),
        ("intptr_t", I64),
        ("uintptr_t", U64),
        ("size_t", U64),
        ("ssize_t", I64),
        ("ptrdiff_t", I64),
        ("intmax_t", I64),
        ("uintmax_t", U64),
    ] {
        for abi in Abi::ALL {
            assert_eq!(ty_for(name, abi), sc(s), "{name} on {abi}");
        }
    }
    // wchar_t: int on Linux x86-64 and Apple, unsigned int on AArch64 Linux,
    // unsigned short on Windows.
    assert_eq!(ty_for("wchar_t", Abi::SysV64), sc(I32));
    assert_eq!(ty_for("wchar_t", Abi::Aapcs64), sc(U32));
    assert_eq!(ty_for("wchar_t", Abi::Win64), sc(U16));
    assert_eq!(ty_for("wchar_t", Abi::AppleArm64), sc(I32));
    // A header may repeat the typedef with the same type, not another one.
    assert!(parse_signature("typedef unsigned long size_t; size_t f(void)", Abi::SysV64).is_ok());
    let e = parse_signature("typedef int size_t; size_t f(void)", Abi::SysV64).unwrap_err();
    assert!(
        e.message.contains("conflicting types for typedef 'size_t'"),
        "{e}"
    );
}

#[test]
fn complex_types() {
    for (src, s) in [
        ("_Complex float", Scalar::F32),
        ("float _Complex", Scalar::F32),
        ("_Complex double", Scalar::F64),
        ("double _Complex", Scalar::F64),
        ("long double _Complex", Scalar::F80),
        ("_Complex long double", Scalar::F80),
        ("__complex__ double", Scalar::F64),
    ] {
        assert_eq!(ty(src), Type::Complex(s), "{src}");
    }
    assert_eq!(
        ty_for("_Complex long double", Abi::Aapcs64),
        Type::Complex(Scalar::F128)
    );
    assert_eq!(
        ty_for("_Complex long double", Abi::Win64),
        Type::Complex(Scalar::F64)
    );
    let s = sig("_Complex double cexp(_Complex double)");
    assert_eq!(s.ret, Type::Complex(Scalar::F64));
    assert_eq!((s.ret.size(), s.ret.align()), (16, 8));
    assert!(parse_err("_Complex int f(void)")
        .message
        .contains("complex integer"));
}

#[test]
fn invalid_specifier_combinations() {
    for (src, at) in [
        ("short long f(void)", "short"),
        ("long long long f(void)", "long"),
        ("signed unsigned f(void)", "signed"),
        ("unsigned float f(void)", "unsigned"),
        ("int int f(void)", "int"),
        ("char short f(void)", "char"),
        ("long float f(void)", "long"),
        ("void int f(void)", "void"),
        ("double float f(void)", "double"),
    ] {
        let e = parse_err(src);
        assert_eq!(e.offset, src.find(at).unwrap(), "{src}: {e}");
        assert!(
            e.message.contains("invalid type")
                || e.message.contains("both 'signed' and 'unsigned'"),
            "{src}: {e}"
        );
    }
    assert_err(
        "struct s { int x; }; int struct s f(void)",
        "cannot combine",
        "struct s f",
    );
}

// ----- enums --------------------------------------------------------------

#[test]
fn enums() {
    // gcc: unsigned int when no enumerator is negative, int otherwise.
    let s = sig("enum color { RED, GREEN, BLUE }; enum color f(enum color)");
    assert_eq!(s.ret, sc(Scalar::U32));
    let s = sig("enum sign { NEG = -1, ZERO, POS }; enum sign f(void)");
    assert_eq!(s.ret, sc(Scalar::I32));
    // Values > INT_MAX but within unsigned int: unsigned int.
    assert_eq!(
        sig("enum big { B = 0x80000000 }; enum big f(void)").ret,
        sc(Scalar::U32)
    );
    // Wider values: gcc picks a 64-bit type.
    assert_eq!(
        sig("enum huge { H = 0x100000000 }; enum huge f(void)").ret,
        sc(Scalar::U64)
    );
    assert_eq!(
        sig("enum neg { N = -1, H = 0x80000000 }; enum neg f(void)").ret,
        sc(Scalar::I64)
    );
    // packed: the smallest type (gcc -fshort-enums semantics).
    assert_eq!(
        sig("enum __attribute__((packed)) small { A, B = 200 }; enum small f(void)").ret,
        sc(Scalar::U8)
    );
    assert_eq!(
        sig("enum small { A = -1, B = 200 } __attribute__((packed)); enum small f(void)").ret,
        sc(Scalar::I16)
    );
}

#[test]
fn enum_values_in_constant_expressions() {
    // Enumerators, +, -, <<, |, parentheses, and earlier enumerators.
    let src = "enum flags { A = 1 << 0, B = 1 << 1, C = A | B, D = (C + 1) * 2, E, F = E - 10, \
               G = ~0 & 0xff, H = 'a', I = sizeof(long double), J = _Alignof(double) };
               struct s { char data[D]; char e[E]; char g[G]; char h[H]; int i[I]; char j[J]; };
               struct s f(void)";
    let s = sig(src);
    let r = rec(&s.ret);
    let lens: Vec<u32> = r
        .fields
        .iter()
        .map(|f| match &f.ty {
            Type::Array(_, n) => *n,
            t => panic!("{t:?}"),
        })
        .collect();
    // D = (3 + 1) * 2 = 8, E = 9, G = 255, H = 97, I = 16, J = 8.
    assert_eq!(lens, [8, 9, 255, 97, 16, 8]);
    // F = -1 made the enum signed.
    assert_eq!(
        sig("enum flags { A = 1, E = 9, F = E - 10 }; enum flags f(void)").ret,
        sc(Scalar::I32)
    );
    // Registered enumerators are visible to later definitions.
    let mut d = Declarations::new(Abi::SysV64);
    d.define("enum { N = 4 };").unwrap();
    assert_eq!(d.parse_type("int[N * 2]").unwrap().size(), 32);
}

#[test]
fn constant_expression_errors() {
    assert_err(
        "struct s { char a[1 / 0]; }; void f(void)",
        "division by zero",
        "/ 0",
    );
    assert_err("struct s { char a[-1]; }; void f(void)", "negative", "-1");
    assert_err(
        "struct s { char a[X]; }; void f(void)",
        "'X' is not a constant",
        "X]",
    );
    assert_err(
        "struct s { char a[1.5]; }; void f(void)",
        "integer constant",
        "1.5",
    );
    assert_err(
        "enum e { A = 99999999999999999999999 }; void f(void)",
        "too large",
        "9999",
    );
    assert_err("enum e { A = 1 << 99 }; void f(void)", "out of range", "<<");
}

// ----- structs and unions -------------------------------------------------

#[test]
fn struct_layouts() {
    // struct { char c; int i; char d; }: 0, 4, 8; size 12.
    let t = ty("struct { char c; int i; char d; }");
    assert_eq!(offsets(&t), [0, 4, 8]);
    assert_eq!((t.size(), t.align()), (12, 4));
    // struct { char c; double d; short s; }: 0, 8, 16; size 24.
    let t = ty("struct { char c; double d; short s; }");
    assert_eq!(offsets(&t), [0, 8, 16]);
    assert_eq!(t.size(), 24);
    // __int128 and long double are 16-aligned on x86-64.
    let t = ty("struct { char c; __int128 i; }");
    assert_eq!((offsets(&t), t.size(), t.align()), (vec![0, 16], 32, 16));
    // Several declarators in one member declaration.
    let t = ty("struct { int a, *b, c[3]; }");
    assert_eq!(offsets(&t), [0, 8, 16]);
    assert_eq!(rec(&t).fields[1].ty, ptr("int"));
    assert_eq!(t.size(), 32);
    // Empty struct: size 0 (gcc C extension).
    assert_eq!(ty("struct {}").size(), 0);
}

#[test]
fn unions() {
    let t = ty("union { char c; double d; int i[3]; }");
    assert_eq!(offsets(&t), [0, 0, 0]);
    assert_eq!((t.size(), t.align()), (16, 8));
    assert_eq!(rec(&t).kind, RecordKind::Union);
    let s = sig("union u { float f; int i; }; float f(union u, float)");
    assert_eq!(s.args[0].size(), 4);
}

#[test]
fn nested_and_anonymous_members() {
    let s = sig(
        "struct outer { char tag; struct inner { short a; double b; } in; int last; }; \
         struct inner g(struct outer *)",
    );
    // struct inner is visible after its nested definition.
    assert_eq!((s.ret.size(), offsets(&s.ret)), (16, vec![0, 8]));
    let d = {
        let mut d = Declarations::new(Abi::SysV64);
        d.define("struct outer { char tag; struct inner { short a; double b; } in; int last; };")
            .unwrap();
        d
    };
    let outer = d.parse_type("struct outer").unwrap();
    assert_eq!(offsets(&outer), [0, 8, 24]);
    assert_eq!(outer.size(), 32);
    // Anonymous struct/union members have no name.
    let t = ty("struct { int kind; union { int i; double d; }; struct { char a, b; }; }");
    let r = rec(&t);
    assert_eq!(r.fields.len(), 3);
    assert_eq!(r.fields[1].name, None);
    assert_eq!(offsets(&t), [0, 8, 16]);
    assert_eq!(t.size(), 24);
    // A tagged struct defined inside without a declarator adds no member.
    let t = ty("struct { struct tagged { int x; }; int y; }");
    assert_eq!(rec(&t).fields.len(), 1);
    // Duplicate names, also through anonymous members.
    assert_err(
        "struct s { int a; union { int a; }; }; void f(void)",
        "duplicate member 'a'",
        "union {",
    );
    assert_err(
        "struct s { int a; char a; }; void f(void)",
        "duplicate member 'a'",
        "a; }",
    );
}

#[test]
fn array_members() {
    let t = ty("struct { char c; int m[2][3]; short s[5]; }");
    assert_eq!(offsets(&t), [0, 4, 28]);
    assert_eq!(t.size(), 40);
    match &rec(&t).fields[1].ty {
        Type::Array(inner, 2) => assert_eq!(**inner, Type::Array(sc(Scalar::I32).into(), 3)),
        t => panic!("{t:?}"),
    }
    // Constant-expression sizes.
    let t = ty("struct { char buf[4 * 8 + (1 << 2) - 1]; }");
    assert_eq!(t.size(), 35);
    // Arrays of structs.
    let t = ty("struct { struct { char c; int i; } pts[3]; }");
    assert_eq!(t.size(), 24);
}

#[test]
fn flexible_array_member() {
    // struct { char c; int data[]; }: data at 4, size 4 (gcc).
    let t = ty("struct fam { char c; int data[]; }");
    assert_eq!(offsets(&t), [0, 4]);
    assert_eq!((t.size(), t.align()), (4, 4));
    let t = ty("struct { short n; double d[]; }");
    assert_eq!((offsets(&t), t.size()), (vec![0, 8], 8));
    assert_err(
        "struct s { int data[]; int n; }; void f(void)",
        "flexible array member 'data' is not the last member",
        "data",
    );
    assert_err(
        "struct s { int data[]; }; void f(void)",
        "flexible array member 'data'",
        "data",
    );
    assert_err(
        "union u { int n; int data[]; }; void f(void)",
        "in a union",
        "data",
    );
    // Unsized arrays are an error outside parameters and last members.
    assert_err("typedef int arr[]; void f(void)", "unknown size", "arr");
}

#[test]
fn packed_and_aligned() {
    // packed before and after the body.
    for src in [
        "struct __attribute__((packed)) { char c; int i; }",
        "struct { char c; int i; } __attribute__((packed))",
        "struct __attribute__((__packed__)) p { char c; int i; }",
    ] {
        let t = ty(src);
        assert_eq!(
            (offsets(&t), t.size(), t.align()),
            (vec![0, 1], 5, 1),
            "{src}"
        );
        assert!(rec(&t).packed);
    }
    // aligned(N) on a record.
    let t = ty("struct __attribute__((aligned(16))) { int i; }");
    assert_eq!((t.size(), t.align()), (16, 16));
    let t = ty("struct { char c; } __attribute__((aligned(8)))");
    assert_eq!((t.size(), t.align()), (8, 8));
    // aligned without an argument: the biggest alignment, 16.
    let t = ty("struct { char c; } __attribute__((aligned))");
    assert_eq!((t.size(), t.align()), (16, 16));
    // aligned(N) on a member.
    let t = ty("struct { char c; int i __attribute__((aligned(16))); char d; }");
    assert_eq!(
        (offsets(&t), t.size(), t.align()),
        (vec![0, 16, 20], 32, 16)
    );
    let t = ty("struct { char c; __attribute__((aligned(8))) char d; }");
    assert_eq!((offsets(&t), t.size()), (vec![0, 8], 16));
    // _Alignas on a member.
    let t = ty("struct { char c; _Alignas(8) char d; _Alignas(double) char e; }");
    assert_eq!((offsets(&t), t.size()), (vec![0, 8, 16], 24));
    // packed record with an aligned member: the member keeps its alignment.
    let t = ty("struct __attribute__((packed)) { char c; int i __attribute__((aligned(4))); }");
    assert_eq!((offsets(&t), t.size()), (vec![0, 4], 8));
    // Both on the record.
    let t = ty("struct __attribute__((packed, aligned(4))) { char c; int i; }");
    assert_eq!((offsets(&t), t.size(), t.align()), (vec![0, 1], 8, 4));
    // Errors.
    assert_err(
        "struct s { char c; int i __attribute__((packed)); }; void f(void)",
        "attribute 'packed' on a member is not supported",
        "packed",
    );
    assert_err(
        "struct s { int i; } __attribute__((aligned(3))); void f(void)",
        "not a power of two",
        "aligned",
    );
    assert_err(
        "struct s { int i; } __attribute__((vector_size(16))); void f(void)",
        "attribute 'vector_size' is not supported",
        "vector_size",
    );
    assert_err(
        "struct s { int i; } __attribute__((frobnicate)); void f(void)",
        "unknown attribute 'frobnicate'",
        "frobnicate",
    );
    // Harmless function attributes are ignored.
    let s = sig("__attribute__((noreturn)) void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), nonnull(1)))");
    assert_eq!((s.name.as_deref(), s.variadic), (Some("die"), true));
    let s = sig(
        "extern int puts(const char *__s) __asm__(\"\" \"puts\") __attribute__((__nonnull__(1)));",
    );
    assert_eq!(s.args.len(), 1);
}

#[test]
fn forward_references() {
    let s = sig("struct node { struct node *next; int value; }; int length(const struct node *)");
    assert_eq!(s.args, vec![ptr("struct node")]);
    let mut d = Declarations::new(Abi::SysV64);
    d.define("struct node { struct node *next, *prev; int value; };")
        .unwrap();
    let n = d.parse_type("struct node").unwrap();
    assert_eq!((offsets(&n), n.size()), (vec![0, 8, 16], 24));
    // Mutual references through pointers.
    let s = sig(
        "struct a { struct b *b; }; struct b { struct a *a; int x; }; int f(struct a, struct b)",
    );
    assert_eq!((s.args[0].size(), s.args[1].size()), (8, 16));
    // A pointer to a never-defined struct is fine; by value it is not.
    assert_eq!(
        sig("void f(struct opaque *)").args,
        vec![ptr("struct opaque")]
    );
    assert_err(
        "void f(struct opaque)",
        "incomplete type 'struct opaque'",
        "struct",
    );
    assert_err(
        "struct opaque f(void)",
        "incomplete type 'struct opaque'",
        "struct",
    );
    assert_err(
        "struct s { struct s self; }; void f(void)",
        "incomplete type 'struct s'",
        "self",
    );
    // A typedef of a struct declared before its definition.
    let s =
        sig("typedef struct list list_t; struct list { list_t *next; long v; }; long sum(list_t)");
    assert_eq!(s.args[0].size(), 16);
    // Tag kinds must match.
    assert_err(
        "struct s { int x; }; void f(union s *)",
        "'union s' was defined as 'struct s'",
        "s *",
    );
}

#[test]
fn bit_fields_are_rejected() {
    let src = "struct flags { unsigned a : 1; unsigned b : 3; }; void f(struct flags)";
    let e = parse_err(src);
    assert_eq!(e.message, "bit-fields are not supported");
    assert_eq!(e.offset, src.find(':').unwrap());
}

// ----- errors -------------------------------------------------------------

#[test]
fn unknown_names() {
    let e = parse_err("int f(strct x)");
    assert_eq!(e.to_string(), "unknown type name 'strct' at 6");
    assert_err("uint f(void)", "unknown type name 'uint'", "uint");
    assert_err("int f(int, foo_t *)", "unknown type name 'foo_t'", "foo_t");
    assert_err("int f(const x)", "unknown type name 'x'", "x");
}

#[test]
fn syntax_errors_say_what_was_expected() {
    let e = parse_err("int f(int");
    assert_eq!(e.offset, 9);
    assert!(e.message.contains("end of input"), "{e}");
    assert_err(
        "int f(int x y)",
        "expected ',' or ')' in the parameter list, found 'y'",
        "y",
    );
    assert_err("", "expected a function declaration", "");
    let e = parse_err("struct s { int x; };");
    assert_eq!(
        e.to_string(),
        "expected a function declaration, found end of input at 20"
    );
    assert_err("int x;", "'x' is not a function", "x");
    assert_err("int f(void) int g(void)", "expected end of input", "int g");
    assert_err("int f(void); int g(void)", "expected end of input", "int g");
    assert_err(
        "int f(void), g(void)",
        "expected one function declaration",
        ",",
    );
    assert_err(
        "int f(void) { return 0; }",
        "function bodies are not supported",
        "{",
    );
    assert_err("struct { int x; ", "unterminated 'struct' body", "{");
    assert_err(
        "struct s { int x }; void f(void)",
        "expected ';' after a member declaration",
        "}",
    );
    assert_err("int f(int @)", "unexpected character '@'", "@");
    assert_err("#include <stdio.h>\nint f(void)", "preprocessor", "#");
    assert_err("int f(int /* oops)", "unterminated comment", "/*");
    assert_err(
        "struct { int x; } y; void f(void)",
        "'y' is not a function",
        "y;",
    );
    assert_err(
        "int f(void, int)",
        "'void' must be the only parameter",
        "void",
    );
    assert_err(
        "int f(int, void)",
        "'void' must be the only parameter",
        "void)",
    );
    assert_err("int f(void x)", "parameter cannot have type void", "void");
    assert_err("int f(int)[3]", "function returning an array", "[");
    assert_err(
        "int f(int)(void)",
        "function returning a function",
        "(void)",
    );
    assert_err(
        "struct s { void v; }; void f(void)",
        "member 'v' has type void",
        "v;",
    );
    assert_err(
        "struct s { int fn(void); }; void f(void)",
        "function type",
        "fn",
    );
    assert_err("void f(void a[3])", "array of void", "[");
    assert_err(
        "typedef int t; typedef long t; void f(void)",
        "conflicting types",
        "t; void",
    );
    // Comments are allowed.
    assert_eq!(sig("/* c */ int // line\n f(int /* x */)").args.len(), 1);
}

#[test]
fn huge_and_deep_inputs_are_errors_not_panics() {
    // 2^40-byte array.
    assert_err(
        "struct s { char big[1ull << 40]; }; void f(void)",
        "array size 1099511627776 is too large",
        "1ull",
    );
    assert!(parse_signature(
        "struct s { char a[1 << 20][1 << 20]; }; void f(void)",
        Abi::SysV64
    )
    .is_err());
    // Sizes that fit u32 elementwise but overflow in a struct.
    assert!(parse_signature(
        "struct s { char a[1 << 29]; char b[1 << 29]; char c[1 << 29]; }; void f(struct s)",
        Abi::SysV64
    )
    .is_err());
    // Deep nesting of every recursive construct.
    let n = 100_000;
    let cases = [
        format!("int f({}", "(".repeat(n)),
        format!("int {}f{}(void)", "(".repeat(n), ")".repeat(n)),
        format!(
            "struct s {{ char a[{}1{}]; }}; void f(void)",
            "(".repeat(n),
            ")".repeat(n)
        ),
        format!("struct s {{ char a[{}1]; }}; void f(void)", "-".repeat(n)),
        format!("int f({}int x{})", "struct { ".repeat(n), "; } s".repeat(n)),
        format!("int f(int {}x)", "*".repeat(n)),
        format!("void f(int x{})", "[1]".repeat(n)),
        format!("void f({})", "void (*)(".repeat(n)),
        format!("int f(int, ...{})", ", int".repeat(1000)),
    ];
    for src in &cases {
        let r = parse_signature(src, Abi::SysV64);
        if src.starts_with("int f(int, ...") {
            assert_eq!(r.unwrap().args.len(), 1001);
        } else {
            assert!(r.is_err(), "{}", &src[..40]);
        }
    }
    let e = parse_signature(&cases[1], Abi::SysV64).unwrap_err();
    assert!(e.message.contains("nested too deeply"), "{e}");
    // Type nesting through typedef chains is limited too.
    let mut src = String::from("typedef struct { int x; } t0; ");
    for i in 1..200 {
        src.push_str(&format!("typedef struct {{ t{} a; }} t{i}; ", i - 1));
    }
    src.push_str("void f(t199 *)");
    let e = parse_signature(&src, Abi::SysV64).unwrap_err();
    assert!(e.message.contains("nested more than"), "{e}");
    // Anonymous records nested 24 deep, each holding two of the next: the
    // full spelling would be millions of characters; parsing stays quick.
    let src = format!(
        "typedef {} int x; {} big[2];",
        "struct { ".repeat(24),
        "} a, b;".repeat(23) + " }"
    );
    let start = std::time::Instant::now();
    let mut d = Declarations::new(Abi::SysV64);
    d.define(&src).unwrap();
    assert_eq!(d.parse_type("big").unwrap().size(), 4 << 24);
    let s = d.parse_signature("void f(big *, big)").unwrap();
    assert_eq!(s.args.len(), 2);
    assert!(start.elapsed().as_secs() < 2, "{:?}", start.elapsed());
    // Nesting within the limits works.
    let src = format!("int f(int {}x{})", "(".repeat(20), ")".repeat(20));
    assert_eq!(sig(&src).args, vec![sc(Scalar::I32)]);
}

#[test]
fn non_ascii_and_odd_bytes_do_not_panic() {
    for src in [
        "int f(int é)",
        "int f(\"unterminated",
        "int f('x",
        "int f(int) __asm__(",
        "struct s { char a['\\q']; }; void f(void)",
        "int f(0x)",
        "enum { A = 0b }; void f(void)",
        "int f(int a[0x1p3])",
        "\u{0}",
        "int f(int, ..., ...)",
        "__attribute__((aligned(0))) struct s { int x; }; void f(void)",
        "struct s { int x; } __attribute__((aligned(1 << 40))); void f(void)",
        "struct s { _Alignas(3) int x; }; void f(void)",
    ] {
        assert!(parse_signature(src, Abi::SysV64).is_err(), "{src}");
    }
}

// ----- the registry -------------------------------------------------------

#[test]
fn registry_definitions_are_reused() {
    let mut d = Declarations::new(Abi::Win64);
    assert_eq!(d.abi(), Abi::Win64);
    d.define(
        "typedef struct point { long x, y; } point; \
         enum mode { READ = 1, WRITE = 2 }; \
         typedef int (*callback)(void *ctx, point p);",
    )
    .unwrap();
    d.define("").unwrap();
    d.define(";;").unwrap();
    d.define("union value { point p; double d; };").unwrap();
    // long is 32-bit on Win64.
    let p = d.parse_type("struct point").unwrap();
    assert_eq!((p.size(), offsets(&p)), (8, vec![0, 4]));
    assert_eq!(d.parse_type("point").unwrap(), p);
    assert_eq!(d.parse_type("union value").unwrap().size(), 8);
    assert_eq!(d.parse_type("enum mode").unwrap(), sc(Scalar::U32));
    assert_eq!(d.parse_type("unsigned long").unwrap(), sc(Scalar::U32));
    assert_eq!(d.parse_type("point *").unwrap(), ptr("point"));
    assert_eq!(d.parse_type("callback").unwrap().size(), 8);
    assert_eq!(d.parse_type("int[3]").unwrap().size(), 12);
    assert_eq!(d.parse_type("int (*)(void)").unwrap().size(), 8);
    let s = d
        .parse_signature("int run(callback cb, point p, enum mode m, int flags[READ + WRITE])")
        .unwrap();
    assert_eq!(s.args.len(), 4);
    assert_eq!(s.args[1], p);
    assert_eq!(s.abi, Abi::Win64);
    // Definitions inside parse_signature are local to that call.
    let s = d
        .parse_signature("struct local { char c; }; struct local f(point)")
        .unwrap();
    assert_eq!(s.ret.size(), 1);
    assert!(d.parse_type("struct local").is_err());
    // A failed define adds nothing.
    assert!(d
        .define("struct ok { int a; }; struct bad { strct x; };")
        .is_err());
    assert!(d.parse_type("struct ok").is_err());
    // Function declarations do not belong in define.
    let e = d.define("int f(void);").unwrap_err();
    assert!(e.message.contains("expected a definition"), "{e}");
    // Redefinition: identical is fine, different is an error.
    d.define("struct point { long x, y; };").unwrap();
    let e = d.define("struct point { int x; };").unwrap_err();
    assert!(e.message.contains("redefinition of 'struct point'"), "{e}");
    let e = d.define("enum other { READ = 5 };").unwrap_err();
    assert!(
        e.message.contains("redefinition of enumerator 'READ'"),
        "{e}"
    );
    // A struct declared through a registry pointer, defined later.
    d.define("struct later;").unwrap();
    d.define("typedef struct later later_t;").unwrap();
    assert!(d.parse_signature("void f(later_t)").is_err());
    d.define("struct later { double d; };").unwrap();
    assert_eq!(
        d.parse_signature("void f(later_t)").unwrap().args[0].size(),
        8
    );
}

#[test]
fn parse_type_errors() {
    let d = Declarations::new(Abi::SysV64);
    assert!(d
        .parse_type("int x")
        .unwrap_err()
        .message
        .contains("without a declarator name"));
    assert!(d
        .parse_type("int (void)")
        .unwrap_err()
        .message
        .contains("function type"));
    assert!(d
        .parse_type("struct nope")
        .unwrap_err()
        .message
        .contains("incomplete"));
    assert!(d.parse_type("int;").is_ok());
    assert!(d.parse_type("int int").is_err());
    assert!(d.parse_type("int, int").is_err());
}

#[test]
fn every_abi_parses_the_same_text() {
    let src = "typedef struct { char c; long l; long double ld; } s; s f(s, char, long, ...)";
    let sizes: Vec<(u32, u32)> = Abi::ALL
        .iter()
        .map(|&abi| {
            let s = sig_for(src, abi);
            assert_eq!(s.abi, abi);
            (s.ret.size(), s.ret.align())
        })
        .collect();
    // SysV: c@0 l@8 ld@16 (x87, 16-aligned) = 32; Win64: c l(4)@4 ld(8)@8 = 16;
    // AAPCS64: quad = 32; Apple: ld = double -> 24.
    assert_eq!(sizes, [(32, 16), (16, 8), (32, 16), (24, 8)]);
}

#[test]
fn array_typedef_parameters_decay() {
    let s = sig("typedef char name_t[16]; typedef double mat[3][3]; void f(name_t, mat m)");
    assert_eq!(s.args, vec![ptr("char"), ptr("double[3]")]);
    // As a member it stays an array.
    let mut d = Declarations::new(Abi::SysV64);
    d.define("typedef int pair[2]; struct s { char c; pair p; };")
        .unwrap();
    let t = d.parse_type("struct s").unwrap();
    assert_eq!((t.size(), offsets(&t)), (12, vec![0, 4]));
    assert_eq!(d.parse_type("pair").unwrap().size(), 8);
}

#[test]
fn va_list_per_abi() {
    // SysV: va_list is __va_list_tag[1] (24 bytes), a pointer as a parameter.
    assert_eq!(ty_for("va_list", Abi::SysV64).size(), 24);
    assert_eq!(
        sig_for("int vprintf(const char *, va_list)", Abi::SysV64).args[1],
        ptr("struct __va_list_tag")
    );
    // AAPCS64: a 32-byte struct passed by value.
    let t = sig_for("int vprintf(const char *, va_list)", Abi::Aapcs64).args[1].clone();
    assert_eq!(
        (t.size(), t.align(), offsets(&t)),
        (32, 8, vec![0, 8, 16, 24, 28])
    );
    // Win64 and Apple: char *.
    assert_eq!(
        sig_for("int vprintf(const char *, va_list)", Abi::Win64).args[1],
        ptr("char")
    );
    assert_eq!(
        sig_for(
            "int vprintf(const char *, __builtin_va_list)",
            Abi::AppleArm64
        )
        .args[1],
        ptr("char")
    );
}
