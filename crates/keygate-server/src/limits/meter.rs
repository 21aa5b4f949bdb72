//! A stream's budget meter. A stream that names no most output starts on a small
//! reservation, and the meter asks the budgets for a first step before any output arrives;
//! as the output nears what is reserved it asks for more — never more than the last answer
//! said was left — and ends the stream only when less than the smallest step is left and
//! the output has passed what is reserved. The same steps run whoever answers: this node at
//! once, or Redis a little later (meanwhile the stream goes on, so through Redis a stream
//! may pass its budget by the output of one round trip more than on one node).

use super::reservation::{Ask, Reservation, ReservationHandle};

/// The most asks made for one piece of output (each answered one moves what is reserved).
const ASKS_PER_PIECE: usize = 8;

/// The meter of one stream.
#[derive(Debug)]
pub struct BudgetMeter {
    reservation: ReservationHandle,
    /// What the next ask is for (micro-dollars).
    step: u64,
    /// The smallest step: when less than this is left, nothing more is asked.
    least: u64,
    /// The budgets could not give even the smallest step.
    spent: bool,
}

impl BudgetMeter {
    /// A meter on `reservation` asking `step` micro-dollars at a time (or what is left, when
    /// less), as long as at least `least` is left. The first step is asked at once.
    pub fn new(reservation: &Reservation, step: u64, least: u64) -> Self {
        let least = least.max(1);
        let meter = Self {
            reservation: reservation.share(),
            step: step.max(least),
            least,
            spent: false,
        };
        meter.reservation.ask(meter.step);
        meter
    }

    /// Whether a stream whose output so far costs `cost` (prompt included) may go on.
    /// While an ask waits for Redis the stream goes on: it is ended only once the budgets
    /// refused the smallest step and `cost` passed what they gave.
    pub fn allow(&mut self, cost: u64) -> bool {
        for _ in 0..ASKS_PER_PIECE {
            match self.reservation.answer() {
                Ask::Waiting => break,
                Ask::Granted { left } | Ask::Refused { left } => self.answered(left),
                Ask::Idle => {}
            }
            if self.spent || !self.nearing(cost) {
                break;
            }
            self.reservation.ask(self.step);
        }
        cost <= self.reservation.cost() || !self.spent
    }

    /// Whether `cost` has reached three quarters of what is reserved: time to ask for more.
    fn nearing(&self, cost: u64) -> bool {
        cost.saturating_mul(4) >= self.reservation.cost().saturating_mul(3)
    }

