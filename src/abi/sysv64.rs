//! Call planning for sysv64. (Implementation in progress.)

use super::{CallPlan, Unsupported};
use crate::types::Signature;

/// Plans a call under sysv64.
pub fn plan(_sig: &Signature) -> Result<CallPlan, Unsupported> {
    Err(Unsupported::ret(
        "the sysv64 planner is not implemented yet",
    ))
}
