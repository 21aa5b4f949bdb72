//! Reading what the upstream sends: bytes split into events and, by the codec, forwarded as
//! they are (read for usage), decoded into common events and written in the client's format,
//! or passed on raw; and what the relay learns on the way (usage, the first token, the end).

use std::time::{Duration, Instant};

use bytes::Bytes;
use keygate_core::TokenCounts;

use super::{Codec, Decoded, Relay, TEXT_CAP};
use crate::error::AttemptError;
use crate::translate::ir::{ErrorKind, StreamEvent};
use crate::usage::read_chunk;

impl Relay {
    /// Splits new bytes into events and queues those to forward.
    pub(super) fn ingest(&mut self, chunk: &Bytes) -> Result<(), AttemptError> {
        if let Codec::Raw { events: false } = self.codec {
            self.saw_data = true;
            if self.first_token.is_none() {
                self.first_token = Some(self.started.elapsed());
            }
            self.ready.push_back(chunk.clone());
            return Ok(());
        }
        self.splitter
            .push(chunk)
            .map_err(|_| AttemptError::InvalidResponse)?;
        let drop_usage_only = match &self.codec {
            Codec::OpenAiPassthrough { drop_usage_only } => *drop_usage_only,
            Codec::Decoded { .. } => return self.ingest_decoded(),
            Codec::Raw { .. } => return self.ingest_events(),
        };
        while let Some(event) = self
            .splitter
            .next_event()
            .map_err(|_| AttemptError::InvalidResponse)?
        {
            let Some(data) = event.data() else {
                // A comment or keep-alive: forwarded as is.
                self.ready.push_back(event.raw);
                continue;
            };
            if data.as_ref() == b"[DONE]" {
                self.done = true;
                self.ready.push_back(event.raw);
                continue;
            }
            let chunk = read_chunk(&data, &mut self.text, TEXT_CAP)
                .map_err(|_| AttemptError::InvalidResponse)?;
            self.saw_data = true;
            self.output_seen += chunk.output_bytes;
            if chunk.is_error {
                // The upstream's own error (a content filter, an overload) goes to the client
                // as it was sent, but for an echoed credential; the outcome records it.
                self.upstream_error = true;
                if self.first_token.is_none() {
                    self.early_error = Some(ErrorKind::Api);
                }
                self.ready.push_back(crate::egress::scrub_body(
                    event.raw,
                    self.credential.as_ref(),
                ));
                continue;
            }
            if chunk.usage.is_some() {
                self.reported = chunk.usage;
            }
            if chunk.has_output && self.first_token.is_none() {
                self.first_token = Some(self.started.elapsed());
            }
            if chunk.usage_only && drop_usage_only {
                continue;
            }
            self.ready.push_back(event.raw);
        }
        Ok(())
    }

    /// `ingest` for events forwarded as they are, read for their usage.
    fn ingest_events(&mut self) -> Result<(), AttemptError> {
        while let Some(event) = self
            .splitter
            .next_event()
            .map_err(|_| AttemptError::InvalidResponse)?
        {
            if let Some(data) = event.data() {
                self.saw_data = true;
                if crate::usage::is_error_event(&data) {
                    // Passed on (scrubbed) for the client to read; the outcome records it.
                    self.upstream_error = true;
                    if self.first_token.is_none() {
                        self.early_error = Some(ErrorKind::Api);
                    }
                    let raw = crate::egress::scrub_body(event.raw, self.credential.as_ref());
                    self.ready.push_back(raw);
                    continue;
                }
                if self.first_token.is_none() {
                    self.first_token = Some(self.started.elapsed());
                }
                if let Ok(Some(usage)) = crate::usage::from_body(&data) {
                    self.reported = Some(usage);
                }
            }
            self.ready.push_back(event.raw);
        }
        Ok(())
    }

