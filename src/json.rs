//! A small, strict JSON scanner for the one thing the core needs from JSON it
//! did not parse with the browser: numeric claims (`exp`, `iat`) at the top
//! level of a JWT payload.
//!
//! It keeps serde_json out of the wasm (size), never panics, and rejects what
//! is not JSON. Nested values are skipped with a depth limit.

/// What a JSON top-level object scan found: the numeric values of the asked keys.
pub(crate) type Found<const N: usize> = [Option<f64>; N];

const MAX_DEPTH: usize = 32;

/// Scans `text`, which must be one JSON object, and returns the values of the
/// top-level keys in `keys` that hold numbers. A key that holds another type
/// is reported as `None`. Returns `None` when `text` is not a JSON object.
pub(crate) fn object_numbers<const N: usize>(text: &[u8], keys: [&str; N]) -> Option<Found<N>> {
    let mut s = Scanner { b: text, i: 0 };
    let mut found: Found<N> = [None; N];
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.peek() == Some(b'}') {
        s.i += 1;
    } else {
        loop {
            s.ws();
            let key = s.string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let slot = keys.iter().position(|k| k.as_bytes() == key.as_slice());
            match (slot, s.peek()) {
                (Some(idx), Some(b'-' | b'0'..=b'9')) => {
                    let n = s.number()?;
                    if let Some(v) = found.get_mut(idx) {
                        *v = Some(n);
                    }
                }
                _ => s.value(0)?,
            }
            s.ws();
            match s.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
    }
    s.ws();
    if s.i == s.b.len() {
        Some(found)
    } else {
        None
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

    /// A string; returns its raw bytes (escapes kept as written, which is
    /// enough to compare against plain ASCII key names).
    fn string(&mut self) -> Option<alloc::vec::Vec<u8>> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match self.next()? {
                b'"' => break,
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            if !self.next()?.is_ascii_hexdigit() {
                                return None;
                            }
                        }
                    }
                    _ => return None,
                },
                c if c < 0x20 => return None,
                _ => {}
            }
        }
        self.b.get(start..self.i - 1).map(|s| s.to_vec())
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
        let text = core::str::from_utf8(self.b.get(start..self.i)?).ok()?;
        text.parse::<f64>().ok().filter(|n| n.is_finite())
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

    fn value(&mut self, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.ws();
        match self.peek()? {
            b'"' => self.string().map(|_| ()),
            b'-' | b'0'..=b'9' => self.number().map(|_| ()),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'[' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b']' => return Some(()),
                        _ => return None,
                    }
                }
            }
            b'{' => {
                self.i += 1;
                self.ws();
                if self.peek() == Some(b'}') {
                    self.i += 1;
                    return Some(());
                }
                loop {
                    self.ws();
                    self.string()?;
                    self.ws();
                    self.eat(b':')?;
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => continue,
                        b'}' => return Some(()),
                        _ => return None,
                    }
                }
            }
            _ => None,
        }
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
    fn empty_object_and_whitespace() {
        assert_eq!(object_numbers(b" { } ", ["exp"]), Some([None]));
        assert_eq!(
            object_numbers(b"{ \"exp\" : 5 }\n", ["exp"]),
            Some([Some(5.0)])
        );
    }
}
