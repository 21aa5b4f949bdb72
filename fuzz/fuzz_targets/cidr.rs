//! IP allow-lists and trusted proxies: `parse_ip_allow` of a list (`ip_allow` of a key,
//! `trusted_proxies` in the file) and of comma-separated text (`KEYGATE_TRUSTED_PROXIES`, split
//! and trimmed as the configuration does). Nothing may panic; every entry of an accepted list
//! is one block, and the blocks read back from their text as themselves, so what is stored and
//! shown is what is enforced.
//!
//! Input: text. Each line is an entry of a list; the whole text is also read as
//! comma-separated entries.

#![no_main]

use keygate_core::record::parse_ip_allow;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let listed: Vec<String> = text.lines().map(str::to_owned).collect();
    let separated: Vec<String> = text
        .split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(str::to_owned)
        .collect();
    for items in [listed, separated] {
        let Ok(nets) = parse_ip_allow(&items) else {
            continue;
        };
        assert_eq!(nets.len(), items.len());
        let shown: Vec<String> = nets.iter().map(ToString::to_string).collect();
        assert_eq!(parse_ip_allow(&shown).ok(), Some(nets), "{items:?}");
    }
});
