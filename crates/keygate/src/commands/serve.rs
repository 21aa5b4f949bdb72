//! `keygate serve`.

use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;

use crate::config::RedisFailure;
use anyhow::Context;
use keygate_core::SystemClock;
use keygate_server::limits::persist::Saver;
use keygate_server::limits::{Limiter, OnRedisFailure};
use keygate_server::proxy::ProxyRoutes;
use keygate_server::service::ensure_owner;
use keygate_server::{AppState, GatewayState, Keygate};
use tokio::net::TcpListener;

use super::{KeyFile, open_kek, sqlite_path};
use crate::CliError;
use crate::cli::ServeArgs;
use crate::config::{Sources, check_gateway, resolve};
use crate::output::note;

pub async fn serve(config: Option<&Path>, args: ServeArgs) -> Result<(), CliError> {
    let sources = Sources::from_process(config)?;
    let settings = resolve(&sources, &args.store, args.listen.as_deref())?;
    check_gateway(&settings, &sources)?;
    let telemetry = crate::telemetry::init(settings.log_format, settings.otel_endpoint.as_deref())?;

    for dir in [
        Some(settings.data_dir.as_path()),
        settings.master_key_file.parent(),
        sqlite_path(&settings.database_url)
            .as_deref()
            .and_then(Path::parent),
    ]
    .into_iter()
    .flatten()
    .filter(|d| !d.as_os_str().is_empty())
    {
        private_dir(dir)?;
    }
    let kek = open_kek(&settings, KeyFile::CreateIfMissing)?;
    let store = keygate_store::connect(&settings.database_url)
        .await
        .map_err(|e| CliError::StoreUnavailable(e.to_string()))?;
    let keygate = Keygate::open(store, kek, Arc::new(SystemClock))
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))?
        .with_key_cache(settings.key_cache, settings.outage_grace);
    // With Redis, key changes reach the other nodes' verification caches at once.
    let keygate = match &settings.limits.redis_url {
        Some(url) => keygate
            .with_shared_invalidation(url)
            .map_err(|e| CliError::Invalid(e.to_string()))?,
        None => keygate,
    };
    let keygate = Arc::new(keygate);
    if let Some(token) = ensure_owner(&keygate)
        .await
        .map_err(|e| CliError::Other(e.into()))?
    {
        note(&format!(
            "\nkeygate: first start. The owner admin token is shown once, here:\n\n    {}\n\n\
             Store it in your secret manager, then `export KEYGATE_TOKEN=...` to use the CLI.\n",
            token.expose()
        ));
    }
    let routes = ProxyRoutes::new(&settings.routes, &|name| sources.env.get(name).cloned())
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let gateway = GatewayState::new(settings.gateway, sources.env)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    let aliases = gateway.current().aliases().to_vec();
    if !aliases.is_empty() {
        tracing::info!(models = ?aliases, "LLM gateway ready");
    }
    if let Some(tls) = &settings.server.tls {
        tls.check().map_err(|e| CliError::Invalid(e.to_string()))?;
    }
    let stop = shutdown();
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let metrics_listener = match settings.metrics_listen {
        None => None,
        Some(addr) => {
            let bound = TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} (metrics_listen)"))?;
            tracing::info!(addr = %bound.local_addr().map_err(anyhow::Error::from)?, "metrics are served here only");
            Some(bound)
        }
    };
    tracing::info!(
        addr = %listener.local_addr().map_err(anyhow::Error::from)?,
        tls = settings.server.tls.is_some(),
        mutual_tls = settings.server.tls.as_ref().is_some_and(|t| t.client_ca.is_some()),
        store = ?keygate.store().backend(),
        "keygate is listening"
    );
    let limiter = match &settings.limits.redis_url {
        None => Limiter::new(),
        Some(url) => {
            let policy = match settings.limits.on_redis_failure {
                RedisFailure::Local => OnRedisFailure::Local,
                RedisFailure::Closed => OnRedisFailure::Closed,
            };
            let limiter = Limiter::shared(url, policy);
            if limiter.connect().await {
                tracing::info!("limits are shared across nodes through Redis");
            }
            limiter
        }
    };
    let store = keygate.store().clone();
    let clock = keygate.clock().clone();
    // Without Redis, the counts saved by the last run are back before the first request: a
    // restart must not make a quota or a budget whole again.
    let restored = limiter
        .restore_from(store.as_ref(), clock.as_ref())
        .await
        .map_err(|e| CliError::StoreUnavailable(e.to_string()))?;
    if limiter.counts_locally() {
        tracing::info!(restored, "quota and budget counts restored from the store");
    }
    let state = AppState::with_gateway(keygate, settings.server, Arc::new(gateway))
        .with_limiter(limiter)
        .with_routes(routes);
    let saver = Saver::start(state.limiter.clone(), store.clone(), clock);
    let served = match metrics_listener {
        None => keygate_server::run(listener, state, stop).await,
        Some(metrics_listener) => {
            // One stop for both listeners.
            let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
            let api = keygate_server::run(listener, state.clone(), async move {
                stop.await;
                let _ = stopping.send(());
            });
            let metrics = keygate_server::http::run_metrics(metrics_listener, state, async {
                let _ = stopped.await;
            });
            let (served, metrics) = tokio::join!(api, metrics);
            metrics.context("the metrics listener failed")?;
            served
        }
    };
    // After the drain, with every reservation settled: the last save counts what was spent.
    saver.stop().await;
    served.context("server failed")?;
    store.close().await;
    tracing::info!("keygate stopped");
    // The exporter's last batch leaves on its own thread: not on the runtime's.
    let _ = tokio::task::spawn_blocking(move || telemetry.shutdown()).await;
    Ok(())
}

/// Creates `dir` readable by its owner only, if it does not exist yet.
fn private_dir(dir: &Path) -> Result<(), CliError> {
    if dir.exists() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .and_then(|()| std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)))
        .with_context(|| format!("cannot create {}", dir.display()))?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM. The handlers are installed when this is called, before the
/// server listens: a signal that arrives while it starts is a request to stop, not a kill.
fn shutdown() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt());
    let terminate = signal(SignalKind::terminate());
    async move {
        match (interrupt, terminate) {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {},
                    _ = terminate.recv() => {},
                }
            }
            // Without signal handlers, Ctrl-C as tokio offers it.
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        tracing::info!("shutting down: finishing requests and flushing writes");
    }
}
