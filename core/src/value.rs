//! The mirror of JS values the core decodes: the constructor's options
//! ([`crate::config`]), the other tabs' messages ([`crate::protocol`]) and
//! token bodies ([`crate::wire::grant`]) arrive as JSON text the executor
//! wrote, bounded in size, and are read here into an [`OptValue`], bounded
//! in depth, for those modules to check.

use alloc::string::String;
use alloc::vec::Vec;

/// A JS value as the core sees it, without the JS engine.
#[derive(Debug, Clone, PartialEq)]
pub enum OptValue {
    /// `undefined` (or a missing key): the default applies.
    Undefined,
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Num(f64),
    /// A string.
    Str(String),
    /// An array.
    List(Vec<OptValue>),
    /// A plain object, its own enumerable string keys in order.
    Map(Vec<(String, OptValue)>),
    /// Anything else (a function, a symbol…), with its JS type name.
    Other(&'static str),
}

/// How deep a value from JS is read: arrays and objects nested deeper are
/// [`OptValue::Other`] ("a value nested too deep").
pub const MAX_DEPTH: usize = 4;

/// The longest JSON text of an options object or a tab message the core
/// reads, in bytes. A session message with two 16 KiB tokens fits with room
/// to spare; the executor never hands over more than one unit past it.
pub const MAX_JSON: usize = 64 * 1024;

/// What [`OptValue::Other`] says of a value whose JSON text is longer than
/// the reader takes.
pub const TOO_LARGE: &str = "a value too large";

/// The key of the marker object the executor writes for a value JSON has no
/// form for (see [`OptValue::from_json`]).
const MARK: &str = "\u{0}";

impl OptValue {
    /// What kind of value this is, as an error message names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            OptValue::Undefined => "undefined",
            OptValue::Null => "null",
            OptValue::Bool(_) => "a boolean",
            OptValue::Num(_) => "a number",
            OptValue::Str(s) if s.is_empty() => "an empty string",
            OptValue::Str(_) => "a string",
            OptValue::List(_) => "an array",
            OptValue::Map(_) => "an object",
            OptValue::Other(t) => t,
        }
    }

    /// Reads the JSON text the executor wrote of a JS value (`tk_json` in
    /// `js/executor.js`), `None` standing for `undefined`. A value JSON has
    /// no form for arrives as a marker object `{"\u0000": kind}` and is read
    /// back as what it was: a function, a symbol or a bigint
    /// ([`OptValue::Other`]), or a non-finite number; the marker `"large"`
    /// stands for a value whose text the executor stopped writing because
    /// it could only be over `max`. A text over `max`
    /// bytes ([`MAX_JSON`] for options and tab messages), or one that is not JSON, is
    /// [`OptValue::Other`] ("an unsupported value"): nothing of it is kept.
    ///
    /// ```
    /// use tokenkeeper_core::value::OptValue;
    /// let v = OptValue::from_json(Some(r#"{"a":[1,"\u00e9"],"f":{"\u0000":"function"}}"#), 100);
    /// assert_eq!(v, OptValue::Map(vec![
    ///     ("a".into(), OptValue::List(vec![OptValue::Num(1.0), OptValue::Str("é".into())])),
    ///     ("f".into(), OptValue::Other("a function")),
    /// ]));
    /// assert_eq!(OptValue::from_json(None, 100), OptValue::Undefined);
    /// ```
    pub fn from_json(text: Option<&str>, max: usize) -> OptValue {
        let Some(text) = text else {
            return OptValue::Undefined;
        };
        if text.len() > max {
            return OptValue::Other(TOO_LARGE);
        }
        crate::json::tree(text.as_bytes(), MAX_DEPTH)
            .unwrap_or(OptValue::Other("an unsupported value"))
    }

    /// An object's entries as read, or the value a marker stands for.
    pub(crate) fn unmark(entries: Vec<(String, OptValue)>) -> OptValue {
        match entries.as_slice() {
            [(key, OptValue::Str(kind))] if key == MARK => match kind.as_str() {
                "NaN" => OptValue::Num(f64::NAN),
                "Infinity" => OptValue::Num(f64::INFINITY),
                "-Infinity" => OptValue::Num(f64::NEG_INFINITY),
                "function" => OptValue::Other("a function"),
                "symbol" => OptValue::Other("a symbol"),
                "bigint" => OptValue::Other("a bigint"),
                // The executor stopped writing a value past its size bound.
                "large" => OptValue::Other(TOO_LARGE),
                _ => OptValue::Other("an unsupported value"),
            },
            _ => OptValue::Map(entries),
        }
    }

    /// The value of `key` among an object's entries (the last one when a
    /// key repeats, as `JSON.parse` has it), or [`OptValue::Undefined`].
    pub fn field<'a>(entries: &'a [(String, OptValue)], key: &str) -> &'a OptValue {
        entries
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map_or(&OptValue::Undefined, |(_, v)| v)
    }
}
