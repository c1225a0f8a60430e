//! Any text through the C parser and the planners, for every ABI: nothing
//! may panic, and every plan the planners produce must pass `validate`.
//!
//! Run: `cargo +nightly fuzz run parse_plan -- -max_total_time=60`
#![no_main]

use jitffi::cdecl::parse_signature;
use jitffi::Abi;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    for abi in Abi::ALL {
        let Ok(sig) = parse_signature(&src, abi) else {
            continue;
        };
        let Ok(plan) = jitffi::abi::plan(&sig) else {
            continue;
        };
        if let Err(e) = plan.validate(&sig) {
            panic!(
                "invalid plan for `{sig}` on {abi}: {e}\n{}",
                plan.display(&sig)
            );
        }
    }
});
