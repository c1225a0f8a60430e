//! Random C signatures for the differential tests, with their own layouts
//! and argument values, independent of jitffi.
//!
//! A [`GenSig`] is generated from a [`Source`] of decisions: a seeded
//! splitmix64 PRNG ([`SplitMix`], the test) or fuzz bytes ([`Bytes`], the
//! fuzz target). It knows how to spell itself as C declaration text for
//! jitffi's parser ([`GenSig::decl`]) and as C for gcc (`cgen.rs`), and it
//! computes its layouts with the C rules itself (cross-checked against gcc
//! by `_Static_assert`s in the generated C), so the expected bytes never
//! come from the code under test.
//!
//! Values: every scalar *leaf* of an argument gets a value derived from a
//! 64-bit hash `h` by [`leaf_bytes`]; the generated C computes the very same
//! value from the same `h` with the `dv_*` helpers in [`C_PRELUDE`]. A union
//! carries a value in its largest member only (the first on ties); padding
//! bytes are never compared. Return values are a hash-fill of the result
//! type, seeded by the FNV-1a hash of all argument leaf bytes ([`fnv1a`]),
//! so a result is right only if every argument arrived.

#![allow(dead_code)]

use jitffi::types::LongDouble;
use jitffi::Abi;

// ------------------------------------------------------------------ sources

/// A stream of random decisions.
pub trait Source {
    /// A number in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: u32) -> u32;
    /// A 64-bit value (for value seeds).
    fn word(&mut self) -> u64;
    /// True with probability about `num/den`.
    fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den) < num
    }
}

/// The splitmix64 finaliser (Steele, Lea, Flood: "Fast splittable
/// pseudorandom number generators", OOPSLA 2014); also the C `dmix`.
pub fn dmix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64: a tiny seeded PRNG.
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        dmix(self.0)
    }
}

impl Source for SplitMix {
    fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as u32
        }
    }
    fn word(&mut self) -> u64 {
        self.next_u64()
    }
}

/// Fuzz bytes as decisions: one byte per decision, zeros after the end.
pub struct Bytes<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Bytes { data, pos: 0 }
    }
    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }
}

impl Source for Bytes<'_> {
    fn below(&mut self, n: u32) -> u32 {
        if n == 0 {
            0
        } else if n <= 256 {
            self.byte() as u32 % n
        } else {
            u16::from_le_bytes([self.byte(), self.byte()]) as u32 % n
        }
    }
    fn word(&mut self) -> u64 {
        let mut w = 0u64;
        for i in 0..8 {
            w |= (self.byte() as u64) << (8 * i);
        }
        w
    }
}

// -------------------------------------------------------------------- types

/// A scalar C type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Prim {
    Char,
    SChar,
    UChar,
    Short,
    UShort,
    Int,
    UInt,
    Long,
    ULong,
    LLong,
    ULLong,
    Bool,
    Float,
    Double,
    LDouble,
    I128,
    U128,
    VoidPtr,
    CharPtr,
    DoublePtr,
    CFloat,
    CDouble,
}

use Prim::*;

pub const ALL_PRIMS: [Prim; 22] = [
    Char, SChar, UChar, Short, UShort, Int, UInt, Long, ULong, LLong, ULLong, Bool, Float, Double,
    LDouble, I128, U128, VoidPtr, CharPtr, DoublePtr, CFloat, CDouble,
];

/// Types allowed in a variadic tail (already promoted).
pub const VARIADIC_PRIMS: [Prim; 7] = [Int, UInt, Long, LLong, Double, VoidPtr, CharPtr];

/// AAPCS64's variadic tail: also `long double` (quad, in a V register) and
/// `__int128` (an even x register pair), which Linux passes by the normal
/// rules (AAPCS64 §6.8.2 "Parameter passing rules": variadic arguments
/// follow stage C unchanged; Apple differs).
pub const VARIADIC_PRIMS_AAPCS64: [Prim; 9] = [
    Int, UInt, Long, LLong, Double, VoidPtr, CharPtr, LDouble, I128,
];

/// How a leaf's value is made from its hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValKind {
    Int {
        bytes: u32,
        signed: bool,
    },
    Bool,
    F32,
    F64,
    F80,
    /// IEEE 754 binary128 (AAPCS64's `long double`).
    F128,
    C32,
    C64,
}

