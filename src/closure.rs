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
//!
//! Creating many closures of one signature: [`Closure::prepare`] resolves
//! the body once into a [`ClosureType`], whose `create` / `create_raw` only
//! pop a slot from a lock-free free list and write it. A closure costs its
//! 32-byte stub and 32-byte slot, plus, for a Rust handler, a box holding
//! the Rust function itself (nothing when it captures nothing); the body
//! hands the slot's spare word (the argument count, for Rust handlers) to
//! the handler as a hidden fourth argument.

use std::any::Any;
use std::collections::HashMap;
use std::ffi::c_void;
use std::hash::{Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::sync::{Mutex, OnceLock, RwLock};

use crate::exec::stubs::{self, StubSlot};
use crate::exec::Code;
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
///
/// The handle is three words: the slot, and for a closure made from a Rust
/// function its boxed state (the function itself; nothing more under
/// [`PanicPolicy::Abort`]).
pub struct Closure {
    /// Declared first: dropped (slot reset to the trap) before the state.
    slot: StubSlot,
    /// Owns the state of a closure made from a Rust handler.
    state: Option<OwnedBox>,
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
    fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        None
    }
}

/// A `Box<dyn Owned>` held as a raw pointer: the handler reads the state
/// through `ctx` while the closure lives, so the box is not moved around as
/// a `Box` (whose uniqueness would then be asserted on every move).
struct OwnedBox(NonNull<dyn Owned>);

impl OwnedBox {
    fn new<T: Owned + 'static>(v: T) -> (OwnedBox, *mut c_void) {
        let raw: *mut T = Box::into_raw(Box::new(v));
        // SAFETY: Box::into_raw never returns null.
        let nn = unsafe { NonNull::new_unchecked(raw as *mut dyn Owned) };
        (OwnedBox(nn), raw.cast())
    }

    fn get(&self) -> &dyn Owned {
        // SAFETY: the box lives until this OwnedBox is dropped.
        unsafe { self.0.as_ref() }
    }
}

