//! Bodies that are not JSON: a transcription's multipart upload streams to the upstream as it
//! arrives (the model part renamed), is bounded, and goes to one deployment; speech audio
//! streams back to the client as the upstream makes it.

use std::sync::Arc;
use std::time::Duration;

use keygate_testkit::{Db, MockReply, speech_audio};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Setup, config, eventually, setup_with};

const GROUPS: &str = r#"
    [model_groups.whisper]
    deployments = [{ provider = "a", model = "whisper-1" }]

    [model_groups.speech]
    deployments = [{ provider = "a", model = "tts-1" }]

    [model_groups.dalle]
    deployments = [{ provider = "a", model = "dall-e-3" }]
"#;

const BOUNDARY: &str = "keygate-upload-test";

fn text_part(name: &str, value: &str) -> Vec<u8> {
    format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
        .into_bytes()
}

fn file_head(name: &str) -> Vec<u8> {
    format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: audio/wav\r\n\r\n"
    )
    .into_bytes()
}

fn closing() -> Vec<u8> {
    format!("\r\n--{BOUNDARY}--\r\n").into_bytes()
}

/// Posts a whole multipart `body` to the transcription endpoint with `key`.
async fn upload(api: &keygate_testkit::Api, key: &str, body: Vec<u8>) -> keygate_testkit::Reply {
    api.post("/v1/audio/transcriptions")
        .token(key)
        .header(
            "content-type",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(body)
        .send()
        .await
}

/// A raw HTTP/1.1 upload to keygate with a chunked body, written piece by piece.
struct Upload {
    socket: TcpStream,
}

impl Upload {
    async fn open(s: &Setup) -> Self {
        let mut socket = TcpStream::connect(s.server.addr).await.unwrap();
        let head = format!(
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: keygate\r\nAuthorization: Bearer {}\r\nContent-Type: multipart/form-data; boundary={BOUNDARY}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
            s.key
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        Self { socket }
    }

    async fn send(&mut self, bytes: &[u8]) {
        let chunk = [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat();
        // The server may answer (and close) before taking all of a refused body.
        let _ = self.socket.write_all(&chunk).await;
        let _ = self.socket.flush().await;
    }

    /// Ends the body and reads the whole answer (head and body, as text).
    async fn finish(mut self) -> String {
        let _ = self.socket.write_all(b"0\r\n\r\n").await;
        let mut answer = Vec::new();
        let read = self.socket.read_to_end(&mut answer);
        let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
        String::from_utf8_lossy(&answer).into_owned()
    }
}

async fn uploads_stream_to_the_upstream_as_they_arrive(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let audio: Vec<u8> = (0..192 * 1024).map(|i| (i % 251) as u8).collect();
    let mut upload = Upload::open(&s).await;
    let first = [
        text_part("model", "whisper"),
        text_part("response_format", "json"),
        file_head("speech.wav"),
        audio[..64 * 1024].to_vec(),
    ]
    .concat();
    upload.send(&first).await;
    // The upstream reads the file while the client still holds most of it.
    eventually(|| s.a.uploaded_bytes() >= 64 * 1024).await;
    assert!(
        s.a.uploaded_bytes() >= 64 * 1024,
        "the upload was held back: {} bytes arrived upstream",
        s.a.uploaded_bytes()
    );
    upload.send(&audio[64 * 1024..]).await;
    let end = format!("--{BOUNDARY}--\r\n").into_bytes();
    upload
        .send(&[b"\r\n".to_vec(), text_part("language", "fr"), end].concat())
        .await;
    let answer = upload.finish().await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("Heard {} bytes of speech.wav at a.", audio.len())),
        "{answer}"
    );
    let forms = s.a.forms();
    let form = &forms[0];
    let names: Vec<&str> = form.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["model", "response_format", "file", "language"]);
    assert_eq!(form[0].data, "whisper-1", "the model part is renamed");
    assert_eq!(form[2].data, audio, "the file arrives byte for byte");
    let usage = super::usage(&s, "model", 1).await;
    assert_eq!(usage["data"][0]["group"], "whisper", "{usage}");
}