impl Prim {
    /// `sizeof` under the ABI's data model (Win64: `long` is 4 bytes).
    pub fn size(self, abi: Abi) -> u32 {
        match self {
            Char | SChar | UChar | Bool => 1,
            Short | UShort => 2,
            Int | UInt | Float => 4,
            Long | ULong => {
                if abi == Abi::Win64 {
                    4
                } else {
                    8
                }
            }
            LLong | ULLong | Double | VoidPtr | CharPtr | DoublePtr | CFloat => 8,
            LDouble | I128 | U128 | CDouble => 16,
        }
    }

    /// `_Alignof`.
    pub fn align(self, abi: Abi) -> u32 {
        match self {
            CFloat => 4,
            CDouble => 8,
            p => p.size(abi),
        }
    }

    /// The spelling in jitffi's declaration text (for the ABI's data model).
    pub fn jit_name(self) -> &'static str {
        match self {
            Char => "char",
            SChar => "signed char",
            UChar => "unsigned char",
            Short => "short",
            UShort => "unsigned short",
            Int => "int",
            UInt => "unsigned int",
            Long => "long",
            ULong => "unsigned long",
            LLong => "long long",
            ULLong => "unsigned long long",
            Bool => "_Bool",
            Float => "float",
            Double => "double",
            LDouble => "long double",
            I128 => "__int128",
            U128 => "unsigned __int128",
            VoidPtr => "void *",
            CharPtr => "char *",
            DoublePtr => "const double *",
            CFloat => "_Complex float",
            CDouble => "_Complex double",
        }
    }

    /// The spelling for gcc on x86-64 Linux: Win64's 32-bit `long` is
    /// gcc's `int` there (gcc keeps LP64 even in `ms_abi` functions).
    pub fn c_name(self, abi: Abi) -> &'static str {
        match (self, abi) {
            (Long, Abi::Win64) => "int",
            (ULong, Abi::Win64) => "unsigned int",
            (p, _) => p.jit_name(),
        }
    }

    pub fn val_kind(self, abi: Abi) -> ValKind {
        match self {
            Bool => ValKind::Bool,
            Float => ValKind::F32,
            Double => ValKind::F64,
            LDouble if abi.data_model().long_double == LongDouble::Quad => ValKind::F128,
            LDouble => ValKind::F80,
            CFloat => ValKind::C32,
            CDouble => ValKind::C64,
            // Plain char: signed on x86-64, unsigned on AAPCS64 (§10.1.1).
            Char => ValKind::Int {
                bytes: 1,
                signed: abi.data_model().char_signed,
            },
            SChar | Short | Int | Long | LLong | I128 => ValKind::Int {
                bytes: self.size(abi),
                signed: true,
            },
            _ => ValKind::Int {
                bytes: self.size(abi),
                signed: false,
            },
        }
    }

    /// Bytes of the leaf that carry its value (x87 long double: 10 of 16;
    /// binary128: all 16).
    pub fn dump_size(self, abi: Abi) -> u32 {
        match self {
            LDouble if abi.data_model().long_double == LongDouble::X87 => 10,
            p => p.size(abi),
        }
    }
}

/// A C type built from [`Prim`]s, records and arrays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Ty {
    P(Prim),
    /// Index into [`GenSig::recs`].
    Rec(usize),
    Arr(Box<Ty>, u32),
}

/// A struct or union definition with its layout.
#[derive(Clone, Debug)]
pub struct Rec {
    pub union: bool,
    pub packed: bool,
    pub fields: Vec<Ty>,
    pub offsets: Vec<u32>,
    pub size: u32,
    pub align: u32,
}

/// One scalar leaf of a value: where it is and how to reach it in C.
#[derive(Clone, Debug)]
pub struct Leaf {
    pub offset: u32,
    pub prim: Prim,
    /// C lvalue suffix, e.g. `.f0[2].f1`.
    pub path: String,
}

/// What the generator may produce.
#[derive(Clone, Copy, Debug)]
pub struct Opts {
    pub abi: Abi,
    pub unions: bool,
    pub packed: bool,
    pub int128: bool,
    pub long_double: bool,
    pub complex: bool,
    pub max_args: u32,
}

