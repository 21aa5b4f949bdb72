//! The local provider's keyring: the master key file, and during a rotation `<file>.next`,
//! which already wraps; archived keys (`<file>.previous-<id>`) only unwrap. A running server
//! follows a rotation by itself: an unknown KEK id makes it reload the files, and a change to
//! them makes the next wrap reload them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KekId, MasterKey, WrappedKey};

/// Where the files of a keyring are: the current key, the next one during a rotation, and
/// the archived keys of earlier rotations (`<file>.previous-<id>`), kept for old backups.
#[derive(Debug, Clone)]
pub struct KeyringPaths {
    pub current: PathBuf,
    pub next: PathBuf,
    /// The lock a rotation holds for its whole run.
    pub lock: PathBuf,
}

impl KeyringPaths {
    pub fn new(current: &Path) -> Self {
        Self {
            current: current.to_owned(),
            next: Self::with_suffix(current, ".next"),
            lock: Self::with_suffix(current, ".lock"),
        }
    }

    fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    }

    /// Where the key `id` is archived when a rotation replaces it.
    pub fn archive(&self, id: &KekId) -> PathBuf {
        let tag: String = id
            .as_str()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .collect();
        Self::with_suffix(&self.current, &format!(".previous-{tag}"))
    }

    /// Every archived key file.
    pub fn archived(&self) -> Vec<PathBuf> {
        let dir = match self.current.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let Some(name) = self.current.file_name().and_then(|n| n.to_str()) else {
            return Vec::new();
        };
        let prefix = format!("{name}.previous");
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| {
                path.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .collect();
        found.sort();
        found
    }
}

struct Ring {
    current: Arc<MasterKey>,
    others: Vec<Arc<MasterKey>>,
    stamp: Stamp,
}

/// What the files looked like when the ring was loaded.
type Stamp = (Option<SystemTime>, Option<SystemTime>);

/// The local KEK with its rotation companions.
pub struct LocalKeyring {
    paths: KeyringPaths,
    ring: RwLock<Ring>,
}

impl std::fmt::Debug for LocalKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LocalKeyring({})", self.paths.current.display())
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn stamp(paths: &KeyringPaths) -> Stamp {
    (modified(&paths.current), modified(&paths.next))
}

/// Loads the ring. While a rotation runs, the next key is already the one that wraps, so
/// nothing new is sealed by the key being retired. A key file is created only when there is
/// none and no rotation is under way.
fn load(paths: &KeyringPaths, create: bool) -> Result<Ring, CryptoError> {
    let stamp = stamp(paths);
    let rotating = paths.next.exists();
    let file = if paths.current.exists() {
        Some(MasterKey::load(&paths.current)?)
    } else if create && !rotating {
        Some(MasterKey::load_or_create(&paths.current)?)
    } else {
        None
    };
    let mut others: Vec<Arc<MasterKey>> = Vec::new();
    let current = if rotating {
        others.extend(file.map(Arc::new));
        MasterKey::load(&paths.next)?
    } else {
        match file {
            Some(file) => file,
            None => MasterKey::load(&paths.current)?,
        }
    };
    for path in paths.archived() {
        others.push(Arc::new(MasterKey::load(&path)?));
    }
    Ok(Ring {
        current: Arc::new(current),
        others,
        stamp,
    })
}

impl LocalKeyring {
    /// Opens the keyring at `current` (the master key file), creating that file if `create`
    /// and no rotation is under way.
    pub fn open(current: &Path, create: bool) -> Result<Self, CryptoError> {
        let paths = KeyringPaths::new(current);
        let ring = load(&paths, create)?;
        Ok(Self {
            paths,
            ring: RwLock::new(ring),
        })
    }

    pub fn paths(&self) -> &KeyringPaths {
        &self.paths
    }

    fn reload(&self) -> Result<(), CryptoError> {
        let fresh = load(&self.paths, false)?;
        *self.ring.write().unwrap_or_else(PoisonError::into_inner) = fresh;
        Ok(())
    }

    fn find(&self, id: &KekId) -> Option<Arc<MasterKey>> {
        let ring = self.ring.read().unwrap_or_else(PoisonError::into_inner);
        std::iter::once(&ring.current)
            .chain(ring.others.iter())
            .find(|key| key.id() == id)
            .cloned()
    }
}

impl Kek for LocalKeyring {
    fn id(&self) -> KekId {
        self.ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .id()
            .clone()
    }

    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let stale = {
            let ring = self.ring.read().unwrap_or_else(PoisonError::into_inner);
            ring.stamp != stamp(&self.paths)
        };
        if stale {
            self.reload()?;
        }
        let current = self
            .ring
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .current
            .clone();
        Kek::wrap(current.as_ref(), plaintext, aad)
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        let key = match self.find(&wrapped.kek_id) {
            Some(key) => key,
            None => {
                // A rotation in progress (or finished) elsewhere: look at the files again.
                self.reload()?;
                self.find(&wrapped.kek_id)
                    .ok_or_else(|| CryptoError::KekMismatch {
                        expected: wrapped.kek_id.to_string(),
                        actual: self.id().to_string(),
                    })?
            }
        };
        Kek::unwrap(key.as_ref(), wrapped, aad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rotation_on_disk_is_picked_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let ring = LocalKeyring::open(&path, true).unwrap();
        let old_id = ring.id();
        let before = ring.wrap(b"dek", b"aad").unwrap();

        // Another process stages the next key and wraps with it.
        let next = MasterKey::load_or_create(&ring.paths().next).unwrap();
        let with_next = Kek::wrap(&next, b"dek2", b"aad").unwrap();
        assert_eq!(ring.unwrap(&with_next, b"aad").unwrap().as_slice(), b"dek2");
        // From then on, new wraps use the next key: nothing new is sealed by the old one.
        let during = ring.wrap(b"dek3", b"aad").unwrap();
        assert_eq!(during.kek_id, *next.id());

        // It finishes: the old key is archived, the next one becomes current.
        let archive = ring.paths().archive(&old_id);
        std::fs::hard_link(&path, &archive).unwrap();
        std::fs::rename(&ring.paths().next, &path).unwrap();
        let after = ring.wrap(b"dek4", b"aad").unwrap();
        assert_eq!(after.kek_id, *next.id());
        assert_ne!(after.kek_id, old_id);
        assert_eq!(ring.unwrap(&before, b"aad").unwrap().as_slice(), b"dek");
        assert_eq!(ring.paths().archived(), vec![archive]);
        // A fresh process finds the archive too.
        let reopened = LocalKeyring::open(&path, false).unwrap();
        assert_eq!(reopened.unwrap(&before, b"aad").unwrap().as_slice(), b"dek");

        let stranger = Kek::wrap(&MasterKey::generate().unwrap(), b"x", b"aad").unwrap();
        assert!(matches!(
            ring.unwrap(&stranger, b"aad"),
            Err(CryptoError::KekMismatch { .. })
        ));
    }

    #[test]
    fn no_key_is_created_while_a_rotation_is_under_way() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let paths = KeyringPaths::new(&path);
        let next = MasterKey::load_or_create(&paths.next).unwrap();
        let ring = LocalKeyring::open(&path, true).unwrap();
        assert_eq!(ring.id(), *next.id());
        assert!(!path.exists());
    }
}
