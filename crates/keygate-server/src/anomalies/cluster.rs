//! Detection across nodes, with Redis. Each node's traffic is added to its keys' figures in
//! Redis (one script call per usage batch, the arithmetic of keygate-watch's in-memory
//! detectors), so the detectors judge a key's whole traffic — its baseline, the networks and
//! countries any node saw it from, its refusals — whichever node it reached. Failed
//! authentications are summed per source and per presented key the same way; a source blocked
//! on one node is refused by every node within a second; and every finding, block and burst is
//! claimed once per cooldown for the whole cluster before it is acted on, so it is announced
//! once, not once per node.
//!
//! Everything here runs in the anomaly task, off the request path. While Redis does not
//! answer, each node judges what it sees, as without Redis.

use std::net::IpAddr;
use std::sync::Mutex as SyncMutex;
use std::time::Duration;

use keygate_watch::detect::{
    BASELINE_WEIGHT, Figures, MAX_COUNTRIES, MAX_NETWORKS, MAX_QUIET_MINUTES, Tally, Traffic,
};
use redis::aio::ConnectionManager;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long one Redis call may take.
const TIMEOUT: Duration = Duration::from_secs(1);
/// How long after a failed connection Redis is left alone.
const REST: Duration = Duration::from_secs(2);
/// A key's figures are forgotten after this long without traffic (and it is learnt again).
const KEPT: Duration = Duration::from_secs(30 * 86_400);
/// Failure counts live a little longer than their minute.
const COUNT_KEPT: Duration = Duration::from_secs(120);
const PREFIX: &str = "keygate:watch";

/// Adds each traffic to its key's figures (keygate-watch's `KeyState::add`: the same
/// arithmetic) and answers each key's tally. Three keys per traffic: the figures, the networks
/// and the countries.
const TALLY: &str = r"
local weight = tonumber(ARGV[1])
local kept = tonumber(ARGV[2])
local max_nets = tonumber(ARGV[3])
local max_countries = tonumber(ARGV[4])
local max_quiet = tonumber(ARGV[5])
local function num(x) return string.format('%.17g', x) end
local a = 6
local out = {}
for k = 1, #KEYS, 3 do
  local state, nets, countries = KEYS[k], KEYS[k + 1], KEYS[k + 2]
  local first_at = tonumber(ARGV[a])
  local minute = tonumber(ARGV[a + 1])
  local add = {}
  for i = 1, 5 do add[i] = tonumber(ARGV[a + 1 + i]) end
  a = a + 7
  local s = redis.call('HMGET', state, 'first', 'minute', 'r', 't', 's', 'd', 'f', 'br', 'bt', 'bs')
  local first = tonumber(s[1]) or first_at
  local m = tonumber(s[2]) or minute
  local cur, base = {}, {}
  for i = 1, 5 do cur[i] = tonumber(s[2 + i]) or 0 end
  for i = 1, 3 do base[i] = tonumber(s[7 + i]) or 0 end
  if minute > m then
    for i = 1, 3 do base[i] = base[i] + weight * (cur[i] - base[i]) end
    local decay = (1 - weight) ^ math.min(minute - m - 1, max_quiet)
    for i = 1, 3 do base[i] = base[i] * decay end
    m = minute
    cur = {0, 0, 0, 0, 0}
  end
  for i = 1, 5 do cur[i] = cur[i] + add[i] end
  redis.call('HSET', state, 'first', num(first), 'minute', num(m),
    'r', num(cur[1]), 't', num(cur[2]), 's', num(cur[3]), 'd', num(cur[4]), 'f', num(cur[5]),
    'br', num(base[1]), 'bt', num(base[2]), 'bs', num(base[3]))
  local known_nets = redis.call('SCARD', nets)
  local count = known_nets
  local new_nets = {}
  local n = tonumber(ARGV[a])
  for i = 1, n do
    local net = ARGV[a + i]
    if count < max_nets and redis.call('SADD', nets, net) == 1 then
      count = count + 1
      new_nets[#new_nets + 1] = net
    end
  end
  a = a + n + 1
  local known_countries = redis.call('SMEMBERS', countries)
  count = #known_countries
  local new_countries = {}
  n = tonumber(ARGV[a])
  for i = 1, n do
    local c = ARGV[a + i]
    if count < max_countries and redis.call('SADD', countries, c) == 1 then
      count = count + 1
      new_countries[#new_countries + 1] = c
    end
  end
  a = a + n + 1
  for _, key in ipairs({state, nets, countries}) do redis.call('PEXPIRE', key, kept) end
  out[#out + 1] = {
    {num(first), num(cur[1]), num(cur[2]), num(cur[3]), num(cur[4]), num(cur[5]),
     num(base[1]), num(base[2]), num(base[3]), num(known_nets)},
    new_nets, known_countries, new_countries}
end
return out
";

/// Why Redis did not serve; logged, and the node then judges alone.
#[derive(Debug, thiserror::Error)]
pub(super) enum ClusterError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis is resting after a failure")]
    Resting,
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("Redis answered in a shape not expected: {0}")]
    Shape(&'static str),
}

/// What a claim is about: one finding kind per key, one block per source, one burst per hint.
pub(super) enum Claim<'a> {
    Finding { detector: &'a str, key: &'a str },
    Block { source: IpAddr },
    Burst { hint: &'a str },
}

/// Redis for the detectors of every node.
pub(super) struct Cluster {
    client: redis::Client,
    connection: Mutex<Option<ConnectionManager>>,
    rest_until: SyncMutex<Option<Instant>>,
    tally: redis::Script,
}

impl std::fmt::Debug for Cluster {
    /// Leaves the client (and any password in its URL) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster").finish_non_exhaustive()
    }
}

