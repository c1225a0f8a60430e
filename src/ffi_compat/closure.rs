//! libffi closures on jitffi's closure stubs.
//!
//! `ffi_closure_alloc(size, &code)` must hand out the executable address
//! before the signature is known, so it takes a jitffi stub slot
//! ([`crate::exec::stubs::alloc_slot`], the same slots `Closure::new_raw`
//! uses) whose code pointer is fixed from then on, plus `size` bytes of
//! ordinary memory (not zeroed, as in libffi) for the `ffi_closure` the user writes. The slot
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
//! libffi's own trampolines do. A freed closure's block keeps its slot
//! in a small per-thread pool, so creating and freeing a closure is
//! usually a pop and a push: no allocation, no lock, no atomic
//! read-modify-write.
//!
//! Results: the closure body hands the handler a return buffer of at least
//! 8 bytes (jitffi's `ret_buffer_size`) for results returned in registers,
//! so a libffi handler may store a whole `ffi_arg` for a narrow integral
//! result, as libffi's contract says it must; the body then loads the
//! result's own width from it.

use std::cell::Cell;
use std::ffi::{c_int, c_void};
use std::mem::ManuallyDrop;

use crate::exec::stubs::{alloc_slot, StubSlot};

use super::{prepared_for, FfiCif, FfiStatus, FFI_BAD_ABI, FFI_BAD_TYPEDEF, FFI_OK};

/// libffi's closure function: `fun(cif, ret, args, user_data)`.
pub type FfiClosureFun = unsafe extern "C-unwind" fn(
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

/// What precedes every `ffi_closure` that `ffi_closure_alloc` returns.
#[repr(C, align(16))]
struct Header {
    /// [`TAG`] xor the closure's address while it is live; 0 once freed.
    tag: usize,
    /// The block `malloc` returned (the closure sits a little after it).
    block: *mut c_void,
    slot: ManuallyDrop<StubSlot>,
    /// The slot's code address.
    code: *const u8,
    /// Bytes of the block; blocks of [`POOLED_BYTES`] are pooled.
    bytes: usize,
    /// The next free block in a thread's pool.
    next: *mut Header,
}

const HDR: usize = std::mem::size_of::<Header>();
const _: () = assert!(HDR % 16 == 0 && HDR < 4096);

/// Distinguishes a live closure of ours from any other memory.
const TAG: usize = 0x6a69_7466_6669_c105_u64 as usize;

/// Requests up to this many bytes (`sizeof(ffi_closure)` and a little
/// more) get blocks of one size, which freed closures leave in a per-thread
/// pool together with their stub slot, so that the next allocation on the
/// thread is a pop: no `malloc`, no slot allocation.
const POOLED_USER: usize = 128;
const POOLED_BYTES: usize = POOLED_USER + 2 * HDR;
/// Free blocks a thread keeps at most.
const POOL_MAX: usize = 64;

/// A thread's free blocks (linked through `Header::next`), each still
/// holding its slot; released when the thread exits.
///
/// `Pool` has no destructor of its own, and all-zero bytes are its empty
/// state, so it can live in zero-initialised thread-local storage reached
/// without any registration check ([`with_pool`]). The first push on a
/// thread touches [`DRAIN`], whose destructor empties the pool at thread
/// exit.
#[repr(C)]
struct Pool {
    head: Cell<*mut Header>,
    len: Cell<usize>,
    /// Whether this thread's [`DRAIN`] guard has been registered.
    drains: Cell<bool>,
}

impl Pool {
    /// Puts a freed block on the pool (the caller checked there is room).
    ///
    /// # Safety
    ///
    /// `h` must be a header of ours, not live, its slot unpublished and not
    /// released.
    #[inline(always)]
    unsafe fn push(&self, h: *mut Header) {
        // SAFETY: per the contract, the header is ours to link.
        unsafe { (*h).next = self.head.replace(h) };
        self.len.set(self.len.get() + 1);
    }

    /// Takes a pooled block, or NULL when the pool is empty.
    #[inline(always)]
    fn pop(&self) -> *mut Header {
        let h = self.head.get();
        if !h.is_null() {
            // SAFETY: a pooled block: a header of ours, not live.
            self.head.set(unsafe { (*h).next });
            self.len.set(self.len.get() - 1);
        }
        h
    }

    /// Releases every pooled block.
    fn drain(&self) {
        let mut h = self.head.replace(std::ptr::null_mut());
        self.len.set(0);
        while !h.is_null() {
            // SAFETY: every block in the pool is a block of ours whose slot
            // is still owned by the header and unpublished.
            unsafe {
                let next = (*h).next;
                release(h);
                h = next;
            }
        }
    }
}

/// Empties the thread's pool when the thread exits.
struct Drain;

impl Drop for Drain {
    fn drop(&mut self) {
        let _ = with_pool(|pool| {
            pool.drain();
            // Blocks freed later on this thread (by other destructors) are
            // released at once.
            pool.len.set(POOL_MAX);
        });
    }
}

thread_local! {
    static DRAIN: Drain = const { Drain };
}

/// Runs `f` on the calling thread's pool; `None` when the thread can no
/// longer reach it.
///
/// Where the platform allows (Linux on x86-64 and AArch64), the pool is a
/// zero-initialised `.tbss` object reached through a TLS descriptor
/// ([`tls`]); otherwise it is a `thread_local!`.
#[inline(always)]
fn with_pool<R>(f: impl FnOnce(&Pool) -> R) -> Option<R> {
    #[cfg(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    ))]
    {
        // SAFETY: the calling thread's own pool, which lives as long as the
        // thread; `Pool` is not `Sync`, so the reference cannot leave it.
        Some(f(unsafe { &*tls::pool() }))
    }
    #[cfg(not(all(
        target_os = "linux",
        any(target_arch = "x86_64", target_arch = "aarch64")
    )))]
    {
        thread_local! {
            static POOL: Pool = const {
                Pool {
                    head: Cell::new(std::ptr::null_mut()),
                    len: Cell::new(0),
                    drains: Cell::new(false),
                }
            };
        }
        POOL.try_with(f).ok()
    }
}

