//! Google Gemini's `generateContent` format: requests out, whole answers
//! (`GenerateContentResponse`), streamed answers (`streamGenerateContent?alt=sse`, one whole
//! `GenerateContentResponse` per event and no end marker) and error bodies.

pub(crate) mod embeddings;
mod error;
mod request;
mod response;
mod stream;

pub use self::error::error_message;
pub use self::request::encode_request;
pub use self::response::{decode_response, encode_response};
pub use self::stream::{Decoder, Encoder};

// Thought signatures ride in call ids both ways: answers put them there when they are read,
// and requests take them back out when the calls are written.

/// The signature Google documents for a function call that no Gemini model made.
const FOREIGN_CALL_SIGNATURE: &str = "skip_thought_signature_validator";

/// The id keygate gives a call, carrying Gemini's thought signature when it had one, so the
/// signature goes back with the call (clients echo ids, not signatures).
fn signed_call_id(base: String, signature: Option<&str>) -> String {
    match signature {
        Some(signature) => {
            let safe: String = signature
                .chars()
                .filter(|c| *c != '=')
                .map(|c| match c {
                    '+' => '-',
                    '/' => '_',
                    c => c,
                })
                .collect();
            format!("{base}__sig__{safe}")
        }
        None => base,
    }
}

/// The thought signature a call id carries (standard base64, padded).
fn signature_of(id: &str) -> Option<String> {
    let (_, safe) = id.split_once("__sig__")?;
    let mut signature: String = safe
        .chars()
        .map(|c| match c {
            '-' => '+',
            '_' => '/',
            c => c,
        })
        .collect();
    while !signature.len().is_multiple_of(4) {
        signature.push('=');
    }
    Some(signature)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::response::parts;
    use super::*;
    use crate::translate::TargetOptions;
    use crate::translate::ir::{ChatRequest, Part, Role, ToolCall};

    #[test]
    fn a_thought_signature_travels_in_the_call_id() {
        for signature in ["CiQB0e2Kb+/x9w==", "CiQB0e2Kb+/x9wA=", "CiQB0e2Kb+/x9wAB"] {
            let id = signed_call_id("call_r_0".to_owned(), Some(signature));
            assert!(
                id.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'),
                "an id Anthropic and OpenAI accept: {id}"
            );
            assert_eq!(signature_of(&id).as_deref(), Some(signature));
        }
        assert_eq!(signature_of("call_r_0"), None);
    }

    #[test]
    fn calls_go_back_with_their_signature_or_the_placeholder() {
        let mut calls = 0;
        let candidate = json!({"content": {"role": "model", "parts": [
            {"functionCall": {"name": "a", "args": {}}, "thoughtSignature": "c2ln"},
            {"functionCall": {"name": "b", "args": {}}},
        ]}});
        let parts = parts(&candidate, "r", &mut calls).unwrap();
        let request = ChatRequest {
            messages: vec![
                crate::translate::ir::Message {
                    role: Role::User,
                    content: vec![Part::Text("go".into())],
                },
                crate::translate::ir::Message {
                    role: Role::Assistant,
                    content: parts,
                },
            ],
            ..ChatRequest::default()
        };
        let body = encode_request(&request, &TargetOptions::default()).unwrap();
        let sent = &body["contents"][1]["parts"];
        assert_eq!(sent[0]["thoughtSignature"], "c2ln");
        assert!(sent[1].get("thoughtSignature").is_none(), "{sent}");

        let foreign = ChatRequest {
            messages: vec![crate::translate::ir::Message {
                role: Role::Assistant,
                content: vec![Part::ToolCall(ToolCall {
                    id: "toolu_1".into(),
                    name: "a".into(),
                    arguments: "{}".into(),
                })],
            }],
            ..ChatRequest::default()
        };
        let body = encode_request(&foreign, &TargetOptions::default()).unwrap();
        assert_eq!(
            body["contents"][0]["parts"][0]["thoughtSignature"],
            FOREIGN_CALL_SIGNATURE
        );
    }
}
