//! keygate's secret scanner. Rules in the gitleaks format ([`rules`]) are compiled once into a
//! [`Scanner`], which a source ([`source`]: a working tree, the staged changes, the whole git
//! history) feeds from several threads; what it finds ([`Finding`]) is written as text, JSON
//! or SARIF ([`output`]) and can be held against a baseline ([`baseline`]).
//!
//! The entry point is [`scan`]: a target and options in, a [`Report`] out.

pub mod baseline;
pub mod finding;
pub mod hook;
pub mod output;
pub mod rules;
pub mod scanner;
pub mod source;

pub use finding::Finding;
pub use rules::{RuleSet, RulesError};
pub use scanner::{Origin, Scanner, ScannerError};
pub use source::{Options, Progress, Quiet, Report, ScanError, Target, scan};