/// The pool's thread-local storage, reached through a TLS descriptor.
///
/// A `thread_local!` in a shared library uses the general-dynamic TLS
/// model: every access calls `__tls_get_addr`, which as a call also makes
/// the caller save its live registers. That was about a quarter of the
/// instructions of a closure create + free. Stable Rust offers no other
/// model, so the object is defined and reached in assembly, with the TLS
/// descriptor sequence ("TLS descriptors for IA32 and AMD64/EM64T", Oliva &
/// Bonzini; "ELF for the Arm 64-bit Architecture" §5.7.11, TLS descriptor
/// relocations). The dynamic linker resolves the descriptor to a two-
/// instruction function returning the static offset when the module's TLS
/// block is in the static TLS area (always for a library loaded at
/// start-up or preloaded, and for a `dlopen`ed one when glibc's surplus
/// allows), and to its dynamic resolver otherwise, so unlike the
/// initial-exec model it never makes `dlopen` fail. In an executable the
/// linker relaxes the sequence to the local-exec form.
///
/// The descriptor call preserves every register except the result register
/// (and the link register and flags). glibc before 2.40 could clobber
/// caller-saved vector registers in its dynamic resolver (glibc bug 31372),
/// so the asm declares those clobbered too; they are free here, as no
/// vector value is live across it.
#[cfg(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64")
))]
mod tls {
    use super::Pool;

    // 24 zero bytes in `.tbss`: an empty `Pool` (null head, no blocks, no
    // drain guard). Hidden, so it is neither exported nor preempted.
    const _: () = assert!(std::mem::size_of::<Pool>() == 24 && std::mem::align_of::<Pool>() == 8);
    std::arch::global_asm!(
        ".pushsection .tbss.__jitffi_ffi_closure_pool,\"awT\",%nobits",
        ".globl __jitffi_ffi_closure_pool",
        ".hidden __jitffi_ffi_closure_pool",
        ".type __jitffi_ffi_closure_pool, %object",
        ".size __jitffi_ffi_closure_pool, 24",
        ".balign 8",
        "__jitffi_ffi_closure_pool:",
        ".zero 24",
        ".popsection",
    );

