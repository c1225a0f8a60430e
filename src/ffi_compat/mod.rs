//! A libffi-compatible layer: libffi's public C API (`ffi.h`, libffi 3.4,
//! soname `libffi.so.8`) implemented on top of jitffi.
//!
//! Built only with the `libffi-compat` feature. The cdylib then exports
//! `ffi_prep_cif`, `ffi_call`, the closure API, the `ffi_type_*` globals and
//! the raw/java/go entry points under libffi's own symbol versions
//! (`LIBFFI_BASE_8.0`, `LIBFFI_CLOSURE_8.0`, `LIBFFI_COMPLEX_8.0`,
//! `LIBFFI_GO_CLOSURE_8.0`; see `libffi.map`), so a program linked against
//! the system `libffi.so.8` runs on jitffi with
//! `LD_PRELOAD=target/release/libjitffi.so`. See docs/libffi-compat.md.
//!
//! # Where a prepared cif keeps its trampoline
//!
//! `ffi_cif` has no spare field for a pointer, and users copy cifs freely
//! (by value into their own structs, across threads). So `ffi_prep_cif`
//! translates the type tree into a [`Signature`], and looks the pair
//! `(ffi abi, signature)` up in one process-wide map; a new pair compiles
//! a pointer-mode [`Trampoline`] and gets the next index of an append-only
//! table. The index goes into `cif->flags` (libffi's own use of `flags` is
//! private to libffi), `cif->bytes` gets the plan's outgoing stack size, as
//! libffi reports. Consequences:
//! - a copied or moved cif works, since the index travels with it;
//! - `ffi_call` is lock-free: two acquire loads to reach the entry, which
//!   is immutable and never freed (there is no `ffi_cif_free`; the table
//!   grows with the number of *distinct* signatures, not with cifs);
//! - any number of threads may prepare and call at once (the map is behind
//!   a mutex, entries are published with release stores);
//! - `ffi_call` checks that the entry's argument count and ABI match the
//!   cif; a cif that was never prepared (flags 0 or out of range) aborts
//!   with a message instead of jumping to garbage.

mod closure;
pub use closure::{CLOSURE_SIZE, TRAMPOLINE_SIZE};
mod raw;
mod symbols;
pub mod types;

use std::collections::HashMap;
use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicPtr, Ordering};
use std::sync::{Mutex, OnceLock};

use crate::call::{ArgMode, Entry, Trampoline};
use crate::types::{Abi, Signature, Type};
use crate::Error;

use types::{initialize_aggregate, long_double_map, to_type, FfiType};

/// `ffi_status`.
pub type FfiStatus = c_int;
pub const FFI_OK: FfiStatus = 0;
pub const FFI_BAD_TYPEDEF: FfiStatus = 1;
pub const FFI_BAD_ABI: FfiStatus = 2;
pub const FFI_BAD_ARGTYPE: FfiStatus = 3;

/// `ffi_abi` (a C enum: `int`-sized).
pub type FfiAbi = c_uint;

/// The `ffi_abi` values of ffitarget.h for the host.
pub mod abi {
    use super::FfiAbi;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_FIRST_ABI: FfiAbi = 1;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_UNIX64: FfiAbi = 2;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_WIN64: FfiAbi = 3;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_GNUW64: FfiAbi = 4;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_LAST_ABI: FfiAbi = 5;
    #[cfg(target_arch = "x86_64")]
    pub const FFI_DEFAULT_ABI: FfiAbi = FFI_UNIX64;

    #[cfg(target_arch = "aarch64")]
    pub const FFI_FIRST_ABI: FfiAbi = 0;
    #[cfg(target_arch = "aarch64")]
    pub const FFI_SYSV: FfiAbi = 1;
    #[cfg(target_arch = "aarch64")]
    pub const FFI_LAST_ABI: FfiAbi = 3;
    #[cfg(target_arch = "aarch64")]
    pub const FFI_DEFAULT_ABI: FfiAbi = FFI_SYSV;
}

