//! Unit tests for the code arena. Execution tests run only on the two ISAs
//! whose encodings we write by hand here.

use super::*;

/// A function `u32 f(void)` returning `v`, encoded by hand from the ISA
/// manuals (not by anything under test).
///
/// x86-64: `mov eax, imm32` = B8+rd id (Intel SDM vol. 2, MOV), `ret` = C3.
#[cfg(target_arch = "x86_64")]
fn ret_const(v: u16) -> Vec<u8> {
    let mut b = vec![0xB8];
    b.extend_from_slice(&u32::from(v).to_le_bytes());
    b.push(0xC3);
    b
}

/// AArch64: `movz w0, #imm16` = 0x52800000 | imm16 << 5 | Rd (Arm ARM, MOVZ,
/// 32-bit variant, hw = 0); `ret` = 0xD65F03C0.
#[cfg(target_arch = "aarch64")]
fn ret_const(v: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(0x5280_0000u32 | (u32::from(v) << 5)).to_le_bytes());
    b.extend_from_slice(&0xD65F_03C0u32.to_le_bytes());
    b
}

/// One no-op instruction's bytes (x86-64 `nop` = 90; AArch64 `nop` = D503201F).
#[cfg(target_arch = "x86_64")]
const NOP: &[u8] = &[0x90];
#[cfg(target_arch = "aarch64")]
const NOP: &[u8] = &0xD503_201Fu32.to_le_bytes();

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn call(code: &Code) -> u32 {
    // SAFETY: every Code the tests call was built by `ret_const` (possibly
    // behind no-ops): a complete `u32 f(void)` for this ISA and its C ABI.
    let f: extern "C" fn() -> u32 = unsafe { std::mem::transmute(code.as_ptr()) };
    f()
}

#[test]
fn arena_and_code_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<CodeArena>();
    check::<Code>();
}

#[test]
fn empty_code_is_refused() {
    let a = CodeArena::new();
    let e = a.install(&[]).unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(a.stats().chunks_mapped, 0);
}

