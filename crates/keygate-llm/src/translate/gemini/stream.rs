//! Gemini's streamed answers (`streamGenerateContent?alt=sse`): read into common events, and
//! written from them.

use serde_json::{Value, json};

use super::response::{decode_usage, encode_stop, parts, stop_reason, usage_value};
use crate::translate::ir::{ErrorKind, Part, StreamEvent, UpstreamError, Usage};
use crate::translate::value::{Obj, owned_str};

/// Reads a `streamGenerateContent?alt=sse` stream into common events. The stream has no end
/// marker: it is complete when the body ends after a `finishReason`.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    id: String,
    /// The open text block.
    open_text: Option<usize>,
    next_block: usize,
    calls: usize,
    stop: Option<String>,
    usage: Option<Usage>,
    finished: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(index) = self.open_text.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        let chunk: Obj = serde_json::from_slice(data).ok()?;
        if let Some(error) = chunk.get("error") {
            let status = error.get("code").and_then(Value::as_u64).unwrap_or(500);
            out.push(StreamEvent::Error(UpstreamError {
                kind: ErrorKind::from_status(u16::try_from(status).unwrap_or(500)),
                message: error
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported an error")
                    .to_owned(),
            }));
            return Some(());
        }
        if !self.started {
            self.started = true;
            self.id = owned_str(chunk.get("responseId"));
            out.push(StreamEvent::Start {
                id: self.id.clone(),
                model: owned_str(chunk.get("modelVersion")),
                input_tokens: None,
            });
        }
        if let Some(usage) = chunk.get("usageMetadata") {
            self.usage = Some(decode_usage(usage));
        }
        if chunk.get("candidates").is_none() && chunk.get("promptFeedback").is_some() {
            self.stop = Some("SAFETY".to_owned());
        }
        let Some(candidate) = chunk
            .get("candidates")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Some(());
        };
        let mut calls = self.calls;
        for part in parts(candidate, &self.id, &mut calls)? {
            match part {
                Part::Text(text) if text.is_empty() => {}
                Part::Text(text) => {
                    let index = match self.open_text {
                        Some(index) => index,
                        None => {
                            let index = self.next_block;
                            self.next_block += 1;
                            self.open_text = Some(index);
                            out.push(StreamEvent::TextStart { index });
                            index
                        }
                    };
                    out.push(StreamEvent::Text { index, text });
                }
                Part::ToolCall(call) => {
                    self.close(out);
                    let index = self.next_block;
                    self.next_block += 1;
                    out.push(StreamEvent::ToolStart {
                        index,
                        id: call.id,
                        name: call.name,
                    });
                    out.push(StreamEvent::ToolArguments {
                        index,
                        json: call.arguments,
                    });
                    out.push(StreamEvent::BlockStop { index });
                }
                _ => {}
            }
        }
        self.calls = calls;
        if let Some(reason) = candidate.get("finishReason").and_then(Value::as_str) {
            self.stop = Some(reason.to_owned());
        }
        Some(())
    }

    /// The upstream's body ended: complete when a finish reason came.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) -> bool {
        if self.finished {
            return true;
        }
        let Some(reason) = self.stop.take() else {
            return false;
        };
        self.finished = true;
        self.close(out);
        out.push(StreamEvent::Finish {
            stop: Some(stop_reason(&reason, self.calls > 0)),
            usage: self.usage.take(),
        });
        out.push(StreamEvent::End);
        true
    }
}

/// Writes common events as Gemini's streamed answers (what a Gemini upstream sends; used to
/// check translations against it).
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    model: String,
    calls: Vec<(String, String)>,
    open_call: Option<usize>,
}

impl Encoder {
    fn chunk(&self, parts: Vec<Value>, finish: Value, usage: Option<&Usage>, out: &mut String) {
        let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
        if !finish.is_null() {
            candidate["finishReason"] = finish;
        }
        let mut chunk =
            json!({"candidates": [candidate], "modelVersion": self.model, "responseId": self.id});
        if let Some(usage) = usage {
            chunk["usageMetadata"] = usage_value(usage);
        }
        out.push_str(&format!("data: {chunk}\r\n\r\n"));
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start { id, model, .. } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
            }
            StreamEvent::Text { text, .. } => {
                self.chunk(vec![json!({"text": text})], Value::Null, None, out)
            }
            StreamEvent::ToolStart { index, name, .. } => {
                self.open_call = Some(*index);
                self.calls.push((name.clone(), String::new()));
            }
            StreamEvent::ToolArguments { json, .. } => {
                if let Some((_, arguments)) = self.calls.last_mut() {
                    arguments.push_str(json);
                }
            }
            StreamEvent::BlockStop { index } if self.open_call == Some(*index) => {
                self.open_call = None;
                if let Some((name, arguments)) = self.calls.pop() {
                    let args =
                        serde_json::from_str::<Value>(&arguments).unwrap_or_else(|_| json!({}));
                    self.chunk(
                        vec![json!({"functionCall": {"name": name, "args": args}})],
                        Value::Null,
                        None,
                        out,
                    );
                }
            }
            StreamEvent::Finish { stop, usage } => {
                self.chunk(Vec::new(), encode_stop(stop.as_ref()), usage.as_ref(), out);
            }
            StreamEvent::Error(error) => {
                let body =
                    json!({"error": {"code": 500, "message": error.message, "status": "INTERNAL"}});
                out.push_str(&format!("data: {body}\r\n\r\n"));
            }
            StreamEvent::TextStart { .. } | StreamEvent::BlockStop { .. } | StreamEvent::End => {}
        }
    }
}
