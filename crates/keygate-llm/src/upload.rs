//! A multipart upload (OpenAI's `/v1/audio/transcriptions`), read only as far as its model:
//! the small parts before the file are held, then the file and whatever follows it go
//! upstream as they arrive, the model part rewritten for the deployment. A form that puts the
//! file before the model (as `curl -F file=@… -F model=…` does) is held in memory until the
//! model is known, up to a smaller bound; the SDKs send the model first.
//!
//! The form is written again rather than copied: keygate's own boundary, and each part's
//! headers made from what keygate read of them (its name, file name and content type), so an
//! upstream parser cannot read a part differently than keygate did. After the file, a second
//! `model` or a `stream` part is refused.
//!
//! A streamed upload can be sent once: it goes to one deployment, and a failure is not
//! retried elsewhere ([`Upload::take_body`]). When the client's side of it breaks (too large,
//! malformed, idle, gone) the upload says so ([`Upload::fault`]): that is the client's fault,
//! not the deployment's.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use multer::{Constraints, Field, Multipart, SizeLimit};

mod streaming;

use self::streaming::{Step, Streaming};
use crate::egress;

/// The largest part other than a file (a prompt, a language) that is read before streaming.
const MAX_TEXT_PART: usize = 64 * 1024;
/// The most parts read before the file.
const MAX_PARTS: usize = 64;
/// Room in a body for the form around its file: the other parts and every part's headers.
pub const FORM_SLACK: usize = 1024 * 1024;
/// Audio bytes a second, for an estimate of a file's length when its transcript reports
/// none: 128 kbit/s, a common rate for compressed speech.
const AUDIO_BYTES_PER_SECOND: u64 = 16_000;

/// The seconds of audio `bytes` of a file are taken to hold, rounded up.
pub fn estimated_seconds(bytes: u64) -> u64 {
    bytes.div_ceil(AUDIO_BYTES_PER_SECOND)
}

/// How large an upload may be, and how long its client may pause.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadLimits {
    /// The file's bytes.
    pub file: usize,
    /// The most of a file held in memory while the model is not yet known.
    pub held: usize,
    /// The longest pause between the client's chunks once the upload streams.
    pub idle: Duration,
}

/// Why an upload was refused before anything went upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the body is not multipart/form-data with a boundary")]
    NotMultipart,
    #[error("the multipart body is malformed")]
    Malformed,
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
}

impl UploadError {
    /// The field at fault, for OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::NotMultipart | Self::Malformed => Some("body"),
            Self::TooLarge { .. } => None,
        }
    }
}

/// Why an upload broke off while it streamed upstream: the client's doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UploadFault {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the multipart body is malformed: {0}")]
    Malformed(&'static str),
    #[error("the upload paused for longer than allowed")]
    Idle,
    #[error("the upload broke off")]
    Broken,
}

/// A part read whole.
#[derive(Debug, Clone)]
struct Part {
    name: String,
    file_name: Option<String>,
    content_type: Option<String>,
    data: Bytes,
}

/// What is left to stream once the model is known.
struct Rest {
    multipart: Multipart<'static>,
    /// The file part being read when the model was found, its head not yet sent.
    current: Option<Field<'static>>,
}

