//! Closure stub pages: one tiny stub of code per closure, and its data slot.
//!
//! Memory comes in *runs*: [`STUB_PAGES`] pages of identical stubs (RX),
//! followed immediately by as many pages of 32-byte data slots (RW, never
//! executable). Stub *i* at `run + 32 i` finds its slot at
//! `run + STUB_PAGES * page + 32 i`: a fixed PC-relative distance, so all
//! stubs are byte-for-byte the same and are written once, before their pages
//! become executable, and never again (DESIGN.md "Executable memory").
//!
//! Creating a closure only writes data: a slot is popped from a lock-free
//! free list and filled in; no `mmap` or `mprotect` happens unless every
//! slot is in use, in which case a new run is mapped (under a mutex that
//! only growth takes). Runs are never unmapped (a stale function pointer into
//! a freed closure then always reaches the trap, never an unmapped page).
//!
//! The free list is intrusive: a free slot's `aux` word holds the address of
//! the next free slot, so the pool allocates nothing per closure (a closure
//! costs its 32-byte stub and its 32-byte slot). It is a Treiber stack whose
//! head packs the top slot's address with a 21-bit tag bumped by every
//! push and pop (the ABA guard: a pop that read a stale `next` fails its
//! compare-exchange because the tag moved). Reading a slot that another
//! thread popped meanwhile is harmless: slots are never unmapped and their
//! words are atomics.
//!
//! In front of the shared list, each thread keeps up to [`CACHE_MAX`] slots
//! it freed (linked the same way, in a thread-local list), so a thread that
//! creates and frees closures does no atomic read-modify-write at all; a
//! thread's cached slots go back to the shared list when it exits.
//!
//! A slot is published by writing its body address last, with `Release`
//! ordering, after the handler, context and spare word. A freed slot's body
//! is [`freed_closure_trap`], which reports `jitffi: called a freed closure`
//! on stderr and aborts, until the slot is reused.

use std::cell::Cell;
use std::ffi::c_void;
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Stub pages per run (and data pages per run): 4 pages of 4 KiB hold 512
/// closures, with two mappings (one RX, one RW) per run.
pub const STUB_PAGES: usize = 4;

/// Bytes of one stub and of one data slot.
pub const SLOT_SIZE: usize = crate::arch::slot::SIZE;

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
// The emitters read the slot at these offsets (arch::slot).
const _: () = {
    use crate::arch::slot;
    assert!(std::mem::offset_of!(Slot, body) == slot::BODY as usize);
    assert!(std::mem::offset_of!(Slot, handler) == slot::HANDLER as usize);
    assert!(std::mem::offset_of!(Slot, ctx) == slot::CTX as usize);
    assert!(std::mem::offset_of!(Slot, aux) == slot::AUX as usize);
};

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
/// the free list) when dropped. One pointer wide: the stub's address is the
/// slot's minus the run's stub bytes.
#[derive(Debug)]
pub struct StubSlot {
    slot: NonNull<Slot>,
}

// SAFETY: the slot's words are atomics, and the slot is owned by exactly one
// StubSlot at a time (the free list hands each slot out once).
unsafe impl Send for StubSlot {}
// SAFETY: as above; `&StubSlot` only reads addresses or writes atomics.
unsafe impl Sync for StubSlot {}

impl StubSlot {
    /// The stub's address: the closure's C function pointer.
    #[inline]
    pub fn code_ptr(&self) -> *const u8 {
        (self.slot.as_ptr() as usize - run_bytes()) as *const u8
    }

    /// The data slot.
    #[inline]
    pub fn slot(&self) -> &Slot {
        // SAFETY: slots live in pages that are never unmapped.
        unsafe { self.slot.as_ref() }
    }

    /// Fills the slot and publishes it: `body` is written last, with
    /// `Release` ordering, so a thread that sees the body sees the rest.
    ///
    /// `handler` is the address of a function the body calls as
    /// `handler(ctx, args, ret, aux)` (host C convention; a [`Handler`]
    /// simply ignores the fourth argument).
    ///
    /// # Safety
    ///
    /// `body` must be a closure body compiled for the slot layout, and
    /// `handler`, `ctx` and `aux` must be valid for that body's calls for as
    /// long as the slot stays published (until it is dropped or published
    /// again).
    #[inline]
    pub unsafe fn publish(&self, body: *const u8, handler: usize, ctx: *mut c_void, aux: usize) {
        let s = self.slot();
        s.handler.store(handler, Ordering::Relaxed);
        s.ctx.store(ctx, Ordering::Relaxed);
        s.aux.store(aux, Ordering::Relaxed);
        s.body.store(body.cast_mut(), Ordering::Release);
    }

