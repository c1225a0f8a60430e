//! C source for a batch of generated signatures, compiled by gcc: the first
//! oracle.
//!
//! For each signature `P` (its prefix) the file defines
//!
//! - the typedefs, each with `_Static_assert`s that gcc's `sizeof`,
//!   `_Alignof` and `offsetof` equal the generator's layout (a layout bug in
//!   the test fails the compile instead of hiding as a mismatch), so the
//!   test may read and write whole values by those layouts;
//! - `R Pcallee(args...)`: copies every argument as received (fixed ones,
//!   and variadic ones via `va_arg`) end to end into `diff_buf`, sets
//!   `diff_len`, and returns the hash-fill of `R` (each leaf computed by gcc
//!   from `dmix(h + k)`) seeded by the FNV-1a hash `h` of the argument
//!   leaves' value bytes (a table of leaf offsets; padding is skipped);
//! - `size_t Pcaller(void *fp, const unsigned char *const *args, unsigned
//!   char *out)`: loads each argument from `args[i]` (the test's values),
//!   calls `fp` as a function of the signature, and copies the result into
//!   `out`, returning its size.
//!
//! On AArch64 (AAPCS64) the same C is compiled by the cross gcc
//! (`aarch64-linux-gnu-gcc`); nothing in it is x86-specific except the
//! `ms_abi` spellings below.
//!
//! Win64 signatures get `__attribute__((ms_abi))` on the callee and on the
//! caller's function pointer type, and gcc's `__builtin_ms_va_*`.
//!
//! The code is kept small (whole-value copies, leaf tables as data) so that
//! gcc -O2 compiles a batch of 200 signatures in a couple of seconds.

#![allow(dead_code)]

use super::gen::{c_value, GenSig, Ty, C_GLOBALS, C_PRELUDE};
use jitffi::Abi;

/// The C files for a batch, split into `parts` files that gcc can compile
/// in parallel (the first one defines the globals).
pub fn batch_sources(sigs: &[GenSig], parts: usize) -> Vec<String> {
    let per = sigs.len().div_ceil(parts.max(1)).max(1);
    let mut out: Vec<String> = sigs
        .chunks(per)
        .map(|chunk| {
            let mut s = String::from(C_PRELUDE);
            for g in chunk {
                s.push_str(&sig_source(g));
            }
            s
        })
        .collect();
    if out.is_empty() {
        out.push(String::from(C_PRELUDE));
    }
    out[0].push_str(C_GLOBALS);
    out
}

fn fill_stmts(g: &GenSig, t: &Ty, var: &str, h: &dyn Fn(usize) -> String, out: &mut String) {
    out.push_str(&format!("    memset(&{var}, 0, sizeof {var});\n"));
    for (k, l) in g.leaves(t).iter().enumerate() {
        out.push_str(&format!(
            "    {var}{} = {};\n",
            l.path,
            c_value(l.prim, g.abi, &h(k))
        ));
    }
}

