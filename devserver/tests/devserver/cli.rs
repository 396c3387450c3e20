//! The command line: duration syntax, flags, and the real binary.

use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use tokenkeeper_devserver::cli::{parse_args, Command};
use tokenkeeper_devserver::parse_duration;

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(500));
    assert_eq!(parse_duration("3s"), Ok(3_000));
    assert_eq!(parse_duration("5m"), Ok(300_000));
    assert_eq!(parse_duration("1h"), Ok(3_600_000));
    assert_eq!(parse_duration("2d"), Ok(172_800_000));
    assert_eq!(parse_duration("30"), Ok(30_000));
    assert_eq!(parse_duration("0"), Ok(0));
    for bad in [
        "",
        "s",
        "1.5s",
        "-1s",
        "3x",
        "1 h",
        "ms",
        "99999999999999999999",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
}

fn parse(args: &[&str]) -> Result<Command, String> {
    parse_args(args.iter().copied())
}

#[test]
fn flags() {
    let Ok(Command::Run(c)) = parse(&[]) else {
        panic!("defaults");
    };
    assert_eq!(c.bind.to_string(), "127.0.0.1");
    assert_eq!(c.port, 8080);
    assert_eq!(c.runtime.access_ttl_ms, 30_000);
    assert_eq!(c.runtime.refresh_ttl_ms, 86_400_000);
    assert_eq!(c.runtime.renew_within_ms, None);
    assert_eq!(c.runtime.effective_renew_within_ms(), 10_000);
    assert!(!c.quiet && !c.runtime.no_expiry && !c.runtime.refresh_cookie);
    assert!(!c.runtime.dpop && !c.runtime.dpop_nonce);

    let Ok(Command::Run(c)) = parse(&[
        "--bind",
        "::1",
        "--port",
        "0",
        "--port-file",
        "/tmp/p",
        "--www",
        "www",
        "--pkg=pkg",
        "--access-ttl",
        "500ms",
        "--refresh-ttl=1h",
        "--reuse-grace-ms",
        "250",
        "--refresh-cookie",
        "--renew-header",
        "x-token",
        "--renew-within",
        "3s",
        "--no-expiry",
        "--quiet",
    ]) else {
        panic!("all flags");
    };
    assert_eq!(c.bind.to_string(), "::1");
    assert_eq!(c.port, 0);
    assert_eq!(c.port_file.as_deref(), Some(std::path::Path::new("/tmp/p")));
    assert_eq!(c.pkg.as_deref(), Some(std::path::Path::new("pkg")));
    assert_eq!(c.runtime.access_ttl_ms, 500);
    assert_eq!(c.runtime.refresh_ttl_ms, 3_600_000);
    assert_eq!(c.runtime.reuse_grace_ms, 250);
    assert_eq!(c.runtime.renew_header.as_deref(), Some("x-token"));
    assert_eq!(c.runtime.renew_within_ms, Some(3_000));
    assert!(c.quiet && c.runtime.no_expiry && c.runtime.refresh_cookie);
    // An explicit threshold is used as is, even above the TTL.
    assert_eq!(c.runtime.effective_renew_within_ms(), 3_000);
    let Ok(Command::Run(c)) = parse(&["--access-ttl", "4s"]) else {
        panic!("short TTL");
    };
    // Default threshold with a TTL under 20 s: half the TTL.
    assert_eq!(c.runtime.effective_renew_within_ms(), 2_000);
    let Ok(Command::Run(c)) = parse(&["--dpop"]) else {
        panic!("--dpop");
    };
    assert!(c.runtime.dpop && !c.runtime.dpop_nonce);
    let Ok(Command::Run(c)) = parse(&["--dpop-nonce"]) else {
        panic!("--dpop-nonce");
    };
    assert!(
        c.runtime.dpop && c.runtime.dpop_nonce,
        "nonce mode implies DPoP"
    );

    assert!(matches!(parse(&["--help"]), Ok(Command::Help)));
    assert!(matches!(parse(&["-h"]), Ok(Command::Help)));
    for bad in [
        &["--nope"][..],
        &["--port"],
        &["--port", "70000"],
        &["--bind", "localhost:80"],
        &["--access-ttl", "soon"],
        &["--access-ttl", "0"],
        &["--reuse-grace-ms", "1s"],
        &["--renew-header", "bad header"],
        &["--quiet=yes"],
        &["--dpop=yes"],
        &["stray"],
    ] {
        let err = parse(bad).expect_err("refused");
        assert!(!err.is_empty(), "{bad:?}");
    }
}

#[test]
fn binary_help_errors_port_file_and_sigterm() {
    let exe = env!("CARGO_BIN_EXE_tokenkeeper-devserver");
    let help = Process::new(exe).arg("--help").output().unwrap();
    assert!(help.status.success());
    let help_text = String::from_utf8_lossy(&help.stdout);
    for flag in ["--port-file", "--dpop", "--dpop-nonce"] {
        assert!(help_text.contains(flag), "{flag}");
    }

    let bad = Process::new(exe).arg("--access-ttl=10y").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--access-ttl"));

    let port_file = std::env::temp_dir().join(format!("tk-devserver-port-{}", std::process::id()));
    let _ = std::fs::remove_file(&port_file);
    let mut child = Process::new(exe)
        .args(["--port", "0", "--quiet", "--port-file"])
        .arg(&port_file)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = std::fs::read_to_string(&port_file).unwrap();
    assert_eq!(
        line.trim(),
        format!("tokenkeeper-devserver listening on http://127.0.0.1:{port}")
    );
    let _ = std::fs::remove_file(&port_file);

    // SIGTERM: a clean exit, promptly.
    let killed = Process::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}
