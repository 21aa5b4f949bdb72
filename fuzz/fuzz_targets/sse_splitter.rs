//! The server-sent-events splitter on arbitrary bytes, cut into arbitrary chunks.
//!
//! Input: one byte `n`, then `n % 16` chunk lengths (one byte each), then the stream. The
//! stream is pushed in chunks of those lengths, the rest in one last chunk, and every complete
//! event is drained after each push.

#![no_main]

use keygate_llm::sse::EventSplitter;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n % 16).min(rest.len());
    let (lengths, input) = rest.split_at(n);

    let mut splitter = EventSplitter::new();
    let mut events = Vec::new();
    let mut drain = |splitter: &mut EventSplitter| -> bool {
        loop {
            match splitter.next_event() {
                Ok(Some(event)) => {
                    // The data of an event is drawn from its own bytes only.
                    if let Some(data) = event.data() {
                        assert!(data.len() <= event.raw.len());
                    }
                    events.extend_from_slice(&event.raw);
                }
                Ok(None) => return true,
                Err(_) => return false,
            }
        }
    };

    let mut start = 0;
    let sizes = lengths
        .iter()
        .map(|&len| usize::from(len))
        .chain(std::iter::once(input.len()));
    for len in sizes {
        let end = (start + len).min(input.len());
        if splitter.push(&input[start..end]).is_err() || !drain(&mut splitter) {
            return;
        }
        start = end;
    }

    // Events come out in order, each exactly as sent: together with what is still pending
    // they are the input.
    assert!(
        input.starts_with(&events),
        "events are not a prefix of the input"
    );
    let mut whole = events.clone();
    whole.extend_from_slice(splitter.pending());
    assert_eq!(whole, input);
});
