//! The master key: an AES-256 KEK held in memory. It comes from a 0600 file in the data
//! directory, created on first start (the `local` provider, refused if group or others can
//! read it), or from the `KEYGATE_MASTER_KEY` variable (the `env` provider).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use secrecy::{ExposeSecret, SecretBox};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::CryptoError;

/// A public fingerprint of a KEK: the first 8 bytes of SHA-256 over a domain tag and the key.
/// It names the key in the store and in errors without revealing it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KekId(String);

impl KekId {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn from_stored(text: String) -> Self {
        Self(text)
    }
}

impl std::fmt::Display for KekId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key-encryption key. Redacted in `Debug`, zeroized on drop.
pub struct MasterKey {
    bytes: SecretBox<[u8; 32]>,
    id: KekId,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({}, [REDACTED])", self.id)
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"keygate-kek-id-v1");
        hasher.update(bytes);
        // The id names the key material, not where it was read from: the same key moved from
        // the file to the environment still opens the store.
        let id = format!("aes256:{}", hex::encode(&hasher.finalize()[..8]));
        Self {
            bytes: SecretBox::new(Box::new(bytes)),
            id: KekId(id),
        }
    }

    pub fn generate() -> Result<Self, CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(Self::from_bytes(*bytes))
    }

    pub fn id(&self) -> &KekId {
        &self.id
    }

    /// Reads the `env` provider's value: 32 bytes of standard base64.
    pub fn from_env_value(text: &str) -> Result<Self, CryptoError> {
        Self::from_base64(text.trim()).ok_or(CryptoError::EnvKeyMalformed)
    }

    pub(crate) fn expose(&self) -> &[u8; 32] {
        self.bytes.expose_secret()
    }

    /// Loads the key file at `path`, creating it (mode 0600, exclusively) if it does not exist.
    /// A file readable by group or others is refused rather than silently fixed.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::MasterKeyIo {
            path: path.to_owned(),
            source,
        };
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(dir).map_err(io_err)?;
        }
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(mut file) => {
                let key = Self::generate()?;
                let text = Zeroizing::new(STANDARD.encode(key.expose()));
                file.write_all(text.as_bytes()).map_err(io_err)?;
                file.write_all(b"\n").map_err(io_err)?;
                file.sync_all().map_err(io_err)?;
                Ok(key)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(io_err(e)),
        }
    }

    /// Loads an existing key file, refusing one that group or others can read.
    pub fn load(path: &Path) -> Result<Self, CryptoError> {
        let io_err = |source| CryptoError::MasterKeyIo {
            path: path.to_owned(),
            source,
        };
        let mode = fs::metadata(path).map_err(io_err)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(CryptoError::MasterKeyPermissions {
                path: path.to_owned(),
                mode,
            });
        }
        let text = Zeroizing::new(fs::read_to_string(path).map_err(io_err)?);
        Self::from_base64(text.trim()).ok_or_else(|| CryptoError::MasterKeyMalformed {
            path: path.to_owned(),
        })
    }

    /// Parses 32 bytes of standard base64.
    pub fn from_base64(text: &str) -> Option<Self> {
        let decoded = Zeroizing::new(STANDARD.decode(text).ok()?);
        let bytes: [u8; 32] = decoded.as_slice().try_into().ok()?;
        Some(Self::from_bytes(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_0600_file_then_loads_the_same_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data/master.key");
        let created = MasterKey::load_or_create(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let loaded = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(created.id(), loaded.id());
        assert_eq!(created.expose(), loaded.expose());
    }

    #[test]
    fn refuses_a_world_readable_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        MasterKey::load_or_create(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = MasterKey::load_or_create(&path).unwrap_err();
        assert!(matches!(
            err,
            CryptoError::MasterKeyPermissions { mode: 0o644, .. }
        ));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn refuses_a_malformed_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        fs::write(&path, "not base64 at all").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(CryptoError::MasterKeyMalformed { .. })
        ));
    }

    #[test]
    fn env_value_names_the_same_key_as_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let file_key = MasterKey::load_or_create(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let env_key = MasterKey::from_env_value(&text).unwrap();
        assert_eq!(env_key.id(), file_key.id());
        assert!(matches!(
            MasterKey::from_env_value("c2hvcnQ="),
            Err(CryptoError::EnvKeyMalformed)
        ));
    }

    #[test]
    fn debug_is_redacted_and_ids_differ() {
        let a = MasterKey::generate().unwrap();
        let b = MasterKey::generate().unwrap();
        assert_ne!(a.id(), b.id());
        assert!(format!("{a:?}").contains("REDACTED"));
        assert!(a.id().as_str().starts_with("aes256:"));
    }
}
