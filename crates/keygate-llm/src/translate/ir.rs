//! The common form every wire format is read into and written from: a chat request, its
//! response, and the events of a streamed response. It holds what the formats share; what only
//! one format can say is refused at the edge (see [`super::TranslateError`]), never dropped.

use serde_json::Value;

/// A chat request, whichever API it came in through.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChatRequest {
    /// The format the client spoke, for naming its fields in errors.
    pub source: Option<super::Format>,
    /// The model as the client named it (an alias); the deployment's model replaces it.
    pub model: String,
    /// System instructions, in order.
    pub system: Vec<String>,
    pub messages: Vec<Message>,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub top_k: Option<u64>,
    pub stop: Vec<String>,
    pub stream: bool,
    pub tools: Vec<Tool>,
    pub tool_choice: Option<ToolChoice>,
    /// `Some(false)` when the client asked for at most one tool call per turn.
    pub parallel_tool_calls: Option<bool>,
    /// An end-user id for the provider's abuse monitoring.
    pub user: Option<String>,
    pub seed: Option<i64>,
    pub presence_penalty: Option<f64>,
    pub frequency_penalty: Option<f64>,
    /// Ask for a JSON object as the answer (OpenAI's `json_object`, Gemini's JSON MIME type).
    pub json_output: bool,
    /// A budget of thinking tokens (Anthropic's `thinking`, Gemini's `thinkingConfig`).
    pub thinking_budget: Option<u64>,
    /// Thinking as the model sees fit (Anthropic's `adaptive` thinking).
    pub adaptive_thinking: bool,
    /// How much effort to spend (Anthropic's `output_config.effort`).
    pub effort: Option<Effort>,
    /// Fields left out on reading because they are hints whose absence changes no answer's
    /// meaning elsewhere (cache markers, context editing, deferred tool loading, thinking of
    /// earlier turns): named, so that a strict group can refuse them instead.
    pub hints: Vec<String>,
    /// The index of a final assistant turn in an Anthropic client's messages: a prefill,
    /// which only Anthropic continues.
    pub prefill_at: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
    /// Instructions given in the course of the conversation (a `system` turn among an
    /// Anthropic client's messages); the instructions before it are [`ChatRequest::system`].
    System,
}

/// How much effort a reasoning model spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effort {
    Low,
    Medium,
    High,
    Max,
}

impl Effort {
    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "low" => Self::Low,
            "medium" => Self::Medium,
            "high" => Self::High,
            "xhigh" | "max" => Self::Max,
            _ => return None,
        })
    }

    /// The effort a budget of thinking tokens stands for.
    pub fn of_budget(budget: u64) -> Self {
        match budget {
            0..=4_096 => Self::Low,
            4_097..=16_384 => Self::Medium,
            _ => Self::High,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Text(String),
    Image(Image),
    ToolCall(ToolCall),
    ToolResult(ToolResult),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    Base64 { media_type: String, data: String },
    Url(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// The arguments as JSON text (OpenAI sends text, and streams it in pieces).
    pub arguments: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ToolResult {
    /// The id of the call this answers.
    pub call_id: String,
    /// The called function's name, found from the call (Gemini answers by name).
    pub name: Option<String>,
    /// Text and images.
    pub content: Vec<Part>,
    pub is_error: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    /// A JSON schema of the arguments.
    pub parameters: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    Auto,
    None,
    /// Some tool must be called.
    Required,
    Named(String),
}

/// Why the model stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    MaxTokens,
    /// One of the request's stop sequences, when the provider says which.
    StopSequence(Option<String>),
    ToolUse,
    /// The provider's safety systems withheld or cut the answer.
    ContentFilter,
    /// The model declined to answer.
    Refusal,
}

/// Token counts as the provider reported them. `input` includes cached tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    /// Input tokens read from the provider's prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the provider's prompt cache.
    pub cache_write: u64,
}

impl From<Usage> for keygate_core::TokenCounts {
    fn from(usage: Usage) -> Self {
        let clamp = |n: u64| n.min(crate::usage::MAX_TOKENS);
        Self {
            prompt: clamp(usage.input),
            completion: clamp(usage.output),
            cached: clamp(usage.cache_read),
        }
    }
}

/// A complete, non-streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    pub id: String,
    pub model: String,
    /// Text and tool calls, in order.
    pub content: Vec<Part>,
    pub stop: Option<StopReason>,
    pub usage: Option<Usage>,
}

