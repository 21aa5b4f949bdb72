//! TLS with rustls: the server's certificate chain and key from PEM files, read again when
//! either changes (so a renewed certificate needs no restart); client certificates verified
//! against `client_ca` when it is set — optional at the handshake, so a client may still send
//! a key, and a verified certificate stands for the principal a `[[tls.clients]]` rule gives
//! it; TLS 1.2 and 1.3 with rustls's suites (AEAD only, forward secret); and an optional
//! plain-HTTP listener that only redirects to HTTPS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// `tls_cert`, `tls_key`, `tls_client_ca`, `tls_redirect_from`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The certificate chain, PEM, the server's own first.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates, PEM, that client certificates are verified against (mutual TLS).
    pub client_ca: Option<PathBuf>,
    /// A plain-HTTP address whose every request is redirected to HTTPS.
    pub redirect_from: Option<SocketAddr>,
}

impl TlsSettings {
    /// Reads the files as serving would, so that a start-up refuses them before it listens.
    pub fn check(&self) -> Result<(), TlsError> {
        TlsServer::new(self).map(drop)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    #[error("the TLS configuration cannot be used: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// How often the certificate files are looked at.
const RELOAD_CHECK: Duration = Duration::from_secs(5);

/// The server's TLS: an acceptor, and the certificate it presents, reloadable.
#[derive(Clone)]
pub(crate) struct TlsServer {
    acceptor: TlsAcceptor,
    certificate: Arc<ReloadingCert>,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("cert", &self.certificate.cert)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    pub(crate) fn new(settings: &TlsSettings) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certificate = Arc::new(ReloadingCert::load(
            settings.cert.clone(),
            settings.key.clone(),
            provider.clone(),
        )?);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError::Config(e.to_string()))?;
        let builder = match &settings.client_ca {
            None => builder.with_no_client_auth(),
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e))? {
                    roots
                        .add(cert.map_err(|e| file_error(path, e))?)
                        .map_err(|e| file_error(path, e))?;
                }
                if roots.is_empty() {
                    return Err(file_error(path, "holds no CA certificate"));
                }
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                        .allow_unauthenticated()
                        .build()
                        .map_err(|e| TlsError::Config(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let mut config = builder.with_cert_resolver(certificate.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            certificate,
        })
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Reads the certificate files again whenever they change, until `stop`. A pair that
    /// cannot be used (half written, a key of another certificate) is logged and the one in
    /// use kept.
    pub(crate) async fn watch(self, stop: tokio_util::sync::CancellationToken) {
        let mut ticker = tokio::time::interval(RELOAD_CHECK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                () = stop.cancelled() => return,
            }
            self.certificate.reload_if_changed();
        }
    }
}

/// The certificate presented to every client, swapped when its files change.
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<rustls::crypto::CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    modified: Mutex<(Option<SystemTime>, Option<SystemTime>)>,
}

impl std::fmt::Debug for ReloadingCert {
    /// Names the files only: the key stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl ReloadingCert {
    fn load(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<rustls::crypto::CryptoProvider>,
    ) -> Result<Self, TlsError> {
        let stamps = (modified(&cert), modified(&key));
        let current = read_pair(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            current: RwLock::new(Arc::new(current)),
            modified: Mutex::new(stamps),
        })
    }

    fn reload_if_changed(&self) {
        let stamps = (modified(&self.cert), modified(&self.key));
        let mut seen = self
            .modified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if *seen == stamps {
            return;
        }
        match read_pair(&self.cert, &self.key, &self.provider) {
            Ok(pair) => {
                *seen = stamps;
                match self.current.write() {
                    Ok(mut current) => *current = Arc::new(pair),
                    Err(poisoned) => *poisoned.into_inner() = Arc::new(pair),
                }
                tracing::info!(cert = %self.cert.display(), "the TLS certificate was reloaded");
            }
            Err(err) => {
                tracing::warn!(error = %err, "the changed TLS certificate cannot be used yet; keeping the current one");
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .map(|c| c.clone())
                .unwrap_or_else(|poisoned| poisoned.into_inner().clone()),
        )
    }
}

fn read_pair(
    cert: &Path,
    key: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(cert, e))?;
    if chain.is_empty() {
        return Err(file_error(cert, "holds no certificate"));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
    CertifiedKey::from_der(chain, private, provider)
        .map_err(|e| file_error(key, format!("does not go with the certificate: {e}")))
}

/// Answers every plain-HTTP request on `listener` with a permanent redirect to the same path
/// over HTTPS on `https_port`, until `stop`.
pub(crate) async fn redirect(
    listener: tokio::net::TcpListener,
    https_port: u16,
    stop: tokio_util::sync::CancellationToken,
) {
    use axum::http::{HeaderValue, StatusCode, header};
    use axum::response::IntoResponse;
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| async move {
        let host = request
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok());
        let Some(host) = host else {
            return (StatusCode::BAD_REQUEST, "a Host header is needed").into_response();
        };
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", axum::http::uri::PathAndQuery::as_str);
        let target = if https_port == 443 {
            format!("https://{}{path}", host.host())
        } else {
            format!("https://{}:{https_port}{path}", host.host())
        };
        match HeaderValue::from_str(&target) {
            Ok(location) => (
                StatusCode::PERMANENT_REDIRECT,
                [(header::LOCATION, location)],
            )
                .into_response(),
            Err(_) => (StatusCode::BAD_REQUEST, "the request cannot be redirected").into_response(),
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(err) = served {
        tracing::warn!(error = %err, "the HTTP redirect listener stopped");
    }
}
