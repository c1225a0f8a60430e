//! The second oracle: libffi (the system's libffi 3.4 on x86-64; on AArch64
//! Debian's arm64 libffi 3.4.4, loaded at run time, see [`raw`]).
//!
//! For a generated signature (no unions, `__int128` or packed records:
//! libffi cannot describe them):
//!
//! 1. a jitffi trampoline (pointer and frame mode, unbound and bound) calls
//!    a libffi closure whose handler records the dump bytes of every
//!    argument it receives and returns the expected result;
//! 2. libffi's `ffi_call` calls a jitffi closure that does the same.
//!
//! Both must agree with the generator's values byte for byte. SysV
//! signatures use `FFI_UNIX64`, Win64 ones `FFI_WIN64`, AAPCS64 ones
//! `FFI_SYSV` (libffi's aarch64/ffitarget.h).

#![allow(dead_code)]

use std::cell::RefCell;
use std::ffi::c_void;
use std::sync::{Arc, Mutex};

use raw::{
    ffi_abi, ffi_call, ffi_cif, ffi_closure_alloc, ffi_closure_free, ffi_prep_cif,
    ffi_prep_cif_var, ffi_prep_closure_loc, ffi_status_FFI_OK, ffi_type, std_type, CLOSURE_SIZE,
    FFI_TYPE_STRUCT,
};

use super::gen::{GenSig, Prim, Ty, ValKind};
use jitffi::call::{ArgMode, Trampoline};
use jitffi::closure::Closure;
use jitffi::{Abi, Signature};

/// libffi's predefined type descriptors.
#[derive(Clone, Copy, Debug)]
pub enum Std {
    Void,
    U8,
    S8,
    U16,
    S16,
    U32,
    S32,
    U64,
    S64,
    F32,
    F64,
    LongDouble,
    Pointer,
    ComplexF32,
    ComplexF64,
}

/// x86-64: the `libffi` crate, linked against the system's libffi.
#[cfg(target_arch = "x86_64")]
mod raw {
    pub use libffi::raw::{
        ffi_abi, ffi_call, ffi_cif, ffi_closure, ffi_closure_alloc, ffi_closure_free, ffi_prep_cif,
        ffi_prep_cif_var, ffi_prep_closure_loc, ffi_status_FFI_OK, ffi_type, FFI_TYPE_STRUCT,
    };

    pub use super::Std;

    // libffi-sys declares the complex types only with its `complex` feature;
    // the system library (3.4.4) exports them regardless.
    extern "C" {
        static mut ffi_type_complex_float: ffi_type;
        static mut ffi_type_complex_double: ffi_type;
    }

    pub const CLOSURE_SIZE: usize = size_of::<ffi_closure>();

    /// Always there (linked).
    pub fn available() -> Result<(), String> {
        Ok(())
    }

    /// A predefined descriptor (taking the address is safe; libffi never
    /// writes to them).
    pub fn std_type(s: Std) -> *mut ffi_type {
        use libffi::raw::*;
        match s {
            Std::Void => &raw mut ffi_type_void,
            Std::U8 => &raw mut ffi_type_uint8,
            Std::S8 => &raw mut ffi_type_sint8,
            Std::U16 => &raw mut ffi_type_uint16,
            Std::S16 => &raw mut ffi_type_sint16,
            Std::U32 => &raw mut ffi_type_uint32,
            Std::S32 => &raw mut ffi_type_sint32,
            Std::U64 => &raw mut ffi_type_uint64,
            Std::S64 => &raw mut ffi_type_sint64,
            Std::F32 => &raw mut ffi_type_float,
            Std::F64 => &raw mut ffi_type_double,
            Std::LongDouble => &raw mut ffi_type_longdouble,
            Std::Pointer => &raw mut ffi_type_pointer,
            Std::ComplexF32 => &raw mut ffi_type_complex_float,
            Std::ComplexF64 => &raw mut ffi_type_complex_double,
        }
    }
}