#[test]
fn bytes_read_back_and_alignment() {
    let a = CodeArena::new();
    let codes: Vec<Code> = (0..50u8)
        .map(|i| a.install(&vec![i; usize::from(i) + 1]).unwrap())
        .collect();
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(c.bytes(), &vec![i as u8; i + 1][..]);
        assert_eq!(c.len(), i + 1);
        assert_eq!(c.as_ptr() as usize % CODE_ALIGN, 0);
    }
    // No two pieces of code overlap.
    let mut spans: Vec<(usize, usize)> = codes
        .iter()
        .map(|c| (c.as_ptr() as usize, c.as_ptr() as usize + c.len()))
        .collect();
    spans.sort();
    assert!(spans.windows(2).all(|w| w[0].1 <= w[1].0));
    let s = a.stats();
    assert_eq!(s.live_code, 50);
    assert_eq!(s.bytes_live, (1..=50).sum::<usize>());
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn many_functions_share_pages_and_run() {
    let a = CodeArena::new();
    let n = 1000u16;
    let codes: Vec<Code> = (0..n).map(|i| a.install(&ret_const(i)).unwrap()).collect();
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(call(c), i as u32, "function {i}");
    }
    // 1000 functions of at most 8 bytes, 16-byte aligned: 16000 bytes.
    let page = sys::page_size();
    let mut pages: Vec<usize> = codes.iter().map(|c| c.as_ptr() as usize / page).collect();
    pages.dedup();
    assert!(
        pages.len() <= 16000 / page + 1,
        "{} pages for {n} functions",
        pages.len()
    );
    let s = a.stats();
    assert_eq!(s.chunks_mapped, 1);
    assert_eq!(s.fallbacks, 0);
    #[cfg(target_os = "linux")]
    assert!(s.replacements >= usize::from(n) - 16000 / page - 1);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn install_into_executing_page_while_another_thread_runs_it() {
    use std::sync::atomic::AtomicBool;
    let a = CodeArena::new();
    let early: Arc<Vec<Code>> = Arc::new(
        (0..4u16)
            .map(|i| a.install(&ret_const(i)).unwrap())
            .collect(),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let runner = {
        let early = Arc::clone(&early);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            prepare_for_execution();
            let mut calls = 0u64;
            let mut wrong = 0u64;
            while !stop.load(Ordering::Relaxed) {
                for (i, c) in early.iter().enumerate() {
                    if call(c) != i as u32 {
                        wrong += 1;
                    }
                    calls += 1;
                }
            }
            (calls, wrong)
        })
    };
    // Let the runner get going inside the first page.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let before = a.stats().replacements;
    let later: Vec<Code> = (4..3000u16)
        .map(|i| a.install(&ret_const(i)).unwrap())
        .collect();
    for (k, c) in later.iter().enumerate() {
        assert_eq!(call(c), k as u32 + 4);
    }
    stop.store(true, Ordering::Relaxed);
    let (calls, wrong) = runner.join().unwrap();
    assert_eq!(wrong, 0);
    assert!(calls > 0);
    // The early functions' page really was replaced under the runner.
    #[cfg(target_os = "linux")]
    assert!(a.stats().replacements > before);
    let _ = before;
    for (i, c) in early.iter().enumerate() {
        assert_eq!(call(c), i as u32);
    }
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn dropping_code_unmaps_chunks() {
    let a = CodeArena::new();
    // 3 KiB pieces: about 21 per 64 KiB chunk, so 200 pieces span ~10 chunks.
    let mut body = NOP.repeat(3072 / NOP.len());
    let codes: Vec<Code> = (0..200u16)
        .map(|i| {
            body.truncate(3072);
            body.extend(ret_const(i));
            a.install(&body).unwrap()
        })
        .collect();
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(call(c), i as u32);
    }
    let s = a.stats();
    assert!(s.chunks_mapped >= 9, "{s:?}");
    assert_eq!(s.live_code, 200);
    drop(codes);
    let s = a.stats();
    // Only the current chunk stays; all others were unmapped.
    assert_eq!(s.chunks_mapped, 1, "{s:?}");
    assert_eq!(s.bytes_mapped, a.chunk_len);
    assert_eq!((s.live_code, s.bytes_live), (0, 0));
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn one_long_lived_code_pins_one_chunk_only() {
    let a = CodeArena::new();
    let keep = a.install(&ret_const(7)).unwrap();
    // Churn far more than one chunk's worth of short-lived code.
    for round in 0..20u16 {
        let batch: Vec<Code> = (0..500u16)
            .map(|i| a.install(&ret_const(i ^ round)).unwrap())
            .collect();
        assert_eq!(call(&batch[499]), u32::from(499 ^ round));
    }
    let s = a.stats();
    assert!(s.chunks_mapped <= 2, "{s:?}");
    assert_eq!(call(&keep), 7);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn code_outlives_its_arena() {
    let a = CodeArena::new();
    let counters = Arc::clone(&a.counters);
    let codes: Vec<Code> = (0..10u16)
        .map(|i| a.install(&ret_const(i)).unwrap())
        .collect();
    drop(a);
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(call(c), i as u32);
    }
    assert_eq!(counters.chunks.load(Ordering::Relaxed), 1);
    drop(codes);
    assert_eq!(counters.chunks.load(Ordering::Relaxed), 0);
    assert_eq!(counters.bytes_mapped.load(Ordering::Relaxed), 0);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn code_larger_than_a_chunk_gets_its_own_mapping() {
    let a = CodeArena::new();
    let small = a.install(&ret_const(1)).unwrap();
    let mut big = NOP.repeat((a.chunk_len + 5000) / NOP.len());
    big.extend(ret_const(4242));
    let code = a.install(&big).unwrap();
    assert_eq!(call(&code), 4242);
    assert_eq!(code.bytes(), &big[..]);
    let s = a.stats();
    assert_eq!(s.chunks_mapped, 2);
    assert_eq!(s.bytes_mapped, a.chunk_len + round_up(big.len(), a.page));
    drop(code);
    assert_eq!(a.stats().chunks_mapped, 1);
    // The small code's chunk is still current and usable.
    let next = a.install(&ret_const(2)).unwrap();
    assert_eq!((call(&small), call(&next)), (1, 2));
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn fallback_without_remap_uses_a_fresh_page_each_time() {
    let a = CodeArena::without_remap();
    let codes: Vec<Code> = (0..40u16)
        .map(|i| a.install(&ret_const(i)).unwrap())
        .collect();
    for (i, c) in codes.iter().enumerate() {
        assert_eq!(call(c), i as u32);
        assert_eq!(c.as_ptr() as usize % a.page, 0, "each on a fresh page");
    }
    let s = a.stats();
    assert_eq!(s.replacements, 0);
    // The first in each chunk needs no fallback; the others skip a page.
    assert!(s.fallbacks >= 40 - 40usize.div_ceil(a.chunk_len / a.page));
    drop(codes);
    assert_eq!(a.stats().chunks_mapped, 1);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn global_arena_installs_and_runs() {
    let c = CodeArena::global().install(&ret_const(99)).unwrap();
    assert_eq!(call(&c), 99);
    assert!(CodeArena::global().stats().chunks_mapped >= 1);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn concurrent_installers() {
    let a = Arc::new(CodeArena::new());
    let handles: Vec<_> = (0..4u16)
        .map(|t| {
            let a = Arc::clone(&a);
            std::thread::spawn(move || {
                let codes: Vec<Code> = (0..500u16)
                    .map(|i| a.install(&ret_const(t * 1000 + i)).unwrap())
                    .collect();
                for (i, c) in codes.iter().enumerate() {
                    assert_eq!(call(c), u32::from(t * 1000) + i as u32);
                }
                codes
            })
        })
        .collect();
    let all: Vec<Code> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert_eq!(a.stats().live_code, 2000);
    drop(all);
    assert_eq!(a.stats().live_code, 0);
    assert_eq!(a.stats().chunks_mapped, 1);
}

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[test]
fn install_many_places_a_batch_with_one_page_change() {
    let a = CodeArena::new();
    let first = a.install(&ret_const(1)).unwrap();
    let bodies: Vec<Vec<u8>> = (0..600u16).map(ret_const).collect();
    let mut refs: Vec<&[u8]> = bodies.iter().map(|b| &b[..]).collect();
    // A piece larger than a chunk in the middle gets its own mapping.
    let mut big = NOP.repeat((a.chunk_len + 100) / NOP.len());
    big.extend(ret_const(777));
    refs.insert(300, &big);
    let before = a.stats();
    let codes = a.install_many(&refs).unwrap();
    let after = a.stats();
    assert_eq!(codes.len(), 601);
    for (c, r) in codes.iter().zip(&refs) {
        assert_eq!(c.bytes(), *r);
    }
    for (i, c) in codes.iter().enumerate() {
        let want = match i {
            300 => 777,
            i if i < 300 => i as u32,
            i => i as u32 - 1,
        };
        assert_eq!(call(c), want);
    }
    assert_eq!(call(&first), 1);
    // Two groups (before and after the big piece): at most two page changes
    // each (a replacement, or a fresh flip), no matter how many pieces.
    let page_changes =
        (after.replacements - before.replacements) + (after.fallbacks - before.fallbacks);
    assert!(page_changes <= 2, "{before:?} -> {after:?}");
    assert_eq!(after.live_code, 602);
    // Empty pieces are refused before anything is placed.
    assert!(a.install_many(&[&[0xC3], &[]]).is_err());
    assert_eq!(a.stats().live_code, 602);
    drop(codes);
    drop(first);
    assert_eq!(a.stats().chunks_mapped, 1);
}

/// This thread's CPU time in ns (excludes time the shared machine spends
/// running other processes).
#[cfg(unix)]
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for clock_gettime.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Not an assertion: prints what one installation costs, per path.
/// `cargo test --release --lib exec::tests::install_cost -- --nocapture`
#[cfg(all(unix, any(target_arch = "x86_64", target_arch = "aarch64")))]
#[test]
fn install_cost_printout() {
    let n = 2000u16;
    let fn_bytes = ret_const(0);
    let per = |f: &mut dyn FnMut()| {
        let (w, c) = (std::time::Instant::now(), thread_cpu_ns());
        f();
        let wall = w.elapsed().as_nanos() as u64 / u64::from(n);
        let cpu = (thread_cpu_ns() - c) / u64::from(n);
        format!("{cpu} ns cpu ({wall} ns wall)")
    };
    let a = CodeArena::new();
    let mut keep = Vec::new();
    let shared = per(&mut || keep = (0..n).map(|_| a.install(&fn_bytes).unwrap()).collect());
    let s = a.stats();
    keep.clear();
    let b = CodeArena::without_remap();
    let fresh = per(&mut || keep = (0..n).map(|_| b.install(&fn_bytes).unwrap()).collect());
    keep.clear();
    let batch: Vec<&[u8]> = (0..n).map(|_| &fn_bytes[..]).collect();
    let many = per(&mut || keep = a.install_many(&batch).unwrap());
    keep.clear();
    eprintln!(
        "install cost per piece: shared page (mremap replacement) {shared} \
         [{} replacements, {} chunk(s)]; page-per-install fallback {fresh}; \
         install_many of {n} {many}",
        s.replacements, s.chunks_mapped
    );
}
