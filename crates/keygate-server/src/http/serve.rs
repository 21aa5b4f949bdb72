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
    let metrics = state.keygate.metrics().clone();
    let tls = match &state.settings.tls {
        None => None,
        Some(settings) => Some(
            super::tls::TlsServer::new(settings)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidInput, err))?,
        ),
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    if state.settings.identity.issuer.is_none()
        && listener
            .local_addr()
            .is_ok_and(|addr| addr.ip().is_unspecified())
    {
        tracing::warn!(
            "tokens are issued as http(s)://<listen address>, which names no host: set [tokens] \
             issuer to the URL clients reach keygate at"
        );
    }
    state.keygate.configure_tokens(
        state.settings.identity.clone(),
        listener
            .local_addr()
            .ok()
            .map(|addr| format!("{scheme}://{addr}")),
    );
    if let Err(err) = state.keygate.load_signing_keys().await {
        tracing::warn!(error = %err, "token signing keys could not be loaded yet");
    }
    let spawn = |name: &'static str, task| spawn_task(&tasks, &metrics, name, task);
    spawn(
        "last_used",
        Box::pin(state.keygate.last_used().clone().run(
            state.keygate.store().clone(),
            state.settings.last_used_flush,
            stop.clone(),
        )),
    );

    if let Err(err) = state.gateway.reload(state.keygate.store().as_ref()).await {
        tracing::warn!(error = %err, "stored model groups could not be loaded yet");
    }
    spawn(
        "model_groups",
        Box::pin(state.gateway.clone().watch(
            state.keygate.store().clone(),
            state.settings.model_groups_reload,
            stop.clone(),
        )),
    );
    spawn(
        "usage",
        Box::pin(state.keygate.usage().clone().run(
            state.keygate.store().clone(),
            state.settings.usage_flush,
            stop.clone(),
        )),
    );
    spawn(
        "kept_responses",
        Box::pin(
            state
                .keygate
                .kept_responses()
                .clone()
                .run(state.keygate.store().clone(), stop.clone()),
        ),
    );
    let keygate = &state.keygate;
    spawn(
        "key_changes",
        Box::pin(keygate.clone().share_key_changes(stop.clone())),
    );
    spawn(
        "auth_failures",
        Box::pin(keygate.clone().summarise_auth_failures(stop.clone())),
    );
    spawn(
        "audit_checkpoints",
        Box::pin(
            keygate
                .clone()
                .run_checkpoints(state.settings.audit_checkpoints, stop.clone()),
        ),
    );
    spawn(
        "usage_pruning",
        Box::pin(
            keygate
                .clone()
                .run_usage_pruning(state.settings.usage_retention, stop.clone()),
        ),
    );
    spawn(
        "due_secrets",
        Box::pin(keygate.clone().watch_due_secrets(
            state.settings.rotation_check,
            state.settings.key_expiry_notice,
            state.settings.weekly_review,
            stop.clone(),
        )),
    );
    spawn(
        "signing_keys",
        Box::pin(keygate.clone().run_signing_keys(stop.clone())),
    );
    spawn(
        "federation_keys",
        Box::pin(keygate.clone().run_federation_keys(stop.clone())),
    );
    if let Some(tls) = &tls {
        spawn("tls_reload", Box::pin(tls.clone().watch(stop.clone())));
        if let Some(from) = state.settings.tls.as_ref().and_then(|t| t.redirect_from) {
            let redirect = TcpListener::bind(from).await?;
            let port = listener.local_addr()?.port();
            spawn(
                "tls_redirect",
                Box::pin(super::tls::redirect(redirect, port, stop.clone())),
            );
        }
    }
    spawn("alerts", Box::pin(state.alerts.clone().run(stop.clone())));
    spawn(
        "anomalies",
        Box::pin(state.anomalies.clone().run(stop.clone())),
    );
    spawn(
        "thresholds",
        Box::pin(crate::thresholds::run(
            state.keygate.clone(),
            state.limiter.clone(),
            stop.clone(),
        )),
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
        match &tls {
            None => {
                let connection = builder
                    .serve_connection_with_upgrades(
                        TokioIo::new(tcp),
                        TowerToHyperService::new(service),
                    )
                    .into_owned();
                let connection = graceful.watch(connection);
                connections.spawn(async move {
                    if let Err(err) = connection.await {
                        tracing::debug!(error = %err, "connection closed with an error");
                    }
                });
            }
            Some(tls) => {
                // The handshake runs in the connection's task, bounded like a request head, so
                // a slow client holds up no one else.
                let (acceptor, builder, watcher) =
                    (tls.acceptor(), builder.clone(), graceful.watcher());
                connections.spawn(async move {
                    let stream =
                        match tokio::time::timeout(header_read_timeout, acceptor.accept(tcp)).await
                        {
                            Ok(Ok(stream)) => stream,
                            Ok(Err(err)) => {
                                tracing::debug!(error = %err, "TLS handshake failed");
                                return;
                            }
                            Err(_) => return,
                        };
                    let certificate = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|der| {
                            std::sync::Arc::new(crate::service::ClientCertificate::from_der(der))
                        });
                    let service =
                        service.map_request(move |mut request: hyper::Request<Incoming>| {
                            if let Some(certificate) = &certificate {
                                request.extensions_mut().insert(certificate.clone());
                            }
                            request
                        });
                    let connection = builder
                        .serve_connection_with_upgrades(
                            TokioIo::new(stream),
                            TowerToHyperService::new(service),
                        )
                        .into_owned();
                    if let Err(err) = watcher.watch(connection).await {
                        tracing::debug!(error = %err, "connection closed with an error");
                    }
                });
            }
        }
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

/// A background task of the server: tracked (shutdown waits for it), and a panic in it is
/// logged and counted (`keygate_task_failures_total`) rather than lost.
fn spawn_task(
    tasks: &TaskTracker,
    metrics: &std::sync::Arc<crate::metrics::Metrics>,
    name: &'static str,
    task: std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
) {
    use futures_util::FutureExt as _;
    let metrics = metrics.clone();
    tasks.spawn(async move {
        if std::panic::AssertUnwindSafe(task)
            .catch_unwind()
            .await
            .is_err()
        {
            tracing::error!(
                task = name,
                "a background task failed; the server goes on without it"
            );
            metrics.task_failed(name);
        }
    });
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

#[cfg(test)]
mod task_tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_background_task_is_counted_and_the_rest_go_on() {
        let tasks = TaskTracker::new();
        let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
        spawn_task(
            &tasks,
            &metrics,
            "usage",
            Box::pin(async { std::panic::resume_unwind(Box::new("the failure under test")) }),
        );
        let (done, finished) = tokio::sync::oneshot::channel();
        spawn_task(
            &tasks,
            &metrics,
            "last_used",
            Box::pin(async move {
                let _ = done.send(());
            }),
        );
        tasks.close();
        tasks.wait().await;
        assert!(finished.await.is_ok());
        let text = metrics.render(&crate::metrics::Snapshot {
            deployments: Vec::new(),
            usage_pending: 0,
            usage_dropped: 0,
            last_used_pending: 0,
            invalidation_pending: 0,
            limits_mode: "local",
        });
        assert!(
            text.contains("keygate_task_failures_total{task=\"usage\"} 1"),
            "{text}"
        );
        assert!(!text.contains("task=\"last_used\""));
    }
}