    /// `ingest` for a decoded stream.
    fn ingest_decoded(&mut self) -> Result<(), AttemptError> {
        let Codec::Decoded(decoded) = &mut self.codec else {
            return Ok(());
        };
        while let Some(event) = self
            .splitter
            .next_event()
            .map_err(|_| AttemptError::InvalidResponse)?
        {
            let Some(data) = event.data() else {
                // A comment or keep-alive means the same in every format.
                self.ready.push_back(event.raw);
                continue;
            };
            let Decoded {
                decoder,
                encoder,
                events,
            } = &mut **decoded;
            events.clear();
            if decoder.push(&data, events).is_err() {
                if encoder.is_some() {
                    return Err(AttemptError::InvalidResponse);
                }
                // Passed through, the event is the client's to read; keygate only misses
                // what it would have learnt from it.
                self.saw_data = true;
                self.ready.push_back(event.raw);
                continue;
            }
            self.saw_data = true;
            let error = events.iter().find_map(|e| match e {
                StreamEvent::Error(error) => Some(error.kind),
                _ => None,
            });
            if let Some(kind) = error
                && self.first_token.is_none()
            {
                self.early_error = Some(kind);
            }
            observe(
                events,
                &mut Observed {
                    reported: &mut self.reported,
                    text: &mut self.text,
                    output: &mut self.output_seen,
                    first_token: &mut self.first_token,
                    started: self.started,
                    done: &mut self.done,
                    upstream_error: &mut self.upstream_error,
                },
            );
            let bytes = match encoder {
                None => event.raw,
                Some(encoder) => {
                    let mut out = String::new();
                    for event in events.iter() {
                        encoder.encode(event, &mut out);
                    }
                    Bytes::from(out)
                }
            };
            if bytes.is_empty() {
                continue;
            }
            self.ready.push_back(if error.is_some() {
                crate::egress::scrub_body(bytes, self.credential.as_ref())
            } else {
                bytes
            });
        }
        Ok(())
    }

    /// The upstream's body ended: whether the stream was complete. A format without an end
    /// marker says its last events now.
    pub(super) fn upstream_ended(&mut self) -> bool {
        let decoded = match &mut self.codec {
            Codec::Decoded(decoded) => decoded,
            Codec::Raw { .. } => return true,
            Codec::OpenAiPassthrough { .. } => return self.done,
        };
        let Decoded {
            decoder,
            encoder,
            events,
        } = &mut **decoded;
        events.clear();
        let complete = decoder.end(events);
        observe(
            events,
            &mut Observed {
                reported: &mut self.reported,
                text: &mut self.text,
                output: &mut self.output_seen,
                first_token: &mut self.first_token,
                started: self.started,
                done: &mut self.done,
                upstream_error: &mut self.upstream_error,
            },
        );
        let mut out = String::new();
        for event in events.iter() {
            // Passed through (no encoder), the upstream's own bytes were the whole stream.
            if let Some(encoder) = encoder {
                encoder.encode(event, &mut out);
            }
        }
        if !out.is_empty() {
            self.ready.push_back(Bytes::from(out));
        }
        complete
    }
}

/// What the relay learns from common events.
struct Observed<'a> {
    reported: &'a mut Option<TokenCounts>,
    text: &'a mut String,
    output: &'a mut usize,
    first_token: &'a mut Option<Duration>,
    started: Instant,
    done: &'a mut bool,
    upstream_error: &'a mut bool,
}

fn observe(events: &[StreamEvent], seen: &mut Observed<'_>) {
    for event in events {
        let piece = match event {
            StreamEvent::Text { text, .. } => text.as_str(),
            StreamEvent::ToolStart { name, .. } => name.as_str(),
            StreamEvent::ToolArguments { json, .. } => json.as_str(),
            StreamEvent::Finish { usage, .. } => {
                if let Some(usage) = usage {
                    *seen.reported = Some(TokenCounts::from(*usage));
                }
                continue;
            }
            StreamEvent::Error(_) => {
                *seen.upstream_error = true;
                continue;
            }
            StreamEvent::End => {
                *seen.done = true;
                continue;
            }
            _ => continue,
        };
        *seen.output += piece.len();
        if !piece.is_empty() && seen.first_token.is_none() {
            *seen.first_token = Some(seen.started.elapsed());
        }
        if seen.text.len() + piece.len() <= TEXT_CAP {
            seen.text.push_str(piece);
        }
    }
}
