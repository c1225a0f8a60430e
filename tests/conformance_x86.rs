//! x86-64 conformance checks of forward trampolines, with callees and a
//! caller written in assembly:
//!
//! (a) stack alignment and the Win64 shadow space: a probe callee records
//!     `rsp mod 16` at entry (must be 8: the call just pushed the return
//!     address onto a 16-byte aligned stack; SysV psABI §3.2.2, Microsoft
//!     x64 "Stack allocation"), trashes the 32-byte shadow space above the
//!     return address (Win64: the caller must reserve it, the callee owns
//!     it) and the 128 bytes below rsp, then jumps to a real gcc-compiled
//!     callee whose result is compared with gcc's direct call.
//! (b) callee-saved registers: an assembly caller loads canaries into rbx,
//!     rbp, r12–r15, calls a trampoline entry and checks them, and rsp,
//!     afterwards (the entry is SysV-convention: psABI §3.2.1, Figure 3.4);
//!     the trampoline calls assembly callees that clobber every register
//!     their convention lets them (SysV: all but rbx, rbp, r12–r15; Win64:
//!     rax, rcx, rdx, r8–r11, xmm0–5 and the shadow space) and the result
//!     must still arrive in `ret`.
#![cfg(all(target_arch = "x86_64", target_os = "linux"))]

mod common;

use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use common::{aligned, bytes_of, cases, decls, reference, via_jitffi_with, Lib};
use jitffi::call::{ArgMode, Trampoline};
use jitffi::Abi;

/// `rsp & 15` at the probe's last entry.
static PROBE_RSP_MOD: AtomicU64 = AtomicU64::new(0);
/// How many times a probe was entered.
static PROBE_COUNT: AtomicU64 = AtomicU64::new(0);
/// Where the probes jump after their checks (the real callee).
static PROBE_NEXT: AtomicU64 = AtomicU64::new(0);
/// The canary caller's rsp before its call.
static CANARY_RSP: AtomicU64 = AtomicU64::new(0);

/// The probes and PROBE_NEXT are process-global: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

