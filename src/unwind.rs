//! Unwind tables for generated code: DWARF call frame information in the
//! `.eh_frame` format, registered with the process's unwinder.
//!
//! Without them, anything that walks the stack through a trampoline or a
//! closure body — a C++ exception, glibc's `backtrace()`, a Rust panic
//! backtrace — stops at (or misreads) the generated frame, because the
//! unwinder finds no frame description for its addresses.
//!
//! The pieces:
//!
//! - The emitters (`arch/x86_64`, `arch/aarch64`) report, beside the bytes,
//!   every change they make to the frame as an [`UnwindRow`]: at a code
//!   offset, a new [`CfaRule`] ("the CFA is now rsp + 16", "x29 is saved
//!   at CFA − 16").
//! - [`eh_frame`] turns the rows of one code blob, installed at its final
//!   address, into a `.eh_frame` section for its instruction set: one CIE,
//!   one FDE, and the zero-length terminator (DWARF 4 §6.4 "Call Frame
//!   Information"; the `.eh_frame` variant: Linux Standard Base Core,
//!   "Exception Frames"). Addresses are encoded absolute
//!   (`DW_EH_PE_absptr`, 8 bytes), so the section may live anywhere (the
//!   heap is usually more than 2 GiB from the code, beyond a 32-bit
//!   pc-relative field). What differs between x86-64 and AArch64 (register
//!   numbers, the return address column, the alignment factors, the state
//!   at a function's entry, the ELF machine) is one [`Isa`]-keyed table of
//!   conventions; the encoder is shared. Sections for either instruction
//!   set can be built on any host.
//! - [`Registration`] hands a section for the *host's* instruction set to
//!   the unwinder and takes it back on drop. The owner keeps the
//!   registration alive exactly as long as the code, and drops it first
//!   (an FDE left registered for freed code would describe whatever is
//!   installed there next). Code of another instruction set (emitted for
//!   disassembly) is never registered.
//!
//! Which unwinder: on Linux with glibc, the process uses libgcc's
//! (`libgcc_s.so.1`, shared by Rust, C++ and glibc's `backtrace`).
//! libgcc's `__register_frame(begin)` takes the start of a whole
//! `.eh_frame` section and walks it up to the zero terminator
//! (unwind-dw2-fde.c: `ob->u.single = begin`, searched with
//! `linear_search_fdes` / `classify_object_over_fdes`, which skip CIEs and
//! stop at a zero length word). LLVM's libunwind, by contrast, takes a
//! pointer to a single FDE (`__unw_add_dynamic_fde`). The unwinder present
//! is detected at run time by looking for libunwind's
//! `__unw_add_dynamic_fde`, as other JITs (wasmtime, LLVM's
//! `RTDyldMemoryManager::registerEHFramesInProcess`) do. Both are the same
//! on x86-64 and AArch64 Linux.
//!
//! Debuggers do not read the unwinder's registry: gdb finds frame tables
//! and symbols for JIT code through its own interface (gdb manual, "JIT
//! Compilation Interface": `__jit_debug_descriptor` and
//! `__jit_debug_register_code`), fed an in-memory ELF object. [`gdb`]
//! builds one per code blob (`.text`, `.eh_frame`, a symbol named as in
//! the perf map) when `JITFFI_GDB_JIT=1` is set or the process is traced
//! (a debugger already attached at the first registration); otherwise it
//! costs nothing.
//!
//! Registration happens on x86-64 and AArch64 Linux (the unwinders above);
//! elsewhere the section is built and kept but not handed to an unwinder.

use std::fmt;

use crate::types::Isa;

/// DWARF register numbers, per instruction set.
pub mod reg {
    /// x86-64 (System V psABI §3.6.2, figure 3.36 "DWARF Register Number
    /// Mapping").
    pub mod x86_64 {
        /// rax
        pub const RAX: u16 = 0;
        /// rdx
        pub const RDX: u16 = 1;
        /// rcx
        pub const RCX: u16 = 2;
        /// rbx
        pub const RBX: u16 = 3;
        /// rsi
        pub const RSI: u16 = 4;
        /// rdi
        pub const RDI: u16 = 5;
        /// rbp
        pub const RBP: u16 = 6;
        /// rsp
        pub const RSP: u16 = 7;
        /// r8 (r8–r15 are 8–15)
        pub const R8: u16 = 8;
        /// The return address (rip).
        pub const RA: u16 = 16;
        /// xmm0 (xmm0–xmm15 are 17–32)
        pub const XMM0: u16 = 17;

        /// The DWARF number of general register `n` in the hardware
        /// encoding (rax = 0, rcx = 1, … r15 = 15), as the emitters name
        /// them.
        pub fn gpr(n: u8) -> u16 {
            match n {
                0 => RAX,
                1 => RCX,
                2 => RDX,
                3 => RBX,
                4 => RSP,
                5 => RBP,
                6 => RSI,
                7 => RDI,
                n => u16::from(n),
            }
        }
    }

    /// AArch64 ("DWARF for the Arm 64-bit Architecture (AArch64)",
    /// aadwarf64 §4.1 "DWARF register names").
    pub mod aarch64 {
        /// x0 (x0–x30 are 0–30: [`x`]).
        pub const X0: u16 = 0;
        /// x29, the frame pointer (FP).
        pub const FP: u16 = 29;
        /// x30, the link register (LR): the return address column.
        pub const LR: u16 = 30;
        /// The stack pointer (SP).
        pub const SP: u16 = 31;
        /// v0 (v0–v31 are 64–95).
        pub const V0: u16 = 64;

        /// The DWARF number of general register `xn` (n ≤ 30), as the
        /// emitters name them: the same number.
        pub fn x(n: u8) -> u16 {
            debug_assert!(n <= 30, "x{n} is not a general register");
            u16::from(n)
        }
    }
}