/// AArch64: an x86-64 machine has no arm64 libffi to link against, so the
/// test binary `dlopen`s Debian's `libffi.so.8` (arm64) at run time: from
/// `$JITFFI_DIFF_LIBFFI`, the loader's path, or
/// `target/aarch64-libffi/usr/lib/aarch64-linux-gnu/` where `.ci/aarch64.sh`
/// and `benches/aarch64.sh` unpack it. The declarations follow libffi
/// 3.4.4's ffi.h and aarch64/ffitarget.h (Linux: no extra cif fields).
#[cfg(target_arch = "aarch64")]
#[allow(non_camel_case_types, non_upper_case_globals)]
mod raw {
    use std::ffi::c_void;
    use std::sync::OnceLock;

    pub use super::Std;

    pub type ffi_abi = u32;
    pub type ffi_status = u32;
    pub const ffi_status_FFI_OK: ffi_status = 0;
    pub const FFI_TYPE_STRUCT: u16 = 13;

    #[repr(C)]
    pub struct ffi_type {
        pub size: usize,
        pub alignment: u16,
        pub type_: u16,
        pub elements: *mut *mut ffi_type,
    }

    /// `ffi_cif` is only handled by pointer here: room for libffi's 32
    /// bytes (abi, nargs, arg_types, rtype, bytes, flags), with margin.
    #[repr(C, align(16))]
    pub struct ffi_cif {
        _opaque: [u8; 128],
    }

    /// `ffi_closure` is 24 bytes of trampoline and three pointers on
    /// AArch64 Linux; ffi_closure_alloc is given this (ample) size.
    pub const CLOSURE_SIZE: usize = 256;

    type Handler = unsafe extern "C" fn(*mut ffi_cif, *mut c_void, *mut *mut c_void, *mut c_void);

    struct Lib {
        _lib: libloading::Library,
        prep_cif: unsafe extern "C" fn(
            *mut ffi_cif,
            ffi_abi,
            u32,
            *mut ffi_type,
            *mut *mut ffi_type,
        ) -> ffi_status,
        prep_cif_var: unsafe extern "C" fn(
            *mut ffi_cif,
            ffi_abi,
            u32,
            u32,
            *mut ffi_type,
            *mut *mut ffi_type,
        ) -> ffi_status,
        call: unsafe extern "C" fn(
            *mut ffi_cif,
            Option<unsafe extern "C" fn()>,
            *mut c_void,
            *mut *mut c_void,
        ),
        closure_alloc: unsafe extern "C" fn(usize, *mut *mut c_void) -> *mut c_void,
        closure_free: unsafe extern "C" fn(*mut c_void),
        prep_closure_loc: unsafe extern "C" fn(
            *mut c_void,
            *mut ffi_cif,
            Option<Handler>,
            *mut c_void,
            *mut c_void,
        ) -> ffi_status,
        types: Vec<usize>,
    }

    const TYPE_SYMBOLS: [&str; 15] = [
        "ffi_type_void",
        "ffi_type_uint8",
        "ffi_type_sint8",
        "ffi_type_uint16",
        "ffi_type_sint16",
        "ffi_type_uint32",
        "ffi_type_sint32",
        "ffi_type_uint64",
        "ffi_type_sint64",
        "ffi_type_float",
        "ffi_type_double",
        "ffi_type_longdouble",
        "ffi_type_pointer",
        "ffi_type_complex_float",
        "ffi_type_complex_double",
    ];

