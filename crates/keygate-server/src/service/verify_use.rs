//! The verify API's operation: a verification that counts as a use of the key. It checks the
//! key as [`Keygate::verify`] does, refuses a publishable key unless the caller expects one,
//! and admits the use under the request rates and quotas of the key and its project; token
//! rates and budgets are shown as they stand.

use std::sync::Arc;

use keygate_core::KeyRejection;
use keygate_limits::State;

use super::{Keygate, VerifyOutcome, VerifyQuery};
use crate::ServiceError;
use crate::cache::CachedKey;
use crate::gateway::PUBLISHABLE_FORBIDDEN;
use crate::limits::{Counted, Demand, LimitState, Limiter, Refusal};

/// The verdict of a counted verification.
#[derive(Debug, Clone)]
pub enum Verdict {
    /// Valid, and counted: the tightest request rate and every limit's state.
    Valid {
        key: Arc<CachedKey>,
        requests: Option<State>,
        limits: Vec<LimitState>,
    },
    /// A valid key refused for this use (a publishable key, a spent limit) with a stable
    /// code, and the limit that refused it.
    Refused {
        key: Arc<CachedKey>,
        code: &'static str,
        limit: Option<LimitState>,
    },
    /// The key itself is refused; the key, when known, only to name it.
    Invalid(KeyRejection, Option<Arc<CachedKey>>),
}

/// Whether the caller expects publishable keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publishable {
    Refused,
    Allowed,
}

impl Keygate {
    /// Verifies `query`'s key and counts the use against `limiter`.
    pub async fn verify_use(
        &self,
        limiter: &Arc<Limiter>,
        query: VerifyQuery<'_>,
        publishable: Publishable,
    ) -> Result<Verdict, ServiceError> {
        let verdict = self.judge(limiter, query, publishable).await?;
        self.metrics().keys.verified(match &verdict {
            Verdict::Valid { .. } => "valid",
            Verdict::Refused { code, .. } => code,
            Verdict::Invalid(rejection, _) => rejection.code(),
        });
        Ok(verdict)
    }

    async fn judge(
        &self,
        limiter: &Arc<Limiter>,
        query: VerifyQuery<'_>,
        publishable: Publishable,
    ) -> Result<Verdict, ServiceError> {
        let key = match self.check(query).await? {
            VerifyOutcome::Valid(key) => key,
            VerifyOutcome::Invalid(rejection, key) => return Ok(Verdict::Invalid(rejection, key)),
        };
        // A publishable key is public: valid only for a caller that says it expects one.
        if key.record.is_publishable() && publishable == Publishable::Refused {
            return Ok(Verdict::Refused {
                key,
                code: PUBLISHABLE_FORBIDDEN,
                limit: None,
            });
        }
        let clock = self.clock();
        let admission = match limiter.admit(&key, clock, Demand::default()).await {
            Ok(admission) => admission,
            Err(refusal) => {
                let limit = match &refusal {
                    Refusal::Limit { limit, .. } => Some(*limit),
                    _ => None,
                };
                return Ok(Verdict::Refused {
                    key,
                    code: refusal.code(),
                    limit,
                });
            }
        };
        let mut limits = admission.limits.clone();
        let metered = [&key.record.limits, &key.project_limits]
            .iter()
            .any(|l| !l.tokens.is_empty() || !l.budgets.is_empty() || l.credits.is_some());
        if metered {
            let peeked = limiter.peek(&key, clock.as_ref()).await;
            limits.extend(peeked.into_iter().filter(|l| {
                matches!(
                    l.counted,
                    Counted::Tokens(_)
                        | Counted::Budget(_)
                        | Counted::Throttle(..)
                        | Counted::Credits
                )
            }));
        }
        Ok(Verdict::Valid {
            key,
            requests: admission.requests(),
            limits,
        })
    }
}