/// A change to how the caller's frame is found, taking effect at an
/// instruction (and holding until the next change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfaRule {
    /// The CFA (the caller's stack pointer at its call instruction: rsp
    /// before the call on x86-64, sp at the `bl`/`blr` on AArch64) is
    /// `reg + offset`.
    Cfa {
        /// DWARF register number (see [`reg`]).
        reg: u16,
        /// Byte offset added to the register.
        offset: u32,
    },
    /// The CFA's register is unchanged; its offset is now this.
    CfaOffset(u32),
    /// The caller's value of `reg` is saved at `CFA + offset`.
    Saved {
        /// DWARF register number (see [`reg`]).
        reg: u16,
        /// Offset from the CFA (negative: below it); a multiple of 8.
        offset: i32,
    },
    /// `reg` holds the caller's value again (its rule at entry).
    Restored(u16),
}

/// One row of the frame table: from code offset `at` on, `rule` holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnwindRow {
    /// Offset of the first instruction the rule applies to, from the start
    /// of the code blob (the instruction after the one that changed the
    /// frame).
    pub at: u32,
    /// The change.
    pub rule: CfaRule,
}

impl fmt::Display for UnwindRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.rule {
            CfaRule::Cfa { reg, offset } => write!(f, "+{}: CFA = r{reg} + {offset}", self.at),
            CfaRule::CfaOffset(o) => write!(f, "+{}: CFA offset {o}", self.at),
            CfaRule::Saved { reg, offset } => {
                write!(f, "+{}: r{reg} saved at CFA{offset:+}", self.at)
            }
            CfaRule::Restored(r) => write!(f, "+{}: r{r} restored", self.at),
        }
    }
}

/// What the CIE says about one instruction set: everything in the section
/// that is not the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Conventions {
    /// Code alignment factor: every row's offset is a multiple of it, and
    /// advances are encoded divided by it.
    code_align: u32,
    /// Data alignment factor: save offsets are encoded divided by it.
    data_align: i32,
    /// The return address column.
    ra: u16,
    /// The stack pointer's DWARF number.
    sp: u16,
    /// At a function's entry the CFA is `sp + entry_cfa`.
    entry_cfa: u32,
    /// Whether at entry the return address is saved at CFA − 8 (pushed by
    /// the call), rather than held in its own column's register.
    ra_on_stack: bool,
    /// The ELF `e_machine` of the gdb object (gABI "ELF Header";
    /// EM_X86_64 = 62, EM_AARCH64 = 183).
    e_machine: u16,
}

impl Conventions {
    fn of(isa: Isa) -> Conventions {
        match isa {
            // psABI §3.6.2 (register numbers, RA column 16) and §3.2.2
            // (`call` pushes the return address: at entry CFA = rsp + 8,
            // the return address at CFA − 8). Instructions are byte
            // aligned; saves are 8-byte slots.
            Isa::X86_64 => Conventions {
                code_align: 1,
                data_align: -8,
                ra: reg::x86_64::RA,
                sp: reg::x86_64::RSP,
                entry_cfa: 8,
                ra_on_stack: true,
                e_machine: 62,
            },
            // aadwarf64 §4.1: RA column 30 (x30, LR), sp = 31. Every
            // instruction is 4 bytes (code alignment 4, as gcc's CIE); saves
            // are 8-byte slots (data alignment −8). `bl`/`blr` leave the
            // return address in x30 and do not move sp, so at entry the CFA
            // is sp + 0 and x30 needs no rule (gcc's CIE for AArch64 holds
            // only `DW_CFA_def_cfa: r31 (sp) ofs 0`).
            Isa::Aarch64 => Conventions {
                code_align: 4,
                data_align: -8,
                ra: reg::aarch64::LR,
                sp: reg::aarch64::SP,
                entry_cfa: 0,
                ra_on_stack: false,
                e_machine: 183,
            },
        }
    }
}

/// The instruction set of the code this process runs: the one whose
/// sections are registered. `None` on hosts jitffi emits no code for.
pub const HOST_ISA: Option<Isa> = if cfg!(target_arch = "x86_64") {
    Some(Isa::X86_64)
} else if cfg!(target_arch = "aarch64") {
    Some(Isa::Aarch64)
} else {
    None
};

// DWARF 4 §7.23, table 7.29 "Call frame instruction encodings".
const DW_CFA_ADVANCE_LOC: u8 = 0x40;
const DW_CFA_OFFSET: u8 = 0x80;
const DW_CFA_RESTORE: u8 = 0xc0;
const DW_CFA_ADVANCE_LOC1: u8 = 0x02;
const DW_CFA_ADVANCE_LOC2: u8 = 0x03;
const DW_CFA_ADVANCE_LOC4: u8 = 0x04;
const DW_CFA_OFFSET_EXTENDED_SF: u8 = 0x11;
const DW_CFA_RESTORE_EXTENDED: u8 = 0x06;
const DW_CFA_DEF_CFA: u8 = 0x0c;
const DW_CFA_DEF_CFA_OFFSET: u8 = 0x0e;
const DW_CFA_NOP: u8 = 0x00;
/// LSB "Exception Frames", DWARF exception header encoding: absolute,
/// pointer-sized.
const DW_EH_PE_ABSPTR: u8 = 0x00;

