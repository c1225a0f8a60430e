//! C literals as values: parsing them into the bytes of a C type, inferring
//! the type a C compiler would give a variadic literal, and printing a value
//! of any C type back as a C literal. Used by `jitffi call`.

use std::fmt::Write as _;

use crate::types::{DataModel, RecordKind, Scalar, Type};

/// A parsed C literal, before it meets a type.
#[derive(Clone, Debug, PartialEq)]
pub enum Literal {
    /// An integer literal (or character constant) with its suffix flags.
    Int {
        value: i128,
        unsigned: bool,
        /// 0 none, 1 `l`, 2 `ll`.
        long: u8,
        /// Written in hex, octal or binary (C gives those unsigned types too).
        non_decimal: bool,
    },
    /// A floating literal; `float` when suffixed `f`, `long double` for `l`.
    Float { value: f64, suffix: Option<char> },
    /// A string literal's bytes (without the terminating NUL).
    Str(Vec<u8>),
    /// `NULL`.
    Null,
    /// A braced initialiser list.
    List(Vec<Literal>),
}

/// A literal that cannot be parsed or does not fit its type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueError(pub String);

impl std::fmt::Display for ValueError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ValueError {}

fn err<T>(m: impl Into<String>) -> Result<T, ValueError> {
    Err(ValueError(m.into()))
}

/// Parses one C literal: integers (decimal, hex, octal, binary, with
/// `u`/`l`/`ll` suffixes, an optional sign), character constants, floating
/// literals (decimal or hex, `f`/`l` suffixes, `inf`, `nan`), strings,
/// `NULL`, and `{…}` initialiser lists of those.
pub fn parse_literal(text: &str) -> Result<Literal, ValueError> {
    let mut p = LitParser {
        s: text.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let v = p.literal()?;
    p.skip_ws();
    if p.pos != p.s.len() {
        return err(format!(
            "unexpected '{}' at {} in literal '{text}'",
            &text[p.pos..].chars().next().unwrap_or(' '),
            p.pos
        ));
    }
    Ok(v)
}

struct LitParser<'a> {
    s: &'a [u8],
    pos: usize,
    depth: usize,
}

