//! The `keygate` binary: parses the command line and hands over to library code.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Two rustls crypto providers in one process panic at first use; pick one up front.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = keygate::cli::Cli::parse();
    keygate::run(cli)
}