fn uleb(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

fn sleb(out: &mut Vec<u8>, mut v: i64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        let done = (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0);
        if done {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Pads an entry that starts at `start` (its length word) with
/// `DW_CFA_nop` to a multiple of 8 bytes, and writes the length word (the
/// entry's size less the word itself).
fn close_entry(out: &mut Vec<u8>, start: usize) {
    while (out.len() - start) % 8 != 0 {
        out.push(DW_CFA_NOP);
    }
    let len = (out.len() - start - 4) as u32;
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
}

/// Errors in a row list: rows out of order, past the code, at an offset
/// that is not a multiple of the instruction size, or a save offset that
/// is not a multiple of 8.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnwindError(pub String);

impl fmt::Display for UnwindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UnwindError {}

impl From<UnwindError> for crate::Error {
    fn from(e: UnwindError) -> Self {
        crate::Error::Emit(format!("unwind tables: {}", e.0))
    }
}

/// Offset of the FDE in a section made by [`eh_frame`] (the CIE before it
/// is always this long, for either instruction set).
pub const FDE_OFFSET: usize = 24;

/// The `.eh_frame` section for `len` bytes of `isa` code at address
/// `start`, whose frame changes are `rows` (ascending `at`): a CIE with the
/// state at a function's entry (x86-64: CFA = rsp + 8, return address at
/// CFA − 8, psABI §3.6.2 / §3.2.2; AArch64: CFA = sp + 0, return address
/// in x30, aadwarf64 §4.1), one FDE with the rows, and a zero terminator.
/// The FDE starts at [`FDE_OFFSET`]. Works for either instruction set on
/// any host.
pub fn eh_frame(
    isa: Isa,
    start: u64,
    len: u64,
    rows: &[UnwindRow],
) -> Result<Vec<u8>, UnwindError> {
    let cv = Conventions::of(isa);
    let mut out = Vec::with_capacity(64 + 4 * rows.len());
    // CIE (DWARF 4 §6.4.1; LSB "The Common Information Entry Format").
    out.extend_from_slice(&[0; 4]); // length, patched
    out.extend_from_slice(&0u32.to_le_bytes()); // CIE id: 0 in .eh_frame
    out.push(1); // version
    out.extend_from_slice(b"zR\0"); // augmentation: data length, FDE encoding
    uleb(&mut out, cv.code_align.into()); // code alignment factor
    sleb(&mut out, cv.data_align.into()); // data alignment factor
    uleb(&mut out, cv.ra.into()); // return address column
    uleb(&mut out, 1); // augmentation data length
    out.push(DW_EH_PE_ABSPTR); // R: FDE address encoding

    // Initial instructions: the state at entry (see `Conventions::of`).
    out.push(DW_CFA_DEF_CFA);
    uleb(&mut out, cv.sp.into());
    uleb(&mut out, cv.entry_cfa.into());
    if cv.ra_on_stack {
        // At CFA − 8: factored by the data alignment, 1.
        out.push(DW_CFA_OFFSET | cv.ra as u8);
        uleb(&mut out, (-8 / cv.data_align) as u64);
    }
    close_entry(&mut out, 0);
    debug_assert_eq!(out.len(), FDE_OFFSET);

    // FDE (LSB "The Frame Description Entry Format").
    let fde = out.len();
    out.extend_from_slice(&[0; 4]); // length, patched
                                    // CIE pointer: distance from this field back to the CIE.
    out.extend_from_slice(&((fde + 4) as u32).to_le_bytes());
    out.extend_from_slice(&start.to_le_bytes()); // pc_begin (absptr)
    out.extend_from_slice(&len.to_le_bytes()); // pc_range
    uleb(&mut out, 0); // augmentation data length
    let mut loc = 0u32;
    for row in rows {
        if row.at < loc || u64::from(row.at) > len {
            return Err(UnwindError(format!(
                "row at +{} after +{loc}, or past the {len}-byte code",
                row.at
            )));
        }
        if row.at % cv.code_align != 0 {
            return Err(UnwindError(format!(
                "row at +{}, not a multiple of the {}-byte instruction",
                row.at, cv.code_align
            )));
        }
        // DWARF 4 §6.4.2.1: the advance is factored by the code alignment.
        let d = (row.at - loc) / cv.code_align;
        match d {
            0 => {}
            1..=0x3f => out.push(DW_CFA_ADVANCE_LOC | d as u8),
            0x40..=0xff => out.extend_from_slice(&[DW_CFA_ADVANCE_LOC1, d as u8]),
            0x100..=0xffff => {
                out.push(DW_CFA_ADVANCE_LOC2);
                out.extend_from_slice(&(d as u16).to_le_bytes());
            }
            _ => {
                out.push(DW_CFA_ADVANCE_LOC4);
                out.extend_from_slice(&d.to_le_bytes());
            }
        }
        loc = row.at;
        match row.rule {
            CfaRule::Cfa { reg, offset } => {
                out.push(DW_CFA_DEF_CFA);
                uleb(&mut out, reg.into());
                uleb(&mut out, offset.into());
            }
            CfaRule::CfaOffset(offset) => {
                out.push(DW_CFA_DEF_CFA_OFFSET);
                uleb(&mut out, offset.into());
            }
            CfaRule::Saved { reg, offset } => {
                if offset % cv.data_align != 0 {
                    return Err(UnwindError(format!(
                        "register {reg} saved at CFA{offset:+}, not a multiple of {}",
                        cv.data_align.unsigned_abs()
                    )));
                }
                let factored = offset / cv.data_align;
                if reg < 0x40 && factored >= 0 {
                    out.push(DW_CFA_OFFSET | reg as u8);
                    uleb(&mut out, factored as u64);
                } else {
                    out.push(DW_CFA_OFFSET_EXTENDED_SF);
                    uleb(&mut out, reg.into());
                    sleb(&mut out, factored.into());
                }
            }
            CfaRule::Restored(reg) if reg < 0x40 => out.push(DW_CFA_RESTORE | reg as u8),
            CfaRule::Restored(reg) => {
                out.push(DW_CFA_RESTORE_EXTENDED);
                uleb(&mut out, reg.into());
            }
        }
    }
    close_entry(&mut out, fde);
    out.extend_from_slice(&[0; 4]); // terminator
    Ok(out)
}

/// A `.eh_frame` section registered with the process's unwinder;
/// deregistered on drop. Hold it exactly as long as the code it describes,
/// and drop it before the code.
pub struct Registration {
    /// The section; 8-byte aligned storage (libgcc reads the words in place).
    #[cfg_attr(
        not(all(
            any(target_arch = "x86_64", target_arch = "aarch64"),
            target_os = "linux"
        )),
        allow(dead_code)
    )]
    section: Box<[u64]>,
    /// What was handed to `__register_frame` (null: nothing registered).
    #[cfg_attr(
        not(all(
            any(target_arch = "x86_64", target_arch = "aarch64"),
            target_os = "linux"
        )),
        allow(dead_code)
    )]
    registered: *const u8,
    /// The object registered with gdb's JIT interface, if any.
    gdb: Option<gdb::Entry>,
}