/// `ffi_cif` (ffi.h), 32 bytes on LP64.
#[repr(C)]
#[derive(Debug)]
pub struct FfiCif {
    pub abi: FfiAbi,
    pub nargs: c_uint,
    pub arg_types: *mut *mut FfiType,
    pub rtype: *mut FfiType,
    pub bytes: c_uint,
    pub flags: c_uint,
}

/// The jitffi ABI for an `ffi_abi` value, or `FFI_BAD_ABI`.
fn jitffi_abi(a: FfiAbi) -> Result<Abi, FfiStatus> {
    use abi::*;
    if !(a > FFI_FIRST_ABI && a < FFI_LAST_ABI) {
        return Err(FFI_BAD_ABI);
    }
    #[cfg(target_arch = "x86_64")]
    {
        match a {
            FFI_UNIX64 => Ok(Abi::SysV64),
            FFI_WIN64 | FFI_GNUW64 => Ok(Abi::Win64),
            _ => Err(FFI_BAD_ABI),
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        match a {
            FFI_SYSV if cfg!(target_vendor = "apple") => Ok(Abi::AppleArm64),
            FFI_SYSV => Ok(Abi::Aapcs64),
            _ => Err(FFI_BAD_ABI),
        }
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        Err(FFI_BAD_ABI)
    }
}

/// What `ffi_call` does with the result buffer `rvalue`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RetMode {
    /// `void`: nothing is written (`rvalue` may be NULL).
    Void,
    /// The trampoline writes exactly the buffer libffi promises (the
    /// result's size equals jitffi's `ret_buffer_size`).
    Direct,
    /// An integer narrower than `ffi_arg`: libffi stores it widened to a
    /// full `ffi_arg` (sign- or zero-extended), so callers may read
    /// `*(ffi_arg *)rvalue`.
    Widen { size: u8, signed: bool },
    /// Anything else (`float`, small or odd-sized structs): jitffi's buffer
    /// is larger than the result, so call into scratch and copy `size`
    /// bytes (libffi writes exactly `sizeof` the result).
    Copy { size: usize },
}

fn ret_mode(sig: &Signature) -> RetMode {
    match &sig.ret {
        Type::Void => RetMode::Void,
        Type::Scalar(s) if s.is_integer() && s.size() < 8 => RetMode::Widen {
            size: s.size() as u8,
            signed: s.is_signed(),
        },
        t if t.size() as usize == sig.ret_buffer_size() => RetMode::Direct,
        t => RetMode::Copy {
            size: t.size() as usize,
        },
    }
}

/// A prepared signature: immutable, shared by every cif with that shape,
/// never freed.
pub(crate) struct Prepared {
    ffi_abi: FfiAbi,
    nargs: u32,
    sig: Signature,
    ret: RetMode,
    ret_buffer: usize,
    entry: Entry,
    /// Keeps `entry`'s code alive.
    _tramp: Trampoline,
    /// The closure body for this signature, compiled on first use.
    body: OnceLock<Result<crate::closure::InstalledBody, String>>,
}

impl Prepared {
    /// The closure body's address if it has been compiled already.
    #[inline]
    pub(crate) fn closure_body_if_ready(&self) -> Option<*const u8> {
        self.body.get()?.as_ref().ok().map(|code| code.as_ptr())
    }

    /// The closure body's address (compiling it on first use), or `None`
    /// when the closure emitter cannot handle the signature.
    pub(crate) fn closure_body(&self) -> Option<*const u8> {
        self.body
            .get_or_init(|| crate::closure::install_body(&self.sig).map_err(|e| e.to_string()))
            .as_ref()
            .ok()
            .map(|code| code.as_ptr())
    }
}

const CHUNK: usize = 1024;
const CHUNKS: usize = 4096;

