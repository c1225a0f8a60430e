//! The unwind rows of the AArch64 emitters, checked against what the code
//! does (any host; nothing executes).
//!
//! The oracle is independent of the emitters' row bookkeeping: the code is
//! disassembled (yaxpeax-arm) and the instructions that move sp or x29,
//! push or pop the frame record, save or reload a callee-saved register, or
//! write one are executed symbolically, with sp and x29 as offsets from the
//! entry sp (the CFA at entry, aadwarf64 §4.1) and the stack as "which
//! caller register's value is in this slot". Before every instruction the
//! rows in force (those at or before its offset) must say:
//!
//! - where the CFA is: the CFA register plus its offset is the entry sp;
//! - for every callee-saved register the code has changed (x19–x28, x29
//!   and x30, which `blr` overwrites; AAPCS64 "General-purpose
//!   Registers"), a slot that holds the caller's value;
//! - for every register with a save rule, a slot that still holds it and
//!   is not below sp (AArch64 Linux has no red zone: a signal frame may
//!   overwrite anything below sp).
//!
//! At `ret`, sp is back at the entry sp and no register is changed.

use std::collections::BTreeMap;

use jitffi::arch::aarch64::closure::emit_closure_body_with_unwind;
use jitffi::arch::aarch64::emit_forward_with_unwind;
use jitffi::arch::{ArgSource, Target};
use jitffi::cdecl::parse_signature;
use jitffi::disasm::disassemble;
use jitffi::types::Isa;
use jitffi::unwind::{reg::aarch64 as dw, CfaRule, UnwindRow};
use jitffi::Abi;

/// The rules in force: CFA register and offset, and each register's save
/// offset from the CFA (absent: the register holds the caller's value).
#[derive(Debug)]
struct Rules {
    cfa_reg: u16,
    cfa_off: i64,
    saved: BTreeMap<u16, i64>,
}

impl Rules {
    fn entry() -> Rules {
        Rules {
            cfa_reg: dw::SP,
            cfa_off: 0,
            saved: BTreeMap::new(),
        }
    }

    fn apply(&mut self, r: CfaRule) {
        match r {
            CfaRule::Cfa { reg, offset } => {
                self.cfa_reg = reg;
                self.cfa_off = offset.into();
            }
            CfaRule::CfaOffset(o) => self.cfa_off = o.into(),
            CfaRule::Saved { reg, offset } => {
                self.saved.insert(reg, offset.into());
            }
            CfaRule::Restored(reg) => {
                self.saved.remove(&reg);
            }
        }
    }
}

/// Symbolic machine state: offsets from the entry sp (`None`: not known,
/// inside a probe loop), which callee-saved registers hold something else
/// than the caller's value, and which stack slots hold a caller's
/// register.
struct State {
    sp: Option<i64>,
    fp: Option<i64>,
    changed: std::collections::BTreeSet<u16>,
    slots: BTreeMap<i64, u16>,
}

/// `x19` → 19 (also `w19`); `None` for anything else.
fn xreg(op: &str) -> Option<u16> {
    let op = op.trim();
    let n = op.strip_prefix('x').or_else(|| op.strip_prefix('w'))?;
    n.parse().ok().filter(|&n| n <= 30)
}

/// A callee-saved register, or x29/x30 (AAPCS64 "General-purpose
/// Registers": x19–x28 callee-saved; x29 the frame pointer; x30 the link
/// register, which holds the return address at entry).
fn preserved(r: u16) -> bool {
    (19..=30).contains(&r)
}

fn imm(s: &str) -> i64 {
    let s = s.trim().trim_start_matches('#');
    let (neg, s) = match s.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, s),
    };
    let v = i64::from_str_radix(s.trim_start_matches("0x"), 16).expect("hex immediate");
    if neg {
        -v
    } else {
        v
    }
}

