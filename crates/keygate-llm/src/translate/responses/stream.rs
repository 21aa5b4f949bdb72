//! The Responses API's streamed events, read into common events and written from them:
//! `response.created` and `response.in_progress`, then per output item
//! `response.output_item.added`, its content (`response.content_part.added`,
//! `response.output_text.delta` … `.done`, `response.content_part.done`, or
//! `response.function_call_arguments.delta` … `.done`) and `response.output_item.done`, and
//! last `response.completed` (or `response.incomplete`) carrying the whole response. Every
//! event names itself in `type`, the SSE `event:` line says the same, and each carries a
//! `sequence_number`. The official SDKs rebuild the response from these and check that
//! items keep their ids from `added` to `done` to the final response.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::response::{
    created_at, decode_usage, function_call, response_object, status, stop_reason,
};
use super::{item_id, response_id};
use crate::translate::ir::{ErrorKind, StopReason, StreamEvent, ToolCall, UpstreamError, Usage};
use crate::translate::value::{Obj, owned_str};

/// Reads a Responses stream into common events.
#[derive(Debug, Default)]
pub struct Decoder {
    /// The open output item: its index upstream and our block number. One at a time, as the
    /// common form has it: another item's start closes it, and what comes for an item that is
    /// not open is left out.
    open: Option<Opened>,
    next_block: usize,
    refused: bool,
    finished: bool,
    /// The finished response object, as the upstream's last event carried it.
    response: Option<String>,
}

/// The output item open upstream: its index there, our block number, and whether it is a
/// function call (whose deltas are arguments) or a message (whose deltas are text).
#[derive(Debug, Clone, Copy)]
struct Opened {
    output_index: u64,
    block: usize,
    call: bool,
}

impl Decoder {
    /// The open block an event of `output_index` belongs to, when it is of the kind asked.
    fn block(&self, data: &Obj, call: bool) -> Option<usize> {
        let index = data.get("output_index")?.as_u64()?;
        self.open
            .filter(|open| open.output_index == index && open.call == call)
            .map(|open| open.block)
    }

    fn close(&mut self, out: &mut Vec<StreamEvent>) {
        if let Some(open) = self.open.take() {
            out.push(StreamEvent::BlockStop { index: open.block });
        }
    }

    /// One event's data.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Option<()> {
        if data == b"[DONE]" {
            return Some(());
        }
        let event: Obj = serde_json::from_slice(data).ok()?;
        // The response is whole at its last event: what comes after says nothing more.
        if self.finished {
            return Some(());
        }
        match event.get("type")?.as_str()? {
            "response.created" => {
                let response = event.get("response")?;
                out.push(StreamEvent::Start {
                    id: owned_str(response.get("id")),
                    model: owned_str(response.get("model")),
                    input_tokens: None,
                });
            }
            "response.output_item.added" => {
                let index = event.get("output_index")?.as_u64()?;
                let item = event.get("item")?;
                self.close(out);
                let block = self.next_block;
                let call = item.get("type").and_then(Value::as_str) == Some("function_call");
                match item.get("type").and_then(Value::as_str) {
                    Some("message") => out.push(StreamEvent::TextStart { index: block }),
                    Some("function_call") => {
                        // A call is answered by its id: one is made when the upstream gave none.
                        let id = [item.get("call_id"), item.get("id")]
                            .into_iter()
                            .map(owned_str)
                            .find(|id| !id.is_empty())
                            .unwrap_or_else(|| format!("call_{block}"));
                        out.push(StreamEvent::ToolStart {
                            index: block,
                            id,
                            name: owned_str(item.get("name")),
                        });
                    }
                    // Reasoning and hosted tools' items carry nothing the common form holds.
                    _ => return Some(()),
                }
                self.next_block += 1;
                self.open = Some(Opened {
                    output_index: index,
                    block,
                    call,
                });
            }
            kind @ ("response.output_text.delta" | "response.refusal.delta") => {
                self.refused |= kind == "response.refusal.delta";
                if let Some(index) = self.block(&event, false) {
                    out.push(StreamEvent::Text {
                        index,
                        text: owned_str(event.get("delta")),
                    });
                }
            }
            "response.function_call_arguments.delta" => {
                if let Some(index) = self.block(&event, true) {
                    out.push(StreamEvent::ToolArguments {
                        index,
                        json: owned_str(event.get("delta")),
                    });
                }
            }
            "response.output_item.done" => {
                let index = event.get("output_index").and_then(Value::as_u64);
                if index.is_some() && self.open.map(|open| open.output_index) == index {
                    self.close(out);
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = event.get("response")?.as_object()?;
                let called = response
                    .get("output")
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.iter().any(|i| i["type"] == "function_call"));
                self.close(out);
                let stop = if self.refused {
                    Some(StopReason::Refusal)
                } else {
                    stop_reason(response, called)
                };
                out.push(StreamEvent::Finish {
                    stop,
                    usage: response.get("usage").and_then(decode_usage),
                });
                out.push(StreamEvent::End);
                self.finished = true;
                self.response = Some(Value::Object(response.clone()).to_string());
            }
            "response.failed" => {
                let error = event.get("response").and_then(|r| r.get("error"));
                out.push(StreamEvent::Error(UpstreamError {
                    kind: ErrorKind::Api,
                    message: error
                        .and_then(|e| e.get("message"))
                        .and_then(Value::as_str)
                        .unwrap_or("the upstream's response failed")
                        .to_owned(),
                }));
            }
            "error" => out.push(StreamEvent::Error(UpstreamError {
                kind: ErrorKind::Api,
                message: event
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the upstream reported an error")
                    .to_owned(),
            })),
            _ => {}
        }
        Some(())
    }

    /// The upstream's body ended: complete only after the response did.
    pub fn end(&mut self, _out: &mut Vec<StreamEvent>) -> bool {
        self.finished
    }

    /// The finished response object (JSON), once the stream said it.
    pub fn response(&self) -> Option<&str> {
        self.response.as_deref()
    }
}

