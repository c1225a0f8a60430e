//! Reverse closures: a handler plus a context become a plain C function
//! pointer with a signature's ABI.
//!
//! ```no_run
//! use jitffi::closure::Closure;
//! use jitffi::types::{Abi, Scalar, Signature, Type};
//! # fn main() -> Result<(), jitffi::Error> {
//! let int = Type::Scalar(Scalar::I32);
//! let sig = Signature::new(Abi::SysV64, int.clone(), vec![int.clone(), int]);
//! let add = Closure::new(&sig, |args, ret| unsafe {
//!     let (a, b) = (*(args[0] as *const i32), *(args[1] as *const i32));
//!     *(ret as *mut i32) = a + b;
//! })?;
//! let f: extern "C" fn(i32, i32) -> i32 = unsafe { std::mem::transmute(add.code_ptr()) };
//! assert_eq!(f(2, 3), 5);
//! # Ok(()) }
//! ```
//!
//! How it works (DESIGN.md "Executable memory"): the signature's closure
//! *body* is compiled once per signature and cached; each closure is a
//! 32-byte stub in a shared stub page that loads the address of its data
//! slot (body, handler, ctx) and jumps to the body. The body spills the
//! caller's arguments into `void *args[n]` (argument *i* as its own C type,
//! the same representation a forward trampoline reads) and calls
//! `handler(ctx, args, ret)`; then it loads the result from `ret` into the
//! return registers. For a result returned through a hidden pointer, `ret`
//! *is* that pointer (the caller's buffer, exactly `sizeof` the result);
//! otherwise it is a local buffer of `sig.ret_buffer_size()` bytes. Handlers
//! should write the result as its C type (`sizeof` bytes).

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use crate::exec::stubs::{self, StubSlot};
use crate::exec::{Code, CodeArena};
use crate::types::{Isa, Signature, Type};
use crate::Error;

/// The raw handler type: `handler(ctx, args, ret)`, host C convention.
pub type RawHandler = extern "C" fn(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void);

/// What a closure made by [`Closure::new`] does when its Rust handler panics
/// (a panic must never unwind into the C caller's frames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PanicPolicy {
    /// Print the panic message to stderr and abort the process.
    #[default]
    Abort,
    /// Write a zeroed result (`sizeof` the result type) and return to the C
    /// caller; the panic payload is kept for [`Closure::take_panic`].
    ZeroResult,
}

/// A C function pointer backed by a Rust handler. Dropping it frees the
/// function pointer: calling it afterwards reaches a trap that prints
/// `jitffi: called a freed closure` and aborts (until the slot is reused by
/// another closure).
pub struct Closure {
    /// Declared first: dropped (slot reset to the trap) before the state.
    slot: StubSlot,
    /// Owns the state of a closure made from a Rust handler.
    state: Option<Arc<dyn Owned>>,
}

// SAFETY: the slot is Send + Sync; the owned state is `Send + Sync` by the
// `Owned` bound. For `new_raw` closures the caller promised ctx validity for
// calls from any thread (the C pointer can be called from anywhere).
unsafe impl Send for Closure {}
// SAFETY: as above; `&Closure` only exposes the code pointer and the panic
// slot, which is behind a Mutex.
unsafe impl Sync for Closure {}

impl std::fmt::Debug for Closure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Closure")
            .field("code", &self.code_ptr())
            .finish()
    }
}

/// Type-erased access to a Rust handler's state.
trait Owned: Send + Sync {
    fn shared(&self) -> &Shared;
}

/// The non-generic part of a Rust handler's state.
struct Shared {
    nargs: usize,
    ret_size: usize,
    policy: PanicPolicy,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

struct State<F> {
    shared: Shared,
    f: F,
}

impl<F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static> Owned for State<F> {
    fn shared(&self) -> &Shared {
        &self.shared
    }
}

/// The handler of closures made from Rust functions: `ctx` is a `State<F>`.
extern "C" fn rust_handler<F>(ctx: *mut c_void, args: *const *mut c_void, ret: *mut c_void)
where
    F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
{
    // SAFETY: ctx is the `State<F>` the closure owns (kept alive by the
    // closure's Arc until after its slot is freed).
    let state = unsafe { &*(ctx as *const State<F>) };
    let sh = &state.shared;
    let argv: &[*mut c_void] = if sh.nargs == 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: the closure body passes an array of exactly one pointer per
        // argument of the signature, which has `nargs` arguments.
        unsafe { std::slice::from_raw_parts(args, sh.nargs) }
    };
    let result = catch_unwind(AssertUnwindSafe(|| (state.f)(argv, ret)));
    if let Err(payload) = result {
        match sh.policy {
            PanicPolicy::Abort => {
                eprintln!(
                    "jitffi: closure handler panicked ({}); aborting",
                    panic_message(&*payload)
                );
                std::process::abort();
            }
            PanicPolicy::ZeroResult => {
                if sh.ret_size > 0 && !ret.is_null() {
                    // SAFETY: ret holds at least sizeof(result) bytes (a
                    // local buffer of ret_buffer_size, or the caller's
                    // result object for a hidden result pointer).
                    unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, sh.ret_size) };
                }
                let mut slot = sh.panic.lock().unwrap_or_else(|p| p.into_inner());
                *slot = Some(payload);
            }
        }
    }
}