    /// Points the stub back at the freed-closure trap, keeping the slot
    /// (for a caller that pools slots with memory of its own; dropping the
    /// slot does this too).
    #[inline]
    pub fn unpublish(&self) {
        self.slot().body.store(trap_addr(), Ordering::Release);
    }
}

impl Drop for StubSlot {
    #[inline]
    fn drop(&mut self) {
        let s = self.slot();
        s.body.store(trap_addr(), Ordering::Release);
        // The freeing thread's cache keeps it (no atomic read-modify-write);
        // when the cache is full or already destroyed, the shared list.
        let kept = CACHE.try_with(|c| c.put(self.slot)).unwrap_or(false);
        if !kept {
            push(s);
        }
    }
}

/// Free slots a thread keeps for itself at most.
const CACHE_MAX: usize = 64;

/// A thread's own free slots, linked through `aux` like the shared list:
/// a thread that creates and frees closures touches no shared atomic. The
/// slots go back to the shared list when the thread exits.
struct Cache {
    head: Cell<usize>,
    len: Cell<usize>,
}

thread_local! {
    static CACHE: Cache = const {
        Cache {
            head: Cell::new(0),
            len: Cell::new(0),
        }
    };
}

impl Cache {
    /// Keeps a freed slot, unless the cache is full.
    #[inline]
    fn put(&self, slot: NonNull<Slot>) -> bool {
        let n = self.len.get();
        if n >= CACHE_MAX {
            return false;
        }
        // SAFETY: a freed slot, owned by nobody; slots are never unmapped.
        unsafe { slot.as_ref() }
            .aux
            .store(self.head.get(), Ordering::Relaxed);
        self.head.set(slot.as_ptr() as usize);
        self.len.set(n + 1);
        true
    }

    /// Takes a slot, if the cache has one.
    #[inline]
    fn take(&self) -> Option<NonNull<Slot>> {
        let top = NonNull::new(self.head.get() as *mut Slot)?;
        // SAFETY: a slot in this thread's cache: free, owned by the cache.
        let next = unsafe { top.as_ref() }.aux.load(Ordering::Relaxed);
        self.head.set(next);
        self.len.set(self.len.get() - 1);
        Some(top)
    }
}

impl Drop for Cache {
    fn drop(&mut self) {
        while let Some(s) = self.take() {
            // SAFETY: a free slot in a run that is never unmapped.
            push(unsafe { s.as_ref() });
        }
    }
}

/// The free list's head: `(top slot address >> 5) | tag << 43`, 0 when
/// empty. Slot addresses are 32-byte aligned and below 2^48 (checked when a
/// run is mapped), so 43 bits hold the address and 21 bits the tag.
static HEAD: AtomicU64 = AtomicU64::new(0);
/// Taken only to map a new run.
static GROW: Mutex<()> = Mutex::new(());

const ADDR_BITS: u32 = 43;
const ADDR_MASK: u64 = (1 << ADDR_BITS) - 1;

#[inline]
fn unpack(head: u64) -> usize {
    ((head & ADDR_MASK) << 5) as usize
}

#[inline]
fn pack(addr: usize, prev: u64) -> u64 {
    let tag = (prev >> ADDR_BITS).wrapping_add(1);
    ((addr as u64) >> 5) | (tag << ADDR_BITS)
}

/// Pushes the chain `first ..= last` (linked through `aux`) on the list.
#[inline]
fn push_chain(first: &Slot, last: &Slot) {
    let first_addr = first as *const Slot as usize;
    let mut cur = HEAD.load(Ordering::Relaxed);
    loop {
        last.aux.store(unpack(cur), Ordering::Relaxed);
        // Release: the pop that takes `first` sees the links written above.
        match HEAD.compare_exchange_weak(
            cur,
            pack(first_addr, cur),
            Ordering::Release,
            Ordering::Relaxed,
        ) {
            Ok(_) => return,
            Err(x) => cur = x,
        }
    }
}

#[inline]
fn push(s: &Slot) {
    push_chain(s, s);
}

/// Pops a free slot, if any.
#[inline]
fn pop() -> Option<NonNull<Slot>> {
    let mut cur = HEAD.load(Ordering::Acquire);
    loop {
        let top = NonNull::new(unpack(cur) as *mut Slot)?;
        // SAFETY: every address on the list is a slot in a run that is never
        // unmapped; `aux` is atomic, so reading it while another thread that
        // popped this slot meanwhile writes it is no data race (and that
        // thread's pop moved the tag, so the exchange below then fails).
        let next = unsafe { top.as_ref() }.aux.load(Ordering::Relaxed);
        match HEAD.compare_exchange_weak(cur, pack(next, cur), Ordering::Acquire, Ordering::Acquire)
        {
            Ok(_) => return Some(top),
            Err(x) => cur = x,
        }
    }
}

