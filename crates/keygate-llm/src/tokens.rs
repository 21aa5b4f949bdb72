//! Token counting, for the limits' estimate of a prompt and for streams whose provider
//! reported no usage: OpenAI's own tokenizers (tiktoken, shipped in the binary), loaded on
//! first use.

use std::borrow::Cow;
use std::ops::Range;
use std::sync::OnceLock;

use serde::Deserialize;
use serde_json::value::RawValue;
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

/// The parts of a request that make its prompt, as byte spans of the body found by the one
/// reading of it ([`crate::Inbound::parse`]): its messages, system prompt and tools. Cheap to
/// clone and keep, for a count after the answer.
#[derive(Debug, Clone, Default)]
pub struct Prompt {
    pub(crate) body: bytes::Bytes,
    pub(crate) messages: Option<Range<usize>>,
    pub(crate) system: Option<Range<usize>>,
    pub(crate) tools: Option<Range<usize>>,
}

type Text<'a> = Cow<'a, str>;

/// Message content in either client format: text, or parts (text, images, Anthropic's
/// `tool_use` and `tool_result` blocks). Read by hand: serde's untagged enums buffer their
/// input, which neither borrows text nor keeps raw JSON (tool arguments) as it is.
enum Content<'a> {
    Text(Text<'a>),
    Parts(Vec<Block<'a>>),
    Other,
}

impl<'de: 'a, 'a> Deserialize<'de> for Content<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Content<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("text or an array of parts")
            }

            fn visit_borrowed_str<E>(self, text: &'de str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Borrowed(text)))
            }

            fn visit_str<E>(self, text: &str) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text.to_owned())))
            }

            fn visit_string<E>(self, text: String) -> Result<Self::Value, E> {
                Ok(Content::Text(Cow::Owned(text)))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut parts = Vec::new();
                while let Some(part) = seq.next_element::<Option<Block<'a>>>()? {
                    parts.extend(part);
                }
                Ok(Content::Parts(parts))
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                serde::de::IgnoredAny::deserialize(serde::de::value::MapAccessDeserializer::new(
                    map,
                ))?;
                Ok(Content::Other)
            }

            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }

            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Content::Other)
            }
        }
        deserializer.deserialize_any(Visitor(std::marker::PhantomData))
    }
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(borrow, default)]
    text: Option<Text<'a>>,
    /// A `tool_use` block's name and arguments.
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    input: Option<&'a RawValue>,
    /// A `tool_result` block's content.
    #[serde(borrow, default)]
    content: Option<Box<Content<'a>>>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    content: Option<Content<'a>>,
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    /// OpenAI's tool calls of an assistant turn.
    #[serde(borrow, default)]
    tool_calls: Option<Vec<Tool<'a>>>,
    /// A Responses API `function_call` item's arguments.
    #[serde(borrow, default)]
    arguments: Option<Text<'a>>,
    /// A Responses API `function_call_output` item's output.
    #[serde(borrow, default)]
    output: Option<Content<'a>>,
}

/// A tool definition (Anthropic's, or OpenAI's `function`) or an OpenAI tool call.
#[derive(Deserialize)]
struct Tool<'a> {
    #[serde(borrow, default)]
    name: Option<Text<'a>>,
    #[serde(borrow, default)]
    description: Option<Text<'a>>,
    #[serde(borrow, default)]
    input_schema: Option<&'a RawValue>,
    #[serde(borrow, default)]
    parameters: Option<&'a RawValue>,
    #[serde(borrow, default)]
    arguments: Option<Text<'a>>,
    #[serde(borrow, default)]
    function: Option<Box<Tool<'a>>>,
}

impl Prompt {
    /// The bytes of the request it is read from, held while it waits to be counted.
    pub fn len(&self) -> usize {
        self.body.len()
    }

    pub fn is_empty(&self) -> bool {
        self.body.is_empty()
    }

    fn part<'a, T: Deserialize<'a>>(&'a self, span: &Option<Range<usize>>) -> Option<T> {
        let bytes = self.body.get(span.clone()?)?;
        serde_json::from_slice(bytes).ok()
    }