fn panic_message(p: &(dyn Any + Send)) -> &str {
    if let Some(s) = p.downcast_ref::<&str>() {
        s
    } else if let Some(s) = p.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

impl Closure {
    /// A closure calling `f(args, ret)`: `args[i]` points at argument *i* as
    /// its C type, `ret` at the result buffer (write the result there as its
    /// C type; see the module docs). Panics abort ([`PanicPolicy::Abort`]).
    pub fn new<F>(sig: &Signature, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        Closure::with_policy(sig, PanicPolicy::Abort, f)
    }

    /// Like [`Closure::new`], with a chosen [`PanicPolicy`].
    pub fn with_policy<F>(sig: &Signature, policy: PanicPolicy, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        let state = Arc::new(State {
            shared: Shared {
                nargs: sig.args.len(),
                ret_size: sig.ret.size() as usize,
                policy,
                panic: Mutex::new(None),
            },
            f,
        });
        let ctx = Arc::as_ptr(&state) as *mut c_void;
        // SAFETY: ctx points at the State<F> that rust_handler::<F> expects,
        // kept alive by `state` inside the closure until after the slot is
        // freed (field order in Closure).
        let mut c = unsafe { Closure::new_raw(sig, rust_handler::<F>, ctx)? };
        c.state = Some(state);
        Ok(c)
    }

    /// A closure calling `handler(ctx, args, ret)` with the host's C
    /// convention.
    ///
    /// # Safety
    ///
    /// `ctx` must be valid for `handler` for as long as the closure lives,
    /// on any thread that calls the closure's code; `handler` must not
    /// unwind; and it must write the result (as its C type) to `ret` when
    /// the signature has one.
    pub unsafe fn new_raw(
        sig: &Signature,
        handler: RawHandler,
        ctx: *mut c_void,
    ) -> Result<Closure, Error> {
        let body = body_for(sig)?;
        let slot = stubs::alloc_slot()?;
        // SAFETY: body is a closure body for this slot layout; the caller
        // guarantees handler and ctx for the closure's lifetime, and the slot
        // is reset to the trap when the closure is dropped.
        unsafe { slot.publish(body, handler, ctx, 0) };
        Ok(Closure { slot, state: None })
    }

    /// The C function pointer (cast it to the signature's function type).
    pub fn code_ptr(&self) -> *const c_void {
        self.slot.code_ptr().cast()
    }

    /// Takes the payload of the last panic caught under
    /// [`PanicPolicy::ZeroResult`], if any.
    pub fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        let st = self.state.as_ref()?;
        let mut slot = st.shared().panic.lock().unwrap_or_else(|p| p.into_inner());
        slot.take()
    }
}

/// The cached closure body for a signature (compiled on first use).
fn body_for(sig: &Signature) -> Result<*const u8, Error> {
    if !sig.abi.executable_here() {
        return Err(Error::NotExecutable(sig.abi));
    }
    static BODIES: OnceLock<Mutex<HashMap<Signature, Code>>> = OnceLock::new();
    let map = BODIES.get_or_init(|| Mutex::new(HashMap::new()));
    // The body depends on the types and the ABI only, not on the name: the
    // cache is keyed by the signature without its name.
    let unnamed;
    let key = if sig.name.is_none() {
        sig
    } else {
        let mut k = sig.clone();
        k.name = None;
        unnamed = k;
        &unnamed
    };
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(code) = map.get(key) {
        return Ok(code.as_ptr());
    }
    let bytes = emit_body(key)?;
    let code = CodeArena::global().install(&bytes)?;
    let ptr = code.as_ptr();
    crate::perfmap::record(crate::perfmap::Kind::Closure, key, ptr, code.len());
    map.insert(key.clone(), code);
    Ok(ptr)
}

/// Plans and emits the closure body for `sig` (any host; nothing executes).
pub fn emit_body(sig: &Signature) -> Result<Vec<u8>, Error> {
    if sig.args.iter().any(|t| matches!(t, Type::Void)) {
        return Err(Error::Argument("an argument has type void".into()));
    }
    let plan = crate::abi::plan(sig)?;
    plan.validate(sig)?;
    match sig.abi.isa() {
        Isa::X86_64 => Ok(crate::arch::x86_64::closure::emit_closure_body(sig, &plan)?),
        Isa::Aarch64 => Ok(crate::arch::aarch64::closure::emit_closure_body(
            sig, &plan,
        )?),
    }
}
