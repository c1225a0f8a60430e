//! libffi, loaded at run time, for side-by-side measurements in `jitffi
//! bench` and `jitffi demo`. jitffi does not depend on libffi: when no
//! `libffi.so` can be opened, the comparison column is simply absent.

// The ffi_type boxes are pointed at by libffi (elements lists, the cif): they
// must not move when the owning Vec grows, hence Vec<Box<_>>.
#![allow(clippy::vec_box)]

use std::ffi::{c_uint, c_void};
use std::sync::Arc;

use jitffi::library::Library;
use jitffi::types::{Abi, RecordKind, Scalar, Signature, Type};

/// `ffi_type` (ffi.h, libffi 3.x).
#[repr(C)]
struct FfiType {
    size: usize,
    alignment: u16,
    type_: u16,
    elements: *mut *mut FfiType,
}

/// `ffi_cif` (ffi.h, libffi 3.x; no extra fields on x86-64 or AArch64).
#[repr(C)]
struct FfiCif {
    abi: c_uint,
    nargs: c_uint,
    arg_types: *mut *mut FfiType,
    rtype: *mut FfiType,
    bytes: c_uint,
    flags: c_uint,
}

const FFI_TYPE_STRUCT: u16 = 13;

type PrepCif =
    unsafe extern "C" fn(*mut FfiCif, c_uint, c_uint, *mut FfiType, *mut *mut FfiType) -> c_uint;
type PrepCifVar = unsafe extern "C" fn(
    *mut FfiCif,
    c_uint,
    c_uint,
    c_uint,
    *mut FfiType,
    *mut *mut FfiType,
) -> c_uint;
type FfiCall = unsafe extern "C" fn(*mut FfiCif, *const c_void, *mut c_void, *const *const c_void);
type ClosureAlloc = unsafe extern "C" fn(usize, *mut *mut c_void) -> *mut c_void;
type ClosureFree = unsafe extern "C" fn(*mut c_void);
/// libffi's closure handler: `fun(cif, ret, args, user_data)`.
pub type FfiHandler = unsafe extern "C" fn(*mut c_void, *mut c_void, *mut *mut c_void, *mut c_void);
type PrepClosureLoc =
    unsafe extern "C" fn(*mut c_void, *mut FfiCif, FfiHandler, *mut c_void, *mut c_void) -> c_uint;

/// `sizeof(ffi_closure)` is at most this on x86-64 and AArch64 (a 32-byte
/// trampoline area, then cif, fun, user_data); asking for more is harmless.
const FFI_CLOSURE_SIZE: usize = 64;

/// An opened libffi.
pub struct Libffi {
    lib: Library,
    prep_cif: PrepCif,
    prep_cif_var: PrepCifVar,
    call: FfiCall,
    closure_alloc: ClosureAlloc,
    closure_free: ClosureFree,
    prep_closure_loc: PrepClosureLoc,
}

impl Libffi {
    /// Opens the system libffi, or `None` when there is none.
    pub fn open() -> Option<Arc<Libffi>> {
        ["libffi.so.8", "libffi.so.7", "libffi.so"]
            .iter()
            .find_map(|n| Libffi::open_named(n))
    }

    /// Opens the library `name` (a soname or a path) as a libffi: any
    /// library exporting libffi's API, such as `libjitffi.so` built with the
    /// `libffi-compat` feature. `None` when it cannot be opened or lacks a
    /// function.
    pub fn open_named(name: &str) -> Option<Arc<Libffi>> {
        let lib = Library::open(name).ok()?;
        let f = |name: &str| lib.symbol(name).ok();
        let (p, pv, c) = (f("ffi_prep_cif")?, f("ffi_prep_cif_var")?, f("ffi_call")?);
        let (ca, cf, pc) = (
            f("ffi_closure_alloc")?,
            f("ffi_closure_free")?,
            f("ffi_prep_closure_loc")?,
        );
        // SAFETY: these are libffi's exported functions, whose C prototypes
        // (ffi.h) are exactly the function types transmuted to.
        unsafe {
            Some(Arc::new(Libffi {
                prep_cif: std::mem::transmute::<*const c_void, PrepCif>(p),
                prep_cif_var: std::mem::transmute::<*const c_void, PrepCifVar>(pv),
                call: std::mem::transmute::<*const c_void, FfiCall>(c),
                closure_alloc: std::mem::transmute::<*const c_void, ClosureAlloc>(ca),
                closure_free: std::mem::transmute::<*const c_void, ClosureFree>(cf),
                prep_closure_loc: std::mem::transmute::<*const c_void, PrepClosureLoc>(pc),
                lib,
            }))
        }
    }