impl Opts {
    /// Everything gcc can check for the ABI.
    pub fn gcc(abi: Abi) -> Opts {
        Opts {
            abi,
            unions: true,
            packed: true,
            int128: abi != Abi::Win64,
            long_double: abi != Abi::Win64,
            complex: true,
            max_args: 16,
        }
    }

    /// What libffi can describe: no unions, no `__int128`, no packed
    /// records.
    pub fn libffi(abi: Abi) -> Opts {
        Opts {
            unions: false,
            packed: false,
            int128: false,
            ..Opts::gcc(abi)
        }
    }

    fn allows(&self, p: Prim) -> bool {
        match p {
            I128 | U128 => self.int128,
            LDouble => self.long_double,
            CFloat | CDouble => self.complex,
            _ => true,
        }
    }
}

/// A generated signature.
#[derive(Clone, Debug)]
pub struct GenSig {
    pub abi: Abi,
    /// Prefix of every name (unique within a C batch).
    pub prefix: String,
    pub recs: Vec<Rec>,
    /// `None` for `void`.
    pub ret: Option<Ty>,
    /// Fixed arguments, then the variadic tail.
    pub args: Vec<Ty>,
    pub nfixed: usize,
    pub variadic: bool,
    /// Seed of the argument values.
    pub value_seed: u64,
}

const MAX_DEPTH: u32 = 3;

struct Gen<'s, S: Source> {
    src: &'s mut S,
    opts: Opts,
    recs: Vec<Rec>,
}

impl<S: Source> Gen<'_, S> {
    fn prim(&mut self) -> Prim {
        loop {
            let p = ALL_PRIMS[self.src.below(ALL_PRIMS.len() as u32) as usize];
            if self.opts.allows(p) {
                return p;
            }
        }
    }

    /// A record nested at `depth` (1 = an argument's own record).
    fn record(&mut self, depth: u32) -> usize {
        let union = self.opts.unions && self.src.chance(1, 5);
        let packed = self.opts.packed && self.src.chance(1, 6);
        let max_fields = if depth == 1 { 5 } else { 3 };
        let n = 1 + self.src.below(max_fields);
        let mut fields = Vec::new();
        for _ in 0..n {
            fields.push(self.field(depth));
        }
        let abi = self.opts.abi;
        let mut offsets = Vec::new();
        let (mut off, mut size, mut align) = (0u32, 0u32, 1u32);
        for f in &fields {
            let a = if packed { 1 } else { self.align(f, abi) };
            let s = self.size(f, abi);
            let at = if union { 0 } else { off.div_ceil(a) * a };
            offsets.push(at);
            off = at + s;
            size = size.max(off);
            align = align.max(a);
        }
        let size = size.div_ceil(align) * align;
        self.recs.push(Rec {
            union,
            packed,
            fields,
            offsets,
            size,
            align,
        });
        self.recs.len() - 1
    }

    fn field(&mut self, depth: u32) -> Ty {
        let elem = if depth < MAX_DEPTH && self.src.chance(1, 4) {
            Ty::Rec(self.record(depth + 1))
        } else {
            Ty::P(self.prim())
        };
        if self.src.chance(1, 5) {
            Ty::Arr(Box::new(elem), 1 + self.src.below(4))
        } else {
            elem
        }
    }

    fn size(&self, t: &Ty, abi: Abi) -> u32 {
        match t {
            Ty::P(p) => p.size(abi),
            Ty::Rec(i) => self.recs[*i].size,
            Ty::Arr(e, n) => self.size(e, abi) * n,
        }
    }

    fn align(&self, t: &Ty, abi: Abi) -> u32 {
        match t {
            Ty::P(p) => p.align(abi),
            Ty::Rec(i) => self.recs[*i].align,
            Ty::Arr(e, _) => self.align(e, abi),
        }
    }

    /// An argument or result type: a scalar or a record.
    fn value_type(&mut self) -> Ty {
        if self.src.chance(3, 5) {
            Ty::P(self.prim())
        } else {
            Ty::Rec(self.record(1))
        }
    }
}

