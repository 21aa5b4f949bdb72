//! The readers of untrusted bytes (upstream streams, answers and error bodies, clients'
//! requests) never panic, on arbitrary bytes and on realistic messages broken in arbitrary
//! ways: the conformance fixtures cut, spliced, or with any JSON value replaced or removed.
//! Where a property holds for any input it is checked too. The same ground is fuzzed by the
//! targets in `fuzz/`, which need nightly and so are not run here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::LazyLock;

use keygate_llm::ClientFormat;
use keygate_llm::sse::EventSplitter;
use keygate_llm::translate::ir::{ErrorKind, StopReason, StreamEvent, UpstreamError, Usage};
use keygate_llm::translate::{self, Format, StreamDecoder, StreamEncoder, TargetOptions};
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::Value;

const FORMATS: [Format; 4] = [
    Format::OpenAi,
    Format::Responses,
    Format::Anthropic,
    Format::Gemini,
];

fn any_format() -> impl Strategy<Value = Format> {
    proptest::sample::select(FORMATS.to_vec())
}

// --- Seeds: the conformance fixtures ------------------------------------------------------

fn fixtures(folder: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/conformance")
        .join(folder);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|err| panic!("{}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{folder} has no fixtures");
    files
        .into_iter()
        .map(|path| std::fs::read(path).unwrap())
        .collect()
}

fn slot(format: Format) -> usize {
    match format {
        Format::OpenAi => 0,
        Format::Responses => 1,
        Format::Anthropic => 2,
        Format::Gemini => 3,
    }
}

/// Each format's streams, as their events' data, from the stream fixtures.
static STREAMS: LazyLock<[Vec<Vec<Vec<u8>>>; 4]> = LazyLock::new(|| {
    FORMATS.map(|format| {
        fixtures(&format!("streams/{format}"))
            .into_iter()
            .map(|stream| {
                let mut splitter = EventSplitter::new();
                splitter.push(&stream).unwrap();
                let mut events = Vec::new();
                while let Some(event) = splitter.next_event().unwrap() {
                    if let Some(data) = event.data() {
                        events.push(data.into_owned());
                    }
                }
                events
            })
            .collect()
    })
});

/// Each format's stream events, from all its streams.
static EVENTS: LazyLock<[Vec<Vec<u8>>; 4]> =
    LazyLock::new(|| STREAMS.each_ref().map(|streams| streams.concat()));

/// Each format's whole answers.
static RESPONSES: LazyLock<[Vec<Vec<u8>>; 4]> =
    LazyLock::new(|| FORMATS.map(|format| fixtures(&format!("responses/{format}"))));

/// Each client format's requests; Gemini requests are not accepted, so it has none.
static REQUESTS: LazyLock<[Vec<Vec<u8>>; 4]> = LazyLock::new(|| {
    FORMATS.map(|format| match format {
        Format::Gemini => Vec::new(),
        _ => fixtures(&format!("requests/{format}")),
    })
});

/// The error bodies of the error fixtures.
static ERRORS: LazyLock<Vec<Vec<u8>>> = LazyLock::new(|| {
    fixtures("errors")
        .into_iter()
        .map(|fixture| {
            let fixture: Value = serde_json::from_slice(&fixture).unwrap();
            match &fixture["body"] {
                Value::String(text) => text.clone().into_bytes(),
                other => other.to_string().into_bytes(),
            }
        })
        .collect()
});

/// Every key and short string of the seeds: a replaced value is likelier to mean something
/// (`"tool_use"`, `"index"`, `"[DONE]"`) than a random one.
static WORDS: LazyLock<Vec<String>> = LazyLock::new(|| {
    fn walk(value: &Value, words: &mut BTreeSet<String>) {
        match value {
            Value::String(s) if s.len() <= 32 => {
                words.insert(s.clone());
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, words)),
            Value::Object(map) => {
                for (key, value) in map {
                    words.insert(key.clone());
                    walk(value, words);
                }
            }
            _ => {}
        }
    }
    let mut words = BTreeSet::from(["[DONE]".to_owned(), String::new()]);
    let seeds = EVENTS
        .iter()
        .chain(RESPONSES.iter())
        .chain(REQUESTS.iter())
        .flatten()
        .chain(ERRORS.iter());
    for seed in seeds {
        if let Ok(value) = serde_json::from_slice::<Value>(seed) {
            walk(&value, &mut words);
        }
    }
    words.into_iter().collect()
});

