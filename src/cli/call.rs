//! `jitffi call [--abi A] LIB 'DECL' ARG...`: call a C function with C
//! literals and print the result as a C literal.

use std::ffi::c_void;

use jitffi::call::{ArgMode, Trampoline};
use jitffi::library::Library;
use jitffi::value::{self, StringPool};
use jitffi::Abi;

use super::parse_opts;

pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse_opts(args, &[])?;
    let (lib_name, decl, literals) = match opts.positional.as_slice() {
        [lib, decl, rest @ ..] => (lib, decl, rest),
        _ => return Err("usage: jitffi call [--abi A] LIB 'DECL' ARG...".into()),
    };
    if let Some(text) = call_decl(lib_name, decl, literals, opts.abi)? {
        println!("{text}");
    }
    Ok(())
}

/// Calls the function `decl` declares, found in library `lib_name`, with
/// the C literals `literals`; returns the result as a C literal (`None` for
/// a void function).
pub fn call_decl(
    lib_name: &str,
    decl: &str,
    literals: &[String],
    abi: Abi,
) -> Result<Option<String>, String> {
    let mut sig = jitffi::cdecl::parse_signature(decl, abi).map_err(|e| e.to_string())?;
    let name = sig
        .name
        .clone()
        .ok_or("the declaration names no function to call")?;

    // Parse every literal first, so a bad one is reported before anything
    // is loaded.
    let lits = literals
        .iter()
        .enumerate()
        .map(|(i, t)| value::parse_literal(t).map_err(|e| format!("argument {}: {e}", i + 1)))
        .collect::<Result<Vec<_>, _>>()?;

    // A variadic declaration without types after the ellipsis: infer the
    // variadic part from the literals, as a C compiler would.
    if sig.variadic && sig.args.len() == sig.fixed_args && lits.len() > sig.fixed_args {
        for (i, lit) in lits.iter().enumerate().skip(sig.fixed_args) {
            let t = value::infer_variadic_type(lit, abi.data_model())
                .map_err(|e| format!("argument {}: {e}", i + 1))?;
            sig.args.push(t);
        }
    }
    if lits.len() != sig.args.len() {
        let at_least = if sig.variadic && sig.args.len() == sig.fixed_args {
            "at least "
        } else {
            ""
        };
        return Err(format!(
            "{name} takes {at_least}{} argument{}, {} given",
            sig.args.len(),
            if sig.args.len() == 1 { "" } else { "s" },
            lits.len()
        ));
    }

    let mut pool = StringPool::default();
    let mut storage: Vec<Vec<u64>> = Vec::with_capacity(lits.len());
    for (i, (lit, ty)) in lits.iter().zip(&sig.args).enumerate() {
        // u64 words keep every value 8-aligned (16-aligned types only need
        // the callee-side copy the trampoline makes).
        let mut words = vec![0u64; (ty.size() as usize).div_ceil(8).max(2)];
        // SAFETY: a u64 slice viewed as bytes, same length in bytes.
        let bytes = unsafe {
            std::slice::from_raw_parts_mut(words.as_mut_ptr().cast::<u8>(), words.len() * 8)
        };
        value::encode(lit, ty, bytes, &mut pool)
            .map_err(|e| format!("argument {} ({ty}): {e}", i + 1))?;
        storage.push(words);
    }

    let lib = Library::open(lib_name).map_err(|e| e.to_string())?;
    let target = lib.symbol(&name).map_err(|e| e.to_string())?;
    let tramp =
        Trampoline::compile(&sig, ArgMode::Pointers, Some(target)).map_err(|e| e.to_string())?;
    let ptrs: Vec<*const c_void> = storage.iter().map(|w| w.as_ptr().cast()).collect();
    let mut ret = vec![0u64; tramp.ret_buffer_size().div_ceil(8).max(2)];
    // SAFETY: the trampoline was compiled for `sig` and bound to the symbol
    // the user declared with that signature (the user's declaration is the
    // contract, as in C); each pointer in `ptrs` points at a value encoded as
    // its argument's type; `ret` holds at least ret_buffer_size bytes.
    unsafe {
        tramp
            .call(std::ptr::null(), &ptrs, ret.as_mut_ptr().cast())
            .map_err(|e| e.to_string())?;
    }
    let text = (!sig.ret.is_void()).then(|| {
        // SAFETY: ret holds a value of the declared return type; a `char *`
        // result is followed as the declaration promises a C string.
        let bytes = unsafe { std::slice::from_raw_parts(ret.as_ptr().cast::<u8>(), ret.len() * 8) };
        // SAFETY: as above.
        unsafe { value::format_value(&sig.ret, bytes) }
    });
    // The strings the arguments point at live until here: a result may
    // point into one of them (strchr, strstr).
    drop(pool);
    Ok(text)
}
