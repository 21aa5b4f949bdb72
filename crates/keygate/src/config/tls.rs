//! `tls_cert`, `tls_key`, `tls_client_ca`, `tls_redirect_from` and `[[tls_clients]]`: keygate
//! serving HTTPS itself, and what verified client certificates may do.

use std::path::PathBuf;

use keygate_identity::certificates::CertificateRule;
use keygate_server::http::TlsSettings;
use serde::Deserialize;

use super::ConfigError;
use super::identity::{GrantFile, Unknown, grant, no_unknown};

/// The TLS keys of the file (or their variables).
pub(super) struct TlsFields {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub client_ca: Option<PathBuf>,
    pub redirect_from: Option<String>,
    pub clients: Vec<TlsClientFile>,
}

/// `[[tls_clients]]`: what a client certificate whose name matches may do.
#[derive(Debug, Deserialize)]
pub(super) struct TlsClientFile {
    name: String,
    /// A pattern for a DNS name or URI (a SPIFFE ID) among the certificate's subject
    /// alternative names.
    san: String,
    #[serde(flatten)]
    grant: GrantFile,
    #[serde(flatten)]
    unknown: Unknown,
}

pub(super) fn certificate_rules(
    files: Vec<TlsClientFile>,
) -> Result<Vec<CertificateRule>, ConfigError> {
    let mut rules: Vec<CertificateRule> = Vec::with_capacity(files.len());
    for file in files {
        let name = file.name;
        let what = |field: &str| ConfigError::BadTls(format!("[[tls_clients]] `{name}`: {field}"));
        if name.is_empty() || rules.iter().any(|r| r.name == name) {
            return Err(what("each rule has a name of its own"));
        }
        if file.san.is_empty() || file.san.len() > 512 {
            return Err(what("san is a pattern of 1 to 512 characters"));
        }
        no_unknown(&file.unknown, &what)?;
        let (scopes, limits) = grant(&file.grant, &what)?;
        rules.push(CertificateRule {
            project: file.grant.project,
            san: file.san,
            scopes,
            limits,
            name,
        });
    }
    Ok(rules)
}

/// The TLS settings (none: plain HTTP) and the client-certificate rules.
pub(super) fn tls_settings(
    fields: TlsFields,
) -> Result<(Option<TlsSettings>, Vec<CertificateRule>), ConfigError> {
    let certificates = certificate_rules(fields.clients)?;
    if fields.cert.is_none() && (fields.client_ca.is_some() || fields.redirect_from.is_some()) {
        return Err(ConfigError::BadTls(
            "tls_client_ca and tls_redirect_from need tls_cert and tls_key".into(),
        ));
    }
    let tls = match (fields.cert, fields.key) {
        (None, None) => None,
        (Some(cert), Some(key)) => Some(TlsSettings {
            cert,
            key,
            client_ca: fields.client_ca,
            redirect_from: fields
                .redirect_from
                .map(|text| {
                    text.parse().map_err(|_| {
                        ConfigError::BadTls(format!(
                            "tls_redirect_from: `{text}` is not an address such as 0.0.0.0:80"
                        ))
                    })
                })
                .transpose()?,
        }),
        _ => {
            return Err(ConfigError::BadTls(
                "tls_cert and tls_key go together: the certificate chain and its key".into(),
            ));
        }
    };
    let client_auth = tls.as_ref().is_some_and(|t| t.client_ca.is_some());
    if !certificates.is_empty() && !client_auth {
        return Err(ConfigError::BadTls(
            "[[tls_clients]] needs tls_client_ca: client certificates are verified against it"
                .into(),
        ));
    }
    Ok((tls, certificates))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(toml: &str) -> TlsFields {
        #[derive(Deserialize)]
        struct Raw {
            tls_cert: Option<PathBuf>,
            tls_key: Option<PathBuf>,
            tls_client_ca: Option<PathBuf>,
            tls_redirect_from: Option<String>,
            #[serde(default)]
            tls_clients: Vec<TlsClientFile>,
        }
        let raw: Raw = toml::from_str(toml).unwrap();
        TlsFields {
            cert: raw.tls_cert,
            key: raw.tls_key,
            client_ca: raw.tls_client_ca,
            redirect_from: raw.tls_redirect_from,
            clients: raw.tls_clients,
        }
    }

    const CLIENT: &str = "[[tls_clients]]\nname = \"billing\"\nsan = \"spiffe://acme/billing\"\n\
                          project = \"default\"\nscopes = [\"models:*\"]\nrates = [\"10/minute\"]";

    #[test]
    fn tls_and_client_rules() {
        let (tls, rules) = tls_settings(fields(&format!(
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_client_ca = \"ca.pem\"\n\
             tls_redirect_from = \"127.0.0.1:8081\"\n{CLIENT}"
        )))
        .unwrap();
        let tls = tls.unwrap();
        assert_eq!(tls.redirect_from.unwrap().port(), 8081);
        assert_eq!(rules[0].limits.requests.len(), 1);
        assert!(tls_settings(fields("")).unwrap().0.is_none());
    }

    #[test]
    fn refuses_what_cannot_work() {
        for bad in [
            "tls_cert = \"c.pem\"".to_owned(),
            "tls_client_ca = \"ca.pem\"".to_owned(),
            "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_redirect_from = \"port 80\"".to_owned(),
            format!("tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\n{CLIENT}"),
            format!(
                "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_client_ca = \"ca.pem\"\n{CLIENT}\n{CLIENT}"
            ),
            format!(
                "tls_cert = \"c.pem\"\ntls_key = \"k.pem\"\ntls_client_ca = \"ca.pem\"\n{CLIENT}\nbudget = \"5/day\""
            ),
        ] {
            assert!(tls_settings(fields(&bad)).is_err(), "{bad}");
        }
    }
}
