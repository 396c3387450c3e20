//! Values from JS as the core reads them: the JSON text the executor writes
//! (`tk_json` in js/executor.js) read back into an [`OptValue`], and the
//! token fields read from a token response's body.
#![cfg(not(target_arch = "wasm32"))]

use proptest::prelude::*;
use tokenkeeper_core::config::Fields;
use tokenkeeper_core::value::{OptValue, MAX_DEPTH, MAX_JSON};
use tokenkeeper_core::wire;

fn read(text: &str) -> OptValue {
    OptValue::from_json(Some(text), MAX_JSON)
}

fn s(v: &str) -> OptValue {
    OptValue::Str(v.into())
}

fn map(entries: Vec<(&str, OptValue)>) -> OptValue {
    OptValue::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
}

#[test]
fn json_reads_as_the_value_it_was() {
    assert_eq!(read("null"), OptValue::Null);
    assert_eq!(read(" true "), OptValue::Bool(true));
    assert_eq!(read("false"), OptValue::Bool(false));
    assert_eq!(read("-1.5e3"), OptValue::Num(-1500.0));
    assert_eq!(
        read("9007199254740991"),
        OptValue::Num(9_007_199_254_740_991.0)
    );
    assert_eq!(read(r#""""#), s(""));
    assert_eq!(read("[]"), OptValue::List(vec![]));
    assert_eq!(read("{}"), map(vec![]));
    assert_eq!(
        read(r#"{"a":[1,"x",null],"b":{"c":false}}"#),
        map(vec![
            (
                "a",
                OptValue::List(vec![OptValue::Num(1.0), s("x"), OptValue::Null])
            ),
            ("b", map(vec![("c", OptValue::Bool(false))])),
        ])
    );
    // Keys in the order written, repeats kept (readers take the last).
    assert_eq!(
        read(r#"{"k":1,"k":2}"#),
        map(vec![("k", OptValue::Num(1.0)), ("k", OptValue::Num(2.0))])
    );
    assert_eq!(OptValue::from_json(None, MAX_JSON), OptValue::Undefined);
}

#[test]
fn strings_are_unescaped() {
    assert_eq!(
        read(r#""a\"b\\c\/d\b\f\n\r\t""#),
        s("a\"b\\c/d\u{8}\u{c}\n\r\t")
    );
    assert_eq!(read(r#""\u00e9\u0000é""#), s("é\u{0}é"));
    assert_eq!(read(r#""\ud83d\ude00""#), s("😀"));
    assert_eq!(read(r#""😀""#), s("😀"));
    // A lone surrogate is U+FFFD, as the browser's conversion has it; what
    // follows it is kept.
    assert_eq!(read(r#""\ud800""#), s("\u{FFFD}"));
    assert_eq!(read(r#""\ud800\u0041""#), s("\u{FFFD}A"));
    assert_eq!(read(r#""\ude00x""#), s("\u{FFFD}x"));
}

#[test]
fn markers_name_what_json_has_no_form_for() {
    let marked = |kind: &str| read(&format!(r#"{{"\u0000":"{kind}"}}"#));
    assert_eq!(marked("function"), OptValue::Other("a function"));
    assert_eq!(marked("symbol"), OptValue::Other("a symbol"));
    assert_eq!(marked("bigint"), OptValue::Other("a bigint"));
    assert_eq!(marked("?"), OptValue::Other("an unsupported value"));
    assert_eq!(marked("large"), OptValue::Other("a value too large"));
    assert!(matches!(marked("NaN"), OptValue::Num(n) if n.is_nan()));
    assert_eq!(marked("Infinity"), OptValue::Num(f64::INFINITY));
    assert_eq!(marked("-Infinity"), OptValue::Num(f64::NEG_INFINITY));
    // Only an object with the marker key alone is a marker.
    assert_eq!(
        read(r#"{"\u0000":"function","x":1}"#),
        map(vec![("\u{0}", s("function")), ("x", OptValue::Num(1.0))])
    );
    assert_eq!(
        read(r#"{"f":{"\u0000":"function"}}"#),
        map(vec![("f", OptValue::Other("a function"))])
    );
}

#[test]
fn what_is_not_json_is_an_unsupported_value() {
    for bad in [
        "",
        " ",
        "{",
        "[1,]",
        r#"{"a":1,}"#,
        r#"{"a"}"#,
        r#"{a:1}"#,
        "01",
        "1.",
        "NaN",
        "undefined",
        "tru",
        r#""\q""#,
        r#""\u12""#,
        "\"a\nb\"",
        r#""open"#,
        "1 2",
        "[1] x",
    ] {
        assert_eq!(
            read(bad),
            OptValue::Other("an unsupported value"),
            "{bad:?}"
        );
    }
}

#[test]
fn nesting_is_bounded() {
    // Arrays and objects at MAX_DEPTH stand as one value nested too deep.
    let nested = |depth: usize| "[".repeat(depth) + &"]".repeat(depth);
    let mut want = OptValue::List(vec![]);
    for _ in 1..MAX_DEPTH {
        want = OptValue::List(vec![want]);
    }
    assert_eq!(read(&nested(MAX_DEPTH)), want);
    let mut deep = OptValue::Other("a value nested too deep");
    for _ in 0..MAX_DEPTH {
        deep = OptValue::List(vec![deep]);
    }
    assert_eq!(read(&nested(MAX_DEPTH + 1)), deep);
    // Objects count their depth the same way.
    let mut objects = String::from("1");
    let mut want = OptValue::Num(1.0);
    for level in (0..=MAX_DEPTH).rev() {
        objects = format!(r#"{{"k":{objects}}}"#);
        want = if level == MAX_DEPTH {
            OptValue::Other("a value nested too deep")
        } else {
            map(vec![("k", want)])
        };
    }
    assert_eq!(read(&objects), want);
    // However deep, never a stack overflow: past a hard bound, not JSON read.
    assert_eq!(
        read(&nested(10_000)),
        OptValue::Other("an unsupported value")
    );
}

#[test]
fn a_text_over_the_bound_is_not_read() {
    let long = format!(r#""{}""#, "a".repeat(MAX_JSON - 2));
    assert_eq!(long.len(), MAX_JSON);
    assert_eq!(read(&long), s(&"a".repeat(MAX_JSON - 2)));
    let longer = format!(r#""{}""#, "a".repeat(MAX_JSON - 1));
    assert_eq!(read(&longer), OptValue::Other("a value too large"));
    // The bound is in bytes.
    let wide = format!(r#""{}""#, "é".repeat(MAX_JSON / 2));
    assert_eq!(read(&wide), OptValue::Other("a value too large"));
}

#[test]
fn token_fields_are_read_from_the_body() {
    let fields = Fields::default();
    let body = |t: &str| wire::grant(&OptValue::from_json(Some(t), wire::MAX_BODY), &fields);
    let (g, e) = body(
        r#"{"access_token":"a\/b","refresh_token":"r","expires_in":3600,"token_type":"Bearer"}"#,
    )
    .unwrap();
    assert_eq!(g.access_token.as_deref(), Some("a/b"));
    assert_eq!(g.refresh_token.as_deref(), Some("r"));
    assert_eq!(g.expires_in, Some(3600.0));
    assert_eq!(e, None);
    // A lifetime may come as a string; null is none; one of the wrong type
    // is not finite (NaN), which accept_grant refuses (tests/wire.rs).
    assert_eq!(
        body(r#"{"expires_in":" 60 "}"#).unwrap().0.expires_in,
        Some(60.0)
    );
    assert_eq!(body(r#"{"expires_in":null}"#).unwrap().0.expires_in, None);
    for lifetime in [r#""soon""#, "[60]", "{}", r#"{"\u0000":"Infinity"}"#] {
        let (g, _) = body(&format!(
            r#"{{"access_token":"a","expires_in":{lifetime}}}"#
        ))
        .unwrap();
        assert!(g.expires_in.is_some_and(|n| !n.is_finite()), "{lifetime}");
        assert_eq!(g.access_token.as_deref(), Some("a"));
    }
    // Tokens of the wrong type are absent; the last of a repeated key counts.
    let (g, _) = body(r#"{"access_token":5,"refresh_token":["r"]}"#).unwrap();
    assert_eq!((g.access_token, g.refresh_token), (None, None));
    let (g, _) = body(r#"{"access_token":"old","access_token":"new"}"#).unwrap();
    assert_eq!(g.access_token.as_deref(), Some("new"));
    // The OAuth error.
    let (_, e) = body(r#"{"error":"invalid_grant","error_description":"x"}"#).unwrap();
    assert_eq!(e.as_deref(), Some("invalid_grant"));
    // The field names follow the options.
    let custom = Fields {
        access_token: "token".into(),
        refresh_token: "renew".into(),
        expires_in: "ttl".into(),
    };
    let v = OptValue::from_json(
        Some(r#"{"token":"t","renew":"r","ttl":5,"access_token":"no"}"#),
        wire::MAX_BODY,
    );
    let (g, _) = wire::grant(&v, &custom).unwrap();
    assert_eq!(g.access_token.as_deref(), Some("t"));
    assert_eq!(g.refresh_token.as_deref(), Some("r"));
    assert_eq!(g.expires_in, Some(5.0));
    // Not an object: no fields at all.
    for bad in [
        "[]",
        r#""t""#,
        "null",
        "5",
        "<html>",
        r#"{"\u0000":"function"}"#,
    ] {
        assert!(body(bad).is_none(), "{bad}");
    }
    // Bodies over MAX_BODY are not read.
    let big = format!(
        r#"{{"access_token":"a","pad":"{}"}}"#,
        "x".repeat(wire::MAX_BODY)
    );
    assert!(body(&big).is_none());
}

/// A value as `JSON.stringify(value, mark)` in js/executor.js writes it, and
/// what reading it back must give.
fn stringify(v: &OptValue, depth: usize, out: &mut String) -> OptValue {
    match v {
        OptValue::Undefined | OptValue::Null => {
            out.push_str("null");
            OptValue::Null
        }
        OptValue::Bool(b) => {
            out.push_str(if *b { "true" } else { "false" });
            v.clone()
        }
        OptValue::Num(n) if n.is_finite() => {
            out.push_str(&serde_json::to_string(n).unwrap());
            v.clone()
        }
        OptValue::Num(n) => {
            let kind = if n.is_nan() {
                "NaN"
            } else if *n > 0.0 {
                "Infinity"
            } else {
                "-Infinity"
            };
            out.push_str(&format!(r#"{{"\u0000":"{kind}"}}"#));
            v.clone()
        }
        OptValue::Str(s) => {
            out.push_str(&serde_json::to_string(s).unwrap());
            v.clone()
        }
        OptValue::Other(kind) => {
            out.push_str(&format!(
                r#"{{"\u0000":"{}"}}"#,
                kind.trim_start_matches("a ")
            ));
            v.clone()
        }
        OptValue::List(items) => {
            out.push('[');
            let mut read = Vec::new();
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                read.push(stringify(item, depth + 1, out));
            }
            out.push(']');
            too_deep(depth, OptValue::List(read))
        }
        OptValue::Map(entries) => {
            out.push('{');
            let mut read = Vec::new();
            // JSON.stringify leaves out keys whose value is undefined. (The
            // model leaves out the key "\0" too: alone, it is a marker.)
            for (k, item) in entries
                .iter()
                .filter(|(k, v)| *v != OptValue::Undefined && k != "\u{0}")
            {
                if !read.is_empty() {
                    out.push(',');
                }
                out.push_str(&serde_json::to_string(k).unwrap());
                out.push(':');
                read.push((k.clone(), stringify(item, depth + 1, out)));
            }
            out.push('}');
            too_deep(depth, OptValue::Map(read))
        }
    }
}

fn too_deep(depth: usize, v: OptValue) -> OptValue {
    if depth >= MAX_DEPTH {
        OptValue::Other("a value nested too deep")
    } else {
        v
    }
}

/// Equal, numbers within 1e-14 relative (the reader is exact for integers
/// to 2^53, within a few ulps at ordinary magnitudes, a few more at extreme
/// ones), NaN equal to NaN.
fn same(a: &OptValue, b: &OptValue) -> bool {
    match (a, b) {
        (OptValue::Num(x), OptValue::Num(y)) => {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= x.abs() * 1e-14
        }
        (OptValue::List(x), OptValue::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (OptValue::Map(x), OptValue::Map(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|((k, a), (l, b))| k == l && same(a, b))
        }
        _ => a == b,
    }
}

fn value() -> impl Strategy<Value = OptValue> {
    let leaf = prop_oneof![
        Just(OptValue::Undefined),
        Just(OptValue::Null),
        any::<bool>().prop_map(OptValue::Bool),
        // Numbers of every ordinary magnitude (the reader has no subnormals).
        any::<f64>()
            .prop_filter("ordinary", |n| *n == 0.0
                || !n.is_finite()
                || (1e-300..1e300).contains(&n.abs()))
            .prop_map(OptValue::Num),
        (0u64..1 << 53).prop_map(|n| OptValue::Num(n as f64)),
        any::<String>().prop_map(OptValue::Str),
        "[\\\\\"/\u{0}-\u{1f}a-z\u{e9}\u{1F600}]{0,12}".prop_map(OptValue::Str),
        prop_oneof![Just("a function"), Just("a symbol"), Just("a bigint")]
            .prop_map(OptValue::Other),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(OptValue::List),
            prop::collection::vec((any::<String>(), inner), 0..5).prop_map(OptValue::Map),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Whatever JS value the executor writes, the core reads it back as it
    /// was (to the depth it reads).
    #[test]
    fn what_the_executor_writes_reads_back(v in value()) {
        let mut text = String::new();
        let want = stringify(&v, 0, &mut text);
        let got = read(&text);
        prop_assert!(same(&got, &want), "{text}\n got {got:?}\nwant {want:?}");
    }

    /// Any text reads as a value or as unsupported, never a panic.
    #[test]
    fn any_text_reads_or_is_refused(text in ".{0,64}", bytes in "[\\[\\]{}\",:0-9a-z\\\\ .eE+-]{0,64}") {
        let _ = read(&text);
        let v = read(&bytes);
        let _ = wire::grant(&v, &Fields::default());
    }
}

#[test]
fn a_token_response_of_a_large_id_token_is_read_whole() {
    // Bloated ID tokens (many claims, groups) reach hundreds of kB: a body
    // up to 1 MiB is read; a longer one is too large.
    let fields = Fields::default();
    let id_token = "i".repeat(900_000);
    let text = format!(r#"{{"access_token":"a","id_token":"{id_token}","expires_in":60}}"#);
    assert!(text.len() < wire::MAX_BODY);
    let (g, _) =
        wire::grant(&OptValue::from_json(Some(&text), wire::MAX_BODY), &fields).expect("an object");
    assert_eq!(g.access_token.as_deref(), Some("a"));
    assert_eq!(wire::MAX_BODY, 1 << 20);
}
