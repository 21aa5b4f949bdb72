//! A multipart upload (OpenAI's `/v1/audio/transcriptions`), read only as far as its model:
//! the small parts before the file are held, then the file and whatever follows it go
//! upstream as they arrive, the model part rewritten for the deployment. A form that puts the
//! file before the model (as `curl -F file=@… -F model=…` does) is held in memory up to the
//! upload limit until the model is known; the SDKs send the model first.
//!
//! A streamed upload can be sent once: it goes to one deployment, and a failure is not
//! retried elsewhere ([`Upload::take_body`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};
use futures_util::Stream;
use http::HeaderMap;
use multer::{Constraints, Field, Multipart, SizeLimit};

use crate::egress;

/// The largest part other than a file (a prompt, a language) that is read before streaming.
const MAX_TEXT_PART: usize = 64 * 1024;
/// The most parts read before the file.
const MAX_PARTS: usize = 64;

/// Why an upload was refused before anything went upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UploadError {
    #[error("the body is not multipart/form-data with a boundary")]
    NotMultipart,
    #[error("the multipart body is malformed")]
    Malformed,
    #[error("the upload is larger than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("{field}: {reason}")]
    Field {
        field: &'static str,
        reason: &'static str,
    },
    #[error("the upload did not arrive in time")]
    Timeout,
}

impl UploadError {
    /// The field at fault, for OpenAI's `param`.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Self::Field { field, .. } => Some(field),
            Self::NotMultipart | Self::Malformed => Some("body"),
            Self::TooLarge { .. } | Self::Timeout => None,
        }
    }
}

/// A part read whole: its headers as they go upstream, and its content.
#[derive(Debug, Clone)]
struct Part {
    head: Bytes,
    name: Option<String>,
    data: Bytes,
}

