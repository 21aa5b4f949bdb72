//! The limiter on one node: rates, caps in flight, token and budget reservations, quotas.
use keygate_core::{
    Budget, KeyEnv, KeyHint, KeyLimits, KeyRecord, KeySpec, ManualClock, OrgId, Per, ProjectId,
    Quota, RequestRate, Timestamp,
};

use super::*;

/// 2026-02-14T10:00:00Z
const NOW: i64 = 1_771_063_200_000;

fn clock() -> Arc<dyn Clock> {
    Arc::new(ManualClock::starting_at(Timestamp::from_millis(NOW)))
}

fn key_in(project: &ProjectId, limits: KeyLimits, project_limits: KeyLimits) -> CachedKey {
    let mut spec = KeySpec::api(OrgId::generate(), project.clone(), "k".into(), KeyEnv::Live);
    spec.limits = limits;
    let record = KeyRecord::issue(
        spec,
        KeyHint::from_stored("kg_live_abcd…wxyz".into()),
        Timestamp::from_millis(0),
    );
    CachedKey::new(record, Vec::new()).with_project_limits(project_limits)
}

pub(super) fn key(limits: KeyLimits) -> CachedKey {
    key_in(&ProjectId::generate(), limits, KeyLimits::default())
}

fn rate(limit: u64, per: Per) -> RequestRate {
    RequestRate { limit, per }
}

const HOLD: Demand = Demand {
    hold: true,
    tokens: None,
    cost: None,
};

#[tokio::test]
async fn rates_then_concurrency() {
    let (clock, limiter) = (clock(), Arc::new(Limiter::new()));
    let limited = key(KeyLimits {
        requests: vec![rate(2, Per::Minute), rate(100, Per::Day)],
        concurrency: Some(1),
        ..KeyLimits::default()
    });
    let first = limiter.admit(&limited, &clock, HOLD).await.unwrap();
    assert_eq!(
        first.requests().unwrap().remaining,
        1,
        "the minute's rate is the tightest"
    );
    assert_eq!(
        limiter.admit(&limited, &clock, HOLD).await.unwrap_err(),
        Refusal::Concurrency {
            owner: Owner::Key,
            limit: 1
        }
    );
    drop(first);
    drop(limiter.admit(&limited, &clock, HOLD).await.unwrap());
    let refused = limiter.admit(&limited, &clock, HOLD).await.unwrap_err();
    assert_eq!(refused.code(), "rate_limited");
    assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
    let free = key(KeyLimits::default());
    assert!(
        limiter
            .admit(&free, &clock, HOLD)
            .await
            .unwrap()
            .limits
            .is_empty()
    );
}

#[tokio::test]
async fn a_project_counts_all_its_keys_together() {
    let (clock, limiter) = (clock(), Arc::new(Limiter::new()));
    let project = ProjectId::generate();
    let shared = KeyLimits {
        requests: vec![rate(3, Per::Hour)],
        concurrency: Some(2),
        ..KeyLimits::default()
    };
    let a = key_in(&project, KeyLimits::default(), shared.clone());
    let b = key_in(&project, KeyLimits::default(), shared.clone());
    let held_a = limiter.admit(&a, &clock, HOLD).await.unwrap();
    let held_b = limiter.admit(&b, &clock, HOLD).await.unwrap();
    let busy = limiter.admit(&a, &clock, HOLD).await.unwrap_err();
    assert_eq!(
        busy,
        Refusal::Concurrency {
            owner: Owner::Project,
            limit: 2
        }
    );
    drop((held_a, held_b));
    assert!(limiter.admit(&b, &clock, Demand::default()).await.is_ok());
    let Refusal::Limit { limit, .. } = limiter.admit(&a, &clock, HOLD).await.unwrap_err() else {
        panic!("a rate refuses")
    };
    assert_eq!(
        (limit.owner, limit.counted),
        (Owner::Project, Counted::Requests(Per::Hour))
    );
    let elsewhere = key(KeyLimits::default());
    assert!(limiter.admit(&elsewhere, &clock, HOLD).await.is_ok());
}

#[tokio::test]
async fn tokens_are_reserved_then_settled() {
    let (clock, limiter) = (clock(), Arc::new(Limiter::new()));
    let limited = key(KeyLimits {
        tokens: vec![rate(1_000, Per::Minute)],
        ..KeyLimits::default()
    });
    let ask = |tokens| Demand {
        hold: false,
        tokens: Some(tokens),
        cost: None,
    };
    let first = limiter.admit(&limited, &clock, ask(800)).await.unwrap();
    assert_eq!(first.tokens().unwrap().remaining, 200);
    let refused = limiter.admit(&limited, &clock, ask(800)).await.unwrap_err();
    assert_eq!(refused.code(), "rate_limited");
    assert!(
        refused.message().contains("1000 tokens per minute"),
        "{}",
        refused.message()
    );
    // 800 reserved, 150 used: the rest comes back at once.
    first.reservation.unwrap().settle(Some(150), Some(0));
    let second = limiter.admit(&limited, &clock, ask(800)).await.unwrap();
    assert_eq!(second.tokens().unwrap().remaining, 50);
    // Released (the upstream refused it): nothing was used.
    second.reservation.unwrap().release();
    let third = limiter.admit(&limited, &clock, ask(800)).await.unwrap();
    // Dropped unsettled (the client went away mid-call): what was reserved is charged.
    drop(third);
    let charged = limiter.admit(&limited, &clock, ask(100)).await.unwrap_err();
    assert_eq!(charged.code(), "rate_limited");
    assert!(
        limiter
            .admit(&limited, &clock, Demand::default())
            .await
            .is_ok(),
        "a request without tokens (a verification) is not held to token rates"
    );
}