    /// The budgets answered, having `left`: ask no more than that next, and nothing once it
    /// is less than the smallest step.
    fn answered(&mut self, left: u64) {
        if left < self.least {
            self.spent = true;
        } else {
            self.step = left.min(self.step);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use keygate_core::{Budget, Clock, KeyLimits, SystemClock};
    use proptest::prelude::*;

    use super::*;
    use crate::limits::tests::key;
    use crate::limits::{Counted, Demand, Limiter, OnRedisFailure};

    fn redis_url() -> String {
        std::env::var("KEYGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
    }

    /// How a stream went: where it was cut (its cost so far), what it charged, and what the
    /// budget held before it.
    struct Run {
        cut_at: Option<u64>,
        charged: u64,
        remaining: u64,
        /// Left in the budget after the stream settled.
        left_after: u64,
    }

    /// One stream against a budget of `budget` micro-dollars, `spent_before` of it already
    /// gone: the prompt costs `prompt`, each output token `price`, and the output arrives in
    /// `pieces` of tokens.
    async fn stream(
        limiter: Arc<Limiter>,
        budget: u64,
        spent_before: u64,
        prompt: u64,
        price: u64,
        pieces: &[u64],
    ) -> Run {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let usd = format!("{}.{:06}", budget / 1_000_000, budget % 1_000_000);
        let limited = key(KeyLimits {
            budgets: vec![Budget::parse(&format!("{usd}/day")).unwrap()],
            ..KeyLimits::default()
        });
        let ask = |cost| Demand {
            hold: false,
            tokens: None,
            cost: Some(cost),
        };
        if spent_before > 0 {
            let earlier = limiter.admit(&limited, &clock, ask(spent_before)).await;
            earlier.unwrap().reservation.unwrap().settle(None, None);
        }
        let remaining = budget - spent_before;
        // The gateway's admission of a stream without a most output: its prompt and a token.
        let Ok(admitted) = limiter.admit(&limited, &clock, ask(prompt + price)).await else {
            return Run {
                cut_at: Some(prompt + price),
                charged: 0,
                remaining,
                left_after: remaining,
            };
        };
        let reservation = admitted.reservation.unwrap();
        let mut meter = BudgetMeter::new(&reservation, 1_024 * price, 16 * price);
        // Output comes a moment later than the request: an ask made of Redis is answered by
        // the time each piece arrives.
        let answered = async |meter: &BudgetMeter| {
            while meter.reservation.answer_pending() {
                tokio::time::sleep(Duration::from_micros(200)).await;
            }
        };
        answered(&meter).await;
        let (mut tokens, mut cut_at) = (0, None);
        for piece in pieces {
            tokens += piece;
            let cost = prompt + tokens * price;
            if !meter.allow(cost) {
                cut_at = Some(cost);
                break;
            }
            answered(&meter).await;
        }
        let charged = prompt + tokens * price;
        reservation.settle(None, Some(charged));
        limiter.drain(Duration::from_secs(5)).await;
        let states = limiter.peek(&limited, clock.as_ref()).await;
        let left_after = states
            .iter()
            .find(|l| matches!(l.counted, Counted::Budget(_)))
            .unwrap()
            .state
            .remaining;
        Run {
            cut_at,
            charged,
            remaining,
            left_after,
        }
    }

    fn check(run: &Run, price: u64, pieces: &[u64], total: u64) -> Result<(), TestCaseError> {
        let largest = pieces.iter().max().copied().unwrap_or(0) * price;
        let step = 16 * price;
        match run.cut_at {
            Some(cost) => prop_assert!(
                cost + step > run.remaining,
                "cut at {cost} with {} left: a step could still be paid for",
                run.remaining
            ),
            None => prop_assert_eq!(run.charged, total, "ran to its end"),
        }
        prop_assert!(
            run.charged <= run.remaining + largest.max(step),
            "charged {} of {} left",
            run.charged,
            run.remaining
        );
        prop_assert_eq!(
            run.left_after,
            run.remaining.saturating_sub(run.charged),
            "the settlement charged what was used"
        );
        Ok(())
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    prop_compose! {
        /// A budget, what was spent of it, a prompt, a price per token and the pieces of an
        /// answer.
        fn case()(
            budget in 1_000u64..2_000_000,
            spent_share in 0u64..100,
            prompt_tokens in 1u64..50,
            price in 1u64..2_000,
            pieces in proptest::collection::vec(1u64..16, 1..200),
        ) -> (u64, u64, u64, u64, Vec<u64>) {
            (budget, budget * spent_share / 100, prompt_tokens * price, price, pieces)
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// On this node: a stream is cut only when a step could not be paid for, and never
        /// charges more than a step past its budget.
        #[test]
        fn a_stream_is_cut_only_when_its_budget_ran_out(
            (budget, spent, prompt, price, pieces) in case()
        ) {
            let total = prompt + pieces.iter().sum::<u64>() * price;
            let run = runtime().block_on(stream(
                Arc::new(Limiter::new()), budget, spent, prompt, price, &pieces,
            ));
            check(&run, price, &pieces, total)?;
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// The same through Redis, whose answers arrive after the ask.
        #[test]
        fn a_stream_metered_in_redis_is_cut_only_when_its_budget_ran_out(
            (budget, spent, prompt, price, pieces) in case()
        ) {
            let total = prompt + pieces.iter().sum::<u64>() * price;
            let run = runtime().block_on(async {
                let limiter = Arc::new(Limiter::shared(&redis_url(), OnRedisFailure::Closed));
                assert!(limiter.connect().await, "Redis answers at {}", redis_url());
                stream(limiter, budget, spent, prompt, price, &pieces).await
            });
            check(&run, price, &pieces, total)?;
        }
    }

    /// The reported case: a stream of a few hundred tokens under a budget that a step of
    /// 1 024 tokens would pass, through Redis.
    #[tokio::test]
    async fn a_first_step_larger_than_the_budget_shrinks_instead_of_ending_the_stream() {
        let limiter = Arc::new(Limiter::shared(&redis_url(), OnRedisFailure::Closed));
        assert!(limiter.connect().await);
        // $1 at $1 000 a million tokens: a thousand tokens, of which ten go to the prompt.
        let run = stream(limiter, 1_000_000, 0, 10_000, 1_000, &[4; 50]).await;
        assert_eq!(run.cut_at, None);
        assert_eq!(run.charged, 210_000);
        assert_eq!(run.left_after, 790_000);
    }
}
