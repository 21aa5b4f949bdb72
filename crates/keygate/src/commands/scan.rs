//! `keygate scan`: find secrets in a tree, the staged changes or the history, write them as
//! text, JSON or SARIF, and — for keygate's own keys — ask the server about them or report
//! them so they are quarantined.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use keygate_scan::baseline::Baseline;
use keygate_scan::output::{self, Format};
use keygate_scan::source::{Options, Progress, Target};
use keygate_scan::{RuleSet, Scanner};

use crate::CliError;
use crate::cli::{ScanArgs, ScanCommand, ScanFormat};

mod server;

/// The exit code, per `--exit-code`, when something is found; 0 when nothing is.
pub async fn run(args: ScanArgs) -> Result<u8, CliError> {
    if let Some(ScanCommand::InstallHook(hook)) = args.command {
        let path = hook.path.unwrap_or_else(|| PathBuf::from("."));
        let program = std::env::current_exe().map_err(|err| CliError::Other(err.into()))?;
        let written = keygate_scan::hook::install(&path, &program, hook.force)
            .map_err(|err| CliError::Invalid(err.to_string()))?;
        crate::output::note(&format!(
            "installed {}: commits that add a secret are refused",
            written.display()
        ));
        return Ok(0);
    }
    let root = args.path.clone().unwrap_or_else(|| PathBuf::from("."));
    let rules = load_rules(&args, &root)?;
    let scanner = Scanner::new(&rules).map_err(|err| CliError::Invalid(err.to_string()))?;
    let target = if args.staged {
        Target::Staged { repository: root }
    } else if args.history {
        Target::History { repository: root }
    } else {
        Target::Tree {
            root,
            ignore_files: !args.no_ignore,
        }
    };
    let mut options = Options::default();
    if let Some(threads) = args.threads {
        options.threads = threads.max(1);
    }
    let show_progress = !args.no_progress && std::io::stderr().is_terminal();
    let (mut report, scanner) = tokio::task::spawn_blocking(move || {
        let bar = Bar::new(show_progress);
        let report = keygate_scan::scan(&scanner, &target, &options, &bar);
        bar.finish();
        report.map(|report| (report, scanner))
    })
    .await
    .map_err(|err| CliError::Other(err.into()))?
    .map_err(|err| CliError::Invalid(err.to_string()))?;

    // The baseline is read before one is written over it, and written from every finding,
    // known or not: `--baseline F --write-baseline F` refreshes F without dropping entries.
    let baseline = args
        .baseline
        .as_deref()
        .map(Baseline::load)
        .transpose()
        .map_err(|err| CliError::Invalid(err.to_string()))?;
    if let Some(path) = &args.write_baseline {
        Baseline::write(path, &report.findings)
            .map_err(|err| CliError::Invalid(err.to_string()))?;
    }
    let known = baseline.map_or(0, |baseline| baseline.filter(&mut report.findings));
    if args.verify || args.report {
        let server = server::Server::new(&args.url)?;
        if args.verify {
            server.verify(&mut report.findings).await?;
        }
        if args.report {
            server.report(&mut report.findings).await?;
        }
    }
    write_report(&args, &report, &scanner, known)?;
    Ok(if report.findings.is_empty() {
        0
    } else {
        args.exit_code
    })
}

/// `--rules`, else `.gitleaks.toml` at the scanned root, else the built-in rules.
fn load_rules(args: &ScanArgs, root: &Path) -> Result<RuleSet, CliError> {
    let beside = root.join(".gitleaks.toml");
    let file = args
        .rules
        .clone()
        .or_else(|| beside.is_file().then_some(beside));
    let mut rules = match file {
        Some(path) => RuleSet::load(&path),
        None => RuleSet::default_rules(),
    }
    .map_err(|err| CliError::Invalid(err.to_string()))?;
    if args.all_rules {
        rules.enable_all();
    }
    Ok(rules)
}

fn write_report(
    args: &ScanArgs,
    report: &keygate_scan::Report,
    scanner: &Scanner,
    known: usize,
) -> Result<(), CliError> {
    let format = match args.format {
        ScanFormat::Human => Format::Human,
        ScanFormat::Json => Format::Json,
        ScanFormat::Sarif => Format::Sarif,
    };
    let failed = |err: std::io::Error| CliError::Other(err.into());
    match &args.output {
        Some(path) => {
            let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(failed)?);
            output::write(format, report, scanner.rules(), known, &mut file).map_err(failed)?;
            file.flush().map_err(failed)
        }
        None => {
            let mut stdout = std::io::stdout().lock();
            match output::write(format, report, scanner.rules(), known, &mut stdout) {
                // A closed pipe (`| head`) is not a failure of the scan.
                Err(err) if err.kind() != std::io::ErrorKind::BrokenPipe => Err(failed(err)),
                _ => Ok(()),
            }
        }
    }
}

/// A progress bar on standard error, when it is a terminal: files (or blobs) and bytes.
struct Bar {
    bar: Option<indicatif::ProgressBar>,
    bytes: AtomicU64,
}

impl Bar {
    fn new(shown: bool) -> Self {
        let bar = shown.then(|| {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(
                indicatif::ProgressStyle::with_template("{spinner} {pos} files, {msg} ({elapsed})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Self {
            bar,
            bytes: AtomicU64::new(0),
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Bar {
    fn scanned(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            let total = self.bytes.fetch_add(bytes, Ordering::Relaxed) + bytes;
            bar.inc(1);
            bar.set_message(indicatif::HumanBytes(total).to_string());
        }
    }

    fn total(&self, items: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(items);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:30} {pos}/{len} blobs, {msg} ({eta} left)",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
        }
    }
}
