//! libffi closures on jitffi's closure stubs.
//!
//! `ffi_closure_alloc(size, &code)` must hand out the executable address
//! before the signature is known, so it takes a jitffi stub slot
//! ([`crate::exec::stubs::alloc_slot`], the same slots `Closure::new_raw`
//! uses) whose code pointer is fixed from then on, plus `size` bytes of
//! ordinary zeroed memory for the `ffi_closure` the user writes. The slot
//! stays pointed at jitffi's "freed closure" trap until
//! `ffi_prep_closure_loc` publishes the signature's closure body (compiled
//! once per signature, cached with the prepared cif) with a handler that
//! adapts jitffi's `handler(ctx, args, ret)` to libffi's
//! `fun(cif, ret, args, user_data)`. W^X holds: nothing executable is ever
//! writable, and preparing a closure writes only data.
//!
//! Results: the closure body hands the handler a return buffer of at least
//! 8 bytes (jitffi's `ret_buffer_size`) for results returned in registers,
//! so a libffi handler may store a whole `ffi_arg` for a narrow integral
//! result, as libffi's contract says it must; the body then loads the
//! result's own width from it.

use std::collections::HashMap;
use std::ffi::{c_int, c_void};
use std::sync::{Mutex, OnceLock};

use crate::exec::stubs::{alloc_slot, StubSlot};

use super::{prepared_for, FfiCif, FfiStatus, FFI_BAD_ABI, FFI_BAD_TYPEDEF, FFI_OK};

/// libffi's closure function: `fun(cif, ret, args, user_data)`.
pub type FfiClosureFun = unsafe extern "C" fn(
    cif: *mut FfiCif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
);

/// `FFI_TRAMPOLINE_SIZE` of ffitarget.h: where `cif`, `fun` and `user_data`
/// sit in `ffi_closure`.
#[cfg(target_arch = "x86_64")]
pub const TRAMPOLINE_SIZE: usize = 32;
/// AArch64 (libffi's src/aarch64/ffitarget.h): 24, except with
/// `FFI_EXEC_TRAMPOLINE_TABLE` (Apple), where `ffi_closure` starts with two
/// pointers (`trampoline_table`, `trampoline_table_entry`) instead.
#[cfg(all(target_arch = "aarch64", not(target_vendor = "apple")))]
pub const TRAMPOLINE_SIZE: usize = 24;
#[cfg(all(target_arch = "aarch64", target_vendor = "apple"))]
pub const TRAMPOLINE_SIZE: usize = 16;
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub const TRAMPOLINE_SIZE: usize = 24;

/// `sizeof(ffi_closure)`: the trampoline area, then three pointers.
pub const CLOSURE_SIZE: usize = TRAMPOLINE_SIZE + 3 * std::mem::size_of::<usize>();

/// `ffi_closure` after the trampoline area.
#[repr(C)]
struct ClosureTail {
    cif: *mut FfiCif,
    fun: Option<FfiClosureFun>,
    user_data: *mut c_void,
}

/// What a prepared closure's handler needs.
struct Ctx {
    cif: *mut FfiCif,
    fun: FfiClosureFun,
    user_data: *mut c_void,
}

/// One allocated closure.
struct Record {
    slot: StubSlot,
    /// Contexts published into the slot. A re-prepared closure keeps its
    /// old contexts until freed: another thread may still be inside a call
    /// that read the old one. Boxed: the slot holds their addresses, which
    /// must not move when the vector grows.
    #[allow(clippy::vec_box)]
    ctxs: Vec<Box<Ctx>>,
}

// SAFETY: Ctx holds C pointers that the libffi contract makes valid for
// calls from any thread; the Record is only touched under the map's mutex.
unsafe impl Send for Record {}

/// Live closures by the address of their writable memory.
fn closures() -> &'static Mutex<HashMap<usize, Record>> {
    static M: OnceLock<Mutex<HashMap<usize, Record>>> = OnceLock::new();
    M.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The handler published into every prepared slot: jitffi's
/// `(ctx, args, ret)` to libffi's `fun(cif, ret, args, user_data)`.
extern "C" fn handler(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: ctx is the Ctx this slot was published with, kept alive by
    // the closure's Record until ffi_closure_free.
    let c = unsafe { &*(ctx as *const Ctx) };
    // SAFETY: the libffi contract: fun accepts the cif, the result buffer
    // (ret_buffer_size >= sizeof(ffi_arg) bytes, or the caller's result
    // object), the argument pointers and the user's data.
    unsafe { (c.fun)(c.cif, ret, args as *mut *mut c_void, c.user_data) }
}

/// `void *ffi_closure_alloc(size_t size, void **code)`: zeroed writable
/// memory of `size` bytes (at least `sizeof(ffi_closure)`), and in `*code`
/// the executable address that will run it once prepared. NULL on failure.
///
/// # Safety
///
/// `code` must be NULL or writable for a pointer.
pub unsafe extern "C" fn ffi_closure_alloc(size: usize, code: *mut *mut c_void) -> *mut c_void {
    let Ok(slot) = alloc_slot() else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain allocation; checked for NULL below.
    let mem = unsafe { libc::calloc(1, size.max(CLOSURE_SIZE)) };
    if mem.is_null() {
        return std::ptr::null_mut();
    }
    if !code.is_null() {
        // SAFETY: code is writable per the contract.
        unsafe { *code = slot.code_ptr() as *mut c_void };
    }
    let mut map = closures().lock().unwrap_or_else(|p| p.into_inner());
    map.insert(
        mem as usize,
        Record {
            slot,
            ctxs: Vec::new(),
        },
    );
    mem
}

