//! Serving: our own accept loop over hyper, so that every connection gets TCP_NODELAY, a
//! deadline for its request head, bounded headers, and a bounded drain at shutdown. Background
//! tasks are owned and finish before `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;

use super::{AppState, router};

/// Largest request head: request line and headers together.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How long shutdown waits for settlements on their way to Redis.
const LIMITS_PATIENCE: Duration = Duration::from_secs(3);

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests
/// (for at most `settings.drain_timeout`) and flushes batched writes before returning.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tasks = TaskTracker::new();
    let stop = CancellationToken::new();
    tasks.spawn(state.keygate.last_used().clone().run(
        state.keygate.store().clone(),
        state.settings.last_used_flush,
        stop.clone(),
    ));

    if let Err(err) = state.gateway.reload(state.keygate.store().as_ref()).await {
        tracing::warn!(error = %err, "stored model groups could not be loaded yet");
    }
    tasks.spawn(state.gateway.clone().watch(
        state.keygate.store().clone(),
        state.settings.model_groups_reload,
        stop.clone(),
    ));
    tasks.spawn(state.keygate.usage().clone().run(
        state.keygate.store().clone(),
        state.settings.usage_flush,
        stop.clone(),
    ));
    tasks.spawn(state.keygate.clone().share_key_changes(stop.clone()));
    tasks.spawn(state.keygate.clone().summarise_auth_failures(stop.clone()));
    tasks.spawn(
        state
            .keygate
            .clone()
            .run_checkpoints(state.settings.audit_checkpoints, stop.clone()),
    );
    tasks.spawn(
        state
            .keygate
            .clone()
            .run_usage_pruning(state.settings.usage_retention, stop.clone()),
    );
    tasks.spawn(
        state
            .keygate
            .clone()
            .watch_due_secrets(state.settings.rotation_check, stop.clone()),
    );
    let header_read_timeout = state.settings.header_read_timeout;
    let drain_timeout = state.settings.drain_timeout;
    let limiter = state.limiter.clone();
    let app = router(state);
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(MAX_HEAD_BYTES).unwrap_or(u32::MAX));
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);

    loop {
        let (tcp, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Without TCP_NODELAY a response written as headers then body waits for the client's
        // delayed ACK on every kept-alive request.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "could not set TCP_NODELAY");
        }
        let service = app
            .clone()
            .map_request(move |mut request: hyper::Request<Incoming>| {
                request
                    .extensions_mut()
                    .insert(ConnectInfo::<SocketAddr>(addr));
                request
            });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(tcp), TowerToHyperService::new(service))
            .into_owned();
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "connection closed with an error");
            }
        });
        while connections.try_join_next().is_some() {}
    }

    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(drain_timeout) => {
            tracing::warn!("requests still running after the drain deadline: closing them");
        }
    }
    connections.shutdown().await;
    // Settlements still on their way to Redis, before the process may exit.
    limiter.drain(LIMITS_PATIENCE.min(drain_timeout)).await;
    stop.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(())
}

/// Serves `/metrics` alone on `listener` (`metrics_listen`) until `shutdown` resolves: the
/// figures can then stay on an internal network while the API faces clients.
pub async fn run_metrics(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(super::routes::ops::metrics))
        .with_state(state);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