async fn a_file_before_its_model_is_held_and_then_sent(db: Db) {
    let s = setup_with(db, GROUPS).await;
    // As `curl -F file=@a.wav -F model=whisper` orders the parts.
    let body = [
        file_head("a.wav"),
        b"RIFF0000WAVE".to_vec(),
        b"\r\n".to_vec(),
        text_part("model", "whisper"),
        format!("--{BOUNDARY}--\r\n").into_bytes(),
    ]
    .concat();
    let reply = upload(&s.server.api(), &s.key, body).await.expect(200);
    assert_eq!(reply.body["text"], "Heard 12 bytes of a.wav at a.");
    let form = &s.a.forms()[0];
    assert_eq!(form[0].name, "file");
    assert_eq!(form[1].data, "whisper-1");
}

async fn a_stream_answered_whole_is_passed_on_whole(db: Db) {
    let s = setup_with(db, GROUPS).await;
    // `whisper-1` ignores `stream`, as OpenAI's reference says, and answers JSON.
    let body = [
        text_part("model", "whisper"),
        text_part("stream", "true"),
        file_head("a.wav"),
        b"RIFF0000WAVE".to_vec(),
        closing(),
    ]
    .concat();
    let reply = upload(&s.server.api(), &s.key, body).await.expect(200);
    assert_eq!(reply.body["text"], "Heard 12 bytes of a.wav at a.");
}

async fn uploads_are_bounded_and_refused_clearly(db: Db) {
    let a = keygate_testkit::MockOpenAi::start("a", super::KEY_A)
        .await
        .unwrap();
    let b = keygate_testkit::MockOpenAi::start("b", super::KEY_B)
        .await
        .unwrap();
    let limited = config(&a, &b, GROUPS).replace(
        "breaker_open_seconds = 60",
        "breaker_open_seconds = 60\nupload_limit_bytes = 100000",
    );
    let s = super::setup_from(db, a, b, &limited).await;
    let api = s.server.api();
    let multipart = format!("multipart/form-data; boundary={BOUNDARY}");
    let post = |body: Vec<u8>, content_type: &str| {
        api.post("/v1/audio/transcriptions")
            .token(&s.key)
            .header("content-type", content_type)
            .body(body)
    };
    // Declared too large: refused before anything is read.
    let big = [
        text_part("model", "whisper"),
        file_head("a.wav"),
        vec![7u8; 100_000 + keygate_llm::FORM_SLACK + 1],
        closing(),
    ]
    .concat();
    post(big, &multipart)
        .send()
        .await
        .expect_error(413, "payload_too_large");
    // Too large while it streams (no length declared): the upstream request is cut off and
    // the client told why.
    let mut upload = Upload::open(&s).await;
    upload
        .send(&[text_part("model", "whisper"), file_head("a.wav")].concat())
        .await;
    for _ in 0..15 {
        upload.send(&[7u8; 10_000]).await;
    }
    upload.send(&closing()).await;
    let answer = upload.finish().await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("payload_too_large"), "{answer}");
    // A part after the file may not change what was read before it: refused, and not held
    // against the deployment.
    let late = [
        text_part("model", "whisper"),
        file_head("a.wav"),
        b"RIFF".to_vec(),
        b"\r\n".to_vec(),
        text_part("model", "gpt-4o-transcribe"),
        format!("--{BOUNDARY}--\r\n").into_bytes(),
    ]
    .concat();
    let reply = post(late, &multipart)
        .send()
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(reply.body["error"]["param"], "body");
    assert!(reply.text.contains("`model` given twice"), "{}", reply.text);
    assert!(
        s.a.forms()
            .iter()
            .all(|form| form.iter().filter(|p| p.name == "model").count() == 1),
        "no second model reached the upstream"
    );
    // Malformed forms name the part at fault.
    let no_model = [file_head("a.wav"), b"x".to_vec(), closing()].concat();
    let reply = post(no_model, &multipart)
        .send()
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(reply.body["error"]["param"], "model");
    let reply = post(b"{}".to_vec(), "application/json")
        .send()
        .await
        .expect_error(400, "invalid_request");
    assert_eq!(reply.body["error"]["param"], "body");
    // A key without the model's scope learns nothing, whatever it uploads.
    let narrow = api
        .create_key(
            &s.server.owner_token,
            json!({"project": "default", "name": "narrow", "scopes": ["models:embed"]}),
        )
        .await
        .secret;
    let form = [
        text_part("model", "whisper"),
        file_head("a.wav"),
        b"x".to_vec(),
        closing(),
    ]
    .concat();
    api.post("/v1/audio/transcriptions")
        .token(&narrow)
        .header("content-type", &multipart)
        .body(form)
        .send()
        .await
        .expect_error(403, "scope_denied");
}