/// What is left to stream once the model is known.
struct Rest {
    multipart: Multipart<'static>,
    /// The part being read when the model was found (the file), its head not yet sent.
    current: Option<(Bytes, Field<'static>)>,
}

/// An upload read as far as its model.
pub struct Upload {
    pub model: String,
    /// The form's `stream` part: whether the answer is a stream of events.
    pub stream: bool,
    boundary: String,
    /// The parts before the streaming part, in order (the model's among them).
    held: Vec<Part>,
    rest: Mutex<Option<Rest>>,
    limit: usize,
    overflowed: Arc<AtomicBool>,
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

fn serialize_head(boundary: &str, headers: &HeaderMap) -> Bytes {
    let mut head = BytesMut::with_capacity(128);
    head.extend_from_slice(b"--");
    head.extend_from_slice(boundary.as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.freeze()
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

impl Upload {
    /// Reads `body` (of `content_type`) up to its model, refusing more than `limit` bytes in
    /// all. `overflowed` says later whether the part still streaming went past the limit.
    pub async fn read<S, E>(content_type: &str, body: S, limit: usize) -> Result<Self, UploadError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'static,
    {
        let boundary =
            multer::parse_boundary(content_type).map_err(|_| UploadError::NotMultipart)?;
        let limit_u64 = u64::try_from(limit).unwrap_or(u64::MAX);
        let constraints = Constraints::new().size_limit(
            SizeLimit::new()
                .whole_stream(limit_u64)
                .for_field("model", MAX_TEXT_PART as u64)
                .for_field("stream", MAX_TEXT_PART as u64),
        );
        let mut multipart = Multipart::with_constraints(body, boundary.clone(), constraints);
        let mut held = Vec::new();
        let mut model: Option<String> = None;
        let mut stream: Option<bool> = None;
        let mut current = None;
        let mut saw_file = false;
        loop {
            let Some(mut field) = multipart
                .next_field()
                .await
                .map_err(|err| refused(&err, limit))?
            else {
                break;
            };
            if held.len() >= MAX_PARTS {
                return Err(UploadError::Field {
                    field: "body",
                    reason: "more than 64 parts",
                });
            }
            let name = field.name().map(str::to_owned);
            let is_file = field.file_name().is_some();
            saw_file |= is_file;
            let head = serialize_head(&boundary, field.headers());
            if is_file && model.is_some() {
                // The model is known: the file streams from here.
                current = Some((head, field));
                break;
            }
            // Text parts are small; a file before the model is held whole, within the limit.
            let bound = if is_file { limit } else { MAX_TEXT_PART };
            let mut data = BytesMut::new();
            while let Some(chunk) = field.chunk().await.map_err(|err| refused(&err, limit))? {
                if data.len() + chunk.len() > bound {
                    return Err(if is_file {
                        UploadError::TooLarge { limit }
                    } else {
                        UploadError::Field {
                            field: "body",
                            reason: "a part other than the file is larger than 64 KiB",
                        }
                    });
                }
                data.extend_from_slice(&chunk);
            }
            let data = data.freeze();
            let text = || std::str::from_utf8(&data).ok().map(str::trim);
            match name.as_deref() {
                Some("model") if !is_file => {
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
                Some("stream") if !is_file => {
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
            held.push(Part { head, name, data });
            if model.is_some() && saw_file {
                break;
            }
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
            boundary,
            held,
            rest: Mutex::new(Some(Rest { multipart, current })),
            limit,
            overflowed: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The `Content-Type` the upstream is sent: the client's boundary, kept.
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
            prefix.extend_from_slice(&part.head);
            if part.name.as_deref() == Some("model") {
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
            limit: self.limit,
            overflowed: self.overflowed.clone(),
        };
        Some(egress::Body::streamed(futures_util::stream::try_unfold(
            state,
            Streaming::next,
        )))
    }

    /// Whether the streamed part went past the upload limit (the upstream request was then
    /// cut off).
    pub fn overflowed(&self) -> bool {
        self.overflowed.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit
    }
}

enum Step {
    Prefix(Bytes),
    /// Sending the current part's content.
    Content,
    Next,
    Done,
}

struct Streaming {
    rest: Rest,
    boundary: String,
    step: Step,
    limit: usize,
    overflowed: Arc<AtomicBool>,
}

/// Why the streamed part of an upload broke off.
#[derive(Debug, thiserror::Error)]
#[error("the client's upload broke off or went past its limit")]
struct UploadBroken;

impl Streaming {
    fn failed(&self, err: &multer::Error) -> UploadBroken {
        if matches!(refused(err, self.limit), UploadError::TooLarge { .. }) {
            self.overflowed.store(true, Ordering::Relaxed);
        }
        UploadBroken
    }

    async fn next(mut self) -> Result<Option<(Bytes, Self)>, UploadBroken> {
        loop {
            match std::mem::replace(&mut self.step, Step::Done) {
                Step::Prefix(prefix) => {
                    self.step = Step::Content;
                    let mut out = BytesMut::from(&prefix[..]);
                    if let Some((head, _)) = &self.rest.current {
                        out.extend_from_slice(head);
                    } else {
                        self.step = Step::Next;
                    }
                    return Ok(Some((out.freeze(), self)));
                }
                Step::Content => {
                    let Some((_, field)) = &mut self.rest.current else {
                        self.step = Step::Next;
                        continue;
                    };
                    match field.chunk().await {
                        Ok(Some(chunk)) => {
                            self.step = Step::Content;
                            return Ok(Some((chunk, self)));
                        }
                        Ok(None) => {
                            self.rest.current = None;
                            self.step = Step::Next;
                            return Ok(Some((Bytes::from_static(b"\r\n"), self)));
                        }
                        Err(err) => return Err(self.failed(&err)),
                    }
                }
                Step::Next => match self.rest.multipart.next_field().await {
                    Ok(Some(field)) => {
                        let head = serialize_head(&self.boundary, field.headers());
                        self.rest.current = Some((Bytes::new(), field));
                        self.step = Step::Content;
                        return Ok(Some((head, self)));
                    }
                    Ok(None) => {
                        let end = format!("--{}--\r\n", self.boundary);
                        return Ok(Some((Bytes::from(end), self)));
                    }
                    Err(err) => return Err(self.failed(&err)),
                },
                Step::Done => return Ok(None),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDARY: &str = "kgtest";

    fn form(parts: &[(&str, Option<&str>, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (name, file, data) in parts {
            body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
            match file {
                Some(file) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\nContent-Type: audio/wav\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(data);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        body
    }

    async fn read(body: Vec<u8>, limit: usize) -> Result<Upload, UploadError> {
        // In small pieces, each after a pause, as a network delivers it.
        let chunks: Vec<Bytes> = body.chunks(7).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::unfold(chunks.into_iter(), |mut chunks| async move {
            tokio::task::yield_now().await;
            let chunk = chunks.next()?;
            Some((Ok::<_, std::io::Error>(chunk), chunks))
        });
        Upload::read(
            &format!("multipart/form-data; boundary={BOUNDARY}"),
            stream,
            limit,
        )
        .await
    }

    async fn sent(upload: &Upload, model: &str) -> Vec<u8> {
        let body = upload.take_body(model).unwrap();
        body.read_all().await.unwrap().to_vec()
    }

    /// The parts of a multipart body, as (name, content).
    async fn parts(body: Vec<u8>) -> Vec<(String, Vec<u8>)> {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(body))]);
        let mut multipart = Multipart::new(stream, BOUNDARY);
        let mut out = Vec::new();
        while let Some(field) = multipart.next_field().await.unwrap() {
            let name = field.name().unwrap_or_default().to_owned();
            out.push((name, field.bytes().await.unwrap().to_vec()));
        }
        out
    }

    #[tokio::test]
    async fn the_model_is_rewritten_and_everything_else_kept_in_order() {
        let audio: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
        for order in [
            vec![
                ("model", None, &b"whisper"[..]),
                ("file", Some("a.wav"), &audio[..]),
            ],
            vec![
                ("file", Some("a.wav"), &audio[..]),
                ("model", None, &b"whisper"[..]),
            ],
        ] {
            let mut fields = vec![("stream", None, &b"true"[..])];
            fields.extend(order);
            fields.push(("language", None, b"fr"));
            let upload = read(form(&fields), 1 << 20).await.unwrap();
            assert_eq!(upload.model, "whisper");
            assert!(upload.stream);
            let got = parts(sent(&upload, "whisper-1").await).await;
            let names: Vec<&str> = got.iter().map(|(n, _)| n.as_str()).collect();
            let expected: Vec<&str> = fields.iter().map(|(n, _, _)| *n).collect();
            assert_eq!(names, expected);
            for (name, data) in &got {
                match name.as_str() {
                    "model" => assert_eq!(data, b"whisper-1"),
                    "file" => assert_eq!(data, &audio),
                    "language" => assert_eq!(data, b"fr"),
                    _ => assert_eq!(data, b"true"),
                }
            }
            assert!(upload.take_body("x").is_none(), "an upload is sent once");
        }
    }

    #[tokio::test]
    async fn bad_forms_are_refused_with_the_field_named() {
        let audio = [1u8; 100];
        let err = read(form(&[("file", Some("a.wav"), &audio)]), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(err.param(), Some("model"));
        let err = read(form(&[("model", None, b"m")]), 1 << 20)
            .await
            .unwrap_err();
        assert_eq!(err.param(), Some("file"));
        let err = read(
            form(&[
                ("model", None, b"m"),
                ("model", None, b"n"),
                ("file", Some("a"), &audio),
            ]),
            1 << 20,
        )
        .await
        .unwrap_err();
        assert_eq!(err.param(), Some("model"));
        let big = vec![0u8; 5000];
        let err = read(
            form(&[("file", Some("a.wav"), &big), ("model", None, b"m")]),
            1000,
        )
        .await
        .unwrap_err();
        assert_eq!(err, UploadError::TooLarge { limit: 1000 });
        let err = Upload::read(
            "application/json",
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::new())]),
            1000,
        )
        .await
        .unwrap_err();
        assert_eq!(err, UploadError::NotMultipart);
        let err = read(b"--kgtest\r\nnonsense".to_vec(), 1000)
            .await
            .unwrap_err();
        assert_eq!(err.param(), Some("body"));
    }

    #[tokio::test]
    async fn a_streamed_file_past_the_limit_breaks_the_body_and_says_so() {
        let big = vec![0u8; 5000];
        let upload = read(
            form(&[("model", None, b"m"), ("file", Some("a.wav"), &big)]),
            2000,
        )
        .await
        .unwrap();
        let body = upload.take_body("m").unwrap().read_all().await;
        assert!(body.is_err());
        assert!(upload.overflowed());
    }
}