/// `void ffi_closure_free(void *writable)`: frees a closure from
/// `ffi_closure_alloc` (its code then reaches jitffi's freed-closure trap
/// until the slot is reused). Unknown pointers and NULL are ignored.
///
/// # Safety
///
/// `ptr` must be NULL or a pointer from `ffi_closure_alloc` not yet freed,
/// and no thread may still be running the closure.
pub unsafe extern "C" fn ffi_closure_free(ptr: *mut c_void) {
    if ptr.is_null() {
        return;
    }
    let rec = {
        let mut map = closures().lock().unwrap_or_else(|p| p.into_inner());
        map.remove(&(ptr as usize))
    };
    if let Some(rec) = rec {
        // Drop the slot (back to the trap) before its contexts.
        drop(rec.slot);
        drop(rec.ctxs);
        // SAFETY: ptr came from calloc in ffi_closure_alloc.
        unsafe { libc::free(ptr) };
    }
}

/// `ffi_status ffi_prep_closure_loc(ffi_closure *closure, ffi_cif *cif,
/// void (*fun)(ffi_cif *, void *, void **, void *), void *user_data,
/// void *codeloc)`.
///
/// `closure` must come from `ffi_closure_alloc`, and `codeloc` must be the
/// code address it returned (or `closure` itself, which is what the
/// deprecated `ffi_prep_closure` passes: the slot is bound all the same,
/// and callers must call the `code` address). Anything else is
/// `FFI_BAD_ABI`: jitffi never makes user memory executable. A cif not
/// prepared by `ffi_prep_cif` is `FFI_BAD_TYPEDEF`, as is a signature the
/// closure emitter cannot handle.
///
/// # Safety
///
/// `closure` must be NULL or writable for `sizeof(ffi_closure)` bytes;
/// `cif`, `fun` and `user_data` must stay valid while the closure lives.
pub unsafe extern "C" fn ffi_prep_closure_loc(
    closure: *mut c_void,
    cif: *mut FfiCif,
    fun: Option<FfiClosureFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> FfiStatus {
    let Some(fun) = fun else {
        return FFI_BAD_TYPEDEF;
    };
    // As libffi: an ABI value outside the valid range is FFI_BAD_ABI.
    // SAFETY: cif readable per the contract (NULL checked).
    if cif.is_null() || super::jitffi_abi(unsafe { (*cif).abi }).is_err() {
        return FFI_BAD_ABI;
    }
    // SAFETY: cif readable per the contract.
    let Some(prepared) = (unsafe { prepared_for(cif) }) else {
        return FFI_BAD_TYPEDEF;
    };
    let body = match prepared.closure_body() {
        Ok(b) => b,
        Err(_) => return FFI_BAD_TYPEDEF,
    };
    let mut map = closures().lock().unwrap_or_else(|p| p.into_inner());
    let Some(rec) = map.get_mut(&(closure as usize)) else {
        return FFI_BAD_ABI;
    };
    if codeloc as *const u8 != rec.slot.code_ptr() && codeloc != closure {
        return FFI_BAD_ABI;
    }
    let ctx = Box::new(Ctx {
        cif,
        fun,
        user_data,
    });
    let ctx_ptr = &*ctx as *const Ctx as *mut c_void;
    rec.ctxs.push(ctx);
    // The user-visible fields, as libffi fills them.
    // SAFETY: closure is writable for sizeof(ffi_closure) bytes (it came
    // from ffi_closure_alloc, which allocated at least that).
    unsafe {
        let tail = (closure as *mut u8).add(TRAMPOLINE_SIZE) as *mut ClosureTail;
        tail.write_unaligned(ClosureTail {
            cif,
            fun: Some(fun),
            user_data,
        });
    }
    // SAFETY: body is the closure body compiled for this cif's signature
    // and jitffi's slot layout; handler and ctx stay valid until
    // ffi_closure_free (ctx is owned by the record).
    unsafe {
        rec.slot
            .publish(body, handler as *const () as usize, ctx_ptr, 0)
    };
    FFI_OK
}

/// `ffi_status ffi_prep_closure(ffi_closure *, ffi_cif *, fun, user_data)`:
/// the deprecated form, `ffi_prep_closure_loc(closure, ..., closure)`.
///
/// # Safety
///
/// As for [`ffi_prep_closure_loc`].
pub unsafe extern "C" fn ffi_prep_closure(
    closure: *mut c_void,
    cif: *mut FfiCif,
    fun: Option<FfiClosureFun>,
    user_data: *mut c_void,
) -> FfiStatus {
    // SAFETY: forwarded contract.
    unsafe { ffi_prep_closure_loc(closure, cif, fun, user_data, closure) }
}

/// `int ffi_tramp_is_present(void *closure)`: libffi's (internal) query
/// "does this closure use a static trampoline", i.e. is its code outside
/// writable memory. Every closure from `ffi_closure_alloc` here is a
/// jitffi stub in a read-execute page: 1 for those, 0 for anything else.
///
/// # Safety
///
/// Any pointer value is accepted; it is only compared.
pub unsafe extern "C" fn ffi_tramp_is_present(closure: *mut c_void) -> c_int {
    let map = closures().lock().unwrap_or_else(|p| p.into_inner());
    map.contains_key(&(closure as usize)) as c_int
}
