//! Serving: TCP_NODELAY on every connection, background tasks owned and drained on shutdown.

use std::future::Future;
use std::net::SocketAddr;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{AppState, router};

/// Serves the API on `listener` until `shutdown` resolves, then finishes in-flight requests
/// and flushes batched writes before returning.
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

    // Without TCP_NODELAY a response written as headers then body waits for the client's
    // delayed ACK on every kept-alive request.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(error = %err, "could not set TCP_NODELAY");
        }
    });
    let app = router(state).into_make_service_with_connect_info::<SocketAddr>();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;

    stop.cancel();
    tasks.close();
    tasks.wait().await;
    served
}