async fn speech_streams_back_as_it_is_made(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let release = Arc::new(tokio::sync::Notify::new());
    s.a.push(MockReply::Gated {
        first: String::new(),
        release: release.clone(),
        rest: String::new(),
    });
    let client = reqwest::Client::new();
    let mut response = client
        .post(format!("{}/v1/audio/speech", s.server.base_url))
        .bearer_auth(&s.key)
        .json(&json!({"model": "speech", "voice": "alloy", "input": "Hello there"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/mpeg");
    let first = tokio::time::timeout(Duration::from_secs(5), response.chunk())
        .await
        .expect("the first audio arrives while the upstream holds the rest")
        .unwrap()
        .unwrap();
    let mut audio = first.to_vec();
    release.notify_one();
    while let Some(chunk) = response.chunk().await.unwrap() {
        audio.extend_from_slice(&chunk);
    }
    assert_eq!(audio, speech_audio("Hello there"));
    let sent = &s.a.requests()[0];
    assert_eq!(sent.json()["model"], "tts-1");
}

async fn limits_and_budgets_hold_on_every_endpoint(db: Db) {
    let s = setup_with(db, GROUPS).await;
    let api = s.server.api();
    let key_with = |limits: serde_json::Value| {
        let api = s.server.api();
        let owner = s.server.owner_token.clone();
        async move {
            api.create_key(
                &owner,
                json!({"project": "default", "name": "limited", "scopes": ["models:*"], "limits": limits}),
            )
            .await
            .secret
        }
    };
    // A budget reserves an image's price before the upstream is asked: $0.04 fits in $0.05
    // once, not twice.
    let budget = key_with(json!({"budgets": [{"usd": "0.05", "per": "day"}]})).await;
    let draw = json!({"model": "dalle", "prompt": "a lighthouse", "n": 1});
    api.post("/v1/images/generations")
        .token(&budget)
        .json(&draw)
        .send()
        .await
        .expect(200);
    api.post("/v1/images/generations")
        .token(&budget)
        .json(&draw)
        .send()
        .await
        .expect_error(429, "budget_exceeded");
    assert_eq!(
        s.a.requests().len(),
        1,
        "the refusal came before the upstream"
    );
    // A request rate counts an upload like any request.
    let rate = key_with(json!({"requests": [{"limit": 1, "per": "minute"}]})).await;
    let form = [
        text_part("model", "whisper"),
        file_head("a.wav"),
        b"RIFF".to_vec(),
        closing(),
    ]
    .concat();
    let upload = |body: Vec<u8>| {
        api.post("/v1/audio/transcriptions")
            .token(&rate)
            .header(
                "content-type",
                &format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body)
    };
    upload(form.clone()).send().await.expect(200);
    upload(form).send().await.expect_error(429, "rate_limited");
    assert_eq!(s.a.forms().len(), 1);
    // A transcription priced by the minute reserves its audio's length, estimated from its
    // size, before it is sent: 320 kB is about 20 s, $0.002 at $0.006 a minute.
    let small = key_with(json!({"budgets": [{"usd": "0.001", "per": "day"}]})).await;
    let long = [
        text_part("model", "whisper"),
        file_head("a.wav"),
        vec![1u8; 320_000],
        closing(),
    ]
    .concat();
    api.post("/v1/audio/transcriptions")
        .token(&small)
        .header(
            "content-type",
            &format!("multipart/form-data; boundary={BOUNDARY}"),
        )
        .body(long)
        .send()
        .await
        .expect_error(429, "budget_exceeded");
    assert_eq!(s.a.forms().len(), 1, "refused before the upstream");
}

keygate_testkit::on_both_databases!(
    a_stream_answered_whole_is_passed_on_whole,
    limits_and_budgets_hold_on_every_endpoint,
    uploads_stream_to_the_upstream_as_they_arrive,
    a_file_before_its_model_is_held_and_then_sent,
    uploads_are_bounded_and_refused_clearly,
    speech_streams_back_as_it_is_made,
);
