//! A publishable key's origin rule and the origins requests name, matched against it:
//! `OriginRule::parse`, `Origin::parse` of an `Origin` header and `Origin::from_referer` of a
//! `Referer`. Nothing may panic. A rule and an origin read back from their text as
//! themselves, so what is stored and shown is what is enforced; a wildcard never matches its
//! own bare domain; an exact rule matches the one origin it names.
//!
//! Input: text. The first line is the rule; every line (the first too) is read as an `Origin`
//! and as a `Referer` value.

#![no_main]

use keygate_core::publishable::{Origin, OriginRule};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let rule = text
        .lines()
        .next()
        .and_then(|line| OriginRule::parse(line).ok());
    if let Some(rule) = &rule {
        let shown = rule.to_string();
        assert_eq!(
            OriginRule::parse(&shown).ok().as_ref(),
            Some(rule),
            "{shown}"
        );
        // `https://*.example.com` and `https://example.com`.
        if let Some((scheme, domain)) = shown.split_once("://*.") {
            let bare = Origin::parse(&format!("{scheme}://{domain}"))
                .expect("a wildcard's domain is an origin");
            assert!(!rule.matches(&bare), "{shown} matches {bare}");
        }
    }
    for line in text.lines() {
        for origin in [Origin::parse(line), Origin::from_referer(line)]
            .into_iter()
            .flatten()
        {
            let shown = origin.to_string();
            assert_eq!(Origin::parse(&shown).as_ref(), Some(&origin), "{shown}");
            let Some(rule) = &rule else { continue };
            let matched = rule.matches(&origin);
            if !rule.to_string().contains("://*.") {
                assert_eq!(matched, shown == rule.to_string(), "{rule} and {shown}");
            }
        }
    }
});
