//! The streaming relay: upstream server-sent events go to the client event by event, as
//! they arrive, while usage, the first token and the end of the stream are observed. A stream
//! that breaks after bytes reached the client ends with an error event, never a retry.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use futures_util::stream::BoxStream;
use keygate_core::TokenCounts;
use secrecy::SecretString;
use tokio::time::Sleep;

mod capture;
mod ingest;

use self::capture::Capture;
use crate::client::{ClientError, ClientFormat};
use crate::egress::BodyError;
use crate::error::AttemptError;
use crate::health::Health;
use crate::sse::EventSplitter;
use crate::translate::ir::{ErrorKind, StreamEvent};
use crate::translate::{StreamDecoder, StreamEncoder};

/// The largest event of a stream passed on raw: a generated image, whole, in base64.
const MAX_RAW_EVENT_BYTES: usize = 64 * 1024 * 1024;

/// Generated text kept for counting when a provider reports no usage.
const TEXT_CAP: usize = 1024 * 1024;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamOutcome {
    Completed,
    /// The upstream failed after the stream had started.
    Failed(AttemptError),
    /// The client went away; the upstream request was dropped with it.
    ClientGone,
    /// keygate ended the stream (its meter said stop, as when a budget ran out), with an
    /// error event carrying `code`.
    Stopped {
        code: &'static str,
    },
}

/// What the relay saw, handed to its `on_end` callback exactly once.
#[derive(Debug)]
pub struct StreamEnd {
    pub outcome: StreamOutcome,
    /// Usage as the provider reported it.
    pub reported: Option<TokenCounts>,
    /// The generated text, when the provider reported no usage (for counting off the path).
    pub text: String,
    pub first_token: Option<Duration>,
    pub elapsed: Duration,
    /// For a client of the Responses API, the finished response object (JSON) the stream
    /// ended with.
    pub response: Option<String>,
    /// Every byte of a completed stream as the client gets it, when [`Relay::capture`] asked
    /// for them and they stayed within its bound.
    pub sent: Option<bytes::Bytes>,
}

type OnEnd = Box<dyn FnOnce(StreamEnd) + Send>;

/// Told the bytes of output generated so far; `false` ends the stream.
type MeterFn = Box<dyn FnMut(u64) -> bool + Send>;

/// A meter on a stream's output, and what the client is told when it stops the stream.
struct Meter {
    allow: MeterFn,
    code: &'static str,
    message: String,
    /// Output bytes so far (text, tool names and arguments), not capped.
    output: u64,
}

