//! Key changes fanned out to every node through Redis pub/sub, so that a revocation made on one
//! node takes effect on all of them at once rather than when their cached copy expires.
//!
//! A change invalidates this node's cache first, then is queued (never awaited) for a
//! background task that publishes it; an admin request neither waits for Redis nor fails with
//! it. Another task listens on the channel and invalidates what other nodes announce.
//!
//! Notices can be lost: the queue overflows, a publish fails, or the subscription drops. The
//! rules that keep every cache honest anyway: a node that could not send a notice later sends
//! "clear everything" instead; a node that (re)subscribes clears its whole cache, because it
//! cannot know what it missed while it was not listening.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::StreamExt;
use keygate_core::KeyId;
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cache::{Invalidation, VerifyCache};

/// Notices waiting to be published; past this, changes are covered by a later "clear
/// everything" notice instead.
const QUEUE: usize = 1024;
/// How long a connection attempt, a publish or a ping may take.
const REDIS_TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a failure Redis is left alone before it is tried again.
const REDIS_REST: Duration = Duration::from_secs(1);
/// How often a quiet subscription is pinged, so a connection that died silently is noticed.
const PING_EVERY: Duration = Duration::from_secs(10);
/// How long shutdown spends publishing the notices still queued.
const FLUSH_DEADLINE: Duration = Duration::from_secs(1);
/// Longest notice read: a node id, a space and a key id fit in far less.
const MAX_NOTICE_BYTES: usize = 256;
/// The key id of a notice that tells every node to clear its whole cache.
const ALL: &str = "*";

/// The Redis URL could not be used. The URL itself is never echoed: it may hold a password.
#[derive(Debug, thiserror::Error)]
pub enum InvalidationError {
    #[error("redis_url is not a usable Redis URL")]
    BadUrl,
}

/// Why Redis could not be reached; logged, never returned to a client.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("the subscription's connection closed")]
    Closed,
}

/// Runs `future` within [`REDIS_TIMEOUT`].
async fn timed<T>(
    future: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, LinkError> {
    Ok(tokio::time::timeout(REDIS_TIMEOUT, future)
        .await
        .map_err(|_| LinkError::Timeout(REDIS_TIMEOUT))??)
}

/// What a notice says changed.
#[derive(Debug)]
enum Notice {
    Key(KeyId),
    /// Something every key may depend on, such as a project's limits.
    Everything,
}

impl Notice {
    fn as_str(&self) -> &str {
        match self {
            Self::Key(id) => id.as_str(),
            Self::Everything => ALL,
        }
    }
}

/// Invalidation on this node and, through Redis, on every other.
pub struct SharedInvalidation {
    cache: Arc<VerifyCache>,
    client: redis::Client,
    channel: String,
    /// Tells this node's own notices apart, which it has already applied.
    node: String,
    outbox: mpsc::Sender<Notice>,
    /// The publisher's end of the queue, taken when the tasks start.
    inbox: Mutex<Option<mpsc::Receiver<Notice>>>,
    /// A notice was not sent: the next publish tells every node to clear its whole cache.
    lost: AtomicBool,
}

impl std::fmt::Debug for SharedInvalidation {
    /// Leaves the client out: its connection details may hold a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedInvalidation")
            .field("channel", &self.channel)
            .field("node", &self.node)
            .field("lost", &self.lost)
            .finish_non_exhaustive()
    }
}

impl Invalidation for SharedInvalidation {
    fn key_changed(&self, id: &KeyId) {
        self.cache.invalidate(id);
        self.queue(Notice::Key(id.clone()));
    }

    fn everything_changed(&self) {
        self.cache.invalidate_all();
        self.queue(Notice::Everything);
    }
}

impl SharedInvalidation {
    fn queue(&self, notice: Notice) {
        // Closed only once the tasks have stopped, at shutdown: nothing is published then.
        if let Err(mpsc::error::TrySendError::Full(_)) = self.outbox.try_send(notice)
            && !self.lost.swap(true, Ordering::AcqRel)
        {
            tracing::warn!(
                queued = QUEUE,
                "key change notices are not being published fast enough: \
                 other nodes will be told to clear their whole verification cache"
            );
        }
    }
}

impl SharedInvalidation {
    /// Key changes waiting to be published.
    pub fn pending(&self) -> usize {
        self.outbox.max_capacity() - self.outbox.capacity()
    }

