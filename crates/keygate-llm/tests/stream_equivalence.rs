//! A streamed answer, translated event by event and put back together by the client, says
//! exactly what the same answer says when it is translated whole: for every upstream format,
//! every client format, and any way the upstream cuts its stream into chunks.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use keygate_llm::sse::EventSplitter;
use keygate_llm::translate::ir::{ChatResponse, Part, StopReason, StreamEvent, ToolCall, Usage};
use keygate_llm::translate::{self, Format, StreamDecoder, StreamEncoder};
use proptest::prelude::*;
use serde_json::Value;

const FORMATS: [Format; 4] = [
    Format::OpenAi,
    Format::Responses,
    Format::Anthropic,
    Format::Gemini,
];
const CLIENTS: [Format; 3] = [Format::OpenAi, Format::Responses, Format::Anthropic];

/// An answer with text pieces and tool calls whose arguments come in pieces.
#[derive(Debug, Clone)]
struct Answer {
    text: Vec<String>,
    calls: Vec<(String, Vec<String>)>,
    stop: StopReason,
    usage: Usage,
}

fn split(text: &str, cuts: &[usize]) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (chars.len() + 1)).collect();
    points.sort_unstable();
    points.dedup();
    let mut pieces = Vec::new();
    let mut at = 0;
    for point in points.into_iter().chain([chars.len()]) {
        if point > at {
            pieces.push(chars[at..point].iter().collect());
            at = point;
        }
    }
    pieces
}

fn answer() -> impl Strategy<Value = Answer> {
    let text = proptest::option::of((
        "[a-zA-Z0-9 ,.!?é\"\\\\\n]{1,60}",
        proptest::collection::vec(any::<usize>(), 0..6),
    ));
    let call = (
        "[a-z_]{1,12}",
        proptest::collection::btree_map("[a-z]{1,6}", "[a-zA-Z0-9 \"{}]{0,12}", 0..4),
        proptest::collection::vec(any::<usize>(), 0..8),
    );
    let calls = proptest::collection::vec(call, 0..3);
    let usage = (0u64..100_000, 0u64..100_000, 0u64..1000);
    (text, calls, any::<bool>(), usage).prop_map(
        |(text, calls, cut_short, (input, output, cached))| {
            let calls: Vec<(String, Vec<String>)> = calls
                .into_iter()
                .map(|(name, args, cuts)| {
                    let json = serde_json::to_string(&args).unwrap();
                    (name, split(&json, &cuts))
                })
                .collect();
            let stop = if !calls.is_empty() {
                StopReason::ToolUse
            } else if cut_short {
                StopReason::MaxTokens
            } else {
                StopReason::EndTurn
            };
            Answer {
                text: text.map(|(t, cuts)| split(&t, &cuts)).unwrap_or_default(),
                calls,
                stop,
                usage: Usage {
                    input: input + cached,
                    output,
                    cache_read: cached,
                    cache_write: 0,
                },
            }
        },
    )
}

impl Answer {
    fn whole(&self) -> ChatResponse {
        let mut content = Vec::new();
        let text: String = self.text.concat();
        if !text.is_empty() {
            content.push(Part::Text(text));
        }
        for (n, (name, pieces)) in self.calls.iter().enumerate() {
            content.push(Part::ToolCall(ToolCall {
                id: format!("call_{n}"),
                name: name.clone(),
                arguments: pieces.concat(),
            }));
        }
        ChatResponse {
            id: "resp1".to_owned(),
            model: "model-1".to_owned(),
            content,
            stop: Some(self.stop.clone()),
            usage: Some(self.usage),
        }
    }

