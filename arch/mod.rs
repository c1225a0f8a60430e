//! Instruction-set emitters: they emit exactly what a `CallPlan` says.
//! (Implementation in progress.)