    /// The calling thread's pool.
    #[cfg(target_arch = "x86_64")]
    #[inline(always)]
    pub(super) fn pool() -> *const Pool {
        let p: *const Pool;
        // SAFETY: the canonical x86-64 TLS descriptor sequence (the linker
        // rewrites it by its exact form, so neither the instructions nor
        // the register may change): rax = the descriptor, the call returns
        // the offset from the thread pointer in rax, preserving everything
        // else but the flags. It pushes a return address, which asm
        // without `nostack` may do.
        unsafe {
            std::arch::asm!(
                "leaq __jitffi_ffi_closure_pool@TLSDESC(%rip), %rax",
                "call *__jitffi_ffi_closure_pool@TLSCALL(%rax)",
                "addq %fs:0, %rax",
                out("rax") p,
                out("xmm0") _, out("xmm1") _, out("xmm2") _, out("xmm3") _,
                out("xmm4") _, out("xmm5") _, out("xmm6") _, out("xmm7") _,
                out("xmm8") _, out("xmm9") _, out("xmm10") _, out("xmm11") _,
                out("xmm12") _, out("xmm13") _, out("xmm14") _, out("xmm15") _,
                options(att_syntax, pure, nomem),
            );
        }
        p
    }

    /// The calling thread's pool.
    #[cfg(target_arch = "aarch64")]
    #[inline(always)]
    pub(super) fn pool() -> *const Pool {
        let p: *const Pool;
        // SAFETY: the canonical AArch64 TLS descriptor sequence (the
        // linker rewrites it by its exact form): x0 = the descriptor, the
        // call through its first word returns the offset from the thread
        // pointer in x0, preserving everything but x0, x30 (the call's
        // link register) and the flags; x1 holds the function.
        unsafe {
            std::arch::asm!(
                "adrp x0, :tlsdesc:__jitffi_ffi_closure_pool",
                "ldr x1, [x0, :tlsdesc_lo12:__jitffi_ffi_closure_pool]",
                "add x0, x0, :tlsdesc_lo12:__jitffi_ffi_closure_pool",
                ".tlsdesccall __jitffi_ffi_closure_pool",
                "blr x1",
                "mrs x1, tpidr_el0",
                "add x0, x1, x0",
                out("x0") p, out("x1") _, out("x30") _,
                out("v0") _, out("v1") _, out("v2") _, out("v3") _,
                out("v4") _, out("v5") _, out("v6") _, out("v7") _,
                out("v16") _, out("v17") _, out("v18") _, out("v19") _,
                out("v20") _, out("v21") _, out("v22") _, out("v23") _,
                out("v24") _, out("v25") _, out("v26") _, out("v27") _,
                out("v28") _, out("v29") _, out("v30") _, out("v31") _,
                options(pure, nomem),
            );
        }
        p
    }
}

/// Gives a freed block's slot back to the stub pool and the block to
/// `free`.
///
/// # Safety
///
/// `h` must be the header of a block of ours, not live, whose slot has not
/// been released.
unsafe fn release(h: *mut Header) {
    // SAFETY: per the contract.
    unsafe {
        ManuallyDrop::drop(&mut (*h).slot);
        libc::free((*h).block);
    }
}