/// The append-only table of prepared signatures, `CHUNKS` lazily
/// allocated chunks of `CHUNK` entries; index 0 is never used, so a zeroed
/// cif is recognised as unprepared.
static TABLE: [AtomicPtr<[AtomicPtr<Prepared>; CHUNK]>; CHUNKS] =
    [const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNKS];

struct Registry {
    by_sig: HashMap<(FfiAbi, Signature), u32>,
    next: u32,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| {
        Mutex::new(Registry {
            by_sig: HashMap::new(),
            next: 1,
        })
    })
}

/// The entry at `index`, if one was published there.
fn entry_at(index: u32) -> Option<&'static Prepared> {
    let i = index as usize;
    if i == 0 || i >= CHUNK * CHUNKS {
        return None;
    }
    let chunk = TABLE[i / CHUNK].load(Ordering::Acquire);
    if chunk.is_null() {
        return None;
    }
    // SAFETY: chunks are leaked boxes, never freed once published.
    let p = unsafe { &*chunk }[i % CHUNK].load(Ordering::Acquire);
    // SAFETY: entries are leaked boxes, never freed once published.
    (!p.is_null()).then(|| unsafe { &*p })
}

/// The prepared entry a cif refers to, checked against the cif's own
/// argument count and ABI.
///
/// # Safety
///
/// `cif` must be NULL or point at a readable `ffi_cif`.
pub(crate) unsafe fn prepared_for(cif: *const FfiCif) -> Option<&'static Prepared> {
    if cif.is_null() {
        return None;
    }
    // SAFETY: readable per the contract.
    let c = unsafe { &*cif };
    entry_at(c.flags).filter(|p| p.nargs == c.nargs && p.ffi_abi == c.abi)
}

/// Finds or compiles the entry for `(ffi_abi, sig)`; returns its index.
fn intern(ffi_abi: FfiAbi, sig: Signature) -> Result<(u32, &'static Prepared), FfiStatus> {
    let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
    let key = (ffi_abi, sig);
    if let Some(&i) = reg.by_sig.get(&key) {
        if let Some(p) = entry_at(i) {
            return Ok((i, p));
        }
    }
    let sig = key.1.clone();
    let tramp = Trampoline::compile(&sig, ArgMode::Pointers, None).map_err(status_of)?;
    let index = reg.next;
    if index as usize >= CHUNK * CHUNKS {
        return Err(FFI_BAD_TYPEDEF);
    }
    let prepared: &'static Prepared = Box::leak(Box::new(Prepared {
        ffi_abi,
        nargs: sig.args.len() as u32,
        ret: ret_mode(&sig),
        ret_buffer: sig.ret_buffer_size(),
        entry: tramp.entry(),
        _tramp: tramp,
        sig,
        body: OnceLock::new(),
    }));
    let slot = &TABLE[index as usize / CHUNK];
    let mut chunk = slot.load(Ordering::Acquire);
    if chunk.is_null() {
        let fresh: Box<[AtomicPtr<Prepared>; CHUNK]> =
            Box::new([const { AtomicPtr::new(std::ptr::null_mut()) }; CHUNK]);
        chunk = Box::into_raw(fresh);
        // Only this thread (holding the registry lock) ever stores chunks.
        slot.store(chunk, Ordering::Release);
    }
    // SAFETY: chunk is a leaked, never-freed box.
    let chunk = unsafe { &*chunk };
    chunk[index as usize % CHUNK].store(
        prepared as *const Prepared as *mut Prepared,
        Ordering::Release,
    );
    reg.next += 1;
    reg.by_sig.insert(key, index);
    Ok((index, prepared))
}

/// libffi status for a jitffi error: shapes the planners refuse
/// (`Unsupported`) are `FFI_BAD_TYPEDEF`; an ABI that cannot run here is
/// `FFI_BAD_ABI`; anything else (no executable memory, an emitter
/// limit) is reported as `FFI_BAD_TYPEDEF` too, the only other status
/// `ffi_prep_cif` has.
fn status_of(e: Error) -> FfiStatus {
    match e {
        Error::NotExecutable(_) => FFI_BAD_ABI,
        _ => FFI_BAD_TYPEDEF,
    }
}

