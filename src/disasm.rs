//! Disassembly of generated code for `jitffi explain` and golden tests. (In progress.)