/// Where the closure of `block` goes: HDR bytes in, moved up (by at most
/// HDR more, within the block) when that would put it less than HDR bytes
/// into a page, so that `header_of` never reads across a page start.
fn closure_addr(block: *mut c_void) -> usize {
    let mut p = block as usize + HDR;
    if p % 4096 < HDR {
        p += HDR - p % 4096;
    }
    p
}

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
///
/// `extern "C-unwind"`, as is [`FfiClosureFun`]: a C++ exception thrown by
/// `fun` passes through here and through the closure body, which have
/// unwind tables on x86-64 and AArch64 Linux (libffi's `unwindtest.cc`).
extern "C-unwind" fn handler(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void) {
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

/// `void *ffi_closure_alloc(size_t size, void **code)`: writable
/// memory of `size` bytes (at least `sizeof(ffi_closure)`), and in `*code`
/// the executable address that will run it once prepared. NULL on failure.
///
/// # Safety
///
/// `code` must be NULL or writable for a pointer.
pub unsafe extern "C" fn ffi_closure_alloc(size: usize, code: *mut *mut c_void) -> *mut c_void {
    // The common case, a pooled block, calls nothing but the thread-local
    // lookup; everything else is out of line.
    let user = size.max(CLOSURE_SIZE);
    let h = if user <= POOLED_USER {
        with_pool(Pool::pop).unwrap_or(std::ptr::null_mut())
    } else {
        std::ptr::null_mut()
    };
    if h.is_null() {
        return alloc_new(user, code);
    }
    // SAFETY: h is a header of ours, not live; code is NULL or writable.
    unsafe { hand_out(h, code) }
}

/// Marks the block of `h` live and returns its closure (and its code in
/// `*code`). The closure's memory is not zeroed (nor is libffi's): prep
/// writes the fields the handler reads before the slot can run it.
///
/// # Safety
///
/// `h` must be a header of ours, not live; `code` NULL or writable.
#[inline(always)]
unsafe fn hand_out(h: *mut Header, code: *mut *mut c_void) -> *mut c_void {
    let p = h as usize + HDR;
    // SAFETY: per the contract.
    unsafe {
        (*h).tag = TAG ^ p;
        if !code.is_null() {
            *code = (*h).code as *mut c_void;
        }
    }
    p as *mut c_void
}

/// [`ffi_closure_alloc`] without a pooled block: a new slot and block.
#[cold]
#[inline(never)]
fn alloc_new(user: usize, code: *mut *mut c_void) -> *mut c_void {
    let bytes = if user <= POOLED_USER {
        POOLED_BYTES
    } else {
        match user.checked_add(2 * HDR) {
            Some(b) => b,
            None => return std::ptr::null_mut(),
        }
    };
    let Ok(slot) = alloc_slot() else {
        return std::ptr::null_mut();
    };
    // SAFETY: plain allocation; checked for NULL.
    let block = unsafe { libc::malloc(bytes) };
    if block.is_null() {
        return std::ptr::null_mut();
    }
    let h = (closure_addr(block) - HDR) as *mut Header;
    // SAFETY: [h, h + HDR + user) lies inside the block (closure_addr moves
    // by at most HDR, and the block has 2 * HDR spare bytes), and h is
    // 16-aligned (malloc's alignment, plus multiples of 16); code is NULL
    // or writable per ffi_closure_alloc's contract.
    unsafe {
        h.write(Header {
            tag: 0,
            block,
            code: slot.code_ptr(),
            slot: ManuallyDrop::new(slot),
            bytes,
            next: std::ptr::null_mut(),
        });
        hand_out(h, code)
    }
}

/// `void ffi_closure_free(void *writable)`: frees a closure from
/// `ffi_closure_alloc` (its code then reaches jitffi's freed-closure trap
/// until the slot is reused). NULL, and live memory that did not come from
/// `ffi_closure_alloc`, are ignored.
///
/// # Safety
///
/// `ptr` must be NULL or point at readable memory (so not at a closure
/// already freed: its memory may be gone, as with libffi), and no thread
/// may still be running the closure.
pub unsafe extern "C" fn ffi_closure_free(ptr: *mut c_void) {
    // SAFETY: forwarded contract.
    let Some(h) = (unsafe { header_of(ptr) }) else {
        return;
    };
    // SAFETY: a live header of ours; the tag is cleared first, so it is no
    // longer recognised; the slot goes back to the trap before the block is
    // pooled or released.
    let pooled = unsafe {
        (*h).tag = 0;
        (*h).slot.unpublish();
        (*h).bytes == POOLED_BYTES
            && with_pool(|pool| {
                if pool.len.get() >= POOL_MAX || !pool.drains.get() {
                    return false;
                }
                pool.push(h);
                true
            })
            .unwrap_or(false)
    };
    if !pooled {
        // SAFETY: h is ours, not live, its slot not yet released.
        unsafe { free_slow(h) };
    }
}

/// [`ffi_closure_free`] when the block does not simply go on the thread's
/// pool: the first pooling on a thread (which registers the pool's drain
/// at thread exit), or a full pool, or an odd-sized block, or a thread that
/// is exiting.
///
/// # Safety
///
/// `h` must be a header of ours, not live, whose slot has not been
/// released.
#[cold]
#[inline(never)]
unsafe fn free_slow(h: *mut Header) {
    // SAFETY: per the contract.
    unsafe {
        if (*h).bytes == POOLED_BYTES {
            let kept = with_pool(|pool| {
                if pool.len.get() >= POOL_MAX {
                    return false;
                }
                if !pool.drains.get() {
                    // Registers the guard's destructor (or fails when the
                    // thread is already exiting: then no pooling).
                    if DRAIN.try_with(|_| ()).is_err() {
                        return false;
                    }
                    pool.drains.set(true);
                }
                pool.push(h);
                true
            })
            .unwrap_or(false);
            if kept {
                return;
            }
        }
        release(h);
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
    // The common case (a prepared cif whose closure body exists) calls
    // nothing, so it needs no stack frame; everything else is out of line.
    let (Some(fun), Some(body)) = (
        fun,
        // SAFETY: cif is NULL or readable per the contract.
        unsafe { prepared_for(cif) }.and_then(|p| p.closure_body_if_ready()),
    ) else {
        // SAFETY: forwarded contract.
        return unsafe { prep_closure_slow(closure, cif, fun, user_data, codeloc) };
    };
    // SAFETY: closure is NULL or readable per the contract.
    let Some(h) = (unsafe { header_of(closure) }) else {
        return FFI_BAD_ABI;
    };
    // SAFETY: a live header of ours; only this closure's owner touches it.
    let (slot, code) = unsafe { (&*(*h).slot, (*h).code) };
    if codeloc as *const u8 != code && codeloc != closure {
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

/// [`ffi_prep_closure_loc`] when the fast path does not apply: no
/// function, a cif that is not prepared (or has an invalid ABI), or a
/// closure body not compiled yet (compiled here, then the fast path runs).
///
/// # Safety
///
/// As for [`ffi_prep_closure_loc`].
#[cold]
#[inline(never)]
unsafe fn prep_closure_slow(
    closure: *mut c_void,
    cif: *mut FfiCif,
    fun: Option<FfiClosureFun>,
    user_data: *mut c_void,
    codeloc: *mut c_void,
) -> FfiStatus {
    if fun.is_none() {
        return FFI_BAD_TYPEDEF;
    }
    // SAFETY: cif is NULL or readable per the contract.
    let Some(prepared) = (unsafe { prepared_for(cif) }) else {
        // As libffi: an ABI value outside the valid range is FFI_BAD_ABI
        // (a prepared cif always has a valid one); otherwise the cif was
        // not prepared.
        // SAFETY: as above, NULL checked.
        if cif.is_null() || super::jitffi_abi(unsafe { (*cif).abi }).is_err() {
            return FFI_BAD_ABI;
        }
        return FFI_BAD_TYPEDEF;
    };
    if prepared.closure_body().is_none() {
        return FFI_BAD_TYPEDEF;
    }
    // The body exists now: the fast path applies.
    // SAFETY: forwarded contract.
    unsafe { ffi_prep_closure_loc(closure, cif, fun, user_data, codeloc) }
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

#[cfg(test)]
mod tests {
    use super::super::types::{FfiType, FFI_TYPE_SINT32};
    use super::super::{abi::FFI_DEFAULT_ABI, ffi_prep_cif};
    use super::*;

    /// An `int(int, int)` cif with its own type descriptors, made once and
    /// kept for the whole test run.
    fn cif_ii() -> *mut FfiCif {
        static CIF: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CIF.get_or_init(|| new_cif_ii() as usize) as *mut FfiCif
    }

    fn new_cif_ii() -> *mut FfiCif {
        let int = || {
            Box::leak(Box::new(FfiType {
                size: 4,
                alignment: 4,
                type_: FFI_TYPE_SINT32,
                elements: std::ptr::null_mut(),
            })) as *mut FfiType
        };
        let args: &'static mut [*mut FfiType; 2] = Box::leak(Box::new([int(), int()]));
        // SAFETY: FfiCif is plain data that ffi_prep_cif fills in.
        let cif: *mut FfiCif = Box::leak(Box::new(unsafe { std::mem::zeroed::<FfiCif>() }));
        // SAFETY: a writable cif and valid, leaked type descriptors.
        let st = unsafe { ffi_prep_cif(cif, FFI_DEFAULT_ABI, 2, int(), args.as_mut_ptr()) };
        assert_eq!(st, FFI_OK);
        cif
    }

    /// `fun`: the sum of the two ints plus `*user_data`, widened to ffi_arg.
    unsafe extern "C-unwind" fn add(
        _cif: *mut FfiCif,
        ret: *mut c_void,
        args: *mut *mut c_void,
        ud: *mut c_void,
    ) {
        // SAFETY: int(int, int) with an int user_data, a result buffer of
        // at least sizeof(ffi_arg).
        unsafe {
            let a = *(*args as *const i32);
            let b = *(*args.add(1) as *const i32);
            let k = *(ud as *const i32);
            *(ret as *mut i64) = (a + b + k) as i64;
        }
    }

    type AddFn = extern "C" fn(i32, i32) -> i32;

    #[test]
    fn create_call_reprepare_free() {
        let cif = cif_ii();
        let (k1, k2) = (Box::new(100i32), Box::new(1000i32));
        for size in [0, CLOSURE_SIZE, POOLED_USER, POOLED_USER + 1, 4096] {
            let mut code = std::ptr::null_mut();
            // SAFETY: a valid out-pointer.
            let c = unsafe { ffi_closure_alloc(size, &mut code) };
            assert!(!c.is_null() && !code.is_null());
            assert!(
                c as usize % 4096 >= HDR,
                "size {size}: header in the closure's page"
            );
            // SAFETY: c from ffi_closure_alloc; cif, add and k1 outlive it.
            let k1p = &*k1 as *const i32 as *mut c_void;
            assert_eq!(
                unsafe { ffi_prep_closure_loc(c, cif, Some(add), k1p, code) },
                FFI_OK
            );
            // SAFETY: the closure is prepared for int(int, int).
            let f: AddFn = unsafe { std::mem::transmute::<*mut c_void, AddFn>(code) };
            assert_eq!(f(2, 3), 105);
            // The user-visible fields are libffi's, and read at each call.
            // SAFETY: c has sizeof(ffi_closure) bytes.
            unsafe {
                let tail = (c as *mut u8).add(TRAMPOLINE_SIZE) as *mut ClosureTail;
                assert_eq!((*tail).cif, cif);
                assert_eq!((*tail).user_data, k1p);
                (*tail).user_data = &*k2 as *const i32 as *mut c_void;
            }
            assert_eq!(f(2, 3), 1005);
            // Re-prepared (the deprecated form passes the closure itself).
            // SAFETY: as above.
            assert_eq!(unsafe { ffi_prep_closure(c, cif, Some(add), k1p) }, FFI_OK);
            assert_eq!(f(-2, 3), 101);
            // SAFETY: c is ours and live, nobody is running it.
            assert_eq!(unsafe { ffi_tramp_is_present(c) }, 1);
            unsafe { ffi_closure_free(c) };
            if size.max(CLOSURE_SIZE) <= POOLED_USER {
                // Freed into this thread's pool, so the memory is still
                // ours to look at: no longer recognised, and a second free
                // is ignored. (A block that went back to malloc must not be
                // touched again, as with libffi.)
                // SAFETY: the block is pooled, not freed.
                assert_eq!(unsafe { ffi_tramp_is_present(c) }, 0);
                unsafe { ffi_closure_free(c) };
            }
        }
    }

    #[test]
    fn foreign_memory_is_refused_without_faulting() {
        let cif = cif_ii();
        // A page-aligned mapping with nothing mapped just before it: the
        // header check must not read across the page start.
        // SAFETY: a fresh anonymous mapping of three pages; the first is
        // then made inaccessible.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                3 * 4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        // SAFETY: the first page of our own mapping.
        assert_eq!(unsafe { libc::mprotect(base, 4096, libc::PROT_NONE) }, 0);
        // SAFETY: pointers into our mapping (readable and writable).
        unsafe {
            let page = (base as *mut u8).add(4096) as *mut c_void;
            let inside = (base as *mut u8).add(4096 + 512) as *mut c_void;
            for p in [page, inside] {
                assert_eq!(ffi_prep_closure_loc(p, cif, Some(add), p, p), FFI_BAD_ABI);
                assert_eq!(ffi_tramp_is_present(p), 0);
                ffi_closure_free(p);
            }
            // Heap memory that happens to be laid out like a closure but
            // lacks the tag.
            let mut heap = vec![0u8; 512];
            let p = heap.as_mut_ptr().add(256) as *mut c_void;
            let p = ((p as usize + 15) & !15) as *mut c_void;
            assert_eq!(ffi_prep_closure_loc(p, cif, Some(add), p, p), FFI_BAD_ABI);
            ffi_closure_free(p);
            ffi_closure_free(std::ptr::null_mut());
            assert_eq!(ffi_tramp_is_present(std::ptr::null_mut()), 0);
            libc::munmap(base, 3 * 4096);
        }
    }

    #[test]
    fn bad_arguments() {
        let cif = cif_ii();
        let mut code = std::ptr::null_mut();
        // SAFETY: valid out-pointer; c is freed at the end.
        unsafe {
            let c = ffi_closure_alloc(64, &mut code);
            let ud = std::ptr::null_mut();
            // A code address that is not this closure's.
            let other = (code as *mut u8).add(1) as *mut c_void;
            assert_eq!(
                ffi_prep_closure_loc(c, cif, Some(add), ud, other),
                FFI_BAD_ABI
            );
            assert_eq!(
                ffi_prep_closure_loc(c, cif, None, ud, code),
                FFI_BAD_TYPEDEF
            );
            assert_eq!(
                ffi_prep_closure_loc(c, std::ptr::null_mut(), Some(add), ud, code),
                FFI_BAD_ABI
            );
            // An unprepared cif, then one with an invalid ABI.
            let mut raw: FfiCif = std::mem::zeroed();
            raw.abi = FFI_DEFAULT_ABI;
            assert_eq!(
                ffi_prep_closure_loc(c, &mut raw, Some(add), ud, code),
                FFI_BAD_TYPEDEF
            );
            raw.abi = 99;
            assert_eq!(
                ffi_prep_closure_loc(c, &mut raw, Some(add), ud, code),
                FFI_BAD_ABI
            );
            ffi_closure_free(c);
        }
    }

    #[test]
    fn many_closures_across_threads() {
        let cif = cif_ii() as usize;
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    let cif = cif as *mut FfiCif;
                    let k = Box::new(t);
                    let kp = &*k as *const i32 as *mut c_void;
                    let mut live = Vec::new();
                    for round in 0..3 {
                        for i in 0..(POOL_MAX + 40) {
                            let mut code = std::ptr::null_mut();
                            // SAFETY: valid out-pointer; cif and k outlive
                            // the closures (freed below).
                            unsafe {
                                let c = ffi_closure_alloc(48 + (i % 3) * 64, &mut code);
                                assert!(!c.is_null());
                                assert_eq!(
                                    ffi_prep_closure_loc(c, cif, Some(add), kp, code),
                                    FFI_OK
                                );
                                let f: AddFn = std::mem::transmute::<*mut c_void, AddFn>(code);
                                assert_eq!(f(i as i32, round), i as i32 + round + t);
                                live.push(c);
                            }
                        }
                        for c in live.drain(..) {
                            // SAFETY: ours, live, not running.
                            unsafe { ffi_closure_free(c) };
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
    }
}
