//! Forward trampolines: the Rust API over plan + emitter + code arena.
//!
//! A [`Trampoline`] is a signature compiled once into machine code that
//! calls a C function of that signature:
//!
//! ```text
//! entry(target, args, ret)
//! ```
//!
//! `args` is either an array of pointers to each argument
//! ([`ArgMode::Pointers`], libffi-style) or a packed frame with each
//! argument at [`Trampoline::frame_offsets`] ([`ArgMode::Frame`]); `ret`
//! receives the result as its C type and must hold
//! [`Trampoline::ret_buffer_size`] bytes.

use std::collections::HashMap;
use std::ffi::c_void;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock, Weak};

use crate::abi::CallPlan;
use crate::arch::{ArgSource, Target};
use crate::exec::Code;
use crate::types::{Isa, Signature};
use crate::Error;

/// How a trampoline finds its arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ArgMode {
    /// `args` is `void *const *`: argument `i`'s value is at `args[i]`.
    Pointers,
    /// `args` points at a packed frame: argument `i`'s value is at
    /// `args + frame_offsets()[i]` (see [`Signature::frame_layout`]).
    Frame,
}

/// The type of a trampoline's entry point. It is called with the host's C
/// convention (SysV AMD64 on x86-64 Linux), whatever the callee's ABI.
pub type Entry = unsafe extern "C" fn(*const c_void, *const c_void, *mut c_void);

/// A compiled forward trampoline. Immutable once built: `Send + Sync`, and
/// callable from any number of threads at once. Cloning is cheap (the code
/// is shared), and compiling an identical signature again (same mode, same
/// bound target) returns the code already compiled, while any handle to it
/// is alive.
#[derive(Clone)]
pub struct Trampoline {
    inner: Arc<Compiled>,
}

struct Compiled {
    sig: Signature,
    plan: CallPlan,
    mode: ArgMode,
    bound: bool,
    offsets: Vec<u32>,
    frame_size: usize,
    entry: Entry,
    /// The code's unwind tables, registered with the unwinder (x86-64 and
    /// AArch64 Linux); dropped, and so deregistered, before the code is
    /// freed.
    _unwind: crate::unwind::Registration,
    /// Owns the executable memory `entry` points into; declared last so it
    /// is dropped after everything else.
    code: Code,
}

impl fmt::Debug for Trampoline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &*self.inner;
        f.debug_struct("Trampoline")
            .field("signature", &c.sig.c_decl())
            .field("abi", &c.sig.abi)
            .field("mode", &c.mode)
            .field("bound", &c.bound)
            .field("entry", &c.code.as_ptr())
            .field("code_len", &c.code.len())
            .finish()
    }
}

/// Whether the emitted x86-64 trampoline can be entered with this host's C
/// convention. The emitter writes a SysV-convention entry (parameters in
/// rdi, rsi, rdx; SysV callee-saved set); a Windows host's `extern "C"`
/// is the Microsoft convention, which it does not implement.
const HOST_ENTRY_IS_SYSV: bool = cfg!(all(target_arch = "x86_64", not(windows)));

/// One cache entry: what makes two compilations produce the same code (the
/// signature without its name, the mode, the bound target), and the code.
struct CacheEntry {
    sig: Signature,
    mode: ArgMode,
    target: Option<usize>,
    code: Weak<Compiled>,
}

/// Compiled trampolines, bucketed by a hash of their key. Entries are weak:
/// the cache never keeps code alive by itself, and dead entries are swept
/// as the map grows.
struct Cache {
    buckets: HashMap<u64, Vec<CacheEntry>>,
    entries: usize,
    sweep_at: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| {
        Mutex::new(Cache {
            buckets: HashMap::new(),
            entries: 0,
            sweep_at: 64,
        })
    })
}

