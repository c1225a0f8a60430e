//! The exported C names of the libffi layer.
//!
//! rustc's own version script for the cdylib lists every `#[no_mangle]`
//! symbol in an anonymous (unversioned) node, which would win over libffi's
//! versions. So the C names are defined in assembly instead, where rustc
//! does not see them, and `libffi.map` (passed by build.rs when the feature
//! is on) gives each its libffi version node; the loader then binds a
//! program's `ffi_call@LIBFFI_BASE_8.0` here. In executables and in the
//! rlib they are ordinary global symbols.
//!
//! - Functions: a one-instruction thunk, a direct jump to the Rust item.
//!   (An alias with `.set` would be undefined whenever rustc places the
//!   item in another codegen unit than this assembly.)
//! - The `ffi_type_*` globals: data defined right here, with the size,
//!   alignment and type code of libffi's `types.c` for LP64 hosts
//!   (`long double`: 16 bytes, 16-aligned on x86-64 and AArch64 Linux).
//!   They are writable, as ffi.h declares them non-const.

use super::closure::*;
use super::raw::*;
use super::*;

#[cfg(target_arch = "x86_64")]
macro_rules! jump {
    () => {
        "jmp {0}"
    };
}
#[cfg(target_arch = "aarch64")]
macro_rules! jump {
    () => {
        "b {0}"
    };
}

macro_rules! export_fn {
    ($($name:ident => $item:path;)*) => {$(
        std::arch::global_asm!(
            concat!(".pushsection .text.jitffi_libffi_", stringify!($name), ",\"ax\",%progbits"),
            ".balign 16",
            concat!(".globl ", stringify!($name)),
            concat!(".type ", stringify!($name), ", %function"),
            concat!(stringify!($name), ":"),
            jump!(),
            concat!(".size ", stringify!($name), ", . - ", stringify!($name)),
            ".popsection",
            sym $item,
        );
    )*};
}

export_fn! {
    ffi_prep_cif => ffi_prep_cif;
    ffi_prep_cif_var => ffi_prep_cif_var;
    ffi_call => ffi_call;
    ffi_get_struct_offsets => ffi_get_struct_offsets;
    ffi_closure_alloc => ffi_closure_alloc;
    ffi_closure_free => ffi_closure_free;
    ffi_prep_closure => ffi_prep_closure;
    ffi_prep_closure_loc => ffi_prep_closure_loc;
    ffi_tramp_is_present => ffi_tramp_is_present;
    ffi_raw_call => ffi_raw_call;
    ffi_java_raw_call => ffi_java_raw_call;
    ffi_ptrarray_to_raw => ffi_ptrarray_to_raw;
    ffi_raw_to_ptrarray => ffi_raw_to_ptrarray;
    ffi_java_ptrarray_to_raw => ffi_java_ptrarray_to_raw;
    ffi_java_raw_to_ptrarray => ffi_java_raw_to_ptrarray;
    ffi_raw_size => ffi_raw_size;
    ffi_java_raw_size => ffi_java_raw_size;
    ffi_prep_raw_closure => ffi_prep_raw_closure;
    ffi_prep_raw_closure_loc => ffi_prep_raw_closure_loc;
    ffi_prep_java_raw_closure => ffi_prep_java_raw_closure;
    ffi_prep_java_raw_closure_loc => ffi_prep_java_raw_closure_loc;
    ffi_call_go => ffi_call_go;
    ffi_prep_go_closure => ffi_prep_go_closure;
}

/// One `ffi_type` object: `{ size_t size; unsigned short alignment;
/// unsigned short type; ffi_type **elements; }` (24 bytes).
macro_rules! ffi_type {
    ($name:literal, $size:literal, $align:literal, $code:literal, $elems:literal) => {
        concat!(
            ".balign 8\n",
            ".globl ",
            $name,
            "\n",
            ".type ",
            $name,
            ", %object\n",
            ".size ",
            $name,
            ", 24\n",
            $name,
            ":\n",
            ".quad ",
            $size,
            "\n",
            ".short ",
            $align,
            ", ",
            $code,
            "\n",
            ".long 0\n",
            ".quad ",
            $elems,
            "\n"
        )
    };
}

// Type codes: ffi.h FFI_TYPE_*.
std::arch::global_asm!(
    ".pushsection .data.jitffi_libffi_types,\"aw\",%progbits",
    ffi_type!("ffi_type_void", 1, 1, 0, 0),
    ffi_type!("ffi_type_uint8", 1, 1, 5, 0),
    ffi_type!("ffi_type_sint8", 1, 1, 6, 0),
    ffi_type!("ffi_type_uint16", 2, 2, 7, 0),
    ffi_type!("ffi_type_sint16", 2, 2, 8, 0),
    ffi_type!("ffi_type_uint32", 4, 4, 9, 0),
    ffi_type!("ffi_type_sint32", 4, 4, 10, 0),
    ffi_type!("ffi_type_uint64", 8, 8, 11, 0),
    ffi_type!("ffi_type_sint64", 8, 8, 12, 0),
    ffi_type!("ffi_type_float", 4, 4, 2, 0),
    ffi_type!("ffi_type_double", 8, 8, 3, 0),
    ffi_type!("ffi_type_pointer", 8, 8, 14, 0),
    ffi_type!("ffi_type_longdouble", 16, 16, 4, 0),
    ffi_type!("ffi_type_complex_float", 8, 4, 15, ".Ljitffi_cf_elems"),
    ffi_type!("ffi_type_complex_double", 16, 8, 15, ".Ljitffi_cd_elems"),
    ffi_type!(
        "ffi_type_complex_longdouble",
        32,
        16,
        15,
        ".Ljitffi_cld_elems"
    ),
    ".Ljitffi_cf_elems: .quad ffi_type_float, 0",
    ".Ljitffi_cd_elems: .quad ffi_type_double, 0",
    ".Ljitffi_cld_elems: .quad ffi_type_longdouble, 0",
    ".popsection",
);
