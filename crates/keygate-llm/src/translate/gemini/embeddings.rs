//! OpenAI's embeddings request to Gemini's `batchEmbedContents`, and its answer back: one
//! content per input, `dimensions` as `outputDimensionality`, and the vectors written as
//! floats or, as OpenAI's SDKs ask by default, base64 of little-endian `f32`s. Gemini reports
//! no usage: the inputs are counted with OpenAI's tokenizer.

use base64::Engine as _;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::translate::{Format, TranslateError};

/// Gemini's most requests in one batch.
const MAX_INPUTS: usize = 100;

/// What the answer needs from the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Embedding {
    pub body: Bytes,
    pub base64: bool,
    /// The inputs' tokens, counted.
    pub tokens: u64,
    /// How many vectors the answer must hold.
    pub inputs: usize,
}

#[derive(Deserialize)]
struct Request {
    input: Value,
    #[serde(default)]
    dimensions: Option<Value>,
    #[serde(default)]
    encoding_format: Option<String>,
}

/// The `batchEmbedContents` body for `model`.
pub fn encode_request(body: &[u8], model: &str) -> Result<Embedding, TranslateError> {
    let fields: serde_json::Map<String, Value> = serde_json::from_slice(body)
        .map_err(|_| TranslateError::invalid("input", "required: a string or strings"))?;
    // What has no equivalent is refused, not dropped; `user` is a label.
    if let Some(other) = fields.keys().find(|key| {
        !matches!(
            key.as_str(),
            "model" | "input" | "dimensions" | "encoding_format" | "user"
        )
    }) {
        return Err(TranslateError::unsupported(other.clone(), Format::Gemini));
    }
    let request: Request = serde_json::from_value(Value::Object(fields))
        .map_err(|_| TranslateError::invalid("input", "required: a string or strings"))?;
    let unsupported = |what: &str| TranslateError::unsupported_use("input", what, Format::Gemini);
    let inputs: Vec<&str> = match &request.input {
        Value::String(text) => vec![text.as_str()],
        Value::Array(items) => items
            .iter()
            .map(|item| item.as_str().ok_or_else(|| unsupported("token arrays")))
            .collect::<Result<_, _>>()?,
        _ => return Err(TranslateError::invalid("input", "a string or strings")),
    };
    if inputs.is_empty() {
        return Err(TranslateError::invalid("input", "at least one input"));
    }
    if inputs.len() > MAX_INPUTS {
        return Err(unsupported("more than 100 inputs in one request"));
    }
    let dimensions = match &request.dimensions {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            value
                .as_u64()
                .filter(|d| *d > 0)
                .ok_or_else(|| TranslateError::invalid("dimensions", "a positive integer"))?,
        ),
    };
    let base64 = match request.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(_) => {
            return Err(TranslateError::invalid(
                "encoding_format",
                "`float` or `base64`",
            ));
        }
    };
    let name = format!("models/{model}");
    let requests: Vec<Value> = inputs
        .iter()
        .map(|text| {
            let mut one = json!({ "model": name, "content": { "parts": [{ "text": text }] } });
            if let Some(dimensions) = dimensions {
                one["outputDimensionality"] = json!(dimensions);
            }
            one
        })
        .collect();
    let tokens = inputs
        .iter()
        .map(|text| crate::tokens::count(model, text))
        .sum();
    Ok(Embedding {
        body: Bytes::from(json!({ "requests": requests }).to_string()),
        base64,
        tokens,
        inputs: inputs.len(),
    })
}

#[derive(Deserialize)]
struct Answer {
    embeddings: Vec<Vector>,
}

#[derive(Deserialize)]
struct Vector {
    values: Vec<f32>,
}

/// OpenAI's embedding list from Gemini's answer; `None` when it is not one, or not one
/// vector per input.
pub fn decode_response(body: &[u8], model: &str, request: &Embedding) -> Option<Bytes> {
    let answer: Answer = serde_json::from_slice(body).ok()?;
    if answer.embeddings.len() != request.inputs {
        return None;
    }
    let data: Vec<Value> = answer
        .embeddings
        .iter()
        .enumerate()
        .map(|(index, vector)| {
            let embedding = if request.base64 {
                let bytes: Vec<u8> = vector.values.iter().flat_map(|v| v.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(vector.values)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    let body = json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": { "prompt_tokens": request.tokens, "total_tokens": request.tokens },
    });
    Some(Bytes::from(body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_become_one_request_each_and_vectors_come_back_in_order() {
        let request = encode_request(
            br#"{"model":"embed","input":["hello","world"],"dimensions":3,"encoding_format":"base64"}"#,
            "gemini-embedding-001",
        )
        .unwrap();
        let sent: Value = serde_json::from_slice(&request.body).unwrap();
        assert_eq!(sent["requests"].as_array().unwrap().len(), 2);
        assert_eq!(sent["requests"][1]["model"], "models/gemini-embedding-001");
        assert_eq!(sent["requests"][1]["content"]["parts"][0]["text"], "world");
        assert_eq!(sent["requests"][0]["outputDimensionality"], 3);
        assert!(request.tokens >= 2);
        let answer = br#"{"embeddings":[{"values":[0.5,-1.0,0.25]},{"values":[1.0,0.0,2.0]}]}"#;
        let out: Value = serde_json::from_slice(
            &decode_response(answer, "gemini-embedding-001", &request).unwrap(),
        )
        .unwrap();
        assert_eq!(out["object"], "list");
        assert_eq!(out["data"][1]["index"], 1);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(out["data"][0]["embedding"].as_str().unwrap())
            .unwrap();
        let floats: Vec<f32> = bytes
            .chunks(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(floats, [0.5, -1.0, 0.25]);
        assert_eq!(out["usage"]["prompt_tokens"], request.tokens);
        let plain = encode_request(br#"{"input":"hi"}"#, "m").unwrap();
        let one = br#"{"embeddings":[{"values":[0.5,-1.0,0.25]}]}"#;
        let out: Value =
            serde_json::from_slice(&decode_response(one, "m", &plain).unwrap()).unwrap();
        assert_eq!(out["data"][0]["embedding"][1], -1.0);
        assert!(decode_response(b"{}", "m", &plain).is_none());
        assert!(
            decode_response(one, "m", &request).is_none(),
            "a vector missing"
        );
    }

    #[test]
    fn what_gemini_cannot_take_is_named() {
        let field = |body: &str| encode_request(body.as_bytes(), "m").unwrap_err();
        assert_eq!(field(r#"{"input":[[1,2,3]]}"#).field(), "input");
        assert!(
            field(r#"{"input":[[1,2,3]]}"#)
                .to_string()
                .contains("gemini")
        );
        assert_eq!(
            field(r#"{"input":"a","dimensions":-1}"#).field(),
            "dimensions"
        );
        assert_eq!(
            field(r#"{"input":"a","encoding_format":"int8"}"#).field(),
            "encoding_format"
        );
        assert_eq!(
            field(r#"{"input":"a","input_type":"query"}"#).field(),
            "input_type"
        );
        let many = format!(
            r#"{{"input":{}}}"#,
            serde_json::to_string(&vec!["x"; 101]).unwrap()
        );
        assert_eq!(field(&many).field(), "input");
    }
}
