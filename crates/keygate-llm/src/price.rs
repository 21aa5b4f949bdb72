//! The price table: dollars per million tokens per model, shipped defaults plus the
//! configuration's overrides, and the cost of a request in integer micro-dollars. Models
//! priced by the unit (an image, a minute of audio, a million characters of speech) carry
//! those prices too.

use std::collections::{BTreeMap, HashMap};

use keygate_core::{MicroUsd, TokenCounts};
use serde::Deserialize;

/// Prices of one model, in micro-dollars per million tokens, and per unit for the models
/// priced so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: MicroUsd,
    pub cached_input: MicroUsd,
    pub output: MicroUsd,
    pub per_image: MicroUsd,
    pub per_audio_minute: MicroUsd,
    pub per_million_characters: MicroUsd,
}

impl ModelPrice {
    /// A price by tokens only.
    pub fn tokens(input: MicroUsd, cached_input: MicroUsd, output: MicroUsd) -> Self {
        Self {
            input,
            cached_input,
            output,
            per_image: MicroUsd::ZERO,
            per_audio_minute: MicroUsd::ZERO,
            per_million_characters: MicroUsd::ZERO,
        }
    }
}

/// What a request used besides tokens, for the models priced by the unit: images made, audio
/// transcribed, characters spoken.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Units {
    pub images: u64,
    pub audio_seconds: u64,
    pub characters: u64,
}

#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: HashMap<String, ModelPrice>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ShippedPrice {
    input: MicroUsd,
    output: MicroUsd,
    cached_input: Option<MicroUsd>,
    #[serde(default)]
    per_image: MicroUsd,
    #[serde(default)]
    per_audio_minute: MicroUsd,
    #[serde(default)]
    per_million_characters: MicroUsd,
}

const SHIPPED: &str = include_str!("prices.toml");

impl PriceTable {
    /// The shipped list prices. A malformed shipped table is caught by a unit test; at run
    /// time it would leave the table empty (costs unknown) rather than stop the server.
    pub fn with_defaults() -> Self {
        let shipped: BTreeMap<String, ShippedPrice> = toml::from_str(SHIPPED).unwrap_or_default();
        let mut table = Self::default();
        for (model, price) in shipped {
            table.set(
                &model,
                ModelPrice {
                    input: price.input,
                    cached_input: price.cached_input.unwrap_or(price.input),
                    output: price.output,
                    per_image: price.per_image,
                    per_audio_minute: price.per_audio_minute,
                    per_million_characters: price.per_million_characters,
                },
            );
        }
        table
    }

    pub fn set(&mut self, model: &str, price: ModelPrice) {
        self.models.insert(model.to_owned(), price);
    }

    /// The price of `model`: by its name, by a known name it extends with a dash (a dated
    /// version), or by the part after a `vendor/` prefix.
    pub fn get(&self, model: &str) -> Option<ModelPrice> {
        let lookup = |name: &str| {
            if let Some(price) = self.models.get(name) {
                return Some(*price);
            }
            self.models
                .iter()
                .filter(|(known, _)| {
                    name.strip_prefix(known.as_str())
                        .is_some_and(|rest| rest.starts_with('-'))
                })
                .max_by_key(|(known, _)| known.len())
                .map(|(_, price)| *price)
        };
        lookup(model).or_else(|| model.rsplit_once('/').and_then(|(_, name)| lookup(name)))
    }

    /// Whether `model` has a price for a unit that `units` uses.
    pub fn prices_units(&self, model: &str, units: Units) -> bool {
        self.get(model).is_some_and(|price| {
            (units.images > 0 && price.per_image.0 > 0)
                || (units.audio_seconds > 0 && price.per_audio_minute.0 > 0)
                || (units.characters > 0 && price.per_million_characters.0 > 0)
        })
    }

    /// The cost of a request, rounded to the nearest micro-dollar; `None` if the model's
    /// price is unknown.
    pub fn cost(&self, model: &str, tokens: TokenCounts, units: Units) -> Option<MicroUsd> {
        let price = self.get(model)?;
        let cached = tokens.cached.min(tokens.prompt);
        let per_million = i128::from(tokens.prompt - cached) * i128::from(price.input.0)
            + i128::from(cached) * i128::from(price.cached_input.0)
            + i128::from(tokens.completion) * i128::from(price.output.0)
            + i128::from(units.characters) * i128::from(price.per_million_characters.0);
        // A minute's price over 60 seconds, in millionths so that it rounds once.
        let per_second_millionths =
            i128::from(units.audio_seconds) * i128::from(price.per_audio_minute.0) * 1_000_000 / 60;
        let micros = (per_million + per_second_millionths + 500_000) / 1_000_000
            + i128::from(units.images) * i128::from(price.per_image.0);
        Some(MicroUsd(i64::try_from(micros).unwrap_or(i64::MAX)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_table_parses_completely() {
        let shipped: BTreeMap<String, ShippedPrice> = toml::from_str(SHIPPED).unwrap();
        assert!(shipped.len() >= 20);
        assert_eq!(PriceTable::with_defaults().models.len(), shipped.len());
    }

    #[test]
    fn costs_in_micro_dollars() {
        let table = PriceTable::with_defaults();
        // gpt-4o: 1000 prompt tokens (200 cached) and 500 completion tokens.
        let cost = table
            .cost(
                "gpt-4o-2024-08-06",
                TokenCounts {
                    prompt: 1000,
                    completion: 500,
                    cached: 200,
                },
                Units::default(),
            )
            .unwrap();
        // 800 * 2.50 + 200 * 1.25 + 500 * 10.00 dollars per million = 7250 micro-dollars.
        assert_eq!(cost, MicroUsd(7250));
        assert_eq!(
            table.get("gpt-4o-mini").unwrap().input,
            MicroUsd(150_000),
            "the longer name wins over its prefix"
        );
        assert!(table.get("openai/gpt-4o").is_some());
        assert!(table.get("gpt-4omni").is_none());
        assert_eq!(
            table.cost("my-own-model", TokenCounts::default(), Units::default()),
            None
        );
    }

    #[test]
    fn models_priced_by_the_unit() {
        let table = PriceTable::with_defaults();
        let units = |images, audio_seconds, characters| Units {
            images,
            audio_seconds,
            characters,
        };
        let none = TokenCounts::default();
        // Two standard images at $0.04.
        assert_eq!(
            table.cost("dall-e-3", none, units(2, 0, 0)),
            Some(MicroUsd(80_000))
        );
        // 90 seconds at $0.006 a minute.
        assert_eq!(
            table.cost("whisper-1", none, units(0, 90, 0)),
            Some(MicroUsd(9_000))
        );
        // 1000 characters at $15 a million.
        assert_eq!(
            table.cost("tts-1", none, units(0, 0, 1000)),
            Some(MicroUsd(15_000))
        );
        // A model priced by tokens costs nothing more for units it does not price.
        assert_eq!(
            table.cost("gpt-4o-mini", none, units(3, 60, 10)),
            Some(MicroUsd(0))
        );
    }
}
