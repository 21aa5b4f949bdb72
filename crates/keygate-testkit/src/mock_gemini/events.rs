//! Gemini's server-sent events (`?alt=sse`): each event is `data: <GenerateContentResponse>`
//! with CRLF line endings, one per body frame, and the stream ends without a `[DONE]`.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::response::Response;
use serde_json::Value;
use tokio::sync::Notify;

use super::wire::{self, Meta};
use crate::mock_openai::stream::Script;
use crate::mock_openai::wire::split_words;

/// The script of one streamed answer. The latest chunk is held back until the next one is
/// known, because the real API puts `finishReason` and the full usage on the last chunk that
/// carries content.
#[derive(Debug)]
pub(super) struct Chunks {
    script: Script,
    meta: Meta,
    prompt_tokens: u64,
    pending: Option<Vec<Value>>,
}

impl Chunks {
    pub(super) fn new(meta: Meta, prompt_tokens: u64) -> Self {
        // Only the raw frames of the player are used: its chunk metadata stays unused.
        let player = crate::mock_openai::wire::Meta::new(meta.seq, meta.model.clone());
        Self {
            script: Script::new(player, false),
            meta,
            prompt_tokens,
            pending: None,
        }
    }

    fn event(&mut self, response: &Value) {
        self.script.raw(format!("data: {response}\r\n\r\n"));
    }

    /// Sends the held-back chunk as a middle one: content, and usage with the prompt only.
    fn flush(&mut self) {
        if let Some(parts) = self.pending.take() {
            let candidate = wire::candidate(Some(parts), None);
            let usage = wire::usage(self.prompt_tokens, None);
            let response = wire::response(&self.meta, candidate, usage);
            self.event(&response);
        }
    }

    /// A chunk with these parts.
    pub(super) fn parts(&mut self, parts: Vec<Value>) {
        self.flush();
        self.pending = Some(parts);
    }

    /// Every word of `text` as its own chunk, `gap` apart.
    pub(super) fn words(&mut self, text: &str, gap: Option<Duration>) {
        for (n, piece) in split_words(text).into_iter().enumerate() {
            if let (Some(gap), true) = (gap, n > 0) {
                self.pause(gap);
            }
            self.parts(vec![wire::text_part(piece)]);
        }
    }

    pub(super) fn pause(&mut self, gap: Duration) {
        self.flush();
        self.script.pause(gap);
    }

    pub(super) fn wait(&mut self, release: Arc<Notify>) {
        self.flush();
        self.script.wait(release);
    }

    pub(super) fn abort(&mut self) {
        self.flush();
        self.script.abort();
    }

    /// The last chunk: the held-back content (an empty text when there is none) with
    /// `finishReason` and the full usage. A `SAFETY` stop carries no content at all.
    pub(super) fn finish(&mut self, finish_reason: &str, candidates_tokens: u64) {
        let parts = if finish_reason == "SAFETY" {
            self.flush();
            None
        } else {
            Some(
                self.pending
                    .take()
                    .unwrap_or_else(|| vec![wire::text_part("")]),
            )
        };
        let candidate = wire::candidate(parts, Some(finish_reason));
        let usage = wire::usage(self.prompt_tokens, Some(candidates_tokens));
        let response = wire::response(&self.meta, candidate, usage);
        self.event(&response);
    }

    pub(super) fn into_response(self, abandoned: Arc<AtomicUsize>) -> Response {
        self.script.into_response(abandoned)
    }
}
