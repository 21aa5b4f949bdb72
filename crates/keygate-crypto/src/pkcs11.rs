//! The `pkcs11` KEK provider: the KEK is an AES-256 key generated inside a token (an HSM, or
//! SoftHSM2 in tests) that never leaves it. Wrapping and unwrapping are AES-GCM operations the
//! token performs on data keys; keygate only ever sees data keys.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use crate::{CryptoError, Kek, KekId, WrappedKey, sealed};

const TAG_BITS: u64 = 128;

/// Where to find the KEK: the module, the token, its PIN and the key's label.
#[derive(Debug, Clone)]
pub struct Pkcs11Config<'a> {
    pub module: &'a Path,
    pub token_label: &'a str,
    pub pin: &'a SecretString,
    pub key_label: &'a str,
}

/// Whether a missing key may be generated in the token (first start) or must exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyPresence {
    GenerateIfMissing,
    MustExist,
}

/// A KEK inside a PKCS#11 token. One per process: a module is initialised once.
pub struct Pkcs11Kek {
    // The context must outlive the session.
    session: Mutex<Session>,
    _context: Pkcs11,
    key: ObjectHandle,
    id: KekId,
}

impl std::fmt::Debug for Pkcs11Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pkcs11Kek({})", self.id)
    }
}

fn token_error(what: &'static str) -> impl Fn(cryptoki::error::Error) -> CryptoError {
    move |source| CryptoError::Pkcs11 {
        what,
        reason: source.to_string(),
    }
}

impl Pkcs11Kek {
    /// Opens the token, logs in, and finds (or generates) the AES-256 key labelled
    /// `config.key_label`. A generated key is sensitive and never extractable.
    pub fn open(config: &Pkcs11Config<'_>, presence: KeyPresence) -> Result<Self, CryptoError> {
        let context = Pkcs11::new(config.module).map_err(token_error("load the PKCS#11 module"))?;
        context
            .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
            .map_err(token_error("initialise the PKCS#11 module"))?;
        let slot = context
            .get_slots_with_token()
            .map_err(token_error("list the tokens"))?
            .into_iter()
            .find(|slot| {
                context
                    .get_token_info(*slot)
                    .is_ok_and(|info| info.label() == config.token_label)
            })
            .ok_or_else(|| CryptoError::Pkcs11TokenMissing {
                label: config.token_label.to_owned(),
            })?;
        let session = context
            .open_rw_session(slot)
            .map_err(token_error("open a session"))?;
        let pin = AuthPin::new(config.pin.expose_secret().into());
        session
            .login(UserType::User, Some(&pin))
            .map_err(token_error("log in to the token"))?;
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::Label(config.key_label.as_bytes().to_vec()),
        ];
        let found = session
            .find_objects(&template)
            .map_err(token_error("look for the key"))?;
        let key = match (found.as_slice(), presence) {
            ([key], _) => *key,
            ([], KeyPresence::GenerateIfMissing) => generate(&session, config.key_label)?,
            ([], KeyPresence::MustExist) => {
                return Err(CryptoError::Pkcs11KeyMissing {
                    label: config.key_label.to_owned(),
                });
            }
            _ => {
                return Err(CryptoError::Pkcs11KeyAmbiguous {
                    label: config.key_label.to_owned(),
                });
            }
        };
        let key_id = session
            .get_attributes(key, &[AttributeType::Id])
            .map_err(token_error("read the key id"))?
            .into_iter()
            .find_map(|a| match a {
                Attribute::Id(id) => Some(id),
                _ => None,
            })
            .unwrap_or_default();
        // The id names the key in the store: a key without one could be confused with another.
        if key_id.is_empty() {
            return Err(CryptoError::Pkcs11KeyWithoutId {
                label: config.key_label.to_owned(),
            });
        }
        let id = KekId::from_stored(format!(
            "pkcs11:{}:{}",
            config.key_label,
            hex::encode(key_id)
        ));
        Ok(Self {
            session: Mutex::new(session),
            _context: context,
            key,
            id,
        })
    }
}

/// Generates the KEK inside the token: AES-256, sensitive, never extractable, with a random
/// id that names it in keygate's store.
fn generate(session: &Session, label: &str) -> Result<ObjectHandle, CryptoError> {
    let mut id = [0u8; 16];
    getrandom::fill(&mut id).map_err(|_| CryptoError::Random)?;
    session
        .generate_key(
            &Mechanism::AesKeyGen,
            &[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::KeyType(KeyType::AES),
                Attribute::ValueLen(32.into()),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Sensitive(true),
                Attribute::Extractable(false),
                Attribute::Encrypt(true),
                Attribute::Decrypt(true),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Id(id.to_vec()),
            ],
        )
        .map_err(token_error("generate the key"))
}

impl Kek for Pkcs11Kek {
    fn id(&self) -> KekId {
        self.id.clone()
    }

    fn wrap(&self, plaintext: &[u8], aad: &[u8]) -> Result<WrappedKey, CryptoError> {
        let nonce = sealed::fresh_nonce()?;
        let mut iv = nonce;
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
            .map_err(token_error("prepare AES-GCM"))?;
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        let ciphertext = session
            .encrypt(&Mechanism::AesGcm(params), self.key, plaintext)
            .map_err(token_error("wrap a data key"))?;
        Ok(WrappedKey {
            kek_id: self.id.clone(),
            sealed: sealed::encode(&nonce, &ciphertext),
        })
    }

    fn unwrap(&self, wrapped: &WrappedKey, aad: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if wrapped.kek_id != self.id {
            return Err(CryptoError::KekMismatch {
                expected: wrapped.kek_id.to_string(),
                actual: self.id.to_string(),
            });
        }
        let (mut iv, ciphertext) = sealed::decode(&wrapped.sealed)?;
        let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())
            .map_err(token_error("prepare AES-GCM"))?;
        let session = self.session.lock().unwrap_or_else(PoisonError::into_inner);
        session
            .decrypt(&Mechanism::AesGcm(params), self.key, &ciphertext)
            .map(Zeroizing::new)
            .map_err(|err| match err {
                // The token itself is in trouble (a lost session, a removed device): that is
                // no evidence about the data.
                cryptoki::error::Error::Pkcs11(
                    RvError::SessionHandleInvalid
                    | RvError::SessionClosed
                    | RvError::DeviceError
                    | RvError::DeviceRemoved
                    | RvError::DeviceMemory
                    | RvError::HostMemory
                    | RvError::TokenNotPresent
                    | RvError::UserNotLoggedIn
                    | RvError::CryptokiNotInitialized,
                    _,
                ) => CryptoError::Pkcs11 {
                    what: "unwrap a data key",
                    reason: err.to_string(),
                },
                // Anything else is a refused tag (tokens differ in the code they use, SoftHSM2
                // says "general error"): the wrapped key was altered or moved.
                _ => CryptoError::UnwrapFailed,
            })
    }
}
