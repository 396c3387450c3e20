//! A small, strict JSON scanner for the JSON the core reads itself: the
//! numeric claims (`exp`, `iat`) of a JWT payload, and the JSON text the
//! executor hands over for every value from JS — options, tab messages,
//! token responses ([`crate::value`]).
//!
//! It keeps serde_json out of the wasm (size), never panics, and rejects what
//! is not JSON. Nesting is bounded twice: arrays and objects past the
//! caller's depth stand as one [`OptValue::Other`], and past a hard limit
//! the text is not read at all.

use crate::value::OptValue;
use alloc::string::String;
use alloc::vec::Vec;

/// What a JSON top-level object scan found: the numeric values of the asked keys.
pub(crate) type Found<const N: usize> = [Option<f64>; N];

/// How deep the reader goes: a text nested deeper is not read at all (the
/// values kept go less deep: [`crate::value::MAX_DEPTH`]).
pub const MAX_DEPTH: usize = 32;

/// Scans `text`, which must be one JSON object, and returns the values of the
/// top-level keys in `keys` that hold numbers. A key that holds another type
/// is reported as `None`. Returns `None` when `text` is not a JSON object.
pub(crate) fn object_numbers<const N: usize>(text: &[u8], keys: [&str; N]) -> Option<Found<N>> {
    let OptValue::Map(entries) = tree(text, 1)? else {
        return None;
    };
    Some(keys.map(|key| match OptValue::field(&entries, key) {
        OptValue::Num(n) => Some(*n),
        _ => None,
    }))
}

/// Reads `text`, one JSON value, into an [`OptValue`]: arrays and objects
/// nested at `max_depth` or deeper are [`OptValue::Other`] ("a value nested
/// too deep"), as the shell's own walk of a JS value had them. `None` when
/// `text` is not JSON.
pub(crate) fn tree(text: &[u8], max_depth: usize) -> Option<OptValue> {
    let mut s = Scanner { b: text, i: 0 };
    let v = s.tree(0, max_depth)?;
    s.end().then_some(v)
}

/// Parses a whole JSON number (`-?int(.frac)?(e[+-]?exp)?`) without the
/// standard library's float parser (which is large in wasm). Exact for the
/// integers that matter here (timestamps, lifetimes: up to 2^53); within a
/// few ulps otherwise, which is plenty for times in ms.
pub fn decimal(text: &[u8]) -> Option<f64> {
    let mut s = Scanner { b: text, i: 0 };
    let negative = s.peek() == Some(b'-');
    if negative {
        s.i += 1;
    }
    let mut mantissa: u64 = 0;
    let mut exponent: i32 = 0;
    let mut digits = 0;
    let mut push = |d: u8, exponent: &mut i32, fraction: bool| {
        if digits < 19 {
            mantissa = mantissa * 10 + u64::from(d - b'0');
            digits += usize::from(mantissa > 0);
            if fraction {
                *exponent -= 1;
            }
        } else if !fraction {
            *exponent += 1;
        }
    };
    match s.next()? {
        b'0' => {}
        d @ b'1'..=b'9' => {
            push(d, &mut exponent, false);
            while let Some(d @ b'0'..=b'9') = s.peek() {
                s.i += 1;
                push(d, &mut exponent, false);
            }
        }
        _ => return None,
    }
    if s.peek() == Some(b'.') {
        s.i += 1;
        if !s.peek()?.is_ascii_digit() {
            return None;
        }
        while let Some(d @ b'0'..=b'9') = s.peek() {
            s.i += 1;
            push(d, &mut exponent, true);
        }
    }
    if matches!(s.peek(), Some(b'e' | b'E')) {
        s.i += 1;
        let negative_exp = match s.peek() {
            Some(b'-') => {
                s.i += 1;
                true
            }
            Some(b'+') => {
                s.i += 1;
                false
            }
            _ => false,
        };
        if !s.peek()?.is_ascii_digit() {
            return None;
        }
        let mut e: i32 = 0;
        while let Some(d @ b'0'..=b'9') = s.peek() {
            s.i += 1;
            e = e.saturating_mul(10).saturating_add(i32::from(d - b'0'));
        }
        exponent = exponent.saturating_add(if negative_exp { -e } else { e });
    }
    if s.i != text.len() {
        return None;
    }
    let mut value = mantissa as f64;
    if value != 0.0 {
        // Two steps keep 10^e finite for the large exponents of tiny numbers.
        let e = exponent.clamp(-700, 700);
        let half = e / 2;
        value = value * powi(10.0, half) * powi(10.0, e - half);
    }
    let value = if negative { -value } else { value };
    value.is_finite().then_some(value)
}