    /// Invalidation of `cache` shared through the Redis at `url`. Nothing connects until
    /// [`run`](Self::run).
    pub fn new(url: &str, cache: Arc<VerifyCache>) -> Result<Self, InvalidationError> {
        let client = redis::Client::open(url).map_err(|_| InvalidationError::BadUrl)?;
        // Pub/sub channels span a Redis server's databases; naming the database keeps
        // deployments that share a server but not a database apart, as their limits are.
        let channel = format!(
            "keygate:invalidate:{}",
            client.get_connection_info().redis_settings().db()
        );
        let (outbox, inbox) = mpsc::channel(QUEUE);
        Ok(Self {
            cache,
            client,
            channel,
            node: uuid::Uuid::now_v7().simple().to_string(),
            outbox,
            inbox: Mutex::new(Some(inbox)),
            lost: AtomicBool::new(false),
        })
    }

    /// Publishes this node's changes and applies the others' until `stop`, then publishes what
    /// is still queued (for a short while at most). A second call returns at once.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let inbox = self
            .inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let Some(inbox) = inbox else { return };
        tokio::join!(self.publish(inbox, &stop), self.subscribe(&stop));
    }

    async fn publish(&self, mut inbox: mpsc::Receiver<Notice>, stop: &CancellationToken) {
        let mut link = Publisher::new(self);
        // When a notice was lost, the earliest moment to try sending "clear everything".
        let mut retry_at = Instant::now();
        loop {
            let lost = self.lost.load(Ordering::Acquire);
            tokio::select! {
                biased;
                () = stop.cancelled() => break,
                () = tokio::time::sleep_until(retry_at), if lost => {
                    // Cleared before the queue is emptied and the notice sent: whatever is
                    // dropped until the send is covered by it.
                    self.lost.store(false, Ordering::Release);
                    while inbox.try_recv().is_ok() {}
                    if !link.send(ALL).await {
                        self.lost.store(true, Ordering::Release);
                        retry_at = Instant::now() + REDIS_REST;
                    }
                }
                id = inbox.recv() => {
                    let Some(id) = id else { break };
                    // While a notice is lost, the coming "clear everything" covers this one.
                    if !lost && !link.send(id.as_str()).await {
                        self.lost.store(true, Ordering::Release);
                        retry_at = Instant::now() + REDIS_REST;
                    }
                }
            }
        }
        // A change made just before shutdown still reaches the other nodes, if Redis answers.
        let flush = async {
            if self.lost.load(Ordering::Acquire) {
                link.send(ALL).await;
                return;
            }
            while let Ok(id) = inbox.try_recv() {
                if !link.send(id.as_str()).await {
                    return;
                }
            }
        };
        let _ = tokio::time::timeout(FLUSH_DEADLINE, flush).await;
    }

    async fn subscribe(&self, stop: &CancellationToken) {
        let mut down = false;
        loop {
            let err = match self.listen(stop, &mut down).await {
                Ok(()) => return,
                Err(err) => err,
            };
            if !down {
                down = true;
                tracing::error!(
                    error = %err,
                    "Redis is unreachable: key changes made on other nodes reach this one \
                     only when its cached keys expire, until Redis answers"
                );
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(REDIS_REST) => {}
            }
        }
    }

    /// Subscribes and applies notices until `stop` (`Ok`) or until the connection fails.
    async fn listen(&self, stop: &CancellationToken, down: &mut bool) -> Result<(), LinkError> {
        let (mut sink, mut notices) = timed(self.client.get_async_pubsub()).await?.split();
        timed(sink.subscribe(&self.channel)).await?;
        // Notices sent while this node was not listening are lost to it, so nothing it
        // cached before now can be trusted.
        self.cache.invalidate_all();
        if std::mem::take(down) {
            tracing::info!(
                "Redis answers again: key changes are shared across nodes \
                 (verification cache cleared)"
            );
        } else {
            tracing::info!("key changes are shared across nodes through Redis");
        }
        let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                notice = notices.next() => match notice {
                    Some(notice) => self.apply(notice.get_payload_bytes()),
                    None => return Err(LinkError::Closed),
                },
                _ = ping.tick() => {
                    timed(sink.ping::<redis::Value>()).await?;
                }
            }
        }
    }

    /// Applies another node's notice: `<node> <key id>`, or `<node> *` for everything.
    fn apply(&self, payload: &[u8]) {
        let notice = (payload.len() <= MAX_NOTICE_BYTES)
            .then(|| std::str::from_utf8(payload).ok())
            .flatten()
            .and_then(|text| text.split_once(' '));
        let Some((node, id)) = notice else {
            tracing::debug!(
                bytes = payload.len(),
                "ignored a malformed key change notice"
            );
            return;
        };
        if node == self.node {
            return;
        }
        if id == ALL {
            // A project's limits changed, or that node missed sending key changes. At debug
            // level: anyone who can publish on the channel could otherwise fill the log.
            tracing::debug!("another node had every cached key forgotten");
            self.cache.invalidate_all();
            return;
        }
        match KeyId::parse(id) {
            Ok(id) => self.cache.invalidate(&id),
            Err(_) => tracing::debug!("ignored a key change notice without a key id"),
        }
    }
}

