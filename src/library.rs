//! Shared libraries: opening them, finding symbols, and listing the symbols
//! they export.
//!
//! [`Library`] wraps `dlopen`/`dlsym` (through libloading). When a symbol is
//! missing, the error suggests up to three exported names close to the one
//! asked for, read from the ELF dynamic symbol table of the library's file.
//!
//! [`dynamic_symbols`] and [`format_nm_line`] list a library's exports the
//! way `nm -D --defined-only` (GNU binutils 2.40) does, line for line: the
//! same symbols, the same type letters, the same `@`/`@@` version suffixes,
//! the same order (in the C locale; nm sorts with `strcoll`), and with
//! `--demangle` the same demangled names as far as the demangler crates
//! agree with libiberty.

use std::ffi::c_void;
use std::path::{Path, PathBuf};

use object::elf;
use object::read::elf::{FileHeader, SectionHeader, Sym};
use object::Endianness;

use crate::Error;

/// An open shared library (or the running program), ready for symbol lookups.
///
/// The library stays loaded as long as this value lives. `Library` is `Send`
/// and `Sync`: `dlsym` may be called from any thread.
pub struct Library {
    lib: libloading::os::unix::Library,
    name: String,
    path: Option<PathBuf>,
}

// Compile-time proof of the documented auto traits.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Library>();
};

impl std::fmt::Debug for Library {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Library")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish()
    }
}

impl Library {
    /// Opens a library by path (the name contains `/`) or by soname
    /// (`libm.so.6`, searched for as the dynamic loader does: `LD_LIBRARY_PATH`,
    /// the cache, the default directories).
    ///
    /// On failure returns [`Error::Library`] whose `reason` is `dlerror`'s
    /// message.
    ///
    /// Opening a library runs its initialisers (ELF constructors), as any
    /// `dlopen` does; that is the caller's intent when naming a library.
    pub fn open(name: &str) -> Result<Library, Error> {
        if name.is_empty() {
            // dlopen("") would silently return the main program.
            return Err(Error::Library {
                name: String::new(),
                reason: "empty library name (use Library::this() for the running program)".into(),
            });
        }
        // SAFETY: dlopen runs the library's initialisers; loading the library
        // the user named is the whole purpose of this call, and jitffi makes
        // no assumption that those initialisers could break.
        let opened = unsafe { libloading::os::unix::Library::new(name) };
        let lib = opened.map_err(|e| Error::Library {
            name: one_line(name),
            reason: dl_reason(&e),
        })?;
        let (lib, path) = link_map_path(lib);
        Ok(Library {
            lib,
            name: name.to_owned(),
            path,
        })
    }

    /// The running program and everything loaded into its global scope
    /// (`dlopen(NULL)`): looks up symbols exported by the executable, then by
    /// the libraries it was linked with (libc among them).
    pub fn this() -> Result<Library, Error> {
        let lib = libloading::os::unix::Library::this();
        let (lib, path) = link_map_path(lib);
        let path = path.or_else(|| std::env::current_exe().ok());
        let name = match &path {
            Some(p) => p.display().to_string(),
            None => "<this program>".to_owned(),
        };
        Ok(Library { lib, name, path })
    }

    /// The name the library was opened with (for [`Library::this`], the
    /// program's path).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file the dynamic loader mapped: `l_name` of the library's link map
    /// (`dlinfo(RTLD_DI_LINKMAP)`), or the executable's path for
    /// [`Library::this`]. `None` where the loader does not say.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The address of the symbol `name` (`dlsym`; GNU indirect functions are
    /// resolved to their implementation).
    ///
    /// On failure returns [`Error::Symbol`] whose `similar` holds up to three
    /// defined dynamic symbols of [`Library::path`] whose names are close to
    /// `name` (optimal-string-alignment Damerau–Levenshtein distance at most
    /// `max(2, len/3)`, closest first, ties in byte order). A symbol whose
    /// address is NULL (an absolute zero, an unresolved weak symbol) is
    /// reported as missing too: nothing can be called or read there.
    pub fn symbol(&self, name: &str) -> Result<*const c_void, Error> {
        // SAFETY: the symbol is read as an untyped address (`*mut c_void`),
        // never called or dereferenced here, so no type can be wrong.
        // libloading uses the thread-safe dlerror of glibc/musl on Linux.
        let found = unsafe { self.lib.get::<*mut c_void>(name.as_bytes()) };
        match found {
            Ok(sym) => {
                let address = sym.into_raw();
                if address.is_null() {
                    Err(self.missing(name))
                } else {
                    Ok(address as *const c_void)
                }
            }
            Err(_) => Err(self.missing(name)),
        }
    }

