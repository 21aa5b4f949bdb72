//! OpenAI's Responses API (`POST /v1/responses`): requests in (instructions, a string or a
//! list of input items — messages, function calls and their outputs, reasoning items of
//! earlier turns), requests out, whole `response` objects, the streamed `response.*` events,
//! and error bodies (OpenAI's shape).

mod request;
mod response;
mod stream;

pub use self::request::{decode_request, encode_request};
pub use self::response::{decode_response, encode_response};
pub use self::stream::{Decoder, Encoder};

/// The id of an output message, made from the response's id so that one answer's items are
/// named alike wherever they are written (whole or streamed).
fn item_id(prefix: &str, response_id: &str, index: usize) -> String {
    let stem = response_id
        .strip_prefix("resp_")
        .or_else(|| response_id.strip_prefix("chatcmpl-"))
        .or_else(|| response_id.strip_prefix("msg_"))
        .unwrap_or(response_id);
    format!("{prefix}_{stem}_{index}")
}

/// A response id of keygate's own (`resp_kg…`, a UUIDv7): an upstream's ids need not be
/// unique (a local server may count from zero, Gemini may send none), and a translated answer
/// may be kept and looked up by its id.
fn response_id() -> String {
    format!("resp_kg{}", uuid::Uuid::now_v7().simple())
}