std::arch::global_asm!(
    // ---- (a) probes: keep every argument register (and rax, which
    // carries `al` in SysV variadic calls) intact; use r10/r11 only.
    ".text",
    ".globl jitffi_conf_probe_sysv",
    "jitffi_conf_probe_sysv:",
    "    mov r11, rsp",
    "    and r11, 15",
    "    mov qword ptr [rip + {rspmod}], r11",
    "    lock inc qword ptr [rip + {count}]",
    // Trash the 128 bytes below the return address (the callee's red zone:
    // nothing of the caller may live there).
    "    movabs r10, 0xBADC0FFEE0DDF00D",
    "    mov r11, -128",
    "2:  mov qword ptr [rsp + r11], r10",
    "    add r11, 8",
    "    jnz 2b",
    "    jmp qword ptr [rip + {next}]",
    "",
    ".globl jitffi_conf_probe_win",
    "jitffi_conf_probe_win:",
    "    mov r11, rsp",
    "    and r11, 15",
    "    mov qword ptr [rip + {rspmod}], r11",
    "    lock inc qword ptr [rip + {count}]",
    // The shadow space: 32 bytes above the return address, the callee's.
    "    movabs r10, 0xDEADBEEFCAFEBABE",
    "    mov qword ptr [rsp + 8], r10",
    "    mov qword ptr [rsp + 16], r10",
    "    mov qword ptr [rsp + 24], r10",
    "    mov qword ptr [rsp + 32], r10",
    // Microsoft x64 has no red zone; still, nothing may live below rsp.
    "    mov r11, -128",
    "3:  mov qword ptr [rsp + r11], r10",
    "    add r11, 8",
    "    jnz 3b",
    "    jmp qword ptr [rip + {next}]",
    "",
    // ---- (b) u64 jitffi_conf_canary_call(entry, target, args, ret):
    // calls entry(target, args, ret) with canaries in the SysV callee-saved
    // registers; returns a bit mask of those found changed: rbx 1, rbp 2,
    // r12 4, r13 8, r14 16, r15 32, rsp 64, direction flag set 128.
    ".globl jitffi_conf_canary_call",
    "jitffi_conf_canary_call:",
    "    push rbx",
    "    push rbp",
    "    push r12",
    "    push r13",
    "    push r14",
    "    push r15",
    "    sub rsp, 8", // 8 + 6*8 + 8: 16-aligned at the call
    "    mov r11, rdi",
    "    mov rdi, rsi",
    "    mov rsi, rdx",
    "    mov rdx, rcx",
    "    movabs rbx, 0x0B0B0B0B0B0B0B01",
    "    movabs rbp, 0x0B0B0B0B0B0B0B02",
    "    movabs r12, 0x0B0B0B0B0B0B0B03",
    "    movabs r13, 0x0B0B0B0B0B0B0B04",
    "    movabs r14, 0x0B0B0B0B0B0B0B05",
    "    movabs r15, 0x0B0B0B0B0B0B0B06",
    "    mov qword ptr [rip + {canary_rsp}], rsp",
    "    call r11",
    "    xor eax, eax",
    "    movabs r11, 0x0B0B0B0B0B0B0B01",
    "    cmp rbx, r11",
    "    je 4f",
    "    or eax, 1",
    "4:  movabs r11, 0x0B0B0B0B0B0B0B02",
    "    cmp rbp, r11",
    "    je 4f",
    "    or eax, 2",
    "4:  movabs r11, 0x0B0B0B0B0B0B0B03",
    "    cmp r12, r11",
    "    je 4f",
    "    or eax, 4",
    "4:  movabs r11, 0x0B0B0B0B0B0B0B04",
    "    cmp r13, r11",
    "    je 4f",
    "    or eax, 8",
    "4:  movabs r11, 0x0B0B0B0B0B0B0B05",
    "    cmp r14, r11",
    "    je 4f",
    "    or eax, 16",
    "4:  movabs r11, 0x0B0B0B0B0B0B0B06",
    "    cmp r15, r11",
    "    je 4f",
    "    or eax, 32",
    "4:  cmp rsp, qword ptr [rip + {canary_rsp}]",
    "    je 4f",
    "    or eax, 64",
    "4:  pushfq",
    "    pop r11",
    "    test r11, 0x400",
    "    jz 4f",
    "    or eax, 128",
    "    cld",
    "4:  mov rsp, qword ptr [rip + {canary_rsp}]",
    "    add rsp, 8",
    "    pop r15",
    "    pop r14",
    "    pop r13",
    "    pop r12",
    "    pop rbp",
    "    pop rbx",
    "    ret",
    "",
    // ---- (b) callees that clobber every register they may.
    // long long f(...): 0x1122334455667788 in rax.
    ".globl jitffi_conf_clobber_sysv",
    "jitffi_conf_clobber_sysv:",
    "    call jitffi_conf_clobber_sysv_regs",
    "    movabs rax, 0x1122334455667788",
    "    ret",
    // double f(...): 1.5 in xmm0.
    ".globl jitffi_conf_clobber_sysv_dbl",
    "jitffi_conf_clobber_sysv_dbl:",
    "    call jitffi_conf_clobber_sysv_regs",
    "    movabs r11, 0x3FF8000000000000",
    "    movq xmm0, r11",
    "    ret",
    // struct {long long a, b, c;} f(...): written through rdi, rax = rdi.
    ".globl jitffi_conf_clobber_sysv_sret",
    "jitffi_conf_clobber_sysv_sret:",
    "    push rdi",
    "    call jitffi_conf_clobber_sysv_regs",
    "    pop rax",
    "    movabs r11, 0x0101010101010101",
    "    mov qword ptr [rax], r11",
    "    movabs r11, 0x0202020202020202",
    "    mov qword ptr [rax + 8], r11",
    "    movabs r11, 0x0303030303030303",
    "    mov qword ptr [rax + 16], r11",
    "    ret",
    // Win64 versions: may clobber rax, rcx, rdx, r8-r11, xmm0-5 and the
    // shadow space; must keep rdi, rsi, xmm6-15 (and rbx, rbp, r12-r15).
    ".globl jitffi_conf_clobber_win",
    "jitffi_conf_clobber_win:",
    "    movabs r11, 0xA5A5A5A5A5A5A5A5",
    "    mov qword ptr [rsp + 8], r11",
    "    mov qword ptr [rsp + 16], r11",
    "    mov qword ptr [rsp + 24], r11",
    "    mov qword ptr [rsp + 32], r11",
    "    call jitffi_conf_clobber_win_regs",
    "    movabs rax, 0x1122334455667788",
    "    ret",
    ".globl jitffi_conf_clobber_win_dbl",
    "jitffi_conf_clobber_win_dbl:",
    "    movabs r11, 0xA5A5A5A5A5A5A5A5",
    "    mov qword ptr [rsp + 8], r11",
    "    mov qword ptr [rsp + 16], r11",
    "    mov qword ptr [rsp + 24], r11",
    "    mov qword ptr [rsp + 32], r11",
    "    call jitffi_conf_clobber_win_regs",
    "    movabs r11, 0x3FF8000000000000",
    "    movq xmm0, r11",
    "    ret",
    // struct {long long a, b, c;} f(...): written through rcx, rax = rcx.
    ".globl jitffi_conf_clobber_win_sret",
    "jitffi_conf_clobber_win_sret:",
    "    movabs r11, 0xA5A5A5A5A5A5A5A5",
    "    mov qword ptr [rsp + 8], r11",
    "    mov qword ptr [rsp + 16], r11",
    "    mov qword ptr [rsp + 24], r11",
    "    mov qword ptr [rsp + 32], r11",
    "    mov rax, rcx",
    "    movabs r11, 0x0101010101010101",
    "    mov qword ptr [rax], r11",
    "    movabs r11, 0x0202020202020202",
    "    mov qword ptr [rax + 8], r11",
    "    movabs r11, 0x0303030303030303",
    "    mov qword ptr [rax + 16], r11",
    "    push rax",
    "    call jitffi_conf_clobber_win_regs",
    "    pop rax",
    "    ret",
    "",
    // Helpers: fill the volatile registers with garbage.
    "jitffi_conf_clobber_sysv_regs:",
    "    movabs rax, 0x5A5A5A5A5A5A5A5A",
    "    mov rcx, rax",
    "    mov rdx, rax",
    "    mov rsi, rax",
    "    mov rdi, rax",
    "    mov r8, rax",
    "    mov r9, rax",
    "    mov r10, rax",
    "    mov r11, rax",
    "    movq xmm0, rax",
    "    movq xmm1, rax",
    "    movq xmm2, rax",
    "    movq xmm3, rax",
    "    movq xmm4, rax",
    "    movq xmm5, rax",
    "    movq xmm6, rax",
    "    movq xmm7, rax",
    "    movq xmm8, rax",
    "    movq xmm9, rax",
    "    movq xmm10, rax",
    "    movq xmm11, rax",
    "    movq xmm12, rax",
    "    movq xmm13, rax",
    "    movq xmm14, rax",
    "    movq xmm15, rax",
    "    ret",
    "jitffi_conf_clobber_win_regs:",
    "    movabs rax, 0xA5A5A5A5A5A5A5A5",
    "    mov rcx, rax",
    "    mov rdx, rax",
    "    mov r8, rax",
    "    mov r9, rax",
    "    mov r10, rax",
    "    mov r11, rax",
    "    movq xmm0, rax",
    "    movq xmm1, rax",
    "    movq xmm2, rax",
    "    movq xmm3, rax",
    "    movq xmm4, rax",
    "    movq xmm5, rax",
    "    ret",
    rspmod = sym PROBE_RSP_MOD,
    count = sym PROBE_COUNT,
    next = sym PROBE_NEXT,
    canary_rsp = sym CANARY_RSP,
);

