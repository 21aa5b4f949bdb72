//! The pre-commit hook: a short script that runs `keygate scan --staged`, so a commit that
//! adds a secret is refused before it exists. It is written where git looks for hooks
//! (`core.hooksPath`, or the repository's `hooks/`), and never over a hook keygate did not
//! write unless asked.

use std::path::{Path, PathBuf};

/// Marks a hook as keygate's, so installing again replaces it quietly.
const MARKER: &str = "# keygate scan pre-commit hook";

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{path} is not in a git repository: {message}")]
    NotARepository { path: PathBuf, message: String },
    #[error(
        "{path} is a pre-commit hook keygate did not write; add `keygate scan --staged` to it, \
         or replace it with --force"
    )]
    Exists { path: PathBuf },
    #[error("could not write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the path of keygate ({0}) cannot be written into a shell script")]
    Unquotable(PathBuf),
}

/// Installs the hook in the repository at or above `repository`, running the `keygate` at
/// `program`; returns the hook's path.
pub fn install(repository: &Path, program: &Path, force: bool) -> Result<PathBuf, HookError> {
    let repo = gix::discover(repository).map_err(|err| HookError::NotARepository {
        path: repository.to_owned(),
        message: err.to_string(),
    })?;
    let hooks = hooks_dir(&repo);
    let hook = hooks.join("pre-commit");
    if let Ok(existing) = std::fs::read_to_string(&hook)
        && !existing.contains(MARKER)
        && !force
    {
        return Err(HookError::Exists { path: hook });
    }
    let program_text = program
        .to_str()
        .filter(|text| !text.contains('\''))
        .ok_or_else(|| HookError::Unquotable(program.to_owned()))?;
    let script = format!(
        "#!/bin/sh\n{MARKER}: refuses a commit that adds a secret.\n\
         # Written by `keygate scan install-hook`. After checking a finding, mark its line\n\
         # `keygate:allow`, add it to a baseline, or commit with `git commit --no-verify`.\n\
         exec '{program_text}' scan --staged --no-progress\n"
    );
    let write = |path: &Path, result: std::io::Result<()>| {
        result.map_err(|source| HookError::Write {
            path: path.to_owned(),
            source,
        })
    };
    write(&hooks, std::fs::create_dir_all(&hooks))?;
    write(&hook, std::fs::write(&hook, script))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        write(
            &hook,
            std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)),
        )?;
    }
    Ok(hook)
}

/// `core.hooksPath` (relative to the work tree, as git reads it), or `<git dir>/hooks`.
fn hooks_dir(repo: &gix::Repository) -> PathBuf {
    let configured = repo
        .config_snapshot()
        .trusted_path("core.hooksPath")
        .ok()
        .flatten();
    match configured {
        Some(path) if path.is_absolute() => path,
        Some(path) => repo.workdir().unwrap_or_else(|| repo.git_dir()).join(path),
        None => repo.git_dir().join("hooks"),
    }
}
