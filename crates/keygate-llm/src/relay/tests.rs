//! The relay against scripted upstream streams.

use futures_util::StreamExt as _;

use super::*;
use crate::breaker::Breaker;
use crate::translate::{Format, StreamDecoder, StreamEncoder};

fn relay(events: &[&str], client: ClientFormat, credential: Option<&str>) -> Relay {
    let chunks: Vec<Result<Bytes, BodyError>> = events
        .iter()
        .map(|e| Ok(Bytes::from(e.to_string())))
        .collect();
    let health = Arc::new(Health::new(
        Breaker::new(5, Duration::from_secs(30)),
        None,
        None,
    ));
    Relay::new(RelayParts {
        upstream: futures_util::stream::iter(chunks).boxed(),
        gap: Duration::from_secs(5),
        deadline: Instant::now() + Duration::from_secs(5),
        codec: Codec::Decoded(Box::new(Decoded {
            decoder: StreamDecoder::new(Format::Anthropic),
            encoder: (client != ClientFormat::Anthropic)
                .then(|| StreamEncoder::new(client.wire(), false)),
            events: Vec::new(),
        })),
        client,
        credential: credential.map(SecretString::from),
        started: Instant::now(),
        in_flight: InFlight(health),
    })
}

const OVERLOADED: &str = "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n";

#[tokio::test]
async fn an_error_before_any_output_may_be_retried() {
    for client in [ClientFormat::Anthropic, ClientFormat::OpenAi] {
        let mut early = relay(&[OVERLOADED], client, None);
        assert_eq!(
            early.prime().await,
            Err(AttemptError::Status {
                status: 529,
                code: None,
                retry_after: None
            })
        );
    }
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n";
    let text = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\n";
    let mut late = relay(&[start, text, OVERLOADED], ClientFormat::Anthropic, None);
    assert_eq!(late.prime().await, Ok(()), "committed at the first event");
    let out: Vec<Bytes> = late.map(Result::unwrap).collect().await;
    let text = String::from_utf8(out.concat()).unwrap();
    assert_eq!(text.matches("event: error").count(), 1, "{text}");
}

#[tokio::test]
async fn an_echoed_credential_is_scrubbed_from_error_events() {
    let secret = "sk-ant-secret-0123456789";
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n";
    let echo = format!(
        "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"invalid_request_error\",\"message\":\"bad key {secret}\"}}}}\n\n"
    );
    for client in [ClientFormat::Anthropic, ClientFormat::OpenAi] {
        let mut stream = relay(&[start, &echo], client, Some(secret));
        stream.prime().await.unwrap();
        let out: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        let text = String::from_utf8(out.concat()).unwrap();
        assert!(text.contains("bad key [redacted]"), "{text}");
        assert!(!text.contains(secret), "{text}");
    }
}

#[tokio::test]
async fn a_meter_ends_the_stream_with_an_error_event() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"c\",\"usage\":{\"input_tokens\":1,\"output_tokens\":1}}}\n\n";
    let block = "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n";
    let delta = |text: &str| {
        format!(
            "event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n"
        )
    };
    let (one, two, three) = (
        delta("0123456789"),
        delta("abcdefghij"),
        delta("NEVER-SENT"),
    );
    for client in [ClientFormat::Anthropic, ClientFormat::OpenAi] {
        let mut stream = relay(&[start, block, &one, &two, &three], client, None);
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        stream.meter(
            "budget_exceeded",
            "the budget ran out".into(),
            move |bytes| {
                log.lock().unwrap().push(bytes);
                bytes <= 15
            },
        );
        let (ended, ends) = std::sync::mpsc::channel();
        stream.on_end(move |end| ended.send(end.outcome).unwrap());
        stream.prime().await.unwrap();
        let out: Vec<Bytes> = stream.map(Result::unwrap).collect().await;
        let text = String::from_utf8(out.concat()).unwrap();
        assert!(
            text.contains("abcdefghij"),
            "what was generated goes out: {text}"
        );
        assert!(!text.contains("NEVER-SENT"), "{text}");
        assert!(text.contains("\"code\":\"budget_exceeded\""), "{text}");
        assert!(!text.contains("[DONE]") && !text.contains("message_stop"));
        assert_eq!(*seen.lock().unwrap(), vec![10, 20], "counted once each");
        assert_eq!(
            ends.recv().unwrap(),
            StreamOutcome::Stopped {
                code: "budget_exceeded"
            }
        );
    }
}
