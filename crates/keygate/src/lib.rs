//! The keygate command line: `serve`, and commands that talk to the admin API or, where they
//! must, to the store directly.

pub mod cli;
mod client;
mod commands;
pub mod config;
mod output;
mod telemetry;

use std::process::ExitCode;

pub use client::CliError;

/// Runs a parsed command line and returns the process exit code (see `docs/cli.md`).
pub fn run(cli: cli::Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return output::fail(&CliError::Other(err.into())),
    };
    match runtime.block_on(commands::dispatch(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => output::fail(&err),
    }
}