impl GenSig {
    /// Generates a signature; `prefix` names its types and functions.
    pub fn generate<S: Source>(src: &mut S, opts: Opts, prefix: &str) -> GenSig {
        let mut g = Gen {
            src,
            opts,
            recs: Vec::new(),
        };
        let nargs = g.src.below(opts.max_args + 1);
        let mut args = Vec::new();
        for _ in 0..nargs {
            args.push(g.value_type());
        }
        let ret = match g.src.below(20) {
            0..=2 => None,
            3..=11 => Some(Ty::P(g.prim())),
            _ => Some(Ty::Rec(g.record(1))),
        };
        let nfixed = args.len();
        let variadic = nfixed >= 1 && g.src.chance(1, 5);
        if variadic {
            let extra = 1 + g.src.below(4);
            for _ in 0..extra {
                let t = if g.src.chance(1, 4) {
                    let r = Ty::Rec(g.record(1));
                    // gcc 12's va_arg reads a 16-byte-aligned aggregate that
                    // arrived in GPRs with movdqa straight from the register
                    // save area, where it is only 8-byte aligned, and faults
                    // at any -O level (seed 103093: a union holding
                    // __int128 after one GPR argument). The oracle cannot
                    // take such tails on SysV, so none are generated.
                    if opts.abi == Abi::SysV64 && g.align(&r, opts.abi) >= 16 {
                        Ty::P(LLong)
                    } else {
                        r
                    }
                } else if opts.abi == Abi::Aapcs64 {
                    let n = VARIADIC_PRIMS_AAPCS64.len() as u32;
                    let p = VARIADIC_PRIMS_AAPCS64[g.src.below(n) as usize];
                    Ty::P(if opts.allows(p) { p } else { LLong })
                } else {
                    Ty::P(VARIADIC_PRIMS[g.src.below(VARIADIC_PRIMS.len() as u32) as usize])
                };
                args.push(t);
            }
        }
        let value_seed = g.src.word();
        GenSig {
            abi: opts.abi,
            prefix: prefix.to_string(),
            recs: g.recs,
            ret,
            args,
            nfixed,
            variadic,
            value_seed,
        }
    }

    pub fn size(&self, t: &Ty) -> u32 {
        match t {
            Ty::P(p) => p.size(self.abi),
            Ty::Rec(i) => self.recs[*i].size,
            Ty::Arr(e, n) => self.size(e) * n,
        }
    }

    pub fn align(&self, t: &Ty) -> u32 {
        match t {
            Ty::P(p) => p.align(self.abi),
            Ty::Rec(i) => self.recs[*i].align,
            Ty::Arr(e, _) => self.align(e),
        }
    }

    pub fn rec_name(&self, i: usize) -> String {
        format!("{}s{i}", self.prefix)
    }

    pub fn callee_name(&self) -> String {
        format!("{}callee", self.prefix)
    }

    pub fn caller_name(&self) -> String {
        format!("{}caller", self.prefix)
    }

    /// Whether any record is a union / packed, or any leaf a given prim.
    pub fn any_rec(&self, f: impl Fn(&Rec) -> bool) -> bool {
        self.recs.iter().any(f)
    }

    /// The spelling of a type (`jit`: jitffi's text; else gcc's).
    pub fn spell(&self, t: &Ty, jit: bool) -> String {
        match t {
            Ty::P(p) => {
                if jit {
                    p.jit_name().into()
                } else {
                    p.c_name(self.abi).into()
                }
            }
            Ty::Rec(i) => self.rec_name(*i),
            Ty::Arr(..) => unreachable!("arrays are spelled by declarators"),
        }
    }

    /// A member declaration `T name[n]...`.
    pub fn member(&self, t: &Ty, name: &str, jit: bool) -> String {
        let mut dims = String::new();
        let mut t = t;
        while let Ty::Arr(e, n) = t {
            dims.push_str(&format!("[{n}]"));
            t = e;
        }
        format!("{} {name}{dims}", self.spell(t, jit))
    }

    /// The typedefs, in dependency order (records are created children
    /// first, so index order is dependency order).
    pub fn typedefs(&self, jit: bool) -> String {
        let mut s = String::new();
        for (i, r) in self.recs.iter().enumerate() {
            let kw = if r.union { "union" } else { "struct" };
            let attr = if r.packed {
                " __attribute__((packed))"
            } else {
                ""
            };
            s.push_str(&format!("typedef {kw}{attr} {{"));
            for (k, f) in r.fields.iter().enumerate() {
                s.push(' ');
                s.push_str(&self.member(f, &format!("f{k}"), jit));
                s.push(';');
            }
            s.push_str(&format!(" }} {};\n", self.rec_name(i)));
        }
        s
    }

