//! Stream translation, one event at a time: a decoder per upstream format turns each
//! server-sent event into common events, an encoder per client format writes them out. Nothing
//! is held back beyond what the target format needs to say an event.

use super::ir::StreamEvent;
use super::{DecodeError, Format, anthropic, gemini, openai, responses};

/// Reads an upstream's events.
#[derive(Debug)]
pub enum StreamDecoder {
    OpenAi(openai::Decoder),
    Responses(responses::Decoder),
    Anthropic(anthropic::Decoder),
    Gemini(gemini::Decoder),
}

impl StreamDecoder {
    pub fn new(format: Format) -> Self {
        match format {
            Format::OpenAi => Self::OpenAi(openai::Decoder::default()),
            Format::Responses => Self::Responses(responses::Decoder::default()),
            Format::Anthropic => Self::Anthropic(anthropic::Decoder::default()),
            Format::Gemini => Self::Gemini(gemini::Decoder::default()),
        }
    }

    fn format(&self) -> Format {
        match self {
            Self::OpenAi(_) => Format::OpenAi,
            Self::Responses(_) => Format::Responses,
            Self::Anthropic(_) => Format::Anthropic,
            Self::Gemini(_) => Format::Gemini,
        }
    }

    /// Reads one event's data, appending what it says to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let format = self.format();
        let read = match self {
            Self::OpenAi(decoder) => decoder.push(data, out),
            Self::Responses(decoder) => decoder.push(data, out),
            Self::Anthropic(decoder) => decoder.push(data, out),
            Self::Gemini(decoder) => decoder.push(data, out),
        };
        read.ok_or(DecodeError(format))
    }

    /// The finished response object of a Responses API stream, once it said it.
    pub fn response(&self) -> Option<&str> {
        match self {
            Self::Responses(decoder) => decoder.response(),
            _ => None,
        }
    }

    /// The upstream's body ended. Returns whether the stream was complete; a format without
    /// an end marker (Gemini) says its last events now.
    pub fn end(&mut self, out: &mut Vec<StreamEvent>) -> bool {
        match self {
            Self::OpenAi(decoder) => decoder.end(out),
            Self::Responses(decoder) => decoder.end(out),
            Self::Anthropic(decoder) => decoder.end(out),
            Self::Gemini(decoder) => decoder.end(out),
        }
    }
}

/// Writes events in a client's format.
#[derive(Debug)]
pub enum StreamEncoder {
    OpenAi(openai::Encoder),
    Responses(Box<responses::Encoder>),
    Anthropic(anthropic::Encoder),
    Gemini(gemini::Encoder),
}

impl StreamEncoder {
    /// `include_usage`: an OpenAI client asked for the usage chunk.
    pub fn new(format: Format, include_usage: bool) -> Self {
        match format {
            Format::OpenAi => Self::OpenAi(openai::Encoder::new(include_usage)),
            Format::Responses => Self::Responses(Box::default()),
            Format::Anthropic => Self::Anthropic(anthropic::Encoder::default()),
            Format::Gemini => Self::Gemini(gemini::Encoder::default()),
        }
    }

    /// The finished response object of a Responses API stream, once written.
    pub fn response(&self) -> Option<&str> {
        match self {
            Self::Responses(encoder) => encoder.response(),
            _ => None,
        }
    }

    /// Appends `event`'s server-sent events to `out`.
    pub fn encode(&mut self, event: &StreamEvent, out: &mut String) {
        match self {
            Self::OpenAi(encoder) => encoder.encode(event, out),
            Self::Responses(encoder) => encoder.encode(event, out),
            Self::Anthropic(encoder) => encoder.encode(event, out),
            Self::Gemini(encoder) => encoder.encode(event, out),
        }
    }
}