    fn events(&self) -> Vec<StreamEvent> {
        let mut events = vec![StreamEvent::Start {
            id: "resp1".to_owned(),
            model: "model-1".to_owned(),
            input_tokens: None,
        }];
        let mut index = 0;
        if !self.text.is_empty() {
            events.push(StreamEvent::TextStart { index });
            for piece in &self.text {
                events.push(StreamEvent::Text {
                    index,
                    text: piece.clone(),
                });
            }
            events.push(StreamEvent::BlockStop { index });
            index += 1;
        }
        for (n, (name, pieces)) in self.calls.iter().enumerate() {
            events.push(StreamEvent::ToolStart {
                index,
                id: format!("call_{n}"),
                name: name.clone(),
            });
            for piece in pieces {
                events.push(StreamEvent::ToolArguments {
                    index,
                    json: piece.clone(),
                });
            }
            events.push(StreamEvent::BlockStop { index });
            index += 1;
        }
        events.push(StreamEvent::Finish {
            stop: Some(self.stop.clone()),
            usage: Some(self.usage),
        });
        events.push(StreamEvent::End);
        events
    }
}

/// Pushes `bytes` in pieces cut at `cuts`, and runs every event's data through `decoder`,
/// then `encoder` (when there is one). Returns the common events and the encoded text.
fn relay(
    bytes: &[u8],
    cuts: &[usize],
    decoder: &mut StreamDecoder,
    mut encoder: Option<&mut StreamEncoder>,
) -> (Vec<StreamEvent>, String) {
    let mut splitter = EventSplitter::new();
    let mut all = Vec::new();
    let mut out = String::new();
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut at = 0;
    let mut events = Vec::new();
    for point in points.into_iter().chain([bytes.len()]) {
        splitter.push(&bytes[at..point.max(at)]).unwrap();
        at = point.max(at);
        while let Some(event) = splitter.next_event().unwrap() {
            let Some(data) = event.data() else { continue };
            events.clear();
            decoder.push(&data, &mut events).unwrap();
            if let Some(encoder) = encoder.as_deref_mut() {
                for event in &events {
                    encoder.encode(event, &mut out);
                }
            }
            all.append(&mut events);
        }
    }
    events.clear();
    assert!(decoder.end(&mut events), "the stream is complete");
    if let Some(encoder) = encoder {
        for event in &events {
            encoder.encode(event, &mut out);
        }
    }
    all.append(&mut events);
    (all, out)
}

/// Tool arguments compared as JSON: a whole Anthropic answer carries them as an object, so
/// their spacing and key order may differ from the streamed text; keygate's own Responses ids
/// are fresh each time.
fn normalized(mut response: ChatResponse) -> ChatResponse {
    // A Responses answer gets an id of keygate's own each time it is written.
    if let Some(at) = response.id.find("resp_kg") {
        response.id.truncate(at + "resp_kg".len());
    }
    for part in &mut response.content {
        if let Part::ToolCall(call) = part {
            let value: Value = serde_json::from_str(&call.arguments).unwrap_or(Value::Null);
            call.arguments = value.to_string();
        }
    }
    response
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_translated_stream_reassembles_to_the_translated_whole(
        answer in answer(),
        upstream_cuts in proptest::collection::vec(any::<usize>(), 0..12),
    ) {
        for upstream in FORMATS {
            // What the upstream sends, whole and streamed.
            let whole_body = translate::encode_response(upstream, &answer.whole());
            let mut stream_text = String::new();
            let mut upstream_encoder = StreamEncoder::new(upstream, true);
            for event in answer.events() {
                upstream_encoder.encode(&event, &mut stream_text);
            }
            for client in CLIENTS.into_iter().filter(|c| *c != upstream) {
                let whole = translate::decode_response(upstream, &whole_body).unwrap();
                let client_body = translate::encode_response(client, &whole);
                let expected = translate::decode_response(client, &client_body).unwrap();

                let mut decoder = StreamDecoder::new(upstream);
                let mut encoder = StreamEncoder::new(client, true);
                let (_, client_stream) =
                    relay(stream_text.as_bytes(), &upstream_cuts, &mut decoder, Some(&mut encoder));
                let mut client_decoder = StreamDecoder::new(client);
                let (events, _) = relay(client_stream.as_bytes(), &[], &mut client_decoder, None);
                let streamed = ChatResponse::from_events(&events);

                prop_assert_eq!(
                    normalized(streamed),
                    normalized(expected),
                    "{} to {}", upstream, client
                );
            }
        }
    }
}
