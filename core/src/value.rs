//! The mirror of JS values the core decodes: the constructor's options
//! ([`crate::config`]) and the other tabs' messages ([`crate::protocol`])
//! arrive as an [`OptValue`], read from the JS value by the shell
//! (`src/interop.rs`, bounded in depth), and checked by those modules.

use alloc::string::String;
use alloc::vec::Vec;

/// A JS value as the core sees it: what the shell read from the options
/// object or a tab message, without the JS engine.
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

impl OptValue {
    /// What kind of value this is, as an error message names it.
    pub fn type_name(&self) -> &'static str {
        match self {
            OptValue::Undefined => "undefined",
            OptValue::Null => "null",
            OptValue::Bool(_) => "a boolean",
            OptValue::Num(_) => "a number",
            OptValue::Str(_) => "a string",
            OptValue::List(_) => "an array",
            OptValue::Map(_) => "an object",
            OptValue::Other(t) => t,
        }
    }
}
