//! The command line of `keygate scan`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

/// What `keygate scan` reads and how it answers.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScanArgs {
    #[command(subcommand)]
    pub command: Option<ScanCommand>,
    /// Directory, file or git repository to scan (default: the current directory).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Scan what `git commit` would record: the staged changes (for a pre-commit hook).
    #[arg(long, conflicts_with = "history")]
    pub staged: bool,
    /// Scan the whole git history: every blob of every branch, tag and remote, once.
    #[arg(long)]
    pub history: bool,
    /// Read files that `.gitignore` (and `.ignore`) leave out.
    #[arg(long, conflicts_with_all = ["staged", "history"])]
    pub no_ignore: bool,
    /// Rules in the gitleaks format (default: `.gitleaks.toml` at PATH, else the built-in
    /// rules). `[extend] useDefault = true` builds on the built-in ones.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<PathBuf>,
    /// Also run the rules that are off by default (generic high-entropy assignments).
    #[arg(long)]
    pub all_rules: bool,
    #[arg(long, value_enum, default_value = "human")]
    pub format: ScanFormat,
    /// Write the report to FILE instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Leave out the findings this baseline holds.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Write this scan's findings as a baseline to FILE (it holds no secret).
    #[arg(long, value_name = "FILE")]
    pub write_baseline: Option<PathBuf>,
    /// Ask the keygate server whether each keygate key found is valid, revoked or unknown.
    #[arg(long)]
    pub verify: bool,
    /// Report each keygate key found to the server's leak endpoint: it is quarantined at once.
    #[arg(long)]
    pub report: bool,
    /// The keygate server for --verify and --report.
    #[arg(
        long,
        env = "KEYGATE_URL",
        default_value = "http://127.0.0.1:8080",
        value_name = "URL"
    )]
    pub url: String,
    /// The exit code when secrets are found.
    #[arg(long, default_value_t = 1, value_name = "CODE")]
    pub exit_code: u8,
    /// Scanning threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// No progress bar (it is shown only on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ScanFormat {
    Human,
    Json,
    Sarif,
}

#[derive(Debug, Subcommand)]
pub enum ScanCommand {
    /// Install a git pre-commit hook that refuses a commit adding a secret
    /// (`keygate scan --staged`).
    InstallHook(InstallHookArgs),
}

#[derive(Debug, Args)]
pub struct InstallHookArgs {
    /// The repository (default: the one holding the current directory).
    #[arg(value_name = "PATH")]
    pub path: Option<PathBuf>,
    /// Replace a pre-commit hook that keygate did not write.
    #[arg(long)]
    pub force: bool,
}
