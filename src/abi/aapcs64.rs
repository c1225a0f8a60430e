//! Call planning for AAPCS64 and Apple arm64. (Implementation in progress.)

use super::{CallPlan, Unsupported};
use crate::types::Signature;

/// Which AArch64 convention: Arm's AAPCS64 as Linux uses it, or Apple's
/// variant of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    Linux,
    Apple,
}

/// Plans a call under AAPCS64 (or Apple arm64).
pub fn plan(_sig: &Signature, _flavor: Flavor) -> Result<CallPlan, Unsupported> {
    Err(Unsupported::ret(
        "the aapcs64 planner is not implemented yet",
    ))
}
