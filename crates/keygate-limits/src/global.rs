//! Limits exact across nodes: the same rules in Lua scripts that Redis runs atomically for all
//! the limits of a request (rates on Redis's own clock), so any number of nodes share one
//! count. Rates, quotas, budgets and requests in flight are all shared.

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::gcra::Rate;
use crate::{Check, Decision, Kind, Limit, Refusal, Settlement, State};

/// Why the shared limiter could not answer.
#[derive(Debug, thiserror::Error)]
pub enum GlobalError {
    #[error("Redis is unreachable or failed")]
    Unavailable,
    #[error("Redis did not answer within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("a rate of zero cannot be checked")]
    Unsupported,
    #[error("the Redis URL is not valid")]
    Url,
}

/// A request's place among a key's requests in flight, across nodes: `holder` (unique to the
/// request) holds one of `max` slots at `key` until it is released, or its lease runs out
/// (the bound on a slot a crashed node never gave back).
#[derive(Debug, Clone, Copy)]
pub struct Slot<'a> {
    pub key: &'a str,
    pub max: u64,
    pub holder: &'a str,
}

/// Checks every limit of a request at once. KEYS are the limits' keys; ARGV, four values per
/// key: a kind and three numbers.
/// - kind 0, a rate: interval µs, burst, cost (the GCRA on Redis's clock);
/// - kind 1, a count over a window (a quota or a budget, the key naming the window): limit,
///   the window's end in µs, cost;
/// - kind 2, a slot among requests in flight (a sorted set of holders by lease end): most
///   slots, lease µs, the holder.
///
/// Returns `{refused index or -1, retry µs or -1, remaining, reset µs, …}` and writes only
/// when every limit admits. Numbers stay below 2^53, where Lua's doubles are exact.
const CHECK: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local out = {-1, -1}
local writes = {}
local function refuse(i, retry)
  if out[1] < 0 then
    out[1] = i - 1
    out[2] = retry
  end