    fn builtin_type(&self, name: &str) -> Option<*mut FfiType> {
        self.lib.symbol(name).ok().map(|p| p as *mut FfiType)
    }

    /// Prepares a cif for `sig` (scalars, pointers and structs; libffi
    /// has no unions), or explains why not.
    pub fn prepare(self: &Arc<Self>, sig: &Signature) -> Result<PreparedCif, String> {
        let mut owned: Vec<Box<FfiType>> = Vec::new();
        let mut lists: Vec<Vec<*mut FfiType>> = Vec::new();
        let rtype = self.ffi_type(&sig.ret, &mut owned, &mut lists)?;
        let mut args: Vec<*mut FfiType> = Vec::new();
        for t in &sig.args {
            args.push(self.ffi_type(t, &mut owned, &mut lists)?);
        }
        let abi: c_uint = match sig.abi {
            Abi::SysV64 => 2,                    // FFI_UNIX64
            Abi::Win64 => 3,                     // FFI_WIN64 (long double = double)
            Abi::Aapcs64 | Abi::AppleArm64 => 1, // FFI_SYSV
        };
        let mut cif = Box::new(FfiCif {
            abi: 0,
            nargs: 0,
            arg_types: std::ptr::null_mut(),
            rtype: std::ptr::null_mut(),
            bytes: 0,
            flags: 0,
        });
        let mut args = args.into_boxed_slice();
        // SAFETY: cif, rtype and args are valid and outlive the cif (they
        // are moved into PreparedCif together, heap addresses unchanged).
        let rc = unsafe {
            if sig.variadic {
                (self.prep_cif_var)(
                    &mut *cif,
                    abi,
                    sig.fixed_args as c_uint,
                    sig.args.len() as c_uint,
                    rtype,
                    args.as_mut_ptr(),
                )
            } else {
                (self.prep_cif)(
                    &mut *cif,
                    abi,
                    sig.args.len() as c_uint,
                    rtype,
                    args.as_mut_ptr(),
                )
            }
        };
        if rc != 0 {
            return Err(format!("ffi_prep_cif failed with status {rc}"));
        }
        Ok(PreparedCif {
            ffi: self.clone(),
            cif,
            _args: args,
            _owned: owned,
            _lists: lists,
        })
    }

    fn ffi_type(
        &self,
        t: &Type,
        owned: &mut Vec<Box<FfiType>>,
        lists: &mut Vec<Vec<*mut FfiType>>,
    ) -> Result<*mut FfiType, String> {
        let name = match t {
            Type::Void => "ffi_type_void",
            Type::Pointer(_) => "ffi_type_pointer",
            Type::Scalar(s) => match s {
                Scalar::Bool | Scalar::U8 => "ffi_type_uint8",
                Scalar::I8 => "ffi_type_sint8",
                Scalar::U16 => "ffi_type_uint16",
                Scalar::I16 => "ffi_type_sint16",
                Scalar::U32 => "ffi_type_uint32",
                Scalar::I32 => "ffi_type_sint32",
                Scalar::U64 => "ffi_type_uint64",
                Scalar::I64 => "ffi_type_sint64",
                Scalar::F32 => "ffi_type_float",
                Scalar::F64 => "ffi_type_double",
                Scalar::F80 | Scalar::F128 => "ffi_type_longdouble",
                Scalar::Ptr => "ffi_type_pointer",
                Scalar::I128 | Scalar::U128 => return Err("libffi has no __int128".into()),
            },
            Type::Complex(Scalar::F32) => "ffi_type_complex_float",
            Type::Complex(Scalar::F64) => "ffi_type_complex_double",
            Type::Complex(_) => "ffi_type_complex_longdouble",
            Type::Array(..) => return Err("an array cannot be passed by value".into()),
            Type::Record(r) => {
                if r.kind == RecordKind::Union {
                    return Err("libffi has no unions".into());
                }
                let mut elems = Vec::new();
                for f in &r.fields {
                    self.push_elements(&f.ty, owned, lists, &mut elems)?;
                }
                elems.push(std::ptr::null_mut());
                let mut ty = Box::new(FfiType {
                    size: 0,
                    alignment: 0,
                    type_: FFI_TYPE_STRUCT,
                    elements: elems.as_mut_ptr(),
                });
                lists.push(elems);
                let p: *mut FfiType = &mut *ty;
                owned.push(ty);
                return Ok(p);
            }
        };
        self.builtin_type(name)
            .ok_or_else(|| format!("this libffi lacks {name}"))
    }