// The assembly functions above. The probes and clobbering callees are only
// ever called through trampolines (their addresses are taken here).
extern "C" {
    fn jitffi_conf_probe_sysv();
    fn jitffi_conf_probe_win();
    fn jitffi_conf_canary_call(
        entry: *const c_void,
        target: *const c_void,
        args: *const c_void,
        ret: *mut c_void,
    ) -> u64;
    fn jitffi_conf_clobber_sysv();
    fn jitffi_conf_clobber_sysv_dbl();
    fn jitffi_conf_clobber_sysv_sret();
    fn jitffi_conf_clobber_win();
    fn jitffi_conf_clobber_win_dbl();
    fn jitffi_conf_clobber_win_sret();
}

// For `checkers_detect_violations`: a caller that misaligns the stack, a
// bare return, and an "entry" that breaks rbx.
std::arch::global_asm!(
    ".globl jitffi_conf_misaligned_call",
    "jitffi_conf_misaligned_call:",
    "    push rbx",   // entered with rsp ≡ 8 (mod 16): now ≡ 0
    "    sub rsp, 8", // ≡ 8 at the call: wrong by 8
    "    call rdi",   // the probe sees rsp ≡ 0
    "    add rsp, 8",
    "    pop rbx",
    "    ret",
    ".globl jitffi_conf_ret",
    "jitffi_conf_ret:",
    "    ret",
    ".globl jitffi_conf_break_rbx",
    "jitffi_conf_break_rbx:",
    "    xor ebx, ebx",
    "    ret",
);

