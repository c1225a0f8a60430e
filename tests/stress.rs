//! Stress: 8 threads for 10 seconds (JITFFI_STRESS_SECS overrides)
//! compiling signatures, calling trampolines, and creating, calling and
//! freeing closures, while a watcher reads /proc/self/maps: no crash, every
//! result right, memory bounded, and no mapping ever writable and
//! executable.

#![cfg(target_os = "linux")]

use std::ffi::c_void;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jitffi::call::{ArgMode, Trampoline};
use jitffi::cdecl::parse_signature;
use jitffi::closure::Closure;
use jitffi::Abi;

extern "C" fn sum1(a: i64) -> i64 {
    a
}
extern "C" fn sum2(a: i64, b: i64) -> i64 {
    a + b * 2
}
extern "C" fn sum3(a: i64, b: i64, c: i64) -> i64 {
    a + b * 2 + c * 3
}
extern "C" fn mix4(a: i64, b: f64, c: i32, d: f64) -> f64 {
    a as f64 + b * 2.0 + c as f64 * 3.0 + d * 4.0
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// A mapping that is both writable and executable, if any. Under valgrind
/// (which maps its own RWX pages) the check is skipped.
fn wx_mapping() -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .find(|l| {
            let perms = l.split_whitespace().nth(1).unwrap_or("");
            perms.contains('w') && perms.contains('x')
        })
        .map(str::to_string)
}

fn under_valgrind() -> bool {
    std::env::var("LD_PRELOAD").is_ok_and(|v| v.contains("vgpreload"))
}

/// One round of work on one thread; returns the number of calls checked.
fn round(abi: Abi, t: u64, i: u64) -> u64 {
    let decls: [(&str, *const c_void); 4] = [
        ("long long f(long long)", sum1 as *const c_void),
        ("long long f(long long, long long)", sum2 as *const c_void),
        (
            "long long f(long long, long long, long long)",
            sum3 as *const c_void,
        ),
        (
            "double f(long long, double, int, double)",
            mix4 as *const c_void,
        ),
    ];
    let (decl, target) = decls[((t + i) % 4) as usize];
    let sig = parse_signature(decl, abi).expect("declaration parses");
    let mode = if i % 2 == 0 {
        ArgMode::Pointers
    } else {
        ArgMode::Frame
    };
    let bound = (i % 3 == 0).then_some(target);
    let tramp = Trampoline::compile(&sig, mode, bound).expect("compiles");
    let (a, b, c, d) = (t as i64 * 1000 + i as i64, 0.5f64, 7i32, 0.25f64);
    let ints = [a, a + 1, a + 2];
    let mut checked = 0;
    for _ in 0..20 {
        let mut ret = [0u64; 2];
        let rp = ret.as_mut_ptr().cast::<c_void>();
        let tgt = if bound.is_some() {
            std::ptr::null()
        } else {
            target
        };
        if decl.starts_with("double") {
            let ptrs: [*const c_void; 4] = [
                (&a as *const i64).cast(),
                (&b as *const f64).cast(),
                (&c as *const i32).cast(),
                (&d as *const f64).cast(),
            ];
            let mut frame = [0u64; 4];
            // Frame layout of (long long, double, int, double): 0, 8, 16, 24.
            frame[0] = a as u64;
            frame[1] = b.to_bits();
            frame[2] = c as u32 as u64;
            frame[3] = d.to_bits();
            let args: *const c_void = match mode {
                ArgMode::Pointers => ptrs.as_ptr().cast(),
                ArgMode::Frame => frame.as_ptr().cast(),
            };
            // SAFETY: the trampoline was compiled for mix4's signature; args
            // matches the mode; ret has 16 bytes.
            unsafe { tramp.call_raw(tgt, args, rp) };
            assert_eq!(f64::from_bits(ret[0]), mix4(a, b, c, d));
        } else {
            let n = sig.args.len();
            let ptrs: Vec<*const c_void> =
                ints[..n].iter().map(|v| (v as *const i64).cast()).collect();
            let args: *const c_void = match mode {
                ArgMode::Pointers => ptrs.as_ptr().cast(),
                ArgMode::Frame => ints.as_ptr().cast(),
            };
            // SAFETY: as above, for sumN (frame offsets 0, 8, 16).
            unsafe { tramp.call_raw(tgt, args, rp) };
            let want = match n {
                1 => sum1(ints[0]),
                2 => sum2(ints[0], ints[1]),
                _ => sum3(ints[0], ints[1], ints[2]),
            };
            assert_eq!(ret[0] as i64, want);
        }
        checked += 1;
    }
    drop(tramp);

    // A closure capturing this thread's number, called from here, freed.
    let csig = parse_signature("int add(int, int)", abi).expect("parses");
    let k = t as i32;
    let clo = Closure::new(&csig, move |args, ret| {
        // SAFETY: int(int, int): two int pointers and an int result.
        unsafe {
            let (x, y) = (*(args[0] as *const i32), *(args[1] as *const i32));
            *(ret as *mut i32) = x + y + k;
        }
    })
    .expect("closure");
    // SAFETY: the closure's code is an int(int, int) C function while alive.
    let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(clo.code_ptr()) };
    for j in 0..10 {
        assert_eq!(f(j, i as i32), j + i as i32 + k);
        checked += 1;
    }
    checked
}

#[test]
fn eight_threads_compile_call_and_churn_closures() {
    let Some(abi) = Abi::host().filter(|a| a.executable_here()) else {
        eprintln!("stress: no executable host ABI, skipped");
        return;
    };
    let secs: u64 = std::env::var("JITFFI_STRESS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    // Warm up (first chunks, stub runs, caches) before the baseline.
    for i in 0..200 {
        round(abi, 99, i);
    }
    let rss_before = rss_kib();
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicU64::new(0));
    let watcher = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut samples = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if !under_valgrind() {
                    if let Some(bad) = wx_mapping() {
                        return Err(bad);
                    }
                }
                samples += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            Ok(samples)
        })
    };
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut rss_mid = Vec::new();
    let workers: Vec<_> = (0..8u64)
        .map(|t| {
            let calls = calls.clone();
            std::thread::spawn(move || {
                let mut i = 0;
                while Instant::now() < deadline {
                    calls.fetch_add(round(abi, t, i), Ordering::Relaxed);
                    i += 1;
                }
                i
            })
        })
        .collect();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        rss_mid.push(rss_kib());
    }
    let rounds: u64 = workers.into_iter().map(|w| w.join().expect("worker")).sum();
    stop.store(true, Ordering::Relaxed);
    let samples = watcher.join().expect("watcher").unwrap_or_else(|bad| {
        panic!("a mapping was writable and executable during the stress run: {bad}")
    });
    let rss_after = rss_kib();
    let peak = rss_mid.iter().copied().max().unwrap_or(rss_after);
    eprintln!(
        "stress: {secs} s, {rounds} rounds, {} checked calls, {samples} maps samples, \
         RSS {rss_before} KiB -> peak {peak} KiB -> {rss_after} KiB",
        calls.load(Ordering::Relaxed)
    );
    assert!(rounds > 0 && samples > 0);
    // Bounded memory: the work is the same shapes over and over, so after
    // the warm-up nothing should accumulate (allowance: allocator and
    // thread-cache slack).
    assert!(
        peak < rss_before + 64 * 1024,
        "memory grew from {rss_before} KiB to {peak} KiB"
    );
}
