//! The raw, java-raw and Go-closure entry points of ffi.h, as stubs.
//!
//! They are exported (under libffi's symbol versions) so that programs
//! linked against `libffi.so.8` load and bind, but jitffi does not
//! implement them:
//! - functions returning `ffi_status` (`ffi_prep_raw_closure`,
//!   `ffi_prep_raw_closure_loc`, `ffi_prep_java_raw_closure`,
//!   `ffi_prep_java_raw_closure_loc`, `ffi_prep_go_closure`) return
//!   `FFI_BAD_ABI`;
//! - functions that cannot report failure (`ffi_raw_call`,
//!   `ffi_java_raw_call`, `ffi_ptrarray_to_raw`, `ffi_raw_to_ptrarray`,
//!   `ffi_java_ptrarray_to_raw`, `ffi_java_raw_to_ptrarray`, `ffi_raw_size`,
//!   `ffi_java_raw_size`, `ffi_call_go`) print
//!   `jitffi (libffi layer): NAME is not supported` and abort.

use std::ffi::c_void;

use super::{die, FfiCif, FfiStatus, FFI_BAD_ABI};

macro_rules! aborting {
    ($($name:ident ( $($arg:ident : $ty:ty),* ) $(-> $ret:ty)?;)*) => {$(
        /// Not supported: prints a message and aborts (see the module docs).
        ///
        /// # Safety
        ///
        /// Never returns; its arguments are not read.
        pub unsafe extern "C" fn $name($(_: $ty),*) $(-> $ret)? {
            die(concat!(stringify!($name), " is not supported"))
        }
    )*};
}

macro_rules! bad_abi {
    ($($name:ident ( $($arg:ident : $ty:ty),* );)*) => {$(
        /// Not supported: returns `FFI_BAD_ABI` (see the module docs).
        ///
        /// # Safety
        ///
        /// Its arguments are not read.
        pub unsafe extern "C" fn $name($(_: $ty),*) -> FfiStatus {
            FFI_BAD_ABI
        }
    )*};
}

type P = *mut c_void;
type Cif = *mut FfiCif;

aborting! {
    ffi_raw_call(cif: Cif, f: P, rvalue: P, avalue: P);
    ffi_java_raw_call(cif: Cif, f: P, rvalue: P, avalue: P);
    ffi_ptrarray_to_raw(cif: Cif, args: P, raw: P);
    ffi_raw_to_ptrarray(cif: Cif, raw: P, args: P);
    ffi_java_ptrarray_to_raw(cif: Cif, args: P, raw: P);
    ffi_java_raw_to_ptrarray(cif: Cif, raw: P, args: P);
    ffi_raw_size(cif: Cif) -> usize;
    ffi_java_raw_size(cif: Cif) -> usize;
    ffi_call_go(cif: Cif, f: P, rvalue: P, avalue: P, closure: P);
}

bad_abi! {
    ffi_prep_raw_closure(closure: P, cif: Cif, fun: P, user_data: P);
    ffi_prep_raw_closure_loc(closure: P, cif: Cif, fun: P, user_data: P, codeloc: P);
    ffi_prep_java_raw_closure(closure: P, cif: Cif, fun: P, user_data: P);
    ffi_prep_java_raw_closure_loc(closure: P, cif: Cif, fun: P, user_data: P, codeloc: P);
    ffi_prep_go_closure(closure: P, cif: Cif, fun: P);
}
