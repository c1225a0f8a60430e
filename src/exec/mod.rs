//! Executable memory: W^X code pages shared by many small pieces of code.
//!
//! [`CodeArena::install`] copies finished machine code (assembled elsewhere,
//! e.g. with dynasm's `VecAssembler`) into executable memory and returns a
//! [`Code`] that owns it. Dropping the `Code` releases it.
//!
//! # The rules
//!
//! * **W^X, always.** Code is written into pages that are readable and
//!   writable (never executable), then those pages are flipped to
//!   readable + executable and never written again. At no moment is any
//!   mapping writable and executable at once (`tests/exec_wx.rs` reads
//!   `/proc/self/maps` to prove it).
//! * **Many pieces of code share a page.** A trampoline is tens of bytes; one
//!   `mmap` per trampoline costs microseconds and wastes a page. The arena
//!   reserves *chunks* of 64 KiB of address space (or one page, if pages are
//!   larger) and bump-allocates code in them, 16-byte aligned.
//! * **Never alter code that another thread may be running.**
//!
//! # How new code joins a page that is already executable
//!
//! Sharing pages and never writing an executable page seem to conflict: the
//! second trampoline on a page would need the page writable again, while a
//! thread may be running the first one (making it RW would make that thread
//! fault; making it RWX breaks W^X). The arena never does either. Instead it
//! builds a *replacement*:
//!
//! 1. `mmap` a fresh private anonymous RW run of pages somewhere else;
//! 2. copy the old page's current bytes into it (the old page is readable);
//! 3. write the new code after the existing code;
//! 4. `mprotect` the replacement to RX;
//! 5. `mremap(replacement, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, old)`.
//!
//! Step 5 swaps the page tables under the process's mmap write lock, so the
//! replacement takes the old page's place in one step: existing code sits at
//! the same addresses with identical bytes, and a thread running it either
//! keeps running the old physical page or faults, waits for the lock, and
//! continues in the new one. Neither the old page nor the replacement is ever
//! writable while executable. (The kernel unmaps the destination before it
//! moves the source (`mremap_to` in `mm/mremap.c`); if the move then failed — only possible on
//! `ENOMEM`, e.g. at `vm.max_map_count` — the old code would be gone. The
//! arena cannot undo that; it is the one residual risk of the scheme.)
//!
//! Code that starts on a fresh page of the chunk (nothing executable there
//! yet) is written directly into that still-RW page, which is then flipped to
//! RX: one `mprotect`, no copy. Only the run of pages the new code touches is
//! flipped or replaced; the rest of the chunk stays RW and untouched (and so
//! costs no physical memory).
//!
//! Where `mremap` is unavailable (not Linux) or fails, the arena falls back
//! to starting the code on the next fresh page of the chunk, i.e. one page per
//! installation, which is correct but wastes space.
//!
//! # Cost
//!
//! An installation is a handful of system calls and page faults, whatever
//! its size. Measured on the development VM (x86-64, Firecracker, 2 shared
//! cores; thread CPU time, `exec::tests::install_cost_printout`): about 9 µs
//! per installation into a shared page (mmap ≈ 1.2, first-touch fault + copy
//! ≈ 1.8, mprotect ≈ 0.9, mremap ≈ 4.8), about 4 µs on a fresh page (write
//! fault + mprotect). [`CodeArena::install_many`] places a whole batch with
//! one page change: well under 0.1 µs per piece for 2000 pieces. Callers that
//! compile several pieces together should batch them.
//!
//! # Instruction caches
//!
//! After the code is in its final RX place the arena synchronises the
//! instruction cache for exactly that slice. On AArch64 this cleans the data
//! cache to the point of unification and invalidates the instruction cache by
//! address (`dc cvau` / `ic ivau` / `dsb ish`), then `isb` on the installing
//! thread. Another thread that runs the new code should execute an `isb`
//! first ([`prepare_for_execution`]). On x86-64 nothing is needed: the
//! processor keeps its instruction caches coherent with stores by physical
//! address (Intel SDM vol. 3, "Self-modifying code"), and the replacement is
//! a different physical page published by a page-table change whose TLB
//! shootdown interrupts the other processors (a serializing event, as the
//! SDM's cross-modifying-code rule asks).
//!
//! # Lifetime policy
//!
//! Freed space inside a chunk is not reused. A chunk is unmapped when no live
//! [`Code`] points into it *and* it is no longer the arena's current chunk (the
//! one receiving new code). Code larger than a chunk gets a mapping of its
//! own, unmapped when it is dropped. So the memory held is bounded by
//! (live code objects + 1) chunks — at worst one 64 KiB chunk of address
//! space (of which only touched pages are resident) per long-lived piece of
//! code — and a process that creates and drops code forever does not grow.
//! The counters in [`ArenaStats`] show it.