    fn open() -> Result<Lib, String> {
        let mut names: Vec<String> = Vec::new();
        if let Some(p) = std::env::var_os("JITFFI_DIFF_LIBFFI").filter(|v| v != "off") {
            names.push(p.to_string_lossy().into_owned());
        }
        names.push("libffi.so.8".into());
        names.push(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/target/aarch64-libffi/usr/lib/aarch64-linux-gnu/libffi.so.8"
            )
            .into(),
        );
        let mut errors = Vec::new();
        for n in &names {
            // SAFETY: libffi's initialisers are benign.
            match unsafe { libloading::Library::new(n) } {
                Ok(lib) => return load(lib),
                Err(e) => errors.push(format!("{n}: {e}")),
            }
        }
        Err(errors.join("; "))
    }

    fn load(lib: libloading::Library) -> Result<Lib, String> {
        // SAFETY: each symbol has the C type of libffi 3.4.4's ffi.h that
        // it is read as; the data symbols are read as addresses only.
        unsafe {
            macro_rules! f {
                ($name:literal) => {
                    *lib.get($name).map_err(|e| e.to_string())?
                };
            }
            let mut types = Vec::new();
            for t in TYPE_SYMBOLS {
                let p: *mut ffi_type = *lib
                    .get::<*mut ffi_type>(t.as_bytes())
                    .map_err(|e| e.to_string())?;
                types.push(p as usize);
            }
            Ok(Lib {
                prep_cif: f!(b"ffi_prep_cif"),
                prep_cif_var: f!(b"ffi_prep_cif_var"),
                call: f!(b"ffi_call"),
                closure_alloc: f!(b"ffi_closure_alloc"),
                closure_free: f!(b"ffi_closure_free"),
                prep_closure_loc: f!(b"ffi_prep_closure_loc"),
                types,
                _lib: lib,
            })
        }
    }

    fn lib() -> &'static Result<Lib, String> {
        static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
        LIB.get_or_init(open)
    }

    fn get() -> &'static Lib {
        lib()
            .as_ref()
            .expect("libffi is not loaded (check available() first)")
    }

    /// Whether the arm64 libffi could be loaded (why not, if not).
    pub fn available() -> Result<(), String> {
        lib().as_ref().map(|_| ()).map_err(|e| e.clone())
    }

    pub fn std_type(s: Std) -> *mut ffi_type {
        get().types[s as usize] as *mut ffi_type
    }

    /// # Safety
    ///
    /// As libffi's `ffi_prep_cif`.
    pub unsafe fn ffi_prep_cif(
        cif: *mut ffi_cif,
        abi: ffi_abi,
        n: u32,
        r: *mut ffi_type,
        a: *mut *mut ffi_type,
    ) -> ffi_status {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().prep_cif)(cif, abi, n, r, a) }
    }

    /// # Safety
    ///
    /// As libffi's `ffi_prep_cif_var`.
    pub unsafe fn ffi_prep_cif_var(
        cif: *mut ffi_cif,
        abi: ffi_abi,
        nf: u32,
        n: u32,
        r: *mut ffi_type,
        a: *mut *mut ffi_type,
    ) -> ffi_status {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().prep_cif_var)(cif, abi, nf, n, r, a) }
    }

    /// # Safety
    ///
    /// As libffi's `ffi_call`.
    pub unsafe fn ffi_call(
        cif: *mut ffi_cif,
        f: Option<unsafe extern "C" fn()>,
        r: *mut c_void,
        a: *mut *mut c_void,
    ) {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().call)(cif, f, r, a) }
    }

    /// # Safety
    ///
    /// As libffi's `ffi_closure_alloc`.
    pub unsafe fn ffi_closure_alloc(size: usize, code: *mut *mut c_void) -> *mut c_void {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().closure_alloc)(size, code) }
    }

    /// # Safety
    ///
    /// As libffi's `ffi_closure_free`.
    pub unsafe fn ffi_closure_free(c: *mut c_void) {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().closure_free)(c) }
    }

    /// # Safety
    ///
    /// As libffi's `ffi_prep_closure_loc`.
    pub unsafe fn ffi_prep_closure_loc(
        c: *mut c_void,
        cif: *mut ffi_cif,
        h: Option<Handler>,
        ud: *mut c_void,
        code: *mut c_void,
    ) -> ffi_status {
        // SAFETY: the caller's contract is libffi's.
        unsafe { (get().prep_closure_loc)(c, cif, h, ud, code) }
    }
}

/// Whether libffi can be used in this process (on AArch64 it is loaded at
/// run time and may be missing; `JITFFI_DIFF_LIBFFI=off` turns it off);
/// the reason if not.
pub fn available() -> Result<(), String> {
    if std::env::var_os("JITFFI_DIFF_LIBFFI").is_some_and(|v| v == "off") {
        return Err("JITFFI_DIFF_LIBFFI=off".into());
    }
    raw::available()
}

/// With `JITFFI_DIFF_VERBOSE`, names the step about to run.
fn stage(what: &str) {
    if std::env::var_os("JITFFI_DIFF_VERBOSE").is_some_and(|v| v != "0") {
        eprintln!("    {what}");
    }
}