impl LitParser<'_> {
    fn skip_ws(&mut self) {
        while self.pos < self.s.len() && self.s[self.pos].is_ascii_whitespace() {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn literal(&mut self) -> Result<Literal, ValueError> {
        self.skip_ws();
        match self.peek() {
            None => err("empty literal"),
            Some(b'{') => {
                self.depth += 1;
                if self.depth > 64 {
                    return err("initialiser nested too deeply");
                }
                self.pos += 1;
                let mut items = Vec::new();
                loop {
                    self.skip_ws();
                    if self.peek() == Some(b'}') {
                        self.pos += 1;
                        break;
                    }
                    items.push(self.literal()?);
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {}
                        _ => return err(format!("expected ',' or '}}' at {}", self.pos)),
                    }
                }
                self.depth -= 1;
                Ok(Literal::List(items))
            }
            Some(b'"') => {
                let mut out = Vec::new();
                // Adjacent string literals concatenate, as in C.
                while self.peek() == Some(b'"') {
                    self.pos += 1;
                    loop {
                        match self.peek() {
                            None => return err("unterminated string literal"),
                            Some(b'"') => {
                                self.pos += 1;
                                break;
                            }
                            Some(b'\\') => out.push(self.escape()?),
                            Some(c) => {
                                out.push(c);
                                self.pos += 1;
                            }
                        }
                    }
                    self.skip_ws();
                }
                Ok(Literal::Str(out))
            }
            Some(b'\'') => {
                self.pos += 1;
                let c = match self.peek() {
                    Some(b'\\') => self.escape()?,
                    Some(b'\'') | None => return err("empty character constant"),
                    Some(c) => {
                        self.pos += 1;
                        c
                    }
                };
                if self.peek() != Some(b'\'') {
                    return err(format!("unterminated character constant at {}", self.pos));
                }
                self.pos += 1;
                // A character constant has type int; plain char is signed
                // on the hosts where it matters for gcc's value of '\xff'.
                Ok(Literal::Int {
                    value: c as i8 as i128,
                    unsigned: false,
                    long: 0,
                    non_decimal: false,
                })
            }
            Some(_) => self.number(),
        }
    }

    fn escape(&mut self) -> Result<u8, ValueError> {
        // At a backslash.
        self.pos += 1;
        let c = match self.peek() {
            Some(c) => c,
            None => return err("unterminated escape sequence"),
        };
        self.pos += 1;
        Ok(match c {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'a' => 7,
            b'b' => 8,
            b'f' => 12,
            b'v' => 11,
            b'e' => 27,
            b'\\' | b'\'' | b'"' | b'?' => c,
            b'x' => {
                let start = self.pos;
                let mut v: u32 = 0;
                while let Some(d) = self.peek().and_then(|c| (c as char).to_digit(16)) {
                    v = v.saturating_mul(16).saturating_add(d);
                    self.pos += 1;
                }
                if self.pos == start || v > 255 {
                    return err(format!("bad \\x escape at {start}"));
                }
                v as u8
            }
            b'0'..=b'7' => {
                let mut v: u32 = (c - b'0') as u32;
                for _ in 0..2 {
                    match self.peek() {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + (d - b'0') as u32;
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                if v > 255 {
                    return err("octal escape out of range");
                }
                v as u8
            }
            _ => return err(format!("unknown escape sequence '\\{}'", c as char)),
        })
    }

    fn number(&mut self) -> Result<Literal, ValueError> {
        let start = self.pos;
        let mut neg = false;
        if let Some(c @ (b'+' | b'-')) = self.peek() {
            neg = c == b'-';
            self.pos += 1;
        }
        let body_start = self.pos;
        while self.pos < self.s.len()
            && (self.s[self.pos].is_ascii_alphanumeric()
                || self.s[self.pos] == b'.'
                || self.s[self.pos] == b'_'
                || ((self.s[self.pos] == b'+' || self.s[self.pos] == b'-')
                    && self.pos > body_start
                    && matches!(self.s[self.pos - 1], b'e' | b'E' | b'p' | b'P')
                    && !is_hex_int_prefix(&self.s[body_start..self.pos])))
        {
            self.pos += 1;
        }
        let word = std::str::from_utf8(&self.s[body_start..self.pos]).unwrap_or("");
        let whole = std::str::from_utf8(&self.s[start..self.pos]).unwrap_or("");
        if word.is_empty() {
            return err(format!(
                "expected a C literal at {start}, found '{}'",
                self.s[start..]
                    .iter()
                    .take(1)
                    .map(|&c| c as char)
                    .collect::<String>()
            ));
        }
        if word == "NULL" && !neg {
            return Ok(Literal::Null);
        }
        let lower = word.to_ascii_lowercase();
        if matches!(lower.as_str(), "inf" | "infinity" | "nan") {
            let v = if lower == "nan" {
                f64::NAN
            } else {
                f64::INFINITY
            };
            return Ok(Literal::Float {
                value: if neg { -v } else { v },
                suffix: None,
            });
        }
        let is_hex = lower.starts_with("0x");
        let is_float = if is_hex {
            lower.contains('.') || lower.contains('p')
        } else {
            lower.contains('.') || lower.contains('e')
        };
        if is_hex && is_float && !lower.contains('p') {
            return err(format!(
                "hex floating literal '{whole}' needs a 'p' exponent"
            ));
        }
        if is_float {
            let (digits, suffix) = match lower.chars().last() {
                Some(c @ ('f' | 'l')) => (&lower[..lower.len() - 1], Some(c)),
                _ => (lower.as_str(), None),
            };
            let v = if is_hex {
                parse_hex_float(&digits[2..])
            } else {
                digits.parse::<f64>().ok()
            };
            return match v {
                Some(v) => Ok(Literal::Float {
                    value: if neg { -v } else { v },
                    suffix,
                }),
                None => err(format!("malformed floating literal '{whole}'")),
            };
        }
        // Integer: split the suffix off.
        let digits_end = lower.find(['u', 'l']).unwrap_or(lower.len());
        let (digits, suffix) = lower.split_at(digits_end);
        let (unsigned, long) = match suffix {
            "" => (false, 0),
            "u" => (true, 0),
            "l" => (false, 1),
            "ul" | "lu" => (true, 1),
            "ll" => (false, 2),
            "ull" | "llu" => (true, 2),
            _ => return err(format!("bad integer suffix in '{whole}'")),
        };
        let (radix, body) = if let Some(h) = digits.strip_prefix("0x") {
            (16, h)
        } else if let Some(b) = digits.strip_prefix("0b") {
            (2, b)
        } else if digits.len() > 1 && digits.starts_with('0') {
            (8, &digits[1..])
        } else {
            (10, digits)
        };
        let body = body.replace('\'', "");
        let magnitude = match u128::from_str_radix(&body, radix) {
            Ok(v) if !body.is_empty() => v,
            _ => return err(format!("malformed integer literal '{whole}'")),
        };
        let value = if neg {
            if magnitude > i128::MAX as u128 + 1 {
                return err(format!("integer literal '{whole}' is out of range"));
            }
            (magnitude as i128).wrapping_neg()
        } else {
            // Values above i128::MAX are unsigned __int128 territory.
            if magnitude > i128::MAX as u128 {
                return err(format!("integer literal '{whole}' is out of range"));
            }
            magnitude as i128
        };
        Ok(Literal::Int {
            value,
            unsigned,
            long,
            non_decimal: radix != 10,
        })
    }
}

fn is_hex_int_prefix(s: &[u8]) -> bool {
    // "0x1e+5" is not a float exponent: in hex, 'e' is a digit and only
    // 'p' introduces an exponent.
    s.len() >= 2 && s[0] == b'0' && (s[1] | 0x20) == b'x' && {
        let last = s[s.len() - 1] | 0x20;
        last == b'e'
    }
}

fn parse_hex_float(s: &str) -> Option<f64> {
    // s is the part after "0x": hexdigits[.hexdigits]p[+-]dec
    let (mant, exp) = match s.find('p') {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = match mant.find('.') {
        Some(i) => (&mant[..i], &mant[i + 1..]),
        None => (mant, ""),
    };
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

/// The type C gives a literal passed in a variadic position, after the
/// default argument promotions (C11 §6.4.4.1 for integer constants,
/// §6.5.2.2p6 for the promotions): `int`, `long`, `long long` or their
/// unsigned forms; `double` (or `long double`); `char *`; `void *`.
pub fn infer_variadic_type(lit: &Literal, dm: DataModel) -> Result<Type, ValueError> {
    match lit {
        Literal::Int {
            value,
            unsigned,
            long,
            non_decimal,
        } => {
            let long_scalar_s = if dm.long_bytes == 8 {
                Scalar::I64
            } else {
                Scalar::I32
            };
            let long_scalar_u = if dm.long_bytes == 8 {
                Scalar::U64
            } else {
                Scalar::U32
            };
            // Candidate list per C11 §6.4.4.1p5.
            let mut cands: Vec<Scalar> = Vec::new();
            let signed_ok = !unsigned;
            let unsigned_ok = *unsigned || *non_decimal;
            for rank in (*long as usize)..3 {
                let (s, u) = match rank {
                    0 => (Scalar::I32, Scalar::U32),
                    1 => (long_scalar_s, long_scalar_u),
                    _ => (Scalar::I64, Scalar::U64),
                };
                if signed_ok {
                    cands.push(s);
                }
                if unsigned_ok {
                    cands.push(u);
                }
            }
            for s in cands {
                if int_fits(*value, s) {
                    return Ok(Type::Scalar(s));
                }
            }
            err(format!(
                "integer literal {value} does not fit any C integer type"
            ))
        }
        Literal::Float { suffix, .. } => Ok(Type::Scalar(match suffix {
            Some('l') => match dm.long_double {
                crate::types::LongDouble::X87 => Scalar::F80,
                crate::types::LongDouble::Quad => Scalar::F128,
                crate::types::LongDouble::Double => Scalar::F64,
            },
            // float is promoted to double.
            _ => Scalar::F64,
        })),
        Literal::Str(_) => Ok(Type::pointer("char")),
        Literal::Null => Ok(Type::pointer("void")),
        Literal::List(_) => err(
            "cannot infer the type of a braced initialiser in a variadic position; \
             declare its type after the ellipsis",
        ),
    }
}

fn int_fits(v: i128, s: Scalar) -> bool {
    let bits = s.size() * 8;
    match s {
        Scalar::Bool => v == 0 || v == 1,
        _ if s.is_signed() => {
            let lim = 1i128 << (bits - 1);
            bits >= 128 || (-lim..lim).contains(&v)
        }
        _ => v >= 0 && (bits >= 128 || v < (1i128 << bits)),
    }
}

/// Storage for strings that literals point at; keeps them alive for a call.
#[derive(Default)]
pub struct StringPool {
    strings: Vec<Box<[u8]>>,
}

impl StringPool {
    fn intern(&mut self, bytes: &[u8]) -> u64 {
        let mut v = bytes.to_vec();
        v.push(0);
        let b = v.into_boxed_slice();
        let p = b.as_ptr() as u64;
        self.strings.push(b);
        p
    }
}

/// Writes `lit` as a value of type `ty` into `out` (exactly `ty.size()`
/// bytes, little-endian). Strings are copied into `pool`, which must
/// outlive any use of the bytes.
pub fn encode(
    lit: &Literal,
    ty: &Type,
    out: &mut [u8],
    pool: &mut StringPool,
) -> Result<(), ValueError> {
    match ty {
        Type::Void => err("cannot pass a value of type void"),
        Type::Scalar(s) => encode_scalar(lit, *s, out, ty),
        Type::Pointer(pointee) => {
            let p: u64 = match lit {
                Literal::Null => 0,
                Literal::Str(bytes) => {
                    if !pointee.ends_with("char") {
                        return err(format!("a string literal cannot initialise {ty}"));
                    }
                    pool.intern(bytes)
                }
                Literal::Int { value, .. } if (0..=u64::MAX as i128).contains(value) => {
                    *value as u64
                }
                _ => {
                    return err(format!(
                        "expected a pointer (NULL, a string or an address) for {ty}"
                    ))
                }
            };
            out[..8].copy_from_slice(&p.to_le_bytes());
            Ok(())
        }
        Type::Complex(s) => {
            let parts: Vec<Literal> = match lit {
                Literal::List(items) if items.len() <= 2 => items.clone(),
                Literal::Float { .. } | Literal::Int { .. } => vec![lit.clone()],
                _ => return err(format!("expected {{real, imaginary}} for {ty}")),
            };
            let n = s.size() as usize;
            out[..2 * n].fill(0);
            for (i, part) in parts.iter().enumerate() {
                encode_scalar(part, *s, &mut out[i * n..(i + 1) * n], ty)?;
            }
            Ok(())
        }
        Type::Array(elem, len) => {
            out[..ty.size() as usize].fill(0);
            let n = elem.size() as usize;
            match lit {
                Literal::Str(bytes) if elem.size() == 1 && !matches!(**elem, Type::Pointer(_)) => {
                    if bytes.len() > *len as usize {
                        return err(format!("string of {} bytes does not fit {ty}", bytes.len()));
                    }
                    out[..bytes.len()].copy_from_slice(bytes);
                    Ok(())
                }
                Literal::List(items) => {
                    if items.len() > *len as usize {
                        return err(format!("{} initialisers for {ty}", items.len()));
                    }
                    for (i, item) in items.iter().enumerate() {
                        encode(item, elem, &mut out[i * n..(i + 1) * n], pool)?;
                    }
                    Ok(())
                }
                _ => err(format!("expected {{…}} for {ty}")),
            }
        }
        Type::Record(r) => {
            out[..r.size as usize].fill(0);
            let items = match lit {
                Literal::List(items) => items,
                _ => return err(format!("expected {{…}} for {ty}")),
            };
            let limit = match r.kind {
                RecordKind::Struct => r.fields.len(),
                // C: a union's initialiser initialises its first member.
                RecordKind::Union => r.fields.len().min(1),
            };
            if items.len() > limit {
                return err(format!(
                    "{} initialisers for {ty} ({limit} members)",
                    items.len()
                ));
            }
            for (item, f) in items.iter().zip(&r.fields) {
                let at = f.offset as usize;
                encode(item, &f.ty, &mut out[at..at + f.ty.size() as usize], pool)?;
            }
            Ok(())
        }
    }
}

fn encode_scalar(lit: &Literal, s: Scalar, out: &mut [u8], ty: &Type) -> Result<(), ValueError> {
    let n = s.size() as usize;
    if s.is_float() {
        let v = match lit {
            Literal::Float { value, .. } => *value,
            Literal::Int { value, .. } => *value as f64,
            _ => return err(format!("expected a number for {ty}")),
        };
        match s {
            Scalar::F32 => out[..4].copy_from_slice(&(v as f32).to_le_bytes()),
            Scalar::F64 => out[..8].copy_from_slice(&v.to_le_bytes()),
            Scalar::F80 => out[..16].copy_from_slice(&f64_to_x87(v)),
            Scalar::F128 => out[..16].copy_from_slice(&f64_to_quad(v).to_le_bytes()),
            _ => unreachable!("is_float covers exactly these"),
        }
        return Ok(());
    }
    let v = match lit {
        Literal::Int { value, .. } => *value,
        Literal::Null if s == Scalar::Ptr => 0,
        Literal::Float { .. } => {
            return err(format!(
                "expected an integer for {ty}, found a floating literal"
            ))
        }
        _ => return err(format!("expected an integer for {ty}")),
    };
    // A literal that does not fit its type is an error (no silent wrap).
    if !int_fits(v, s) {
        return err(format!("{v} does not fit in {ty}"));
    }
    out[..n].copy_from_slice(&v.to_le_bytes()[..n]);
    Ok(())
}

/// Converts a double to the x87 80-bit format (exact), in 16 bytes.
pub fn f64_to_x87(v: f64) -> [u8; 16] {
    let bits = v.to_bits();
    let sign = (bits >> 63) as u16;
    let exp = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1 << 52) - 1);
    let (e, m): (u16, u64) = if exp == 0 && frac == 0 {
        (0, 0)
    } else if exp == 0x7ff {
        (0x7fff, (1 << 63) | (frac << 11))
    } else if exp == 0 {
        // Subnormal double: normalise (x87 has the range).
        let shift = frac.leading_zeros() - 11;
        let m = frac << (11 + shift);
        ((15360 + 1 - shift as i32) as u16, m)
    } else {
        ((exp - 1023 + 16383) as u16, (1 << 63) | (frac << 11))
    };
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&m.to_le_bytes());
    out[8..10].copy_from_slice(&((sign << 15) | e).to_le_bytes());
    out
}

/// Converts an x87 80-bit value to the nearest double.
pub fn x87_to_f64(b: &[u8]) -> f64 {
    let m = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
    let se = u16::from_le_bytes([b[8], b[9]]);
    let sign = if se >> 15 == 1 { -1.0 } else { 1.0 };
    let e = (se & 0x7fff) as i32;
    if e == 0x7fff {
        return if m << 1 == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    if m == 0 {
        return sign * 0.0;
    }
    // value = m * 2^(e - 16383 - 63); split the scaling to avoid overflow.
    let exp = e - 16383 - 63;
    sign * (m as f64) * 2f64.powi(exp / 2) * 2f64.powi(exp - exp / 2)
}

/// Converts a double to IEEE binary128 (exact).
pub fn f64_to_quad(v: f64) -> u128 {
    let bits = v.to_bits();
    let sign = (bits >> 63) as u128;
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = (bits & ((1 << 52) - 1)) as u128;
    let (e, m): (u128, u128) = if exp == 0 && frac == 0 {
        (0, 0)
    } else if exp == 0x7ff {
        (0x7fff, frac << 60)
    } else if exp == 0 {
        // Subnormal double frac * 2^-1074: normalise so its top bit is the
        // implicit one of the quad.
        let top = 127 - frac.leading_zeros() as i64;
        let m = (frac << (112 - top)) & ((1u128 << 112) - 1);
        ((top - 1074 + 16383) as u128, m)
    } else {
        ((exp - 1023 + 16383) as u128, frac << 60)
    };
    (sign << 127) | (e << 112) | m
}

/// Converts IEEE binary128 to the nearest double.
pub fn quad_to_f64(q: u128) -> f64 {
    let sign = if q >> 127 == 1 { -1.0 } else { 1.0 };
    let e = ((q >> 112) & 0x7fff) as i32;
    let m = q & ((1u128 << 112) - 1);
    if e == 0x7fff {
        return if m == 0 {
            sign * f64::INFINITY
        } else {
            f64::NAN
        };
    }
    if e == 0 && m == 0 {
        return sign * 0.0;
    }
    let (mant, exp) = if e == 0 {
        (m as f64, -16382 - 112)
    } else {
        (((1u128 << 112) | m) as f64, e - 16383 - 112)
    };
    sign * mant * 2f64.powi(exp / 2) * 2f64.powi(exp - exp / 2)
}

/// Prints the value of type `ty` held in `bytes` as a C literal: integers in
/// decimal, floating values in the shortest form that reads back exactly,
/// records and arrays as `{…}`, `char *` as a quoted string or `NULL`, other
/// pointers as hex.
///
/// # Safety
/// For `char *` values the pointer is followed: it must be NULL or point at
/// a NUL-terminated string (as a C function returning `char *` promises).
pub unsafe fn format_value(ty: &Type, bytes: &[u8]) -> String {
    let mut s = String::new();
    // SAFETY: forwarded from the caller.
    unsafe { fmt_into(&mut s, ty, bytes) };
    s
}

unsafe fn fmt_into(s: &mut String, ty: &Type, b: &[u8]) {
    match ty {
        Type::Void => s.push_str("void"),
        Type::Scalar(sc) => fmt_scalar(s, *sc, b),
        Type::Complex(sc) => {
            let n = sc.size() as usize;
            s.push('{');
            fmt_scalar(s, *sc, &b[..n]);
            s.push_str(", ");
            fmt_scalar(s, *sc, &b[n..2 * n]);
            s.push('}');
        }
        Type::Pointer(pointee) => {
            let p = u64::from_le_bytes(b[..8].try_into().expect("8 bytes"));
            let is_char = matches!(&**pointee, "char" | "signed char" | "unsigned char");
            if is_char {
                if p == 0 {
                    s.push_str("NULL");
                } else {
                    // SAFETY: the caller promises a NUL-terminated string.
                    let cs = unsafe { std::ffi::CStr::from_ptr(p as *const std::ffi::c_char) };
                    quote_bytes(s, cs.to_bytes());
                }
            } else {
                let _ = write!(s, "{p:#x}");
            }
        }
        Type::Array(elem, len) => {
            let n = elem.size() as usize;
            s.push('{');
            for i in 0..*len as usize {
                if i > 0 {
                    s.push_str(", ");
                }
                // SAFETY: forwarded.
                unsafe { fmt_into(s, elem, &b[i * n..(i + 1) * n]) };
            }
            s.push('}');
        }
        Type::Record(r) => {
            s.push('{');
            let fields: &[_] = match r.kind {
                RecordKind::Struct => &r.fields,
                RecordKind::Union => &r.fields[..r.fields.len().min(1)],
            };
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    s.push_str(", ");
                }
                let at = f.offset as usize;
                // SAFETY: forwarded.
                unsafe { fmt_into(s, &f.ty, &b[at..at + f.ty.size() as usize]) };
            }
            s.push('}');
        }
    }
}