pub mod stubs;
mod sys;

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Address space reserved per chunk (rounded up to whole pages).
const CHUNK_BYTES: usize = 64 * 1024;
/// Every piece of code starts on this alignment (a cache-friendly entry).
const CODE_ALIGN: usize = 16;

/// Counters shared by an arena and every chunk it mapped (chunks can outlive
/// the arena while code in them is alive).
#[derive(Debug, Default)]
struct Counters {
    chunks: AtomicUsize,
    bytes_mapped: AtomicUsize,
    bytes_live: AtomicUsize,
    live_code: AtomicUsize,
    replacements: AtomicUsize,
    fallbacks: AtomicUsize,
}

/// What an arena currently holds. A snapshot; other threads may change it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ArenaStats {
    /// Mappings alive: chunks, including dedicated mappings of large code.
    pub chunks_mapped: usize,
    /// Address space those mappings span, in bytes.
    pub bytes_mapped: usize,
    /// Bytes of code installed and not yet dropped.
    pub bytes_live: usize,
    /// Number of [`Code`] objects alive.
    pub live_code: usize,
    /// Installations done by replacing an executable page (`mremap`).
    pub replacements: usize,
    /// Installations that skipped to a fresh page because `mremap` was
    /// unavailable or failed.
    pub fallbacks: usize,
}

/// One mapping owned by the arena: unmapped when the last [`Code`] in it and
/// the arena (if it is the current chunk) let go of it.
#[derive(Debug)]
struct Chunk {
    base: NonNull<u8>,
    len: usize,
    counters: Arc<Counters>,
}

// SAFETY: a Chunk is only an address range plus counters. Its bytes are
// mutated only by the arena under its mutex, in pages no one can execute
// yet, or by atomic page replacement; sharing the handle across threads is
// therefore sound.
unsafe impl Send for Chunk {}
// SAFETY: as above; `&Chunk` gives no access to the memory.
unsafe impl Sync for Chunk {}

impl Chunk {
    fn map(len: usize, counters: &Arc<Counters>) -> io::Result<Chunk> {
        let base = sys::map_rw(len)?;
        counters.chunks.fetch_add(1, Ordering::Relaxed);
        counters.bytes_mapped.fetch_add(len, Ordering::Relaxed);
        Ok(Chunk {
            base,
            len,
            counters: Arc::clone(counters),
        })
    }
}

impl Drop for Chunk {
    fn drop(&mut self) {
        // SAFETY: the chunk is dropped only when no Code points into it and
        // the arena no longer installs into it, so nothing can run, read or
        // write these pages any more; the whole range is ours (replacements
        // moved into it belong to it too).
        let r = unsafe { sys::unmap(self.base.as_ptr(), self.len) };
        // munmap of our own page-aligned range cannot fail in practice; if it
        // did, the pages would leak, which is better than panicking in drop.
        if r.is_ok() {
            self.counters.chunks.fetch_sub(1, Ordering::Relaxed);
            self.counters
                .bytes_mapped
                .fetch_sub(self.len, Ordering::Relaxed);
        }
    }
}

/// The chunk receiving new code, with its fill state.
///
/// Invariant: the pages of `[0, rx_end)` are RX (they hold code), the pages
/// of `[rx_end, chunk.len)` are RW, untouched and zero; `offset <= rx_end`
/// and, when `offset < rx_end`, `offset` lies in the last RX page.
#[derive(Debug)]
struct Current {
    chunk: Arc<Chunk>,
    /// Where the next code may start (before alignment).
    offset: usize,
    /// End of the executable prefix; a multiple of the page size.
    rx_end: usize,
}

#[derive(Debug)]
struct State {
    current: Option<Current>,
    /// Whether page replacement may be used (false forces the fallback).
    remap: bool,
}

