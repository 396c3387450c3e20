//! What the keeper tells the browser executor (core/src/wire.rs): every
//! command is JSON that `JSON.parse` (here serde_json) reads, with the data
//! the executor carries out spelled exactly as the API promises it.

mod sim;

use serde_json::{json, Value};
use sim::settings;
use tokenkeeper_core::keeper::{
    CallId, Command, Event, ExpiredReason, LogoutNotice, LogoutReason, Reply, Source, SyncKind,
    TokenAnswer,
};
use tokenkeeper_core::protocol::Message;
use tokenkeeper_core::token::{RawGrant, Timing, TokenSet};
use tokenkeeper_core::value::{OptValue, MAX_JSON};
use tokenkeeper_core::{wire, Error};

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn command(c: Command) -> Value {
    parse(&wire::command(&c, "tab1", &settings(&[])))
}

fn number(x: f64) -> String {
    let mut s = String::new();
    wire::number(&mut s, x);
    s
}

#[test]
fn numbers_read_back_exactly() {
    let cases = [
        0.0,
        1.0,
        -1.0,
        42.0,
        1_700_000_000_123.0,
        1_700_000_000_123.25,
        1_700_000_000_123.338,
        0.1,
        -0.5,
        1.0 / 3.0,
        9_007_199_254_740_991.0,
        9_007_199_254_740_993.0,
        1.8e19,
        1e300,
        f64::MAX,
        123_456.789,
    ];
    for x in cases {
        let text = number(x);
        let back: f64 = text.parse().unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(back.to_bits(), x.to_bits(), "{x} written as {text}");
        assert_eq!(parse(&text).as_f64(), Some(x), "JSON {text}");
    }
    assert_eq!(number(3.0), "3");
    assert_eq!(number(0.5), "0.5");
    assert_eq!(number(-2.25), "-2.25");
    assert_eq!(number(f64::NAN), "null");
    assert_eq!(number(f64::INFINITY), "null");
    assert_eq!(number(1e20), "100000000000000000000");
    // The finest fraction written, and what is finer (never a time or a count).
    let fine = 1.0 / 18_446_744_073_709_551_616.0; // 2^-64
    assert_eq!(number(fine).parse::<f64>().ok(), Some(fine));
    assert_eq!(number(fine / 2.0), "0");
    assert_eq!(number(1e-30), "0");
}

