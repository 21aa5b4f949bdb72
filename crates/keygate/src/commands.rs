//! One module per command group; `dispatch` routes a parsed command line to it.

mod admin;
mod anomalies;
mod audit;
mod kek;
mod keys;
mod limits;
mod projects;
mod run;
mod scan;
mod secrets;
mod serve;
mod usage;
mod webhooks;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use keygate_core::SystemClock;
use keygate_crypto::{Kek, KekRing, KeyPresence, LocalKeyring, MasterKey, Pkcs11Config, Pkcs11Kek};
use keygate_server::Keygate;
use keygate_store::Store;
use secrecy::SecretString;

use crate::CliError;
use crate::cli::{Cli, Command, StoreArgs};
use crate::config::{KekProvider, Settings, Sources, resolve};

/// Runs a command; the result is the process exit code (non-zero only for `run`, whose
/// child's code it passes on).
pub async fn dispatch(cli: Cli) -> Result<u8, CliError> {
    let config = cli.config.as_deref();
    if let Command::Run(args) = cli.command {
        return run::run(args).await;
    }
    if let Command::Scan(args) = cli.command {
        return scan::run(args).await;
    }
    match cli.command {
        Command::Serve(args) => serve::serve(config, args).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Projects(command) => projects::run(command).await,
        Command::Secrets(command) => secrets::run(command).await,
        Command::Admin(command) => admin::run(config, command).await,
        Command::Audit(command) => audit::run(config, command).await,
        Command::Usage(args) => usage::run(args).await,
        Command::Webhooks(command) => webhooks::run(command).await,
        Command::Anomalies(command) => anomalies::run(command).await,
        Command::Review(args) => anomalies::review(args).await,
        Command::Kek(command) => kek::run(config, command).await,
        Command::Run(_) | Command::Scan(_) => Ok(()),
    }
    .map(|()| 0)
}

impl From<crate::config::ConfigError> for CliError {
    fn from(err: crate::config::ConfigError) -> Self {
        CliError::Invalid(err.to_string())
    }
}

/// Fetches a `…/due` listing and prints it as JSON or as a table of `columns`.
async fn show_due(
    args: &crate::cli::DueArgs,
    path: &str,
    columns: &[(&str, &str)],
) -> Result<(), CliError> {
    let client = crate::client::AdminClient::new(&args.api)?;
    let mut query = vec![(
        "within_seconds",
        args.within.map_or(0, |w| w.as_secs()).to_string(),
    )];
    if let Some(project) = &args.project {
        query.push(("project", project.clone()));
    }
    let page = client.get(path, &query).await?;
    if args.api.json {
        crate::output::json(&page);
    } else {
        let items = page["data"].as_array().cloned().unwrap_or_default();
        crate::output::rows(&items, columns);
    }
    Ok(())
}

/// The file behind a `sqlite:` URL, if it is one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    Some(PathBuf::from(path))
}

/// Settings for a command that works on an existing store, never creating one.
fn local_settings(config: Option<&Path>, store: &StoreArgs) -> Result<Settings, CliError> {
    let settings = resolve(&Sources::from_process(config)?, store, None)?;
    if let Some(path) = sqlite_path(&settings.database_url)
        && !path.exists()
    {
        return Err(CliError::Invalid(format!(
            "no keygate store at {}: run this where `keygate serve` runs, or pass --data-dir / \
             --database-url",
            path.display()
        )));
    }
    Ok(settings)
}

async fn open_store(settings: &Settings) -> Result<Arc<dyn Store>, CliError> {
    keygate_store::connect(&settings.database_url)
        .await
        .map_err(|e| CliError::StoreUnavailable(e.to_string()))
}

/// The environment variable of the `env` KEK provider.
const MASTER_KEY_VAR: &str = "KEYGATE_MASTER_KEY";
/// The environment variable that holds the PKCS#11 token's user PIN.
const PKCS11_PIN_VAR: &str = "KEYGATE_PKCS11_PIN";

