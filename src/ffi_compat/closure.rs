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
//! No table, no lock: the writable memory carries a hidden [`Header`] just
//! before the `ffi_closure` (the slot, and a tag that recognises the
//! closure as one of ours), and the handler's context is the `ffi_closure`
//! itself, whose `cif`, `fun` and `user_data` it reads at each call, as
//! libffi's own trampolines do. Creating and freeing a closure is one
//! `malloc`, one slot from the lock-free pool, and one `free`.
//!
//! Results: the closure body hands the handler a return buffer of at least
//! 8 bytes (jitffi's `ret_buffer_size`) for results returned in registers,
//! so a libffi handler may store a whole `ffi_arg` for a narrow integral
//! result, as libffi's contract says it must; the body then loads the
//! result's own width from it.

use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;

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
const TRAMPOLINE_SIZE: usize = 32;
#[cfg(not(target_arch = "x86_64"))]
const TRAMPOLINE_SIZE: usize = 24;

/// `sizeof(ffi_closure)`: the trampoline area, then three pointers.
const CLOSURE_SIZE: usize = TRAMPOLINE_SIZE + 3 * std::mem::size_of::<usize>();

/// `ffi_closure` after the trampoline area.
#[repr(C)]
struct ClosureTail {
    cif: *mut FfiCif,
    fun: Option<FfiClosureFun>,
    user_data: *mut c_void,
}

/// What precedes every `ffi_closure` that `ffi_closure_alloc` returns.
#[repr(C, align(16))]
struct Header {
    /// [`TAG`] xor the closure's address while it is live; 0 once freed.
    tag: usize,
    /// The block `malloc` returned (the closure sits a little after it).
    block: *mut c_void,
    slot: ManuallyDrop<StubSlot>,
}

const HDR: usize = std::mem::size_of::<Header>();
const _: () = assert!(HDR % 16 == 0 && HDR < 4096);

/// Distinguishes a live closure of ours from any other memory.
const TAG: usize = 0x6a69_7466_6669_c105_u64 as usize;

/// Whether `closure` came from [`ffi_closure_alloc`] and is not freed; its
/// header if so.
///
/// Reading the header of memory that is not ours cannot fault: every
/// closure of ours sits at least [`HDR`] bytes into its page (see
/// [`ffi_closure_alloc`]), so anything closer to a page start is refused
/// without a read, and otherwise the header lies in the same page as the
/// first byte of `closure`, which the caller promises is readable.
///
/// # Safety
///
/// `closure` must be NULL or point at readable memory.
unsafe fn header_of(closure: *mut c_void) -> Option<*mut Header> {
    let p = closure as usize;
    if p == 0 || p % 16 != 0 || p % 4096 < HDR {
        return None;
    }
    let h = (p - HDR) as *mut Header;
    // SAFETY: in the same (mapped) page as `closure`, as argued above;
    // volatile, because for foreign memory these bytes belong to no Rust
    // object the compiler knows of.
    let tag = unsafe { std::ptr::read_volatile(&raw const (*h).tag) };
    (tag == TAG ^ p).then_some(h)
}

/// The handler published into every prepared slot: jitffi's
/// `(ctx, args, ret)` to libffi's `fun(cif, ret, args, user_data)`, with
/// the `ffi_closure` as the context.
extern "C" fn handler(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
    // SAFETY: ctx is the ffi_closure this slot was published with, live
    // until ffi_closure_free (which unpublishes the slot first); like
    // libffi, its fields are read at each call.
    let t =
        unsafe { ((ctx as *const u8).add(TRAMPOLINE_SIZE) as *const ClosureTail).read_unaligned() };
    let Some(fun) = t.fun else {
        super::die("a closure was called whose ffi_closure has no function");
    };
    // SAFETY: the libffi contract: fun accepts the cif, the result buffer
    // (ret_buffer_size >= sizeof(ffi_arg) bytes, or the caller's result
    // object), the argument pointers and the user's data.
    unsafe { fun(t.cif, ret, args as *mut *mut c_void, t.user_data) }
}