/// An output item being written.
#[derive(Debug)]
struct Open {
    output_index: usize,
    id: String,
    content: OpenContent,
}

#[derive(Debug)]
enum OpenContent {
    Text(String),
    Call(ToolCall),
}

/// Writes common events as the Responses API's streamed events.
#[derive(Debug, Default)]
pub struct Encoder {
    id: String,
    model: String,
    created_at: u64,
    sequence: u64,
    input_tokens: Option<u64>,
    /// Output items by output index: finished ones whole, open ones as added.
    output: Vec<Value>,
    /// Open items by block number.
    open: HashMap<usize, Open>,
    /// The finished response object, once written.
    finished: Option<String>,
}

impl Encoder {
    /// The finished response object (JSON), once written.
    pub fn response(&self) -> Option<&str> {
        self.finished.as_deref()
    }

    fn event(&mut self, out: &mut String, mut data: Value) {
        data["sequence_number"] = self.sequence.into();
        self.sequence += 1;
        let kind = data["type"].as_str().unwrap_or("error");
        out.push_str("event: ");
        out.push_str(kind);
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    }

    fn snapshot(&self, status: &str, incomplete: Value, usage: Option<&Usage>) -> Value {
        response_object(
            &self.id,
            &self.model,
            self.created_at,
            status,
            incomplete,
            self.output.clone(),
            usage,
        )
    }

    fn open(&mut self, index: usize, content: OpenContent, out: &mut String) {
        let output_index = self.output.len();
        let prefix = match content {
            OpenContent::Text(_) => "msg",
            OpenContent::Call(_) => "fc",
        };
        let id = item_id(prefix, &self.id, output_index);
        let item = match &content {
            OpenContent::Text(_) => json!({
                "id": id, "type": "message", "status": "in_progress", "role": "assistant",
                "content": [],
            }),
            OpenContent::Call(call) => function_call(&id, call, "in_progress"),
        };
        self.output.push(item.clone());
        self.event(
            out,
            json!({"type": "response.output_item.added", "output_index": output_index, "item": item}),
        );
        if matches!(content, OpenContent::Text(_)) {
            self.event(
                out,
                json!({
                    "type": "response.content_part.added",
                    "item_id": id,
                    "output_index": output_index,
                    "content_index": 0,
                    "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []},
                }),
            );
        }
        self.open.insert(
            index,
            Open {
                output_index,
                id,
                content,
            },
        );
    }