end
for i, key in ipairs(KEYS) do
  local kind = tonumber(ARGV[i * 4 - 3])
  local a = tonumber(ARGV[i * 4 - 2])
  local b = tonumber(ARGV[i * 4 - 1])
  if kind == 0 then
    local cost = tonumber(ARGV[i * 4])
    local tat = tonumber(redis.call('GET', key) or '0')
    local new_tat = math.max(tat, now) + cost * a
    local allow_at = new_tat - a * b
    if cost > b or allow_at > now then
      if cost <= b then refuse(i, allow_at - now) else refuse(i, -1) end
      local used = math.max(0, tat - now)
      out[#out + 1] = math.floor(math.max(0, a * b - used) / a)
      out[#out + 1] = used
    else
      writes[i] = {'SET', key, string.format('%.0f', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000}
      out[#out + 1] = math.floor((a * b - (new_tat - now)) / a)
      out[#out + 1] = new_tat - now
    end
  elseif kind == 1 then
    local cost = tonumber(ARGV[i * 4])
    local used = tonumber(redis.call('GET', key) or '0')
    local reset = math.max(0, b - now)
    if used + cost > a then
      if cost <= a then refuse(i, reset) else refuse(i, -1) end
      out[#out + 1] = math.max(0, a - used)
    else
      writes[i] = {'SET', key, string.format('%.0f', used + cost), 'PX', math.floor(reset / 1000) + 60000}
      out[#out + 1] = a - used - cost
    end
    out[#out + 1] = reset
  else
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
    local running = redis.call('ZCARD', key)
    if running >= a then
      refuse(i, 1000000)
      out[#out + 1] = 0
    else
      writes[i] = {'ZADD', key, string.format('%.0f', now + b), ARGV[i * 4]}
      out[#out + 1] = a - running - 1
    end
    out[#out + 1] = 0
  end
end
if out[1] < 0 then
  for i, key in ipairs(KEYS) do
    local write = writes[i]
    redis.call(unpack(write))
    if write[1] == 'ZADD' then
      redis.call('PEXPIRE', key, math.floor(tonumber(ARGV[i * 4 - 1]) / 1000) + 1000)
    end
  end
end
return out
";

/// Settles reservations: KEYS are the limits' keys; ARGV, four numbers per key: kind (0, a
/// rate; 1, a count), the rate's interval µs (0 for a count), reserved, actual. Returned
/// units never move a rate before now; a count never goes below zero, and one whose window
/// has ended is left alone.
const SETTLE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
for i, key in ipairs(KEYS) do
  local kind = tonumber(ARGV[i * 4 - 3])
  local interval = tonumber(ARGV[i * 4 - 2])
  local delta = tonumber(ARGV[i * 4]) - tonumber(ARGV[i * 4 - 1])
  local stored = redis.call('GET', key)
  if kind == 0 then
    local tat = math.max(tonumber(stored or '0'), now)
    if delta < 0 then
      tat = math.max(now, tat + delta * interval)
    else
      tat = tat + delta * interval
    end
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor((tat - now) / 1000) + 1000)
  elseif stored then
    local used = math.max(0, tonumber(stored) + delta)
    redis.call('SET', key, string.format('%.0f', used), 'KEEPTTL')
  end
end
return 0
";

/// How long a slot is held at most when its request never says it ended.
pub const SLOT_LEASE: Duration = Duration::from_secs(15 * 60);

/// Where a limit's state lives in Redis: counts over windows name their window.
fn redis_key(check: &Check, at: u64) -> String {
    match check.limit {
        Limit::Rate { .. } => check.key.clone(),
        Limit::Quota { window, .. } | Limit::Budget { window, .. } => {
            format!("{}:{}", check.key, window.bounds(at).0 / 1_000_000)
        }
    }
}

/// The shared limiter.
#[derive(Clone)]
pub struct GlobalLimiter {
    connection: ConnectionManager,
    check: redis::Script,
    settle: redis::Script,
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
    /// The connection, for others on the same Redis (it is a cheap handle to one
    /// multiplexed connection).
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

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
            check: redis::Script::new(CHECK),
            settle: redis::Script::new(SETTLE),
            timeout,
        })
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, GlobalError> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| GlobalError::Timeout(self.timeout))?
            .map_err(|_| GlobalError::Unavailable)
    }

    /// Checks a request against every limit in `checks` and takes a slot of each of `slots`,
    /// across all nodes, at `now` (this node's clock, which names quota and budget windows;
    /// rates run on Redis's clock). Admitted, it consumes all of them; refused, none.
    /// `Decision::states` lists the checks, then the slots.
    pub async fn check(
        &self,
        now: u64,
        checks: &[Check],
        slots: &[Slot<'_>],
    ) -> Result<Decision, GlobalError> {
        let mut invocation = self.check.prepare_invoke();
        let mut kinds = Vec::with_capacity(checks.len() + slots.len());
        for check in checks {
            invocation.key(redis_key(check, now));
            match check.limit {
                Limit::Rate { limit, period } => {
                    let rate = Rate::new(limit, period).ok_or(GlobalError::Unsupported)?;
                    invocation.arg(0).arg(rate.interval).arg(rate.burst);
                }
                Limit::Quota {
                    amount: limit,
                    window,
                }
                | Limit::Budget { limit, window } => {
                    invocation.arg(1).arg(limit).arg(window.bounds(now).1);
                }
            }
            invocation.arg(check.cost);
            kinds.push((check.limit.kind(), check.limit.maximum()));
        }
        for slot in slots {
            invocation.key(slot.key);
            invocation
                .arg(2)
                .arg(slot.max)
                .arg(u64::try_from(SLOT_LEASE.as_micros()).unwrap_or(u64::MAX))
                .arg(slot.holder);
            kinds.push((Kind::Concurrency, slot.max));
        }
        let reply: Vec<i64> = self.run(&invocation).await?;
        let number = |i: usize| reply.get(i).map_or(0, |n| u64::try_from(*n).unwrap_or(0));
        let states = kinds
            .iter()
            .enumerate()
            .map(|(i, (kind, limit))| State {
                kind: *kind,
                limit: *limit,
                remaining: number(2 + 2 * i),
                reset_after: Duration::from_micros(number(3 + 2 * i)),
            })
            .collect();
        let refused = match reply.first().copied() {
            Some(index) if index >= 0 => {
                let index = usize::try_from(index).unwrap_or(0);
                Some(Refusal {
                    index,
                    kind: kinds.get(index).map_or(Kind::Rate, |k| k.0),
                    retry_after: reply
                        .get(1)
                        .copied()
                        .filter(|n| *n >= 0)
                        .map(|n| Duration::from_micros(u64::try_from(n).unwrap_or(0))),
                })
            }
            _ => None,
        };
        Ok(Decision { states, refused })
    }

    /// The states of `checks` as they stand, consuming nothing.
    pub async fn peek(&self, now: u64, checks: &[Check]) -> Result<Vec<State>, GlobalError> {
        let free: Vec<Check> = checks
            .iter()
            .map(|check| Check {
                cost: 0,
                ..check.clone()
            })
            .collect();
        Ok(self.check(now, &free, &[]).await?.states)
    }

    /// Settles admitted reservations with what was really used (tokens, money).
    pub async fn settle(&self, settlements: &[Settlement]) -> Result<(), GlobalError> {
        if settlements.is_empty() {
            return Ok(());
        }
        let mut invocation = self.settle.prepare_invoke();
        for settlement in settlements {
            let check = &settlement.check;
            invocation.key(redis_key(check, settlement.at));
            match check.limit {
                Limit::Rate { limit, period } => {
                    let rate = Rate::new(limit, period).ok_or(GlobalError::Unsupported)?;
                    invocation.arg(0).arg(rate.interval);
                }
                Limit::Quota { .. } | Limit::Budget { .. } => {
                    invocation.arg(1).arg(0);
                }
            }
            invocation.arg(check.cost).arg(settlement.actual);
        }
        let _: i64 = self.run(&invocation).await?;
        Ok(())
    }

    /// Gives back slots taken by [`Self::check`].
    pub async fn release(&self, slots: &[Slot<'_>]) -> Result<(), GlobalError> {
        let mut pipe = redis::pipe();
        for slot in slots {
            pipe.zrem(slot.key, slot.holder).ignore();
        }
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, pipe.query_async::<()>(&mut connection))
            .await
            .map_err(|_| GlobalError::Timeout(self.timeout))?
            .map_err(|_| GlobalError::Unavailable)
    }
}
