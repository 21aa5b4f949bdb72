//! The local provider's keyring: the master key file is the current KEK; during a rotation
//! `<file>.next` holds the new one and, after it, `<file>.previous` the old one. Both extra
//! files only unwrap. A running server picks up a rotation by itself: an unknown KEK id makes
//! it reload the files, and a changed master key file makes the next wrap reload them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::SystemTime;

use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KekId, MasterKey, WrappedKey};

/// Where the three files of a keyring are.
#[derive(Debug, Clone)]
pub struct KeyringPaths {
    pub current: PathBuf,
    pub next: PathBuf,
    pub previous: PathBuf,
}

impl KeyringPaths {
    pub fn new(current: &Path) -> Self {
        let with = |suffix: &str| {
            let mut name = current.as_os_str().to_owned();
            name.push(suffix);
            PathBuf::from(name)
        };
        Self {
            current: current.to_owned(),
            next: with(".next"),
            previous: with(".previous"),
        }
    }
}

struct Ring {
    current: Arc<MasterKey>,
    others: Vec<Arc<MasterKey>>,
    stamp: Option<SystemTime>,
}

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

fn load(paths: &KeyringPaths, create: bool) -> Result<Ring, CryptoError> {
    let current = if create {
        MasterKey::load_or_create(&paths.current)?
    } else {
        MasterKey::load(&paths.current)?
    };
    let mut others = Vec::new();
    for path in [&paths.next, &paths.previous] {
        if path.exists() {
            others.push(Arc::new(MasterKey::load(path)?));
        }
    }
    Ok(Ring {
        current: Arc::new(current),
        others,
        stamp: modified(&paths.current),
    })
}

impl LocalKeyring {
    /// Opens the keyring at `current` (the master key file), creating that file if `create`.
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
            ring.stamp != modified(&self.paths.current)
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

        // It finishes: next becomes current, current becomes previous.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::rename(&path, &ring.paths().previous).unwrap();
        std::fs::rename(&ring.paths().next, &path).unwrap();
        let after = ring.wrap(b"dek3", b"aad").unwrap();
        assert_eq!(
            after.kek_id,
            *next.id(),
            "the next wrap uses the new current key"
        );
        assert_ne!(after.kek_id, old_id);
        assert_eq!(ring.unwrap(&before, b"aad").unwrap().as_slice(), b"dek");

        let stranger = Kek::wrap(&MasterKey::generate().unwrap(), b"x", b"aad").unwrap();
        assert!(matches!(
            ring.unwrap(&stranger, b"aad"),
            Err(CryptoError::KekMismatch { .. })
        ));
    }
}