    /// The error for a symbol that is not there, with suggestions.
    fn missing(&self, name: &str) -> Error {
        let candidates: Vec<String> = match &self.path {
            Some(p) => match dynamic_symbols(p) {
                Ok(syms) => syms
                    .into_iter()
                    .filter(|s| s.kind != 'A' && s.kind != 'a')
                    .map(|s| s.name)
                    .collect(),
                Err(_) => Vec::new(),
            },
            None => Vec::new(),
        };
        Error::Symbol {
            name: one_line(name),
            library: one_line(&self.name),
            similar: similar_names(name, candidates.iter().map(String::as_str), 3),
        }
    }
}

/// The `dlerror` text of a libloading error (its source), on one line.
fn dl_reason(e: &libloading::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(src) => one_line(&src.to_string()),
        None => one_line(&e.to_string()),
    }
}

/// Escapes control characters so that a message stays on one line.
fn one_line(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Asks the loader which file backs `lib` (glibc's `dlinfo`), handing the
/// library back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn link_map_path(
    lib: libloading::os::unix::Library,
) -> (libloading::os::unix::Library, Option<PathBuf>) {
    use std::os::unix::ffi::OsStrExt;

    /// The public head of glibc's `struct link_map` (<link.h>).
    #[repr(C)]
    struct LinkMap {
        l_addr: usize,
        l_name: *const libc::c_char,
        l_ld: *const c_void,
        l_next: *const LinkMap,
        l_prev: *const LinkMap,
    }

    let handle = lib.into_raw();
    // SAFETY: `handle` came from `into_raw` just above, so it is a live
    // dlopen handle that has not been closed; ownership goes straight back.
    let lib = unsafe { libloading::os::unix::Library::from_raw(handle) };
    let mut map: *const LinkMap = std::ptr::null();
    // SAFETY: `handle` is a valid dlopen handle (kept open by `lib`);
    // RTLD_DI_LINKMAP stores one `struct link_map *` into the pointer given.
    let rc = unsafe {
        libc::dlinfo(
            handle,
            libc::RTLD_DI_LINKMAP,
            (&mut map as *mut *const LinkMap).cast(),
        )
    };
    if rc != 0 || map.is_null() {
        return (lib, None);
    }
    // SAFETY: dlinfo succeeded, so `map` points at the loader's link map
    // entry for this object, which lives while the handle is open; `l_name`
    // is a NUL-terminated string (empty for the main program) or NULL.
    let name = unsafe {
        let l_name = (*map).l_name;
        if l_name.is_null() {
            return (lib, None);
        }
        std::ffi::CStr::from_ptr(l_name).to_bytes().to_vec()
    };
    if name.is_empty() {
        return (lib, None);
    }
    let path = PathBuf::from(std::ffi::OsStr::from_bytes(&name));
    (lib, Some(path))
}

/// Without glibc's `dlinfo` the loader is not asked: no path.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn link_map_path(
    lib: libloading::os::unix::Library,
) -> (libloading::os::unix::Library, Option<PathBuf>) {
    (lib, None)
}

