//! The C API of `include/jitffi.h`: a stable contract for C runtimes.
//!
//! Every entry point catches panics (nothing unwinds into C), checks the
//! pointers it can check, and reports failures as a nonzero code with the
//! message kept per thread for `jitffi_last_error`.

use std::cell::RefCell;
use std::ffi::{c_char, c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::call::{ArgMode, Trampoline};
use crate::types::{Abi, Signature};
use crate::Error;

/// Opaque `jitffi_sig`: the signature, and its closure type once a closure
/// has been made from it (so later closures skip the body lookup).
pub struct JitffiSig(Signature, std::sync::OnceLock<crate::closure::ClosureType>);

/// Opaque `jitffi_call`.
pub struct JitffiCall(Trampoline);

/// `jitffi_abi`.
pub type JitffiAbi = c_int;

const OK: c_int = 0;
const ERR_PARSE: c_int = 1;
const ERR_UNSUPPORTED: c_int = 2;
const ERR_INVALID: c_int = 3;
const ERR_EXEC: c_int = 4;
const ERR_ABI: c_int = 5;
const ERR_INTERNAL: c_int = 6;

thread_local! {
    static LAST_ERROR: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

fn set_error(msg: &str) {
    LAST_ERROR.with(|e| {
        let mut e = e.borrow_mut();
        e.clear();
        e.extend_from_slice(msg.as_bytes());
    });
}

fn fail(code: c_int, msg: impl AsRef<str>) -> c_int {
    set_error(msg.as_ref());
    code
}

fn error_code(e: &Error) -> c_int {
    match e {
        Error::Parse(_) => ERR_PARSE,
        Error::Unsupported(_) => ERR_UNSUPPORTED,
        Error::Exec(_) => ERR_EXEC,
        Error::NotExecutable(_) => ERR_ABI,
        Error::Argument(_) | Error::Library { .. } | Error::Symbol { .. } => ERR_INVALID,
        Error::Plan(_) | Error::Emit(_) => ERR_INTERNAL,
    }
}

/// Runs `f`, turning a panic into `ERR_INTERNAL` with its message.
fn guard(name: &str, f: impl FnOnce() -> c_int) -> c_int {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            fail(ERR_INTERNAL, format!("{name}: internal error: {what}"))
        }
    }
}

fn abi_from_c(abi: JitffiAbi) -> Result<Abi, String> {
    match abi {
        0 => Abi::host().ok_or_else(|| "this host has no default ABI".to_string()),
        1 => Ok(Abi::SysV64),
        2 => Ok(Abi::Win64),
        3 => Ok(Abi::Aapcs64),
        4 => Ok(Abi::AppleArm64),
        n => Err(format!("unknown jitffi_abi value {n}")),
    }
}

/// `int jitffi_sig_parse(const char *decl, size_t len, jitffi_abi abi, jitffi_sig **out)`
///
/// # Safety
/// `decl` must point at `len` readable bytes; `out` must be NULL or point at
/// writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn jitffi_sig_parse(
    decl: *const c_char,
    len: usize,
    abi: JitffiAbi,
    out: *mut *mut JitffiSig,
) -> c_int {
    guard("jitffi_sig_parse", || {
        if out.is_null() {
            return fail(ERR_INVALID, "jitffi_sig_parse: out is NULL");
        }
        // SAFETY: out is non-null and writable per the contract.
        unsafe { *out = std::ptr::null_mut() };
        if decl.is_null() {
            return fail(ERR_INVALID, "jitffi_sig_parse: decl is NULL");
        }
        let abi = match abi_from_c(abi) {
            Ok(a) => a,
            Err(m) => return fail(ERR_INVALID, format!("jitffi_sig_parse: {m}")),
        };
        // SAFETY: decl points at len readable bytes per the contract.
        let bytes = unsafe { std::slice::from_raw_parts(decl.cast::<u8>(), len) };
        let text = match std::str::from_utf8(bytes) {
            Ok(t) => t,
            Err(e) => {
                return fail(
                    ERR_PARSE,
                    format!("declaration is not UTF-8 at {}", e.valid_up_to()),
                )
            }
        };
        match crate::cdecl::parse_signature(text, abi) {
            Ok(sig) => {
                // SAFETY: out is non-null and writable.
                unsafe {
                    *out = Box::into_raw(Box::new(JitffiSig(sig, std::sync::OnceLock::new())))
                };
                OK
            }
            Err(e) => fail(ERR_PARSE, e.to_string()),
        }
    })
}