    fn close(&mut self, index: usize, out: &mut String) {
        let Some(open) = self.open.remove(&index) else {
            return;
        };
        let Open {
            output_index,
            id,
            content,
        } = open;
        let item = match content {
            OpenContent::Text(text) => {
                let part =
                    json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
                self.event(
                    out,
                    json!({
                        "type": "response.output_text.done",
                        "item_id": id,
                        "output_index": output_index,
                        "content_index": 0,
                        "text": text,
                        "logprobs": [],
                    }),
                );
                self.event(
                    out,
                    json!({
                        "type": "response.content_part.done",
                        "item_id": id,
                        "output_index": output_index,
                        "content_index": 0,
                        "part": part,
                    }),
                );
                json!({
                    "id": id, "type": "message", "status": "completed", "role": "assistant",
                    "content": [part],
                })
            }
            OpenContent::Call(call) => {
                self.event(
                    out,
                    json!({
                        "type": "response.function_call_arguments.done",
                        "item_id": id,
                        "output_index": output_index,
                        "name": call.name,
                        "arguments": call.arguments,
                    }),
                );
                function_call(&id, &call, "completed")
            }
        };
        if let Some(slot) = self.output.get_mut(output_index) {
            slot.clone_from(&item);
        }
        self.event(
            out,
            json!({"type": "response.output_item.done", "output_index": output_index, "item": item}),
        );
    }

    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start {
                id: _,
                model,
                input_tokens,
            } => {
                self.id = response_id();
                self.model.clone_from(model);
                self.created_at = created_at();
                self.input_tokens = *input_tokens;
                let response = self.snapshot("in_progress", Value::Null, None);
                self.event(
                    out,
                    json!({"type": "response.created", "response": response}),
                );
                self.event(
                    out,
                    json!({"type": "response.in_progress", "response": response}),
                );
            }
            StreamEvent::TextStart { index } => {
                self.open(*index, OpenContent::Text(String::new()), out);
            }
            StreamEvent::Text { index, text } => {
                if !self.open.contains_key(index) {
                    self.open(*index, OpenContent::Text(String::new()), out);
                }
                let Some(open) = self.open.get_mut(index) else {
                    return;
                };
                let OpenContent::Text(so_far) = &mut open.content else {
                    return;
                };
                so_far.push_str(text);
                let data = json!({
                    "type": "response.output_text.delta",
                    "item_id": open.id,
                    "output_index": open.output_index,
                    "content_index": 0,
                    "delta": text,
                    "logprobs": [],
                });
                self.event(out, data);
            }
            StreamEvent::ToolStart { index, id, name } => {
                let call = ToolCall {
                    id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                };
                self.open(*index, OpenContent::Call(call), out);
            }
            StreamEvent::ToolArguments { index, json } => {
                let Some(open) = self.open.get_mut(index) else {
                    return;
                };
                let OpenContent::Call(call) = &mut open.content else {
                    return;
                };
                call.arguments.push_str(json);
                let data = json!({
                    "type": "response.function_call_arguments.delta",
                    "item_id": open.id,
                    "output_index": open.output_index,
                    "delta": json,
                });
                self.event(out, data);
            }
            StreamEvent::BlockStop { index } => self.close(*index, out),
            StreamEvent::Finish { stop, usage } => {
                let mut open: Vec<usize> = self.open.keys().copied().collect();
                open.sort_unstable();
                for index in open {
                    self.close(index, out);
                }
                // Unknown (an upstream that reports none in its streams) stays unknown: `null`.
                let usage = match (usage, self.input_tokens) {
                    (Some(usage), known) if usage.input == 0 => Some(Usage {
                        input: known.unwrap_or(0),
                        ..*usage
                    }),
                    (Some(usage), _) => Some(*usage),
                    (None, Some(input)) => Some(Usage {
                        input,
                        ..Usage::default()
                    }),
                    (None, None) => None,
                };
                let (status, incomplete) = status(stop.as_ref());
                let kind = if status == "completed" {
                    "response.completed"
                } else {
                    "response.incomplete"
                };
                let response = self.snapshot(status, incomplete, usage.as_ref());
                self.finished = Some(response.to_string());
                self.event(out, json!({"type": kind, "response": response}));
            }
            StreamEvent::Error(error) => {
                let data = json!({
                    "type": "error",
                    "code": "upstream_error",
                    "message": error.message,
                    "param": null,
                });
                self.event(out, data);
            }
            StreamEvent::End => {}
        }
    }
}