    pub fn ret_spelling(&self, jit: bool) -> String {
        match &self.ret {
            None => "void".into(),
            Some(t) => self.spell(t, jit),
        }
    }

    /// The declaration text jitffi parses (variadic types after `...`).
    pub fn decl(&self) -> String {
        let mut parts: Vec<String> = self.args[..self.nfixed]
            .iter()
            .map(|t| self.spell(t, true))
            .collect();
        if self.variadic {
            parts.push("...".into());
            parts.extend(self.args[self.nfixed..].iter().map(|t| self.spell(t, true)));
        }
        if parts.is_empty() {
            parts.push("void".into());
        }
        format!(
            "{}{} {}({})",
            self.typedefs(true),
            self.ret_spelling(true),
            self.callee_name(),
            parts.join(", ")
        )
    }

    /// The value-carrying leaves of a type, in walk order.
    pub fn leaves(&self, t: &Ty) -> Vec<Leaf> {
        let mut out = Vec::new();
        self.walk(t, 0, String::new(), &mut out);
        out
    }

    fn walk(&self, t: &Ty, base: u32, path: String, out: &mut Vec<Leaf>) {
        match t {
            Ty::P(p) => out.push(Leaf {
                offset: base,
                prim: *p,
                path,
            }),
            Ty::Arr(e, n) => {
                let step = self.size(e);
                for i in 0..*n {
                    self.walk(e, base + i * step, format!("{path}[{i}]"), out);
                }
            }
            Ty::Rec(i) => {
                let r = &self.recs[*i];
                if r.union {
                    // The largest member carries the value (first on ties).
                    let mut best = 0;
                    for k in 1..r.fields.len() {
                        if self.size(&r.fields[k]) > self.size(&r.fields[best]) {
                            best = k;
                        }
                    }
                    self.walk(&r.fields[best], base, format!("{path}.f{best}"), out);
                } else {
                    for (k, f) in r.fields.iter().enumerate() {
                        self.walk(f, base + r.offsets[k], format!("{path}.f{k}"), out);
                    }
                }
            }
        }
    }

    /// The value hash of leaf `leaf` of argument `arg`.
    pub fn arg_hash(&self, arg: usize, leaf: usize) -> u64 {
        dmix(self.value_seed ^ dmix(((arg as u64) << 32) | leaf as u64))
    }

    /// Argument `arg`'s bytes as its C type (padding zero) and its leaves'
    /// dump bytes.
    pub fn arg_image(&self, arg: usize) -> (Vec<u8>, Vec<u8>) {
        let t = &self.args[arg];
        let mut img = vec![0u8; self.size(t) as usize];
        let mut dump = Vec::new();
        for (k, l) in self.leaves(t).iter().enumerate() {
            let b = leaf_bytes(l.prim.val_kind(self.abi), self.arg_hash(arg, k));
            img[l.offset as usize..l.offset as usize + b.len()].copy_from_slice(&b);
            dump.extend_from_slice(&b[..l.prim.dump_size(self.abi) as usize]);
        }
        (img, dump)
    }

