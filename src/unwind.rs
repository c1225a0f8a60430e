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
//! - The emitters (`arch/x86_64`) report, beside the bytes, every change
//!   they make to the frame as an [`UnwindRow`]: at a code offset, a new
//!   [`CfaRule`] ("the CFA is now rsp + 16", "rbp is saved at CFA − 16").
//! - [`eh_frame`] turns the rows of one code blob, installed at its final
//!   address, into a `.eh_frame` section: one CIE, one FDE, and the
//!   zero-length terminator (DWARF 4 §6.4 "Call Frame Information"; the
//!   `.eh_frame` variant: Linux Standard Base Core, "Exception Frames").
//!   Addresses are encoded absolute (`DW_EH_PE_absptr`, 8 bytes), so the
//!   section may live anywhere (the heap is usually more than 2 GiB from
//!   the code, beyond a 32-bit pc-relative field).
//! - [`Registration`] hands it to the unwinder and takes it back on drop.
//!   The owner keeps the registration alive exactly as long as the code,
//!   and drops it first (an FDE left registered for freed code would
//!   describe whatever is installed there next).
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
//! `RTDyldMemoryManager::registerEHFramesInProcess`) do.
//!
//! Only x86-64 emitters report rows; AArch64 code gets no tables yet.

use std::fmt;

/// DWARF register numbers of x86-64 (System V psABI §3.6.2, figure 3.36
/// "DWARF Register Number Mapping").
pub mod reg {
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

    /// The DWARF number of general register `n` in the hardware encoding
    /// (rax = 0, rcx = 1, … r15 = 15), as the emitters name them.
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

/// A change to how the caller's frame is found, taking effect at an
/// instruction (and holding until the next change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CfaRule {
    /// The CFA (the caller's rsp before its call instruction) is
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
    /// `reg` holds the caller's value again.
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
/// The data alignment factor: every save offset on x86-64 is a multiple of 8.
const DATA_ALIGN: i32 = -8;

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

/// Errors in a row list: rows out of order, past the code, or a save offset
/// that is not a multiple of 8.
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
/// is always this long).
pub const FDE_OFFSET: usize = 24;

/// The `.eh_frame` section for `len` bytes of x86-64 code at address
/// `start`, whose frame changes are `rows` (ascending `at`): a CIE with the
/// state at a function's entry (CFA = rsp + 8, return address at CFA − 8,
/// psABI §3.6.2 / §3.2.2), one FDE with the rows, and a zero terminator.
/// The FDE starts at [`FDE_OFFSET`].
pub fn eh_frame(start: u64, len: u64, rows: &[UnwindRow]) -> Result<Vec<u8>, UnwindError> {
    let mut out = Vec::with_capacity(64 + 4 * rows.len());
    // CIE (DWARF 4 §6.4.1; LSB "The Common Information Entry Format").
    out.extend_from_slice(&[0; 4]); // length, patched
    out.extend_from_slice(&0u32.to_le_bytes()); // CIE id: 0 in .eh_frame
    out.push(1); // version
    out.extend_from_slice(b"zR\0"); // augmentation: data length, FDE encoding
    uleb(&mut out, 1); // code alignment factor
    sleb(&mut out, DATA_ALIGN as i64); // data alignment factor
    uleb(&mut out, reg::RA as u64); // return address column
    uleb(&mut out, 1); // augmentation data length
    out.push(DW_EH_PE_ABSPTR); // R: FDE address encoding
                               // Initial instructions: at entry the CFA is rsp + 8 and the return
                               // address is at CFA − 8 (the call pushed it).
    out.push(DW_CFA_DEF_CFA);
    uleb(&mut out, reg::RSP as u64);
    uleb(&mut out, 8);
    out.push(DW_CFA_OFFSET | reg::RA as u8);
    uleb(&mut out, 1);
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
        let d = row.at - loc;
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
                if offset % DATA_ALIGN != 0 {
                    return Err(UnwindError(format!(
                        "register {reg} saved at CFA{offset:+}, not a multiple of 8"
                    )));
                }
                let factored = offset / DATA_ALIGN;
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
        not(all(target_arch = "x86_64", target_os = "linux")),
        allow(dead_code)
    )]
    section: Box<[u64]>,
    /// What was handed to `__register_frame` (null: nothing registered).
    #[cfg_attr(
        not(all(target_arch = "x86_64", target_os = "linux")),
        allow(dead_code)
    )]
    registered: *const u8,
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

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
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

impl Registration {
    /// Builds the section for `len` bytes of code at `start` with `rows`
    /// ([`eh_frame`]) and registers it.
    ///
    /// # Safety
    ///
    /// `start..start + len` must be code installed for as long as the
    /// returned value lives, and `rows` must describe it truthfully: an
    /// unwinder will trust them to find return addresses and saved
    /// registers in frames of that code.
    pub unsafe fn register(
        start: *const u8,
        len: usize,
        rows: &[UnwindRow],
    ) -> Result<Registration, UnwindError> {
        let bytes = eh_frame(start as u64, len as u64, rows)?;
        let mut section = vec![0u64; bytes.len().div_ceil(8)].into_boxed_slice();
        for (w, c) in section.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..c.len()].copy_from_slice(c);
            *w = u64::from_ne_bytes(b);
        }
        #[allow(unused_mut)]
        let mut reg = Registration {
            section,
            registered: std::ptr::null(),
        };
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
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
        #[cfg(all(target_arch = "x86_64", target_os = "linux"))]
        if !self.registered.is_null() {
            // SAFETY: exactly the pointer registered in `register`, not yet
            // deregistered; libgcc aborts on an unknown pointer, which this
            // cannot be.
            unsafe { sys::__deregister_frame(self.registered) };
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
                    reg: reg::RBP,
                    offset: -16,
                },
            },
            UnwindRow {
                at: 4,
                rule: CfaRule::Cfa {
                    reg: reg::RBP,
                    offset: 16,
                },
            },
        ];
        let s = eh_frame(0x1000, 0x40, &rows).unwrap();
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
    fn bad_rows_are_errors() {
        let r = |at| UnwindRow {
            at,
            rule: CfaRule::CfaOffset(16),
        };
        assert!(eh_frame(0, 8, &[r(4), r(2)]).is_err());
        assert!(eh_frame(0, 8, &[r(9)]).is_err());
        let odd = UnwindRow {
            at: 0,
            rule: CfaRule::Saved {
                reg: reg::RBX,
                offset: -12,
            },
        };
        assert!(eh_frame(0, 8, &[odd]).is_err());
    }
}
