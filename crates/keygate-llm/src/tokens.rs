//! Token counting for streams whose provider reported no usage: OpenAI's own tokenizers
//! (tiktoken, shipped in the binary), loaded on first use.

use std::sync::OnceLock;

use serde::Deserialize;
use tiktoken_rs::CoreBPE;

fn o200k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::o200k_base().ok()).as_ref()
}

fn cl100k() -> Option<&'static CoreBPE> {
    static BPE: OnceLock<Option<CoreBPE>> = OnceLock::new();
    BPE.get_or_init(|| tiktoken_rs::cl100k_base().ok()).as_ref()
}

/// The tokenizer closest to `model`: `cl100k_base` for GPT-3.5 and GPT-4 (before 4o), and
/// `o200k_base` for everything else, a fair estimate for models with tokenizers of their own.
fn tokenizer(model: &str) -> Option<&'static CoreBPE> {
    let name = model.rsplit('/').next().unwrap_or(model);
    let older = name.starts_with("gpt-3.5")
        || (name.starts_with("gpt-4")
            && !name.starts_with("gpt-4o")
            && !name.starts_with("gpt-4.1"))
        || name.starts_with("text-embedding");
    if older { cl100k() } else { o200k() }
}

/// Counts the tokens of `text`.
pub fn count(model: &str, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    tokenizer(model).map_or_else(
        // Without a tokenizer, the usual four characters per token.
        || (text.len() as u64).div_ceil(4),
        |bpe| bpe.encode_ordinary(text).len() as u64,
    )
}

#[derive(Deserialize)]
struct Prompt<'a> {
    #[serde(borrow, default)]
    messages: Vec<Message<'a>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    name: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Content<'a> {
    Text(#[serde(borrow)] std::borrow::Cow<'a, str>),
    Parts(#[serde(borrow)] Vec<Part<'a>>),
}

#[derive(Deserialize)]
struct Part<'a> {
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// Counts the prompt tokens of a chat request as OpenAI's cookbook does: the text of every
/// message, plus three tokens of framing per message and three to prime the answer.
pub fn count_prompt(model: &str, request: &[u8]) -> u64 {
    let Ok(prompt) = serde_json::from_slice::<Prompt<'_>>(request) else {
        return 0;
    };
    let mut total = 3;
    for message in &prompt.messages {
        total += 3;
        match &message.content {
            Some(Content::Text(text)) => total += count(model, text),
            Some(Content::Parts(parts)) => {
                for part in parts {
                    total += part.text.as_deref().map_or(0, |t| count(model, t));
                }
            }
            None => {}
        }
        if let Some(name) = &message.name {
            total += 1 + count(model, name);
        }
    }
    total
}

/// Counts the prompt tokens of a request body in the client's `format`: an Anthropic request
/// keeps its system prompt, tool results and tools apart from its messages.
pub fn count_body(format: crate::ClientFormat, model: &str, body: &[u8]) -> u64 {
    match format {
        crate::ClientFormat::Anthropic => crate::translate::anthropic::decode_count_request(body)
            .map_or(0, |request| count_request(model, &request)),
        crate::ClientFormat::OpenAi => count_prompt(model, body),
    }
}

/// Estimates the input tokens of a request in the common form: its system prompt, messages
/// (text, tool calls and results) and tool definitions, with the same framing as
/// [`count_prompt`]. Images are not counted.
pub fn count_request(model: &str, request: &crate::translate::ir::ChatRequest) -> u64 {
    use crate::translate::ir::Part;
    fn part(model: &str, item: &Part) -> u64 {
        match item {
            Part::Text(text) => count(model, text),
            Part::Image(_) => 0,
            Part::ToolCall(call) => count(model, &call.name) + count(model, &call.arguments),
            Part::ToolResult(result) => result.content.iter().map(|p| part(model, p)).sum(),
        }
    }
    let mut total = 3;
    for system in &request.system {
        total += 3 + count(model, system);
    }
    for message in &request.messages {
        total += 3 + message.content.iter().map(|p| part(model, p)).sum::<u64>();
    }
    for tool in &request.tools {
        total += count(model, &tool.name)
            + tool.description.as_deref().map_or(0, |d| count(model, d))
            + count(model, &tool.parameters.to_string());
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_with_the_models_tokenizer() {
        assert_eq!(count("gpt-4o", "hello world"), 2);
        assert_eq!(count("gpt-3.5-turbo", "hello world"), 2);
        assert_eq!(count("gpt-4o", ""), 0);
        let request = br#"{"model":"gpt-4o","messages":[
            {"role":"system","content":"You are terse."},
            {"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#;
        // 3 + (3 + 4) + (3 + 2)
        assert_eq!(count_prompt("gpt-4o", request), 15);
        let anthropic = br#"{"model":"m","max_tokens":5,"system":"You are terse.",
            "messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#;
        assert_eq!(
            count_body(crate::ClientFormat::Anthropic, "gpt-4o", anthropic),
            15,
            "the system prompt counts as a message would"
        );
    }
}