    /// Every argument's image, and the concatenated dump of all of them.
    pub fn expected_args(&self) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut imgs = Vec::new();
        let mut dump = Vec::new();
        for i in 0..self.args.len() {
            let (img, d) = self.arg_image(i);
            imgs.push(img);
            dump.extend_from_slice(&d);
        }
        (imgs, dump)
    }

    /// The result's image and dump bytes, given the argument dump.
    pub fn expected_ret(&self, arg_dump: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let Some(t) = &self.ret else {
            return (Vec::new(), Vec::new());
        };
        let h = fnv1a(arg_dump);
        let mut img = vec![0u8; self.size(t) as usize];
        let mut dump = Vec::new();
        for (k, l) in self.leaves(t).iter().enumerate() {
            let b = leaf_bytes(l.prim.val_kind(self.abi), ret_hash(h, k));
            img[l.offset as usize..l.offset as usize + b.len()].copy_from_slice(&b);
            dump.extend_from_slice(&b[..l.prim.dump_size(self.abi) as usize]);
        }
        (img, dump)
    }

    /// Reads the dump bytes of a value of type `t` from memory.
    ///
    /// # Safety
    ///
    /// `p` must be readable for `self.size(t)` bytes.
    pub unsafe fn dump_from(&self, t: &Ty, p: *const u8) -> Vec<u8> {
        let mut out = Vec::new();
        for l in self.leaves(t) {
            let n = l.prim.dump_size(self.abi) as usize;
            // SAFETY: the leaf lies inside the value (offset + size <= size(t)).
            out.extend_from_slice(unsafe {
                std::slice::from_raw_parts(p.add(l.offset as usize), n)
            });
        }
        out
    }

    /// The leaves of all arguments laid end to end, each argument's raw
    /// image `sizeof` bytes after the previous one: `(offset, dump size)`.
    pub fn arg_leaf_table(&self) -> Vec<(u32, u32)> {
        let mut out = Vec::new();
        let mut base = 0;
        for t in &self.args {
            for l in self.leaves(t) {
                out.push((base + l.offset, l.prim.dump_size(self.abi)));
            }
            base += self.size(t);
        }
        out
    }

    /// Total bytes of all arguments' raw images end to end.
    pub fn args_raw_size(&self) -> usize {
        self.args.iter().map(|t| self.size(t) as usize).sum()
    }

    /// The dump bytes (leaves only) of arguments' raw images laid end to
    /// end (as the C callee writes them); `None` if `raw` is too short.
    pub fn dump_of_raw_args(&self, raw: &[u8]) -> Option<Vec<u8>> {
        if raw.len() < self.args_raw_size() {
            return None;
        }
        let mut out = Vec::new();
        for (off, n) in self.arg_leaf_table() {
            out.extend_from_slice(&raw[off as usize..(off + n) as usize]);
        }
        Some(out)
    }

    /// Describes which leaf a byte offset into a dump belongs to.
    pub fn locate(&self, types: &[(String, &Ty)], mut at: usize) -> String {
        for (name, t) in types {
            for l in self.leaves(t) {
                let n = l.prim.dump_size(self.abi) as usize;
                if at < n {
                    return format!("{name}{} ({}, byte {at} of {n})", l.path, l.prim.jit_name());
                }
                at -= n;
            }
        }
        "past the end".into()
    }
}

/// The hash of result leaf `k` given the argument-dump hash (C: `dmix(h + k)`).
pub fn ret_hash(h: u64, k: usize) -> u64 {
    dmix(h.wrapping_add(k as u64))
}

/// FNV-1a, 64-bit (also `dfnv` in the C prelude).
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// `dv_f32` in C: a float with a 24-bit significand, exact everywhere.
pub fn dv_f32(h: u64) -> f32 {
    ((h as u32 as i32) >> 8) as f32 / 256.0
}

/// `dv_f64` in C: a double with a 53-bit significand.
pub fn dv_f64(h: u64) -> f64 {
    ((h as i64) >> 11) as f64 / 1_048_576.0
}

/// x87 80-bit extended encoding of an f64 (Intel SDM vol. 1 §4.2.2: 64-bit
/// significand with an explicit integer bit, 15-bit exponent biased by
/// 16383). Normal numbers and zeros only, which is all `dv_f64` makes.
pub fn f80(x: f64) -> [u8; 10] {
    let bits = x.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7ff) as u16;
    let mut out = [0u8; 10];
    if exp == 0 {
        // ±0 (dv_f64 makes no subnormals).
        out[9] = (sign << 7) as u8;
        return out;
    }
    let e80 = exp - 1023 + 16383;
    let mant = (1u64 << 63) | ((bits & ((1 << 52) - 1)) << 11);
    out[..8].copy_from_slice(&mant.to_le_bytes());
    out[8..].copy_from_slice(&((sign << 15) | e80).to_le_bytes());
    out
}

