//! Shared helpers of the fuzz targets: an arbitrary JS-like value.

use arbitrary::{Result, Unstructured};
use tokenkeeper_core::value::OptValue;

const KEYS: &[&str] = &[
    "v", "type", "from", "gen", "access", "refresh", "expiresAt", "issuedAt", "reason",
    "refreshUrl", "refreshStyle", "clientId", "scope", "header", "scheme", "allowedOrigins",
    "refreshLeadSeconds", "renewHeader", "logoutUrl", "fields", "accessToken", "refreshToken",
    "expiresIn", "channel",
];
const STRINGS: &[&str] = &[
    "hello", "session", "logout", "local", "json", "form", "cookie", "/token/refresh",
    "https://api.example", "x-auth-token", "Bearer", "a.b.c", "",
];

/// An arbitrary options-or-message-like value, biased towards the names the
/// parsers look at.
pub fn opt_value(u: &mut Unstructured<'_>, depth: u32) -> Result<OptValue> {
    let pick: u8 = u.int_in_range(0..=if depth == 0 { 6 } else { 8 })?;
    Ok(match pick {
        0 => OptValue::Undefined,
        1 => OptValue::Null,
        2 => OptValue::Bool(u.arbitrary()?),
        3 => OptValue::Num(if u.arbitrary()? {
            u.arbitrary()?
        } else {
            f64::from(u.int_in_range(-2i32..=1000)?)
        }),
        4 => OptValue::Str(u.arbitrary()?),
        5 => OptValue::Str((*u.choose(STRINGS)?).into()),
        6 => OptValue::Other("a function"),
        7 => {
            let n = u.int_in_range(0..=6)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(opt_value(u, depth - 1)?);
            }
            OptValue::List(items)
        }
        _ => {
            let n = u.int_in_range(0..=12)?;
            let mut entries = Vec::with_capacity(n);
            for _ in 0..n {
                let key = if u.arbitrary()? {
                    (*u.choose(KEYS)?).to_string()
                } else {
                    u.arbitrary()?
                };
                entries.push((key, opt_value(u, depth - 1)?));
            }
            OptValue::Map(entries)
        }
    })
}
