//! Call planning for win64. (Implementation in progress.)

use super::{CallPlan, Unsupported};
use crate::types::Signature;

/// Plans a call under win64.
pub fn plan(_sig: &Signature) -> Result<CallPlan, Unsupported> {
    Err(Unsupported::ret("the win64 planner is not implemented yet"))
}