impl Drop for OwnedBox {
    fn drop(&mut self) {
        // SAFETY: made by Box::into_raw in OwnedBox::new, freed once here.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// The state of a closure under [`PanicPolicy::Abort`]: the function alone
/// (a zero-sized function allocates nothing).
#[repr(transparent)]
struct AbortState<F>(F);

impl<F: Send + Sync> Owned for AbortState<F> {}

/// The state of a closure under [`PanicPolicy::ZeroResult`].
struct ZeroState<F> {
    ret_size: usize,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
    f: F,
}

impl<F: Send + Sync> Owned for ZeroState<F> {
    fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.panic.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// The argument array as a slice of `nargs` pointers.
///
/// # Safety
///
/// `args` must point at `nargs` pointers (or `nargs` must be 0).
#[inline(always)]
unsafe fn argv<'a>(args: *const *mut c_void, nargs: usize) -> &'a [*mut c_void] {
    if nargs == 0 || args.is_null() {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(args, nargs) }
    }
}

/// The handler of [`PanicPolicy::Abort`] closures: `ctx` is an
/// `AbortState<F>`, and the fourth argument (the slot's spare word, passed
/// by the body) is the signature's argument count.
extern "C" fn rust_handler_abort<F>(
    ctx: *mut c_void,
    args: *const *mut c_void,
    ret: *mut c_void,
    nargs: usize,
) where
    F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
{
    // SAFETY: ctx is the `AbortState<F>` the closure owns (freed only after
    // its slot), and the body passes one pointer per argument, `nargs` of
    // them (the slot's spare word was set to the signature's count).
    let (state, argv) = unsafe { (&*(ctx as *const AbortState<F>), argv(args, nargs)) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (state.0)(argv, ret))) {
        abort_on_panic(&*payload);
    }
}

#[cold]
#[inline(never)]
fn abort_on_panic(payload: &(dyn Any + Send)) -> ! {
    eprintln!(
        "jitffi: closure handler panicked ({}); aborting",
        panic_message(payload)
    );
    std::process::abort();
}

/// The handler of [`PanicPolicy::ZeroResult`] closures: `ctx` is a
/// `ZeroState<F>`; the fourth argument is the argument count.
extern "C" fn rust_handler_zero<F>(
    ctx: *mut c_void,
    args: *const *mut c_void,
    ret: *mut c_void,
    nargs: usize,
) where
    F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
{
    // SAFETY: as in rust_handler_abort, with a `ZeroState<F>`.
    let (state, argv) = unsafe { (&*(ctx as *const ZeroState<F>), argv(args, nargs)) };
    if let Err(payload) = catch_unwind(AssertUnwindSafe(|| (state.f)(argv, ret))) {
        if state.ret_size > 0 && !ret.is_null() {
            // SAFETY: ret holds at least sizeof(result) bytes (a local buffer
            // of ret_buffer_size, or the caller's result object for a hidden
            // result pointer).
            unsafe { std::ptr::write_bytes(ret.cast::<u8>(), 0, state.ret_size) };
        }
        let mut slot = state.panic.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(payload);
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

/// A signature's closure body, resolved once: creating closures from it
/// only takes a slot and writes it (no signature hashing, no lock).
///
/// ```no_run
/// use jitffi::closure::Closure;
/// use jitffi::types::{Abi, Scalar, Signature, Type};
/// # fn main() -> Result<(), jitffi::Error> {
/// let int = Type::Scalar(Scalar::I32);
/// let ty = Closure::prepare(&Signature::new(Abi::SysV64, int.clone(), vec![int]))?;
/// let add1 = ty.create(|args, ret| unsafe { *(ret as *mut i32) = *(args[0] as *const i32) + 1 })?;
/// let f: extern "C" fn(i32) -> i32 = unsafe { std::mem::transmute(add1.code_ptr()) };
/// assert_eq!(f(41), 42);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClosureType {
    body: *const u8,
    nargs: usize,
    ret_size: usize,
}

// SAFETY: the body is immutable code that lives for the rest of the process.
unsafe impl Send for ClosureType {}
// SAFETY: as above.
unsafe impl Sync for ClosureType {}

impl ClosureType {
    /// Resolves (compiling on first use, then from the cache) the closure
    /// body of `sig`.
    pub fn new(sig: &Signature) -> Result<ClosureType, Error> {
        Ok(ClosureType {
            body: body_for(sig)?,
            nargs: sig.args.len(),
            ret_size: sig.ret.size() as usize,
        })
    }

    /// A closure calling `f(args, ret)` (see [`Closure::new`]); panics abort.
    #[inline]
    pub fn create<F>(&self, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        self.create_with_policy(PanicPolicy::Abort, f)
    }

    /// Like [`ClosureType::create`], with a chosen [`PanicPolicy`].
    #[inline]
    pub fn create_with_policy<F>(&self, policy: PanicPolicy, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        // Take the slot first: on failure nothing was allocated.
        let slot = stubs::alloc_slot()?;
        let (state, ctx, handler) = match policy {
            PanicPolicy::Abort => {
                let (b, ctx) = OwnedBox::new(AbortState(f));
                (b, ctx, rust_handler_abort::<F> as *const () as usize)
            }
            PanicPolicy::ZeroResult => {
                let (b, ctx) = OwnedBox::new(ZeroState {
                    ret_size: self.ret_size,
                    panic: Mutex::new(None),
                    f,
                });
                (b, ctx, rust_handler_zero::<F> as *const () as usize)
            }
        };
        // SAFETY: the body is this signature's; the handler matches ctx's
        // type and reads the argument count from the spare word; the state
        // outlives the published slot (Closure drops the slot first).
        unsafe { slot.publish(self.body, handler, ctx, self.nargs) };
        Ok(Closure {
            slot,
            state: Some(state),
        })
    }

    /// A closure calling `handler(ctx, args, ret)` (see
    /// [`Closure::new_raw`]).
    ///
    /// # Safety
    ///
    /// As for [`Closure::new_raw`].
    #[inline]
    pub unsafe fn create_raw(
        &self,
        handler: RawHandler,
        ctx: *mut c_void,
    ) -> Result<Closure, Error> {
        let slot = stubs::alloc_slot()?;
        // SAFETY: body is a closure body for this slot layout; the caller
        // guarantees handler and ctx for the closure's lifetime, and the slot
        // is reset to the trap when the closure is dropped.
        unsafe { slot.publish(self.body, handler as usize, ctx, 0) };
        Ok(Closure { slot, state: None })
    }
}

impl Closure {
    /// Resolves `sig`'s closure body once, for creating many closures of
    /// that signature cheaply (see [`ClosureType`]).
    pub fn prepare(sig: &Signature) -> Result<ClosureType, Error> {
        ClosureType::new(sig)
    }

    /// A closure calling `f(args, ret)`: `args[i]` points at argument *i* as
    /// its C type, `ret` at the result buffer (write the result there as its
    /// C type; see the module docs). Panics abort ([`PanicPolicy::Abort`]).
    pub fn new<F>(sig: &Signature, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        ClosureType::new(sig)?.create(f)
    }

    /// Like [`Closure::new`], with a chosen [`PanicPolicy`].
    pub fn with_policy<F>(sig: &Signature, policy: PanicPolicy, f: F) -> Result<Closure, Error>
    where
        F: Fn(&[*mut c_void], *mut c_void) + Send + Sync + 'static,
    {
        ClosureType::new(sig)?.create_with_policy(policy, f)
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
        // SAFETY: the caller's promise, passed on.
        unsafe { ClosureType::new(sig)?.create_raw(handler, ctx) }
    }

    /// The C function pointer (cast it to the signature's function type).
    #[inline]
    pub fn code_ptr(&self) -> *const c_void {
        self.slot.code_ptr().cast()
    }

    /// Takes the payload of the last panic caught under
    /// [`PanicPolicy::ZeroResult`], if any.
    pub fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        self.state.as_ref()?.get().take_panic()
    }
}

/// The cached closure body for a signature (compiled on first use).
///
/// The body depends on the types and the ABI only, not on the name: the
/// cache is keyed by the signature without its name. Buckets are found by
/// a cheap multiplicative hash (the keys are our own signatures, not
/// adversarial input), and lookups share a read lock.
fn body_for(sig: &Signature) -> Result<*const u8, Error> {
    if !sig.abi.executable_here() {
        return Err(Error::NotExecutable(sig.abi));
    }
    type Bodies = HashMap<u64, Vec<(Signature, InstalledBody)>>;
    static BODIES: OnceLock<RwLock<Bodies>> = OnceLock::new();
    let map = BODIES.get_or_init(|| RwLock::new(HashMap::new()));
    let h = body_key_hash(sig);
    let find = |m: &Bodies| {
        m.get(&h)?
            .iter()
            .find(|(k, _)| same_body(k, sig))
            .map(|(_, c)| c.as_ptr())
    };
    if let Some(p) = find(&map.read().unwrap_or_else(|p| p.into_inner())) {
        return Ok(p);
    }
    let mut m = map.write().unwrap_or_else(|p| p.into_inner());
    if let Some(p) = find(&m) {
        return Ok(p);
    }
    let mut key = sig.clone();
    key.name = None;
    let body = install_body(&key)?;
    let ptr = body.as_ptr();
    m.entry(h).or_default().push((key, body));
    Ok(ptr)
}

/// A closure body installed in executable memory, with its unwind tables
/// registered (x86-64 and AArch64 Linux) for as long as it lives.
pub struct InstalledBody {
    /// Dropped (deregistered) before `code`.
    _unwind: crate::unwind::Registration,
    code: Code,
}

impl InstalledBody {
    /// The body's entry address.
    pub fn as_ptr(&self) -> *const u8 {
        self.code.as_ptr()
    }