/// Checks `rows` against `code` (see the module docs); `what` names the
/// case in messages.
fn check(what: &str, code: &[u8], rows: &[UnwindRow]) {
    let text = disassemble(Isa::Aarch64, code, 0);
    let insns: Vec<(u32, String)> = text
        .lines()
        .map(|l| {
            let (a, t) = l.split_once("  ").expect("address column");
            (u32::from_str_radix(a.trim(), 16).unwrap(), t.to_string())
        })
        .collect();
    assert_eq!(insns.len() * 4, code.len(), "{what}: one line per word");
    for w in rows.windows(2) {
        assert!(w[0].at <= w[1].at, "{what}: rows in order");
    }
    let mut rules = Rules::entry();
    let mut next = 0;
    let mut st = State {
        sp: Some(0),
        fp: None,
        changed: Default::default(),
        slots: BTreeMap::new(),
    };
    let ctx = |at: u32, t: &str| format!("{what}: at +{at:#x} `{t}`\n{text}");
    for (at, t) in &insns {
        let at = *at;
        while next < rows.len() && rows[next].at <= at {
            rules.apply(rows[next].rule);
            next += 1;
        }
        // The CFA is the entry sp.
        let base = match rules.cfa_reg {
            r if r == dw::SP => st.sp,
            r if r == dw::FP => st.fp,
            r => panic!("{}: CFA in r{r}", ctx(at, t)),
        };
        assert_eq!(
            base.map(|b| b + rules.cfa_off),
            Some(0),
            "{}: CFA = r{} + {} with sp {:?}, x29 {:?}",
            ctx(at, t),
            rules.cfa_reg,
            rules.cfa_off,
            st.sp,
            st.fp
        );
        for r in &st.changed {
            assert!(
                rules.saved.contains_key(r),
                "{}: x{r} is changed but has no save rule",
                ctx(at, t)
            );
        }
        for (&r, &off) in &rules.saved {
            assert_eq!(
                st.slots.get(&off),
                Some(&r),
                "{}: x{r} said to be at CFA{off:+}",
                ctx(at, t)
            );
            if let Some(sp) = st.sp {
                assert!(off >= sp, "{}: x{r}'s slot is below sp", ctx(at, t));
            }
        }
        step(&mut st, t, &ctx(at, t));
    }
    assert_eq!(next, rows.len(), "{what}: rows past the last instruction");
    assert_eq!(insns.last().map(|(_, t)| t.as_str()), Some("ret"), "{what}");
    assert_eq!(st.sp, Some(0), "{what}: sp at the end");
}

/// Executes one instruction symbolically (only what concerns the frame).
fn step(st: &mut State, t: &str, ctx: &str) {
    let (mn, ops) = t.split_once(' ').unwrap_or((t, ""));
    let parts: Vec<&str> = ops.split(", ").collect();
    let push = |st: &mut State, regs: &[&str]| {
        let sp = st.sp.expect("push with a known sp") - 16;
        st.sp = Some(sp);
        for (k, r) in regs.iter().enumerate() {
            let n = xreg(r).unwrap_or_else(|| panic!("{ctx}: push of {r}"));
            let slot = sp + 8 * k as i64;
            if st.changed.contains(&n) {
                st.slots.remove(&slot);
            } else {
                st.slots.insert(slot, n);
            }
        }
    };
    match (mn, ops) {
        ("stp", o) if o.ends_with("[sp, #-0x10]!") => push(st, &parts[..2]),
        ("str", o) if o.ends_with("[sp, #-0x10]!") => push(st, &parts[..1]),
        ("mov", "x29, sp") => {
            st.fp = st.sp;
            st.changed.insert(29);
        }
        ("mov", "sp, x29") => st.sp = st.fp,
        ("sub", o) if o.starts_with("sp, sp, ") => {
            // The frame allocation (or one page of a probe loop): sp is
            // somewhere below from here on, until `mov sp, x29`.
            st.sp = None;
        }
        ("ldp", "x29, x30, [sp], #0x10") => {
            let sp = st.sp.expect("pop with a known sp");
            assert_eq!(st.slots.get(&sp), Some(&29), "{ctx}: x29 popped");
            assert_eq!(st.slots.get(&(sp + 8)), Some(&30), "{ctx}: x30 popped");
            st.fp = None;
            st.changed.remove(&29);
            st.changed.remove(&30);
            st.sp = Some(sp + 16);
        }
        ("ldp" | "ldur" | "ldr", o) if o.contains("[x29, #-") => {
            // A reload of saved registers from the frame record's side.
            let n = parts.len() - 2;
            let addr = st.fp.expect("x29 known") + imm(parts[n + 1].trim_end_matches(']'));
            for (k, r) in parts[..n].iter().enumerate() {
                let r = xreg(r).unwrap();
                if preserved(r) {
                    assert_eq!(
                        st.slots.get(&(addr + 8 * k as i64)),
                        Some(&r),
                        "{ctx}: reload of x{r}"
                    );
                    st.changed.remove(&r);
                }
            }
        }
        ("blr" | "bl", _) => {
            st.changed.insert(30);
        }
        _ => {
            assert!(
                !ops.starts_with("sp") && !ops.contains("[sp]!") && !ops.contains("[sp], "),
                "{ctx}: an instruction the checker does not model writes sp"
            );
            let stores = mn.starts_with("st") || matches!(mn, "cmp" | "b.ne" | "br" | "ret");
            if !stores {
                // The written register(s): the first operand (both for
                // ldp).
                let n = if mn == "ldp" { 2 } else { 1 };
                for r in parts.iter().take(n).filter_map(|r| xreg(r)) {
                    if preserved(r) {
                        st.changed.insert(r);
                    }
                }
            }
        }
    }
}