async fn timed<T>(future: impl Future<Output = redis::RedisResult<T>>) -> Result<T, ClusterError> {
    Ok(tokio::time::timeout(TIMEOUT, future)
        .await
        .map_err(|_| ClusterError::Timeout(TIMEOUT))??)
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl Cluster {
    /// Redis at `url`, connected when first needed. `None` when the URL cannot be used (the
    /// configuration checks it first).
    pub(super) fn new(url: &str) -> Option<Self> {
        Some(Self {
            client: redis::Client::open(url).ok()?,
            connection: Mutex::new(None),
            rest_until: SyncMutex::new(None),
            tally: redis::Script::new(TALLY),
        })
    }

    async fn connection(&self) -> Result<ConnectionManager, ClusterError> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        {
            let rest = self
                .rest_until
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if rest.is_some_and(|until| Instant::now() < until) {
                return Err(ClusterError::Resting);
            }
        }
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1);
        match timed(ConnectionManager::new_with_config(
            self.client.clone(),
            config,
        ))
        .await
        {
            Ok(connection) => {
                *held = Some(connection.clone());
                Ok(connection)
            }
            Err(err) => {
                *self
                    .rest_until
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Instant::now() + REST);
                Err(err)
            }
        }
    }

    /// Adds each traffic to its key's figures for the whole cluster; its tally, in order.
    pub(super) async fn tally(&self, traffic: &[Traffic]) -> Result<Vec<Tally>, ClusterError> {
        if traffic.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.tally.prepare_invoke();
        invocation
            .arg(BASELINE_WEIGHT)
            .arg(millis(KEPT))
            .arg(MAX_NETWORKS)
            .arg(MAX_COUNTRIES)
            .arg(MAX_QUIET_MINUTES);
        for one in traffic {
            let base = format!("{PREFIX}:key:{}", one.key_id);
            invocation
                .key(&base)
                .key(format!("{base}:networks"))
                .key(format!("{base}:countries"));
            let f = &one.figures;
            invocation
                .arg(one.first_at)
                .arg(one.minute)
                .arg(f.requests)
                .arg(f.tokens)
                .arg(f.spend)
                .arg(f.denied)
                .arg(f.foreign)
                .arg(one.networks.len());
            for net in &one.networks {
                invocation.arg(net.to_string());
            }
            invocation.arg(one.countries.len());
            for code in &one.countries {
                invocation.arg(&code[..]);
            }
        }
        let mut connection = self.connection().await?;
        let reply: redis::Value = timed(invocation.invoke_async(&mut connection)).await?;
        let tallies = parse_tallies(reply)?;
        if tallies.len() != traffic.len() {
            return Err(ClusterError::Shape("one tally per traffic"));
        }
        Ok(tallies)
    }

    /// Claims `claim` for `quiet`: true for the first node to claim it in that time.
    pub(super) async fn claim(
        &self,
        claim: &Claim<'_>,
        quiet: Duration,
    ) -> Result<bool, ClusterError> {
        let key = match claim {
            Claim::Finding { detector, key } => format!("{PREFIX}:spoke:{detector}:{key}"),
            Claim::Block { source } => format!("{PREFIX}:spoke:source_blocked:{source}"),
            Claim::Burst { hint } => format!("{PREFIX}:spoke:auth_failure_burst:{hint}"),
        };
        let mut connection = self.connection().await?;
        let set: Option<String> = timed(
            redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("PX")
                .arg(millis(quiet).max(1))
                .query_async(&mut connection),
        )
        .await?;
        Ok(set.is_some())
    }

    /// Adds failed authentications to the cluster's counts of their minute: `(what, subject,
    /// minute, failures)`, `what` being `source` or `hint`. Answers each count after it.
    pub(super) async fn count_failures(
        &self,
        counts: &[(&str, String, i64, u32)],
    ) -> Result<Vec<u64>, ClusterError> {
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for (what, subject, minute, failures) in counts {
            let key = format!("{PREFIX}:failures:{what}:{subject}:{minute}");
            pipe.cmd("INCRBY").arg(&key).arg(*failures);
            pipe.cmd("PEXPIRE")
                .arg(&key)
                .arg(millis(COUNT_KEPT))
                .ignore();
        }
        let mut connection = self.connection().await?;
        timed(pipe.query_async(&mut connection)).await
    }

    /// Tells every node that `source` is refused until `until_ms`.
    pub(super) async fn publish_block(
        &self,
        source: IpAddr,
        until_ms: i64,
    ) -> Result<(), ClusterError> {
        let mut connection = self.connection().await?;
        timed(
            redis::cmd("ZADD")
                .arg(format!("{PREFIX}:blocks"))
                .arg("GT")
                .arg(until_ms)
                .arg(source.to_string())
                .query_async::<()>(&mut connection),
        )
        .await
    }

    /// The sources refused after `now_ms`, and until when; forgets the blocks that ended.
    pub(super) async fn blocks(&self, now_ms: i64) -> Result<Vec<(IpAddr, i64)>, ClusterError> {
        let key = format!("{PREFIX}:blocks");
        let mut connection = self.connection().await?;
        let (live,): (Vec<(String, f64)>,) = timed(
            redis::pipe()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&key)
                .arg("-inf")
                .arg(now_ms)
                .ignore()
                .cmd("ZRANGE")
                .arg(&key)
                .arg(now_ms)
                .arg("+inf")
                .arg("BYSCORE")
                .arg("LIMIT")
                .arg(0)
                .arg(4096)
                .arg("WITHSCORES")
                .query_async(&mut connection),
        )
        .await?;
        Ok(live
            .into_iter()
            .filter_map(|(source, until)| Some((source.parse().ok()?, until as i64)))
            .collect())
    }
}