#[test]
fn strings_are_escaped_as_json_stringify_does() {
    let nasty = "q\"b\\s/n\nr\rt\tb\u{8}f\u{c}nul\u{0}x\u{1f}é😀\u{7f}";
    let c = command(Command::Emit(Event::Expired {
        reason: ExpiredReason::NoSession,
        url: nasty.into(),
    }));
    assert_eq!(c["d"]["url"], nasty);
    let text = wire::command(
        &Command::Emit(Event::Expired {
            reason: ExpiredReason::NoSession,
            url: nasty.into(),
        }),
        "t",
        &settings(&[]),
    );
    assert!(
        text.contains(r#""q\"b\\s/n\nr\rt\tb\bf\fnul\u0000x\u001fé😀"#),
        "{text}"
    );
    // Each escape alone, and what needs none.
    for (raw, written) in [
        ("a\u{1}b", r#"a\u0001b""#),
        ("a\"b", r#"a\"b""#),
        ("a\\b", r#"a\\b""#),
        ("a b~\u{7f}", "a b~\u{7f}\""),
        ("\u{1}", r#"\u0001""#),
        ("\n", r#"\n""#),
        ("  ", r#"  ""#),
        ("\"", r#"\"""#),
        ("\\", r#"\\""#),
    ] {
        let text = wire::detail(&Event::Expired {
            reason: ExpiredReason::NoSession,
            url: raw.into(),
        });
        assert!(
            text.ends_with(&format!(":\"{written}}}")),
            "{raw:?} in {text}"
        );
    }
}

#[test]
fn a_token_reply_carries_the_header_value() {
    let c = command(Command::Settle {
        call: CallId(7),
        reply: Reply::Token {
            generation: 3,
            access: "abc".into(),
            proof: None,
        },
    });
    assert_eq!(
        c,
        json!({"c": "settle", "id": 7, "r": "token", "g": 3, "a": "abc", "p": "Bearer "})
    );
    let raw = settings(&[
        ("scheme", OptValue::Null),
        ("header", OptValue::Str("x-auth-token".into())),
    ]);
    let c = parse(&wire::command(
        &Command::Settle {
            call: CallId(1),
            reply: Reply::Replay {
                access: "t".into(),
                proof: None,
                nonce: false,
            },
        },
        "x",
        &raw,
    ));
    assert_eq!(
        c,
        json!({"c": "settle", "id": 1, "r": "replay", "a": "t", "p": ""})
    );
    assert_eq!(
        parse(&wire::executor_config(&raw)),
        json!({"header": "x-auth-token", "renew": null, "manual": true, "resend": ["GET", "HEAD"], "rejected": 401,
               "message": MAX_JSON, "body": wire::MAX_BODY, "logins": false, "nonces": false})
    );
    let renew = settings(&[("renewHeader", OptValue::Str("X-Renewed".into()))]);
    assert_eq!(
        parse(&wire::executor_config(&renew)),
        json!({"header": "Authorization", "renew": "X-Renewed", "manual": false, "resend": ["GET", "HEAD"], "rejected": 401,
               "message": MAX_JSON, "body": wire::MAX_BODY, "logins": false, "nonces": false})
    );
}

#[test]
fn every_reply_is_named() {
    let cases = [
        (Reply::Passthrough, json!({"r": "pass"})),
        (Reply::Return, json!({"r": "return"})),
        (Reply::Done, json!({"r": "done"})),
        (Reply::Ready(true), json!({"r": "ready", "ok": true})),
        (Reply::Ready(false), json!({"r": "ready", "ok": false})),
    ];
    for (reply, want) in cases {
        let mut c = command(Command::Settle {
            call: CallId(2),
            reply,
        });
        assert_eq!(c["c"], "settle");
        assert_eq!(c["id"], 2);
        let obj = c.as_object_mut().unwrap();
        obj.remove("c");
        obj.remove("id");
        assert_eq!(c, want);
    }
    let c = command(Command::Settle {
        call: CallId(4),
        reply: Reply::Failed(Error::RefreshThrottled {
            retry_in_ms: 1499.6,
        }),
    });
    assert_eq!(c["r"], "error");
    assert_eq!(c["e"]["code"], "refresh_throttled");
    assert_eq!(c["e"]["retryInMs"], 1500.0);
    assert!(
        c["e"]["message"].as_str().unwrap().contains("paused for"),
        "{c}"
    );
}

#[test]
fn errors_name_what_applies() {
    let e = parse(&wire::error(&Error::option("refreshUrl", "is required")));
    assert_eq!(
        e,
        json!({"code": "invalid_option", "message": "invalid option `refreshUrl`: is required", "option": "refreshUrl"})
    );
    let e = parse(&wire::error(&Error::SessionEnded {
        status: 400,
        oauth_error: Some("invalid_grant".into()),
    }));
    assert_eq!(e["code"], "session_ended");
    assert_eq!(e["status"], 400);
    assert_eq!(e["error"], "invalid_grant");
    assert!(e.get("retryInMs").is_none() && e.get("option").is_none());
    let e = parse(&wire::error(&Error::Freed));
    assert_eq!(e.as_object().map(|o| o.len()), Some(2), "{e}");
}

#[test]
fn event_details_are_as_the_types_say() {
    let cases = [
        (
            Event::Refresh {
                source: Source::RenewHeader,
                expires_at: Some(1_700_000_060_000.5),
                generation: 4,
            },
            json!({"source": "renew-header", "expiresAt": 1_700_000_060_000.5, "generation": 4}),
        ),
        (
            Event::Refresh {
                source: Source::Timer,
                expires_at: None,
                generation: 1,
            },
            json!({"source": "timer", "generation": 1}),
        ),
        (
            Event::RefreshError {
                error: Error::RefreshUnavailable {
                    status: 503,
                    oauth_error: None,
                    retry_in_ms: 2000.0,
                },
                retrying: true,
                retry_in_ms: Some(1999.5),
            },
            json!({"code": "refresh_unavailable", "retrying": true, "fatal": false, "status": 503, "retryInMs": 2000}),
        ),
        (
            Event::Logout {
                reason: LogoutReason::RefreshFailed,
            },
            json!({"reason": "refresh-failed"}),
        ),
        (
            Event::Change {
                authenticated: false,
                expires_at: None,
                generation: 9,
            },
            json!({"isAuthenticated": false, "generation": 9}),
        ),
        (
            Event::Sync {
                kind: SyncKind::Backoff,
                from: "abc".into(),
                generation: 2,
            },
            json!({"type": "backoff", "from": "abc", "generation": 2}),
        ),
    ];
    for (event, mut want) in cases {
        let kind = event.kind().as_str();
        let c = command(Command::Emit(event));
        assert_eq!(c["c"], "emit");
        assert_eq!(c["k"], kind);
        let mut d = c["d"].clone();
        // The message is the error's own text: checked in tests/keeper.rs.
        if let Some(m) = d.as_object_mut().and_then(|o| o.remove("message")) {
            assert!(m.is_string());
        }
        if let Some(o) = want.as_object_mut() {
            o.remove("message");
        }
        assert_eq!(d, want);
    }
}

#[test]
fn tab_messages_carry_the_protocol_fields() {
    let tokens = TokenSet {
        access: "a".into(),
        refresh: Some("r".into()),
        expires_at: Some(1_700_000_060_000.0),
        issued_at: 1_700_000_000_000.0,
        id: None,
        key: None,
    };
    let c = command(Command::Post(Message::Session {
        gen: 5,
        tokens: tokens.clone(),
        until: None,
        skew: None,
    }));
    assert_eq!(
        c,
        json!({"c": "post", "m": {"v": 1, "from": "tab1", "gen": 5, "type": "session", "access": "a",
            "refresh": "r", "expiresAt": 1_700_000_060_000u64, "issuedAt": 1_700_000_000_000u64}})
    );
    let cookie = TokenSet {
        refresh: None,
        expires_at: None,
        ..tokens
    };
    let m = parse(&wire::tab_message(
        &Message::Session {
            gen: 1,
            tokens: cookie,
            until: None,
            skew: None,
        },
        "t",
    ));
    assert!(
        m.get("refresh").is_none() && m.get("expiresAt").is_none(),
        "{m}"
    );
    let m = parse(&wire::tab_message(&Message::Hello { gen: 0 }, "t"));
    assert_eq!(m, json!({"v": 1, "from": "t", "gen": 0, "type": "hello"}));
    let m = parse(&wire::tab_message(
        &Message::Logout {
            gen: 3,
            reason: "local".into(),
        },
        "t",
    ));
    assert_eq!(m["type"], "logout");
    assert_eq!(m["reason"], "local");
    let m = parse(&wire::tab_message(
        &Message::Backoff {
            gen: 3,
            until: 1_700_000_000_500.0,
        },
        "t",
    ));
    assert_eq!(m["until"], 1_700_000_000_500u64);
    assert_eq!(command(Command::AcquireLock), json!({"c": "lock"}));
    assert_eq!(command(Command::ReleaseLock), json!({"c": "unlock"}));
}

fn refresh(pairs: &[(&str, OptValue)], rt: Option<&str>) -> Value {
    let c = parse(&wire::command(
        &Command::Refresh {
            refresh_token: rt.map(String::from),
            proof: None,
        },
        "t",
        &settings(pairs),
    ));
    assert_eq!(c["c"], "send");
    c["q"].clone()
}

#[test]
fn refresh_requests_in_each_style() {
    let q = refresh(&[], Some("r\"1"));
    assert_eq!(
        q,
        json!({"url": "https://app.example/token", "h": {"Content-Type": "application/json",
            "Accept": "application/json"}, "b": "{\"refresh_token\":\"r\\\"1\"}", "cr": "same-origin"})
    );
    let s = |v: &str| OptValue::Str(v.into());
    let q = refresh(
        &[
            ("refreshStyle", s("form")),
            ("clientId", s("my app")),
            ("scope", s("openid email")),
        ],
        Some("a b&c=d/é~*-._+"),
    );
    assert_eq!(
        q["b"],
        "grant_type=refresh_token&refresh_token=a+b%26c%3Dd%2F%C3%A9%7E*-._%2B&client_id=my+app&scope=openid+email"
    );
    assert_eq!(
        q["h"]["Content-Type"],
        "application/x-www-form-urlencoded;charset=UTF-8"
    );
    let q = refresh(&[("refreshStyle", s("form"))], Some("x"));
    assert_eq!(q["b"], "grant_type=refresh_token&refresh_token=x");
    let q = refresh(&[("refreshStyle", s("cookie"))], None);
    assert_eq!(q["b"], "{}");
    assert_eq!(q["cr"], "include");
    let fields = OptValue::Map(vec![("refreshToken".into(), s("rt"))]);
    assert_eq!(
        refresh(&[("fields", fields)], Some("z"))["b"],
        "{\"rt\":\"z\"}"
    );
}

#[test]
fn login_and_logout_requests() {
    let st = settings(&[]);
    let login = |_: &tokenkeeper_core::config::Settings| Command::Login {
        call: CallId(4),
        url: "https://app.example/login".into(),
        body: "{\"u\":1}".into(),
        proof: None,
    };
    let q = parse(&wire::command(&login(&st), "t", &st));
    assert_eq!(q["c"], "exchange");
    assert_eq!(q["id"], 4);
    assert_eq!(q["q"]["url"], "https://app.example/login");
    assert_eq!(q["q"]["b"], "{\"u\":1}");
    assert_eq!(q["q"]["cr"], "same-origin");
    assert_eq!(q["q"]["h"]["Content-Type"], "application/json");
    let cookie = settings(&[("refreshStyle", OptValue::Str("cookie".into()))]);
    let q = parse(&wire::command(&login(&cookie), "t", &cookie));
    assert_eq!(q["q"]["cr"], "include");

    let notice = LogoutNotice {
        url: "https://app.example/logout".into(),
        access: Some("a".into()),
        refresh: Some("r".into()),
    };
    let q = parse(&wire::logout_request(&st, &notice));
    assert_eq!(q["h"]["Authorization"], "Bearer a");
    assert_eq!(q["b"], "{\"refresh_token\":\"r\"}");
    let q = parse(&wire::logout_request(
        &st,
        &LogoutNotice {
            access: None,
            refresh: None,
            ..notice
        },
    ));
    assert!(q["h"].get("Authorization").is_none());
    assert_eq!(q["b"], "{}");
    assert_eq!(q["cr"], "same-origin");
    let q = parse(&wire::logout_request(
        &cookie,
        &LogoutNotice {
            url: "https://app.example/logout".into(),
            access: None,
            refresh: None,
        },
    ));
    assert_eq!(
        q["cr"], "include",
        "the HttpOnly cookie goes with a cookie-mode logout"
    );
}

#[test]
fn token_answers_mean_what_the_status_and_body_say() {
    let timing = Timing {
        sent_at: 1.0,
        received_at: 2.0,
        server_date: None,
        fresh: true,
    };
    let grant = RawGrant {
        access_token: Some("a".into()),
        ..RawGrant::default()
    };
    assert_eq!(
        wire::token_answer(0, None, None, timing),
        TokenAnswer::no_answer()
    );
    assert_eq!(
        wire::token_answer(200, Some((grant.clone(), None)), Some(5.0), timing),
        TokenAnswer::Grant {
            grant: grant.clone(),
            timing
        }
    );
    assert_eq!(
        wire::token_answer(299, None, None, timing),
        TokenAnswer::Failure {
            status: 299,
            oauth_error: None,
            retry_after_ms: None,
            malformed: Some("the body is not a JSON object"),
        }
    );
    for status in [199, 300, 400, 503] {
        assert_eq!(
            wire::token_answer(
                status,
                Some((grant.clone(), Some("invalid_grant".into()))),
                Some(7.0),
                timing
            ),
            TokenAnswer::Failure {
                status,
                oauth_error: Some("invalid_grant".into()),
                retry_after_ms: Some(7.0),
                malformed: None,
            }
        );
    }
}

/// `expires_in` has one rule: absent (or null) means no expiry; a number of
/// seconds from 0 up, or a string holding one, is the lifetime; anything
/// else present is an invalid token response, as a negative number is.
#[test]
fn expires_in_is_a_number_of_seconds_or_absent() {
    let timing = Timing {
        sent_at: 1000.0,
        received_at: 1000.0,
        server_date: None,
        fresh: true,
    };
    let read = |expires_in: &str| {
        let body = format!(r#"{{"access_token":"at","expires_in":{expires_in}}}"#);
        let body = OptValue::from_json(Some(&body), wire::MAX_BODY);
        let (grant, _) = wire::grant(&body, &Default::default()).expect("an object");
        tokenkeeper_core::token::accept_grant(grant, timing, None).map(|t| t.expires_at)
    };
    assert_eq!(read("null"), Ok(None));
    assert_eq!(read("60"), Ok(Some(61_000.0)));
    assert_eq!(read("\" 60 \""), Ok(Some(61_000.0)));
    assert_eq!(read("0"), Ok(Some(1000.0)));
    let body = OptValue::from_json(Some(r#"{"access_token":"at"}"#), wire::MAX_BODY);
    let (grant, _) = wire::grant(&body, &Default::default()).expect("an object");
    assert_eq!(grant.expires_in, None, "absent");
    // NaN and the infinities arrive from JS (setTokens) marked, as tk_json writes them.
    for bad in [
        "-5",
        r#"{"\u0000":"NaN"}"#,
        r#"{"\u0000":"Infinity"}"#,
        "\"Infinity\"",
        "\"soon\"",
        "\"\"",
        "true",
        "[60]",
        "{}",
    ] {
        assert!(
            matches!(read(bad), Err(Error::InvalidTokenResponse { .. })),
            "expires_in: {bad} → {:?}",
            read(bad)
        );
    }
}

/// `login(url, credentials)` as the app called it: a URL string or a `URL`
/// (which reaches the core as its href), nothing else, never empty; and
/// nothing is sent once the keeper is freed.
#[test]
fn a_login_checks_its_url_and_the_keeper_first() {
    use tokenkeeper_core::keeper::{Env, Keeper};
    use tokenkeeper_core::testing::TestUrls;
    let env = Env {
        tabs: false,
        locks: false,
        seed: 1,
    };
    let mut keeper = Keeper::new(settings(&[]), env);
    let login = |k: &Keeper, url: OptValue, creds: Option<&str>| match wire::login_arguments(
        k, &url, creds, &TestUrls,
    ) {
        Ok((url, body)) => json!({"q": {"url": url, "b": body}}),
        Err(e) => json!({"e": {"code": e.code(), "message": e.message()}}),
    };
    let q = login(&keeper, OptValue::Str("/login".into()), Some("{}"));
    assert_eq!(q["q"]["url"], "https://app.example/login");
    for creds in [None, Some("[1]"), Some("\"s\"")] {
        let e = login(&keeper, OptValue::Str("/l".into()), creds);
        assert_eq!(e["e"]["code"], "invalid_argument", "{creds:?}");
        let message = e["e"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("credentials"), "{e}");
    }
    for (url, what) in [
        (OptValue::Num(5.0), "must be a URL string"),
        (OptValue::Map(vec![]), "must be a URL string"),
        (OptValue::Undefined, "must be a URL string"),
        (OptValue::Str("".into()), "is empty"),
        (OptValue::Str(" ".into()), "is empty"),
        (OptValue::Str("javascript:alert(1)".into()), "http(s)"),
    ] {
        let e = login(&keeper, url.clone(), Some("{}"));
        assert_eq!(e["e"]["code"], "invalid_argument", "{url:?}");
        let message = e["e"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(what), "{url:?}: {message}");
    }
    // Credentials up to MAX_BODY are sent; one unit more is too large.
    let fits = format!("{{\"p\":\"{}\"}}", "x".repeat(wire::MAX_BODY - 8));
    assert_eq!(fits.len(), wire::MAX_BODY);
    let q = login(&keeper, OptValue::Str("/login".into()), Some(&fits));
    assert!(q.get("q").is_some(), "sent");
    let large = format!("{{\"p\":\"{}\"}}", "x".repeat(wire::MAX_BODY - 7));
    let e = login(&keeper, OptValue::Str("/login".into()), Some(&large));
    assert!(
        e["e"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("too large"),
        "{e}"
    );
    keeper.free();
    let e = login(&keeper, OptValue::Str("/login".into()), Some("{}"));
    assert_eq!(e["e"]["code"], "freed");
    assert!(e.get("q").is_none(), "no request after free()");
    let logout = keeper.logout(sim::T0);
    assert_eq!(
        parse(&wire::logout(keeper.settings(), logout))["e"]["code"],
        "freed"
    );
}

/// `setTokens(tokens)`: the token fields of an object, or an error naming
/// the argument — "too large" for a value the executor stopped writing.
#[test]
fn set_tokens_reads_an_object_or_names_the_argument() {
    let fields = Default::default();
    let read = |text: &str| {
        wire::tokens_argument(&OptValue::from_json(Some(text), wire::MAX_BODY), &fields)
    };
    let grant = read(r#"{"access_token":"at","refresh_token":"rt","expires_in":5}"#);
    assert_eq!(
        grant,
        Ok(RawGrant {
            access_token: Some("at".into()),
            refresh_token: Some("rt".into()),
            expires_in: Some(5.0),
            id_token: None,
            token_type: None,
        })
    );
    for (text, reason) in [
        ("5", "must be an object"),
        ("[]", "must be an object"),
        (r#"{"\u0000":"large"}"#, "is too large"),
    ] {
        match read(text) {
            Err(Error::InvalidArgument {
                argument,
                reason: r,
            }) => {
                assert_eq!(argument, "tokens");
                assert!(r.contains(reason), "{text}: {r}");
            }
            other => panic!("{text}: {other:?}"),
        }
    }
}
