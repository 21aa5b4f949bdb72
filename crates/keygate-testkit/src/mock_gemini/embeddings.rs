//! Gemini's `models/{model}:batchEmbedContents`: one vector per request, each request naming
//! the model of the URL, at most 100 of them, as the API reference describes.

use serde_json::{Value, json};

/// The answer for `model`, or the refusal's message and field.
pub(crate) fn batch(model: &str, body: &Value) -> Result<Value, (String, String)> {
    let Some(requests) = body.get("requests").and_then(Value::as_array) else {
        return Err((
            "* BatchEmbedContentsRequest.requests: required".to_owned(),
            "requests".to_owned(),
        ));
    };
    if requests.is_empty() || requests.len() > 100 {
        return Err((
            "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
                .to_owned(),
            "requests".to_owned(),
        ));
    }
    let expected = format!("models/{model}");
    let mut embeddings = Vec::new();
    for (at, request) in requests.iter().enumerate() {
        if request.get("model").and_then(Value::as_str) != Some(expected.as_str()) {
            return Err((
                format!(
                    "* BatchEmbedContentsRequest.requests[{at}].model: the model must be {expected}"
                ),
                format!("requests[{at}].model"),
            ));
        }
        let text: Option<String> = request
            .pointer("/content/parts")
            .and_then(Value::as_array)
            .map(|parts| {
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(" ")
            });
        let Some(text) = text else {
            return Err((
                format!("* BatchEmbedContentsRequest.requests[{at}].content: required"),
                format!("requests[{at}].content"),
            ));
        };
        let dimensions = request
            .get("outputDimensionality")
            .and_then(Value::as_u64)
            .unwrap_or(8) as usize;
        // Deterministic: the text's length and position.
        let values: Vec<f32> = (0..dimensions)
            .map(|i| ((text.len() + i) % 17) as f32 / 16.0)
            .collect();
        embeddings.push(json!({ "values": values }));
    }
    Ok(json!({ "embeddings": embeddings }))
}