fn lock() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

const VARIANTS: [(ArgMode, bool); 4] = [
    (ArgMode::Pointers, false),
    (ArgMode::Pointers, true),
    (ArgMode::Frame, false),
    (ArgMode::Frame, true),
];

fn variant_name(mode: ArgMode, bound: bool) -> String {
    format!("{mode:?}/{}", if bound { "bound" } else { "unbound" })
}

/// (a) For each case: the probe is the trampoline's target; it checks the
/// stack, trashes the shadow space and the area below rsp, and jumps to the
/// real callee; the result and the received arguments must equal gcc's
/// direct call. Returns one line per failed check.
fn probe_cases(lib: &Lib, abi: Abi, names: &[&str]) -> Vec<String> {
    let all = cases(lib);
    let d = decls(abi);
    let (probe, suffix) = match abi {
        Abi::Win64 => (jitffi_conf_probe_win as *const c_void, "_ms"),
        _ => (jitffi_conf_probe_sysv as *const c_void, ""),
    };
    let mut bad = Vec::new();
    for &name in names {
        let case = all
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no case {name}"));
        let sig = d.parse_signature(&case.decl).unwrap();
        let real = lib.sym(&format!("{}{suffix}", case.func));
        let r = reference(lib, &sig, &format!("ref_{}{suffix}", case.name));
        let nstack = Trampoline::compile(&sig, ArgMode::Frame, None)
            .map(|t| t.plan().stack_size)
            .unwrap_or(0);
        let failed_before = bad.len();
        for (mode, bound) in VARIANTS {
            let what = format!(
                "{abi} {name} ({} args, {nstack} stack bytes) {}",
                sig.args.len(),
                variant_name(mode, bound)
            );
            PROBE_NEXT.store(real as u64, Ordering::SeqCst);
            PROBE_RSP_MOD.store(99, Ordering::SeqCst);
            let before = PROBE_COUNT.load(Ordering::SeqCst);
            let got = common::via_jitffi(lib, &sig, probe, mode, bound, &r.args);
            let entered = PROBE_COUNT.load(Ordering::SeqCst) - before;
            let rsp_mod = PROBE_RSP_MOD.load(Ordering::SeqCst);
            match got {
                Err(e) => bad.push(format!("{what}: {e}")),
                Ok((ret, sink)) => {
                    if entered != 1 {
                        bad.push(format!("{what}: probe entered {entered} times"));
                    }
                    if rsp_mod != 8 {
                        bad.push(format!("{what}: rsp mod 16 = {rsp_mod} at entry, want 8"));
                    }
                    let mask = common::significant(&sig.ret);
                    if common::masked(&ret, &mask) != common::masked(&r.ret, &mask) {
                        bad.push(format!("{what}: result {ret:02x?}, gcc's {:02x?}", r.ret));
                    }
                    if sink != r.sink {
                        bad.push(format!(
                            "{what}: callee received {sink:02x?}, gcc's {:02x?}",
                            r.sink
                        ));
                    }
                }
            }
        }
        eprintln!(
            "{} {abi} {name:>12}: {} args, {nstack:>3} stack bytes: {}",
            lib.path.file_name().unwrap().to_string_lossy(),
            sig.args.len(),
            if bad.len() == failed_before {
                "rsp ≡ 8 (mod 16) at entry, result and arguments as gcc's, 4/4 variants"
            } else {
                "FAILED"
            }
        );
    }
    bad
}

