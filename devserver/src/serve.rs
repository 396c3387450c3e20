//! The accept loop: hyper HTTP/1.1 connections driving the axum router,
//! with the peer address inserted as `ConnectInfo` and the ability for a
//! handler to have the connection closed without any response.

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// How long open connections get to finish after shutdown is requested.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Response extension asking the server to close the connection instead of
/// answering.
#[derive(Debug, Clone, Copy)]
struct DropConnection;

/// A response that makes the server drop the connection unanswered.
pub fn drop_connection() -> Response {
    let mut response = ().into_response();
    response.extensions_mut().insert(DropConnection);
    response
}

/// Whether `response` asks for the connection to be dropped.
pub fn is_dropped(response: &Response) -> bool {
    response.extensions().get::<DropConnection>().is_some()
}

/// The error that makes hyper abandon a connection.
#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped on purpose")
    }
}

impl std::error::Error for Dropped {}

/// Serves `router` on `listener` until `shutdown` turns true, then lets open
/// connections finish (up to a couple of seconds). Each change of `recycle`
/// closes the open connections once they are idle.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    recycle: watch::Receiver<u64>,
) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop_requested(&mut shutdown) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(_) => {
                // Out of descriptors or a connection reset before accept:
                // back off briefly instead of spinning.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            shutdown.clone(),
            recycle.clone(),
        ));
    }
    drop(listener);
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        connections.shutdown().await;
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    router: Router,
    mut shutdown: watch::Receiver<bool>,
    mut recycle: watch::Receiver<u64>,
) {
    recycle.mark_unchanged();
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let router = router.clone();
        async move {
            let response = match router.oneshot(request).await {
                Ok(r) => r,
                Err(e) => match e {},
            };
            if is_dropped(&response) {
                Err(Dropped)
            } else {
                Ok::<_, Dropped>(response)
            }
        }
    });
    // No header-read timeout: it would also close idle keep-alive
    // connections, and a browser request racing that close can fail.
    let connection = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stop_requested(&mut shutdown) => {}
        _ = recycle_requested(&mut recycle) => {}
    }
    // Finish the request in flight, if any, then close.
    connection.as_mut().graceful_shutdown();
    let _ = connection.await;
}

/// Resolves once shutdown is requested (or the handle is gone).
async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Resolves at the next recycle request (never, if they can no longer come).
async fn recycle_requested(recycle: &mut watch::Receiver<u64>) {
    if recycle.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}