/// Up to `max` of `candidates` closest to `name`: distance at most
/// `max(2, len/3)` (len in characters), closest first, ties in byte order,
/// no duplicates, never `name` itself.
fn similar_names<'a>(
    name: &str,
    candidates: impl Iterator<Item = &'a str>,
    max: usize,
) -> Vec<String> {
    let target: Vec<char> = name.chars().collect();
    let limit = (target.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = Vec::new();
    for cand in candidates {
        if cand == name {
            continue;
        }
        let c: Vec<char> = cand.chars().collect();
        if c.len().abs_diff(target.len()) > limit {
            continue;
        }
        let d = osa_distance(&target, &c);
        if d <= limit {
            scored.push((d, cand));
        }
    }
    scored.sort_unstable();
    scored.dedup();
    scored
        .into_iter()
        .take(max)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// Optimal string alignment distance (Damerau–Levenshtein where each
/// substring is edited at most once): insertions, deletions, substitutions
/// and transpositions of adjacent characters each cost 1.
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for (i, row) in d.chunks_mut(w).enumerate() {
        row[0] = i;
    }
    for (j, v) in d.iter_mut().take(w).enumerate() {
        *v = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[(i - 1) * w + j] + 1)
                .min(d[i * w + j - 1] + 1)
                .min(d[(i - 1) * w + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = v;
        }
    }
    d[a.len() * w + b.len()]
}

/// One defined dynamic symbol, as `nm -D --defined-only` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynSymbol {
    /// `st_value`: the address relative to the load base (for `A` symbols,
    /// the absolute value).
    pub address: u64,
    /// nm's type letter (see [`dynamic_symbols`]).
    pub kind: char,
    /// The symbol's name, without any version (invalid UTF-8 replaced).
    pub name: String,
    /// The version the symbol is defined with, when it has one that nm
    /// prints (not the base version, not a version naming itself).
    pub version: Option<String>,
    /// The version is the default one (`@@`), not a hidden one (`@`).
    pub default_version: bool,
}

/// Defined dynamic symbols of an ELF file, in the order and with the type
/// letters of `nm -D --defined-only` (binutils 2.40, C locale):
///
/// - `T`/`t` text, `D`/`d` data, `B`/`b` bss, `R`/`r` read-only data
///   (upper case for global binding, lower case for local);
/// - `W`/`w` weak, `V`/`v` weak object; `i` GNU indirect function;
///   `u` GNU unique; `C` common; `A`/`a` absolute (the version-definition
///   symbols `GLIBC_2.2.5` and the like);
/// - undefined (`U`) symbols are left out, and so are section and file
///   symbols (nm drops them as debugging symbols).
///
/// The rules are binutils' `bfd_decode_symclass` over the section flags
/// bfd derives from the ELF section header (`_bfd_elf_make_section_from_shdr`).
/// Sorted by name (byte order, nm's `strcoll` in the C locale); equal names
/// (one name in several versions) keep their symbol-table order, as nm's
/// stable sort does.
///
/// Errors (unreadable file, not ELF, no `.dynsym` section) are
/// [`Error::Library`] naming the file.
pub fn dynamic_symbols(path: &Path) -> Result<Vec<DynSymbol>, Error> {
    let fail = |reason: String| Error::Library {
        name: one_line(&path.display().to_string()),
        reason: one_line(&reason),
    };
    let data = std::fs::read(path).map_err(|e| fail(e.to_string()))?;
    let kind = object::FileKind::parse(&*data).map_err(|e| fail(e.to_string()))?;
    let syms =
        match kind {
            object::FileKind::Elf64 => read_dynsyms::<elf::FileHeader64<Endianness>>(&data)
                .map_err(|e| fail(e.to_string()))?,
            object::FileKind::Elf32 => read_dynsyms::<elf::FileHeader32<Endianness>>(&data)
                .map_err(|e| fail(e.to_string()))?,
            _ => return Err(fail("not an ELF file".into())),
        };
    let Some(mut syms) = syms else {
        return Err(fail("no dynamic symbol table".into()));
    };
    // nm's `non_numeric_forward` is `strcoll` on the names (without the
    // version) under qsort, which glibc implements as a stable merge sort.
    syms.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(syms)
}

/// bfd's section flags that decide a type letter.
#[derive(Clone, Copy, Default)]
struct SecFlags {
    code: bool,
    data: bool,
    readonly: bool,
    has_contents: bool,
    debugging: bool,
}

/// What bfd knows about a symbol's section.
enum SymSection {
    Undefined,
    Absolute,
    Common,
    Section { name: Vec<u8>, flags: SecFlags },
}