/// `FFI_UNIX64` / `FFI_WIN64` on x86-64 Unix (libffi's x86/ffitarget.h);
/// `FFI_SYSV` on AArch64 (aarch64/ffitarget.h).
fn ffi_abi_for(abi: Abi) -> Option<ffi_abi> {
    match abi {
        Abi::SysV64 if cfg!(target_arch = "x86_64") => Some(2),
        Abi::Win64 if cfg!(target_arch = "x86_64") => Some(3),
        Abi::Aapcs64 if cfg!(target_arch = "aarch64") => Some(1),
        _ => None,
    }
}

/// Whether libffi can describe the signature.
pub fn eligible(g: &GenSig) -> bool {
    if ffi_abi_for(g.abi).is_none() || g.any_rec(|r| r.union || r.packed) {
        return false;
    }
    // With unions excluded, the leaves are every scalar of every type.
    let scalars_ok = g.args.iter().chain(g.ret.iter()).all(|t| {
        g.leaves(t).iter().all(|l| {
            let unsupported = matches!(l.prim, Prim::I128 | Prim::U128)
                || (g.abi == Abi::Win64 && l.prim == Prim::LDouble);
            !unsupported
        })
    });
    // libffi 3.4.4 returns a small struct holding a long double (psABI
    // class X87: gcc returns it in st0) as if it were INTEGER class.
    let ret_ok = match &g.ret {
        Some(t @ Ty::Rec(_)) if g.abi == Abi::SysV64 => {
            g.size(t) > 16 || g.leaves(t).iter().all(|l| l.prim != Prim::LDouble)
        }
        _ => true,
    };
    scalars_ok && ret_ok
}

/// Owns the `ffi_type` descriptions of one signature.
struct Types {
    // Boxed: libffi keeps pointers to the descriptors, which must not move
    // when the vector grows.
    #[allow(clippy::vec_box)]
    boxes: Vec<Box<ffi_type>>,
    elems: Vec<Vec<*mut ffi_type>>,
}

impl Types {
    fn prim(p: Prim, abi: Abi) -> *mut ffi_type {
        std_type(match p {
            // Plain char is unsigned on AAPCS64.
            Prim::Char if !abi.data_model().char_signed => Std::U8,
            Prim::Char | Prim::SChar => Std::S8,
            Prim::UChar | Prim::Bool => Std::U8,
            Prim::Short => Std::S16,
            Prim::UShort => Std::U16,
            Prim::Int => Std::S32,
            Prim::UInt => Std::U32,
            Prim::Long if abi == Abi::Win64 => Std::S32,
            Prim::ULong if abi == Abi::Win64 => Std::U32,
            Prim::Long | Prim::LLong => Std::S64,
            Prim::ULong | Prim::ULLong => Std::U64,
            Prim::Float => Std::F32,
            Prim::Double => Std::F64,
            Prim::LDouble => Std::LongDouble,
            Prim::VoidPtr | Prim::CharPtr | Prim::DoublePtr => Std::Pointer,
            Prim::CFloat => Std::ComplexF32,
            Prim::CDouble => Std::ComplexF64,
            Prim::I128 | Prim::U128 => unreachable!("not eligible for libffi"),
        })
    }

    fn ty(&mut self, g: &GenSig, t: &Ty) -> *mut ffi_type {
        match t {
            Ty::P(p) => Types::prim(*p, g.abi),
            Ty::Arr(..) => unreachable!("arrays only inside records"),
            Ty::Rec(i) => {
                let mut el = Vec::new();
                for f in &g.recs[*i].fields {
                    self.push_field(g, f, &mut el);
                }
                el.push(std::ptr::null_mut());
                let mut b = Box::new(ffi_type {
                    size: 0,
                    alignment: 0,
                    type_: FFI_TYPE_STRUCT,
                    elements: el.as_mut_ptr(),
                });
                self.elems.push(el);
                let p: *mut ffi_type = &mut *b;
                self.boxes.push(b);
                p
            }
        }
    }

    /// libffi has no array type: an array member is its elements in a row
    /// (the layout and the psABI classification are the same).
    fn push_field(&mut self, g: &GenSig, f: &Ty, el: &mut Vec<*mut ffi_type>) {
        match f {
            Ty::Arr(e, n) => {
                for _ in 0..*n {
                    self.push_field(g, e, el);
                }
            }
            other => {
                let p = self.ty(g, other);
                el.push(p);
            }
        }
    }
}

/// A prepared libffi call interface, with everything it points at.
struct Cif {
    cif: Box<ffi_cif>,
    _types: Types,
    _atypes: Vec<*mut ffi_type>,
}