/// `void *ffi_closure_alloc(size_t size, void **code)`: zeroed writable
/// memory of `size` bytes (at least `sizeof(ffi_closure)`), and in `*code`
/// the executable address that will run it once prepared. NULL on failure.
///
/// # Safety
///
/// `code` must be NULL or writable for a pointer.
pub unsafe extern "C" fn ffi_closure_alloc(size: usize, code: *mut *mut c_void) -> *mut c_void {
    let Some(bytes) = size.max(CLOSURE_SIZE).checked_add(2 * HDR) else {
        return std::ptr::null_mut();
    };
    let Ok(slot) = alloc_slot() else {
        return std::ptr::null_mut();
    };
    // malloc + memset, not calloc: glibc's calloc bypasses the per-thread
    // cache that malloc and free use, which made it several times slower
    // for this allocate-free pattern.
    // SAFETY: plain allocation; checked for NULL, then zeroed in full.
    let block = unsafe { libc::malloc(bytes) };
    if block.is_null() {
        return std::ptr::null_mut();
    }
    // black_box: LLVM would otherwise fold malloc + memset back into calloc.
    let block = std::hint::black_box(block);
    // SAFETY: block is writable for `bytes` bytes.
    unsafe { std::ptr::write_bytes(block.cast::<u8>(), 0, bytes) };
    // The closure goes HDR bytes in, moved up (by at most HDR more, within
    // the block) when that would put it less than HDR bytes into a page, so
    // that `header_of` never reads across a page start.
    let mut p = block as usize + HDR;
    if p % 4096 < HDR {
        p += HDR - p % 4096;
    }
    if !code.is_null() {
        // SAFETY: code is writable per the contract.
        unsafe { *code = slot.code_ptr() as *mut c_void };
    }
    // SAFETY: [p - HDR, p + size) lies inside the block, and p - HDR is
    // 16-aligned (malloc's alignment, plus multiples of 16).
    unsafe {
        ((p - HDR) as *mut Header).write(Header {
            tag: TAG ^ p,
            block,
            slot: ManuallyDrop::new(slot),
        })
    };
    p as *mut c_void
}

/// `void ffi_closure_free(void *writable)`: frees a closure from
/// `ffi_closure_alloc` (its code then reaches jitffi's freed-closure trap
/// until the slot is reused). NULL, and pointers not from
/// `ffi_closure_alloc` (or already freed), are ignored.
///
/// # Safety
///
/// `ptr` must be NULL or point at readable memory, and no thread may still
/// be running the closure.
pub unsafe extern "C" fn ffi_closure_free(ptr: *mut c_void) {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { header_of(ptr) }) else {
        return;
    };
    // SAFETY: a live header of ours; the tag is cleared before anything is
    // released, so a second free is ignored.
    unsafe {
        (*h).tag = 0;
        // Back to the trap (and the pool) first.
        ManuallyDrop::drop(&mut (*h).slot);
        libc::free((*h).block);
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
    // SAFETY: closure is NULL or readable per the contract.
    let Some(h) = (unsafe { header_of(closure) }) else {
        return FFI_BAD_ABI;
    };
    // SAFETY: a live header of ours; only this closure's owner touches it.
    let slot = unsafe { &*(*h).slot };
    if codeloc as *const u8 != slot.code_ptr() && codeloc != closure {
        return FFI_BAD_ABI;
    }
    // The user-visible fields, as libffi fills them; the handler reads them
    // at each call.
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
    // and jitffi's slot layout; the handler is a plain function and its
    // context, the ffi_closure, stays valid until ffi_closure_free, which
    // unpublishes the slot before freeing it.
    unsafe { slot.publish(body, handler as *const () as usize, closure, 0) };
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
/// `closure` must be NULL or point at readable memory.
pub unsafe extern "C" fn ffi_tramp_is_present(closure: *mut c_void) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { header_of(closure) }.is_some() as c_int
}
