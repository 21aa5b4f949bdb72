//! Anthropic's server-sent events (`event: <type>` then `data: <json>`), written one event
//! per body frame on top of the OpenAI mock's stream player.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use axum::response::Response;
use serde_json::{Value, json};
use tokio::sync::Notify;

use super::wire::{self, Meta};
use crate::mock_openai::stream::Script;
use crate::mock_openai::wire::{split_arguments, split_words};

/// The script of one streamed message, built event by event.
#[derive(Debug)]
pub(super) struct Events {
    script: Script,
}

impl Events {
    /// `message_start` (the message with empty content and one output token so far), then a
    /// `ping`, as the real API begins every stream.
    pub(super) fn start(meta: &Meta, input_tokens: u64) -> Self {
        // Only the raw frames of the player are used: its chunk metadata stays unused.
        let player = crate::mock_openai::wire::Meta::new(meta.seq, meta.model.clone());
        let mut events = Self {
            script: Script::new(player, false),
        };
        let message = wire::message(meta, Vec::new(), None, wire::usage(input_tokens, 1));
        events.event(
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
        events.event("ping", &json!({"type": "ping"}));
        events
    }

    fn event(&mut self, kind: &str, data: &Value) {
        self.script.raw(format!("event: {kind}\ndata: {data}\n\n"));
    }

    pub(super) fn block_start(&mut self, index: usize, block: Value) {
        self.event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
    }

    pub(super) fn block_stop(&mut self, index: usize) {
        self.event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        );
    }

    pub(super) fn text_delta(&mut self, index: usize, piece: &str) {
        self.event(
            "content_block_delta",
            &json!({
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": piece}
            }),
        );
    }

    /// Every word of `text` as its own `text_delta`, `gap` apart.
    pub(super) fn words(&mut self, index: usize, text: &str, gap: Option<Duration>) {
        for (n, piece) in split_words(text).into_iter().enumerate() {
            if let (Some(gap), true) = (gap, n > 0) {
                self.pause(gap);
            }
            self.text_delta(index, piece);
        }
    }

    /// One `tool_use` block per call: it starts with an empty `input`, whose JSON then comes
    /// in several `input_json_delta` pieces, split mid-string as the real API does.
    pub(super) fn tool_calls(&mut self, meta: &Meta, calls: &[(String, String)]) {
        for (index, (name, arguments)) in calls.iter().enumerate() {
            let block = wire::tool_use_block(&meta.tool_id(index), name, json!({}));
            self.block_start(index, block);
            let input = wire::tool_input(arguments).to_string();
            for piece in split_arguments(&input) {
                self.event(
                    "content_block_delta",
                    &json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": piece}
                    }),
                );
            }
            self.block_stop(index);
        }
    }

    /// An `error` event, as the API sends when it fails after the stream began.
    pub(super) fn error(&mut self, kind: &str, message: &str) {
        self.event(
            "error",
            &json!({"type": "error", "error": {"type": kind, "message": message}}),
        );
    }

    pub(super) fn pause(&mut self, gap: Duration) {
        self.script.pause(gap);
    }

    pub(super) fn wait(&mut self, release: Arc<Notify>) {
        self.script.wait(release);
    }

    pub(super) fn abort(&mut self) {
        self.script.abort();
    }

    /// `message_delta` with the stop reason and the output tokens, then `message_stop`.
    pub(super) fn finish(&mut self, stop_reason: &str, output_tokens: u64) {
        self.event(
            "message_delta",
            &json!({
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": null},
                "usage": {"output_tokens": output_tokens}
            }),
        );
        self.event("message_stop", &json!({"type": "message_stop"}));
    }

    pub(super) fn into_response(self, abandoned: Arc<AtomicUsize>) -> Response {
        self.script.into_response(abandoned)
    }
}
