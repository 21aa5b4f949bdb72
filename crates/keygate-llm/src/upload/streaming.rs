//! The upload's body as it goes upstream: the held parts, then the file and every later part
//! as the client sends them, each part's head written again, within the file's bound and the
//! client's pauses; why it broke off is kept for [`super::Upload::fault`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::{Bytes, BytesMut};

use super::{Rest, UploadFault, UploadLimits, field_head};

pub(super) enum Step {
    Prefix(Bytes),
    /// Sending the current part's content.
    Content,
    Next,
    Done,
}

pub(super) struct Streaming {
    pub(super) rest: Rest,
    pub(super) boundary: String,
    pub(super) step: Step,
    pub(super) limits: UploadLimits,
    pub(super) file_bytes: Arc<AtomicU64>,
    pub(super) fault: Arc<Mutex<Option<UploadFault>>>,
}

/// The streamed part of an upload broke off (the reason is in [`Upload::fault`]).
#[derive(Debug, thiserror::Error)]
#[error("the client's upload broke off")]
pub(super) struct UploadBroken;

impl Streaming {
    fn fail(&self, fault: UploadFault) -> UploadBroken {
        *self.fault.lock().unwrap_or_else(PoisonError::into_inner) = Some(fault);
        UploadBroken
    }

    fn failed(&self, err: &multer::Error) -> UploadBroken {
        self.fail(match err {
            multer::Error::StreamSizeExceeded { .. } => UploadFault::TooLarge {
                limit: self.limits.file,
            },
            multer::Error::StreamReadFailed(_) => UploadFault::Broken,
            multer::Error::FieldSizeExceeded { .. } => {
                UploadFault::Malformed("a part other than the file is larger than 64 KiB")
            }
            _ => UploadFault::Malformed("the form does not end as it should"),
        })
    }

    pub(super) async fn next(mut self) -> Result<Option<(Bytes, Self)>, UploadBroken> {
        let idle = self.limits.idle;
        loop {
            match std::mem::replace(&mut self.step, Step::Done) {
                Step::Prefix(prefix) => {
                    let mut out = BytesMut::from(&prefix[..]);
                    match &self.rest.current {
                        Some(field) => {
                            let head = field_head(&self.boundary, field).unwrap_or_default();
                            out.extend_from_slice(&head);
                            self.step = Step::Content;
                        }
                        None => self.step = Step::Next,
                    }
                    return Ok(Some((out.freeze(), self)));
                }
                Step::Content => {
                    let Some(field) = &mut self.rest.current else {
                        self.step = Step::Next;
                        continue;
                    };
                    let is_file = field.file_name().is_some();
                    match tokio::time::timeout(idle, field.chunk()).await {
                        Err(_) => return Err(self.fail(UploadFault::Idle)),
                        Ok(Err(err)) => return Err(self.failed(&err)),
                        Ok(Ok(Some(chunk))) => {
                            if is_file {
                                let total = self
                                    .file_bytes
                                    .fetch_add(chunk.len() as u64, Ordering::Relaxed)
                                    + chunk.len() as u64;
                                if total > self.limits.file as u64 {
                                    let limit = self.limits.file;
                                    return Err(self.fail(UploadFault::TooLarge { limit }));
                                }
                            }
                            self.step = Step::Content;
                            return Ok(Some((chunk, self)));
                        }
                        Ok(Ok(None)) => {
                            self.rest.current = None;
                            self.step = Step::Next;
                            return Ok(Some((Bytes::from_static(b"\r\n"), self)));
                        }
                    }
                }
                Step::Next => {
                    match tokio::time::timeout(idle, self.rest.multipart.next_field()).await {
                        Err(_) => return Err(self.fail(UploadFault::Idle)),
                        Ok(Err(err)) => return Err(self.failed(&err)),
                        Ok(Ok(Some(field))) => {
                            // What keygate read before the file decided the request: later parts
                            // may not say otherwise.
                            let refusal = match field.name() {
                                None => Some("a part without a name"),
                                Some("model") => Some("`model` given twice"),
                                Some("stream") => Some("`stream` must come before the file"),
                                Some(_) => None,
                            };
                            if let Some(reason) = refusal {
                                return Err(self.fail(UploadFault::Malformed(reason)));
                            }
                            let head = field_head(&self.boundary, &field).unwrap_or_default();
                            self.rest.current = Some(field);
                            self.step = Step::Content;
                            return Ok(Some((head, self)));
                        }
                        Ok(Ok(None)) => {
                            let end = format!("--{}--\r\n", self.boundary);
                            return Ok(Some((Bytes::from(end), self)));
                        }
                    }
                }
                Step::Done => return Ok(None),
            }
        }
    }
}