/// Reads `.dynsym` (`None` when there is none) with versions and letters, in
/// symbol-table order.
fn read_dynsyms<Elf: FileHeader<Endian = Endianness>>(
    data: &[u8],
) -> object::read::Result<Option<Vec<DynSymbol>>> {
    let header = Elf::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let symtab = sections.symbols(endian, data, elf::SHT_DYNSYM)?;
    if symtab.is_empty() {
        return Ok(None);
    }
    let versions = sections.versions(endian, data)?;
    let machine = header.e_machine(endian);
    let strings = symtab.strings();

    let mut out = Vec::new();
    for (index, sym) in symtab.enumerate().skip(1) {
        let st_type = sym.st_type();
        // STT_SECTION / STT_FILE become BSF_DEBUGGING and nm hides them.
        if st_type == elf::STT_SECTION || st_type == elf::STT_FILE {
            continue;
        }
        let shndx = sym.st_shndx(endian);
        let section = if shndx == elf::SHN_UNDEF {
            SymSection::Undefined
        } else if shndx == elf::SHN_ABS {
            SymSection::Absolute
        } else if shndx == elf::SHN_COMMON
            || (machine == elf::EM_X86_64 && shndx.0 == SHN_X86_64_LCOMMON)
        {
            SymSection::Common
        } else {
            match symtab.symbol_section(endian, sym, index) {
                Ok(Some(si)) => match sections.section(si) {
                    Ok(sh) => SymSection::Section {
                        name: sections
                            .section_name(endian, sh)
                            .unwrap_or_default()
                            .to_vec(),
                        flags: bfd_section_flags(sh, endian, &sections),
                    },
                    // bfd_section_from_elf_index fails: bfd uses *ABS*.
                    Err(_) => SymSection::Absolute,
                },
                _ => SymSection::Absolute,
            }
        };
        if matches!(section, SymSection::Undefined) {
            continue; // --defined-only
        }
        let name_bytes = sym.name(endian, strings).unwrap_or_default();
        let name = String::from_utf8_lossy(name_bytes).into_owned();
        let kind = type_letter(sym.st_bind(), st_type, &section);

        // Version suffix, after bfd's `_bfd_elf_get_symbol_version_string`
        // (base_p = false): none for the local/global/base indices, none when
        // the version names the symbol itself, `@` when hidden or when the
        // index refers to a version *needed* from another object. The
        // tables are the LSB's symbol versioning sections (LSB Core,
        // "Symbol Versioning": .gnu.version holds one index per .dynsym
        // entry, bit 15 = hidden; .gnu.version_d / _r name the indices).
        let mut version = None;
        let mut default_version = false;
        if let Some(vt) = &versions {
            let vi = vt.version_index(endian, index);
            match vt.version(vi.index()) {
                Ok(Some(v)) => {
                    if v.name() != name_bytes {
                        version = Some(String::from_utf8_lossy(v.name()).into_owned());
                        default_version = !vi.is_hidden() && v.file().is_none();
                    }
                }
                Ok(None) => {}
                Err(_) => {
                    version = Some("<corrupt>".to_owned());
                    default_version = !vi.is_hidden();
                }
            }
        }
        out.push(DynSymbol {
            address: sym.st_value(endian).into(),
            kind,
            name,
            version,
            default_version,
        });
    }
    Ok(Some(out))
}

/// `SHN_X86_64_LCOMMON`: large common symbols (x86-64 psABI §4.3, "Special
/// sections"), which bfd treats as common.
const SHN_X86_64_LCOMMON: u16 = 0xff02;

/// The section flags bfd's `_bfd_elf_make_section_from_shdr` derives from an
/// ELF section header (only those that decide a symbol's letter).
fn bfd_section_flags<'data, Elf: FileHeader<Endian = Endianness>>(
    sh: &Elf::SectionHeader,
    endian: Endianness,
    sections: &object::read::elf::SectionTable<'data, Elf, &'data [u8]>,
) -> SecFlags {
    let sh_type = sh.sh_type(endian);
    let sh_flags = sh.sh_flags(endian);
    let has_contents = sh_type != elf::SHT_NOBITS;
    let alloc = sh_flags.contains(elf::SHF_ALLOC);
    let load = alloc && has_contents;
    let code = sh_flags.contains(elf::SHF_EXECINSTR);
    let mut debugging = false;
    if !alloc {
        // "The debugging sections appear to be recognized only by name."
        let name = sections.section_name(endian, sh).unwrap_or_default();
        debugging = [
            &b".debug"[..],
            b".gnu.debuglto_.debug_",
            b".gnu.linkonce.wi.",
            b".zdebug",
            b".line",
            b".stab",
        ]
        .iter()
        .any(|p| name.starts_with(p))
            || name == b".gdb_index";
    }
    SecFlags {
        code,
        data: !code && load,
        readonly: !sh_flags.contains(elf::SHF_WRITE),
        has_contents,
        debugging,
    }
}