fn prep(g: &GenSig) -> Result<Cif, String> {
    let abi = ffi_abi_for(g.abi).ok_or("no libffi ABI")?;
    let mut types = Types {
        boxes: Vec::new(),
        elems: Vec::new(),
    };
    let rtype = match &g.ret {
        None => std_type(Std::Void),
        Some(t) => types.ty(g, t),
    };
    let mut atypes: Vec<*mut ffi_type> = g.args.iter().map(|t| types.ty(g, t)).collect();
    // SAFETY: ffi_cif is plain data; ffi_prep_cif fills it in.
    let mut cif: Box<ffi_cif> = Box::new(unsafe { std::mem::zeroed() });
    // SAFETY: all type pointers are valid for the life of the returned Cif
    // (boxes and vectors owned by it, or libffi statics).
    let st = unsafe {
        if g.variadic {
            ffi_prep_cif_var(
                &mut *cif,
                abi,
                g.nfixed as u32,
                atypes.len() as u32,
                rtype,
                atypes.as_mut_ptr(),
            )
        } else {
            ffi_prep_cif(
                &mut *cif,
                abi,
                atypes.len() as u32,
                rtype,
                atypes.as_mut_ptr(),
            )
        }
    };
    if st != ffi_status_FFI_OK {
        return Err(format!("ffi_prep_cif failed ({st})"));
    }
    // The generator's layout must be libffi's (a test bug otherwise).
    for (t, &p) in g.args.iter().zip(&atypes) {
        // SAFETY: p is a prepared type descriptor.
        let size = unsafe { (*p).size };
        if size != g.size(t) as usize {
            return Err(format!(
                "test layout disagrees with libffi: {} bytes vs {}",
                g.size(t),
                size
            ));
        }
    }
    Ok(Cif {
        cif,
        _types: types,
        _atypes: atypes,
    })
}

/// A 16-aligned zeroed buffer of at least `n` bytes.
fn buf(n: usize) -> Vec<u128> {
    vec![0u128; n.div_ceil(16).max(2)]
}

fn bytes_of(v: &[u128]) -> *const u8 {
    v.as_ptr().cast()
}

/// The result as libffi's closures and `ffi_call` represent it: integers
/// narrower than a register are widened to `ffi_arg` (8 bytes).
fn widened_ret(g: &GenSig, img: &[u8]) -> Vec<u8> {
    if let Some(Ty::P(p)) = &g.ret {
        match p.val_kind(g.abi) {
            ValKind::Int { bytes, signed } if bytes < 8 => {
                let mut v = [0u8; 8];
                v[..img.len()].copy_from_slice(img);
                let neg = signed && img[img.len() - 1] & 0x80 != 0;
                if neg {
                    for b in &mut v[bytes as usize..] {
                        *b = 0xff;
                    }
                }
                return v.to_vec();
            }
            ValKind::Bool => {
                let mut v = vec![0u8; 8];
                v[0] = img[0];
                return v;
            }
            _ => {}
        }
    }
    img.to_vec()
}

struct FfiCtx {
    g: GenSig,
    ret: Vec<u8>,
    seen: RefCell<Vec<u8>>,
}

unsafe extern "C" fn ffi_handler(
    _cif: *mut ffi_cif,
    ret: *mut c_void,
    args: *mut *mut c_void,
    ud: *mut c_void,
) {
    // SAFETY: ud is the FfiCtx that outlives the closure (check_libffi).
    let st = unsafe { &*(ud as *const FfiCtx) };
    let mut seen = Vec::new();
    for (i, t) in st.g.args.iter().enumerate() {
        // SAFETY: libffi passes one pointer per argument of the cif, each to
        // a value of the argument's type.
        seen.extend(unsafe { st.g.dump_from(t, *args.add(i) as *const u8) });
    }
    *st.seen.borrow_mut() = seen;
    if !st.ret.is_empty() {
        // SAFETY: libffi's result buffer holds the result, or an ffi_arg for
        // narrow integers (libffi manual, "The Closure API").
        unsafe { std::ptr::copy_nonoverlapping(st.ret.as_ptr(), ret as *mut u8, st.ret.len()) };
    }
}