/// Whether a missing local key file may be created (by `serve`) or must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyFile {
    CreateIfMissing,
    MustExist,
}

/// The configured KEK: the key file, or the environment variable.
fn open_kek(settings: &Settings, file: KeyFile) -> Result<Arc<dyn Kek>, CliError> {
    let from_env = std::env::var(MASTER_KEY_VAR).ok();
    let provider = settings.kek.unwrap_or(if from_env.is_some() {
        KekProvider::Env
    } else {
        KekProvider::Local
    });
    let key = match provider {
        KekProvider::Env => {
            let value = from_env.ok_or_else(|| {
                CliError::Invalid(format!(
                    "kek = \"env\" needs {MASTER_KEY_VAR}: 32 bytes of base64"
                ))
            })?;
            MasterKey::from_env_value(&value)
        }
        KekProvider::Pkcs11 => return open_pkcs11(settings, file),
        KekProvider::Local => {
            let path = &settings.master_key_file;
            if file == KeyFile::MustExist && !path.exists() {
                return Err(CliError::Invalid(format!(
                    "no master key at {}: point --data-dir or --master-key-file at the server's",
                    path.display()
                )));
            }
            // The keyring also reads a rotation's `.next` and `.previous` files.
            return LocalKeyring::open(path, file == KeyFile::CreateIfMissing)
                .map(|ring| Arc::new(ring) as Arc<dyn Kek>)
                .map_err(|e| CliError::Invalid(e.to_string()));
        }
    };
    key.map(|k| Arc::new(k) as Arc<dyn Kek>)
        .map_err(|e| CliError::Invalid(e.to_string()))
}

/// The KEK inside a PKCS#11 token, with the local key file (if there is one) to unwrap what
/// it wrapped before the move into the token; `keygate kek rotate` moves those data keys.
fn open_pkcs11(settings: &Settings, file: KeyFile) -> Result<Arc<dyn Kek>, CliError> {
    let token = pkcs11_kek(settings, file)?;
    Ok(Arc::new(KekRing::new(token, local_companions(settings)?)))
}

/// The local keyring as an unwrap-only companion, when its file exists.
fn local_companions(settings: &Settings) -> Result<Vec<Arc<dyn Kek>>, CliError> {
    if !settings.master_key_file.exists() {
        return Ok(Vec::new());
    }
    let ring = LocalKeyring::open(&settings.master_key_file, false)
        .map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(vec![Arc::new(ring)])
}

/// The KEK inside a PKCS#11 token: generated there on first start, never read out.
fn pkcs11_kek(settings: &Settings, file: KeyFile) -> Result<Arc<dyn Kek>, CliError> {
    let token = settings.pkcs11.token.as_deref().ok_or_else(|| {
        CliError::Invalid("kek = \"pkcs11\" needs pkcs11_token (the token's label)".into())
    })?;
    let pin = std::env::var(PKCS11_PIN_VAR)
        .map(SecretString::from)
        .map_err(|_| {
            CliError::Invalid(format!(
                "kek = \"pkcs11\" needs {PKCS11_PIN_VAR}: the user PIN"
            ))
        })?;
    let presence = match file {
        KeyFile::CreateIfMissing => KeyPresence::GenerateIfMissing,
        KeyFile::MustExist => KeyPresence::MustExist,
    };
    let kek = Pkcs11Kek::open(
        &Pkcs11Config {
            module: &settings.pkcs11.module,
            token_label: token,
            pin: &pin,
            key_label: &settings.pkcs11.key_label,
        },
        presence,
    )
    .map_err(|e| CliError::Invalid(e.to_string()))?;
    Ok(Arc::new(kek))
}

/// Opens keygate on an existing store with its existing master key.
async fn open_local(settings: &Settings) -> Result<Keygate, CliError> {
    let kek = open_kek(settings, KeyFile::MustExist)?;
    let store = open_store(settings).await?;
    Keygate::open(store, kek, Arc::new(SystemClock))
        .await
        .map_err(|e| CliError::Invalid(e.to_string()))
}