fn fmt_scalar(s: &mut String, sc: Scalar, b: &[u8]) {
    let n = sc.size() as usize;
    let mut raw = [0u8; 16];
    raw[..n].copy_from_slice(&b[..n]);
    let u = u128::from_le_bytes(raw);
    let _ = match sc {
        Scalar::Bool => write!(s, "{}", (u & 1) as u8),
        Scalar::F32 => fmt_float(s, f32::from_bits(u as u32) as f64, true),
        Scalar::F64 => fmt_float(s, f64::from_bits(u as u64), false),
        Scalar::F80 => fmt_float(s, x87_to_f64(&raw), false),
        Scalar::F128 => fmt_float(s, quad_to_f64(u), false),
        Scalar::Ptr => write!(s, "{u:#x}"),
        _ if sc.is_signed() => {
            let shift = 128 - 8 * n as u32;
            write!(s, "{}", ((u << shift) as i128) >> shift)
        }
        _ => write!(s, "{u}"),
    };
}

fn fmt_float(s: &mut String, v: f64, single: bool) -> std::fmt::Result {
    if v.is_nan() {
        return s.write_str("nan");
    }
    if v.is_infinite() {
        return s.write_str(if v < 0.0 { "-inf" } else { "inf" });
    }
    // Rust's Debug prints the shortest digits that read back exactly,
    // always with a '.' or an exponent, so the text is a C floating literal.
    if single {
        write!(s, "{:?}", v as f32)
    } else {
        write!(s, "{v:?}")
    }
}

