//! A small client of the admin API, and the CLI's error type with its exit codes.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::cli::ApiArgs;

/// Why a command failed. Each kind has its own exit code, so scripts can tell them apart.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The store could not be reached by a command that works on it directly.
    #[error("cannot use the store: {0}")]
    StoreUnavailable(String),
    #[error("{message} [{code}]")]
    Api {
        status: u16,
        code: String,
        message: String,
    },
    #[error("cannot reach keygate at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Invalid(String),
    #[error("the audit log failed verification: {0}")]
    Tampered(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// 1 other failure, 2 bad usage, 3 not found, 4 not authenticated or not allowed,
    /// 5 refused by the server (validation, conflict), 6 server unreachable, failing, slow or
    /// rate limiting (worth a retry), 7 audit log tampered with.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Api { status: 404, .. } => 3,
            Self::Api {
                status: 401 | 403, ..
            } => 4,
            Self::Api {
                status: 408 | 429, ..
            } => 6,
            Self::Api { status, .. } if *status < 500 => 5,
            Self::Api { .. } | Self::Unreachable { .. } | Self::StoreUnavailable(_) => 6,
            Self::Invalid(_) => 2,
            Self::Tampered(_) => 7,
            Self::Other(_) => 1,
        }
    }
}

/// An authenticated connection to the admin API.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for AdminClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AdminClient({}, [REDACTED])", self.base)
    }
}

/// A successful answer: its headers and JSON body (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub headers: HeaderMap,
    pub body: Value,
}

impl AdminClient {
    pub fn new(args: &ApiArgs) -> Result<Self, CliError> {
        let token = args.token.clone().ok_or_else(|| {
            CliError::Invalid(
                "no admin token: set KEYGATE_TOKEN (see `keygate admin token create`)".into(),
            )
        })?;
        Self::with_token(args, token)
    }

    /// A client for public endpoints, which need no admin token.
    pub fn public(args: &ApiArgs) -> Result<Self, CliError> {
        Self::with_token(args, String::new())
    }

    fn with_token(args: &ApiArgs, token: String) -> Result<Self, CliError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| CliError::Other(e.into()))?;
        Ok(Self {
            http,
            base: args.url.trim_end_matches('/').to_owned(),
            token,
        })
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Result<Value, CliError> {
        let request = self.request(Method::GET, path).query(query);
        Ok(self.send(request).await?.body)
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Result<Reply, CliError> {
        let mut request = self.request(method, path);
        if let Some(body) = body {
            request = request.json(body);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// Exchanges `subject` (a JWT) for a keygate access token with `scope` at the token
    /// endpoint (RFC 8693).
    pub async fn exchange_token(
        &self,
        subject: &str,
        scope: &str,
    ) -> Result<zeroize::Zeroizing<String>, CliError> {
        let form = zeroize::Zeroizing::new(
            url::form_urlencoded::Serializer::new(String::new())
                .append_pair(
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                )
                .append_pair("subject_token", subject)
                .append_pair("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
                .append_pair("scope", scope)
                .finish(),
        );
        let request = self
            .request(Method::POST, "/oauth/token")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_string());
        let reply = self.send(request).await?;
        reply.body["access_token"]
            .as_str()
            .map(|t| zeroize::Zeroizing::new(t.to_owned()))
            .ok_or_else(|| CliError::Invalid("the token endpoint answered without a token".into()))
    }

    /// GETs a body of lines (NDJSON) and hands each complete line to `line` as it arrives;
    /// returns how many there were.
    pub async fn lines(
        &self,
        path: &str,
        query: &[(&str, String)],
        mut line: impl FnMut(&str),
    ) -> Result<usize, CliError> {
        let unreachable = |e: reqwest::Error| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        };
        let mut response = self
            .request(Method::GET, path)
            .query(query)
            .send()
            .await
            .map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            return Err(api_error(status, &body));
        }
        let (mut pending, mut count) = (Vec::new(), 0);
        while let Some(chunk) = response.chunk().await.map_err(unreachable)? {
            pending.extend_from_slice(&chunk);
            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                let text = String::from_utf8_lossy(&pending[..end]).into_owned();
                pending.drain(..=end);
                line(&text);
                count += 1;
            }
        }
        Ok(count)
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{}", self.base, path));
        if self.token.is_empty() {
            request
        } else {
            request.bearer_auth(&self.token)
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Reply, CliError> {
        let response = request.send().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.map_err(|e| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.without_url().to_string(),
        })?;
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if status.is_success() {
            return Ok(Reply { headers, body });
        }
        Err(api_error(status, &body))
    }
}

fn api_error(status: StatusCode, body: &Value) -> CliError {
    let error = &body["error"];
    // The token endpoint answers in RFC 6749's shape.
    if let Some(code) = error.as_str() {
        return CliError::Api {
            status: status.as_u16(),
            code: code.to_owned(),
            message: body["error_description"]
                .as_str()
                .map_or_else(|| status.to_string(), str::to_owned),
        };
    }
    CliError::Api {
        status: status.as_u16(),
        code: error["code"]
            .as_str()
            .map_or_else(|| format!("http_{}", status.as_u16()), str::to_owned),
        message: error["message"]
            .as_str()
            .map_or_else(|| status.to_string(), str::to_owned),
    }
}

/// Percent-encodes one path segment (a key id is plain, but a user may type anything).
pub fn segment(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16) -> CliError {
        CliError::Api {
            status,
            code: "x".into(),
            message: "x".into(),
        }
    }

    #[test]
    fn exit_codes_by_kind() {
        let codes: Vec<u8> = [404, 401, 403, 400, 409, 422, 408, 429, 500, 503]
            .into_iter()
            .map(|s| api(s).exit_code())
            .collect();
        assert_eq!(codes, vec![3, 4, 4, 5, 5, 5, 6, 6, 6, 6]);
        assert_eq!(CliError::Invalid("x".into()).exit_code(), 2);
        assert_eq!(CliError::Tampered("x".into()).exit_code(), 7);
        assert_eq!(CliError::StoreUnavailable("x".into()).exit_code(), 6);
    }
}
