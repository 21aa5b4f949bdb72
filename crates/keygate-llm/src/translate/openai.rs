//! OpenAI's Chat Completions format: requests in, requests out, whole answers, streamed
//! `chat.completion.chunk` events and error bodies.

mod error;
mod request;
mod response;
mod stream;

use serde_json::{Value, json};

use super::ir::Part;

pub use self::error::error_message;
pub use self::request::{decode_request, encode_request};
pub use self::response::{decode_response, encode_response};
pub use self::stream::{Decoder, Encoder};

/// An assistant turn's text, joined, and its tool calls in OpenAI's shape.
fn text_and_calls(content: &[Part]) -> (String, Vec<Value>) {
    let mut text = String::new();
    let mut calls = Vec::new();
    for part in content {
        match part {
            Part::Text(piece) => text.push_str(piece),
            Part::ToolCall(call) => calls.push(json!({
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            })),
            _ => {}
        }
    }
    (text, calls)
}
