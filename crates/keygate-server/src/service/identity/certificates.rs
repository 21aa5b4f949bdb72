//! Mutual TLS at the service layer: a client certificate the handshake verified against the
//! configured CA stands for the principal its first matching `[[tls.clients]]` rule describes
//! (see `principals.rs`), counted per rule and name. Tokens issued over such a connection are
//! bound to the certificate (RFC 8705), whoever asks for them.

use std::sync::Arc;

use keygate_core::KeyRejection;
use keygate_identity::FederatedSubject;
use keygate_identity::certificates::matching;

use super::principals::{Grant, principal_id};
use crate::ServiceError;
use crate::cache::CachedKey;
use crate::service::{Keygate, VerifyOutcome};

/// The issuer name under which tokens of certificate principals name their rule.
pub(crate) const CERTIFICATE_ISSUER: &str = "tls";

/// A client certificate the TLS handshake verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    /// Its SHA-256 thumbprint, `x5t#S256`.
    pub thumbprint: String,
    /// The DNS names and URIs (a SPIFFE ID, say) among its subject alternative names.
    pub names: Vec<String>,
}

impl ClientCertificate {
    /// Reads a DER certificate's names; one that cannot be read has none.
    pub fn from_der(der: &[u8]) -> Self {
        let cert = rustls::pki_types::CertificateDer::from(der);
        let names = webpki::EndEntityCert::try_from(&cert)
            .map(|cert| {
                cert.valid_dns_names()
                    .chain(cert.valid_uri_names())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        Self {
            thumbprint: keygate_identity::certificate_thumbprint(der),
            names,
        }
    }
}

impl Keygate {
    /// The principal a client certificate stands for, when a rule takes it.
    pub async fn verify_certificate(
        &self,
        certificate: &ClientCertificate,
    ) -> Result<VerifyOutcome, ServiceError> {
        let settings = self.identity.settings();
        let Some((at, _, name)) = matching(&settings.certificates, &certificate.names) else {
            return Ok(VerifyOutcome::Invalid(
                KeyRejection::CertificateNotAllowed,
                None,
            ));
        };
        Ok(match self.certificate_principal(at, name).await? {
            Some(principal) => VerifyOutcome::Valid(principal),
            None => VerifyOutcome::Invalid(KeyRejection::CertificateNotAllowed, None),
        })
    }

    /// The principal of rule `at` for the certificate name `name`.
    pub(super) async fn certificate_principal(
        &self,
        at: usize,
        name: &str,
    ) -> Result<Option<Arc<CachedKey>>, ServiceError> {
        let settings = self.identity.settings();
        let Some(rule) = settings.certificates.get(at) else {
            return Ok(None);
        };
        let id = principal_id("mtls", &[&rule.name, name]);
        let made_by = FederatedSubject {
            issuer: CERTIFICATE_ISSUER.to_owned(),
            rule: rule.name.clone(),
            sub: name.to_owned(),
        };
        let grant = Grant {
            project: &rule.project,
            scopes: &rule.scopes,
            limits: &rule.limits,
        };
        self.rule_principal(id, made_by, grant).await
    }
}