#[tokio::test]
async fn budgets_refuse_what_could_go_over_and_grow_for_streams() {
    let (clock, limiter) = (clock(), Arc::new(Limiter::new()));
    let limited = key(KeyLimits {
        budgets: vec![Budget::parse("1/day").unwrap()],
        ..KeyLimits::default()
    });
    let ask = |cost| Demand {
        hold: false,
        tokens: None,
        cost: Some(cost),
    };
    let first = limiter.admit(&limited, &clock, ask(600_000)).await.unwrap();
    let refused = limiter
        .admit(&limited, &clock, ask(600_000))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), "budget_exceeded");
    let Refusal::Limit { retry_after, .. } = &refused else {
        panic!()
    };
    assert_eq!(
        *retry_after,
        Some(Duration::from_secs(14 * 3_600)),
        "at midnight UTC"
    );
    let reservation = first.reservation.unwrap();
    let handle = reservation.share();
    handle.ask(300_000);
    assert_eq!(handle.answer(), Ask::Granted { left: 100_000 });
    assert_eq!(handle.answer(), Ask::Idle, "an answer is read once");
    assert_eq!(reservation.cost(), 900_000);
    handle.ask(300_000);
    assert_eq!(
        handle.answer(),
        Ask::Refused { left: 100_000 },
        "only 100 000 left"
    );
    reservation.settle(Some(0), Some(950_000));
    let too_much = limiter
        .admit(&limited, &clock, ask(60_000))
        .await
        .unwrap_err();
    assert_eq!(too_much.code(), "budget_exceeded");
    assert!(limiter.admit(&limited, &clock, ask(50_000)).await.is_ok());
    let whole = limiter
        .admit(&limited, &clock, ask(2_000_000))
        .await
        .unwrap_err();
    assert_eq!(
        whole.retry_after(),
        None,
        "more than the whole budget never passes"
    );
    assert!(
        limiter
            .admit(&limited, &clock, Demand::default())
            .await
            .is_ok(),
        "a request that costs nothing is not held to budgets"
    );
}

#[tokio::test]
async fn quotas_run_out_and_a_refusal_consumes_nothing() {
    let (clock, limiter) = (clock(), Arc::new(Limiter::new()));
    let project = ProjectId::generate();
    let limited = key_in(
        &project,
        KeyLimits {
            quota: Some(Quota::parse("3/day").unwrap()),
            ..KeyLimits::default()
        },
        KeyLimits {
            requests: vec![rate(1, Per::Minute)],
            ..KeyLimits::default()
        },
    );
    assert!(limiter.admit(&limited, &clock, HOLD).await.is_ok());
    for _ in 0..3 {
        let refused = limiter.admit(&limited, &clock, HOLD).await.unwrap_err();
        assert_eq!(refused.code(), "rate_limited", "the project's rate");
    }
    let states = limiter.peek(&limited, clock.as_ref()).await;
    let quota = states
        .iter()
        .find(|l| matches!(l.counted, Counted::Quota(_)))
        .unwrap();
    assert_eq!(quota.state.remaining, 2, "refused requests used no quota");
    let mut at = NOW;
    for _ in 0..2 {
        at += 61_000;
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(Timestamp::from_millis(at)));
        assert!(limiter.admit(&limited, &clock, HOLD).await.is_ok());
    }
    let clock: Arc<dyn Clock> = Arc::new(ManualClock::starting_at(Timestamp::from_millis(
        at + 61_000,
    )));
    let spent = limiter.admit(&limited, &clock, HOLD).await.unwrap_err();
    assert_eq!(spent.code(), "quota_exhausted");
    assert!(
        spent.message().contains("quota of 3 uses per day"),
        "{}",
        spent.message()
    );
}

#[tokio::test]
async fn without_redis_shared_limits_are_not_read_for_decisions() {
    let clock = clock();
    // Nothing listens on port 1: Redis is unreachable.
    let limiter = Arc::new(Limiter::shared(
        "redis://127.0.0.1:1",
        OnRedisFailure::Local,
    ));
    let limited = key(KeyLimits {
        budgets: vec![Budget::parse("1/day").unwrap()],
        ..KeyLimits::default()
    });
    assert_eq!(
        limiter.peek(&limited, clock.as_ref()).await.len(),
        1,
        "the verify API shows this node's counts"
    );
    assert!(
        limiter
            .peek_shared(&limited, clock.as_ref())
            .await
            .is_none(),
        "no decision on them"
    );
    let local = Arc::new(Limiter::new());
    assert_eq!(
        local
            .peek_shared(&limited, clock.as_ref())
            .await
            .unwrap()
            .len(),
        1,
        "a node's own limits are its counts"
    );
}