/// Takes a free slot (mapping a new run when all are in use). The slot's
/// body is the trap until [`StubSlot::publish`].
#[inline]
pub fn alloc_slot() -> io::Result<StubSlot> {
    let cached = CACHE.try_with(Cache::take).ok().flatten();
    match cached.or_else(pop) {
        Some(slot) => Ok(StubSlot { slot }),
        None => alloc_slow(),
    }
}

#[cold]
fn alloc_slow() -> io::Result<StubSlot> {
    // Mapping under the lock: other creators wait for the new run rather
    // than each mapping one.
    let _g = GROW.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(slot) = pop() {
        return Ok(StubSlot { slot });
    }
    let slots = map_run()?;
    let (first, rest) = slots
        .split_first()
        .ok_or_else(|| io::Error::other("a new stub run has no slots"))?;
    if let (Some(head), Some(last)) = (rest.first(), rest.last()) {
        for w in rest.windows(2) {
            // SAFETY: slots of the new run, not yet shared with anyone.
            unsafe { w[0].as_ref() }
                .aux
                .store(w[1].as_ptr() as usize, Ordering::Relaxed);
        }
        // SAFETY: as above.
        unsafe { push_chain(head.as_ref(), last.as_ref()) };
    }
    Ok(StubSlot { slot: *first })
}

/// Bytes mapped for stub runs so far (stub pages plus slot pages).
pub fn mapped_bytes() -> usize {
    RUNS.load(Ordering::Relaxed) * 2 * run_bytes()
}

/// Runs mapped so far.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// How many bytes of stubs one run holds.
#[inline]
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
/// the trap, then the stub pages flipped to RX. Returns the slots, in
/// ascending order.
fn map_run() -> io::Result<Vec<NonNull<Slot>>> {
    let bytes = run_bytes();
    let stub = host_stub(bytes as i64)?;
    // Mapped RW near the program's text, like code chunks (see
    // `sys::map_rw`): the stubs are call targets of the runtime's code.
    let base = super::sys::map_rw(2 * bytes)?.as_ptr();
    if (base as usize + 2 * bytes) as u64 > 1 << (ADDR_BITS + 5) {
        // The free list's packed head holds addresses below 2^48 only.
        // SAFETY: the mapping is ours and nothing refers to it yet.
        unsafe { libc::munmap(base.cast(), 2 * bytes) };
        return Err(io::Error::other("stub run mapped above 2^48"));
    }
    let n = bytes / SLOT_SIZE;
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: `base` is a fresh RW mapping of 2 * bytes; stub i occupies
        // base + 32 i .. + 32 < base + bytes, slot i base + bytes + 32 i .. +
        // 32 < base + 2 bytes. Nothing else references the mapping yet. `slot`
        // is inside a successful mapping, so it is not null.
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
            out.push(NonNull::new_unchecked(slot));
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
    // Unwind tables for the run's stubs. A stub changes neither the stack
    // pointer nor any callee-saved register nor the return address
    // (x86-64: `lea r10, [rip + d]; jmp [r10]`; AArch64: `adr x16, d;
    // ldr x17, [x16]; br x17`), so the entry rule (x86-64: CFA = rsp + 8,
    // return address at CFA - 8; AArch64: CFA = sp + 0, return address in
    // x30) holds at every instruction, which is what an FDE with no rows
    // says. It matters only while the PC is inside a stub (a profiler's
    // sample, a signal, a debugger's step): a stub jumps, so it is never a
    // frame further up a stack. Registered once per run and never taken
    // back: runs live for the rest of the process.
    #[cfg(all(
        any(target_arch = "x86_64", target_arch = "aarch64"),
        target_os = "linux"
    ))]
    if let Some(isa) = crate::unwind::HOST_ISA {
        // SAFETY: base..base + bytes is the run's stub code, of the host's
        // instruction set (`host_stub`), executable from here on and never
        // unmapped; no rows is the truth for it.
        let reg = unsafe {
            crate::unwind::Registration::register_named(isa, base, bytes, &[], || {
                "jitffi:closure-stubs".into()
            })
        };
        if let Ok(r) = reg {
            std::mem::forget(r);
        }
    }
    // Runs live for the rest of the process (see the module docs).
    RUNS.fetch_add(1, Ordering::Relaxed);
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
        let (s, c) = (a.slot.as_ptr() as usize, a.code_ptr() as usize);
        // Stub and slot are STUB_PAGES pages apart.
        assert_eq!(s - c, run_bytes());
        assert_eq!(s % SLOT_SIZE, 0);
        drop(a);
        // LIFO: the slot just freed is handed out next (unless another test
        // thread took it; then just check the invariant).
        let b = alloc_slot().unwrap();
        assert_eq!(b.slot().body.load(Ordering::Acquire), trap_addr());
        assert_eq!(
            b.slot.as_ptr() as usize - b.code_ptr() as usize,
            run_bytes()
        );
    }
}
