//! Limits exact across nodes: the same GCRA in a Lua script that Redis runs atomically for all
//! the rates of a request, on Redis's own clock, so any number of nodes share one count.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::gcra::Rate;
use crate::{Check, Decision, Kind, Limit, Refusal, State};

/// Why the shared limiter could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GlobalError {
    #[error("Redis is unreachable or failed")]
    Unavailable,
    #[error("Redis did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("only request and token rates are shared through Redis")]
    Unsupported,
    #[error("the Redis URL is not valid")]
    Url,
}

/// Checks every rate of a request: KEYS are the rates' keys; ARGV, three numbers per key
/// (interval µs, burst, cost). Returns `{refused index or -1, retry µs or -1, remaining,
/// reset µs, …}`. Writes only when every rate admits, each key expiring when its bucket is
/// whole again. Numbers are kept below 2^53, where Lua's doubles are exact.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {-1, -1}
local new = {}
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[i * 3 - 2])
  local burst = tonumber(ARGV[i * 3 - 1])
  local cost = tonumber(ARGV[i * 3])
  local tat = tonumber(redis.call('GET', key) or '0')
  local new_tat = math.max(tat, now) + cost * interval
  local allow_at = new_tat - interval * burst
  if cost > burst or allow_at > now then
    if out[1] < 0 then
      out[1] = i - 1
      if cost <= burst then out[2] = allow_at - now end
    end
    local used = math.max(0, tat - now)
    out[#out + 1] = math.floor(math.max(0, interval * burst - used) / interval)
    out[#out + 1] = used
  else
    new[i] = new_tat
    out[#out + 1] = math.floor((interval * burst - (new_tat - now)) / interval)
    out[#out + 1] = new_tat - now
  end
end
if out[1] < 0 then
  for i, key in ipairs(KEYS) do
    local ttl = math.floor((new[i] - now) / 1000) + 1000
    redis.call('SET', key, string.format('%.0f', new[i]), 'PX', ttl)
  end
end
return out
";

/// The shared limiter.
#[derive(Clone)]
pub struct GlobalLimiter {
    connection: ConnectionManager,
    script: redis::Script,
    timeout: Duration,
}

impl std::fmt::Debug for GlobalLimiter {
    /// Leaves the connection (and any password in its URL) out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GlobalLimiter")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl GlobalLimiter {
    /// Connects to Redis at `url`; the connection reconnects by itself after a failure. Each
    /// check waits at most `timeout`.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Self, GlobalError> {
        let client = redis::Client::open(url).map_err(|_| GlobalError::Url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection = tokio::time::timeout(
            timeout.max(Duration::from_secs(1)),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| GlobalError::Timeout(timeout))?
        .map_err(|_| GlobalError::Unavailable)?;
        Ok(Self {
            connection,
            script: redis::Script::new(SCRIPT),
            timeout,
        })
    }

    /// Checks a request against every rate in `checks`, across all nodes: admitted, it
    /// consumes all of them; refused, none.
    pub async fn check(&self, checks: &[Check]) -> Result<Decision, GlobalError> {
        let mut invocation = self.script.prepare_invoke();
        let mut rates = Vec::with_capacity(checks.len());
        for check in checks {
            let Limit::Rate { limit, period } = check.limit else {
                return Err(GlobalError::Unsupported);
            };
            let rate = Rate::new(limit, period).ok_or(GlobalError::Unsupported)?;
            invocation.key(&check.key);
            invocation
                .arg(rate.interval)
                .arg(rate.burst)
                .arg(check.cost);
            rates.push(limit);
        }
        let mut connection = self.connection.clone();
        let reply: Vec<i64> =
            tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
                .await
                .map_err(|_| GlobalError::Timeout(self.timeout))?
                .map_err(|_| GlobalError::Unavailable)?;
        let micros = |n: i64| Duration::from_micros(u64::try_from(n).unwrap_or(0));
        let states = rates
            .iter()
            .enumerate()
            .map(|(i, limit)| State {
                kind: Kind::Rate,
                limit: *limit,
                remaining: reply
                    .get(2 + 2 * i)
                    .map_or(0, |n| u64::try_from(*n).unwrap_or(0)),
                reset_after: micros(reply.get(3 + 2 * i).copied().unwrap_or(0)),
            })
            .collect();
        let refused = match reply.first().copied() {
            Some(index) if index >= 0 => Some(Refusal {
                index: usize::try_from(index).unwrap_or(0),
                kind: Kind::Rate,
                retry_after: reply.get(1).copied().filter(|n| *n >= 0).map(micros),
            }),
            _ => None,
        };
        Ok(Decision { states, refused })
    }
}
