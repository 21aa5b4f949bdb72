//! An upstream's event stream, translated as the relay does: split into events, each event's
//! data read by the upstream format's decoder, the common events written by a client format's
//! encoder, then the end of the body. Nothing may panic.
//!
//! Input: one byte choosing the upstream format (`% 3`), the client format (`/ 3 % 3`) and
//! whether the client asked for usage (`/ 9 % 2`), then the upstream's bytes.

#![no_main]

use keygate_llm::sse::EventSplitter;
use keygate_llm::translate::{Format, StreamDecoder, StreamEncoder};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 3] = [Format::OpenAi, Format::Anthropic, Format::Gemini];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, stream)) = data.split_first() else {
        return;
    };
    let choice = usize::from(choice);
    let upstream = FORMATS[choice % 3];
    let client = FORMATS[choice / 3 % 3];
    let include_usage = choice / 9 % 2 == 1;

    let mut splitter = EventSplitter::new();
    let mut decoder = StreamDecoder::new(upstream);
    let mut encoder = StreamEncoder::new(client, include_usage);
    let mut events = Vec::new();
    let mut out = String::new();
    if splitter.push(stream).is_err() {
        return;
    }
    while let Ok(Some(event)) = splitter.next_event() {
        let Some(data) = event.data() else { continue };
        events.clear();
        // The relay gives up on the first malformed event.
        if decoder.push(&data, &mut events).is_err() {
            return;
        }
        for event in &events {
            encoder.encode(event, &mut out);
        }
    }
    events.clear();
    decoder.end(&mut events);
    for event in &events {
        encoder.encode(event, &mut out);
    }
});