// --- Mutations ----------------------------------------------------------------------------

/// An arbitrary JSON value, biased to the seeds' words and to small numbers.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..4).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        proptest::sample::select(WORDS.as_slice()).prop_map(Value::from),
        ".{0,8}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::vec((proptest::sample::select(WORDS.as_slice()), inner), 0..4)
                .prop_map(|fields| Value::Object(fields.into_iter().collect())),
        ]
    })
}

/// One change to a JSON document.
#[derive(Debug, Clone)]
enum JsonEdit {
    /// Replaces the node picked (the root included) with a value.
    Replace(Index, Value),
    /// Removes the node picked from its object or array.
    Remove(Index),
}

fn json_edit() -> impl Strategy<Value = JsonEdit> {
    prop_oneof![
        3 => (any::<Index>(), json_value()).prop_map(|(at, value)| JsonEdit::Replace(at, value)),
        1 => any::<Index>().prop_map(JsonEdit::Remove),
    ]
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Item(usize),
}

/// The paths of every node under `value`, the root (an empty path) first.
fn paths(value: &Value, prefix: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(prefix.clone());
    match value {
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                prefix.push(Step::Item(i));
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                prefix.push(Step::Key(key.clone()));
                paths(item, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn node<'a>(value: &'a mut Value, path: &[Step]) -> &'a mut Value {
    path.iter().fold(value, |node, step| match step {
        Step::Key(key) => &mut node[key.as_str()],
        Step::Item(i) => &mut node[*i],
    })
}

fn apply_json(value: &mut Value, edit: &JsonEdit) {
    let mut all = Vec::new();
    paths(value, &mut Vec::new(), &mut all);
    match edit {
        JsonEdit::Replace(at, new) => *node(value, at.get::<Vec<Step>>(&all)) = new.clone(),
        JsonEdit::Remove(at) => {
            let path = at.get::<Vec<Step>>(&all);
            let Some((last, parent)) = path.split_last() else {
                return;
            };
            match (node(value, parent), last) {
                (Value::Object(map), Step::Key(key)) => {
                    map.remove(key);
                }
                (Value::Array(items), Step::Item(i)) => {
                    items.remove(*i);
                }
                _ => unreachable!("a path follows the document"),
            }
        }
    }
}

/// One change to raw bytes; positions are scaled to the bytes' length.
#[derive(Debug, Clone)]
enum ByteEdit {
    Truncate(Index),
    Insert(Index, Vec<u8>),
    Delete(Index, usize),
    Set(Index, u8),
    /// Copies a stretch to another place: a repeated key, a doubled bracket.
    Duplicate(Index, usize, Index),
}

/// Bytes that matter to the parsers, or any byte.
fn interesting_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"\"".to_vec()),
        Just(b"{".to_vec()),
        Just(b"}".to_vec()),
        Just(b"[".to_vec()),
        Just(b"]".to_vec()),
        Just(b",".to_vec()),
        Just(b":".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\u".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"null".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"1e400".to_vec()),
        Just(b"18446744073709551616".to_vec()),
        Just("é".as_bytes().to_vec()),
        Just(vec![0xff]),
        any::<u8>().prop_map(|b| vec![b]),
    ];
    proptest::collection::vec(piece, 1..4).prop_map(|pieces| pieces.concat())
}

fn byte_edit() -> impl Strategy<Value = ByteEdit> {
    prop_oneof![
        any::<Index>().prop_map(ByteEdit::Truncate),
        (any::<Index>(), interesting_bytes()).prop_map(|(at, bytes)| ByteEdit::Insert(at, bytes)),
        (any::<Index>(), 1usize..8).prop_map(|(at, len)| ByteEdit::Delete(at, len)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, byte)| ByteEdit::Set(at, byte)),
        (any::<Index>(), 1usize..16, any::<Index>())
            .prop_map(|(from, len, to)| ByteEdit::Duplicate(from, len, to)),
    ]
}