/// One event of a streamed answer. Blocks (text or one tool call) are numbered from 0 in the
/// order they open; at most one is open at a time.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    Start {
        id: String,
        model: String,
        /// Input tokens, when the provider tells them up front.
        input_tokens: Option<u64>,
    },
    TextStart {
        index: usize,
    },
    Text {
        index: usize,
        text: String,
    },
    ToolStart {
        index: usize,
        id: String,
        name: String,
    },
    /// A piece of a tool call's arguments (JSON text).
    ToolArguments {
        index: usize,
        json: String,
    },
    BlockStop {
        index: usize,
    },
    /// The answer is complete: why it stopped, and the usage when known.
    Finish {
        stop: Option<StopReason>,
        usage: Option<Usage>,
    },
    /// An error the upstream reported inside its stream.
    Error(UpstreamError),
    /// The end of the stream.
    End,
}

/// An error as a provider reported it, in terms every format can say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamError {
    pub kind: ErrorKind,
    pub message: String,
}

/// The class of an error; each format has a name for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    Authentication,
    Permission,
    NotFound,
    TooLarge,
    RateLimited,
    Overloaded,
    Api,
}

impl ErrorKind {
    pub fn from_status(status: u16) -> Self {
        match status {
            401 => Self::Authentication,
            403 => Self::Permission,
            404 => Self::NotFound,
            413 => Self::TooLarge,
            429 => Self::RateLimited,
            503 | 529 => Self::Overloaded,
            400..=499 => Self::InvalidRequest,
            _ => Self::Api,
        }
    }
}

impl ChatResponse {
    /// Builds the answer that a stream of events amounts to: text of one block joined, tool
    /// arguments joined, the last stop reason and usage. Used to check that a translated
    /// stream says what the translated whole answer says.
    pub fn from_events<'a>(events: impl IntoIterator<Item = &'a StreamEvent>) -> Self {
        let mut response = ChatResponse {
            id: String::new(),
            model: String::new(),
            content: Vec::new(),
            stop: None,
            usage: None,
        };
        let mut blocks: Vec<(usize, Part)> = Vec::new();
        let mut input_tokens = None;
        for event in events {
            match event {
                StreamEvent::Start {
                    id,
                    model,
                    input_tokens: tokens,
                } => {
                    response.id.clone_from(id);
                    response.model.clone_from(model);
                    input_tokens = *tokens;
                }
                StreamEvent::TextStart { index } => {
                    blocks.push((*index, Part::Text(String::new())));
                }
                StreamEvent::Text { index, text } => {
                    match blocks.iter_mut().find(|b| b.0 == *index) {
                        Some((_, Part::Text(so_far))) => so_far.push_str(text),
                        _ => blocks.push((*index, Part::Text(text.clone()))),
                    }
                }
                StreamEvent::ToolStart { index, id, name } => blocks.push((
                    *index,
                    Part::ToolCall(ToolCall {
                        id: id.clone(),
                        name: name.clone(),
                        arguments: String::new(),
                    }),
                )),
                StreamEvent::ToolArguments { index, json } => {
                    if let Some((_, Part::ToolCall(call))) =
                        blocks.iter_mut().find(|b| b.0 == *index)
                    {
                        call.arguments.push_str(json);
                    }
                }
                StreamEvent::Finish { stop, usage } => {
                    response.stop.clone_from(stop);
                    response.usage = usage.map(|mut usage| {
                        if usage.input == 0 {
                            usage.input = input_tokens.unwrap_or(0);
                        }
                        usage
                    });
                }
                StreamEvent::BlockStop { .. } | StreamEvent::Error(_) | StreamEvent::End => {}
            }
        }
        response.content = blocks
            .into_iter()
            .map(|(_, part)| part)
            .filter(|part| !matches!(part, Part::Text(text) if text.is_empty()))
            .collect();
        response
    }
}
