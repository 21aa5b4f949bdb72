//! A client's request body, read for a deployment of another format and written for it.
//! Nothing may panic.
//!
//! Input: one byte choosing the client's format (`% 3`; Gemini requests are refused) and the
//! target's (`/ 3 % 3`), then the body.

#![no_main]

use keygate_llm::translate::{self, Format, TargetOptions};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 3] = [Format::OpenAi, Format::Anthropic, Format::Gemini];

fuzz_target!(|data: &[u8]| {
    let Some((&choice, body)) = data.split_first() else {
        return;
    };
    let choice = usize::from(choice);
    let source = FORMATS[choice % 3];
    let target = FORMATS[choice / 3 % 3];
    if let Ok(request) = translate::decode_request(source, body, target) {
        let _ = translate::encode_request(target, &request, "m", &TargetOptions::default());
    }
});