/// An upload read as far as its model.
pub struct Upload {
    pub model: String,
    /// The form's `stream` part: whether the answer is a stream of events.
    pub stream: bool,
    /// The body's length as the client declared it, for the estimate of its audio.
    pub declared_bytes: Option<u64>,
    /// keygate's boundary for the form it sends.
    boundary: String,
    /// The parts before the streaming part, in order (the model's among them).
    held: Vec<Part>,
    rest: Mutex<Option<Rest>>,
    limits: UploadLimits,
    /// Bytes of files read so far.
    file_bytes: Arc<AtomicU64>,
    fault: Arc<Mutex<Option<UploadFault>>>,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("model", &self.model)
            .field("stream", &self.stream)
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

/// A header parameter's value as browsers write it: quotes and line breaks percent-encoded.
fn quoted(value: &str) -> String {
    value
        .replace('"', "%22")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// A part's head, written from what was read of it.
fn part_head(
    boundary: &str,
    name: &str,
    file_name: Option<&str>,
    content_type: Option<&str>,
) -> Bytes {
    let mut head = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"",
        quoted(name)
    );
    if let Some(file_name) = file_name {
        head.push_str(&format!("; filename=\"{}\"", quoted(file_name)));
    }
    head.push_str("\r\n");
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    Bytes::from(head)
}

fn field_head(boundary: &str, field: &Field<'_>) -> Option<Bytes> {
    let content_type = field.content_type().map(ToString::to_string);
    Some(part_head(
        boundary,
        field.name()?,
        field.file_name(),
        content_type.as_deref(),
    ))
}

fn refused(err: &multer::Error, limit: usize) -> UploadError {
    match err {
        multer::Error::StreamSizeExceeded { .. } => UploadError::TooLarge { limit },
        multer::Error::FieldSizeExceeded { .. } => UploadError::Field {
            field: "body",
            reason: "a part other than the file is larger than 64 KiB",
        },
        _ => UploadError::Malformed,
    }
}

/// A boundary no content holds by chance: 128 random bits.
fn fresh_boundary() -> String {
    format!(
        "keygate-{:016x}{:016x}",
        fastrand::u64(..),
        fastrand::u64(..)
    )
}

impl Upload {
    /// Reads `body` (of `content_type`) up to its model, within `limits`.
    pub async fn read<S, E>(
        content_type: &str,
        body: S,
        limits: UploadLimits,
    ) -> Result<Self, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let client_boundary =
            multer::parse_boundary(content_type).map_err(|_| UploadError::NotMultipart)?;
        let limit = limits.file;
        let whole = u64::try_from(limit.saturating_add(FORM_SLACK)).unwrap_or(u64::MAX);
        let constraints = Constraints::new().size_limit(
            SizeLimit::new()
                .whole_stream(whole)
                .for_field("model", MAX_TEXT_PART as u64)
                .for_field("stream", MAX_TEXT_PART as u64),
        );
        let mut multipart = Multipart::with_constraints(body, client_boundary, constraints);
        let mut held = Vec::new();
        let mut model: Option<String> = None;
        let mut stream: Option<bool> = None;
        let mut current = None;
        let mut saw_file = false;
        let mut file_bytes = 0u64;
        while let Some(mut field) = multipart
            .next_field()
            .await
            .map_err(|err| refused(&err, limit))?
        {
            if held.len() >= MAX_PARTS {
                return Err(UploadError::Field {
                    field: "body",
                    reason: "more than 64 parts",
                });
            }
            let Some(name) = field.name().map(str::to_owned) else {
                return Err(UploadError::Field {
                    field: "body",
                    reason: "a part without a name",
                });
            };
            let is_file = field.file_name().is_some();
            if is_file && model.is_some() {
                // The model is known: the file streams from here.
                current = Some(field);
                saw_file = true;
                break;
            }
            saw_file |= is_file;
            // Text parts are small; a file before the model is held whole, within its bound.
            let bound = if is_file {
                limits.held.min(limit)
            } else {
                MAX_TEXT_PART
            };
            let mut data = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(|err| refused(&err, limit))? {
                if data.len() + chunk.len() > bound {
                    return Err(match is_file {
                        true if bound < limit => UploadError::Field {
                            field: "model",
                            reason: "must come before a file this large",
                        },
                        true => UploadError::TooLarge { limit },
                        false => UploadError::Field {
                            field: "body",
                            reason: "a part other than the file is larger than 64 KiB",
                        },
                    });
                }
                data.extend_from_slice(&chunk);
            }
            if is_file {
                file_bytes += data.len() as u64;
            }
            let data = data.freeze();
            let text = || std::str::from_utf8(&data).ok().map(str::trim);
            match (name.as_str(), is_file) {
                ("model" | "stream", true) => {
                    return Err(UploadError::Field {
                        field: if name == "model" { "model" } else { "stream" },
                        reason: "must be text, not a file",
                    });
                }
                ("model", false) => {
                    if model.is_some() {
                        return Err(UploadError::Field {
                            field: "model",
                            reason: "given twice",
                        });
                    }
                    let value = text().filter(|m| !m.is_empty() && m.len() <= 256).ok_or(
                        UploadError::Field {
                            field: "model",
                            reason: "1-256 characters",
                        },
                    )?;
                    model = Some(value.to_owned());
                }
                ("stream", false) => {
                    if stream.is_some() {
                        return Err(UploadError::Field {
                            field: "stream",
                            reason: "given twice",
                        });
                    }
                    stream = Some(match text() {
                        Some("true") => true,
                        Some("false") => false,
                        _ => {
                            return Err(UploadError::Field {
                                field: "stream",
                                reason: "must be true or false",
                            });
                        }
                    });
                }
                _ => {}
            }
            held.push(Part {
                file_name: field.file_name().map(str::to_owned),
                content_type: field.content_type().map(ToString::to_string),
                name,
                data,
            });
        }
        let model = model.ok_or(UploadError::Field {
            field: "model",
            reason: "required",
        })?;
        if !saw_file {
            return Err(UploadError::Field {
                field: "file",
                reason: "required",
            });
        }
        Ok(Self {
            model,
            stream: stream.unwrap_or(false),
            declared_bytes: None,
            boundary: fresh_boundary(),
            held,
            rest: Mutex::new(Some(Rest { multipart, current })),
            limits,
            file_bytes: Arc::new(AtomicU64::new(file_bytes)),
            fault: Arc::new(Mutex::new(None)),
        })
    }

    /// The `Content-Type` the upstream is sent.
    pub fn content_type(&self) -> String {
        format!("multipart/form-data; boundary={}", self.boundary)
    }

    /// The body for a deployment of `model`; `None` once it was taken (an upload goes
    /// upstream once).
    pub fn take_body(&self, model: &str) -> Option<egress::Body> {
        let rest = self
            .rest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()?;
        let mut prefix = BytesMut::new();
        for part in &self.held {
            prefix.extend_from_slice(&part_head(
                &self.boundary,
                &part.name,
                part.file_name.as_deref(),
                part.content_type.as_deref(),
            ));
            if part.name == "model" {
                prefix.extend_from_slice(model.as_bytes());
            } else {
                prefix.extend_from_slice(&part.data);
            }
            prefix.extend_from_slice(b"\r\n");
        }
        let state = Streaming {
            rest,
            boundary: self.boundary.clone(),
            step: Step::Prefix(prefix.freeze()),
            limits: self.limits,
            file_bytes: self.file_bytes.clone(),
            fault: self.fault.clone(),
        };
        Some(egress::Body::streamed(futures_util::stream::try_unfold(
            state,
            Streaming::next,
        )))
    }

    /// Whether the body was taken to be sent.
    pub fn taken(&self) -> bool {
        self.rest
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Why the client's side of the upload broke off, if it did.
    pub fn fault(&self) -> Option<UploadFault> {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes of files read so far (all of them, once the upload is sent).
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes.load(Ordering::Relaxed)
    }

    /// The seconds of audio the upload is taken to hold before it is sent: from its declared
    /// length, or its bound.
    pub fn expected_seconds(&self) -> u64 {
        let bytes = self
            .declared_bytes
            .unwrap_or(self.limits.file as u64)
            .min(self.limits.file as u64);
        estimated_seconds(bytes)
    }
}

#[cfg(test)]
mod tests;
