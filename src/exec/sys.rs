//! Thin wrappers over the memory-mapping system calls the arena needs.
//!
//! Every function returns `std::io::Error::last_os_error()` on failure, so the
//! caller can report what the kernel said. Nothing here decides policy.

use std::io;
use std::ptr::NonNull;

/// The size of a virtual-memory page (4 KiB on x86-64; 4, 16 or 64 KiB on
/// AArch64 Linux depending on the kernel; 16 KiB on Apple arm64).
#[cfg(unix)]
pub(super) fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions; it only reads a system value.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 && (n as usize).is_power_of_two() {
        n as usize
    } else {
        4096
    }
}

/// An address hint for new code chunks: just below the program's own text,
/// moving down as chunks are mapped. Generated code then sits within a few
/// hundred MiB of the code that calls it (the runtime) rather than 4+ GiB
/// away in the mmap area: measured on x86-64, the same trampoline bytes
/// cost about 1.5 ns more per call when placed far from their caller and
/// callee (branch target buffers predict near targets better).
#[cfg(unix)]
fn near_code_hint(len: usize) -> *mut libc::c_void {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    const GAP: usize = 64 << 20; // leave room below the program for its own growth
    let text = near_code_hint as *const () as usize & !((2 << 20) - 1);
    let mut cur = NEXT.load(Ordering::Relaxed);
    loop {
        let base = if cur == 0 {
            text.saturating_sub(GAP)
        } else {
            cur
        };
        let Some(next) = base.checked_sub(len).filter(|n| *n > (1 << 32)) else {
            // Too close to the bottom of the address space: let the kernel
            // choose.
            return std::ptr::null_mut();
        };
        match NEXT.compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next as *mut libc::c_void,
            Err(seen) => cur = seen,
        }
    }
}

/// Maps `len` bytes (a multiple of the page size) of fresh, zeroed, private
/// anonymous memory, readable and writable, never executable.
#[cfg(unix)]
pub(super) fn map_rw(len: usize) -> io::Result<NonNull<u8>> {
    // SAFETY: a private anonymous mapping without MAP_FIXED cannot alias or
    // disturb any existing memory: the address is only a hint, which the
    // kernel ignores when that range is taken.
    let p = unsafe {
        libc::mmap(
            near_code_hint(len),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANON,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap returned null"))
}

/// Makes `[ptr, ptr + len)` readable and executable, no longer writable.
///
/// # Safety
/// `ptr` must be page-aligned, `len` a multiple of the page size, and the
/// range must lie inside a mapping this module created and still owns; no
/// Rust reference may be writing into it.
#[cfg(unix)]
pub(super) unsafe fn protect_rx(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees the range is our own mapping; dropping
    // PROT_WRITE cannot invalidate any live reference (the caller holds none
    // that write).
    let r = unsafe { libc::mprotect(ptr.cast(), len, libc::PROT_READ | libc::PROT_EXEC) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Unmaps `[ptr, ptr + len)`.
///
/// # Safety
/// The range must be page-aligned memory this module mapped, and nothing may
/// use it (run, read or write it) afterwards.
#[cfg(unix)]
pub(super) unsafe fn unmap(ptr: *mut u8, len: usize) -> io::Result<()> {
    // SAFETY: the caller guarantees ownership and that the range is dead.
    let r = unsafe { libc::munmap(ptr.cast(), len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Atomically moves the mapping `[src, src + len)` onto `[dst, dst + len)`,
/// replacing whatever was mapped there (Linux `mremap` with
/// `MREMAP_MAYMOVE | MREMAP_FIXED`). On success `src` is no longer mapped.
///
/// The whole operation runs under the process's mmap write lock: a thread
/// that faults on `dst` meanwhile waits and then sees the new pages, never a
/// hole.
///
/// # Safety
/// `src` must be a whole private anonymous mapping this module created, `dst`
/// page-aligned memory this module owns, `len` a multiple of the page size.
/// Anything running at `dst` must find identical bytes in the new pages.
#[cfg(target_os = "linux")]
pub(super) unsafe fn move_over(src: *mut u8, len: usize, dst: *mut u8) -> io::Result<()> {
    // SAFETY: the caller guarantees both ranges are ours and that replacing
    // `dst` is invisible to code running there.
    let p = unsafe {
        libc::mremap(
            src.cast(),
            len,
            len,
            libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED,
            dst.cast::<libc::c_void>(),
        )
    };
    if p == libc::MAP_FAILED {
        Err(io::Error::last_os_error())
    } else if p.cast::<u8>() != dst {
        // Cannot happen with MREMAP_FIXED; treat as failure rather than trust it.
        Err(io::Error::other(
            "mremap moved the mapping to the wrong address",
        ))
    } else {
        Ok(())
    }
}

/// Without Linux's `mremap`, the arena falls back to fresh pages.
///
/// # Safety
/// Always fails; no preconditions beyond the Linux version's.
#[cfg(not(target_os = "linux"))]
pub(super) unsafe fn move_over(_src: *mut u8, _len: usize, _dst: *mut u8) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(not(unix))]
pub(super) fn page_size() -> usize {
    4096
}

#[cfg(not(unix))]
pub(super) fn map_rw(_len: usize) -> io::Result<NonNull<u8>> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "jitffi's executable memory needs a Unix mmap",
    ))
}

/// # Safety
/// Never called: `map_rw` always fails on this platform.
#[cfg(not(unix))]
pub(super) unsafe fn protect_rx(_ptr: *mut u8, _len: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// # Safety
/// Never called: `map_rw` always fails on this platform.
#[cfg(not(unix))]
pub(super) unsafe fn unmap(_ptr: *mut u8, _len: usize) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}