fn first_diff(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

fn describe(g: &GenSig, what: &str, got: &[u8], want: &[u8], types: &[(String, &Ty)]) -> String {
    let at = first_diff(got, want);
    format!(
        "{what}: {} (got {} bytes, want {}; at {}: got {:02x?}, want {:02x?})",
        g.locate(types, at),
        got.len(),
        want.len(),
        at,
        &got[at.min(got.len())..(at + 16).min(got.len())],
        &want[at.min(want.len())..(at + 16).min(want.len())],
    )
}

pub fn arg_types(g: &GenSig) -> Vec<(String, &Ty)> {
    g.args
        .iter()
        .enumerate()
        .map(|(i, t)| (format!("a{i}"), t))
        .collect()
}

/// Runs one trampoline call of `target` with the generator's argument
/// values; returns the result's dump bytes.
pub fn call_through(
    g: &GenSig,
    jsig: &Signature,
    mode: ArgMode,
    bound: bool,
    target: *const c_void,
) -> Result<Vec<u8>, String> {
    let t = Trampoline::compile(jsig, mode, bound.then_some(target))
        .map_err(|e| format!("compile {mode:?} bound={bound}: {e}"))?;
    let (imgs, _) = g.expected_args();
    let mut ret = buf(t
        .ret_buffer_size()
        .max(g.ret.as_ref().map_or(0, |r| g.size(r)) as usize));
    let ret_ptr = ret.as_mut_ptr().cast::<c_void>();
    let callee = if bound { std::ptr::null() } else { target };
    match mode {
        ArgMode::Pointers => {
            let store: Vec<Vec<u128>> = imgs
                .iter()
                .map(|img| {
                    let mut b = buf(img.len());
                    // SAFETY: b holds at least img.len() bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            img.as_ptr(),
                            b.as_mut_ptr().cast(),
                            img.len(),
                        )
                    };
                    b
                })
                .collect();
            let ptrs: Vec<*const c_void> = store.iter().map(|b| b.as_ptr().cast()).collect();
            // SAFETY: the signature describes target; each pointer points at
            // a value of its argument's type; ret holds ret_buffer_size().
            unsafe { t.call_raw(callee, ptrs.as_ptr().cast(), ret_ptr) };
        }
        ArgMode::Frame => {
            let (offs, size) = frame_layout(g);
            if offs != t.frame_offsets() {
                return Err(format!(
                    "frame offsets {:?}, C alignment rules give {:?}",
                    t.frame_offsets(),
                    offs
                ));
            }
            let mut frame = buf(size.max(t.frame_size()));
            let fb = frame.as_mut_ptr().cast::<u8>();
            for (img, &off) in imgs.iter().zip(&offs) {
                // SAFETY: the frame holds every argument at its offset.
                unsafe {
                    std::ptr::copy_nonoverlapping(img.as_ptr(), fb.add(off as usize), img.len())
                };
            }
            // SAFETY: as above, with a frame laid out by frame_offsets().
            unsafe { t.call_raw(callee, frame.as_ptr().cast(), ret_ptr) };
        }
    }
    Ok(match &g.ret {
        None => Vec::new(),
        // SAFETY: ret holds the result.
        Some(r) => unsafe { g.dump_from(r, bytes_of(&ret)) },
    })
}

/// The frame layout by the C alignment rules (each argument at the next
/// multiple of its alignment; total rounded up to 16).
pub fn frame_layout(g: &GenSig) -> (Vec<u32>, usize) {
    let mut off = 0u32;
    let mut offs = Vec::new();
    for t in &g.args {
        let a = g.align(t);
        off = off.div_ceil(a) * a;
        offs.push(off);
        off += g.size(t);
    }
    (offs, off.div_ceil(16) as usize * 16)
}

pub type Seen = Arc<Mutex<Vec<u8>>>;

/// A jitffi closure recording the dump bytes of its arguments and returning
/// the result image `ret`.
pub fn recorder(g: &GenSig, jsig: &Signature, ret: Vec<u8>) -> Result<(Closure, Seen), String> {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = seen.clone();
    let g2 = g.clone();
    let c = Closure::new(jsig, move |args, r| {
        let mut v = Vec::new();
        for (t, p) in g2.args.iter().zip(args) {
            // SAFETY: args[i] points at argument i as its C type.
            v.extend(unsafe { g2.dump_from(t, *p as *const u8) });
        }
        *s2.lock().unwrap() = v;
        if !ret.is_empty() {
            // SAFETY: r holds at least sizeof(result) bytes.
            unsafe { std::ptr::copy_nonoverlapping(ret.as_ptr(), r as *mut u8, ret.len()) };
        }
    })
    .map_err(|e| format!("closure: {e}"))?;
    Ok((c, seen))
}

