//! Tokenizer for the C declaration subset: identifiers, numbers, character
//! and string literals, punctuators. Comments are skipped; preprocessor
//! lines are rejected (the text must already be preprocessed).

use super::ParseError;

/// What kind of token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Ident,
    /// A preprocessing number (`12`, `0x1fu`, `1.5e3`): validated on use.
    Number,
    /// A character constant `'a'`.
    Char,
    /// A string literal (only inside attribute arguments and `asm` labels).
    Str,
    /// Punctuation; the text is the token's source slice.
    Punct,
    /// End of input (offset = length of the text).
    Eof,
}

/// A token: its kind and its byte range in the source.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
}

const PUNCT3: &[&str] = &["..."];
const PUNCT2: &[&str] = &["<<", ">>", "<=", ">=", "==", "!=", "&&", "||", "::"];
const PUNCT1: &str = "()[]{};,*:=+-~!/%&|^<>?.";

fn err(offset: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        offset,
        message: message.into(),
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b == b'$'
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$'
}

/// Splits `src` into tokens, ending with one [`Kind::Eof`] token.
pub(crate) fn tokenize(src: &str) -> Result<Vec<Token>, ParseError> {
    let b = src.as_bytes();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        if c == b'/' && b.get(i + 1) == Some(&b'*') {
            match src[i + 2..].find("*/") {
                Some(n) => i = i + 2 + n + 2,
                None => return Err(err(i, "unterminated comment")),
            }
            continue;
        }
        if c == b'#' {
            return Err(err(
                i,
                "preprocessor directives are not supported; pass preprocessed text",
            ));
        }
        let start = i;
        let kind = if is_ident_start(c) {
            while i < b.len() && is_ident_continue(b[i]) {
                i += 1;
            }
            Kind::Ident
        } else if c.is_ascii_digit() || (c == b'.' && b.get(i + 1).is_some_and(u8::is_ascii_digit))
        {
            // C11 6.4.8 preprocessing number.
            i += 1;
            while i < b.len() {
                let d = b[i];
                let exp_sign =
                    matches!(d, b'+' | b'-') && matches!(b[i - 1], b'e' | b'E' | b'p' | b'P');
                if exp_sign || d.is_ascii_alphanumeric() || d == b'_' || d == b'.' {
                    i += 1;
                } else {
                    break;
                }
            }
            Kind::Number
        } else if c == b'\'' || c == b'"' {
            i += 1;
            loop {
                match b.get(i) {
                    None | Some(b'\n') => {
                        let what = if c == b'"' {
                            "string literal"
                        } else {
                            "character constant"
                        };
                        return Err(err(start, format!("unterminated {what}")));
                    }
                    Some(b'\\') => i += 2,
                    Some(&d) if d == c => {
                        i += 1;
                        break;
                    }
                    Some(_) => i += 1,
                }
            }
            if c == b'"' {
                Kind::Str
            } else {
                Kind::Char
            }
        } else if let Some(p) = PUNCT3
            .iter()
            .chain(PUNCT2)
            .find(|p| src[i..].starts_with(**p))
        {
            i += p.len();
            Kind::Punct
        } else if PUNCT1.as_bytes().contains(&c) {
            i += 1;
            Kind::Punct
        } else {
            let ch = src[i..].chars().next().unwrap_or('?');
            return Err(err(
                i,
                format!("unexpected character '{}'", ch.escape_default()),
            ));
        };
        toks.push(Token {
            kind,
            start,
            end: i.min(b.len()),
        });
    }
    toks.push(Token {
        kind: Kind::Eof,
        start: b.len(),
        end: b.len(),
    });
    Ok(toks)
}

/// The value of an integer constant (C11 6.4.4.1), suffixes `u`/`l`/`ll`
/// accepted and ignored.
pub(crate) fn int_value(text: &str, offset: usize) -> Result<i128, ParseError> {
    let lower = text.to_ascii_lowercase();
    let (digits, radix) = if let Some(h) = lower.strip_prefix("0x") {
        (h, 16)
    } else if let Some(bin) = lower.strip_prefix("0b") {
        (bin, 2)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (&lower[1..], 8)
    } else {
        (lower.as_str(), 10)
    };
    let body = digits.trim_end_matches(['u', 'l']);
    let suffix = &digits[body.len()..];
    let suffix_ok = matches!(suffix, "" | "u" | "l" | "ul" | "lu" | "ll" | "ull" | "llu");
    let is_float = radix != 16 && (text.contains('.') || lower.contains('e'))
        || radix == 16 && (text.contains('.') || lower.contains('p'));
    if is_float {
        return Err(err(
            offset,
            format!("expected an integer constant, found '{text}'"),
        ));
    }
    if !suffix_ok || (body.is_empty() && radix != 8) {
        return Err(err(offset, format!("invalid integer constant '{text}'")));
    }
    if body.is_empty() {
        return Ok(0);
    }
    match u128::from_str_radix(body, radix) {
        Ok(v) if v <= i128::MAX as u128 && v <= u64::MAX as u128 => Ok(v as i128),
        Ok(_) => Err(err(
            offset,
            format!("integer constant '{text}' is too large"),
        )),
        Err(_) => Err(err(offset, format!("invalid integer constant '{text}'"))),
    }
}

/// The value of a character constant such as `'a'` or `'\n'`.
pub(crate) fn char_value(text: &str, offset: usize) -> Result<i128, ParseError> {
    let inner = text
        .strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .unwrap_or("");
    let bad = || err(offset, format!("unsupported character constant {text}"));
    let mut chars = inner.chars();
    let v = match chars.next() {
        Some('\\') => {
            let rest: String = chars.collect();
            match rest.as_str() {
                "n" => 10,
                "t" => 9,
                "r" => 13,
                "0" => 0,
                "\\" => 92,
                "'" => 39,
                "\"" => 34,
                "a" => 7,
                "b" => 8,
                "f" => 12,
                "v" => 11,
                _ => return Err(bad()),
            }
        }
        Some(c) if c.is_ascii() && chars.next().is_none() => c as i128,
        _ => return Err(bad()),
    };
    Ok(v)
}
