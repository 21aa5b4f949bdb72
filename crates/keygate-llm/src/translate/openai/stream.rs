//! OpenAI's streamed answers: `chat.completion.chunk` events read into common events, and
//! common events written as them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::response::{created, decode_usage, finish_reason, stop_reason, usage_value};
use crate::client::{ClientError, ClientFormat};
use crate::translate::ir::{ErrorKind, StopReason, StreamEvent, UpstreamError, Usage};
use crate::translate::value::{Obj, owned_str};

/// Reads a stream of `chat.completion.chunk` events into common events.
#[derive(Debug, Default)]
pub struct Decoder {
    started: bool,
    /// The open block: its number, and the tool call's index when it is one.
    open: Option<(usize, Option<u64>)>,
    next_block: usize,
    /// The open tool call's id.
    open_id: Option<String>,
    /// Calls sent without an index, numbered apart from the indexed ones.
    unindexed: u64,
    /// Whether the model refused (OpenAI streams a refusal as `delta.refusal`).
    refused: bool,
    stop: Option<StopReason>,
    usage: Option<Usage>,
    finished: bool,
}

impl Decoder {
    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        self.open_id = None;
        if let Some((index, _)) = self.open.take() {
            out.push(StreamEvent::BlockStop { index });
        }
    }

    fn finish(&mut self, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.close(out);
        let stop = if self.refused {
            Some(StopReason::Refusal)
        } else {
            self.stop.take()
        };
        out.push(StreamEvent::Finish {
            stop,
            usage: self.usage.take(),
        });
        out.push(StreamEvent::End);
    }

    /// One event's data.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        if data == b"[DONE]" {
            self.finish(out);
            return Some(());
        }
        let chunk: Obj = serde_json::from_slice(data).ok()?;
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("the upstream reported an error")
                .to_owned();
            out.push(StreamEvent::Error(UpstreamError {
                kind: ErrorKind::Api,
                message,
            }));
            return Some(());
        }
        if let Some(usage) = chunk
            .get("usage")
            .or_else(|| chunk.get("x_groq").and_then(|g| g.get("usage")))
            .and_then(decode_usage)
        {
            self.usage = Some(usage);
        }
        let id = chunk.get("id").and_then(Value::as_str).unwrap_or_default();
        let has_choices = chunk
            .get("choices")
            .and_then(Value::as_array)
            .is_some_and(|c| !c.is_empty());
        // Azure sends its prompt filter results first, in a chunk without an id or choices:
        // the answer starts with the next one.
        if !self.started && (has_choices || !id.is_empty()) {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.to_owned(),
                model: owned_str(chunk.get("model")),
                input_tokens: None,
            });
        }
        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|c| c.first())
        else {
            return Some(());
        };
        if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
            let content = delta.get("content").and_then(Value::as_str);
            let refusal = delta.get("refusal").and_then(Value::as_str);
            self.refused |= refusal.is_some_and(|r| !r.is_empty());
            if let Some(text) = content.or(refusal).filter(|t| !t.is_empty()) {
                let index = match self.open {
                    Some((index, None)) => index,
                    _ => {
                        self.close(out);
                        let index = self.next_block;
                        self.next_block += 1;
                        self.open = Some((index, None));
                        out.push(StreamEvent::TextStart { index });
                        index
                    }
                };
                out.push(StreamEvent::Text {
                    index,
                    text: text.to_owned(),
                });
            }
            for call in delta
                .get("tool_calls")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let id = call
                    .get("id")
                    .and_then(Value::as_str)
                    .filter(|id| !id.is_empty());
                let tool = match call.get("index").and_then(Value::as_u64) {
                    Some(tool) => tool,
                    // Without an index, a delta without an id continues the open call.
                    None => match (id, self.open) {
                        (None, Some((_, Some(open)))) => open,
                        _ => {
                            self.unindexed += 1;
                            u64::MAX - self.unindexed
                        }
                    },
                };
                let function = call.get("function");
                let continues = matches!(self.open, Some((_, Some(open))) if open == tool)
                    && id.is_none_or(|id| self.open_id.as_deref() == Some(id));
                let index = match self.open {
                    Some((index, _)) if continues => index,
                    _ => {
                        // A new call comes with its id; a delta without one for a call
                        // already closed is interleaved, which the formats that stream one
                        // block at a time cannot say.
                        let id = id?;
                        let name = function?.get("name").and_then(Value::as_str)?;
                        self.close(out);
                        let index = self.next_block;
                        self.next_block += 1;
                        self.open = Some((index, Some(tool)));
                        self.open_id = Some(id.to_owned());
                        out.push(StreamEvent::ToolStart {
                            index,
                            id: id.to_owned(),
                            name: name.to_owned(),
                        });
                        index
                    }
                };
                if let Some(arguments) = function
                    .and_then(|f| f.get("arguments"))
                    .and_then(Value::as_str)
                    .filter(|a| !a.is_empty())
                {
                    out.push(StreamEvent::ToolArguments {
                        index,
                        json: arguments.to_owned(),
                    });
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.stop = Some(stop_reason(reason));
            self.close(out);
        }
        Some(())
    }

    /// The upstream's body ended: complete only after `[DONE]`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> bool {
        self.finished
    }
}