/// Writes a message to stderr and aborts (for the `void` entry points that
/// cannot report an error).
pub(crate) fn die(msg: &str) -> ! {
    let line = format!("jitffi (libffi layer): {msg}\n");
    // SAFETY: writing a valid buffer to fd 2.
    unsafe {
        libc::write(2, line.as_ptr().cast(), line.len());
        libc::abort()
    }
}

/// `ffi_prep_cif_core`: shared by `ffi_prep_cif` and `ffi_prep_cif_var`.
///
/// # Safety
///
/// As for `ffi_prep_cif`: `cif` writable, `rtype` and the `ntotal` entries
/// of `atypes` valid `ffi_type`s.
unsafe fn prep_cif_core(
    cif: *mut FfiCif,
    ffi_abi: FfiAbi,
    variadic: bool,
    nfixed: c_uint,
    ntotal: c_uint,
    rtype: *mut FfiType,
    atypes: *mut *mut FfiType,
) -> Result<(), FfiStatus> {
    if cif.is_null() {
        return Err(FFI_BAD_TYPEDEF);
    }
    let abi = jitffi_abi(ffi_abi)?;
    if nfixed > ntotal {
        return Err(FFI_BAD_ARGTYPE);
    }
    // SAFETY: cif is writable per the contract.
    let c = unsafe { &mut *cif };
    c.abi = ffi_abi;
    c.arg_types = atypes;
    c.nargs = ntotal;
    c.rtype = rtype;
    c.flags = 0;
    c.bytes = 0;
    if rtype.is_null() || (ntotal > 0 && atypes.is_null()) {
        return Err(FFI_BAD_TYPEDEF);
    }
    let ld = long_double_map(ffi_abi);
    // SAFETY: rtype is a valid ffi_type per the contract.
    if unsafe { (*rtype).size } == 0 {
        // SAFETY: as above; libffi initialises size-0 types in place.
        unsafe { initialize_aggregate(rtype, None, 0)? };
    }
    // SAFETY: as above.
    let ret = unsafe { to_type(rtype, ld, 0)? };
    let mut args = Vec::with_capacity(ntotal as usize);
    for i in 0..ntotal as usize {
        // SAFETY: atypes has ntotal entries per the contract.
        let t = unsafe { *atypes.add(i) };
        if t.is_null() {
            return Err(FFI_BAD_TYPEDEF);
        }
        // SAFETY: t is a valid ffi_type.
        if unsafe { (*t).size } == 0 {
            // SAFETY: as above.
            unsafe { initialize_aggregate(t, None, 0)? };
        }
        // SAFETY: as above.
        let ty = unsafe { to_type(t, ld, 0)? };
        if ty.is_void() {
            return Err(FFI_BAD_TYPEDEF);
        }
        args.push(ty);
    }
    let sig = Signature {
        abi,
        ret,
        args,
        fixed_args: nfixed as usize,
        variadic,
        name: None,
    };
    let (index, prepared) = intern(ffi_abi, sig)?;
    c.flags = index;
    c.bytes = prepared._tramp.plan().stack_size;
    Ok(())
}

/// `ffi_status ffi_prep_cif(ffi_cif *cif, ffi_abi abi, unsigned nargs,
/// ffi_type *rtype, ffi_type **atypes)`
///
/// # Safety
///
/// `cif` must be writable; `rtype` and the `nargs` entries of `atypes` must
/// be valid `ffi_type`s (aggregates with NULL-terminated `elements`); the
/// types and `atypes` must outlive every use of the cif, as in libffi.
pub unsafe extern "C" fn ffi_prep_cif(
    cif: *mut FfiCif,
    abi: FfiAbi,
    nargs: c_uint,
    rtype: *mut FfiType,
    atypes: *mut *mut FfiType,
) -> FfiStatus {
    // SAFETY: forwarded contract.
    match unsafe { prep_cif_core(cif, abi, false, nargs, nargs, rtype, atypes) } {
        Ok(()) => FFI_OK,
        Err(s) => s,
    }
}