// SAFETY: the section is owned, immutable after registration, and only
// read by the unwinder (which locks internally); the raw pointer points
// into it. Dropping from another thread only calls the (thread-safe)
// deregistration.
unsafe impl Send for Registration {}
// SAFETY: no method reads or writes through `&self`.
unsafe impl Sync for Registration {}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("bytes", &(self.section.len() * 8))
            .field("registered", &!self.registered.is_null())
            .finish()
    }
}

#[cfg(all(
    any(target_arch = "x86_64", target_arch = "aarch64"),
    target_os = "linux"
))]
mod sys {
    use std::sync::OnceLock;

    extern "C" {
        // libgcc (unwind-dw2-fde.c) and LLVM libunwind both export these;
        // Rust's std links the unwinder on every Linux target.
        pub fn __register_frame(begin: *const u8);
        pub fn __deregister_frame(begin: *const u8);
    }

    /// Whether the process unwinds with LLVM's libunwind (whose
    /// `__register_frame` takes one FDE) rather than libgcc (a section).
    pub fn llvm_libunwind() -> bool {
        static IS: OnceLock<bool> = OnceLock::new();
        *IS.get_or_init(|| {
            // SAFETY: dlsym with RTLD_DEFAULT and a NUL-terminated name only
            // looks a symbol up.
            let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"__unw_add_dynamic_fde".as_ptr()) };
            !p.is_null()
        })
    }
}

/// Installs `bytes`, the code emitted for `sig`, in the global arena,
/// registers its unwind tables built from `rows`, and records it in the
/// perf map (and names it for gdb) as `kind`: what every compiled
/// trampoline and closure body goes through.
///
/// The owner keeps both results and drops the registration first.
///
/// # Safety
///
/// `rows` must be the emitter's truthful account of exactly `bytes` (see
/// [`Registration::register`]).
pub(crate) unsafe fn install_described(
    kind: crate::perfmap::Kind,
    sig: &crate::types::Signature,
    bytes: &[u8],
    rows: &[UnwindRow],
) -> Result<(crate::exec::Code, Registration), crate::Error> {
    let code = crate::exec::CodeArena::global().install(bytes)?;
    // SAFETY: the rows describe exactly these bytes, installed at `code`,
    // per the contract; the caller keeps `code` alive as long as the
    // registration. Code of another instruction set than the host's is
    // refused by `register_named`, not registered.
    let unwind = unsafe {
        Registration::register_named(sig.abi.isa(), code.as_ptr(), code.len(), rows, || {
            crate::perfmap::symbol_name(kind, sig)
        })
    }?;
    crate::perfmap::record(kind, sig, code.as_ptr(), code.len());
    Ok((code, unwind))
}

impl Registration {
    /// Builds the section for `len` bytes of `isa` code at `start` with
    /// `rows` ([`eh_frame`]) and registers it. `isa` must be the host's
    /// ([`HOST_ISA`]): code of another instruction set never runs here, and
    /// its rows would mislead the unwinder; asking is an error.
    ///
    /// # Safety
    ///
    /// `start..start + len` must be code installed for as long as the
    /// returned value lives, and `rows` must describe it truthfully: an
    /// unwinder will trust them to find return addresses and saved
    /// registers in frames of that code.
    pub unsafe fn register(
        isa: Isa,
        start: *const u8,
        len: usize,
        rows: &[UnwindRow],
    ) -> Result<Registration, UnwindError> {
        // SAFETY: the caller's promise, passed on.
        unsafe { Self::register_named(isa, start, len, rows, || "jitffi:code".into()) }
    }

    /// [`register`](Self::register), also naming the code `name()` for a
    /// debugger (see [`gdb`]; `name` is called only when that is enabled).
    ///
    /// # Safety
    ///
    /// As for [`register`](Self::register).
    pub unsafe fn register_named(
        isa: Isa,
        start: *const u8,
        len: usize,
        rows: &[UnwindRow],
        name: impl FnOnce() -> String,
    ) -> Result<Registration, UnwindError> {
        if HOST_ISA != Some(isa) {
            return Err(UnwindError(format!(
                "{isa:?} code cannot be registered with this host's unwinder"
            )));
        }
        let bytes = eh_frame(isa, start as u64, len as u64, rows)?;
        let mut section = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
        for (w, c) in section.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            *w = u64::from_ne_bytes(b);
        }
        let gdb = if gdb::enabled() {
            // SAFETY: the caller vouches that start..start+len is installed
            // code, readable.
            let code = unsafe { std::slice::from_raw_parts(start, len) };
            Some(gdb::Entry::register(
                isa,
                code,
                start as u64,
                &bytes,
                &name(),
            ))
        } else {
            None
        };
        #[allow(unused_mut)]
        let mut reg = Registration {
            section,
            registered: std::ptr::null(),
            gdb,
        };
        #[cfg(all(
            any(target_arch = "x86_64", target_arch = "aarch64"),
            target_os = "linux"
        ))]
        {
            let base = reg.section.as_ptr() as *const u8;
            let begin = if sys::llvm_libunwind() {
                // SAFETY: FDE_OFFSET is inside the section (eh_frame puts
                // the CIE, then the FDE there).
                unsafe { base.add(FDE_OFFSET) }
            } else {
                base
            };
            // SAFETY: `begin` is a well-formed .eh_frame section (or FDE,
            // for libunwind) that stays allocated, unmoved and unchanged
            // until Drop deregisters it; the caller vouches for the code.
            unsafe { sys::__register_frame(begin) };
            reg.registered = begin;
        }
        Ok(reg)
    }

    /// The registered section's bytes (CIE, FDE, terminator).
    pub fn section(&self) -> &[u8] {
        let n = self.section.len() * 8;
        // SAFETY: the boxed slice of u64 is `n` initialised bytes, and u8
        // has no alignment requirement.
        unsafe { std::slice::from_raw_parts(self.section.as_ptr() as *const u8, n) }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(e) = self.gdb.take() {
            e.unregister();
        }
        #[cfg(all(
            any(target_arch = "x86_64", target_arch = "aarch64"),
            target_os = "linux"
        ))]
        if !self.registered.is_null() {
            // SAFETY: exactly the pointer registered in `register`, not yet
            // deregistered; libgcc aborts on an unknown pointer, which this
            // cannot be.
            unsafe { sys::__deregister_frame(self.registered) };
        }
    }
}