/// IEEE 754 binary128 encoding of an f64 (IEEE 754-2008 §3.4: 1 sign bit,
/// 15-bit exponent biased by 16383, 112-bit fraction, hidden integer bit).
/// Normal numbers and zeros only, which is all `dv_f64` makes.
pub fn f128(x: f64) -> [u8; 16] {
    let bits = x.to_bits();
    let sign = (bits >> 63) as u128;
    let exp = ((bits >> 52) & 0x7ff) as u128;
    if exp == 0 {
        return (sign << 127).to_le_bytes();
    }
    let e128 = exp - 1023 + 16383;
    let frac = ((bits & ((1 << 52) - 1)) as u128) << 60;
    ((sign << 127) | (e128 << 112) | frac).to_le_bytes()
}

/// A leaf's bytes (its full `sizeof`; long double: 16 with 6 zero bytes).
pub fn leaf_bytes(k: ValKind, h: u64) -> Vec<u8> {
    match k {
        ValKind::Int { bytes, .. } => {
            let mut v = h.to_le_bytes().to_vec();
            if bytes == 16 {
                v.extend_from_slice(&dmix(h).to_le_bytes());
            }
            v.truncate(bytes as usize);
            v
        }
        ValKind::Bool => vec![(h & 1) as u8],
        ValKind::F32 => dv_f32(h).to_le_bytes().to_vec(),
        ValKind::F64 => dv_f64(h).to_le_bytes().to_vec(),
        ValKind::F80 => {
            let mut v = f80(dv_f64(h)).to_vec();
            v.resize(16, 0);
            v
        }
        ValKind::F128 => f128(dv_f64(h)).to_vec(),
        ValKind::C32 => {
            let mut v = dv_f32(h).to_le_bytes().to_vec();
            v.extend_from_slice(&dv_f32(dmix(h)).to_le_bytes());
            v
        }
        ValKind::C64 => {
            let mut v = dv_f64(h).to_le_bytes().to_vec();
            v.extend_from_slice(&dv_f64(dmix(h)).to_le_bytes());
            v
        }
    }
}

/// A C expression of type `prim` whose value is `leaf_bytes(prim, h)`,
/// given a C expression `h` of type `uint64_t`.
pub fn c_value(prim: Prim, abi: Abi, h: &str) -> String {
    let ty = prim.c_name(abi);
    match prim.val_kind(abi) {
        ValKind::Int { bytes: 16, .. } => {
            format!("(({ty})(((unsigned __int128)dmix({h}) << 64) | (unsigned __int128)({h})))")
        }
        ValKind::Int { .. } => format!("(({ty})({h}))"),
        ValKind::Bool => format!("((_Bool)(({h}) & 1))"),
        ValKind::F32 => format!("dv_f32({h})"),
        ValKind::F64 => format!("dv_f64({h})"),
        ValKind::F80 | ValKind::F128 => format!("((long double)dv_f64({h}))"),
        ValKind::C32 => format!("__builtin_complex(dv_f32({h}), dv_f32(dmix({h})))"),
        ValKind::C64 => format!("__builtin_complex(dv_f64({h}), dv_f64(dmix({h})))"),
    }
}

/// Helpers every generated C file starts with (the C twins of [`dmix`],
/// [`fnv1a`], [`dv_f32`], [`dv_f64`]).
pub const C_PRELUDE: &str = r#"#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <stdarg.h>
static inline uint64_t dmix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline uint64_t dfnv(const unsigned char *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) { h ^= p[i]; h *= 0x100000001b3ULL; }
    return h;
}
static inline float dv_f32(uint64_t h) { int32_t v = (int32_t)(uint32_t)h; v >>= 8; return (float)v / 256.0f; }
static inline double dv_f64(uint64_t h) { int64_t v = (int64_t)h; v >>= 11; return (double)v / 1048576.0; }
/* FNV-1a over the value bytes of the leaves listed as (offset, size) pairs. */
static uint64_t dleafhash(const unsigned char *p, const unsigned int *t, size_t n) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++)
        for (unsigned int k = 0; k < t[2 * i + 1]; k++) { h ^= p[t[2 * i] + k]; h *= 0x100000001b3ULL; }
    return h;
}
extern unsigned char diff_buf[1 << 20];
extern size_t diff_len;
"#;

/// The definitions of the globals [`C_PRELUDE`] declares (in one file of a
/// library).
pub const C_GLOBALS: &str = "unsigned char diff_buf[1 << 20];\nsize_t diff_len;\n";
