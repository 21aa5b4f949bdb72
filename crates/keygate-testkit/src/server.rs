//! A real keygate server on `127.0.0.1:0`, over a store of its own.

use std::net::SocketAddr;
use std::sync::Arc;

use keygate_core::{Clock, ManualClock, SystemClock, Timestamp};
use keygate_crypto::MasterKey;
use keygate_llm::GatewayFile;
use keygate_server::limits::Limiter;
use keygate_server::service::ensure_owner;
use keygate_server::{AppState, GatewayState, Keygate, ServerSettings};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Db, TestStore};

/// A running server. `stop` shuts it down gracefully; dropping it aborts it.
#[derive(Debug)]
pub struct TestServer {
    pub addr: SocketAddr,
    pub base_url: String,
    /// The owner token printed at first start.
    pub owner_token: String,
    pub keygate: Arc<Keygate>,
    pub store: TestStore,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(db: Db) -> anyhow::Result<Self> {
        Self::start_with(db, Arc::new(SystemClock), ServerSettings::default()).await
    }

    pub async fn start_with(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: ServerSettings,
    ) -> anyhow::Result<Self> {
        Self::start_full(
            db,
            clock,
            Box::new(move |_| settings),
            Arc::new(GatewayState::empty()),
            keygate_server::proxy::ProxyRoutes::default(),
            Limiter::new(),
        )
        .await
    }

    /// A server whose LLM gateway is configured by `config`: the `[providers.*]`,
    /// `[model_groups.*]`, `[gateway]`, `[prices.*]` and `[routes.*]` tables of `keygate.toml`. `env::`
    /// credentials are looked up in `env`, never in the process environment.
    pub async fn start_gateway(db: Db, config: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        Self::start_gateway_limited(db, config, env, Limiter::new()).await
    }

    /// The same, counting limits with `limiter` (one sharing them through Redis, say).
    pub async fn start_gateway_limited(
        db: Db,
        config: &str,
        env: &[(&str, &str)],
        limiter: Limiter,
    ) -> anyhow::Result<Self> {
        Self::start_gateway_at(db, config, env, limiter, Arc::new(SystemClock)).await
    }

    /// The same, on `clock` (a [`ManualClock`] to cross a limit's window).
    pub async fn start_gateway_at(
        db: Db,
        config: &str,
        env: &[(&str, &str)],
        limiter: Limiter,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        // `[routes.*]` (the generic proxy routes) are the server's; the rest is the gateway's.
        let mut table: toml::Table = toml::from_str(config)?;
        let routes: std::collections::BTreeMap<String, keygate_server::proxy::RouteFile> =
            match table.remove("routes") {
                Some(routes) => routes.try_into()?,
                None => std::collections::BTreeMap::new(),
            };
        let file = GatewayFile::from_toml(&toml::to_string(&table)?)?;
        let lookup = |name: &str| {
            env.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        };
        let routes = keygate_server::proxy::ProxyRoutes::new(&routes, &lookup)?;
        let env = env
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
        let gateway = GatewayState::new(file, env)?;
        let settings = ServerSettings {
            usage_flush: std::time::Duration::from_millis(50),
            ..ServerSettings::default()
        };
        Self::start_full(
            db,
            clock,
            Box::new(move |_| settings),
            Arc::new(gateway),
            routes,
            limiter,
        )
        .await
    }

    /// A server whose settings depend on the address it listens on (say, a URL that names
    /// it), made by `settings` once it is bound.
    pub async fn start_at_address(
        db: Db,
        settings: impl FnOnce(std::net::SocketAddr) -> ServerSettings + Send + 'static,
    ) -> anyhow::Result<Self> {
        Self::start_full(
            db,
            Arc::new(SystemClock),
            Box::new(settings),
            Arc::new(GatewayState::empty()),
            keygate_server::proxy::ProxyRoutes::default(),
            Limiter::new(),
        )
        .await
    }

    async fn start_full(
        db: Db,
        clock: Arc<dyn Clock>,
        settings: Box<dyn FnOnce(std::net::SocketAddr) -> ServerSettings + Send>,
        gateway: Arc<GatewayState>,
        routes: keygate_server::proxy::ProxyRoutes,
        limiter: Limiter,
    ) -> anyhow::Result<Self> {
        let store = TestStore::new(db).await?;
        let master_key = MasterKey::load_or_create(&store.dir.path().join("master.key"))?;
        let keygate =
            Arc::new(Keygate::open(store.store.clone(), Arc::new(master_key), clock).await?);
        let owner = ensure_owner(&keygate)
            .await?
            .ok_or_else(|| anyhow::anyhow!("a fresh store must print an owner token"))?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = oneshot::channel::<()>();
        let state = AppState::with_gateway(keygate.clone(), settings(addr), gateway)
            .with_routes(routes)
            .with_limiter(limiter);
        let handle = tokio::spawn(keygate_server::run(listener, state, async {
            let _ = rx.await;
        }));
        Ok(Self {
            addr,
            base_url: format!("http://{addr}"),
            owner_token: owner.expose().to_owned(),
            keygate,
            store,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    /// A server whose clock moves only when the test moves it, from `at`. Last-use times
    /// are written only at shutdown, so snapshots of a key stay comparable between calls.
    pub async fn start_frozen(db: Db, at: Timestamp) -> anyhow::Result<(Self, ManualClock)> {
        let clock = ManualClock::starting_at(at);
        let settings = ServerSettings {
            last_used_flush: std::time::Duration::from_secs(3600),
            ..ServerSettings::default()
        };
        let server = Self::start_with(db, Arc::new(clock.clone()), settings).await?;
        Ok((server, clock))
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base_url, path)
    }

    /// Shuts down gracefully and waits until batched writes are flushed. The store stays
    /// open for inspection.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            handle.await??;
        }
        Ok(())
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            handle.abort();
        }
    }
}