/// The publisher's connection, made on first use and again after a failure.
struct Publisher<'a> {
    shared: &'a SharedInvalidation,
    connection: Option<MultiplexedConnection>,
    down: bool,
}

impl<'a> Publisher<'a> {
    fn new(shared: &'a SharedInvalidation) -> Self {
        Self {
            shared,
            connection: None,
            down: false,
        }
    }

    /// Publishes one notice naming `id`; `false`, with a first failure logged, if Redis did
    /// not take it.
    async fn send(&mut self, id: &str) -> bool {
        match self.try_send(id).await {
            Ok(()) => {
                if std::mem::take(&mut self.down) {
                    tracing::info!("key change notices are published again");
                }
                true
            }
            Err(err) => {
                self.connection = None;
                if !std::mem::replace(&mut self.down, true) {
                    tracing::error!(
                        error = %err,
                        "cannot publish key changes to Redis: other nodes will clear their \
                         verification cache once it answers"
                    );
                }
                false
            }
        }
    }

    async fn try_send(&mut self, id: &str) -> Result<(), LinkError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(REDIS_TIMEOUT))
                    .set_response_timeout(Some(REDIS_TIMEOUT));
                let made = timed(
                    self.shared
                        .client
                        .get_multiplexed_async_connection_with_config(&config),
                )
                .await?;
                self.connection.insert(made)
            }
        };
        let notice = format!("{} {id}", self.shared.node);
        timed(
            redis::cmd("PUBLISH")
                .arg(&self.shared.channel)
                .arg(notice)
                .query_async::<i64>(connection),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    //! Against a Redis of the test's own (`redis-server` on a free port), which a test can
    //! kill and start again.

    use keygate_core::{KeyEnv, KeyHint, KeyRecord, KeySpec, OrgId, ProjectId, Timestamp};

    use keygate_testkit::OwnRedis;

    use super::*;
    use crate::cache::CachedKey;

    fn cached() -> Arc<CachedKey> {
        let spec = KeySpec::api(
            OrgId::generate(),
            ProjectId::generate(),
            "k".into(),
            KeyEnv::Live,
        );
        let record = KeyRecord::issue(
            spec,
            KeyHint::from_stored("kg_live_abcd…wxyz".into()),
            Timestamp::from_millis(0),
        );
        Arc::new(CachedKey::new(record, Vec::new()))
    }

    /// A node: its cache, with one key cached, and its invalidation.
    fn node(url: &str) -> (Arc<SharedInvalidation>, Arc<CachedKey>) {
        let cache = Arc::new(VerifyCache::new(100));
        let key = cached();
        cache.remember_key(key.clone(), cache.epoch());
        let shared = Arc::new(SharedInvalidation::new(url, cache).unwrap());
        (shared, key)
    }

    fn is_cached(node: &SharedInvalidation, key: &CachedKey) -> bool {
        node.cache.key(&key.record.id).is_some()
    }

    /// Waits up to three seconds for `condition`.
    async fn eventually(what: &str, condition: impl Fn() -> bool) {
        for _ in 0..300 {
            if condition() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{what}: not within three seconds");
    }

    /// Waits until `node` listens: subscribing cleared the key cached at its start.
    async fn listening(node: &SharedInvalidation, initial: &CachedKey) {
        eventually("the node subscribes", || !is_cached(node, initial)).await;
    }

    #[test]
    fn notices_apply_to_other_nodes_only() {
        let (a, key) = node("redis://127.0.0.1:1");
        let (b, other) = node("redis://127.0.0.1:1");
        a.cache.remember_key(other.clone(), a.cache.epoch());

        a.apply(format!("{} {}", a.node, key.record.id).as_bytes());
        assert!(is_cached(&a, &key), "its own notice was applied already");
        a.apply(format!("{} key_", b.node).as_bytes());
        a.apply(b"no space");
        a.apply(&[0xff, b' ', b'*']);
        a.apply(format!("{} *{}", b.node, "x".repeat(MAX_NOTICE_BYTES)).as_bytes());
        assert!(is_cached(&a, &key), "malformed notices change nothing");

        a.apply(format!("{} {}", b.node, key.record.id).as_bytes());
        assert!(!is_cached(&a, &key));
        assert!(is_cached(&a, &other), "only the named key goes");
        a.apply(format!("{} *", b.node).as_bytes());
        assert!(!is_cached(&a, &other));
    }

    #[test]
    fn the_channel_names_the_database() {
        let (zero, _) = node("redis://127.0.0.1:1");
        let (three, _) = node("redis://:hunter2@127.0.0.1:1/3"); // keygate:allow (made up for the test)
        assert_eq!(zero.channel, "keygate:invalidate:0");
        assert_eq!(three.channel, "keygate:invalidate:3");
        assert!(!format!("{three:?}").contains("hunter2"));
        assert!(matches!(
            SharedInvalidation::new("http://nope", Arc::new(VerifyCache::new(1))),
            Err(InvalidationError::BadUrl)
        ));
    }

    #[tokio::test]
    async fn a_change_reaches_the_other_node() {
        let redis = OwnRedis::start(None);
        let (a, key) = node(&redis.url());
        let (b, b_initial) = node(&redis.url());
        let stop = CancellationToken::new();
        let tasks = [
            tokio::spawn(a.clone().run(stop.clone())),
            tokio::spawn(b.clone().run(stop.clone())),
        ];
        listening(&a, &key).await;
        listening(&b, &b_initial).await;
        // Cached on both, as verifications would.
        a.cache.remember_key(key.clone(), a.cache.epoch());
        b.cache.remember_key(key.clone(), b.cache.epoch());

        a.key_changed(&key.record.id);
        assert!(!is_cached(&a, &key), "the changing node forgets at once");
        eventually("the other node forgets", || !is_cached(&b, &key)).await;

        stop.cancel();
        for task in tasks {
            task.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_node_clears_its_cache_when_it_subscribes_again() {
        let mut redis = OwnRedis::start(None);
        let (b, initial) = node(&redis.url());
        let stop = CancellationToken::new();
        let task = tokio::spawn(b.clone().run(stop.clone()));
        listening(&b, &initial).await;

        redis.kill();
        // Cached while nobody could tell this node of changes: it may be stale by now.
        let key = cached();
        b.cache.remember_key(key.clone(), b.cache.epoch());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(is_cached(&b, &key), "nothing clears it while Redis is down");
        redis.restart();

        eventually("the cache is cleared on subscribing again", || {
            !is_cached(&b, &key)
        })
        .await;
        stop.cancel();
        task.await.unwrap();
    }

    #[tokio::test]
    async fn a_lost_notice_tells_every_node_to_clear_everything() {
        let redis = OwnRedis::start(None);
        let (a, _) = node(&redis.url());
        let (b, initial) = node(&redis.url());
        let stop = CancellationToken::new();
        let b_task = tokio::spawn(b.clone().run(stop.clone()));
        listening(&b, &initial).await;
        let unrelated = cached();
        b.cache.remember_key(unrelated.clone(), b.cache.epoch());
        // With its publisher not running yet, A's queue overflows: one notice is lost.
        for _ in 0..=QUEUE {
            a.key_changed(&KeyId::generate());
        }
        assert!(a.lost.load(Ordering::Acquire));

        let a_task = tokio::spawn(a.clone().run(stop.clone()));
        eventually("B clears everything", || !is_cached(&b, &unrelated)).await;
        eventually("A owes nothing more", || !a.lost.load(Ordering::Acquire)).await;

        stop.cancel();
        a_task.await.unwrap();
        b_task.await.unwrap();
    }
}