    fn push_elements(
        &self,
        t: &Type,
        owned: &mut Vec<Box<FfiType>>,
        lists: &mut Vec<Vec<*mut FfiType>>,
        out: &mut Vec<*mut FfiType>,
    ) -> Result<(), String> {
        match t {
            // libffi describes an array member as that many members.
            Type::Array(elem, n) => {
                for _ in 0..*n {
                    self.push_elements(elem, owned, lists, out)?;
                }
                Ok(())
            }
            _ => {
                out.push(self.ffi_type(t, owned, lists)?);
                Ok(())
            }
        }
    }
}

/// A prepared `ffi_cif` with everything it points at.
pub struct PreparedCif {
    ffi: Arc<Libffi>,
    cif: Box<FfiCif>,
    _args: Box<[*mut FfiType]>,
    _owned: Vec<Box<FfiType>>,
    _lists: Vec<Vec<*mut FfiType>>,
}

impl PreparedCif {
    /// `ffi_call(&cif, target, ret, args)`.
    ///
    /// # Safety
    /// As for `ffi_call`: `target` has the cif's signature, `args[i]` points
    /// at argument i, `ret` holds at least max(8, result size) bytes.
    pub unsafe fn call(&self, target: *const c_void, args: *const *const c_void, ret: *mut c_void) {
        let cif = &*self.cif as *const FfiCif as *mut FfiCif;
        // SAFETY: forwarded to the caller; libffi does not modify the cif
        // during a call.
        unsafe { (self.ffi.call)(cif, target, ret, args) }
    }
}

/// A libffi closure: `code` calls `handler(cif, ret, args, user_data)`.
pub struct FfiClosure<'a> {
    cif: &'a PreparedCif,
    mem: *mut c_void,
    code: *mut c_void,
}

impl PreparedCif {
    /// `ffi_closure_alloc` + `ffi_prep_closure_loc`.
    ///
    /// # Safety
    /// `handler` must implement the cif's signature; `user_data` must stay
    /// valid while the closure lives.
    pub unsafe fn closure(
        &self,
        handler: FfiHandler,
        user_data: *mut c_void,
    ) -> Option<FfiClosure<'_>> {
        let mut code = std::ptr::null_mut();
        // SAFETY: libffi's documented closure protocol; the cif outlives the
        // closure (borrowed by it).
        unsafe {
            let mem = (self.ffi.closure_alloc)(FFI_CLOSURE_SIZE, &mut code);
            if mem.is_null() {
                return None;
            }
            let cif = &*self.cif as *const FfiCif as *mut FfiCif;
            if (self.ffi.prep_closure_loc)(mem, cif, handler, user_data, code) != 0 {
                (self.ffi.closure_free)(mem);
                return None;
            }
            Some(FfiClosure {
                cif: self,
                mem,
                code,
            })
        }
    }
}

impl FfiClosure<'_> {
    /// The executable entry.
    pub fn code(&self) -> *const c_void {
        self.code
    }
}

impl Drop for FfiClosure<'_> {
    fn drop(&mut self) {
        // SAFETY: mem came from ffi_closure_alloc and is freed once.
        unsafe { (self.cif.ffi.closure_free)(self.mem) }
    }
}
