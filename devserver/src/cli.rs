//! Command-line parsing (hand-rolled to keep build times down).

use std::path::PathBuf;

use crate::config::{parse_duration, validate_header_name, Config};

/// The `--help` text.
pub const USAGE: &str = "\
tokenkeeper-devserver: the dev auth server behind tokenkeeper's demo, tests and benchmarks

USAGE:
    tokenkeeper-devserver [OPTIONS]

OPTIONS:
    --bind ADDR            address to listen on                  [default: 127.0.0.1]
    --port PORT            port to listen on, 0 = any free port  [default: 8080]
    --port-file PATH       write the bound port number to PATH once listening
    --www DIR              serve DIR at /  (index.html for /)
    --pkg DIR              serve DIR at /pkg/
    --issuer URL           the demo's OpenID provider, which GET /demo-config.json
                           names (null without this flag)
    --access-ttl DUR       access-token lifetime                 [default: 30s]
    --refresh-ttl DUR      refresh-token lifetime                [default: 24h]
    --reuse-grace-ms N     grace window (ms) for re-presenting a rotated
                           refresh token without revoking its family [default: 0]
    --refresh-cookie       refresh token travels only in the HttpOnly cookie tk_refresh
    --renew-header NAME    send a renewed access token in response header NAME
                           when the presented one is close to expiry
    --renew-within DUR     renew when less than DUR is left [default: 10s, or half
                           the access TTL when that is shorter than 20s]
    --no-expiry            access tokens carry no exp, responses no expires_in
    --cors-any             answer CORS for any origin (null included), like a
                           third-party server; for leak tests
    --dpop                 DPoP (RFC 9449): token requests with a DPoP proof get
                           tokens bound to its key (token_type DPoP); bound
                           access tokens need `Authorization: DPoP` and a proof
    --dpop-nonce           like --dpop, and every proof must carry the server's
                           nonce (DPoP-Nonce; POST /admin/dpop-nonce rotates it)
    --quiet                no per-request log on stderr
    -h, --help             print this help

DUR is 500ms, 3s, 5m, 1h, 2d, or a bare number of seconds.
";

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    /// Start the server with this configuration.
    Run(Box<Config>),
    /// Print [`USAGE`] and exit successfully.
    Help,
}

/// Parses the arguments (without the program name).
///
/// Accepts both `--flag value` and `--flag=value`. The error message is meant
/// to be printed as is, followed by a hint to use `--help`.
pub fn parse_args<I, S>(args: I) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut config = Config::default();
    let mut args = args.into_iter().map(Into::into);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = matches!(
            flag.as_str(),
            "--bind"
                | "--port"
                | "--port-file"
                | "--www"
                | "--pkg"
                | "--issuer"
                | "--access-ttl"
                | "--refresh-ttl"
                | "--reuse-grace-ms"
                | "--renew-header"
                | "--renew-within"
        );
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => args.next().ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            String::new()
        };
        let rt = &mut config.runtime;
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--bind" => {
                config.bind = value
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse()
                    .map_err(|_| format!("--bind: invalid IP address {value:?}"))?;
            }
            "--port" => {
                config.port = value
                    .parse()
                    .map_err(|_| format!("--port: invalid port {value:?}"))?;
            }
            "--port-file" => config.port_file = Some(PathBuf::from(value)),
            "--www" => config.www = Some(PathBuf::from(value)),
            "--pkg" => config.pkg = Some(PathBuf::from(value)),
            "--issuer" => config.issuer = Some(value),
            "--access-ttl" => {
                rt.access_ttl_ms = positive(&flag, parse_duration(&value))?;
            }
            "--refresh-ttl" => {
                rt.refresh_ttl_ms = positive(&flag, parse_duration(&value))?;
            }
            "--reuse-grace-ms" => {
                rt.reuse_grace_ms = value
                    .parse()
                    .map_err(|_| format!("--reuse-grace-ms: invalid number {value:?}"))?;
            }
            "--renew-header" => {
                validate_header_name(&value).map_err(|e| format!("--renew-header: {e}"))?;
                rt.renew_header = Some(value);
            }
            "--renew-within" => {
                rt.renew_within_ms =
                    Some(parse_duration(&value).map_err(|e| format!("{flag}: {e}"))?);
            }
            "--refresh-cookie" => rt.refresh_cookie = true,
            "--no-expiry" => rt.no_expiry = true,
            "--cors-any" => rt.cors_any = true,
            "--dpop" => rt.dpop = true,
            "--dpop-nonce" => {
                rt.dpop = true;
                rt.dpop_nonce = true;
            }
            "--quiet" => config.quiet = true,
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    Ok(Command::Run(Box::new(config)))
}

fn positive(flag: &str, parsed: Result<u64, String>) -> Result<u64, String> {
    match parsed {
        Ok(0) => Err(format!("{flag}: must be longer than 0")),
        Ok(v) => Ok(v),
        Err(e) => Err(format!("{flag}: {e}")),
    }
}
