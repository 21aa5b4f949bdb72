//! The overview, usage and anomalies pages over figures put in the store as the gateway and
//! the detectors write them: charts drawn on the server as SVG (labels escaped), the tables
//! beside them, and an anomaly acknowledged and its key suspended from the page.

use keygate_core::{AnomalyId, KeyId, MicroUsd, Timestamp, TokenCounts, TokenSource, UsageRecord};
use keygate_store::Anomaly;
use keygate_testkit::{Db, TestServer};
use serde_json::json;

use super::{Browser, input};

fn record(
    key: &KeyId,
    org: &keygate_core::OrgId,
    model: &str,
    at: Timestamp,
    status: u16,
    cost: i64,
) -> UsageRecord {
    UsageRecord {
        id: uuid::Uuid::now_v7().to_string(),
        at,
        org_id: org.clone(),
        project_id: None,
        key_id: key.clone(),
        endpoint: "chat.completions".into(),
        model: model.into(),
        deployment: Some(format!("openai/{model}")),
        provider: Some("openai".into()),
        status,
        error_code: (status >= 400).then(|| "all_deployments_failed".into()),
        streamed: false,
        attempts: 1,
        latency_ms: 80,
        ttft_ms: Some(80),
        tokens: TokenCounts {
            prompt: 100,
            completion: 20,
            cached: 0,
        },
        token_source: TokenSource::Provider,
        cost: Some(MicroUsd(cost)),
        saved: None,
        client_ip: Some("203.0.113.9".into()),
        user_agent: None,
    }
}

async fn the_overview_usage_and_anomalies_pages_show_and_act(db: Db) {
    let server = TestServer::start(db).await.unwrap();
    let api = server.api();
    let key = api
        .create_key(
            &server.owner_token,
            json!({"project": "default", "name": "busy", "scopes": ["models:chat"]}),
        )
        .await;
    let key_id = KeyId::parse(&key.id).unwrap();
    let store = &server.store.store;
    let org = store.org_ids().await.unwrap().remove(0);
    let now = Timestamp::from_millis(server.keygate.clock().now().as_millis() - 60_000);
    let yesterday = Timestamp::from_millis(now.as_millis() - 86_400_000);
    store
        .insert_usage(&[
            record(&key_id, &org, "gpt-4o", now, 200, 1_500_000),
            record(&key_id, &org, "gpt-4o", yesterday, 200, 500_000),
            record(&key_id, &org, "<b>evil</b>", now, 503, 0),
        ])
        .await
        .unwrap();
    let anomaly = Anomaly {
        id: AnomalyId::generate(),
        org_id: org.clone(),
        project_id: None,
        key_id: Some(key_id.clone()),
        detector: "spend_spike".into(),
        evidence: json!({"this_minute": 2_000_000}).to_string(),
        action: "alert".into(),
        outcome: "recorded".into(),
        detected_at: now,
        acknowledged_at: None,
        acknowledged_by: None,
        note: None,
    };
    store.add_anomaly(&anomaly, &[]).await.unwrap();

    let mut browser = Browser::new(&server);
    browser.sign_in(&server.owner_token).await;
    let overview = browser.get("/ui").await;
    assert_eq!(overview.status, 200, "{}", overview.html);
    let html = &overview.html;
    assert!(
        html.contains("<svg") && html.contains("class=\"bar\""),
        "{html}"
    );
    assert!(
        html.contains("3 requests, 1 answered with an error"),
        "{html}"
    );
    assert!(
        html.contains(&format!("/ui/keys/{}", key.id)),
        "the top key links to it"
    );
    assert!(html.contains("gpt-4o") && html.contains("2.00"));
    assert!(html.contains("&#60;b&#62;evil&#60;/b&#62;") && !html.contains("<b>evil</b>"));
    assert!(html.contains("spend_spike"));

    let usage = browser
        .get("/ui/usage?group=model&measure=spend&days=7")
        .await;
    assert_eq!(usage.status, 200);
    assert!(
        usage.html.contains("Spend (USD) by model"),
        "{}",
        usage.html
    );
    assert!(
        usage.html.contains("$2.00"),
        "the chart's label: {}",
        usage.html
    );
    assert!(!usage.html.contains("<b>evil</b>"));
    let by_day = browser
        .get("/ui/usage?group=day&measure=requests&days=30")
        .await;
    assert!(by_day.html.contains("Requests by day"));
    // A range of days: the one before yesterday holds nothing; yesterday's holds a record.
    let day = |at: Timestamp| at.to_rfc3339()[..10].to_owned();
    let before = Timestamp::from_millis(yesterday.as_millis() - 86_400_000);
    let empty = browser
        .get(&format!("/ui/usage?group=day&from={0}&to={0}", day(before)))
        .await;
    assert!(
        empty.html.contains("No usage in this span"),
        "{}",
        empty.html
    );
    let one = browser
        .get(&format!(
            "/ui/usage?group=day&from={0}&to={0}",
            day(yesterday)
        ))
        .await;
    assert!(one.html.contains(&day(yesterday)) && !one.html.contains("No usage"));
    let backwards = browser
        .get(&format!("/ui/usage?from={}&to={}", day(now), day(before)))
        .await;
    assert_eq!(backwards.status, 400);
    let latency = browser
        .get("/ui/usage?group=model&measure=latency&days=7")
        .await;
    assert!(latency.html.contains("Average latency (ms) by model"));
    assert!(
        latency.html.contains("80 ms"),
        "each record took 80 ms: {}",
        latency.html
    );
    assert!(overview.html.contains("Average latency per day (ms)"));

    // The key's page charts its use and lists its refused request.
    let page = browser.get(&format!("/ui/keys/{}", key.id)).await;
    assert!(page.html.contains("Requests per day"));
    assert!(page.html.contains("all_deployments_failed") && page.html.contains("503"));

    // Acknowledged with a note, it leaves the open list; its key is suspended from the page.
    let page = browser.get("/ui/anomalies").await;
    assert!(page.html.contains("spend_spike") && page.html.contains("Acknowledge"));
    let csrf = input(&page.html, "csrf");
    let acked = browser
        .post(
            &format!("/ui/anomalies/{}/ack", anomaly.id),
            &[("csrf", &csrf), ("note", "a load test")],
        )
        .await;
    assert_eq!(acked.location.as_deref(), Some("/ui/anomalies"));
    assert!(
        !browser
            .get("/ui/anomalies")
            .await
            .html
            .contains("spend_spike")
    );
    let done = browser.get("/ui/anomalies?state=acknowledged").await;
    assert!(done.html.contains("a load test"), "{}", done.html);
    let suspended = browser
        .post(
            &format!("/ui/keys/{}/suspend", key.id),
            &[
                ("csrf", &csrf),
                ("reason", &format!("anomaly spend_spike ({})", anomaly.id)),
            ],
        )
        .await;
    assert_eq!(suspended.status, 303);
    assert_eq!(
        api.verify(&key.secret, None, None).await["code"],
        "key_suspended"
    );
}

keygate_testkit::on_both_databases!(the_overview_usage_and_anomalies_pages_show_and_act);