/// `ffi_status ffi_prep_cif_var(ffi_cif *cif, ffi_abi abi, unsigned
/// nfixedargs, unsigned ntotalargs, ffi_type *rtype, ffi_type **atypes)`.
/// As libffi: a variadic argument of type `float`, or of an integer type
/// narrower than `int`, is `FFI_BAD_ARGTYPE` (C's default argument
/// promotions, C11 §6.5.2.2p6-7, make such arguments impossible).
///
/// # Safety
///
/// As for [`ffi_prep_cif`] with `ntotalargs` entries in `atypes`.
pub unsafe extern "C" fn ffi_prep_cif_var(
    cif: *mut FfiCif,
    abi: FfiAbi,
    nfixedargs: c_uint,
    ntotalargs: c_uint,
    rtype: *mut FfiType,
    atypes: *mut *mut FfiType,
) -> FfiStatus {
    // SAFETY: forwarded contract.
    if let Err(s) = unsafe { prep_cif_core(cif, abi, true, nfixedargs, ntotalargs, rtype, atypes) }
    {
        return s;
    }
    for i in nfixedargs..ntotalargs {
        // SAFETY: atypes has ntotalargs valid entries (checked non-null by
        // prep_cif_core).
        let t = unsafe { &**atypes.add(i as usize) };
        let small_int = t.type_ != types::FFI_TYPE_STRUCT
            && t.type_ != types::FFI_TYPE_COMPLEX
            && t.size < std::mem::size_of::<c_int>();
        if t.type_ == types::FFI_TYPE_FLOAT || small_int {
            return FFI_BAD_ARGTYPE;
        }
    }
    FFI_OK
}

/// `void ffi_call(ffi_cif *cif, void (*fn)(void), void *rvalue, void **avalue)`
///
/// # Safety
///
/// `cif` must have been prepared by `ffi_prep_cif(_var)`; `fn` must be a
/// function of the cif's type; `avalue[i]` must point at argument `i` as
/// its C type; `rvalue` must be NULL or hold the result (at least
/// `sizeof(ffi_arg)` bytes for integral results, `sizeof` otherwise).
pub unsafe extern "C-unwind" fn ffi_call(
    cif: *mut FfiCif,
    f: *const c_void,
    rvalue: *mut c_void,
    avalue: *mut *mut c_void,
) {
    // SAFETY: cif is a prepared cif per the contract.
    let Some(p) = (unsafe { prepared_for(cif) }) else {
        die("ffi_call: the cif was not prepared by ffi_prep_cif (or was modified since)")
    };
    let args = avalue as *const c_void;
    match p.ret {
        RetMode::Direct if !rvalue.is_null() => {
            // SAFETY: rvalue holds sizeof(result) == ret_buffer_size bytes;
            // the rest is the caller's contract.
            unsafe { unwinding(p.entry)(f, args, rvalue) }
        }
        RetMode::Void => {
            // SAFETY: nothing is written for a void result.
            unsafe { unwinding(p.entry)(f, args, rvalue) }
        }
        // SAFETY: forwarded contract.
        mode => unsafe { call_via_scratch(p, mode, f, args, rvalue) },
    }
}

/// A trampoline entry, typed as what it is to an unwinder: code that a C++
/// exception thrown by the callee may pass through (x86-64 trampolines
/// have unwind tables, `crate::unwind`). Calling it as a plain `extern
/// "C"` function would tell rustc it cannot unwind, and then an exception
/// reaching a Rust frame that has any landing pad aborts the process
/// (libffi's `unwindtest_ffi_call.cc`). `ffi_call` itself is
/// `extern "C-unwind"` for the same reason.
type UnwindingEntry = unsafe extern "C-unwind" fn(*const c_void, *const c_void, *mut c_void);

