//! The one reading of a request body: the top-level fields the gateway needs, borrowed as raw
//! JSON, with duplicates and case variants of the fields it checks refused.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The fields the gateway reads, borrowed from the body.
#[derive(Default)]
pub(super) struct Peek<'a> {
    pub(super) model: Option<&'a RawValue>,
    pub(super) stream: Option<&'a RawValue>,
    pub(super) stream_options: Option<&'a RawValue>,
    pub(super) messages: Option<&'a RawValue>,
    pub(super) input: Option<&'a RawValue>,
    pub(super) system: Option<&'a RawValue>,
    pub(super) tools: Option<&'a RawValue>,
    pub(super) max_tokens: Option<&'a RawValue>,
    pub(super) max_completion_tokens: Option<&'a RawValue>,
    pub(super) max_output_tokens: Option<&'a RawValue>,
    pub(super) instructions: Option<&'a RawValue>,
    /// The legacy completions' and the image generations' prompt.
    pub(super) prompt: Option<&'a RawValue>,
    /// How many images to make.
    pub(super) n: Option<&'a RawValue>,
}

/// Top-level keys the gateway reads. Another spelling of one of them (`MODEL`, `Stream`) is
/// refused: some upstreams match keys without regard to case, and would act on a model or a
/// stream flag keygate never checked.
const READ_KEYS: [&str; 5] = ["model", "stream", "stream_options", "messages", "input"];

/// Why a body was refused while peeking (kept apart from serde's messages, which may quote
/// input).
#[derive(Debug, Clone, Copy)]
enum PeekRefusal {
    Duplicate,
    CaseVariant,
}

impl std::fmt::Display for PeekRefusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Duplicate => "keygate:duplicate",
            Self::CaseVariant => "keygate:case-variant",
        })
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Peek<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visitor<'a> {
            type Value = Peek<'a>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object")
            }

            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Peek<'a>, M::Error> {
                let mut peek = Peek::default();
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    let slot = match key.as_ref() {
                        "model" => &mut peek.model,
                        "stream" => &mut peek.stream,
                        "stream_options" => &mut peek.stream_options,
                        "messages" => &mut peek.messages,
                        "input" => &mut peek.input,
                        // Read for the token estimate, with the messages.
                        "system" => &mut peek.system,
                        "tools" => &mut peek.tools,
                        // Read for the limits, which reserve the most output a request allows.
                        "max_tokens" => &mut peek.max_tokens,
                        "max_completion_tokens" => &mut peek.max_completion_tokens,
                        // The Responses API's names for the same.
                        "max_output_tokens" => &mut peek.max_output_tokens,
                        "instructions" => &mut peek.instructions,
                        "prompt" => &mut peek.prompt,
                        "n" => &mut peek.n,
                        other => {
                            if READ_KEYS.iter().any(|k| k.eq_ignore_ascii_case(other)) {
                                return Err(serde::de::Error::custom(PeekRefusal::CaseVariant));
                            }
                            map.next_value::<serde::de::IgnoredAny>()?;
                            continue;
                        }
                    };
                    if slot.is_some() {
                        return Err(serde::de::Error::custom(PeekRefusal::Duplicate));
                    }
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(peek)
            }
        }
        deserializer.deserialize_map(Visitor(std::marker::PhantomData))
    }
}