/// Writes common events as `chat.completion.chunk` events.
#[derive(Debug)]
pub struct Encoder {
    /// Everything of a chunk before its delta, written once the stream's id is known.
    prefix: String,
    id: String,
    model: String,
    created: u64,
    include_usage: bool,
    /// Tool call numbers by block.
    tools: HashMap<usize, u64>,
    next_tool: u64,
    input_tokens: Option<u64>,
}

/// A JSON string literal.
fn quoted(text: &str) -> String {
    Value::from(text).to_string()
}

impl Encoder {
    pub fn new(include_usage: bool) -> Self {
        let mut encoder = Self {
            prefix: String::new(),
            id: String::new(),
            model: String::new(),
            created: created(),
            include_usage,
            tools: HashMap::new(),
            next_tool: 0,
            input_tokens: None,
        };
        // Events before a start (from a stream that never sent one) still make whole chunks.
        encoder.set_prefix();
        encoder
    }

    fn set_prefix(&mut self) {
        self.prefix = format!(
            r#"data: {{"id":{},"object":"chat.completion.chunk","created":{},"model":{},"choices":[{{"index":0,"delta":"#,
            quoted(&self.id),
            self.created,
            quoted(&self.model),
        );
    }

    /// Appends a chunk with `delta` (JSON text) and `finish` (JSON text).
    fn chunk(&self, out: &mut String, delta: &str, finish: &str) {
        out.push_str(&self.prefix);
        out.push_str(delta);
        out.push_str(r#","logprobs":null,"finish_reason":"#);
        out.push_str(finish);
        out.push_str("}]}\n\n");
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start {
                id,
                model,
                input_tokens,
            } => {
                self.id.clone_from(id);
                self.model.clone_from(model);
                self.input_tokens = *input_tokens;
                self.set_prefix();
                self.chunk(out, r#"{"role":"assistant","content":""}"#, "null");
            }
            StreamEvent::TextStart { .. } | StreamEvent::BlockStop { .. } => {}
            StreamEvent::Text { text, .. } => {
                self.chunk(out, &format!(r#"{{"content":{}}}"#, quoted(text)), "null");
            }
            StreamEvent::ToolStart { index, id, name } => {
                let tool = self.next_tool;
                self.next_tool += 1;
                self.tools.insert(*index, tool);
                let delta = json!({"tool_calls": [{
                    "index": tool, "id": id, "type": "function",
                    "function": {"name": name, "arguments": ""},
                }]});
                self.chunk(out, &delta.to_string(), "null");
            }
            StreamEvent::ToolArguments { index, json } => {
                let tool = self.tools.get(index).copied().unwrap_or(0);
                let delta = format!(
                    r#"{{"tool_calls":[{{"index":{tool},"function":{{"arguments":{}}}}}]}}"#,
                    quoted(json)
                );
                self.chunk(out, &delta, "null");
            }
            StreamEvent::Finish { stop, usage } => {
                self.chunk(out, "{}", &finish_reason(stop.as_ref()).to_string());
                // Usage the upstream did not report is left out, not reported as zero.
                if let Some(mut usage) = usage.filter(|_| self.include_usage) {
                    if usage.input == 0 {
                        usage.input = self.input_tokens.unwrap_or(0);
                    }
                    let chunk = json!({
                        "id": self.id,
                        "object": "chat.completion.chunk",
                        "created": self.created,
                        "model": self.model,
                        "choices": [],
                        "usage": usage_value(&usage),
                    });
                    out.push_str(&format!("data: {chunk}\n\n"));
                }
            }
            StreamEvent::Error(error) => {
                let error = ClientError::upstream(error, "upstream_error");
                out.push_str(&ClientFormat::OpenAi.error_event(&error));
            }
            StreamEvent::End => out.push_str("data: [DONE]\n\n"),
        }
    }
}
