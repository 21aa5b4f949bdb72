//! Being watched, as an operator sees it, through real `keygate serve` processes: alerts
//! delivered to a webhook receiver that checks them with the `standardwebhooks` package,
//! anomalies detected and acted on, leak reports that quarantine keys, and the scanner rule for
//! keygate's key format.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "../support/process.rs"]
mod process;
#[path = "../support/python.rs"]
mod python;

mod anomalies;
mod cluster;
mod geoip;
mod leaks;
mod receiver;
mod scanner_rule;
mod webhooks;
