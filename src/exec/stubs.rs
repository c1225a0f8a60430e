//! Closure stub pages: one tiny stub of code per closure, and its data slot.
//!
//! Memory comes in *runs*: [`STUB_PAGES`] pages of identical stubs (RX),
//! followed immediately by as many pages of 32-byte data slots (RW, never
//! executable). Stub *i* at `run + 32 i` finds its slot at
//! `run + STUB_PAGES * page + 32 i`: a fixed PC-relative distance, so all
//! stubs are byte-for-byte the same and are written once, before their pages
//! become executable, and never again (DESIGN.md "Executable memory").
//!
//! Creating a closure only writes data: a slot is taken from a free list and
//! filled in; no `mmap` or `mprotect` happens unless every slot is in use, in
//! which case a new run is mapped. Runs are never unmapped (a stale function
//! pointer into a freed closure then always reaches the trap, never an
//! unmapped page).
//!
//! A slot is published by writing its body address last, with `Release`
//! ordering, after the handler, context and spare word. A freed slot's body
//! is [`freed_closure_trap`], which reports `jitffi: called a freed closure`
//! on stderr and aborts, until the slot is reused.

use std::ffi::c_void;
use std::io;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Stub pages per run (and data pages per run): 4 pages of 4 KiB hold 512
/// closures, with two mappings (one RX, one RW) per run.
pub const STUB_PAGES: usize = 4;

/// Bytes of one stub and of one data slot.
pub const SLOT_SIZE: usize = 32;

/// The handler signature every closure calls: `handler(ctx, args, ret)`.
pub type Handler = extern "C" fn(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);

/// One closure's data, as the stub and the body read it (offsets fixed by
/// the emitters: body 0, handler 8, ctx 16, aux 24).
#[repr(C)]
pub struct Slot {
    /// The code the stub jumps to (a signature's closure body, or the trap).
    pub body: AtomicPtr<u8>,
    /// `handler(ctx, args, ret)`, as an address.
    pub handler: AtomicUsize,
    /// The handler's first argument.
    pub ctx: AtomicPtr<c_void>,
    /// A spare word for the owner.
    pub aux: AtomicUsize,
}

const _: () = assert!(std::mem::size_of::<Slot>() == SLOT_SIZE);

/// The body of a freed slot: entered (by a jump, with the caller's
/// arguments, which it ignores) when a C caller calls a closure after it was
/// freed. Writes `jitffi: called a freed closure` to stderr and aborts.
pub extern "C" fn freed_closure_trap() -> ! {
    const MSG: &[u8] = b"jitffi: called a freed closure\n";
    // SAFETY: write(2) on fd 2 with a valid buffer of MSG.len() bytes, then
    // abort(3); no allocation and no lock (this runs on a foreign frame).
    unsafe {
        libc::write(2, MSG.as_ptr().cast(), MSG.len());
        libc::abort()
    }
}

/// Address of the trap, as stored in a freed slot's body word.
fn trap_addr() -> *mut u8 {
    freed_closure_trap as *const () as *mut u8
}

/// A slot taken from the pool; freed (body reset to the trap, slot back on
/// the free list) when dropped.
#[derive(Debug)]
pub struct StubSlot {
    slot: *const Slot,
    code: *const u8,
}

// SAFETY: the slot's words are atomics, and the slot is owned by exactly one
// StubSlot at a time (the free list hands each slot out once).
unsafe impl Send for StubSlot {}
// SAFETY: as above; `&StubSlot` only reads addresses or writes atomics.
unsafe impl Sync for StubSlot {}

impl StubSlot {
    /// The stub's address: the closure's C function pointer.
    pub fn code_ptr(&self) -> *const u8 {
        self.code
    }

    /// The data slot.
    pub fn slot(&self) -> &Slot {
        // SAFETY: slots live in pages that are never unmapped.
        unsafe { &*self.slot }
    }

    /// Fills the slot and publishes it: `body` is written last, with
    /// `Release` ordering, so a thread that sees the body sees the rest.
    ///
    /// # Safety
    ///
    /// `body` must be a closure body compiled for the slot layout, and
    /// `handler` and `ctx` must be valid for that body's calls for as long as
    /// the slot stays published (until it is dropped or published again).
    pub unsafe fn publish(&self, body: *const u8, handler: Handler, ctx: *mut c_void, aux: usize) {
        let s = self.slot();
        s.handler.store(handler as usize, Ordering::Relaxed);
        s.ctx.store(ctx, Ordering::Relaxed);
        s.aux.store(aux, Ordering::Relaxed);
        s.body.store(body.cast_mut(), Ordering::Release);
    }
}

impl Drop for StubSlot {
    fn drop(&mut self) {
        self.slot().body.store(trap_addr(), Ordering::Release);
        pool().free(self.slot as usize, self.code as usize);
    }
}