fn parse_tallies(reply: redis::Value) -> Result<Vec<Tally>, ClusterError> {
    let redis::Value::Array(items) = reply else {
        return Err(ClusterError::Shape("an array of tallies"));
    };
    items.into_iter().map(parse_tally).collect()
}

fn strings(value: redis::Value) -> Result<Vec<String>, ClusterError> {
    redis::from_redis_value(value).map_err(|_| ClusterError::Shape("a list of strings"))
}

fn parse_tally(value: redis::Value) -> Result<Tally, ClusterError> {
    let redis::Value::Array(parts) = value else {
        return Err(ClusterError::Shape("a tally"));
    };
    let [figures, new_nets, known_countries, new_countries]: [redis::Value; 4] =
        parts
            .try_into()
            .map_err(|_| ClusterError::Shape("a tally of four parts"))?;
    let numbers: Vec<f64> = strings(figures)?
        .iter()
        .map(|n| n.parse::<f64>())
        .collect::<Result<_, _>>()
        .map_err(|_| ClusterError::Shape("numbers"))?;
    let [first, r, t, s, d, f, br, bt, bs, known]: [f64; 10] = numbers
        .try_into()
        .map_err(|_| ClusterError::Shape("ten figures"))?;
    let count = |x: f64| x.max(0.0) as u64;
    let codes = |list: Vec<String>| -> Vec<[u8; 2]> {
        let mut codes: Vec<[u8; 2]> = list
            .iter()
            .filter_map(|c| keygate_watch::detect::country_code(c))
            .collect();
        codes.sort_unstable();
        codes
    };
    Ok(Tally {
        first_seen: first as i64,
        current: Figures {
            requests: count(r),
            tokens: count(t),
            spend: s as i64,
            denied: count(d),
            foreign: count(f),
        },
        baseline: [br, bt, bs],
        known_networks: count(known) as usize,
        new_networks: strings(new_nets)?
            .iter()
            .filter_map(|n| n.parse().ok())
            .collect(),
        known_countries: codes(strings(known_countries)?),
        // In the order the traffic brought them.
        new_countries: strings(new_countries)?
            .iter()
            .filter_map(|c| keygate_watch::detect::country_code(c))
            .collect(),
    })
}

#[cfg(test)]
mod tests;