/// Decrements the deployment's in-flight count when the stream is over.
#[derive(Debug)]
pub(crate) struct InFlight(pub Arc<Health>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// How upstream events become the client's.
#[derive(Debug)]
pub(crate) enum Codec {
    /// OpenAI to OpenAI: events forwarded as they are, read for usage. The usage-only
    /// chunk that keygate asked for and the client did not is dropped.
    OpenAiPassthrough { drop_usage_only: bool },
    /// Events read into common events, then forwarded as they are (no encoder: the client
    /// speaks the upstream's format) or written in the client's format.
    Decoded(Box<Decoded>),
    /// Bytes forwarded as they come: audio, or (`events`) the events of an image or a
    /// transcription stream, read only for the usage one of them carries. These streams have
    /// no end marker: the upstream's end of body completes them.
    Raw { events: bool },
}

#[derive(Debug)]
pub(crate) struct Decoded {
    pub decoder: StreamDecoder,
    pub encoder: Option<StreamEncoder>,
    /// Reused between events.
    pub events: Vec<StreamEvent>,
}

/// A relayed stream of SSE bytes; the client's response body.
pub struct Relay {
    upstream: BoxStream<'static, Result<Bytes, BodyError>>,
    splitter: EventSplitter,
    ready: VecDeque<Bytes>,
    gap: Duration,
    gap_timer: Pin<Box<Sleep>>,
    deadline: Pin<Box<Sleep>>,
    codec: Codec,
    /// The client's format, for keygate's own error event.
    client: ClientFormat,
    reported: Option<TokenCounts>,
    text: String,
    /// Output bytes read since the meter last looked.
    output_seen: usize,
    started: Instant,
    first_token: Option<Duration>,
    /// Whether an event with data (not only comments) arrived.
    saw_data: bool,
    /// Whether the upstream sent an error object in the stream.
    upstream_error: bool,
    /// The class of an upstream error that came before any output.
    early_error: Option<ErrorKind>,
    /// The deployment's credential, scrubbed from the upstream's error events.
    credential: Option<SecretString>,
    done: bool,
    /// Whether the client's stream is over.
    finished: bool,
    /// Whether the outcome was reported.
    ended: bool,
    in_flight: InFlight,
    on_end: Option<OnEnd>,
    meter: Option<Meter>,
    /// The bytes sent to the client, kept (up to a bound) for an answer cache.
    capture: Option<Capture>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("done", &self.done)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

pub(crate) struct RelayParts {
    pub upstream: BoxStream<'static, Result<Bytes, BodyError>>,
    pub gap: Duration,
    pub deadline: Instant,
    pub codec: Codec,
    pub client: ClientFormat,
    pub credential: Option<SecretString>,
    pub started: Instant,
    pub in_flight: InFlight,
}

impl Relay {
    pub(crate) fn new(parts: RelayParts) -> Self {
        Self {
            upstream: parts.upstream,
            // An image stream's events carry whole images.
            splitter: match parts.codec {
                Codec::Raw { events: true } => EventSplitter::with_limit(MAX_RAW_EVENT_BYTES),
                _ => EventSplitter::new(),
            },
            ready: VecDeque::new(),
            gap: parts.gap,
            gap_timer: Box::pin(tokio::time::sleep(parts.gap)),
            deadline: Box::pin(tokio::time::sleep_until(parts.deadline.into())),
            codec: parts.codec,
            client: parts.client,
            reported: None,
            text: String::new(),
            output_seen: 0,
            started: parts.started,
            first_token: None,
            saw_data: false,
            upstream_error: false,
            early_error: None,
            credential: parts.credential,
            done: false,
            finished: false,
            ended: false,
            capture: None,
            in_flight: parts.in_flight,
            on_end: None,
            meter: None,
        }
    }

    /// Meters the stream's output: after each piece, `allow` is told the bytes of output so
    /// far, and when it answers `false` the stream ends with an error event carrying `code`
    /// and `message` in the client's format (as when a budget runs out mid-stream).
    pub fn meter(
        &mut self,
        code: &'static str,
        message: String,
        allow: impl FnMut(u64) -> bool + Send + 'static,
    ) {
        self.meter = Some(Meter {
            allow: Box::new(allow),
            code,
            message,
            output: 0,
        });
    }

    /// Counts new output for the meter; `false` when the meter stops the stream.
    fn metered(&mut self, bytes: usize) -> bool {
        let Some(meter) = &mut self.meter else {
            return true;
        };
        if bytes == 0 {
            return true;
        }
        meter.output = meter
            .output
            .saturating_add(u64::try_from(bytes).unwrap_or(u64::MAX));
        (meter.allow)(meter.output)
    }

    /// Ends the stream for the meter: what was already generated goes out, then the error.
    fn stop(&mut self) {
        if self.finished {
            return;
        }
        let Some(meter) = &self.meter else { return };
        let code = meter.code;
        self.ready
            .push_back(stop_event(code, &meter.message, self.client));
        self.finished = true;
        self.end(StreamOutcome::Stopped { code });
    }

    /// Calls `on_end` once when the stream ends, however it ends.
    /// Keeps the bytes the client is sent, up to `limit`, for [`StreamEnd::sent`].
    pub fn capture(&mut self, limit: usize) {
        self.capture = Some(Capture {
            limit,
            bytes: Some(bytes::BytesMut::new()),
        });
    }

    pub fn on_end(&mut self, on_end: impl FnOnce(StreamEnd) + Send + 'static) {
        self.on_end = Some(Box::new(on_end));
    }

    /// Waits for the first event with data, before anything is sent to the client: until
    /// then a failure may still be retried elsewhere.
    pub(crate) async fn prime(&mut self) -> Result<(), AttemptError> {
        use futures_util::StreamExt;
        while !self.saw_data && !self.done {
            match self.upstream.next().await {
                Some(Ok(chunk)) => self.ingest(&chunk)?,
                Some(Err(_)) | None => return Err(AttemptError::Interrupted),
            }
        }
        // An overload or an outage reported before anything was generated may be retried
        // elsewhere: nothing has reached the client yet.
        if let Some(kind) = self.early_error {
            let status = match kind {
                ErrorKind::RateLimited => Some(429),
                ErrorKind::Overloaded => Some(529),
                ErrorKind::Api => Some(500),
                _ => None,
            };
            if let Some(status) = status {
                return Err(AttemptError::Status {
                    status,
                    code: None,
                    retry_after: None,
                });
            }
        }
        let next = tokio::time::Instant::now() + self.gap;
        self.gap_timer.as_mut().reset(next);
        Ok(())
    }

    /// Ends the client's stream, with an error event when it broke.
    fn finish(&mut self, outcome: StreamOutcome) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.end(outcome);
    }

    /// Reports how the request went, once: to the deployment's health and to `on_end`. A
    /// stream is over for the client at its end marker (`[DONE]`, `message_stop`), even while
    /// keygate reads on to the end of the upstream body so that its connection can be reused.
    fn end(&mut self, outcome: StreamOutcome) {
        if self.ended {
            return;
        }
        self.ended = true;
        // After the upstream's own error event its stream ends without an end marker: the
        // client already has the error, and a second one (a "broken connection") would be
        // false.
        let outcome = match outcome {
            StreamOutcome::Completed | StreamOutcome::Failed(_) if self.upstream_error => {
                StreamOutcome::Failed(AttemptError::StreamError)
            }
            other => other,
        };
        if let StreamOutcome::Failed(err) = &outcome
            && *err != AttemptError::StreamError
        {
            if err.is_fault() {
                self.in_flight.0.faulted(Instant::now());
            }
            self.ready.push_back(error_event(err, self.client));
        }
        if let Some(tokens) = self.reported {
            self.in_flight.0.add_tokens(
                Instant::now(),
                tokens.prompt.saturating_add(tokens.completion),
            );
        }
        if let Some(on_end) = self.on_end.take() {
            let response = match &self.codec {
                Codec::Decoded(decoded) if self.client == ClientFormat::Responses => decoded
                    .encoder
                    .as_ref()
                    .and_then(StreamEncoder::response)
                    .or_else(|| decoded.decoder.response())
                    .map(str::to_owned),
                _ => None,
            };
            // Reported at the end marker, before the last bytes go out: they are counted too.
            let sent = match (&outcome, self.capture.take()) {
                (StreamOutcome::Completed, Some(mut capture)) => {
                    for chunk in &self.ready {
                        capture.add(chunk);
                    }
                    capture.bytes.map(bytes::BytesMut::freeze)
                }
                _ => None,
            };
            on_end(StreamEnd {
                response,
                sent,
                outcome,
                reported: self.reported,
                text: if self.reported.is_some() {
                    String::new()
                } else {
                    std::mem::take(&mut self.text)
                },
                first_token: self.first_token,
                elapsed: self.started.elapsed(),
            });
        }
    }
}

/// The event that tells a client the stream broke, in the client's format.
fn error_event(err: &AttemptError, client: ClientFormat) -> Bytes {
    let code = match err {
        AttemptError::InvalidResponse => "upstream_invalid_response",
        _ => "upstream_stream_interrupted",
    };
    let message = format!("the upstream stream broke off: {}", err.summary());
    Bytes::from(client.error_event(&ClientError {
        kind: ErrorKind::Api,
        code,
        message: &message,
        param: None,
    }))
}

/// The event that tells a client keygate ended its stream, in the client's format.
fn stop_event(code: &str, message: &str, client: ClientFormat) -> Bytes {
    Bytes::from(client.error_event(&ClientError {
        kind: ErrorKind::RateLimited,
        code,
        message,
        param: None,
    }))
}

impl Stream for Relay {
    type Item = Result<Bytes, std::io::Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if this.done {
                // Whole from its end marker on (as when dropped): reported before the last
                // bytes go out, so what the end hook does (keeping a Responses answer) is done
                // before the client reads them.
                this.end(StreamOutcome::Completed);
            }
            if let Some(bytes) = this.ready.pop_front() {
                if let Some(capture) = &mut this.capture {
                    capture.add(&bytes);
                }
                return Poll::Ready(Some(Ok(bytes)));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            if this.done {
                // The client has everything: wait (briefly) for the upstream's end of body so
                // its connection goes back to the pool.
                if this.gap_timer.as_mut().poll(cx).is_ready()
                    || this.deadline.as_mut().poll(cx).is_ready()
                {
                    this.finished = true;
                    continue;
                }
            } else if this.deadline.as_mut().poll(cx).is_ready() {
                let total = this.started.elapsed();
                this.finish(StreamOutcome::Failed(AttemptError::TotalTimeout(total)));
                continue;
            } else if this.gap_timer.as_mut().poll(cx).is_ready() {
                this.finish(StreamOutcome::Failed(AttemptError::ChunkGap(this.gap)));
                continue;
            }
            match this.upstream.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(chunk))) => {
                    let next = tokio::time::Instant::now() + this.gap;
                    this.gap_timer.as_mut().reset(next);
                    if let Err(err) = this.ingest(&chunk) {
                        this.finish(StreamOutcome::Failed(err));
                    } else {
                        let output = std::mem::take(&mut this.output_seen);
                        // A stream already at its end marker is whole: nothing to stop.
                        if !this.done && !this.metered(output) {
                            this.stop();
                        }
                    }
                }
                Poll::Ready(Some(Err(_))) => {
                    this.finish(StreamOutcome::Failed(AttemptError::Interrupted));
                }
                Poll::Ready(None) => {
                    let complete = this.upstream_ended();
                    let outcome = if complete {
                        StreamOutcome::Completed
                    } else {
                        StreamOutcome::Failed(AttemptError::Interrupted)
                    };
                    this.finish(outcome);
                }
            }
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.end(if self.done {
            StreamOutcome::Completed
        } else {
            StreamOutcome::ClientGone
        });
    }
}

#[cfg(test)]
mod tests;
