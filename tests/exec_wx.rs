//! W^X, checked from the outside: after (and while) code is installed, no
//! mapping in the process is both writable and executable, and installed code
//! lives in read+execute mappings. Dropped code's chunks disappear.
#![cfg(target_os = "linux")]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use jitffi::exec::{Code, CodeArena};

/// The tests look at the whole process's mappings: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// One line of /proc/self/maps: address range and the 4-letter permissions.
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    line: String,
}

fn maps() -> Vec<Mapping> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let (s, e) = range.split_once('-')?;
            Some(Mapping {
                start: usize::from_str_radix(s, 16).ok()?,
                end: usize::from_str_radix(e, 16).ok()?,
                perms: perms.to_string(),
                line: line.to_string(),
            })
        })
        .collect()
}

/// Mappings whose permissions contain both 'w' and 'x' (e.g. "rwxp").
///
/// Under valgrind, its own translation cache is mapped rwx from the start
/// (nothing to do with us); there, only W+X mappings that overlap an address
/// in `ours` count.
fn writable_and_executable(ours: &[usize]) -> Vec<String> {
    let all = maps();
    let valgrind = all.iter().any(|m| m.line.contains("vgpreload"));
    all.into_iter()
        .filter(|m| m.perms.contains('w') && m.perms.contains('x'))
        .filter(|m| !valgrind || ours.iter().any(|&a| m.start <= a && a < m.end))
        .map(|m| m.line)
        .collect()
}

/// Bytes of a function `u32 f(void)` returning `v` (x86-64: `mov eax, imm32`
/// = B8 id, `ret` = C3; AArch64: `movz w0, #v` = 0x52800000 | v << 5,
/// `ret` = 0xD65F03C0). On other hosts: some bytes, never executed.
fn ret_const(v: u16) -> Vec<u8> {
    if cfg!(target_arch = "aarch64") {
        let mut b = (0x5280_0000u32 | (u32::from(v) << 5))
            .to_le_bytes()
            .to_vec();
        b.extend_from_slice(&0xD65F_03C0u32.to_le_bytes());
        b
    } else {
        let mut b = vec![0xB8];
        b.extend_from_slice(&u32::from(v).to_le_bytes());
        b.push(0xC3);
        b
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn call(code: &Code) -> u32 {
    // SAFETY: every Code called here came from `ret_const` for this ISA: a
    // complete `u32 f(void)` under the C ABI.
    let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(code.as_ptr()) };
    f()
}

#[test]
fn no_mapping_is_ever_writable_and_executable() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert_eq!(writable_and_executable(&[]), Vec::<String>::new(), "before");

    // Sample the maps from another thread all the while code is installed,
    // to catch a transient W+X state, not just the final one.
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut samples = 0u32;
            let mut bad = Vec::new();
            while !stop.load(Ordering::Relaxed) || samples == 0 {
                bad.extend(writable_and_executable(&[]));
                samples += 1;
            }
            (samples, bad)
        })
    };
    let own = CodeArena::new();
    let mut codes: Vec<Code> = Vec::new();
    for i in 0..3000u16 {
        let arena = if i % 2 == 0 {
            &own
        } else {
            CodeArena::global()
        };
        codes.push(arena.install(&ret_const(i)).expect("install"));
    }
    let bodies: Vec<Vec<u8>> = (0..500u16).map(ret_const).collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
    codes.extend(own.install_many(&refs).expect("install_many"));
    stop.store(true, Ordering::Relaxed);
    let (samples, bad) = sampler.join().expect("sampler thread");
    assert!(samples > 0);
    assert_eq!(bad, Vec::<String>::new(), "W+X seen during installation");
    let addrs: Vec<usize> = codes.iter().map(|c| c.as_ptr() as usize).collect();
    assert_eq!(
        writable_and_executable(&addrs),
        Vec::<String>::new(),
        "after"
    );

    // Every piece of code lies in one read+execute, non-writable mapping.
    let m = maps();
    for c in &codes {
        let (s, e) = (c.as_ptr() as usize, c.as_ptr() as usize + c.len());
        let home = m.iter().find(|m| m.start <= s && e <= m.end);
        let home = home.unwrap_or_else(|| panic!("code at {s:#x} not in one mapping"));
        assert!(home.perms.starts_with("r-x"), "{}", home.line);
    }

    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    for (i, c) in codes.iter().take(3000).enumerate() {
        assert_eq!(call(c), i as u32);
    }
}

#[test]
fn dropped_code_leaves_no_executable_mapping_behind() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let arena = CodeArena::new();
    // Enough 1 KiB pieces for several chunks.
    let mut body = vec![0u8; 1024];
    let tail = ret_const(5);
    let n = body.len() - tail.len();
    body[n..].copy_from_slice(&tail);
    let codes: Vec<Code> = (0..300)
        .map(|_| arena.install(&body).expect("install"))
        .collect();
    assert!(arena.stats().chunks_mapped >= 4, "{:?}", arena.stats());
    let addrs: Vec<usize> = codes.iter().map(|c| c.as_ptr() as usize).collect();
    drop(codes);
    assert_eq!(arena.stats().chunks_mapped, 1);
    drop(arena);
    // Nothing executable remains where the code was. (The address space may
    // be reused by other mappings, but the test runs alone and nothing else
    // maps executable memory.)
    let m = maps();
    for a in addrs {
        if let Some(m) = m.iter().find(|m| m.start <= a && a < m.end) {
            assert!(!m.perms.contains('x'), "still executable: {}", m.line);
        }
    }
}