fn apply_bytes(bytes: &mut Vec<u8>, edit: &ByteEdit) {
    // An index into `0..=len`, so an end is a place too.
    let place = |at: &Index, len: usize| at.index(len + 1);
    match edit {
        ByteEdit::Truncate(at) => bytes.truncate(place(at, bytes.len())),
        ByteEdit::Insert(at, new) => {
            let at = place(at, bytes.len());
            bytes.splice(at..at, new.iter().copied());
        }
        ByteEdit::Delete(at, len) => {
            let at = place(at, bytes.len());
            let end = (at + len).min(bytes.len());
            bytes.drain(at..end);
        }
        ByteEdit::Set(at, byte) => {
            if !bytes.is_empty() {
                let at = at.index(bytes.len());
                bytes[at] = *byte;
            }
        }
        ByteEdit::Duplicate(from, len, to) => {
            let from = place(from, bytes.len());
            let end = (from + len).min(bytes.len());
            let stretch = bytes[from..end].to_vec();
            let to = place(to, bytes.len());
            bytes.splice(to..to, stretch);
        }
    }
}

/// How a seed is broken: not at all, in its JSON, or in its bytes.
#[derive(Debug, Clone)]
enum Mutation {
    None,
    Json(Vec<JsonEdit>),
    Bytes(Vec<ByteEdit>),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        1 => Just(Mutation::None),
        3 => proptest::collection::vec(json_edit(), 1..3).prop_map(Mutation::Json),
        3 => proptest::collection::vec(byte_edit(), 1..4).prop_map(Mutation::Bytes),
    ]
}

fn mutate(seed: &[u8], mutation: &Mutation) -> Vec<u8> {
    match mutation {
        Mutation::None => seed.to_vec(),
        Mutation::Json(edits) => {
            let Ok(mut value) = serde_json::from_slice::<Value>(seed) else {
                return seed.to_vec();
            };
            for edit in edits {
                apply_json(&mut value, edit);
            }
            value.to_string().into_bytes()
        }
        Mutation::Bytes(edits) => {
            let mut bytes = seed.to_vec();
            for edit in edits {
                apply_bytes(&mut bytes, edit);
            }
            bytes
        }
    }
}

/// A seed of `seeds` picked by `pick`, broken by `mutation`; `{}` broken when there is no
/// seed.
fn broken(seeds: &[Vec<u8>], pick: &Index, mutation: &Mutation) -> Vec<u8> {
    if seeds.is_empty() {
        return mutate(b"{}", mutation);
    }
    mutate(pick.get::<Vec<u8>>(seeds), mutation)
}

/// One change to a stream of events.
#[derive(Debug, Clone)]
enum StreamEdit {
    /// Breaks the event picked.
    Break(Index, Mutation),
    Drop(Index),
    /// Sends the event picked twice.
    Repeat(Index),
    /// Inserts, at a place, an event of any stream of the format, broken.
    Insert(Index, Index, Mutation),
}

fn stream_edit() -> impl Strategy<Value = StreamEdit> {
    prop_oneof![
        3 => (any::<Index>(), mutation()).prop_map(|(at, m)| StreamEdit::Break(at, m)),
        1 => any::<Index>().prop_map(StreamEdit::Drop),
        1 => any::<Index>().prop_map(StreamEdit::Repeat),
        2 => (any::<Index>(), any::<Index>(), mutation())
            .prop_map(|(at, pick, m)| StreamEdit::Insert(at, pick, m)),
    ]
}

