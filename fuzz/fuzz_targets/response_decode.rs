//! An upstream's whole answer and error body, read in every format; every answer read is
//! written back for the clients' formats. Nothing may panic.
//!
//! Input: two bytes of HTTP status for the error body, then the body.

#![no_main]

use keygate_llm::ClientFormat;
use keygate_llm::translate::{self, Format};
use libfuzzer_sys::fuzz_target;

const FORMATS: [Format; 4] = [
    Format::OpenAi,
    Format::Responses,
    Format::Anthropic,
    Format::Gemini,
];
const CLIENTS: [ClientFormat; 3] = [
    ClientFormat::OpenAi,
    ClientFormat::Responses,
    ClientFormat::Anthropic,
];

fuzz_target!(|data: &[u8]| {
    let (status, body) = match data {
        [hi, lo, body @ ..] => (u16::from_be_bytes([*hi, *lo]), body),
        _ => (500, data),
    };
    for format in FORMATS {
        if let Ok(response) = translate::decode_response(format, body) {
            for client in [Format::OpenAi, Format::Responses, Format::Anthropic] {
                let _ = translate::encode_response(client, &response);
            }
        }
        let error = translate::decode_error(format, status, body);
        for client in CLIENTS {
            let _ = translate::encode_error(client, &error, "upstream_error");
        }
    }
});
