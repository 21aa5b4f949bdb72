//! Being watched, as an operator sees it: alerts delivered to a webhook receiver that checks
//! them with the `standardwebhooks` package, through real `keygate serve` processes.
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

mod receiver;
mod webhooks;