/// A stream fixture of `upstream` picked by `pick`, changed by `edits`, as its events' data.
fn broken_stream(upstream: Format, pick: &Index, edits: &[StreamEdit]) -> Vec<Vec<u8>> {
    let mut events = pick.get::<Vec<Vec<u8>>>(&STREAMS[slot(upstream)]).clone();
    let pool = &EVENTS[slot(upstream)];
    for edit in edits {
        match edit {
            StreamEdit::Insert(at, pick, mutation) => {
                let at = at.index(events.len() + 1);
                events.insert(at, broken(pool, pick, mutation));
            }
            _ if events.is_empty() => {}
            StreamEdit::Break(at, mutation) => {
                let at = at.index(events.len());
                events[at] = mutate(&events[at], mutation);
            }
            StreamEdit::Drop(at) => {
                events.remove(at.index(events.len()));
            }
            StreamEdit::Repeat(at) => {
                let at = at.index(events.len());
                events.insert(at, events[at].clone());
            }
        }
    }
    events
}

// --- The pipeline the relay runs, and its checks ------------------------------------------

/// What translating a stream gave.
struct Translated {
    /// The common events, in order.
    events: Vec<StreamEvent>,
    /// The client's bytes.
    out: String,
}

/// Translates `stream` as the relay does: pushed in `chunks`, split into events, each event's
/// data decoded (giving up at the first malformed one, as the relay does), the common events
/// encoded, then the end of the body.
fn translate_stream(
    upstream: Format,
    client: Format,
    include_usage: bool,
    stream: &[u8],
    chunks: &[usize],
) -> Translated {
    let mut splitter = EventSplitter::new();
    let mut decoder = StreamDecoder::new(upstream);
    let mut encoder = StreamEncoder::new(client, include_usage);
    let mut events = Vec::new();
    let mut out = String::new();
    let mut rest = stream;
    let mut sizes = chunks.iter().copied().chain(std::iter::once(usize::MAX));
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(usize::MAX).clamp(1, rest.len());
        let (chunk, after) = rest.split_at(size);
        rest = after;
        splitter.push(chunk).unwrap();
        while let Some(event) = splitter.next_event().unwrap() {
            let Some(data) = event.data() else { continue };
            let first = events.len();
            if decoder.push(&data, &mut events).is_err() {
                return Translated { events, out };
            }
            for event in &events[first..] {
                encoder.encode(event, &mut out);
            }
        }
    }
    let first = events.len();
    decoder.end(&mut events);
    for event in &events[first..] {
        encoder.encode(event, &mut out);
    }
    Translated { events, out }
}

/// The common events keep the promises of `StreamEvent` that hold whatever the upstream sent:
/// blocks are numbered from 0 in the order they open, and every delta and stop names a block
/// that is open.
fn check_blocks(events: &[StreamEvent]) -> Result<(), String> {
    let mut opened = 0;
    let mut open: Vec<usize> = Vec::new();
    for (at, event) in events.iter().enumerate() {
        match event {
            StreamEvent::TextStart { index } | StreamEvent::ToolStart { index, .. } => {
                if *index != opened {
                    return Err(format!("event {at}: block {index} opens as block {opened}"));
                }
                opened += 1;
                open.push(*index);
            }
            StreamEvent::Text { index, .. } | StreamEvent::ToolArguments { index, .. } => {
                if !open.contains(index) {
                    return Err(format!("event {at}: a delta of block {index}, not open"));
                }
            }
            StreamEvent::BlockStop { index } => {
                let Some(i) = open.iter().position(|o| o == index) else {
                    return Err(format!("event {at}: a stop of block {index}, not open"));
                };
                open.remove(i);
            }
            StreamEvent::Start { .. }
            | StreamEvent::Finish { .. }
            | StreamEvent::Error(_)
            | StreamEvent::End => {}
        }
    }
    Ok(())
}

/// An encoder's output is a well-formed event stream: whole events only, each of `event:` and
/// `data:` lines, and each data line JSON or `[DONE]`.
fn check_client_stream(out: &str) -> Result<(), String> {
    let mut splitter = EventSplitter::new();
    splitter.push(out.as_bytes()).unwrap();
    while let Some(event) = splitter.next_event().unwrap() {
        let raw = std::str::from_utf8(&event.raw).map_err(|err| err.to_string())?;
        let body = raw
            .strip_suffix("\r\n\r\n")
            .or_else(|| raw.strip_suffix("\n\n"))
            .ok_or_else(|| format!("an event not ended by a blank line: {raw:?}"))?;
        if body.is_empty() {
            return Err("an empty event".to_owned());
        }
        for line in body.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                if data != "[DONE]" && serde_json::from_str::<Value>(data).is_err() {
                    return Err(format!("data that is not JSON: {line:?}"));
                }
            } else if !line.starts_with("event: ") {
                return Err(format!("a line that is neither data nor event: {line:?}"));
            }
        }
    }
    if splitter.pending().is_empty() {
        Ok(())
    } else {
        Err(format!(
            "bytes after the last event: {:?}",
            String::from_utf8_lossy(splitter.pending())
        ))
    }
}