fn quote_bytes(s: &mut String, bytes: &[u8]) {
    s.push('"');
    for &c in bytes {
        match c {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\r' => s.push_str("\\r"),
            0x20..=0x7e => s.push(c as char),
            _ => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Abi;

    fn int(t: &str) -> i128 {
        match parse_literal(t).unwrap() {
            Literal::Int { value, .. } => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn integer_literals() {
        assert_eq!(int("42"), 42);
        assert_eq!(int("-0x10"), -16);
        assert_eq!(int("017"), 15);
        assert_eq!(int("0b101"), 5);
        assert_eq!(int("18446744073709551615ULL"), u64::MAX as i128);
        assert_eq!(int("'A'"), 65);
        assert_eq!(int("'\\n'"), 10);
        assert!(parse_literal("12q").is_err());
        assert!(parse_literal("0x").is_err());
    }

    #[test]
    fn float_literals_round_trip() {
        for (t, v) in [
            ("2.5", 2.5),
            ("1e-7", 1e-7),
            ("0x1.8p1", 3.0),
            ("-.5f", -0.5),
        ] {
            match parse_literal(t).unwrap() {
                Literal::Float { value, .. } => assert_eq!(value, v, "{t}"),
                other => panic!("{t}: {other:?}"),
            }
        }
        let mut s = String::new();
        fmt_float(&mut s, 0.1, false).unwrap();
        assert_eq!(s, "0.1");
    }

    #[test]
    fn variadic_inference_follows_c() {
        let dm = Abi::SysV64.data_model();
        let t = |s: &str| infer_variadic_type(&parse_literal(s).unwrap(), dm).unwrap();
        assert_eq!(t("3"), Type::Scalar(Scalar::I32));
        assert_eq!(t("3000000000"), Type::Scalar(Scalar::I64));
        assert_eq!(t("0xffffffff"), Type::Scalar(Scalar::U32));
        assert_eq!(t("3u"), Type::Scalar(Scalar::U32));
        assert_eq!(t("2.5f"), Type::Scalar(Scalar::F64));
        assert_eq!(t("\"x\""), Type::pointer("char"));
        let w = Abi::Win64.data_model();
        assert_eq!(
            infer_variadic_type(&parse_literal("3000000000").unwrap(), w).unwrap(),
            Type::Scalar(Scalar::I64)
        );
    }

    #[test]
    fn encode_checks_ranges() {
        let mut pool = StringPool::default();
        let mut out = [0u8; 16];
        let lit = parse_literal("300").unwrap();
        assert!(encode(&lit, &Type::Scalar(Scalar::U8), &mut out, &mut pool).is_err());
        let lit = parse_literal("-1").unwrap();
        assert!(encode(&lit, &Type::Scalar(Scalar::U32), &mut out, &mut pool).is_err());
        encode(&lit, &Type::Scalar(Scalar::I16), &mut out, &mut pool).unwrap();
        assert_eq!(&out[..2], &[0xff, 0xff]);
    }

    #[test]
    fn x87_and_quad_conversions_are_exact() {
        for v in [1.0, -2.5, 1e300, 5e-324, 0.1, 123456.789] {
            assert_eq!(x87_to_f64(&f64_to_x87(v)), v, "{v}");
            assert_eq!(quad_to_f64(f64_to_quad(v)), v, "{v}");
        }
        // 1.0 in x87: mantissa 0x8000000000000000, exponent 0x3fff.
        let b = f64_to_x87(1.0);
        assert_eq!(&b[..10], &[0, 0, 0, 0, 0, 0, 0, 0x80, 0xff, 0x3f]);
        // 1.0 in binary128: 0x3fff << 112.
        assert_eq!(f64_to_quad(1.0), 0x3fffu128 << 112);
    }

    #[test]
    fn formats_records_and_strings() {
        let rec = crate::types::layout_record(
            RecordKind::Struct,
            None,
            vec![
                crate::types::FieldDecl {
                    name: Some("q".into()),
                    ty: Type::Scalar(Scalar::I32),
                    aligned: None,
                },
                crate::types::FieldDecl {
                    name: Some("r".into()),
                    ty: Type::Scalar(Scalar::F64),
                    aligned: None,
                },
            ],
            false,
            None,
        )
        .unwrap();
        let ty = Type::Record(std::sync::Arc::new(rec));
        let mut out = vec![0u8; 16];
        let mut pool = StringPool::default();
        encode(
            &parse_literal("{-3, 2.5}").unwrap(),
            &ty,
            &mut out,
            &mut pool,
        )
        .unwrap();
        // SAFETY: no char pointers in this type.
        assert_eq!(unsafe { format_value(&ty, &out) }, "{-3, 2.5}");
        let s = b"hi\n\0";
        let p = (s.as_ptr() as u64).to_le_bytes();
        // SAFETY: p points at a NUL-terminated string.
        assert_eq!(
            unsafe { format_value(&Type::pointer("char"), &p) },
            "\"hi\\n\""
        );
    }
}
