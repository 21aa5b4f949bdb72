//! `keygate run --secret NAME=VAR -- CMD`: fetches secrets with an API key and starts CMD
//! with them in its environment only. Nothing is written to disk; the keygate key itself is
//! not passed on.

use std::io::IsTerminal;
use std::process::Stdio;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use reqwest::Method;
use tokio::signal::unix::{SignalKind, signal};
use zeroize::Zeroizing;

use crate::CliError;
use crate::cli::{ApiArgs, RunArgs};
use crate::client::{AdminClient, segment};

/// Variables that hold keygate's own credentials: never handed to the child.
const WITHHELD: [&str; 5] = [
    "KEYGATE_API_KEY",
    "KEYGATE_TOKEN",
    "KEYGATE_MASTER_KEY",
    "KEYGATE_PKCS11_PIN",
    "KEYGATE_DATABASE_URL",
];

/// One `SECRET=ENV_VAR` mapping.
#[derive(Debug)]
struct Mapping {
    secret: String,
    var: String,
}

fn parse_mapping(text: &str) -> Result<Mapping, CliError> {
    let bad = || {
        CliError::Invalid(format!(
            "--secret {text}: expected SECRET=ENV_VAR, e.g. openai-prod=OPENAI_API_KEY"
        ))
    };
    let (secret, var) = text.split_once('=').ok_or_else(bad)?;
    let var_ok = var
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if secret.is_empty() || !var_ok {
        return Err(bad());
    }
    Ok(Mapping {
        secret: secret.to_owned(),
        var: var.to_owned(),
    })
}

pub async fn run(args: RunArgs) -> Result<u8, CliError> {
    let mappings = args
        .secrets
        .iter()
        .map(|m| parse_mapping(m))
        .collect::<Result<Vec<_>, _>>()?;
    let api_key = match (&args.api_key, &args.id_token_file) {
        (Some(key), _) => Zeroizing::new(key.clone()),
        (None, Some(path)) => federated_token(&args.url, path, &mappings).await?,
        (None, None) => {
            return Err(CliError::Invalid(
                "no credential: set KEYGATE_API_KEY to a key with a secrets:read scope, or \
                 KEYGATE_ID_TOKEN_FILE to a file holding a token of a trusted issuer"
                    .into(),
            ));
        }
    };
    let client = AdminClient::new(&ApiArgs {
        url: args.url.clone(),
        token: Some(api_key.to_string()),
        json: false,
    })?;
    let mut values: Vec<(String, Zeroizing<String>)> = Vec::with_capacity(mappings.len());
    for mapping in &mappings {
        let reply = client
            .call(
                Method::GET,
                &format!("/v1/secrets/{}", segment(&mapping.secret)),
                None,
                &[],
            )
            .await?;
        let value = Zeroizing::new(reply.body["value"].as_str().unwrap_or_default().to_owned());
        values.push((mapping.var.clone(), value));
    }

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::Invalid("no command to run after `--`".into()))?;
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit());
    for name in WITHHELD {
        command.env_remove(name);
    }
    for (var, value) in &values {
        command.env(var, value.as_str());
    }
    let mut child = command
        .spawn()
        .map_err(|e| CliError::Invalid(format!("cannot start {program}: {e}")))?;
    drop(values);
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);

    let interactive = std::io::stdin().is_terminal();
    let watch = |kind: SignalKind| signal(kind).map_err(|e| CliError::Other(e.into()));
    let mut interrupt = watch(SignalKind::interrupt())?;
    let mut terminate = watch(SignalKind::terminate())?;
    let mut hangup = watch(SignalKind::hangup())?;
    let mut quit = watch(SignalKind::quit())?;
    let mut user1 = watch(SignalKind::user_defined1())?;
    let mut user2 = watch(SignalKind::user_defined2())?;
    let status = loop {
        let sig = tokio::select! {
            status = child.wait() => break status.map_err(|e| CliError::Other(e.into()))?,
            _ = interrupt.recv() => Signal::SIGINT,
            _ = terminate.recv() => Signal::SIGTERM,
            _ = hangup.recv() => Signal::SIGHUP,
            _ = quit.recv() => Signal::SIGQUIT,
            _ = user1.recv() => Signal::SIGUSR1,
            _ = user2.recv() => Signal::SIGUSR2,
        };
        // At a terminal, Ctrl-C and Ctrl-\ already reach the child (it shares our process
        // group); passing them on would deliver them twice.
        let from_terminal = matches!(sig, Signal::SIGINT | Signal::SIGQUIT) && interactive;
        if let (Some(pid), false) = (pid, from_terminal) {
            // The child may have exited in between; then there is nothing to pass on.
            let _ = kill(pid, sig);
        }
    };
    Ok(exit_code(status))
}

/// Exchanges the JWT in `path` (RFC 8693) for a keygate token that reads the mapped secrets
/// only.
async fn federated_token(
    url: &str,
    path: &std::path::Path,
    mappings: &[Mapping],
) -> Result<Zeroizing<String>, CliError> {
    const MAX_TOKEN_BYTES: u64 = 8 * 1024;
    let unreadable =
        |e: std::io::Error| CliError::Invalid(format!("--id-token-file {}: {e}", path.display()));
    let size = tokio::fs::metadata(path).await.map_err(unreadable)?.len();
    if size > MAX_TOKEN_BYTES {
        return Err(CliError::Invalid(format!(
            "--id-token-file {}: larger than a token can be",
            path.display()
        )));
    }
    let text = Zeroizing::new(tokio::fs::read_to_string(path).await.map_err(unreadable)?);
    let scope = mappings
        .iter()
        .map(|m| format!("secrets:read:{}", m.secret))
        .collect::<Vec<_>>()
        .join(" ");
    let client = AdminClient::public(&ApiArgs {
        url: url.to_owned(),
        token: None,
        json: false,
    })?;
    client.exchange_token(text.trim(), &scope).await
}

/// The exit code a shell would report: the child's own, or 128 + the signal that ended it.
fn exit_code(status: std::process::ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .and_then(|c| u8::try_from(c).ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_parse_strictly() {
        let m = parse_mapping("openai-prod=OPENAI_API_KEY").unwrap();
        assert_eq!(
            (m.secret.as_str(), m.var.as_str()),
            ("openai-prod", "OPENAI_API_KEY")
        );
        for bad in ["novalue", "=VAR", "name=", "name=1VAR", "name=A-B"] {
            assert!(parse_mapping(bad).is_err(), "{bad}");
        }
    }
}