/// binutils' `bfd_decode_symclass` for an ELF dynamic symbol (the BSF flags
/// as `elf_slurp_symbol_table` sets them from `st_info`).
fn type_letter(bind: elf::SymbolBind, st_type: elf::SymbolType, section: &SymSection) -> char {
    let global = bind == elf::STB_GLOBAL && !matches!(section, SymSection::Common);
    let local = bind == elf::STB_LOCAL;
    let weak = bind == elf::STB_WEAK;
    let unique = bind == elf::STB_GNU_UNIQUE;
    let object = st_type == elf::STT_OBJECT || st_type == elf::STT_COMMON;
    let ifunc = st_type == elf::STT_GNU_IFUNC;

    let (sec_name, flags) = match section {
        SymSection::Common => return 'C',
        SymSection::Undefined => {
            return match (weak, object) {
                (true, true) => 'v',
                (true, false) => 'w',
                _ => 'U',
            };
        }
        SymSection::Absolute => (None, SecFlags::default()),
        SymSection::Section { name, flags } => (Some(name.as_slice()), *flags),
    };
    if ifunc {
        return 'i';
    }
    if weak {
        return if object { 'V' } else { 'W' };
    }
    if unique {
        return 'u';
    }
    if !(global || local) {
        return '?';
    }
    let c = match sec_name {
        None => 'a',
        Some(name) => match coff_section_type(name) {
            Some(c) => c,
            None => decode_section_type(flags),
        },
    };
    if global {
        c.to_ascii_uppercase()
    } else {
        c
    }
}

/// bfd's `coff_section_type`: a few section names have their own letter
/// (matched as a prefix followed by NUL, `.`, `$` or a digit).
fn coff_section_type(name: &[u8]) -> Option<char> {
    const TABLE: [(&[u8], char); 4] = [
        (b".drectve", 'i'),
        (b".edata", 'e'),
        (b".idata", 'i'),
        (b".pdata", 'p'),
    ];
    TABLE.iter().find_map(|&(prefix, c)| {
        let rest = name.strip_prefix(prefix)?;
        match rest.first() {
            None => Some(c),
            Some(b) if b".$0123456789".contains(b) => Some(c),
            Some(_) => None,
        }
    })
}

/// bfd's `decode_section_type` (x86-64 and AArch64 have no small-data
/// sections, so `g` and `s` never occur).
fn decode_section_type(f: SecFlags) -> char {
    if f.code {
        't'
    } else if f.data {
        if f.readonly {
            'r'
        } else {
            'd'
        }
    } else if !f.has_contents {
        'b'
    } else if f.debugging {
        'N'
    } else if f.has_contents && f.readonly {
        // Not `alloc`: a global symbol in a non-alloc read-only section
        // (rustc's `.rustc` metadata) is `N`, upper-cased from this `n`.
        'n'
    } else {
        '?'
    }
}

/// Formats one line exactly like `nm -D --defined-only`: the address in 16
/// hex digits, the type letter, the name, then `@@VERSION` (the default
/// version) or `@VERSION` (a hidden one).
///
/// With `demangle`, names are demangled as `nm -D --demangle` does it
/// (binutils' `bfd_demangle` and libiberty's `cplus_demangle` in auto
/// style): Rust first (legacy `_ZN…17h<hash>E` and v0 `_R…`, printed without
/// hashes like libiberty's non-verbose output, which is rustc-demangle's
/// alternate `{:#}` form), then C++ Itanium (`_Z…`, through cpp_demangle);
/// leading `.`/`$` characters and the version suffix are kept around the
/// demangled name. Names that do not demangle are printed as they are.
pub fn format_nm_line(sym: &DynSymbol, demangle: bool) -> String {
    let name = if demangle {
        demangle_name(&sym.name)
    } else {
        sym.name.clone()
    };
    let mut line = format!("{:016x} {} {}", sym.address, sym.kind, name);
    if let Some(v) = &sym.version {
        line.push_str(if sym.default_version { "@@" } else { "@" });
        line.push_str(v);
    }
    line
}