/// An allocator of executable memory. See the [module docs](self).
///
/// `Send + Sync`: installation takes an internal mutex; dropping [`Code`]
/// takes none.
#[derive(Debug)]
pub struct CodeArena {
    state: Mutex<State>,
    counters: Arc<Counters>,
    page: usize,
    chunk_len: usize,
}

/// Machine code installed in a [`CodeArena`]: executable, immutable, and
/// released when dropped.
///
/// Dropping a `Code` while some thread still runs it (or still holds a
/// function pointer into it) is the caller's bug: its chunk may be unmapped.
#[derive(Debug)]
pub struct Code {
    ptr: NonNull<u8>,
    len: usize,
    chunk: Arc<Chunk>,
}

// SAFETY: the bytes behind `ptr` are immutable for the lifetime of the Code
// (W^X: they are never written again), and the Arc keeps them mapped; so the
// Code may move to and be shared by any thread.
unsafe impl Send for Code {}
// SAFETY: as above; all access through `&Code` is read-only.
unsafe impl Sync for Code {}

impl Code {
    /// The address of the first installed byte (the entry point).
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The number of installed bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Always false: empty code is refused by [`CodeArena::install`].
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The installed bytes, read back from the executable mapping (for
    /// disassembly and tests).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr..ptr+len` lies inside a mapping kept alive by
        // `self.chunk`; it is readable (PROT_READ|PROT_EXEC) and never
        // written again, so a shared slice of it is valid for `&self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Code {
    fn drop(&mut self) {
        let c = &self.chunk.counters;
        c.bytes_live.fetch_sub(self.len, Ordering::Relaxed);
        c.live_code.fetch_sub(1, Ordering::Relaxed);
        // The Arc<Chunk> drops next; the last owner unmaps the chunk.
    }
}

/// Makes the calling thread's instruction stream see code installed by
/// another thread (AArch64: `isb`; elsewhere nothing). Call it once before a
/// thread first runs code it did not install itself.
pub fn prepare_for_execution() {
    dynasmrt::cache_control::prepare_for_execution(&[]);
}

impl Default for CodeArena {
    fn default() -> Self {
        CodeArena::new()
    }
}

impl CodeArena {
    /// A new, empty arena. Maps nothing until the first installation.
    pub fn new() -> CodeArena {
        let page = sys::page_size();
        CodeArena {
            state: Mutex::new(State {
                current: None,
                remap: true,
            }),
            counters: Arc::new(Counters::default()),
            page,
            chunk_len: round_up(CHUNK_BYTES, page),
        }
    }

    /// An arena that never replaces pages, to test the fallback.
    #[cfg(test)]
    fn without_remap() -> CodeArena {
        let a = CodeArena::new();
        a.lock().remap = false;
        a
    }

    /// The process-wide default arena.
    pub fn global() -> &'static CodeArena {
        static GLOBAL: OnceLock<CodeArena> = OnceLock::new();
        GLOBAL.get_or_init(CodeArena::new)
    }

