//! OpenAI's error bodies.

use serde_json::Value;

/// The message of an OpenAI error body.
pub fn error_message(body: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(body).ok()?;
    Some(value.get("error")?.get("message")?.as_str()?.to_owned())
}