/// binutils' `bfd_demangle`: strip leading dots and dollars and anything from
/// the first `@`, demangle, put them back.
fn demangle_name(name: &str) -> String {
    let body_start = name.find(|c| c != '.' && c != '$').unwrap_or(name.len());
    let (pre, rest) = name.split_at(body_start);
    let (body, suf) = match rest.find('@') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    match cplus_demangle(body) {
        Some(d) => format!("{pre}{d}{suf}"),
        None => name.to_owned(),
    }
}

/// libiberty's `cplus_demangle` in auto style: Rust, then GNU v3 (Itanium).
fn cplus_demangle(s: &str) -> Option<String> {
    if let Some(d) = rust_demangle(s) {
        return Some(d);
    }
    if let Some(d) = itanium_demangle(s) {
        return Some(d);
    }
    // `_GLOBAL_[._$][ID]_x`: constructors/destructors keyed to x.
    let b = s.as_bytes();
    if b.len() > 11
        && s.starts_with("_GLOBAL_")
        && matches!(b[8], b'.' | b'_' | b'$')
        && matches!(b[9], b'I' | b'D')
        && b[10] == b'_'
    {
        let what = if b[9] == b'I' {
            "global constructors keyed to "
        } else {
            "global destructors keyed to "
        };
        let rest = &s[11..];
        let inner = itanium_demangle(rest).unwrap_or_else(|| rest.to_owned());
        return Some(format!("{what}{inner}"));
    }
    None
}

/// C++ Itanium ABI names (`_Z…`).
///
/// nm demangles with libiberty's `cp-demangle.c`. The same code is
/// libstdc++'s `__cxa_demangle` (Itanium C++ ABI §3.4, "Demangler API"), so
/// where libstdc++ can be loaded its demangler is used and the names are
/// nm's to the letter. Elsewhere cpp_demangle does it ([`cpp_demangle_like_nm`]),
/// which agrees on most names but not all.
fn itanium_demangle(s: &str) -> Option<String> {
    if !s.starts_with("_Z") {
        return None;
    }
    match system_demangler() {
        Some(f) => cxa_demangle(f, s),
        None => cpp_demangle_like_nm(s),
    }
}

/// `char *__cxa_demangle(const char *mangled, char *buf, size_t *n, int *status)`.
type CxaDemangle = unsafe extern "C" fn(
    *const libc::c_char,
    *mut libc::c_char,
    *mut libc::size_t,
    *mut libc::c_int,
) -> *mut libc::c_char;

/// libstdc++'s `__cxa_demangle`, loaded once (and kept loaded) on first use.
fn system_demangler() -> Option<CxaDemangle> {
    static DEMANGLER: std::sync::OnceLock<Option<(libloading::os::unix::Library, CxaDemangle)>> =
        std::sync::OnceLock::new();
    DEMANGLER
        .get_or_init(|| {
            // SAFETY: loading libstdc++ runs its initialisers (the iostream
            // objects), which have no preconditions on the loading program.
            let lib = unsafe { libloading::os::unix::Library::new("libstdc++.so.6") }.ok()?;
            // SAFETY: `__cxa_demangle` has the `CxaDemangle` signature
            // (Itanium C++ ABI §3.4); the pointer stays valid because the
            // library is stored next to it in this never-dropped static.
            let f = unsafe { *lib.get::<CxaDemangle>(b"__cxa_demangle\0").ok()? };
            Some((lib, f))
        })
        .as_ref()
        .map(|(_, f)| *f)
}

/// Calls `__cxa_demangle` on `s`; `None` when it does not demangle.
fn cxa_demangle(f: CxaDemangle, s: &str) -> Option<String> {
    let mangled = std::ffi::CString::new(s).ok()?;
    let mut status: libc::c_int = -1;
    // SAFETY: `mangled` is NUL-terminated and outlives the call; a NULL
    // buffer and length ask for a freshly malloc'd result; `status` is a
    // valid int to write.
    let out = unsafe {
        f(
            mangled.as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut status,
        )
    };
    if out.is_null() {
        return None;
    }
    // SAFETY: a non-NULL result is a NUL-terminated string allocated with
    // malloc that the caller owns; it is copied, then freed exactly once.
    let text = unsafe {
        let text = std::ffi::CStr::from_ptr(out).to_string_lossy().into_owned();
        libc::free(out.cast());
        text
    };
    (status == 0).then_some(text)
}