/// FxHash (rustc's hasher): a multiply-rotate per word. The cache is keyed
/// by trusted data and hit on every compile, so a fast hash matters more
/// than DoS resistance here.
struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut w = [0u8; 8];
            w[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(w));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.write_u64(i as u64);
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_usize(&mut self, i: usize) {
        self.write_u64(i as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Hash of everything that determines the code (not the function name).
fn key_hash(sig: &Signature, mode: ArgMode, target: Option<usize>) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = FxHasher(0);
    sig.abi.hash(&mut h);
    sig.ret.hash(&mut h);
    sig.args.hash(&mut h);
    sig.fixed_args.hash(&mut h);
    sig.variadic.hash(&mut h);
    mode.hash(&mut h);
    target.hash(&mut h);
    h.finish()
}

/// Whether two signatures compile to the same code (names aside).
fn same_code(a: &Signature, b: &Signature) -> bool {
    a.abi == b.abi
        && a.fixed_args == b.fixed_args
        && a.variadic == b.variadic
        && a.ret == b.ret
        && a.args == b.args
}

/// Plans and emits the machine code of a forward trampoline, without
/// installing it: works for every ABI on every host (used by `explain` and
/// golden tests). Returns the plan and the code.
pub fn emit(
    sig: &Signature,
    mode: ArgMode,
    target: Option<*const c_void>,
) -> Result<(CallPlan, Vec<u8>), Error> {
    emit_with_unwind(sig, mode, target).map(|(plan, bytes, _)| (plan, bytes))
}

/// A plan, its code, and the code's frame changes (`crate::unwind`).
type Emitted = (CallPlan, Vec<u8>, Vec<crate::unwind::UnwindRow>);

/// [`emit`], with the frame changes for the unwind tables (both emitters
/// report them, for code of either instruction set on any host; only
/// host code is ever registered).
fn emit_with_unwind(
    sig: &Signature,
    mode: ArgMode,
    target: Option<*const c_void>,
) -> Result<Emitted, Error> {
    // The emitters validate the plan before reading it.
    let plan = crate::abi::plan(sig)?;
    let (offsets, _) = sig.frame_layout();
    let source = match mode {
        ArgMode::Pointers => ArgSource::Pointers,
        ArgMode::Frame => ArgSource::Frame(&offsets),
    };
    let bind = match target {
        None => Target::Unbound,
        Some(p) if p.is_null() => {
            return Err(Error::Argument(
                "cannot bind a null function pointer".into(),
            ))
        }
        Some(p) => Target::Bound(p as usize as u64),
    };
    let (bytes, rows) = match sig.abi.isa() {
        Isa::X86_64 => crate::arch::x86_64::emit_forward_with_unwind(sig, &plan, source, bind)?,
        Isa::Aarch64 => crate::arch::aarch64::emit_forward_with_unwind(sig, &plan, source, bind)?,
    };
    Ok((plan, bytes, rows))
}

impl Trampoline {
    /// Plans (`crate::abi::plan`), validates, emits, and installs into
    /// executable memory — or returns the trampoline already compiled for
    /// the same signature, mode and target.
    ///
    /// `target`: `None` compiles an unbound trampoline (the callee is given
    /// per call); `Some(f)` bakes `f` into the code.
    pub fn compile(
        sig: &Signature,
        mode: ArgMode,
        target: Option<*const c_void>,
    ) -> Result<Trampoline, Error> {
        if !sig.abi.executable_here() {
            return Err(Error::NotExecutable(sig.abi));
        }
        if sig.abi.isa() == Isa::X86_64 && !HOST_ENTRY_IS_SYSV {
            return Err(Error::Emit(
                "trampolines entered with the Microsoft x64 convention are not implemented".into(),
            ));
        }
        let target_key = target.map(|p| p as usize);
        let hash = key_hash(sig, mode, target_key);
        // A poisoned lock only means another thread panicked mid-insert; the
        // map itself is always consistent, so keep using it.
        let mut cache = cache().lock().unwrap_or_else(|e| e.into_inner());
        let hit = cache.buckets.get(&hash).and_then(|bucket| {
            bucket
                .iter()
                .find(|e| e.mode == mode && e.target == target_key && same_code(&e.sig, sig))
                .and_then(|e| e.code.upgrade())
        });
        if let Some(inner) = hit {
            return Ok(Trampoline { inner });
        }
        let (plan, bytes, rows) = emit_with_unwind(sig, mode, target)?;
        let (offsets, frame_size) = sig.frame_layout();
        // SAFETY: the rows are the emitter's account of exactly these
        // bytes; the registration is stored next to `code` and dropped
        // before it. The code is the host's instruction set
        // (`executable_here`, checked above).
        let (code, unwind) = unsafe {
            crate::unwind::install_described(crate::perfmap::Kind::Call, sig, &bytes, &rows)
        }?;
        // SAFETY: `code` holds the instructions just emitted for exactly this
        // entry type (three pointer parameters in the host C convention, no
        // result), installed executable; it lives as long as the Compiled
        // that holds it, and the pointer is only called through
        // `call_raw`/`call`, or handed out by `entry`, whose callers must
        // keep the Trampoline alive.
        let entry = unsafe { std::mem::transmute::<*const u8, Entry>(code.as_ptr()) };
        let inner = Arc::new(Compiled {
            sig: sig.clone(),
            plan,
            mode,
            bound: target.is_some(),
            offsets,
            frame_size: frame_size as usize,
            entry,
            _unwind: unwind,
            code,
        });
        if cache.entries >= cache.sweep_at {
            // Drop dead entries; the next sweep comes when the live ones
            // have doubled, so sweeping costs O(1) per insert on average.
            cache.buckets.retain(|_, b| {
                b.retain(|e| e.code.strong_count() > 0);
                !b.is_empty()
            });
            cache.entries = cache.buckets.values().map(Vec::len).sum();
            cache.sweep_at = (cache.entries * 2).max(64);
        }
        let mut key_sig = sig.clone();
        key_sig.name = None;
        cache.buckets.entry(hash).or_default().push(CacheEntry {
            sig: key_sig,
            mode,
            target: target_key,
            code: Arc::downgrade(&inner),
        });
        cache.entries += 1;
        Ok(Trampoline { inner })
    }

    /// The signature this trampoline was compiled from.
    pub fn signature(&self) -> &Signature {
        &self.inner.sig
    }

    /// The call plan the code implements.
    pub fn plan(&self) -> &CallPlan {
        &self.inner.plan
    }

    /// How the trampoline reads its arguments.
    pub fn mode(&self) -> ArgMode {
        self.inner.mode
    }

    /// Whether the callee is baked into the code.
    pub fn is_bound(&self) -> bool {
        self.inner.bound
    }

    /// The compiled entry point. It is valid only while `self` is alive.
    pub fn entry(&self) -> Entry {
        self.inner.entry
    }

    /// Calls the target through the trampoline, unchecked.
    ///
    /// # Safety
    ///
    /// - `target` must be a function of the signature's type and ABI
    ///   (ignored when the trampoline is bound);
    /// - `args` must match the mode and the signature: in pointer mode an
    ///   array of one valid pointer per argument, each to a value of the
    ///   argument's C type; in frame mode a readable frame of
    ///   [`frame_size`](Self::frame_size) bytes with each argument's value at
    ///   its [`frame_offsets`](Self::frame_offsets) entry;
    /// - `ret` must be writable for [`ret_buffer_size`](Self::ret_buffer_size)
    ///   bytes (it may be null when that is 0);
    /// - whatever the callee itself requires of its arguments.
    pub unsafe fn call_raw(&self, target: *const c_void, args: *const c_void, ret: *mut c_void) {
        // SAFETY: the caller upholds the contract above, which is exactly
        // what the emitted code relies on.
        unsafe { (self.inner.entry)(target, args, ret) }
    }

    /// Like [`call_raw`](Self::call_raw), with errno captured around the
    /// call the way ctypes' `use_errno` does: the calling thread's errno is
    /// set to `*errno` just before the call, and `*errno` receives the
    /// thread's errno right after it (the trampoline itself never touches
    /// errno, and nothing runs between the callee's return and the read).
    ///
    /// # Safety
    /// As [`call_raw`](Self::call_raw).
    pub unsafe fn call_raw_errno(
        &self,
        target: *const c_void,
        args: *const c_void,
        ret: *mut c_void,
        errno: &mut i32,
    ) {
        let slot = errno_location();
        // SAFETY: errno_location is the calling thread's errno; the call's
        // contract is the caller's.
        unsafe {
            *slot = *errno;
            (self.inner.entry)(target, args, ret);
            *errno = *slot;
        }
    }

    /// Calls the target with `args[i]` pointing at argument `i`, checking
    /// what can be checked: pointer mode, the argument count, and non-null
    /// `target` (when unbound) and `ret` (when the result is not void).
    ///
    /// # Safety
    ///
    /// As [`call_raw`](Self::call_raw): `target` must be a function of the
    /// signature's type, each `args[i]` must point at a value of argument
    /// `i`'s C type, and `ret` must be writable for `ret_buffer_size()`
    /// bytes.
    pub unsafe fn call(
        &self,
        target: *const c_void,
        args: &[*const c_void],
        ret: *mut c_void,
    ) -> Result<(), Error> {
        if self.inner.mode != ArgMode::Pointers {
            return Err(Error::Argument(
                "Trampoline::call needs a pointer-mode trampoline; use call_raw with a frame"
                    .into(),
            ));
        }
        if args.len() != self.inner.sig.args.len() {
            return Err(Error::Argument(format!(
                "{} takes {} arguments, {} given",
                self.inner.sig.c_decl(),
                self.inner.sig.args.len(),
                args.len()
            )));
        }
        if !self.inner.bound && target.is_null() {
            return Err(Error::Argument("null target function".into()));
        }
        if ret.is_null() && self.ret_buffer_size() > 0 {
            return Err(Error::Argument("null result buffer".into()));
        }
        if let Some(i) = args.iter().position(|p| p.is_null()) {
            return Err(Error::Argument(format!(
                "argument {} is a null pointer",
                i + 1
            )));
        }
        // SAFETY: the checks above cover the mode, count and null pointers;
        // the rest is the caller's contract, forwarded unchanged.
        unsafe { self.call_raw(target, args.as_ptr().cast(), ret) };
        Ok(())
    }

    /// Frame mode: the offset of each argument in the frame.
    pub fn frame_offsets(&self) -> &[u32] {
        &self.inner.offsets
    }

    /// Frame mode: the frame's size in bytes (a multiple of 16).
    pub fn frame_size(&self) -> usize {
        self.inner.frame_size
    }

    /// Bytes the `ret` buffer must hold (see [`Signature::ret_buffer_size`]).
    pub fn ret_buffer_size(&self) -> usize {
        self.inner.sig.ret_buffer_size()
    }

    /// The installed machine code.
    pub fn code(&self) -> &[u8] {
        self.inner.code.bytes()
    }
}

/// The calling thread's `errno`.
fn errno_location() -> *mut i32 {
    // SAFETY: these libc functions only return the thread's errno address.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    unsafe {
        libc::__errno_location()
    }
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "freebsd"))]
    unsafe {
        libc::__error()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn trampoline_is_send_and_sync() {
        assert_send_sync::<Trampoline>();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn errno_is_captured_after_the_call() {
        // strtol sets errno to ERANGE on overflow (C11 7.22.1.4) and leaves
        // it alone otherwise.
        let abi = crate::Abi::host().unwrap();
        let sig =
            crate::cdecl::parse_signature("long strtol(const char *, char **, int)", abi).unwrap();
        let t = Trampoline::compile(&sig, ArgMode::Pointers, Some(libc::strtol as *const c_void))
            .unwrap();
        let run = |text: &std::ffi::CStr, errno: &mut i32| -> i64 {
            let (s, end, base): (*const i8, *mut *mut i8, i32) =
                (text.as_ptr().cast(), std::ptr::null_mut(), 10);
            let args: [*const c_void; 3] = [
                (&s as *const *const i8).cast(),
                (&end as *const *mut *mut i8).cast(),
                (&base as *const i32).cast(),
            ];
            let mut r = 0i64;
            // SAFETY: strtol's signature; args point at its three values.
            unsafe {
                t.call_raw_errno(
                    std::ptr::null(),
                    args.as_ptr().cast(),
                    (&mut r as *mut i64).cast(),
                    errno,
                )
            };
            r
        };
        let mut errno = 0;
        assert_eq!(run(c"99999999999999999999999", &mut errno), i64::MAX);
        assert_eq!(errno, libc::ERANGE);
        // The value passed in is what the callee sees (strtol keeps it).
        let mut errno = 1234;
        assert_eq!(run(c"42", &mut errno), 42);
        assert_eq!(errno, 1234);
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn identical_signatures_share_code() {
        let sig = crate::cdecl::parse_signature("long f(long, long)", crate::Abi::SysV64).unwrap();
        let a = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
        let b = Trampoline::compile(&sig, ArgMode::Pointers, None).unwrap();
        assert_eq!(a.entry() as usize, b.entry() as usize);
        let c = Trampoline::compile(&sig, ArgMode::Frame, None).unwrap();
        assert_ne!(a.entry() as usize, c.entry() as usize);
    }
}