    /// The installed code.
    pub fn code(&self) -> &Code {
        &self.code
    }
}

/// Plans, emits and installs the closure body for `sig` into the global
/// arena, and registers its unwind tables (so C++ exceptions and
/// backtraces pass through it).
pub fn install_body(sig: &Signature) -> Result<InstalledBody, Error> {
    let (bytes, rows) = emit_body_with_unwind(sig)?;
    // SAFETY: the rows are the emitter's account of exactly these bytes;
    // the registration is dropped before `code` (field order below).
    let (code, unwind) = unsafe {
        crate::unwind::install_described(crate::perfmap::Kind::Closure, sig, &bytes, &rows)
    }?;
    Ok(InstalledBody {
        _unwind: unwind,
        code,
    })
}

/// Whether two signatures have the same closure body (all but the name).
fn same_body(a: &Signature, b: &Signature) -> bool {
    a.abi == b.abi
        && a.fixed_args == b.fixed_args
        && a.variadic == b.variadic
        && a.ret == b.ret
        && a.args == b.args
}

/// A hash of everything [`same_body`] compares.
fn body_key_hash(sig: &Signature) -> u64 {
    let mut h = FastHasher(0);
    sig.abi.hash(&mut h);
    sig.fixed_args.hash(&mut h);
    sig.variadic.hash(&mut h);
    sig.ret.hash(&mut h);
    sig.args.hash(&mut h);
    h.0
}

/// A multiply-rotate hasher (the Fx scheme): a few cycles per word.
struct FastHasher(u64);

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.write_u64(u64::from_le_bytes(w));
        }
        for &b in chunks.remainder() {
            self.write_u64(u64::from(b));
        }
    }
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    #[inline]
    fn write_u8(&mut self, x: u8) {
        self.write_u64(u64::from(x));
    }
    #[inline]
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
    #[inline]
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Plans and emits the closure body for `sig` (any host; nothing executes).
pub fn emit_body(sig: &Signature) -> Result<Vec<u8>, Error> {
    emit_body_with_unwind(sig).map(|(bytes, _)| bytes)
}

/// [`emit_body`], with the frame changes for the unwind tables (both
/// emitters report them, for code of either instruction set on any host;
/// only host code is ever registered).
fn emit_body_with_unwind(
    sig: &Signature,
) -> Result<(Vec<u8>, Vec<crate::unwind::UnwindRow>), Error> {
    if sig.args.iter().any(|t| matches!(t, Type::Void)) {
        return Err(Error::Argument("an argument has type void".into()));
    }
    let plan = crate::abi::plan(sig)?;
    plan.validate(sig)?;
    Ok(match sig.abi.isa() {
        Isa::X86_64 => crate::arch::x86_64::closure::emit_closure_body_with_unwind(sig, &plan)?,
        Isa::Aarch64 => crate::arch::aarch64::closure::emit_closure_body_with_unwind(sig, &plan)?,
    })
}