pub mod gdb {
    //! gdb's JIT interface (gdb manual, "JIT Compilation Interface"): the
    //! process exports `__jit_debug_descriptor`, a list of in-memory object
    //! files, and calls `__jit_debug_register_code` (on which gdb keeps a
    //! breakpoint) after each change. Each object here is a minimal ELF
    //! relocatable file (System V gABI "Object Files") with the code's
    //! bytes as `.text` at its run-time address, its `.eh_frame`, and one
    //! function symbol, so `bt` walks through the code and names it.

    use std::sync::{Mutex, OnceLock};

    use super::{Conventions, Isa};

    /// `struct jit_code_entry`.
    #[repr(C)]
    pub struct JitCodeEntry {
        next_entry: *mut JitCodeEntry,
        prev_entry: *mut JitCodeEntry,
        symfile_addr: *const u8,
        symfile_size: u64,
    }

    /// `struct jit_descriptor`.
    #[repr(C)]
    pub struct JitDescriptor {
        version: u32,
        action_flag: u32,
        relevant_entry: *mut JitCodeEntry,
        first_entry: *mut JitCodeEntry,
    }

    const JIT_REGISTER_FN: u32 = 1;
    const JIT_UNREGISTER_FN: u32 = 2;

    /// The descriptor gdb reads, by this exact name.
    #[no_mangle]
    #[allow(non_upper_case_globals)]
    pub static mut __jit_debug_descriptor: JitDescriptor = JitDescriptor {
        version: 1,
        action_flag: 0,
        relevant_entry: std::ptr::null_mut(),
        first_entry: std::ptr::null_mut(),
    };

    /// gdb breaks here to read the descriptor's change.
    #[no_mangle]
    #[inline(never)]
    pub extern "C" fn __jit_debug_register_code() {
        // Keeps the call (and the function) from being optimised away.
        std::hint::black_box(());
    }

    /// Serialises changes to the descriptor's list.
    static LOCK: Mutex<()> = Mutex::new(());