/// cpp_demangle, with its output brought to libiberty's where they are
/// known to differ:
/// - virtual tables and VTTs read `vtable for T` / `VTT for T` (cpp_demangle
///   writes `{vtable(T)}`): demangled through the typeinfo form, which has
///   the same grammar (Itanium C++ ABI §5.1.4.1, `TV`/`TT`/`TI <type>`);
/// - the function enclosing a local entity (`Z <encoding> E <entity>`,
///   §5.1.6) is printed without its return type (libiberty's `d_local_name`
///   elides it); done here for names whose top level is such a local name,
///   directly or under a special name (guard variable, typeinfo, …).
///
/// Known remaining differences: libiberty abbreviates `std::istream`,
/// `std::string` and the like where the name is not a constructor's scope,
/// and cpp_demangle 0.5 mis-prints some template constructors' parameters.
fn cpp_demangle_like_nm(s: &str) -> Option<String> {
    let rest = s.strip_prefix("_Z")?;
    for (tag, label) in [("TV", "vtable for "), ("TT", "VTT for ")] {
        if let Some(ty) = rest.strip_prefix(tag) {
            let typeinfo = cpp_demangle_like_nm(&format!("_ZTI{ty}"))?;
            let shown = typeinfo.strip_prefix("typeinfo for ")?;
            return Some(format!("{label}{shown}"));
        }
    }
    let sym = cpp_demangle::Symbol::new(s.as_bytes()).ok()?;
    let local = rest.starts_with('Z')
        || ["GV", "GR", "TI", "TS", "TH", "TW"]
            .iter()
            .any(|tag| rest.strip_prefix(tag).is_some_and(|r| r.starts_with('Z')));
    let options = if local {
        cpp_demangle::DemangleOptions::new().no_return_type()
    } else {
        cpp_demangle::DemangleOptions::new()
    };
    sym.demangle_with_options(&options).ok()
}

