//! The tab messages and JSON values of the simulated worlds (`sim`, and the
//! simulator's `model`), as the browser's executor hands them over.

use tokenkeeper_core::protocol::Message;
use tokenkeeper_core::value::OptValue;
use tokenkeeper_core::wire;

/// A message as a tab posts it: the keeper's JSON (`wire::tab_message`),
/// parsed as the browser's executor parses it, and as the receiving tab's
/// shell hands it over.
pub fn encode(message: &Message, from: &str) -> OptValue {
    match serde_json::from_str(&wire::tab_message(message, from)) {
        Ok(v) => from_json(&v),
        Err(e) => panic!("the tab message is not JSON: {e}"),
    }
}

/// A parsed JSON value in the options' neutral form.
pub fn from_json(v: &serde_json::Value) -> OptValue {
    use serde_json::Value;
    match v {
        Value::Null => OptValue::Null,
        Value::Bool(b) => OptValue::Bool(*b),
        Value::Number(n) => OptValue::Num(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => OptValue::Str(s.clone()),
        Value::Array(a) => OptValue::List(a.iter().map(from_json).collect()),
        Value::Object(o) => {
            OptValue::Map(o.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
        }
    }
}