/// `void jitffi_sig_free(jitffi_sig *sig)`
///
/// # Safety
/// `sig` must be NULL or a pointer from `jitffi_sig_parse` not yet freed.
#[no_mangle]
pub unsafe extern "C" fn jitffi_sig_free(sig: *mut JitffiSig) {
    if !sig.is_null() {
        // SAFETY: sig came from Box::into_raw in jitffi_sig_parse.
        drop(unsafe { Box::from_raw(sig) });
    }
}

/// `size_t jitffi_sig_nargs(const jitffi_sig *sig)`: 0 for NULL.
///
/// # Safety
/// `sig` must be NULL or a live signature.
#[no_mangle]
pub unsafe extern "C" fn jitffi_sig_nargs(sig: *const JitffiSig) -> usize {
    // SAFETY: sig is NULL or live per the contract.
    unsafe { sig.as_ref() }.map_or(0, |s| s.0.args.len())
}

/// `size_t jitffi_sig_ret_size(const jitffi_sig *sig)`: 0 for NULL.
///
/// # Safety
/// `sig` must be NULL or a live signature.
#[no_mangle]
pub unsafe extern "C" fn jitffi_sig_ret_size(sig: *const JitffiSig) -> usize {
    // SAFETY: sig is NULL or live per the contract.
    unsafe { sig.as_ref() }.map_or(0, |s| s.0.ret_buffer_size())
}

/// `int jitffi_call_compile(const jitffi_sig *sig, const void *target, jitffi_call **out)`
///
/// # Safety
/// `sig` must be NULL or live; `out` NULL or writable; `target` NULL or a
/// function with the signature's type.
#[no_mangle]
pub unsafe extern "C" fn jitffi_call_compile(
    sig: *const JitffiSig,
    target: *const c_void,
    out: *mut *mut JitffiCall,
) -> c_int {
    guard("jitffi_call_compile", || {
        if out.is_null() {
            return fail(ERR_INVALID, "jitffi_call_compile: out is NULL");
        }
        // SAFETY: out is non-null and writable.
        unsafe { *out = std::ptr::null_mut() };
        // SAFETY: sig is NULL or live.
        let Some(sig) = (unsafe { sig.as_ref() }) else {
            return fail(ERR_INVALID, "jitffi_call_compile: sig is NULL");
        };
        let bound = (!target.is_null()).then_some(target);
        match Trampoline::compile(&sig.0, ArgMode::Pointers, bound) {
            Ok(t) => {
                // SAFETY: out is non-null and writable.
                unsafe { *out = Box::into_raw(Box::new(JitffiCall(t))) };
                OK
            }
            Err(e) => fail(error_code(&e), e.to_string()),
        }
    })
}

/// `void jitffi_call_free(jitffi_call *call)`
///
/// # Safety
/// `call` must be NULL or a pointer from `jitffi_call_compile` not yet freed,
/// and no thread may still be running its code.
#[no_mangle]
pub unsafe extern "C" fn jitffi_call_free(call: *mut JitffiCall) {
    if !call.is_null() {
        // SAFETY: call came from Box::into_raw in jitffi_call_compile.
        drop(unsafe { Box::from_raw(call) });
    }
}

/// `void jitffi_call_invoke(const jitffi_call *call, const void *target, void *const *args, void *ret)`
///
/// No checks beyond NULL `call` (which is ignored with an error message):
/// this is the hot path.
///
/// # Safety
/// `call` must be live; for an unbound call `target` must be a function of
/// the signature's type; `args` must hold one valid pointer per argument;
/// `ret` must hold `jitffi_sig_ret_size` bytes.
#[no_mangle]
pub unsafe extern "C" fn jitffi_call_invoke(
    call: *const JitffiCall,
    target: *const c_void,
    args: *const *mut c_void,
    ret: *mut c_void,
) {
    // SAFETY: call is NULL or live.
    match unsafe { call.as_ref() } {
        // SAFETY: the caller upholds the trampoline's contract.
        Some(c) => unsafe { c.0.call_raw(target, args as *const c_void, ret) },
        None => set_error("jitffi_call_invoke: call is NULL"),
    }
}

