//! Executable memory. (Implementation in progress.)