    /// Whether objects are built for gdb: `JITFFI_GDB_JIT=1`, or a tracer
    /// (a debugger) attached when this is first asked (`TracerPid` in
    /// /proc/self/status, proc(5)). `JITFFI_GDB_JIT=0` turns it off.
    pub fn enabled() -> bool {
        static ON: OnceLock<bool> = OnceLock::new();
        *ON.get_or_init(|| match std::env::var("JITFFI_GDB_JIT").as_deref() {
            Ok("1") => true,
            Ok("0") => false,
            _ => std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("TracerPid:"))
                    .is_some_and(|v| v.trim() != "0")
            }),
        })
    }

    /// One object registered with gdb; [`unregister`](Entry::unregister)
    /// takes it back.
    pub struct Entry {
        entry: Box<JitCodeEntry>,
        _image: Box<[u8]>,
    }

    fn put16(v: &mut Vec<u8>, x: u16) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn put32(v: &mut Vec<u8>, x: u32) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn put64(v: &mut Vec<u8>, x: u64) {
        v.extend_from_slice(&x.to_le_bytes());
    }
    fn align8(v: &mut Vec<u8>) {
        while v.len() % 8 != 0 {
            v.push(0);
        }
    }

    /// The ELF image for `code` at `addr` with its `.eh_frame` section
    /// (which must use absolute addresses, as [`super::eh_frame`]'s do):
    /// header, .text, .eh_frame, .symtab, .strtab, .shstrtab, section
    /// headers.
    pub fn elf_image(isa: Isa, code: &[u8], addr: u64, eh_frame: &[u8], name: &str) -> Vec<u8> {
        let mut v = vec![0u8; 64];
        let text_off = v.len();
        v.extend_from_slice(code);
        align8(&mut v);
        let eh_off = v.len();
        v.extend_from_slice(eh_frame);
        align8(&mut v);
        // .symtab: the null symbol, then the function (gABI "Symbol Table").
        let sym_off = v.len();
        v.extend_from_slice(&[0; 24]);
        put32(&mut v, 1); // st_name: after the leading NUL of .strtab
        v.push(0x12); // st_info: STB_GLOBAL << 4 | STT_FUNC
        v.push(0); // st_other
        put16(&mut v, 1); // st_shndx: .text
        put64(&mut v, 0); // st_value: offset in .text (ET_REL)
        put64(&mut v, code.len() as u64); // st_size
        let str_off = v.len();
        v.push(0);
        v.extend(name.bytes().filter(|&b| b != 0));
        v.push(0);
        let str_size = v.len() - str_off;
        let shstr_off = v.len();
        let names = b"\0.text\0.eh_frame\0.symtab\0.strtab\0.shstrtab\0";
        v.extend_from_slice(names);
        align8(&mut v);
        let sh_off = v.len();
        // Section headers (gABI "Sections"): name offset in .shstrtab,
        // type, flags, addr, offset, size, link, info, align, entsize.
        // .eh_frame gets an address of its own past the code (absolute
        // pointers in it need no relocation).
        let eh_addr = addr + code.len().div_ceil(16) as u64 * 16 + 16;
        type Sh = (u32, u32, u64, u64, usize, usize, u32, u32, u64, u64);
        let shs: [Sh; 6] = [
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
            // .text: SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR.
            (1, 1, 0x6, addr, text_off, code.len(), 0, 0, 16, 0),
            // .eh_frame: SHT_PROGBITS, SHF_ALLOC.
            (7, 1, 0x2, eh_addr, eh_off, eh_frame.len(), 0, 0, 8, 0),
            // .symtab: SHT_SYMTAB, linked to .strtab, first global = 1.
            (17, 2, 0, 0, sym_off, 48, 4, 1, 8, 24),
            // .strtab, .shstrtab: SHT_STRTAB.
            (25, 3, 0, 0, str_off, str_size, 0, 0, 1, 0),
            (33, 3, 0, 0, shstr_off, names.len(), 0, 0, 1, 0),
        ];
        for (name, ty, flags, a, off, size, link, info, al, es) in shs {
            put32(&mut v, name);
            put32(&mut v, ty);
            put64(&mut v, flags);
            put64(&mut v, a);
            put64(&mut v, off as u64);
            put64(&mut v, size as u64);
            put32(&mut v, link);
            put32(&mut v, info);
            put64(&mut v, al);
            put64(&mut v, es);
        }
        // ELF header (gABI "ELF Header"): 64-bit, little endian, ET_REL,
        // the instruction set's machine (EM_X86_64 = 62, EM_AARCH64 = 183).
        let mut h = Vec::with_capacity(64);
        h.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0]);
        h.extend_from_slice(&[0; 8]);
        put16(&mut h, 1); // e_type: ET_REL
        put16(&mut h, Conventions::of(isa).e_machine); // e_machine
        put32(&mut h, 1); // e_version
        put64(&mut h, 0); // e_entry
        put64(&mut h, 0); // e_phoff
        put64(&mut h, sh_off as u64); // e_shoff
        put32(&mut h, 0); // e_flags
        put16(&mut h, 64); // e_ehsize
        put16(&mut h, 0); // e_phentsize
        put16(&mut h, 0); // e_phnum
        put16(&mut h, 64); // e_shentsize
        put16(&mut h, 6); // e_shnum
        put16(&mut h, 5); // e_shstrndx
        v[..64].copy_from_slice(&h);
        v
    }

    impl Entry {
        /// Builds the object for `code` (at `addr`) and registers it.
        pub fn register(isa: Isa, code: &[u8], addr: u64, eh_frame: &[u8], name: &str) -> Entry {
            let image = elf_image(isa, code, addr, eh_frame, name).into_boxed_slice();
            let mut entry = Box::new(JitCodeEntry {
                next_entry: std::ptr::null_mut(),
                prev_entry: std::ptr::null_mut(),
                symfile_addr: image.as_ptr(),
                symfile_size: image.len() as u64,
            });
            let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let d = std::ptr::addr_of_mut!(__jit_debug_descriptor);
            let e: *mut JitCodeEntry = &mut *entry;
            // SAFETY: the descriptor and the list's entries are only changed
            // under LOCK; every entry is a live Box owned by an Entry until
            // it is unlinked in `unregister`.
            unsafe {
                (*e).next_entry = (*d).first_entry;
                if !(*d).first_entry.is_null() {
                    (*(*d).first_entry).prev_entry = e;
                }
                (*d).first_entry = e;
                (*d).relevant_entry = e;
                (*d).action_flag = JIT_REGISTER_FN;
            }
            __jit_debug_register_code();
            Entry {
                entry,
                _image: image,
            }
        }

        /// Unlinks the object and tells gdb.
        pub fn unregister(mut self) {
            let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            let d = std::ptr::addr_of_mut!(__jit_debug_descriptor);
            let e: *mut JitCodeEntry = &mut *self.entry;
            // SAFETY: as in `register`; `e` is in the list.
            unsafe {
                let (prev, next) = ((*e).prev_entry, (*e).next_entry);
                if prev.is_null() {
                    (*d).first_entry = next;
                } else {
                    (*prev).next_entry = next;
                }
                if !next.is_null() {
                    (*next).prev_entry = prev;
                }
                (*d).relevant_entry = e;
                (*d).action_flag = JIT_UNREGISTER_FN;
            }
            __jit_debug_register_code();
            // SAFETY: as above.
            unsafe { (*d).relevant_entry = std::ptr::null_mut() };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leb128() {
        // DWARF 4 §7.6, figures 22 and 23.
        let enc = |v: u64| {
            let mut o = Vec::new();
            uleb(&mut o, v);
            o
        };
        assert_eq!(enc(2), [2]);
        assert_eq!(enc(127), [127]);
        assert_eq!(enc(128), [0x80, 1]);
        assert_eq!(enc(12857), [0xb9, 0x64]);
        let senc = |v: i64| {
            let mut o = Vec::new();
            sleb(&mut o, v);
            o
        };
        assert_eq!(senc(2), [2]);
        assert_eq!(senc(-2), [0x7e]);
        assert_eq!(senc(127), [0xff, 0]);
        assert_eq!(senc(-127), [0x81, 0x7f]);
        assert_eq!(senc(-128), [0x80, 0x7f]);
        assert_eq!(senc(-8), [0x78]);
    }

    #[test]
    fn frame_pointer_prologue() {
        // What gcc -O0 writes for `push rbp; mov rbp, rsp; ...` (readelf
        // --debug-dump=frames): DW_CFA_advance_loc 1, def_cfa_offset 16,
        // offset r6 at cfa-16, advance_loc 3, def_cfa_register r6 (here as
        // def_cfa r6 16).
        let rows = [
            UnwindRow {
                at: 1,
                rule: CfaRule::CfaOffset(16),
            },
            UnwindRow {
                at: 1,
                rule: CfaRule::Saved {
                    reg: reg::x86_64::RBP,
                    offset: -16,
                },
            },
            UnwindRow {
                at: 4,
                rule: CfaRule::Cfa {
                    reg: reg::x86_64::RBP,
                    offset: 16,
                },
            },
        ];
        let s = eh_frame(Isa::X86_64, 0x1000, 0x40, &rows).unwrap();
        // CIE: length 20, id 0, version 1, "zR", 1, -8, 16, 1, absptr,
        // def_cfa r7 8, offset r16 1, nops.
        assert_eq!(
            &s[..24],
            &[
                20, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 1, 0x78, 16, 1, 0, 0x0c, 7, 8, 0x90, 1,
                0, 0
            ]
        );
        let fde = &s[24..];
        assert_eq!(&fde[4..8], &28u32.to_le_bytes()); // back to the CIE
        assert_eq!(&fde[8..16], &0x1000u64.to_le_bytes());
        assert_eq!(&fde[16..24], &0x40u64.to_le_bytes());
        assert_eq!(fde[24], 0); // no augmentation data
        assert_eq!(&fde[25..34], &[0x41, 0x0e, 16, 0x86, 2, 0x43, 0x0c, 6, 16]);
        let len = u32::from_le_bytes(fde[..4].try_into().unwrap()) as usize;
        assert_eq!((len + 4) % 8, 0);
        assert_eq!(&fde[len + 4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn gdb_object_is_well_formed_elf() {
        use object::{Object, ObjectSection, ObjectSymbol};
        let code = [0x55u8, 0x48, 0x89, 0xe5, 0x5d, 0xc3];
        let eh = eh_frame(Isa::X86_64, 0x7000_1000, 6, &[]).unwrap();
        let img = gdb::elf_image(Isa::X86_64, &code, 0x7000_1000, &eh, "jitffi:call:int(int)");
        let f = object::File::parse(&*img).expect("parses as ELF");
        assert_eq!(f.architecture(), object::Architecture::X86_64);
        let text = f.section_by_name(".text").unwrap();
        assert_eq!(text.address(), 0x7000_1000);
        assert_eq!(text.data().unwrap(), &code);
        let ehs = f.section_by_name(".eh_frame").unwrap();
        assert_eq!(ehs.data().unwrap(), &eh[..]);
        let sym = f
            .symbols()
            .find(|s| s.name() == Ok("jitffi:call:int(int)"))
            .unwrap();
        assert_eq!(sym.size(), 6);
        assert_eq!(sym.section_index(), Some(text.index()));
    }

    #[test]
    fn gdb_list_links_and_unlinks() {
        let eh = eh_frame(Isa::X86_64, 0x1000, 1, &[]).unwrap();
        let a = gdb::Entry::register(Isa::X86_64, &[0xc3], 0x1000, &eh, "a");
        let b = gdb::Entry::register(Isa::X86_64, &[0xc3], 0x2000, &eh, "b");
        let c = gdb::Entry::register(Isa::X86_64, &[0xc3], 0x3000, &eh, "c");
        b.unregister();
        a.unregister();
        c.unregister();
        // Other tests may register concurrently; ours are all gone.
    }

    #[test]
    fn bad_rows_are_errors() {
        let r = |at| UnwindRow {
            at,
            rule: CfaRule::CfaOffset(16),
        };
        assert!(eh_frame(Isa::X86_64, 0, 8, &[r(4), r(2)]).is_err());
        assert!(eh_frame(Isa::X86_64, 0, 8, &[r(9)]).is_err());
        let odd = UnwindRow {
            at: 0,
            rule: CfaRule::Saved {
                reg: reg::x86_64::RBX,
                offset: -12,
            },
        };
        assert!(eh_frame(Isa::X86_64, 0, 8, &[odd]).is_err());
        assert!(eh_frame(Isa::Aarch64, 0, 8, &[odd]).is_err());
        // AArch64 instructions are 4 bytes: a row between two is an error.
        assert!(eh_frame(Isa::Aarch64, 0, 8, &[r(4)]).is_ok());
        assert!(eh_frame(Isa::Aarch64, 0, 8, &[r(2)]).is_err());
    }

    /// Rows for the AArch64 function of `aarch64_frame_matches_gas`.
    fn aarch64_rows() -> Vec<UnwindRow> {
        use reg::aarch64::{x, FP, LR, SP};
        let row = |at, rule| UnwindRow { at, rule };
        let saved = |r, offset| CfaRule::Saved { reg: r, offset };
        vec![
            row(4, CfaRule::CfaOffset(16)),
            row(4, saved(FP, -16)),
            row(4, saved(LR, -8)),
            row(
                8,
                CfaRule::Cfa {
                    reg: FP,
                    offset: 16,
                },
            ),
            row(12, saved(x(19), -32)),
            row(12, saved(x(20), -24)),
            row(16, saved(x(21), -48)),
            row(44, CfaRule::Restored(x(19))),
            row(44, CfaRule::Restored(x(20))),
            row(48, CfaRule::Restored(x(21))),
            row(56, CfaRule::Cfa { reg: SP, offset: 0 }),
            row(56, CfaRule::Restored(FP)),
            row(56, CfaRule::Restored(LR)),
        ]
    }

    #[test]
    fn aarch64_frame_matches_gas() {
        // The function (15 instructions, 60 bytes), as a trampoline with
        // three saved parameters, with gas's CFI directives:
        //
        //   0 stp x29, x30, [sp, #-16]!  .cfi_def_cfa_offset 16
        //                                .cfi_offset 29, -16
        //                                .cfi_offset 30, -8
        //   4 mov x29, sp                .cfi_def_cfa 29, 16
        //   8 stp x19, x20, [sp, #-16]!  .cfi_offset 19, -32
        //                                .cfi_offset 20, -24
        //  12 str x21, [sp, #-16]!       .cfi_offset 21, -48
        //  16 sub sp, sp, #32; mov x19, x1; mov x20, x2; mov x21, x0
        //  32 blr x21
        //  36 str w0, [x20]
        //  40 ldp x19, x20, [x29, #-16]  .cfi_restore 19, .cfi_restore 20
        //  44 ldur x21, [x29, #-32]      .cfi_restore 21
        //  48 mov sp, x29
        //  52 ldp x29, x30, [sp], #16    .cfi_def_cfa 31, 0
        //                                .cfi_restore 29, .cfi_restore 30
        //  56 ret
        //
        // `aarch64-linux-gnu-as` + `aarch64-linux-gnu-readelf
        // --debug-dump=frames` (binutils 2.40): CIE "zR", code alignment
        // 4, data alignment -8, return address column 30, `DW_CFA_def_cfa:
        // r31 (sp) ofs 0` (gcc's own CIE for AArch64 is the same); the FDE
        // instruction bytes below are gas's, byte for byte. gas encodes
        // addresses pc-relative (augmentation data 0x1b); the section here
        // uses absolute ones (0x00), the one byte of the CIE that differs.
        let s = eh_frame(Isa::Aarch64, 0x4000, 60, &aarch64_rows()).unwrap();
        assert_eq!(
            &s[..24],
            &[
                20, 0, 0, 0, 0, 0, 0, 0, 1, b'z', b'R', 0, 4, 0x78, 30, 1, 0, 0x0c, 31, 0, 0, 0, 0,
                0
            ]
        );
        let fde = &s[24..];
        assert_eq!(&fde[4..8], &28u32.to_le_bytes());
        assert_eq!(&fde[8..16], &0x4000u64.to_le_bytes());
        assert_eq!(&fde[16..24], &60u64.to_le_bytes());
        assert_eq!(fde[24], 0);
        let gas: [u8; 30] = [
            0x41, 0x0e, 0x10, 0x9d, 0x02, 0x9e, 0x01, 0x41, 0x0c, 0x1d, 0x10, 0x41, 0x93, 0x04,
            0x94, 0x03, 0x41, 0x95, 0x06, 0x47, 0xd3, 0xd4, 0x41, 0xd5, 0x42, 0x0c, 0x1f, 0x00,
            0xdd, 0xde,
        ];
        assert_eq!(&fde[25..55], &gas);
        let len = u32::from_le_bytes(fde[..4].try_into().unwrap()) as usize;
        assert_eq!((len + 4) % 8, 0);
        assert!(
            fde[55..len + 4].iter().all(|&b| b == 0),
            "DW_CFA_nop padding"
        );
        assert_eq!(&fde[len + 4..], &[0, 0, 0, 0]);
    }

    #[test]
    fn aarch64_entry_state_is_sp_plus_zero() {
        // No rows (a closure stub, a leaf): only the CIE's entry state.
        // aadwarf64 §4.1: sp is r31; the CFA is sp + 0 at entry, the
        // return address is in x30 (column 30), which needs no rule.
        let s = eh_frame(Isa::Aarch64, 0x1000, 32, &[]).unwrap();
        assert_eq!(&s[17..20], &[0x0c, 31, 0]);
        assert_eq!(s.len(), FDE_OFFSET + 32 + 4);
        assert!(s[FDE_OFFSET + 25..FDE_OFFSET + 32].iter().all(|&b| b == 0));
        // Advances are in instructions: +256 bytes is 64 instructions
        // (DW_CFA_advance_loc1 64), +4 is one (advance_loc 1).
        let r = |at| UnwindRow {
            at,
            rule: CfaRule::CfaOffset(16),
        };
        let s = eh_frame(Isa::Aarch64, 0, 0x1000, &[r(4), r(260)]).unwrap();
        assert_eq!(
            &s[FDE_OFFSET + 25..FDE_OFFSET + 32],
            &[0x41, 0x0e, 16, 0x02, 64, 0x0e, 16]
        );
    }

    #[test]
    fn gdb_object_for_aarch64_is_well_formed_elf() {
        use object::{Object, ObjectSection};
        // stp x29, x30, [sp, #-16]!; mov x29, sp; ldp x29, x30, [sp], #16;
        // ret.
        let code: Vec<u8> = [0xa9bf7bfdu32, 0x910003fd, 0xa8c17bfd, 0xd65f03c0]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let eh = eh_frame(Isa::Aarch64, 0x7000_2000, 16, &[]).unwrap();
        let img = gdb::elf_image(
            Isa::Aarch64,
            &code,
            0x7000_2000,
            &eh,
            "jitffi:call:int(int)",
        );
        let f = object::File::parse(&*img).expect("parses as ELF");
        // gABI: EM_AARCH64 = 183.
        assert_eq!(u16::from_le_bytes([img[18], img[19]]), 183);
        assert_eq!(f.architecture(), object::Architecture::Aarch64);
        let ehs = f.section_by_name(".eh_frame").unwrap();
        assert_eq!(ehs.data().unwrap(), &eh[..]);
    }

    #[test]
    fn foreign_code_is_not_registered() {
        let foreign = match HOST_ISA {
            Some(Isa::X86_64) => Isa::Aarch64,
            _ => Isa::X86_64,
        };
        let code = [0u8; 16];
        // SAFETY: refused before the code or the rows are looked at.
        let r = unsafe { Registration::register(foreign, code.as_ptr(), code.len(), &[]) };
        assert!(r.is_err());
    }
}