/// A client's stream reads back, event by event, with the client format's own decoder.
fn check_reads_back(client: Format, out: &str) -> Result<(), String> {
    let mut splitter = EventSplitter::new();
    splitter.push(out.as_bytes()).unwrap();
    let mut decoder = StreamDecoder::new(client);
    let mut events = Vec::new();
    while let Some(event) = splitter.next_event().unwrap() {
        if let Some(data) = event.data()
            && decoder.push(&data, &mut events).is_err()
        {
            return Err(format!(
                "the {client} client cannot read {:?}",
                String::from_utf8_lossy(&data)
            ));
        }
    }
    Ok(())
}

/// Whether `raw` ends with an empty line: its last line ending follows another line ending,
/// or nothing.
fn ends_with_blank_line(raw: &[u8]) -> bool {
    let before = if let Some(rest) = raw.strip_suffix(b"\r\n") {
        rest
    } else if let Some(rest) = raw.strip_suffix(b"\n").or_else(|| raw.strip_suffix(b"\r")) {
        rest
    } else {
        return false;
    };
    before.is_empty() || before.ends_with(b"\n") || before.ends_with(b"\r")
}

/// The `data` of an event as the WHATWG rules define it, written plainly: every line that is
/// `data` or starts with `data:`, one leading space dropped, joined by newlines.
fn reference_data(raw: &[u8]) -> Option<Vec<u8>> {
    let mut lines = Vec::new();
    let mut line = Vec::new();
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'\r' | b'\n' => {
                if raw[i] == b'\r' && raw.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                lines.push(std::mem::take(&mut line));
            }
            byte => line.push(byte),
        }
        i += 1;
    }
    let values: Vec<&[u8]> = lines
        .iter()
        .filter_map(|line| {
            let (field, value) = match line.iter().position(|&b| b == b':') {
                Some(colon) => (&line[..colon], &line[colon + 1..]),
                None => (&line[..], &b""[..]),
            };
            (field == b"data").then(|| value.strip_prefix(b" ").unwrap_or(value))
        })
        .collect();
    (!values.is_empty()).then(|| values.join(&b'\n'))
}

// --- Strategies for common events (the encoders' input) -----------------------------------

fn stop_reason() -> impl Strategy<Value = StopReason> {
    prop_oneof![
        Just(StopReason::EndTurn),
        Just(StopReason::MaxTokens),
        proptest::option::of(".{0,6}").prop_map(StopReason::StopSequence),
        Just(StopReason::ToolUse),
        Just(StopReason::ContentFilter),
        Just(StopReason::Refusal),
    ]
}

