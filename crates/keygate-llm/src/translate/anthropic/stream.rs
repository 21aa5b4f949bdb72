//! Anthropic's streamed events (`message_start`, `content_block_*`, `message_delta`,
//! `message_stop`, `error`): read into common events, and written from them.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::error::error_kind;
use super::response::{decode_usage, encode_stop, message_id, stop_reason, usage_value};
use crate::client::{ClientError, ClientFormat};
use crate::translate::ir::{StopReason, StreamEvent, UpstreamError, Usage};
use crate::translate::value::{Obj, owned_str};

fn event(out: &mut String, data: &Value) {
    let kind = data["type"].as_str().unwrap_or("error");
    out.push_str("event: ");
    out.push_str(kind);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

/// Reads Anthropic's streamed events into common events.
#[derive(Debug, Default)]
pub struct Decoder {
    /// Our block number for each upstream block index (thinking blocks have none).
    blocks: HashMap<u64, usize>,
    next_block: usize,
    stop: Option<StopReason>,
    usage: Usage,
    saw_usage: bool,
    finished: bool,
}

/// A `content_block_delta`, the event that makes up most of a stream, read without building
/// a document.
#[derive(serde::Deserialize)]
struct BlockDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default)]
    index: Option<u64>,
    #[serde(default, borrow)]
    delta: Option<DeltaBody<'a>>,
}

#[derive(serde::Deserialize)]
struct DeltaBody<'a> {
    #[serde(rename = "type", borrow)]
    kind: std::borrow::Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<std::borrow::Cow<'a, str>>,
}

impl Decoder {
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        if let Ok(fast) = serde_json::from_slice::<BlockDelta<'_>>(data)
            && fast.kind == "content_block_delta"
        {
            let Some(&index) = self.blocks.get(&fast.index?) else {
                return Some(());
            };
            let delta = fast.delta?;
            match delta.kind.as_ref() {
                "text_delta" => out.push(StreamEvent::Text {
                    index,
                    text: delta.text?.into_owned(),
                }),
                "input_json_delta" => {
                    let json = delta.partial_json?;
                    if !json.is_empty() {
                        out.push(StreamEvent::ToolArguments {
                            index,
                            json: json.into_owned(),
                        });
                    }
                }
                _ => {}
            }
            return Some(());
        }
        let event: Obj = serde_json::from_slice(data).ok()?;
        match event.get("type")?.as_str()? {
            "message_start" => {
                let message = event.get("message")?;
                if let Some(usage) = message.get("usage") {
                    self.usage = decode_usage(usage);
                    self.saw_usage = true;
                }
                out.push(StreamEvent::Start {
                    id: owned_str(message.get("id")),
                    model: owned_str(message.get("model")),
                    input_tokens: self.saw_usage.then_some(self.usage.input),
                });
            }
            // The fast path above could not read it: malformed.
            "content_block_delta" => return None,
            "content_block_start" => {
                let upstream = event.get("index")?.as_u64()?;
                let block = event.get("content_block")?;
                // Blocks come one at a time; a start before the last one's stop closes it.
                let mut open: Vec<usize> = self.blocks.drain().map(|(_, index)| index).collect();
                open.sort_unstable();
                out.extend(
                    open.into_iter()
                        .map(|index| StreamEvent::BlockStop { index }),
                );
                let index = self.next_block;
                match block.get("type")?.as_str()? {
                    "text" => {
                        out.push(StreamEvent::TextStart { index });
                        if let Some(text) = block
                            .get("text")
                            .and_then(Value::as_str)
                            .filter(|t| !t.is_empty())
                        {
                            out.push(StreamEvent::Text {
                                index,
                                text: text.to_owned(),
                            });
                        }
                    }
                    "tool_use" => {
                        out.push(StreamEvent::ToolStart {
                            index,
                            id: block.get("id")?.as_str()?.to_owned(),
                            name: block.get("name")?.as_str()?.to_owned(),
                        });
                        if let Some(input) = block
                            .get("input")
                            .filter(|i| i.as_object().is_some_and(|o| !o.is_empty()))
                        {
                            out.push(StreamEvent::ToolArguments {
                                index,
                                json: input.to_string(),
                            });
                        }
                    }
                    _ => return Some(()),
                }
                self.next_block += 1;
                self.blocks.insert(upstream, index);
            }
            "content_block_stop" => {
                if let Some(index) = self.blocks.remove(&event.get("index")?.as_u64()?) {
                    out.push(StreamEvent::BlockStop { index });
                }
            }
            "message_delta" => {
                if let Some(delta) = event.get("delta")
                    && let Some(reason) = delta.get("stop_reason").and_then(Value::as_str)
                {
                    self.stop = Some(stop_reason(
                        reason,
                        delta.get("stop_sequence").and_then(Value::as_str),
                    ));
                }
                if let Some(usage) = event.get("usage") {
                    let update = decode_usage(usage);
                    self.saw_usage = true;
                    self.usage.output = update.output;
                    // Newer versions repeat the input counts here; older ones send zeros.
                    if update.input > 0 {
                        self.usage.input = update.input;
                        self.usage.cache_read = update.cache_read;
                        self.usage.cache_write = update.cache_write;
                    }
                }
            }
            "message_stop" => {
                self.finished = true;
                for index in self
                    .blocks
                    .drain()
                    .map(|(_, index)| index)
                    .collect::<Vec<_>>()
                {
                    out.push(StreamEvent::BlockStop { index });
                }
                out.push(StreamEvent::Finish {
                    stop: self.stop.take(),
                    usage: self.saw_usage.then_some(self.usage),
                });
                out.push(StreamEvent::End);
            }
            "error" => {
                let error = event.get("error");
                out.push(StreamEvent::Error(UpstreamError {
                    kind: error_kind(
                        error
                            .and_then(|e| e.get("type"))
                            .and_then(Value::as_str)
                            .unwrap_or("api_error"),
                    ),
                    message: error
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("the upstream reported an error")
                        .to_owned(),
                }));
            }
            _ => {}
        }
        Some(())
    }

    /// The upstream's body ended: complete only after `message_stop`.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> bool {
        self.finished
    }
}