#[test]
fn win64_stack_alignment_and_shadow_space() {
    let _g = lock();
    let mut bad = Vec::new();
    for opt in [0, 2] {
        bad.extend(probe_cases(
            common::callees(opt),
            Abi::Win64,
            &[
                "noargs",   // 0 args
                "tc16",     // 3 args
                "five",     // 5 args: one on the stack
                "ll9",      // 9 args: five on the stack
                "tc1",      // 12-byte struct by reference
                "arg_s13",  // 13-byte struct by reference between ints
                "tc17",     // 9 args, one a by-reference struct
                "tc8",      // hidden result pointer
                "tc23",     // mixed positional slots, two on the stack
                "ret_s24",  // hidden result pointer
                "tc26",     // variadic by-reference struct
                "vmix12",   // variadic, 13 args
                "many20",   // 20 args
                "void_rec", // void result
            ],
        ));
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn sysv_stack_alignment() {
    let _g = lock();
    let mut bad = Vec::new();
    for opt in [0, 2] {
        bad.extend(probe_cases(
            common::callees(opt),
            Abi::SysV64,
            &[
                "noargs",       // 0 args
                "ext_int",      // 1 arg
                "tc16",         // 3 args
                "mix_narrow",   // 6 args, all in registers
                "ll7",          // 1 stack slot (odd)
                "ll9",          // 3 stack slots (odd)
                "tc19",         // memory struct: 3 stack slots (odd)
                "arg_s40",      // 40-byte struct: 5 stack slots (odd)
                "ll14",         // 14 args: 8 stack slots
                "narrow_stack", // narrow ints on the stack
                "tc17",         // struct on the stack
                "tc21",         // __int128 16-aligned on the stack
                "ret_ld",       // x87 arguments and result
                "tc27",         // long double, int, long double
                "cplx_ld",      // 32-byte complex long double
                "ret_s40",      // hidden result pointer
                "vmix12",       // variadic, 2 doubles on the stack
                "vsum9",        // variadic, 4 stack slots
                "many20",       // 20 args
                "f10i10",       // 10 floats + 10 ints
            ],
        ));
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// Calls a trampoline entry from the assembly canary caller.
fn canary_invoke(
    mask: &AtomicU64,
) -> impl Fn(&Trampoline, *const c_void, *const c_void, *mut c_void) + '_ {
    move |t, target, args, ret| {
        // SAFETY: the entry is called with the same (target, args, ret) the
        // trampoline's contract requires (set up by via_jitffi_with); the
        // canary caller restores every register it changes.
        let m = unsafe { jitffi_conf_canary_call(t.entry() as *const c_void, target, args, ret) };
        mask.store(m, Ordering::SeqCst);
    }
}

fn describe_mask(m: u64) -> String {
    let names = ["rbx", "rbp", "r12", "r13", "r14", "r15", "rsp", "DF"];
    names
        .iter()
        .enumerate()
        .filter(|(i, _)| m & (1 << i) != 0)
        .map(|(_, n)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// (b) Real gcc-compiled callees, called from the canary caller: the
/// callee-saved registers survive, and results match gcc's direct call.
#[test]
fn callee_saved_registers_around_c_callees() {
    let _g = lock();
    let mut bad = Vec::new();
    let mask = AtomicU64::new(0);
    let invoke = canary_invoke(&mask);
    for opt in [0, 2] {
        let lib = common::callees(opt);
        let all = cases(lib);
        for (abi, names) in [
            (
                Abi::SysV64,
                &[
                    "noargs", "tc17", "many20", "ret_s40", "tc27", "vmix12", "arg_s13",
                ][..],
            ),
            (
                Abi::Win64,
                &[
                    "noargs", "tc17", "many20", "ret_s40", "tc26", "vmix12", "arg_s13",
                ][..],
            ),
        ] {
            let d = decls(abi);
            let suffix = if abi == Abi::Win64 { "_ms" } else { "" };
            for &name in names {
                let case = all.iter().find(|c| c.name == name).unwrap();
                let sig = d.parse_signature(&case.decl).unwrap();
                let target = lib.sym(&format!("{}{suffix}", case.func));
                let r = reference(lib, &sig, &format!("ref_{}{suffix}", case.name));
                for (mode, bound) in VARIANTS {
                    let what = format!("-O{opt} {abi} {name} {}", variant_name(mode, bound));
                    mask.store(0xFF00, Ordering::SeqCst);
                    match via_jitffi_with(lib, &sig, target, mode, bound, &r.args, Some(&invoke)) {
                        Err(e) => bad.push(format!("{what}: {e}")),
                        Ok((ret, sink)) => {
                            let m = mask.load(Ordering::SeqCst);
                            if m != 0 {
                                bad.push(format!("{what}: changed {} ({m:#x})", describe_mask(m)));
                            }
                            let sm = common::significant(&sig.ret);
                            if common::masked(&ret, &sm) != common::masked(&r.ret, &sm)
                                || sink != r.sink
                            {
                                bad.push(format!("{what}: wrong result or arguments"));
                            }
                        }
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// (b) Assembly callees that clobber every register their convention lets
/// them: the trampoline must not keep anything it needs after the call
/// (the `ret` pointer above all) in a volatile register, and must preserve
/// the entry's callee-saved registers.
#[test]
fn callee_saved_registers_with_clobbering_callees() {
    let _g = lock();
    let lib = common::callees(0);
    let mask = AtomicU64::new(0);
    let invoke = canary_invoke(&mask);
    let ll3: Vec<u8> = [1u8, 2, 3].iter().flat_map(|&b| [b; 8]).collect();
    type Row = (Abi, *const c_void, &'static str, Vec<u8>);
    let rows: Vec<Row> = vec![
        (Abi::SysV64, jitffi_conf_clobber_sysv as *const c_void, "long long f(void)", 0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv as *const c_void,
            "long long f(int a, double b, long long c, long long d, long long e, long long f, long long g, long long h, double i)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv as *const c_void, "long long f(const char *fmt, ..., double, int)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv as *const c_void, "long long f(struct ll3 s, struct dd t)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv_dbl as *const c_void, "double f(float a, int b)", 1.5f64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv_dbl as *const c_void,
            "double f(long long a, long long b, long long c, long long d, long long e, long long f, long long g)",
            1.5f64.to_le_bytes().to_vec()),
        (Abi::SysV64, jitffi_conf_clobber_sysv_sret as *const c_void, "struct ll3 f(int a)", ll3.clone()),
        (Abi::SysV64, jitffi_conf_clobber_sysv_sret as *const c_void,
            "struct ll3 f(struct ll3 s, double d, long long a, long long b, long long c, long long e, long long g, long long h)", ll3.clone()),
        (Abi::Win64, jitffi_conf_clobber_win as *const c_void, "long long f(void)", 0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::Win64, jitffi_conf_clobber_win as *const c_void, "long long f(int a, double b, int c, double d, int e, double f)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::Win64, jitffi_conf_clobber_win as *const c_void, "long long f(struct ffi s, struct ll3 t)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::Win64, jitffi_conf_clobber_win as *const c_void, "long long f(const char *fmt, ..., double, int)",
            0x1122334455667788u64.to_le_bytes().to_vec()),
        (Abi::Win64, jitffi_conf_clobber_win_dbl as *const c_void, "double f(float a, int b, long long c, long long d, int e)",
            1.5f64.to_le_bytes().to_vec()),
        (Abi::Win64, jitffi_conf_clobber_win_sret as *const c_void, "struct ll3 f(int a)", ll3.clone()),
        (Abi::Win64, jitffi_conf_clobber_win_sret as *const c_void, "struct ll3 f(struct ll3 s, int a, int b, int c, int d)", ll3),
    ];
    let mut bad = Vec::new();
    for (abi, target, decl, want) in rows {
        let sig = decls(abi).parse_signature(decl).unwrap();
        // The callees ignore their arguments: zeroed values of the right sizes.
        let args: Vec<Vec<u128>> = sig
            .args
            .iter()
            .map(|t| aligned(t.size() as usize))
            .collect();
        for (mode, bound) in VARIANTS {
            let what = format!("{abi} `{decl}` {}", variant_name(mode, bound));
            mask.store(0xFF00, Ordering::SeqCst);
            match via_jitffi_with(lib, &sig, target, mode, bound, &args, Some(&invoke)) {
                Err(e) => bad.push(format!("{what}: {e}")),
                Ok((ret, _)) => {
                    let m = mask.load(Ordering::SeqCst);
                    if m != 0 {
                        bad.push(format!("{what}: changed {} ({m:#x})", describe_mask(m)));
                    }
                    if ret != want {
                        bad.push(format!("{what}: result {ret:02x?}, want {want:02x?}"));
                    }
                }
            }
        }
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// The checkers can fail: a caller that enters a probe with a misaligned
/// stack is seen, and a callee that breaks a canary is seen.
#[test]
fn checkers_detect_violations() {
    let _g = lock();
    // Enter the SysV probe with rsp ≡ 0 (mod 16); it then jumps to a bare
    // return.
    extern "C" {
        fn jitffi_conf_misaligned_call(f: *const c_void);
        fn jitffi_conf_ret();
        fn jitffi_conf_break_rbx(target: *const c_void, args: *const c_void, ret: *mut c_void);
    }
    PROBE_NEXT.store(jitffi_conf_ret as *const () as u64, Ordering::SeqCst);
    // SAFETY: the probe keeps all registers but r10/r11, trashes only the
    // 128 bytes below its return address (unused by the asm caller) and
    // jumps to a bare `ret`.
    unsafe { jitffi_conf_misaligned_call(jitffi_conf_probe_sysv as *const c_void) };
    assert_eq!(
        PROBE_RSP_MOD.load(Ordering::SeqCst),
        0,
        "misalignment not seen"
    );
    // SAFETY: the "entry" zeroes rbx, which the canary caller restores.
    let m = unsafe {
        jitffi_conf_canary_call(
            jitffi_conf_break_rbx as *const c_void,
            std::ptr::null(),
            std::ptr::null(),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(m, 1, "a broken rbx not seen: {}", describe_mask(m));
    let _ = bytes_of(&aligned(1));
}

/// The six SysV argument registers and stack slots 6 and 7, as the last
/// `jitffi_conf_regs` call received them.
static REGS_SEEN: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

std::arch::global_asm!(
    ".globl jitffi_conf_regs",
    "jitffi_conf_regs:",
    "    mov qword ptr [rip + {r}], rdi",
    "    mov qword ptr [rip + {r} + 8], rsi",
    "    mov qword ptr [rip + {r} + 16], rdx",
    "    mov qword ptr [rip + {r} + 24], rcx",
    "    mov qword ptr [rip + {r} + 32], r8",
    "    mov qword ptr [rip + {r} + 40], r9",
    "    mov r11, qword ptr [rsp + 56]",
    "    mov qword ptr [rip + {r} + 48], r11",
    "    mov r11, qword ptr [rsp + 64]",
    "    mov qword ptr [rip + {r} + 56], r11",
    "    xor eax, eax",
    "    ret",
    r = sym REGS_SEEN,
);

extern "C" {
    fn jitffi_conf_regs();
}

/// Narrow integer arguments in full registers. psABI §3.2.3 (the _Bool
/// footnote): "bit 0 contains the truth value and bits 1 to 7 shall be
/// zero" — required. Beyond that the psABI leaves the upper bits
/// unspecified, but gcc and clang callers sign- or zero-extend char and
/// short arguments to 32 bits and clang-compiled callees rely on it, so the
/// test requires that too (jitffi does it, in registers and in stack
/// slots), and prints the full register contents.
#[test]
fn sysv_narrow_argument_registers() {
    let _g = lock();
    let lib = common::callees(0);
    let sig = decls(Abi::SysV64)
        .parse_signature(
            "int f(signed char a, unsigned short b, _Bool c, char d, unsigned char e, short f, \
             long long g, long long h, long long i, long long j, long long k, long long l, \
             signed char m, _Bool n)",
        )
        .unwrap();
    let vals: [i64; 14] = [-3, 0xFFF0, 1, -7, 0xF3, -0x1234, 0, 0, 0, 0, 0, 0, -0x55, 1];
    let args: Vec<Vec<u128>> = sig
        .args
        .iter()
        .zip(vals)
        .map(|(t, v)| {
            let mut b = aligned(16);
            let n = t.size() as usize;
            common::bytes_of_mut(&mut b)[..n].copy_from_slice(&v.to_le_bytes()[..n]);
            b
        })
        .collect();
    // (index into REGS_SEEN, argument index, 32-bit extension of the value)
    let checks: [(usize, usize, u32); 8] = [
        (0, 0, -3i32 as u32),
        (1, 1, 0xFFF0),
        (2, 2, 1),
        (3, 3, -7i32 as u32),
        (4, 4, 0xF3),
        (5, 5, -0x1234i32 as u32),
        (6, 12, -0x55i32 as u32),
        (7, 13, 1),
    ];
    let mut bad = Vec::new();
    for (mode, bound) in VARIANTS {
        for r in &REGS_SEEN {
            r.store(0, Ordering::SeqCst);
        }
        let what = variant_name(mode, bound);
        via_jitffi_with(
            lib,
            &sig,
            jitffi_conf_regs as *const c_void,
            mode,
            bound,
            &args,
            None,
        )
        .unwrap();
        let mut line = format!("{what}:");
        for (slot, arg, ext32) in checks {
            let full = REGS_SEEN[slot].load(Ordering::SeqCst);
            line += &format!(
                " {}={full:#x}",
                ["rdi", "rsi", "rdx", "rcx", "r8", "r9", "[rsp+56]", "[rsp+64]"][slot]
            );
            let n = sig.args[arg].size() * 8;
            let low = full & ((1u64 << n) - 1);
            if low != (ext32 as u64) & ((1u64 << n) - 1) {
                bad.push(format!("{what}: argument {arg}: low {n} bits {low:#x}"));
            }
            if matches!(
                sig.args[arg],
                jitffi::Type::Scalar(jitffi::types::Scalar::Bool)
            ) && full & 0xFE != 0
            {
                bad.push(format!(
                    "{what}: _Bool argument {arg}: bits 1-7 set ({full:#x}), psABI §3.2.3"
                ));
            }
            if full as u32 != ext32 {
                bad.push(format!(
                    "{what}: argument {arg} ({}) not extended to 32 bits: {full:#x}",
                    sig.args[arg].c_spelling()
                ));
            }
        }
        eprintln!("{line}");
    }
    assert!(
        bad.is_empty(),
        "{} failures:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