/// The process-wide pool of slots.
struct Pool {
    /// Free `(slot address, stub address)` pairs.
    free: Mutex<Vec<(usize, usize)>>,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| Pool {
        free: Mutex::new(Vec::new()),
    })
}

impl Pool {
    fn free(&self, slot: usize, code: usize) {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        f.push((slot, code));
    }

    fn take(&self) -> io::Result<(usize, usize)> {
        let mut f = self.free.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(x) = f.pop() {
            return Ok(x);
        }
        // Mapping under the lock: other creators wait for the new run
        // rather than each mapping one.
        let run = map_run()?;
        f.extend(run.into_iter().rev());
        f.pop()
            .ok_or_else(|| io::Error::other("a new stub run has no slots"))
    }
}

/// Takes a free slot (mapping a new run when all are in use). The slot's
/// body is the trap until [`StubSlot::publish`].
pub fn alloc_slot() -> io::Result<StubSlot> {
    let (slot, code) = pool().take()?;
    Ok(StubSlot {
        slot: slot as *const Slot,
        code: code as *const u8,
    })
}

/// How many bytes of stubs one run holds.
fn run_bytes() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    let page = *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    });
    STUB_PAGES * page
}

/// Maps a run: RW stub pages and slot pages, stubs written, slots set to
/// the trap, then the stub pages flipped to RX. Returns `(slot, stub)`
/// address pairs, in ascending order.
fn map_run() -> io::Result<Vec<(usize, usize)>> {
    let bytes = run_bytes();
    let stub = host_stub(bytes as i64)?;
    // SAFETY: an anonymous private mapping at an address of the kernel's
    // choosing; no existing memory is affected.
    let base = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            2 * bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let base = base.cast::<u8>();
    let n = bytes / SLOT_SIZE;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: `base` is a fresh RW mapping of 2 * bytes; stub i occupies
        // base + 32 i .. + 32 < base + bytes, slot i base + bytes + 32 i .. +
        // 32 < base + 2 bytes. Nothing else references the mapping yet.
        unsafe {
            let code = base.add(i * SLOT_SIZE);
            std::ptr::copy_nonoverlapping(stub.as_ptr(), code, SLOT_SIZE);
            let slot = base.add(bytes + i * SLOT_SIZE).cast::<Slot>();
            slot.write(Slot {
                body: AtomicPtr::new(trap_addr()),
                handler: AtomicUsize::new(0),
                ctx: AtomicPtr::new(std::ptr::null_mut()),
                aux: AtomicUsize::new(0),
            });
            out.push((slot as usize, code as usize));
        }
    }
    // SAFETY: the first `bytes` of the mapping hold only the stubs written
    // above; from here they are read-execute and never written again. The
    // slot pages keep READ_WRITE and are never executable (W^X).
    let rc = unsafe { libc::mprotect(base.cast(), bytes, libc::PROT_READ | libc::PROT_EXEC) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        // SAFETY: the mapping is ours and nothing refers to it yet.
        unsafe { libc::munmap(base.cast(), 2 * bytes) };
        return Err(e);
    }
    // AArch64: the stubs were written through the data side; clean and
    // invalidate before first execution (qemu does not model stale icaches,
    // so this is covered by review). Nothing on x86-64.
    // SAFETY: the first `bytes` of the mapping are readable (RX) stubs.
    crate::arch::aarch64::closure::sync_icache(unsafe {
        std::slice::from_raw_parts(base.cast_const(), bytes)
    });
    // Runs live for the rest of the process (see the module docs).
    Ok(out)
}

/// The stub bytes of the host's instruction set.
fn host_stub(slot_distance: i64) -> io::Result<[u8; SLOT_SIZE]> {
    #[cfg(target_arch = "x86_64")]
    {
        crate::arch::x86_64::closure::stub_bytes(slot_distance)
            .map_err(|e| io::Error::other(e.to_string()))
    }
    #[cfg(target_arch = "aarch64")]
    {
        crate::arch::aarch64::closure::stub_bytes(slot_distance)
            .map_err(|e| io::Error::other(e.to_string()))
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        let _ = slot_distance;
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "closure stubs are not implemented for this host's instruction set",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_reused_and_reset_to_the_trap() {
        let a = alloc_slot().unwrap();
        assert_eq!(a.slot().body.load(Ordering::Acquire), trap_addr());
        let (s, c) = (a.slot as usize, a.code as usize);
        // Stub and slot are STUB_PAGES pages apart.
        assert_eq!(s - c, run_bytes());
        drop(a);
        // LIFO: the slot just freed is handed out next (unless another test
        // thread took it; then just check the invariant).
        let b = alloc_slot().unwrap();
        assert_eq!(b.slot().body.load(Ordering::Acquire), trap_addr());
        assert_eq!(b.slot as usize - b.code as usize, run_bytes());
    }
}
