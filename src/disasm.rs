//! Disassembly of generated code for `jitffi explain` and golden tests.
//!
//! One instruction per line: the address in hex (`base` + offset, at least
//! four digits), two spaces, then the instruction. x86-64 is decoded with
//! iced-x86 in Intel syntax (`0x` hex, a space after each comma); AArch64
//! with yaxpeax-arm. Bytes that do not decode are printed as `(bad)` (x86-64)
//! or `.word 0x…` (AArch64), so any byte string can be disassembled.

use std::fmt::Write as _;

use crate::types::Isa;

/// Disassembles `code`, as if it were loaded at address `base`.
pub fn disassemble(isa: Isa, code: &[u8], base: u64) -> String {
    match isa {
        Isa::X86_64 => disassemble_x86_64(code, base),
        Isa::Aarch64 => disassemble_aarch64(code, base),
    }
}

fn disassemble_x86_64(code: &[u8], base: u64) -> String {
    use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};

    let mut decoder = Decoder::with_ip(64, code, base, DecoderOptions::NONE);
    let mut formatter = IntelFormatter::new();
    let opts = formatter.options_mut();
    opts.set_hex_prefix("0x");
    opts.set_hex_suffix("");
    opts.set_uppercase_hex(false);
    opts.set_space_after_operand_separator(true);
    opts.set_show_branch_size(false);
    opts.set_branch_leading_zeros(false);
    let mut out = String::new();
    let mut text = String::new();
    let mut insn = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut insn);
        text.clear();
        if insn.is_invalid() {
            text.push_str("(bad)");
        } else {
            formatter.format(&insn, &mut text);
        }
        let _ = writeln!(out, "{:04x}  {}", insn.ip(), text);
    }
    out
}

fn disassemble_aarch64(code: &[u8], base: u64) -> String {
    use yaxpeax_arch::{Decoder, U8Reader};
    use yaxpeax_arm::armv8::a64::InstDecoder;

    let decoder = InstDecoder::default();
    let mut out = String::new();
    for (i, word) in code.chunks(4).enumerate() {
        let addr = base.wrapping_add(4 * i as u64);
        if word.len() < 4 {
            let hex: Vec<String> = word.iter().map(|b| format!("0x{b:02x}")).collect();
            let _ = writeln!(out, "{addr:04x}  .byte {}", hex.join(", "));
            continue;
        }
        let mut reader = U8Reader::new(word);
        match decoder.decode(&mut reader) {
            Ok(insn) => {
                let _ = writeln!(out, "{addr:04x}  {insn}");
            }
            Err(_) => {
                let w = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
                let _ = writeln!(out, "{addr:04x}  .word 0x{w:08x}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn x86_64_basic() {
        // push rbp; mov rbp, rsp; mov rax, [rbx+0x10]; ret (hand-assembled
        // from the Intel SDM encodings).
        let code = [0x55, 0x48, 0x89, 0xe5, 0x48, 0x8b, 0x43, 0x10, 0xc3];
        assert_eq!(
            disassemble(Isa::X86_64, &code, 0),
            "0000  push rbp\n0001  mov rbp, rsp\n0004  mov rax, [rbx+0x10]\n0008  ret\n"
        );
    }

    #[test]
    fn x86_64_bad_bytes_do_not_panic() {
        let s = disassemble(Isa::X86_64, &[0x48], 0x1000);
        assert!(s.starts_with("1000  (bad)"), "{s}");
        assert_eq!(disassemble(Isa::X86_64, &[], 0), "");
    }

    #[test]
    fn aarch64_basic() {
        // ret = 0xd65f03c0; add x0, x0, x1 = 0x8b010000 (Arm ARM encodings).
        let code = [0xc0, 0x03, 0x5f, 0xd6, 0x00, 0x00, 0x01, 0x8b, 0xff];
        let s = disassemble(Isa::Aarch64, &code, 0);
        let lines: Vec<&str> = s.lines().collect();
        assert_eq!(lines[0], "0000  ret");
        assert_eq!(lines[1], "0004  add x0, x0, x1");
        assert_eq!(lines[2], "0008  .byte 0xff");
    }
}
