//! A client's request body, read for a deployment of another format and written for it.
//! Nothing may panic.
//!
//! Input: one byte choosing the client's format (`% 3`: Chat Completions, Responses or
//! Anthropic) and the target's (`/ 3 % 4`), then the body.

#![no_main]

use keygate_llm::ClientFormat;
use keygate_llm::translate::{self, Format, TargetOptions};
use libfuzzer_sys::fuzz_target;

const CLIENTS: [ClientFormat; 3] = [
    ClientFormat::OpenAi,
    ClientFormat::Responses,
    ClientFormat::Anthropic,
];
const TARGETS: [Format; 4] = [
    Format::OpenAi,
    Format::Responses,
    Format::Anthropic,
    Format::Gemini,
];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let choice = usize::from(choice);
    let source = CLIENTS[choice % 3];
    let target = TARGETS[choice / 3 % 4];
    if let Ok(request) = translate::decode_request(source, body, target) {
        let _ = translate::encode_request(target, &request, "m", &TargetOptions::default());
    }
});