/// Whether libffi 3.4.4's `ffi_call` mis-passes this SysV call: a 9–16
/// byte struct whose eightbytes are INTEGER then SSE, starting in the sixth
/// GPR (r9), makes it store the struct's SSE half over the *first* SSE
/// register (libffi/libffi#574, fixed by #848 in 2024, after 3.4.4).
/// This is a model of the psABI §3.2.3 classification for the simple types
/// libffi can describe, used only to skip that one direction.
pub fn hits_libffi_574(g: &GenSig) -> bool {
    if g.abi != Abi::SysV64 {
        return false;
    }
    #[derive(PartialEq)]
    enum C {
        Int,
        Sse,
        Mem,
    }
    let classify = |t: &Ty| -> Vec<C> {
        let size = g.size(t);
        let leaves = g.leaves(t);
        if size > 16 || leaves.iter().any(|l| l.prim == Prim::LDouble) {
            return vec![C::Mem];
        }
        (0..size.div_ceil(8))
            .map(|e| {
                let int = leaves.iter().any(|l| {
                    let (a, b) = (l.offset, l.offset + l.prim.size(g.abi));
                    a < 8 * (e + 1)
                        && b > 8 * e
                        && !matches!(
                            l.prim,
                            Prim::Float | Prim::Double | Prim::CFloat | Prim::CDouble
                        )
                });
                if int {
                    C::Int
                } else {
                    C::Sse
                }
            })
            .collect()
    };
    let (mut gpr, mut sse) = (
        usize::from(
            matches!(&g.ret, Some(t) if classify(t) == [C::Mem] && matches!(t, Ty::Rec(_))),
        ),
        0,
    );
    for t in &g.args {
        let cl = classify(t);
        if cl.contains(&C::Mem) {
            continue;
        }
        let ng = cl.iter().filter(|c| **c == C::Int).count();
        let ns = cl.len() - ng;
        if gpr + ng > 6 || sse + ns > 8 {
            continue;
        }
        if matches!(t, Ty::Rec(_)) && cl == [C::Int, C::Sse] && gpr == 5 {
            return true;
        }
        gpr += ng;
        sse += ns;
    }
    false
}

/// Whether libffi 3.4.4's AArch64 `ffi_call` may mis-pass this call: for a
/// composite larger than 16 bytes (AAPCS64 B.4: replaced by a pointer to a
/// copy) whose pointer goes on the stack, `ffi_call_int` aligns the
/// pointer's 8-byte slot to the *composite's* alignment, so a 16-aligned
/// composite (one holding a `long double` or `__int128`) can get its
/// pointer 8 bytes past where gcc's callee reads it (checked with a C
/// program: `void f(long x0, ..., long x7, long s0, struct { long a; long
/// double x; } b)` called by `ffi_call` crashes; gcc's caller stores the
/// pointer at `[sp, 8]`). Over-approximated: any such argument skips the
/// `ffi_call` direction (whether its pointer lands in a register or not).
pub fn hits_libffi_aarch64_byref_align16(g: &GenSig) -> bool {
    g.abi == Abi::Aapcs64
        && g.args
            .iter()
            .any(|t| matches!(t, Ty::Rec(_)) && g.size(t) > 16 && g.align(t) >= 16)
}

