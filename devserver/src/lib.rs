//! tokenkeeper's dev auth server: the real token server behind the SDK's
//! demo, browser tests and benchmarks.
//!
//! It issues HS256 access JWTs and opaque rotating refresh tokens (with
//! family revocation on reuse), guards `/api/*`, and can be steered at run
//! time through loopback-only `/admin/*` endpoints (configuration, injected
//! faults, reset) and observed through `/stats` and `/admin/requests`.
//! In DPoP mode ([`dpop`]) it also binds tokens to proof keys and checks
//! RFC 9449 proofs, with an optional server nonce.
//!
//! Start it in-process with [`spawn`], or as a program with [`run`].

#![warn(missing_docs)]

pub mod admin;
pub mod api;
pub mod auth;
pub mod body;
pub mod cli;
pub mod clock;
pub mod config;
pub mod cookies;
pub mod cors;
pub mod dpop;
pub mod errors;
pub mod faults;
pub mod ids;
pub mod routes;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod statics;
pub mod stats;
pub mod tokens;

use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{parse_duration, Config, RuntimeConfig};

use state::AppState;

/// A running server. Dropping the handle stops the server too.
#[derive(Debug)]
#[must_use = "dropping the handle stops the server"]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address actually bound.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting, lets open connections finish briefly, and waits.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// Binds and starts serving in the background. Use port 0 for a free port.
pub async fn spawn(config: Config) -> io::Result<(SocketAddr, ServerHandle)> {
    for dir in [&config.www, &config.pkg].into_iter().flatten() {
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a directory", dir.display()),
            ));
        }
    }
    let state =
        Arc::new(AppState::new(config.runtime.clone(), config.quiet).map_err(io::Error::other)?);
    let recycle = state.recycle_requests();
    let app = routes::router(state, &config);
    let listener = TcpListener::bind((config.bind, config.port)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve::serve(listener, app, stopped, recycle));
    Ok((addr, ServerHandle { addr, stop, task }))
}

/// Runs the server until SIGINT or SIGTERM: prints the listening line,
/// writes the port file, then serves.
pub async fn run(config: Config) -> io::Result<()> {
    let port_file = config.port_file.clone();
    let (addr, handle) = spawn(config).await?;
    if let Some(path) = port_file {
        write_atomically(&path, &addr.port().to_string())?;
    }
    let host = match addr {
        SocketAddr::V4(a) => a.ip().to_string(),
        SocketAddr::V6(a) => format!("[{}]", a.ip()),
    };
    let mut stdout = io::stdout().lock();
    writeln!(
        stdout,
        "tokenkeeper-devserver listening on http://{host}:{}",
        addr.port()
    )?;
    stdout.flush()?;
    drop(stdout);
    shutdown_signal().await;
    handle.shutdown().await;
    Ok(())
}

/// Writes `contents` to a temporary file next to `path`, then renames it.
fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp{}", std::process::id()));
    std::fs::write(&tmp, contents)?;
    std::fs::rename(&tmp, path)
}

/// Resolves on ctrl-c (SIGINT) or, on Unix, SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