/// `base^exp` by squaring (`f64::powi` needs the standard library).
pub fn powi(base: f64, exp: i32) -> f64 {
    let mut result = 1.0;
    let mut b = base;
    let mut n = exp.unsigned_abs();
    while n > 0 {
        if n & 1 == 1 {
            result *= b;
        }
        b *= b;
        n >>= 1;
    }
    if exp < 0 {
        1.0 / result
    } else {
        result
    }
}

/// The smallest whole number not below `x`, for `x` in the range of `i64`
/// (`f64::ceil` needs the standard library); other values come back as they are.
pub fn ceil(x: f64) -> f64 {
    if x.is_nan() || x.abs() >= 9.0e15 {
        return x;
    }
    let t = x as i64 as f64;
    if t < x {
        t + 1.0
    } else {
        t
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.i += 1;
        Some(c)
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        (self.next()? == c).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    /// Whether only whitespace is left.
    fn end(&mut self) -> bool {
        self.ws();
        self.i == self.b.len()
    }

    /// A string, unescaped. A lone surrogate (`\ud800` alone) becomes
    /// U+FFFD, as the browser's own conversion of such a JS string does.
    fn text(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = Vec::new();
        loop {
            let start = self.i;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.i += 1;
            }
            out.extend_from_slice(self.b.get(start..self.i)?);
            let c = match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' => '"',
                    b'\\' => '\\',
                    b'/' => '/',
                    b'b' => '\u{8}',
                    b'f' => '\u{c}',
                    b'n' => '\n',
                    b'r' => '\r',
                    b't' => '\t',
                    b'u' => self.unicode()?,
                    _ => return None,
                },
                _ => return None,
            };
            out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
        }
        String::from_utf8(out).ok()
    }

    fn hex4(&mut self) -> Option<u32> {
        let mut v = 0;
        for _ in 0..4 {
            v = v * 16 + char::from(self.next()?).to_digit(16)?;
        }
        Some(v)
    }

    /// The character of a `\uXXXX` escape (its `\u` read), with the low
    /// half of a surrogate pair when one follows.
    fn unicode(&mut self) -> Option<char> {
        let hi = self.hex4()?;
        if (0xD800..0xDC00).contains(&hi) {
            let pair = self.i;
            if self.literal(b"\\u").is_some() {
                let lo = self.hex4()?;
                if (0xDC00..0xE000).contains(&lo) {
                    return char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00));
                }
            }
            self.i = pair;
        }
        Some(char::from_u32(hi).unwrap_or('\u{FFFD}'))
    }

    /// One value at `depth`: an array or object at `max_depth` or deeper
    /// is read, then stands as [`OptValue::Other`].
    fn tree(&mut self, depth: usize, max_depth: usize) -> Option<OptValue> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        let v = match self.peek()? {
            b'"' => OptValue::Str(self.text()?),
            b'-' | b'0'..=b'9' => OptValue::Num(self.number()?),
            b't' => self.literal(b"true").map(|_| OptValue::Bool(true))?,
            b'f' => self.literal(b"false").map(|_| OptValue::Bool(false))?,
            b'n' => self.literal(b"null").map(|_| OptValue::Null)?,
            b'[' => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                } else {
                    loop {
                        items.push(self.tree(depth + 1, max_depth)?);
                        self.ws();
                        match self.next()? {
                            b',' => continue,
                            b']' => break,
                            _ => return None,
                        }
                    }
                }
                OptValue::List(items)
            }
            b'{' => {
                self.i += 1;
                let mut entries = Vec::new();
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let key = self.text()?;
                        self.ws();
                        self.eat(b':')?;
                        entries.push((key, self.tree(depth + 1, max_depth)?));
                        self.ws();
                        match self.next()? {
                            b',' => continue,
                            b'}' => break,
                            _ => return None,
                        }
                    }
                }
                OptValue::unmark(entries)
            }
            _ => return None,
        };
        Some(match v {
            OptValue::List(_) | OptValue::Map(_) if depth >= max_depth => {
                OptValue::Other("a value nested too deep")
            }
            v => v,
        })
    }

    fn number(&mut self) -> Option<f64> {
        let start = self.i;
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.next()? {
            b'0' => {}
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if !self.peek()?.is_ascii_digit() {
                return None;
            }
            self.digits();
        }
        decimal(self.b.get(start..self.i)?)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.i += 1;
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i.checked_add(word.len())?;
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_top_level_numbers_only() {
        let t =
            br#"{"sub":"a","nested":{"exp":1},"exp":1700000000,"iat":1.5e3,"arr":[1,{"x":[]}]}"#;
        assert_eq!(
            object_numbers(t, ["exp", "iat", "nbf"]),
            Some([Some(1_700_000_000.0), Some(1500.0), None])
        );
    }

    #[test]
    fn non_number_claims_are_absent() {
        assert_eq!(
            object_numbers(br#"{"exp":"soon","iat":null}"#, ["exp", "iat"]),
            Some([None, None])
        );
    }

    #[test]
    fn rejects_what_is_not_a_json_object() {
        for bad in [
            &b""[..],
            b"[]",
            b"{",
            b"{\"exp\":}",
            b"{\"exp\":01}",
            b"{\"exp\":1,}",
            b"{\"exp\":1} x",
            b"{\"a\":tru}",
            b"{\"a\":\"\\q\"}",
            b"{\"a\":1e}",
            b"{\"a\":-}",
            b"{\"a\":1.}",
        ] {
            assert_eq!(object_numbers(bad, ["exp"]), None, "{:?}", bad);
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let mut t = alloc::vec::Vec::new();
        t.extend_from_slice(b"{\"a\":");
        t.extend(core::iter::repeat_n(b'[', 10_000));
        assert_eq!(object_numbers(&t, ["a"]), None);
    }

    #[test]
    fn nesting_past_the_hard_bound_is_not_read() {
        // However deep values are kept, reading stops past MAX_DEPTH levels.
        let nested = |n: usize| "[".repeat(n) + &"]".repeat(n);
        assert!(tree(nested(MAX_DEPTH + 1).as_bytes(), 4).is_some());
        assert_eq!(tree(nested(MAX_DEPTH + 2).as_bytes(), 4), None);
        let objects = |n: usize| r#"{"a":"#.repeat(n) + "1" + &"}".repeat(n);
        assert!(tree(objects(MAX_DEPTH).as_bytes(), 4).is_some());
        assert_eq!(tree(objects(MAX_DEPTH + 1).as_bytes(), 4), None);
    }

    #[test]
    fn decimal_numbers() {
        for (text, want) in [
            ("0", 0.0),
            ("-0", 0.0),
            ("1700000000", 1_700_000_000.0),
            ("9007199254740991", 9_007_199_254_740_991.0),
            ("3600", 3600.0),
            ("1.5", 1.5),
            ("-2.25", -2.25),
            ("1.5e3", 1500.0),
            ("15E-1", 1.5),
            ("1e+2", 100.0),
            ("0.000001", 0.000_001),
            ("12345678901234567890123", 1.234_567_890_123_456_8e22),
            // Past 19 significant digits the rest only scales; leading
            // zeros of a fraction are not significant.
            ("99999999999999999999999", 1e23),
            ("0.0000000000000000000000123", 1.23e-23),
            (
                "0.00000000000000000000001234567890123456789",
                1.234_567_890_123_456_8e-23,
            ),
        ] {
            let got = decimal(text.as_bytes()).unwrap();
            assert!(
                (got - want).abs() <= want.abs() * 1e-15,
                "{text}: {got} != {want}"
            );
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1x", " 1", "1e999", "NaN",
        ] {
            assert_eq!(decimal(bad.as_bytes()), None, "{bad}");
        }
    }

    #[test]
    fn ceil_and_powi() {
        for (x, want) in [
            (1.5, 2.0),
            (1.0, 1.0),
            (0.2, 1.0),
            (0.0, 0.0),
            (-0.5, 0.0),
            (-1.5, -1.0),
            (-2.0, -2.0),
            (1_700_000_000_000.25, 1_700_000_000_001.0),
            (1e300, 1e300),
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
        ] {
            assert_eq!(ceil(x), want, "{x}");
        }
        assert!(ceil(f64::NAN).is_nan());
        assert_eq!(powi(2.0, 10), 1024.0);
        assert_eq!(powi(10.0, 0), 1.0);
        assert_eq!(powi(10.0, -2), 0.01);
        assert_eq!(powi(-3.0, 3), -27.0);
    }

    #[test]
    fn empty_object_and_whitespace() {
        assert_eq!(object_numbers(b" { } ", ["exp"]), Some([None]));
        assert_eq!(
            object_numbers(b"{ \"exp\" : 5 }\n", ["exp"]),
            Some([Some(5.0)])
        );
    }
}
