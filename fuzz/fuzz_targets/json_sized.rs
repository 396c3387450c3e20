#![no_main]
//! The reader of every value from JS, fed texts of the sizes and depths an
//! attacker would pick: a fragment repeated up to a million times inside an
//! array, an object or a string, or nested up to a thousand deep, read with
//! a bound anywhere from 0 to twice the default (a text is built only a
//! little past its bound: the rest could only be refused). Whatever the text, the
//! reader never panics; a text over the bound is refused whole, and one
//! nested deeper than the reader goes is unsupported — before anything of
//! either is kept.
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tokenkeeper_core::json;
use tokenkeeper_core::protocol::decode;
use tokenkeeper_core::value::{OptValue, MAX_DEPTH, MAX_JSON, TOO_LARGE};

#[derive(Debug, Arbitrary)]
enum Shape {
    /// `[f,f,…,f]`
    Array,
    /// `{"0":f,"1":f,…}`
    Object,
    /// `"ff…f"`
    Text,
    /// `[[[…f…]]]` or `{"a":{"a":…f…}}`
    Nested { objects: bool },
}

#[derive(Debug, Arbitrary)]
struct Input<'a> {
    shape: Shape,
    count: u32,
    max: u32,
    fragment: &'a str,
}

fuzz_target!(|input: Input| {
    let count = (input.count % 1_000_001) as usize;
    let max = (input.max as usize) % (2 * MAX_JSON + 1);
    let f = input.fragment;
    let mut text = String::new();
    let depth = match input.shape {
        Shape::Array | Shape::Object => {
            let object = matches!(input.shape, Shape::Object);
            text.push(if object { '{' } else { '[' });
            for i in 0..count {
                if i > 0 {
                    text.push(',');
                }
                if object {
                    text.push_str(&format!("\"{i}\":"));
                }
                text.push_str(f);
                if text.len() > max + 64 {
                    break;
                }
            }
            text.push(if object { '}' } else { ']' });
            None
        }
        Shape::Text => {
            text.push('"');
            for _ in 0..count {
                text.push_str(f);
                if text.len() > max + 64 {
                    break;
                }
            }
            text.push('"');
            None
        }
        Shape::Nested { objects } => {
            let depth = count % 1_001;
            for _ in 0..depth {
                text.push_str(if objects { "{\"a\":" } else { "[" });
            }
            text.push_str("0");
            for _ in 0..depth {
                text.push(if objects { '}' } else { ']' });
            }
            Some(depth)
        }
    };
    let value = OptValue::from_json(Some(&text), max);
    if text.len() > max {
        assert_eq!(value, OptValue::Other(TOO_LARGE), "a text over the bound is refused whole");
    } else if let Some(depth) = depth {
        // The number inside sits `depth` levels down: past the reader's
        // bound the text is not read (unsupported); within it, the top is
        // the outer container (what is deeper than MAX_DEPTH stands as Other).
        let unread = depth > json::MAX_DEPTH;
        assert_eq!(
            matches!(value, OptValue::Other(_)),
            unread,
            "nested {depth} deep (the reader goes {} deep, keeps {MAX_DEPTH})",
            json::MAX_DEPTH
        );
    }
    let _ = decode(&value, "me");
});
