//! Anthropic's Messages format: requests in, requests out, whole messages, streamed events
//! (`message_start`, `content_block_*`, `message_delta`, `message_stop`) and error bodies.

mod error;
mod request;
mod response;
mod stream;

use serde_json::{Value, json};

pub use self::error::error_message;
pub use self::request::{decode_count_request, decode_request, encode_request};
pub use self::response::{decode_response, encode_response};
pub use self::stream::{Decoder, Encoder};

/// The API version keygate speaks to Anthropic.
pub const API_VERSION: &str = "2023-06-01";

/// A tool call's arguments as the object Anthropic wants; text that is not an object is kept
/// as text rather than lost.
fn arguments_value(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return json!({});
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ => Value::String(arguments.to_owned()),
    }
}
