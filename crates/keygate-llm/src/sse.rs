//! An incremental splitter of server-sent events, per the WHATWG event-stream rules: lines
//! end in CRLF, LF or CR, and a blank line ends an event. Events come out with their raw bytes,
//! so a relay forwards exactly what the upstream sent.

use std::borrow::Cow;

use bytes::{Bytes, BytesMut};

/// Largest event accepted; more without a blank line is not an event stream.
pub const MAX_EVENT_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an event of the upstream stream is larger than allowed")]
pub struct EventTooLarge;

/// Splits a byte stream into events.
#[derive(Debug)]
pub struct EventSplitter {
    buf: BytesMut,
    /// Where scanning resumes.
    pos: usize,
    /// Where the line being scanned starts.
    line_start: usize,
    /// The largest event accepted.
    limit: usize,
}

impl Default for EventSplitter {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

/// One event: its raw bytes, blank line included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub raw: Bytes,
}

impl Event {
    /// The event's data: its `data` fields joined by newlines, or `None` when it has none
    /// (a comment or keep-alive).
    pub fn data(&self) -> Option<Cow<'_, [u8]>> {
        let mut found: Option<Cow<'_, [u8]>> = None;
        for line in lines(&self.raw) {
            let value = if line == b"data" {
                &b""[..]
            } else if let Some(rest) = line.strip_prefix(b"data:") {
                rest.strip_prefix(b" ").unwrap_or(rest)
            } else {
                continue;
            };
            found = Some(match found {
                None => Cow::Borrowed(value),
                Some(previous) => {
                    let mut joined = previous.into_owned();
                    joined.push(b'\n');
                    joined.extend_from_slice(value);
                    Cow::Owned(joined)
                }
            });
        }
        found
    }
}

/// The lines of an event, without their terminators.
fn lines(raw: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = raw;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = rest.iter().position(|&c| c == b'\n' || c == b'\r')?;
        let line = &rest[..end];
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
            2
        } else {
            1
        };
        rest = &rest[end + skip..];
        Some(line)
    })
}

impl EventSplitter {
    pub fn new() -> Self {
        Self::default()
    }

    /// A splitter of events up to `limit` bytes (an image's, whole in one event).
    pub fn with_limit(limit: usize) -> Self {
        Self {
            buf: BytesMut::new(),
            pos: 0,
            line_start: 0,
            limit,
        }
    }

    /// Adds bytes from the stream.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), EventTooLarge> {
        if self.buf.len() > self.limit {
            return Err(EventTooLarge);
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// The next complete event, if the bytes so far hold one.
    pub fn next_event(&mut self) -> Result<Option<Event>, EventTooLarge> {
        let bytes = &self.buf[..];
        let mut i = self.pos;
        while i < bytes.len() {
            let next_line = match bytes[i] {
                b'\n' => i + 1,
                b'\r' if i + 1 == bytes.len() => {
                    // A CR at the end may be half of a CRLF: wait for the next byte.
                    break;
                }
                b'\r' if bytes[i + 1] == b'\n' => i + 2,
                b'\r' => i + 1,
                _ => {
                    i += 1;
                    continue;
                }
            };
            let blank = i == self.line_start;
            self.line_start = next_line;
            i = next_line;
            if blank {
                let raw = self.buf.split_to(next_line).freeze();
                self.pos = 0;
                self.line_start = 0;
                return Ok(Some(Event { raw }));
            }
        }
        self.pos = i;
        if self.buf.len() > self.limit {
            return Err(EventTooLarge);
        }
        Ok(None)
    }

    /// Bytes received that do not (yet) make an event.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn split_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut splitter = EventSplitter::new();
        let mut events = Vec::new();
        for chunk in chunks {
            splitter.push(chunk).unwrap();
            while let Some(event) = splitter.next_event().unwrap() {
                events.push(event.raw.to_vec());
            }
        }
        (events, splitter.pending().to_vec())
    }

    #[test]
    fn splits_on_blank_lines_with_any_line_ending() {
        let input = b"data: one\n\ndata: two\r\n\r\n: keep-alive\r\rdata: a\ndata: b\n\nda";
        let (events, rest) = split_all(&[input]);
        assert_eq!(events.len(), 4);
        assert_eq!(events[1], b"data: two\r\n\r\n");
        let last = Event {
            raw: Bytes::from(events[3].clone()),
        };
        assert_eq!(last.data().unwrap().as_ref(), b"a\nb");
        let comment = Event {
            raw: Bytes::from(events[2].clone()),
        };
        assert_eq!(comment.data(), None);
        assert_eq!(rest, b"da");
    }

    #[test]
    fn a_cr_at_a_chunk_end_waits_for_its_lf() {
        let (events, _) = split_all(&[b"data: x\r", b"\n\r", b"\n"]);
        assert_eq!(events, vec![b"data: x\r\n\r\n".to_vec()]);
    }

    #[test]
    fn refuses_an_endless_event() {
        let mut splitter = EventSplitter::new();
        let chunk = vec![b'x'; 64 * 1024];
        let mut refused = false;
        for _ in 0..100 {
            if splitter.push(&chunk).is_err() || splitter.next_event().is_err() {
                refused = true;
                break;
            }
        }
        assert!(refused);
    }

    proptest! {
        #[test]
        fn chunking_never_changes_the_events(
            events in proptest::collection::vec("[a-z :{}\"]{0,20}", 0..8),
            endings in proptest::collection::vec(0..3usize, 8),
            cuts in proptest::collection::vec(0..200usize, 0..6),
        ) {
            let mut input = Vec::new();
            for (i, text) in events.iter().enumerate() {
                let end: &[u8] = [&b"\n"[..], b"\r\n", b"\r"][endings[i % endings.len()]];
                input.extend_from_slice(b"data: ");
                input.extend_from_slice(text.as_bytes());
                input.extend_from_slice(end);
                input.extend_from_slice(end);
            }
            let whole = split_all(&[&input]);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(input.len())).collect();
            cuts.sort_unstable();
            let mut chunks: Vec<&[u8]> = Vec::new();
            let mut start = 0;
            for cut in cuts {
                chunks.push(&input[start..cut]);
                start = cut;
            }
            chunks.push(&input[start..]);
            prop_assert_eq!(split_all(&chunks), whole);
        }
    }
}