/// Both directions against libffi. `Ok(false)`: libffi refused the
/// signature (`ffi_prep_cif` failed); `Err` describes the first mismatch.
pub fn check_libffi(g: &GenSig, jsig: &Signature) -> Result<bool, String> {
    let mut cif = match prep(g) {
        Ok(c) => c,
        Err(e) if e.starts_with("ffi_prep_cif failed") => return Ok(false),
        Err(e) => return Err(e),
    };
    let (imgs, want_args) = g.expected_args();
    let (ret_img, want_ret) = g.expected_ret(&want_args);
    let types = arg_types(g);
    let rtypes: Vec<(String, &Ty)> = g.ret.iter().map(|t| ("ret".to_string(), t)).collect();

    // 1. jitffi trampoline -> libffi closure.
    let ctx = Box::new(FfiCtx {
        g: g.clone(),
        ret: widened_ret(g, &ret_img),
        seen: RefCell::new(Vec::new()),
    });
    let mut code: *mut c_void = std::ptr::null_mut();
    // SAFETY: allocates a closure object and its code address.
    let closure = unsafe { ffi_closure_alloc(CLOSURE_SIZE, &mut code) };
    if closure.is_null() {
        return Err("ffi_closure_alloc failed".into());
    }
    // SAFETY: closure/code from ffi_closure_alloc; the cif and ctx outlive
    // the closure (freed below, before they are dropped).
    let st = unsafe {
        ffi_prep_closure_loc(
            closure.cast(),
            &mut *cif.cif,
            Some(ffi_handler),
            &*ctx as *const FfiCtx as *mut c_void,
            code,
        )
    };
    let mut result = Ok(());
    if st != ffi_status_FFI_OK {
        result = Err(format!("ffi_prep_closure_loc failed ({st})"));
    }
    if result.is_ok() {
        'outer: for mode in [ArgMode::Pointers, ArgMode::Frame] {
            for bound in [false, true] {
                ctx.seen.borrow_mut().clear();
                stage(&format!("jitffi {mode:?} bound={bound} -> libffi closure"));
                let got_ret = match call_through(g, jsig, mode, bound, code) {
                    Ok(r) => r,
                    Err(e) => {
                        result = Err(e);
                        break 'outer;
                    }
                };
                let seen = ctx.seen.borrow().clone();
                let what = format!("jitffi {mode:?} bound={bound} -> libffi closure");
                if seen != want_args {
                    result = Err(describe(
                        g,
                        &format!("{what}: argument"),
                        &seen,
                        &want_args,
                        &types,
                    ));
                    break 'outer;
                }
                if got_ret != want_ret {
                    result = Err(describe(
                        g,
                        &format!("{what}: result"),
                        &got_ret,
                        &want_ret,
                        &rtypes,
                    ));
                    break 'outer;
                }
            }
        }
    }
    // SAFETY: allocated above; nothing calls it any more.
    unsafe { ffi_closure_free(closure.cast()) };
    drop(ctx);
    result?;

    // 2. libffi ffi_call -> jitffi closure.
    if hits_libffi_574(g) || hits_libffi_aarch64_byref_align16(g) {
        return Ok(true);
    }
    let (c, seen) = recorder(g, jsig, ret_img.clone())?;
    let mut store: Vec<Vec<u128>> = imgs
        .iter()
        .map(|img| {
            let mut b = buf(img.len());
            // SAFETY: b holds at least img.len() bytes.
            unsafe {
                std::ptr::copy_nonoverlapping(img.as_ptr(), b.as_mut_ptr().cast(), img.len())
            };
            b
        })
        .collect();
    let mut ptrs: Vec<*mut c_void> = store.iter_mut().map(|b| b.as_mut_ptr().cast()).collect();
    let mut rbuf = buf(ret_img.len().max(8));
    // SAFETY: the closure has the cif's signature; the code pointer is a C
    // function of that type; args and result buffers are as the cif says.
    stage("ffi_call -> jitffi closure");
    unsafe {
        let f: unsafe extern "C" fn() = std::mem::transmute(c.code_ptr());
        ffi_call(
            &mut *cif.cif,
            Some(f),
            rbuf.as_mut_ptr().cast(),
            ptrs.as_mut_ptr(),
        );
    }
    let got_args = seen.lock().unwrap().clone();
    if got_args != want_args {
        return Err(describe(
            g,
            "ffi_call -> jitffi closure: argument",
            &got_args,
            &want_args,
            &types,
        ));
    }
    let got_ret = match &g.ret {
        None => Vec::new(),
        // SAFETY: rbuf holds the result.
        Some(r) => unsafe { g.dump_from(r, bytes_of(&rbuf)) },
    };
    if got_ret != want_ret {
        return Err(describe(
            g,
            "ffi_call -> jitffi closure: result",
            &got_ret,
            &want_ret,
            &rtypes,
        ));
    }
    drop(c);
    Ok(true)
}
