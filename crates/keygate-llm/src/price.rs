//! The price table: dollars per million tokens per model, shipped defaults plus the
//! configuration's overrides, and the cost of a request in integer micro-dollars.

use std::collections::{BTreeMap, HashMap};

use keygate_core::{MicroUsd, TokenCounts};
use serde::Deserialize;

/// Prices of one model, in micro-dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelPrice {
    pub input: MicroUsd,
    pub cached_input: MicroUsd,
    pub output: MicroUsd,
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

    /// The cost of a request, rounded to the nearest micro-dollar; `None` if the model's
    /// price is unknown.
    pub fn cost(&self, model: &str, tokens: TokenCounts) -> Option<MicroUsd> {
        let price = self.get(model)?;
        let cached = tokens.cached.min(tokens.prompt);
        let per_million = i128::from(tokens.prompt - cached) * i128::from(price.input.0)
            + i128::from(cached) * i128::from(price.cached_input.0)
            + i128::from(tokens.completion) * i128::from(price.output.0);
        let micros = (per_million + 500_000) / 1_000_000;
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
        assert_eq!(table.cost("my-own-model", TokenCounts::default()), None);
    }
}