    /// What the arena holds now (its chunks, its live code).
    pub fn stats(&self) -> ArenaStats {
        let c = &self.counters;
        ArenaStats {
            chunks_mapped: c.chunks.load(Ordering::Relaxed),
            bytes_mapped: c.bytes_mapped.load(Ordering::Relaxed),
            bytes_live: c.bytes_live.load(Ordering::Relaxed),
            live_code: c.live_code.load(Ordering::Relaxed),
            replacements: c.replacements.load(Ordering::Relaxed),
            fallbacks: c.fallbacks.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while holding the lock, and the state is consistent
        // between steps anyway; a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copies `code` into executable memory and returns it.
    ///
    /// Errors: `InvalidInput` for empty code; the OS error if memory cannot be
    /// mapped or protected.
    pub fn install(&self, code: &[u8]) -> io::Result<Code> {
        let mut v = self.install_many(&[code])?;
        v.pop()
            .ok_or_else(|| io::Error::other("install_many returned nothing"))
    }

    /// Installs several pieces of code at once, placed one after another:
    /// the whole batch costs the page changes of one installation (each
    /// installation's cost is dominated by system calls, not by its size).
    /// Returns them in order.
    ///
    /// Errors as [`install`](Self::install); on error nothing is returned
    /// (code already placed is released).
    pub fn install_many(&self, codes: &[&[u8]]) -> io::Result<Vec<Code>> {
        if codes.iter().any(|c| c.is_empty()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot install empty code",
            ));
        }
        let mut out = Vec::with_capacity(codes.len());
        let mut rest = codes;
        let mut st = self.lock();
        while let Some(first) = rest.first() {
            if first.len() > self.chunk_len {
                out.push(self.install_dedicated(first)?);
                rest = &rest[1..];
                continue;
            }
            let room = st
                .current
                .as_ref()
                .is_some_and(|c| round_up(c.offset, CODE_ALIGN) + first.len() <= self.chunk_len);
            if !room {
                // The old current chunk (if any) is released here: unmapped
                // now if no code lives in it, else when its last code drops.
                st.current = None;
                let chunk = Chunk::map(self.chunk_len, &self.counters)?;
                st.current = Some(Current {
                    chunk: Arc::new(chunk),
                    offset: 0,
                    rx_end: 0,
                });
            }
            let remap = st.remap;
            let Some(cur) = st.current.as_mut() else {
                continue; // unreachable: set just above
            };
            // The longest prefix of `rest` that fits in this chunk (at least
            // `first`, checked above).
            let start = round_up(cur.offset, CODE_ALIGN);
            let mut end = start;
            let mut n = 0;
            for c in rest {
                let s = round_up(end, CODE_ALIGN);
                if c.len() > self.chunk_len || s + c.len() > self.chunk_len {
                    break;
                }
                end = s + c.len();
                n += 1;
            }
            let group = &rest[..n];
            if start >= cur.rx_end {
                self.install_fresh(&mut st, start, group, &mut out)?;
            } else if !(remap && self.install_replacing(cur, start, group, &mut out).is_ok()) {
                // Fallback: skip to the next fresh page (or a new chunk), and
                // lay out the group again from there.
                self.counters.fallbacks.fetch_add(1, Ordering::Relaxed);
                cur.offset = cur.rx_end;
                continue;
            }
            rest = &rest[n..];
        }
        Ok(out)
    }

    /// Where each piece of `group` goes when placed from `start`, and the
    /// end of the last one.
    fn layout(start: usize, group: &[&[u8]]) -> (Vec<usize>, usize) {
        let mut end = start;
        let offsets = group
            .iter()
            .map(|c| {
                let s = round_up(end, CODE_ALIGN);
                end = s + c.len();
                s
            })
            .collect();
        (offsets, end)
    }

    /// Writes `group` from `start` (at or after `rx_end`, so in untouched RW
    /// pages) and flips the pages it touches to RX.
    fn install_fresh(
        &self,
        st: &mut State,
        start: usize,
        group: &[&[u8]],
        out: &mut Vec<Code>,
    ) -> io::Result<()> {
        let Some(cur) = st.current.as_mut() else {
            return Err(io::Error::other("no current chunk"));
        };
        let (offsets, end) = Self::layout(start, group);
        let first = round_down(start, self.page);
        let last = round_up(end, self.page);
        let base = cur.chunk.base.as_ptr();
        for (c, &o) in group.iter().zip(&offsets) {
            // SAFETY: `o..o+len` lies inside the chunk (the caller checked
            // end <= chunk_len) and in pages at or after `rx_end`, which are
            // RW and not executable, so no one can be running them and no
            // Code refers to them; `c` is a separate Rust slice.
            unsafe { std::ptr::copy_nonoverlapping(c.as_ptr(), base.add(o), c.len()) };
        }
        // SAFETY: `first..last` is page-aligned, inside our chunk, and no
        // Rust reference writes into it after the copies above.
        let r = unsafe { sys::protect_rx(base.add(first), last - first) };
        if let Err(e) = r {
            // The pages are in an unknown state: abandon the chunk (it is
            // unmapped once the code already in it is dropped).
            st.current = None;
            return Err(e);
        }
        cur.offset = end;
        cur.rx_end = last;
        for (c, &o) in group.iter().zip(&offsets) {
            out.push(self.finish(&cur.chunk, o, c.len()));
        }
        Ok(())
    }

