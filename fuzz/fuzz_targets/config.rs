//! The configuration file, read as `keygate serve` reads it: `config::resolve`, then
//! `check_gateway`. Nothing may panic, and neither an error nor the settings' `Debug` form
//! shows the value of a variable that an `env::NAME` credential reads.
//!
//! Input: the TOML text. A file that sets `[anomalies] geoip_database` is skipped, as that
//! opens the file it names.

#![no_main]

use std::collections::BTreeMap;

use figment::Figment;
use figment::providers::{Format, Toml};
use keygate::cli::StoreArgs;
use keygate::config::{self, Sources};
use libfuzzer_sys::fuzz_target;

/// The variables the seeds' `env::NAME` credentials read, with values found nowhere else.
const ENV: [(&str, &str); 4] = [
    ("GROQ_API_KEY", "gsk-fuzz-credential-groq-7d41"),
    ("ANTHROPIC_API_KEY", "fuzz-credential-anthropic-2c9e"),
    ("GROQ_KEY", "fuzz-credential-groq-key-51aa"),
    ("SSO_SECRET", "fuzz-credential-sso-secret-e03f"),
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let figment = Figment::new().merge(Toml::string(text));
    if figment.find_value("anomalies.geoip_database").is_ok() {
        return;
    }
    let sources = Sources {
        figment,
        env: ENV
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<BTreeMap<_, _>>(),
    };
    let shown = match config::resolve(&sources, &StoreArgs::default(), None) {
        Ok(settings) => match config::check_gateway(&settings, &sources) {
            Ok(()) => format!("{settings:?}"),
            Err(err) => format!("{err} {err:?}"),
        },
        Err(err) => format!("{err} {err:?}"),
    };
    for (name, value) in ENV {
        // A value the file itself holds may be shown as part of the file.
        if !text.contains(value) {
            assert!(
                !shown.contains(value),
                "the value of {name} is shown: {shown}"
            );
        }
    }
});