fn usage() -> impl Strategy<Value = Usage> {
    (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(
        |(input, output, cache_read, cache_write)| Usage {
            input,
            output,
            cache_read,
            cache_write,
        },
    )
}

fn stream_event() -> impl Strategy<Value = StreamEvent> {
    let index = 0usize..4;
    // Text with what must be escaped in JSON and in an event stream.
    let text = "(.|\n|\r|\"|\\\\){0,12}";
    prop_oneof![
        (text, text, proptest::option::of(any::<u64>())).prop_map(|(id, model, input_tokens)| {
            StreamEvent::Start {
                id,
                model,
                input_tokens,
            }
        }),
        index
            .clone()
            .prop_map(|index| StreamEvent::TextStart { index }),
        (index.clone(), text).prop_map(|(index, text)| StreamEvent::Text { index, text }),
        (index.clone(), text, text).prop_map(|(index, id, name)| StreamEvent::ToolStart {
            index,
            id,
            name
        }),
        (index.clone(), text).prop_map(|(index, json)| StreamEvent::ToolArguments { index, json }),
        index.prop_map(|index| StreamEvent::BlockStop { index }),
        (
            proptest::option::of(stop_reason()),
            proptest::option::of(usage())
        )
            .prop_map(|(stop, usage)| StreamEvent::Finish { stop, usage }),
        (any::<u16>(), text).prop_map(|(status, message)| {
            StreamEvent::Error(UpstreamError {
                kind: ErrorKind::from_status(status),
                message,
            })
        }),
        Just(StreamEvent::End),
    ]
}

// --- Properties ---------------------------------------------------------------------------

proptest! {
    /// Arbitrary bytes with many line ends and field names, cut into arbitrary chunks: events
    /// come out in order and exactly as sent, so with what is pending they are the input; each
    /// ends in a blank line; their data is what the WHATWG rules say.
    #[test]
    fn the_splitter_yields_exactly_the_bytes_pushed(
        pieces in proptest::collection::vec(
            prop_oneof![
                Just(&b"data"[..]),
                Just(&b"data:"[..]),
                Just(&b"data: "[..]),
                Just(&b"event: x"[..]),
                Just(&b":"[..]),
                Just(&b" "[..]),
                Just(&b"\r"[..]),
                Just(&b"\n"[..]),
                Just(&b"\r\n"[..]),
                Just(&b"{}"[..]),
                Just(&b"\xff"[..]),
            ],
            0..48,
        ),
        chunks in proptest::collection::vec(0usize..16, 0..12),
    ) {
        let input = pieces.concat();
        let mut splitter = EventSplitter::new();
        let mut yielded = Vec::new();
        let mut rest = &input[..];
        for size in chunks.into_iter().chain(std::iter::once(usize::MAX)) {
            let (chunk, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            splitter.push(chunk).unwrap();
            while let Some(event) = splitter.next_event().unwrap() {
                let raw = &event.raw[..];
                prop_assert!(ends_with_blank_line(raw), "not ended by a blank line: {:?}", raw);
                prop_assert_eq!(
                    event.data().map(|d| d.into_owned()),
                    reference_data(raw),
                    "the data of {:?}", raw
                );
                yielded.extend_from_slice(raw);
                prop_assert!(input.starts_with(&yielded), "bytes that were not pushed");
            }
        }
        yielded.extend_from_slice(splitter.pending());
        prop_assert_eq!(yielded, input);
    }

    /// Each format's stream decoder, given events whose data is arbitrary bytes or arbitrary
    /// JSON, never panics, nor does its end.
    #[test]
    fn stream_decoders_take_any_event_data(
        upstream in any_format(),
        events in proptest::collection::vec(
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..64),
                json_value().prop_map(|value| value.to_string().into_bytes()),
            ],
            0..6,
        ),
    ) {
        let mut decoder = StreamDecoder::new(upstream);
        let mut out = Vec::new();
        for data in &events {
            let _ = decoder.push(data, &mut out);
        }
        decoder.end(&mut out);
    }

    /// A realistic upstream stream with events broken, dropped, repeated or inserted, and the
    /// whole stream's bytes broken too, translated for any client as the relay does: nothing
    /// panics, blocks are numbered in order and only open ones get deltas and stops, and the
    /// client gets a well-formed event stream that its own format's decoder reads.
    #[test]
    fn broken_upstream_streams_translate_without_panicking(
        upstream in any_format(),
        client in any_format(),
        include_usage in any::<bool>(),
        pick in any::<Index>(),
        edits in proptest::collection::vec(stream_edit(), 0..4),
        stream_edits in proptest::collection::vec(byte_edit(), 0..2),
        chunks in proptest::collection::vec(0usize..256, 0..6),
    ) {
        let mut stream = Vec::new();
        for data in broken_stream(upstream, &pick, &edits) {
            stream.extend_from_slice(b"data: ");
            stream.extend_from_slice(&data);
            stream.extend_from_slice(b"\n\n");
        }
        for edit in &stream_edits {
            apply_bytes(&mut stream, edit);
        }
        let translated = translate_stream(upstream, client, include_usage, &stream, &chunks);
        check_blocks(&translated.events)
            .map_err(|err| TestCaseError::fail(format!("{err}: {:?}", translated.events)))?;
        check_client_stream(&translated.out).map_err(TestCaseError::fail)?;
        check_reads_back(client, &translated.out).map_err(TestCaseError::fail)?;
    }

    /// Arbitrary sequences of common events, in any order, encoded for any client: nothing
    /// panics and the output is a well-formed event stream.
    #[test]
    fn encoders_take_any_sequence_of_events(
        client in any_format(),
        include_usage in any::<bool>(),
        events in proptest::collection::vec(stream_event(), 0..16),
    ) {
        let mut encoder = StreamEncoder::new(client, include_usage);
        let mut out = String::new();
        for event in &events {
            encoder.encode(event, &mut out);
        }
        check_client_stream(&out).map_err(TestCaseError::fail)?;
    }

    /// A client's request, realistic and broken or arbitrary bytes, read for any target and
    /// written for it: nothing panics, and what is written is a JSON object.
    #[test]
    fn broken_requests_translate_without_panicking(
        source in proptest::sample::select(vec![
            ClientFormat::OpenAi,
            ClientFormat::Responses,
            ClientFormat::Anthropic,
        ]),
        target in any_format(),
        pick in any::<Index>(),
        mutation in mutation(),
        noise in proptest::collection::vec(any::<u8>(), 0..32),
        use_noise in proptest::bool::weighted(0.1),
    ) {
        let body = if use_noise {
            noise
        } else {
            broken(&REQUESTS[slot(source.wire())], &pick, &mutation)
        };
        let decoded = translate::decode_request(source, &body, target);
        let options = TargetOptions::default();
        if let Ok(request) = decoded
            && let Ok(bytes) = translate::encode_request(target, &request, "m", &options)
        {
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            prop_assert!(value.is_object());
        }
    }

    /// An upstream's whole answer, realistic and broken or arbitrary bytes, read in every
    /// format: nothing panics, and an answer read is written for every client in a form that
    /// reads back.
    #[test]
    fn broken_responses_translate_without_panicking(
        upstream in any_format(),
        pick in any::<Index>(),
        mutation in mutation(),
        noise in proptest::collection::vec(any::<u8>(), 0..32),
        use_noise in proptest::bool::weighted(0.1),
    ) {
        let body = if use_noise {
            noise
        } else {
            broken(&RESPONSES[slot(upstream)], &pick, &mutation)
        };
        for format in FORMATS {
            let Ok(response) = translate::decode_response(format, &body) else { continue };
            for client in FORMATS {
                let written = translate::encode_response(client, &response);
                prop_assert!(
                    translate::decode_response(client, &written).is_ok(),
                    "{} answer read as {} and written for {} does not read back: {}",
                    upstream, format, client, String::from_utf8_lossy(&written)
                );
            }
        }
    }

    /// An upstream's error body, realistic and broken or arbitrary bytes, with any status:
    /// nothing panics, the kind follows the status, and the body is written for every client.
    #[test]
    fn broken_error_bodies_translate_without_panicking(
        status in any::<u16>(),
        pick in any::<Index>(),
        mutation in mutation(),
        noise in proptest::collection::vec(any::<u8>(), 0..32),
        use_noise in proptest::bool::weighted(0.1),
    ) {
        let body = if use_noise {
            noise
        } else {
            broken(&ERRORS, &pick, &mutation)
        };
        for format in FORMATS {
            let error = translate::decode_error(format, status, &body);
            prop_assert_eq!(error.kind, ErrorKind::from_status(status));
            for client in [
                ClientFormat::OpenAi,
                ClientFormat::Responses,
                ClientFormat::Anthropic,
            ] {
                let written = translate::encode_error(client, &error, "upstream_error");
                let value: Value = serde_json::from_slice(&written).unwrap();
                prop_assert!(value.is_object());
            }
        }
    }
}