    /// Adds `group` from `start`, inside the last executable page, by
    /// building a replacement for the pages `[round_down(start),
    /// round_up(end))` and moving it over them (see the module docs). On
    /// error nothing changed.
    fn install_replacing(
        &self,
        cur: &mut Current,
        start: usize,
        group: &[&[u8]],
        out: &mut Vec<Code>,
    ) -> io::Result<()> {
        let (offsets, end) = Self::layout(start, group);
        let first = round_down(start, self.page);
        let last = round_up(end, self.page);
        let len = last - first;
        let base = cur.chunk.base.as_ptr();
        let repl = sys::map_rw(len)?.as_ptr();
        // SAFETY: `base+first .. base+start` is inside the chunk and readable
        // (RX pages whose bytes never change); `repl` is a fresh RW mapping of
        // `len >= end - first` bytes, disjoint from the chunk and from `group`.
        unsafe {
            std::ptr::copy_nonoverlapping(base.add(first), repl, start - first);
            for (c, &o) in group.iter().zip(&offsets) {
                std::ptr::copy_nonoverlapping(c.as_ptr(), repl.add(o - first), c.len());
            }
        }
        // SAFETY: `repl` is our whole fresh mapping; nothing references it.
        let r = unsafe { sys::protect_rx(repl, len) }.and_then(|()| {
            // SAFETY: `repl` is a whole private anonymous mapping of ours;
            // the destination is page-aligned and inside our chunk; the
            // replacement holds the destination's current bytes at the same
            // offsets (code before `start` copied; the bytes from `start` on
            // in the old pages were zero and not code anyone runs; pages after
            // `rx_end` are untouched RW), so code running there is unaffected.
            unsafe { sys::move_over(repl, len, base.add(first)) }
        });
        if let Err(e) = r {
            // SAFETY: after a failed mremap the source is still mapped and
            // ours; nothing else refers to it.
            let _ = unsafe { sys::unmap(repl, len) };
            return Err(e);
        }
        self.counters.replacements.fetch_add(1, Ordering::Relaxed);
        cur.offset = end;
        cur.rx_end = cur.rx_end.max(last);
        for (c, &o) in group.iter().zip(&offsets) {
            out.push(self.finish(&cur.chunk, o, c.len()));
        }
        Ok(())
    }

    /// Code larger than a chunk: a mapping of its own.
    fn install_dedicated(&self, code: &[u8]) -> io::Result<Code> {
        let len = round_up(code.len(), self.page);
        let chunk = Chunk::map(len, &self.counters)?;
        let base = chunk.base.as_ptr();
        // SAFETY: the fresh RW mapping holds `len >= code.len()` bytes and is
        // disjoint from `code`.
        unsafe { std::ptr::copy_nonoverlapping(code.as_ptr(), base, code.len()) };
        // SAFETY: the whole mapping is ours, page-aligned, unreferenced.
        unsafe { sys::protect_rx(base, len) }?;
        Ok(self.finish(&Arc::new(chunk), 0, code.len()))
    }

    /// The code now sits, RX, at `chunk.base + start`: make the instruction
    /// stream see it, count it, and hand it out.
    fn finish(&self, chunk: &Arc<Chunk>, start: usize, len: usize) -> Code {
        // SAFETY: `start < chunk.len`, so the pointer stays inside the mapping
        // and is non-null.
        let ptr = unsafe { NonNull::new_unchecked(chunk.base.as_ptr().add(start)) };
        // SAFETY: the range is mapped readable and is never written again.
        let slice = unsafe { std::slice::from_raw_parts(ptr.as_ptr(), len) };
        // AArch64: clean D-cache / invalidate I-cache for the final RX slice,
        // then `isb` on this thread. qemu-user does not model stale
        // instruction caches, so a missing or misplaced flush never fails
        // there: this call is covered by review, not by tests.
        // x86-64: both calls compile to nothing (see the module docs).
        dynasmrt::cache_control::synchronize_icache(slice);
        dynasmrt::cache_control::prepare_for_execution(slice);
        self.counters.bytes_live.fetch_add(len, Ordering::Relaxed);
        self.counters.live_code.fetch_add(1, Ordering::Relaxed);
        Code {
            ptr,
            len,
            chunk: Arc::clone(chunk),
        }
    }
}

fn round_up(n: usize, align: usize) -> usize {
    (n + align - 1) & !(align - 1)
}

fn round_down(n: usize, align: usize) -> usize {
    n & !(align - 1)
}

#[cfg(test)]
mod tests;