/// The C for one signature.
pub fn sig_source(g: &GenSig) -> String {
    let mut s = String::new();
    s.push_str(&g.typedefs(false));
    for (i, r) in g.recs.iter().enumerate() {
        let name = g.rec_name(i);
        s.push_str(&format!(
            "_Static_assert(sizeof({name}) == {} && _Alignof({name}) == {}, \"layout of {name}\");\n",
            r.size, r.align
        ));
        for (k, off) in r.offsets.iter().enumerate() {
            s.push_str(&format!(
                "_Static_assert(offsetof({name}, f{k}) == {off}, \"offset of {name}.f{k}\");\n"
            ));
        }
    }
    let win = g.abi == Abi::Win64;
    let attr = if win { "__attribute__((ms_abi)) " } else { "" };
    let ret = g.ret_spelling(false);
    let fixed: Vec<String> = g.args[..g.nfixed]
        .iter()
        .map(|t| g.spell(t, false))
        .collect();
    let mut params: Vec<String> = fixed
        .iter()
        .enumerate()
        .map(|(i, t)| format!("{t} a{i}"))
        .collect();
    let mut ptypes = fixed.clone();
    if g.variadic {
        params.push("...".into());
        ptypes.push("...".into());
    }
    if params.is_empty() {
        params.push("void".into());
        ptypes.push("void".into());
    }

    // gcc 12.2 -O2 miscompiles va_arg of a 16-byte aligned aggregate passed
    // in GPRs (a struct or union holding __int128): it spills the two
    // registers to a red-zone temporary that is only 8-byte aligned and
    // reloads it with movdqa, which faults. -O1 does not; use it for such
    // callees (the test is about the call, not gcc's optimiser).
    let va_aligned16 = g.abi == Abi::SysV64
        && g.args[g.nfixed..]
            .iter()
            .any(|t| matches!(t, Ty::Rec(_)) && g.align(t) >= 16);
    let opt = if va_aligned16 {
        "__attribute__((optimize(\"O1\"))) "
    } else {
        ""
    };
    // The callee.
    s.push_str(&format!(
        "{opt}{attr}{ret} {}({}) {{\n    unsigned char *p = diff_buf;\n",
        g.callee_name(),
        params.join(", ")
    ));
    for i in 0..g.nfixed {
        s.push_str(&format!(
            "    memcpy(p, &a{i}, sizeof a{i}); p += sizeof a{i};\n"
        ));
    }
    if g.variadic {
        let last = format!("a{}", g.nfixed - 1);
        if win {
            s.push_str(&format!(
                "    __builtin_ms_va_list ap;\n    __builtin_ms_va_start(ap, {last});\n"
            ));
        } else {
            s.push_str(&format!("    va_list ap;\n    va_start(ap, {last});\n"));
        }
        for i in g.nfixed..g.args.len() {
            let t = g.spell(&g.args[i], false);
            let size = g.size(&g.args[i]);
            if win && matches!(g.args[i], Ty::Rec(_)) && !matches!(size, 1 | 2 | 4 | 8) {
                // Microsoft x64 "Varargs": an aggregate that is not 1, 2, 4
                // or 8 bytes is passed by reference (MSVC's va_arg reads a
                // pointer). gcc's __builtin_va_arg on an ms_va_list decides
                // by-reference with the *default* (SysV) ABI on Linux and
                // reads the slot as the value, so spell the rule out.
                s.push_str(&format!("    {t} a{i} = *__builtin_va_arg(ap, {t} *);\n"));
            } else {
                s.push_str(&format!("    {t} a{i} = __builtin_va_arg(ap, {t});\n"));
            }
            s.push_str(&format!(
                "    memcpy(p, &a{i}, sizeof a{i}); p += sizeof a{i};\n"
            ));
        }
        if win {
            s.push_str("    __builtin_ms_va_end(ap);\n");
        } else {
            s.push_str("    va_end(ap);\n");
        }
    }
    s.push_str("    diff_len = (size_t)(p - diff_buf);\n");
    if let Some(t) = &g.ret {
        let table = g.arg_leaf_table();
        if table.is_empty() {
            s.push_str("    uint64_t h = 0xcbf29ce484222325ULL;\n");
        } else {
            let nums: Vec<String> = table.iter().map(|(o, n)| format!("{o},{n}")).collect();
            s.push_str(&format!(
                "    static const unsigned int leaves[] = {{{}}};\n    uint64_t h = dleafhash(diff_buf, leaves, {});\n",
                nums.join(","),
                table.len()
            ));
        }
        s.push_str(&format!("    {ret} r;\n"));
        fill_stmts(g, t, "r", &|k| format!("dmix(h + {k}ULL)"), &mut s);
        s.push_str("    return r;\n");
    }
    s.push_str("}\n");

    // The caller.
    s.push_str(&format!(
        "size_t {}(void *fp, const unsigned char *const *args, unsigned char *out) {{\n    {ret} ({attr}*f)({}) = ({ret} ({attr}*)({}))fp;\n",
        g.caller_name(),
        ptypes.join(", "),
        ptypes.join(", ")
    ));
    let mut argnames = Vec::new();
    for (i, t) in g.args.iter().enumerate() {
        s.push_str(&format!(
            "    {} a{i}; memcpy(&a{i}, args[{i}], sizeof a{i});\n",
            g.spell(t, false)
        ));
        argnames.push(format!("a{i}"));
    }
    match &g.ret {
        None => s.push_str(&format!(
            "    f({});\n    return 0;\n}}\n\n",
            argnames.join(", ")
        )),
        Some(_) => s.push_str(&format!(
            "    {ret} r = f({});\n    memcpy(out, &r, sizeof r);\n    return sizeof r;\n}}\n\n",
            argnames.join(", ")
        )),
    }
    s
}