    /// Estimates the prompt's tokens as OpenAI's cookbook counts a chat: the text of every
    /// message (and of the system prompt, counted as one), three tokens of framing per
    /// message and three to prime the answer; tool calls, results and definitions by their
    /// text. Images are not counted. A part that cannot be read counts nothing: the
    /// estimate never refuses a request.
    pub fn count(&self, model: &str) -> u64 {
        let text = |text: &str| count(model, text);
        let mut total = 3;
        if let Some(system) = self.part::<Content<'_>>(&self.system) {
            total += 3 + content(&system, &text);
        }
        // The Responses API's input may be one string: a single user message; a legacy
        // completion's prompt, an embedding's or a moderation's input one string or several.
        let as_message = |text| Message {
            content: Some(Content::Text(text)),
            name: None,
            tool_calls: None,
            arguments: None,
            output: None,
        };
        let messages = self
            .part::<Vec<Message<'_>>>(&self.messages)
            .or_else(|| Some(vec![as_message(self.part::<Text<'_>>(&self.messages)?)]))
            .or_else(|| {
                let texts = self.part::<Vec<Text<'_>>>(&self.messages)?;
                Some(texts.into_iter().map(as_message).collect())
            })
            .unwrap_or_default();
        for message in messages {
            total += 3;
            total += message.content.as_ref().map_or(0, |c| content(c, &text));
            if let Some(name) = &message.name {
                total += 1 + text(name);
            }
            for call in message.tool_calls.iter().flatten() {
                total += tool(call, &text);
            }
            total += message.arguments.as_deref().map_or(0, text);
            total += message.output.as_ref().map_or(0, |c| content(c, &text));
        }
        for definition in self.part::<Vec<Tool<'_>>>(&self.tools).unwrap_or_default() {
            total += tool(&definition, &text);
        }
        total
    }
}

fn content(value: &Content<'_>, text: &dyn Fn(&str) -> u64) -> u64 {
    match value {
        Content::Text(value) => text(value),
        Content::Parts(blocks) => blocks
            .iter()
            .map(|block| {
                block.text.as_deref().map_or(0, text)
                    + block.name.as_deref().map_or(0, text)
                    + block.input.map_or(0, |input| text(input.get()))
                    + block.content.as_deref().map_or(0, |c| content(c, text))
            })
            .sum(),
        Content::Other => 0,
    }
}

fn tool(tool: &Tool<'_>, text: &dyn Fn(&str) -> u64) -> u64 {
    tool.name.as_deref().map_or(0, text)
        + tool.description.as_deref().map_or(0, text)
        + tool.input_schema.map_or(0, |schema| text(schema.get()))
        + tool.parameters.map_or(0, |schema| text(schema.get()))
        + tool.arguments.as_deref().map_or(0, text)
        + tool
            .function
            .as_deref()
            .map_or(0, |function| self::tool(function, text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(body: &'static [u8]) -> Prompt {
        crate::Inbound::parse(
            crate::Endpoint::ChatCompletions,
            bytes::Bytes::from_static(body),
        )
        .unwrap()
        .prompt()
    }

    #[test]
    fn counts_with_the_models_tokenizer() {
        assert_eq!(count("gpt-4o", "hello world"), 2);
        assert_eq!(count("gpt-3.5-turbo", "hello world"), 2);
        assert_eq!(count("gpt-4o", ""), 0);
        let openai = br#"{"model":"gpt-4o","messages":[
            {"role":"system","content":"You are terse."},
            {"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#;
        // 3 + (3 + 4) + (3 + 2)
        assert_eq!(prompt(openai).count("gpt-4o"), 15);
        let anthropic = br#"{"model":"m","max_tokens":5,"system":"You are terse.",
            "messages":[{"role":"user","content":[{"type":"text","text":"hello world"}]}]}"#;
        assert_eq!(
            prompt(anthropic).count("gpt-4o"),
            15,
            "the system prompt counts as a message would"
        );
    }

    #[test]
    fn tools_calls_and_results_count_by_their_text() {
        let bare = prompt(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
        let base = bare.count("gpt-4o");
        let with_tools = prompt(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"}],
            "tools":[{"type":"function","function":{"name":"weather","description":"Weather in a city",
            "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#,
        );
        assert!(with_tools.count("gpt-4o") > base + 10);
        let openai_call = prompt(
            br#"{"model":"m","messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function",
              "function":{"name":"weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny"}]}"#,
        );
        let anthropic_call = prompt(
            br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":"hi"},
            {"role":"assistant","content":[{"type":"tool_use","id":"c1","name":"weather","input":{"city":"Paris"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"c1","content":[{"type":"text","text":"sunny"}]}]}]}"#,
        );
        let (openai, anthropic) = (openai_call.count("gpt-4o"), anthropic_call.count("gpt-4o"));
        assert!(openai > base + 6, "{openai}");
        assert_eq!(openai, anthropic, "the same conversation in either format");
        // The Responses API's input: one string, or items (calls and outputs by their text).
        let responses = |body: &'static [u8]| {
            crate::Inbound::parse(crate::Endpoint::Responses, bytes::Bytes::from_static(body))
                .unwrap()
                .prompt()
                .count("gpt-4o")
        };
        assert_eq!(
            responses(br#"{"model":"m","input":"hi"}"#),
            base,
            "a string is one user message"
        );
        let items = responses(
            br#"{"model":"m","instructions":"Be terse.","input":[{"role":"user","content":"hi"},
            {"type":"function_call","call_id":"c1","name":"weather","arguments":"{\"city\":\"Paris\"}"},
            {"type":"function_call_output","call_id":"c1","output":"sunny"}]}"#,
        );
        assert!(items > openai, "{items} > {openai}");
        let odd = prompt(br#"{"model":"m","messages":[{"role":"user","content":42}],"tools":"x"}"#);
        assert_eq!(odd.count("gpt-4o"), 6, "what cannot be read counts nothing");
    }
}