/// `jitffi_entry jitffi_call_entry(const jitffi_call *call)`: NULL for NULL.
///
/// # Safety
/// `call` must be NULL or live; the entry is valid while `call` is.
#[no_mangle]
pub unsafe extern "C" fn jitffi_call_entry(
    call: *const JitffiCall,
) -> Option<unsafe extern "C" fn(*const c_void, *const c_void, *mut c_void)> {
    // SAFETY: call is NULL or live.
    unsafe { call.as_ref() }.map(|c| c.0.entry())
}

/// `size_t jitffi_last_error(char *buf, size_t cap)`
///
/// # Safety
/// `buf` must be NULL (with any `cap`) or point at `cap` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn jitffi_last_error(buf: *mut c_char, cap: usize) -> usize {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        if !buf.is_null() && cap > 0 {
            let n = e.len().min(cap - 1);
            // SAFETY: buf has cap >= n + 1 writable bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(e.as_ptr(), buf.cast::<u8>(), n);
                *buf.add(n) = 0;
            }
        }
        e.len()
    })
}

/// Opaque `jitffi_closure`: owns the closure, which is freed on drop.
pub struct JitffiClosure {
    _closure: crate::closure::Closure,
}

/// `int jitffi_closure_new(const jitffi_sig *sig, jitffi_handler handler, void *ctx, jitffi_closure **out, void **code)`
///
/// # Safety
/// `sig` must be NULL or live; `out` and `code` NULL or writable; `handler`
/// must be a function of the `jitffi_handler` type, and `ctx` must be valid
/// for it for as long as the closure lives.
#[no_mangle]
pub unsafe extern "C" fn jitffi_closure_new(
    sig: *const JitffiSig,
    handler: Option<crate::closure::RawHandler>,
    ctx: *mut c_void,
    out: *mut *mut JitffiClosure,
    code: *mut *mut c_void,
) -> c_int {
    guard("jitffi_closure_new", || {
        if out.is_null() || code.is_null() {
            return fail(ERR_INVALID, "jitffi_closure_new: out or code is NULL");
        }
        // SAFETY: out and code are non-null and writable per the contract.
        unsafe {
            *out = std::ptr::null_mut();
            *code = std::ptr::null_mut();
        }
        // SAFETY: sig is NULL or live.
        let Some(sig) = (unsafe { sig.as_ref() }) else {
            return fail(ERR_INVALID, "jitffi_closure_new: sig is NULL");
        };
        let Some(handler) = handler else {
            return fail(ERR_INVALID, "jitffi_closure_new: handler is NULL");
        };
        let ty = match sig.1.get() {
            Some(t) => *t,
            None => match crate::closure::Closure::prepare(&sig.0) {
                Ok(t) => *sig.1.get_or_init(|| t),
                Err(e) => return fail(error_code(&e), e.to_string()),
            },
        };
        // SAFETY: the caller keeps ctx valid for the handler while the
        // closure lives (the contract above).
        match unsafe { ty.create_raw(handler, ctx) } {
            Ok(c) => {
                let p = c.code_ptr() as *mut c_void;
                // SAFETY: out and code are non-null and writable.
                unsafe {
                    *out = Box::into_raw(Box::new(JitffiClosure { _closure: c }));
                    *code = p;
                }
                OK
            }
            Err(e) => fail(error_code(&e), e.to_string()),
        }
    })
}

/// `void jitffi_closure_free(jitffi_closure *closure)`
///
/// # Safety
/// `closure` must be NULL or a pointer from `jitffi_closure_new` not yet
/// freed; after this, calling its code pointer runs the freed-closure trap.
#[no_mangle]
pub unsafe extern "C" fn jitffi_closure_free(closure: *mut JitffiClosure) {
    if !closure.is_null() {
        // SAFETY: closure came from Box::into_raw in jitffi_closure_new.
        drop(unsafe { Box::from_raw(closure) });
    }
}