/// Writes common events as Anthropic's streamed events.
#[derive(Debug, Default)]
pub struct Encoder {
    /// Blocks started and not yet stopped.
    open: Vec<usize>,
    input_tokens: Option<u64>,
}

impl Encoder {
    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start {
                id,
                model,
                input_tokens,
            } => {
                self.input_tokens = *input_tokens;
                let data = json!({
                    "type": "message_start",
                    "message": {
                        "id": message_id(id),
                        "type": "message",
                        "role": "assistant",
                        "model": model,
                        "content": [],
                        "stop_reason": null,
                        "stop_sequence": null,
                        "usage": {"input_tokens": input_tokens.unwrap_or(0), "output_tokens": 0},
                    },
                });
                self::event(out, &data);
            }
            StreamEvent::TextStart { index } => {
                self.open.push(*index);
                self::event(
                    out,
                    &json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    }),
                );
            }
            StreamEvent::Text { index, text } => {
                self::event(
                    out,
                    &json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "text_delta", "text": text},
                    }),
                );
            }
            StreamEvent::ToolStart { index, id, name } => {
                self.open.push(*index);
                self::event(
                    out,
                    &json!({
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "tool_use", "id": id, "name": name, "input": {}},
                    }),
                );
            }
            StreamEvent::ToolArguments { index, json } => {
                self::event(
                    out,
                    &json!({
                        "type": "content_block_delta",
                        "index": index,
                        "delta": {"type": "input_json_delta", "partial_json": json},
                    }),
                );
            }
            StreamEvent::BlockStop { index } => {
                if let Some(at) = self.open.iter().position(|i| i == index) {
                    self.open.remove(at);
                    self::event(out, &json!({"type": "content_block_stop", "index": index}));
                }
            }
            StreamEvent::Finish { stop, usage } => {
                for index in std::mem::take(&mut self.open) {
                    self::event(out, &json!({"type": "content_block_stop", "index": index}));
                }
                let (stop_reason, stop_sequence) = encode_stop(stop.as_ref());
                let mut usage = usage.unwrap_or_default();
                if usage.input == 0 {
                    usage.input = self.input_tokens.unwrap_or(0);
                }
                self::event(
                    out,
                    &json!({
                        "type": "message_delta",
                        "delta": {"stop_reason": stop_reason, "stop_sequence": stop_sequence},
                        "usage": usage_value(&usage),
                    }),
                );
            }
            StreamEvent::Error(error) => {
                let error = ClientError::upstream(error, "upstream_error");
                out.push_str(&ClientFormat::Anthropic.error_event(&error));
            }
            StreamEvent::End => self::event(out, &json!({"type": "message_stop"})),
        }
    }
}