#[inline(always)]
fn unwinding(e: Entry) -> UnwindingEntry {
    // SAFETY: the same function with the same calling convention; only
    // whether it may unwind differs, and it may.
    unsafe { std::mem::transmute::<Entry, UnwindingEntry>(e) }
}

/// `ffi_call` for results that need adjusting (widened or copied): the
/// trampoline writes into scratch, then the result goes to `rvalue`. Kept
/// out of line so that `ffi_call`'s common path needs no stack frame and
/// ends in a tail jump into the trampoline.
///
/// # Safety
///
/// As for [`ffi_call`], with `p` the cif's prepared entry.
#[inline(never)]
unsafe fn call_via_scratch(
    p: &Prepared,
    mode: RetMode,
    f: *const c_void,
    args: *const c_void,
    rvalue: *mut c_void,
) {
    let mut small = [0u64; 32];
    let mut big: Vec<u64>;
    let scratch: *mut u64 = if p.ret_buffer <= std::mem::size_of_val(&small) {
        small.as_mut_ptr()
    } else {
        big = vec![0u64; p.ret_buffer.div_ceil(8)];
        big.as_mut_ptr()
    };
    // SAFETY: scratch holds ret_buffer_size bytes, 8-aligned.
    unsafe { unwinding(p.entry)(f, args, scratch.cast()) };
    if rvalue.is_null() {
        return;
    }
    match mode {
        RetMode::Widen { size, signed } => {
            // SAFETY: the trampoline stored `size` bytes at scratch.
            let v: u64 = unsafe {
                match (size, signed) {
                    (1, true) => *(scratch as *const i8) as i64 as u64,
                    (1, false) => *(scratch as *const u8) as u64,
                    (2, true) => *(scratch as *const i16) as i64 as u64,
                    (2, false) => *(scratch as *const u16) as u64,
                    (4, true) => *(scratch as *const i32) as i64 as u64,
                    _ => *(scratch as *const u32) as u64,
                }
            };
            // SAFETY: rvalue holds an ffi_arg for integral results
            // (libffi's documented rule).
            unsafe { (rvalue as *mut u64).write_unaligned(v) };
        }
        RetMode::Copy { size } => {
            // SAFETY: rvalue holds sizeof(result) bytes; scratch holds at
            // least as many.
            unsafe { std::ptr::copy_nonoverlapping(scratch as *const u8, rvalue.cast(), size) };
        }
        // Direct with a NULL rvalue, or Void: nothing to store.
        RetMode::Direct | RetMode::Void => {}
    }
}

/// `ffi_status ffi_get_struct_offsets(ffi_abi abi, ffi_type *struct_type,
/// size_t *offsets)`: lays the struct out (initialising its size and
/// alignment) and writes each member's offset when `offsets` is not NULL.
///
/// # Safety
///
/// `struct_type` must be a valid struct `ffi_type`; `offsets` NULL or room
/// for one `size_t` per member.
pub unsafe extern "C" fn ffi_get_struct_offsets(
    abi: FfiAbi,
    struct_type: *mut FfiType,
    offsets: *mut usize,
) -> FfiStatus {
    if let Err(s) = jitffi_abi(abi) {
        return s;
    }
    // SAFETY: valid per the contract (NULL checked).
    if struct_type.is_null() || unsafe { (*struct_type).type_ } != types::FFI_TYPE_STRUCT {
        return FFI_BAD_TYPEDEF;
    }
    let offs = (!offsets.is_null()).then_some(offsets);
    // SAFETY: forwarded contract.
    match unsafe { initialize_aggregate(struct_type, offs, 0) } {
        Ok(()) => FFI_OK,
        Err(s) => s,
    }
}