fn forward_cases() -> Vec<(Abi, &'static str)> {
    let decls = [
        // Nothing saved (bound), x21 alone (unbound).
        "void f(void)",
        // x19 alone (bound), x19 and x21 (unbound).
        "void f(int)",
        // x19, x20 (bound); x19, x20, x21 (unbound).
        "long long f(long long, long long, long long)",
        // Stack arguments and a by-reference copy.
        "int f(int, long, long, long, long, long, long, long, long, struct {char b[40];})",
        // A frame of several pages: probe loop and copy loop.
        "void f(struct big {char c[40000];}, long long)",
        // Indirect result (x8).
        "struct {long long a,b,c;} f(int)",
        "struct {double a,b,c,d;} f(struct {double a,b,c,d;})",
        "long double f(long double, int, long double)",
    ];
    let mut v = Vec::new();
    for abi in [Abi::Aapcs64, Abi::AppleArm64] {
        for d in decls {
            v.push((abi, d));
        }
    }
    v.push((Abi::AppleArm64, "int f(int, ..., double, int)"));
    v
}

#[test]
fn forward_trampoline_rows_follow_the_code() {
    for (abi, decl) in forward_cases() {
        let sig = parse_signature(decl, abi).unwrap_or_else(|e| panic!("{decl}: {e}"));
        let plan = jitffi::abi::plan(&sig).unwrap_or_else(|e| panic!("{decl}: {e}"));
        let (offsets, _) = sig.frame_layout();
        for source in [ArgSource::Pointers, ArgSource::Frame(&offsets)] {
            for target in [Target::Unbound, Target::Bound(0x0001_2345_6789_abcd)] {
                let (code, rows) = emit_forward_with_unwind(&sig, &plan, source, target)
                    .unwrap_or_else(|e| panic!("{decl}: {e}"));
                let what = format!("{abi} {decl} ({source:?}, {target:?})");
                check(&what, &code, &rows);
                // The rows always open with the frame record and close
                // with its pop.
                assert_eq!(rows[0].at, 4, "{what}");
                assert_eq!(
                    rows.iter()
                        .rev()
                        .find(|r| matches!(r.rule, CfaRule::Cfa { .. })),
                    Some(&UnwindRow {
                        at: code.len() as u32 - 4,
                        rule: CfaRule::Cfa {
                            reg: dw::SP,
                            offset: 0
                        }
                    }),
                    "{what}"
                );
                jitffi::unwind::eh_frame(Isa::Aarch64, 0x1000, code.len() as u64, &rows)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
        }
    }
}

#[test]
fn closure_body_rows_follow_the_code() {
    let many_ints = format!("int f({})", vec!["int"; 600].join(", "));
    let mut decls: Vec<String> = [
        "void f(void)",
        "int f(int)",
        "struct {double a,b,c,d;} f(struct {double a,b,c,d;})",
        "struct {long long a,b,c;} f(int)",
        "void f(struct big {char c[40000];}, long long)",
        "int f(int, long, long, long, long, long, long, long, long, struct {char b[40];})",
        "long double f(long double, int, long double)",
    ]
    .map(String::from)
    .to_vec();
    // A frame of more than a page (600 argument pointers): the probe loop.
    decls.push(many_ints);
    for abi in [Abi::Aapcs64, Abi::AppleArm64] {
        for decl in &decls {
            let sig = parse_signature(decl, abi).unwrap_or_else(|e| panic!("{decl}: {e}"));
            let plan = jitffi::abi::plan(&sig).unwrap_or_else(|e| panic!("{decl}: {e}"));
            let (code, rows) = emit_closure_body_with_unwind(&sig, &plan)
                .unwrap_or_else(|e| panic!("{decl}: {e}"));
            let what = format!("{abi} closure {}", &decl[..decl.len().min(60)]);
            check(&what, &code, &rows);
            jitffi::unwind::eh_frame(Isa::Aarch64, 0x1000, code.len() as u64, &rows)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
        }
    }
}

#[test]
fn the_checker_catches_a_missing_row() {
    // The oracle must fail when a row is dropped or wrong, or it proves
    // nothing.
    let sig = parse_signature("long long f(long long, long long)", Abi::Aapcs64).unwrap();
    let plan = jitffi::abi::plan(&sig).unwrap();
    let (code, rows) =
        emit_forward_with_unwind(&sig, &plan, ArgSource::Pointers, Target::Unbound).unwrap();
    check("intact", &code, &rows);
    for k in 0..rows.len() {
        let mut bad = rows.clone();
        bad.remove(k);
        let r = std::panic::catch_unwind(|| check("one row dropped", &code, &bad));
        assert!(r.is_err(), "dropping row {k} ({}) went unnoticed", rows[k]);
    }
    let mut late = rows.clone();
    late[0].at += 4;
    assert!(std::panic::catch_unwind(|| check("late", &code, &late)).is_err());
}