/// Rust names, accepted with libiberty's rules (rust-demangle.c) and printed
/// in its non-verbose form (no hashes, no crate disambiguators).
fn rust_demangle(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if let Some(rest) = s.strip_prefix("_R") {
        // v0: a path starts with an upper-case tag; only [_0-9a-zA-Z] up to
        // an optional `.suffix`, which libiberty drops.
        if !rest.as_bytes().first()?.is_ascii_uppercase() {
            return None;
        }
        let end = s.find('.').unwrap_or(s.len());
        let core = &s[..end];
        if !core.bytes().all(|c| c == b'_' || c.is_ascii_alphanumeric()) {
            return None;
        }
        let d = rustc_demangle::try_demangle(core).ok()?;
        return Some(format!("{d:#}"));
    }
    if !s.starts_with("_ZN") {
        return None;
    }
    // Legacy: [_0-9a-zA-Z$.:]*, ends in `E`, last path segment `17h` + 16
    // lower-case hex digits of which at least 5 are distinct.
    if !b[3..]
        .iter()
        .all(|&c| c == b'_' || c == b'$' || c == b'.' || c == b':' || c.is_ascii_alphanumeric())
    {
        return None;
    }
    let inner = s[3..].strip_suffix('E')?;
    if inner.len() <= 19 {
        return None;
    }
    let hash = &inner[inner.len() - 19..];
    let digits = hash.strip_prefix("17h")?;
    let mut seen = 0u16;
    for c in digits.bytes() {
        let n = match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => return None,
        };
        seen |= 1 << n;
    }
    if seen.count_ones() < 5 {
        return None;
    }
    let d = rustc_demangle::try_demangle(s).ok()?;
    Some(format!("{d:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_counts_transpositions_once() {
        let d = |a: &str, b: &str| {
            osa_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("coss", "cos"), 1);
        assert_eq!(d("strelnd", "strlend"), 1);
        assert_eq!(d("abc", "ca"), 3); // OSA, not unrestricted DL (2)
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
    }

    #[test]
    fn suggestions_are_closest_first_then_alphabetical() {
        let names = ["cosh", "cos", "cosf", "acos", "sin", "coss", "cosl"];
        let got = similar_names("coss", names.iter().copied(), 3);
        assert_eq!(got, ["cos", "cosf", "cosh"]);
        assert!(similar_names("zzzzzz", names.iter().copied(), 3).is_empty());
    }

    #[test]
    fn letters_follow_bfd_decode_symclass() {
        let text = SymSection::Section {
            name: b".text".to_vec(),
            flags: SecFlags {
                code: true,
                readonly: true,
                has_contents: true,
                ..SecFlags::default()
            },
        };
        let bss = SymSection::Section {
            name: b".bss".to_vec(),
            flags: SecFlags::default(),
        };
        let rustc = SymSection::Section {
            name: b".rustc".to_vec(),
            flags: SecFlags {
                readonly: true,
                has_contents: true,
                ..SecFlags::default()
            },
        };
        assert_eq!(type_letter(elf::STB_GLOBAL, elf::STT_OBJECT, &rustc), 'N');
        assert_eq!(type_letter(elf::STB_GLOBAL, elf::STT_FUNC, &text), 'T');
        assert_eq!(type_letter(elf::STB_LOCAL, elf::STT_FUNC, &text), 't');
        assert_eq!(type_letter(elf::STB_WEAK, elf::STT_FUNC, &text), 'W');
        assert_eq!(type_letter(elf::STB_WEAK, elf::STT_OBJECT, &bss), 'V');
        assert_eq!(type_letter(elf::STB_WEAK, elf::STT_GNU_IFUNC, &text), 'i');
        assert_eq!(type_letter(elf::STB_GLOBAL, elf::STT_TLS, &bss), 'B');
        assert_eq!(type_letter(elf::STB_GNU_UNIQUE, elf::STT_OBJECT, &bss), 'u');
        assert_eq!(
            type_letter(elf::STB_GLOBAL, elf::STT_OBJECT, &SymSection::Absolute),
            'A'
        );
        assert_eq!(coff_section_type(b".idata$5"), Some('i'));
        assert_eq!(coff_section_type(b".idatax"), None);
    }

    /// Expected strings are `nm -D --demangle` (binutils 2.40) output for
    /// the test library of tests/library.rs, built with g++ 12.
    #[test]
    fn cpp_demangle_fallback_prints_like_nm() {
        for (mangled, nm) in [
            ("_ZN3geo3dotERKNS_5PointES2_", "geo::dot(geo::Point const&, geo::Point const&)"),
            ("_ZN3geo5ShapeD0Ev", "geo::Shape::~Shape()"),
            (
                "_ZN3geo5labelB5cxx11ERKSt6vectorIiSaIiEE",
                "geo::label[abi:cxx11](std::vector<int, std::allocator<int> > const&)",
            ),
            ("_ZN3geo5scaleElPKNS_5PointE", "geo::scale(long, geo::Point const*)"),
            ("_ZN3geo5twiceIiEET_S1_", "int geo::twice<int>(int)"),
            ("_ZNK3geo4GridIfLi4EE3sumEv", "geo::Grid<float, 4>::sum() const"),
            ("_ZTIN3geo5ShapeE", "typeinfo for geo::Shape"),
            ("_ZTSN3geo5ShapeE", "typeinfo name for geo::Shape"),
            ("_ZTVN3geo5ShapeE", "vtable for geo::Shape"),
            (
                "_ZZNSt8__detail18__to_chars_10_implImEEvPcjT_E8__digits",
                "std::__detail::__to_chars_10_impl<unsigned long>(char*, unsigned int, unsigned long)::__digits",
            ),
        ] {
            assert_eq!(cpp_demangle_like_nm(mangled).as_deref(), Some(nm), "{mangled}");
            // The system demangler, where present, agrees.
            if let Some(f) = system_demangler() {
                assert_eq!(cxa_demangle(f, mangled).as_deref(), Some(nm), "{mangled}");
            }
        }
        assert_eq!(cpp_demangle_like_nm("_Zjunk"), None);
        assert_eq!(cpp_demangle_like_nm("plain"), None);
    }

    #[test]
    fn demangling_keeps_prefix_and_suffix() {
        assert_eq!(demangle_name("_Z3fooi"), "foo(int)");
        assert_eq!(demangle_name(".._Z3fooi@x"), "..foo(int)@x");
        assert_eq!(demangle_name("strlen"), "strlen");
        assert_eq!(
            demangle_name("_ZN4core3fmt5write17h0123456789abcdefE"),
            "core::fmt::write"
        );
        // Too few distinct hash digits for libiberty's Rust rule: C++ instead.
        assert_eq!(
            demangle_name("_ZN3foo17h0000000000000000E"),
            "foo::h0000000000000000"
        );
    }
}
