//! A client for black-box tests of the admin and verify APIs over a real socket.
//!
//! Every exchange is kept (method, path, status, body text), so that a test can search every
//! response the server sent, e.g. for a secret that must appear in exactly one of them.
//! The helpers that create things panic on an unexpected status, with the response in the
//! message: a broken fixture should stop the test where it broke.

use std::sync::{Arc, Mutex, PoisonError};

use reqwest::header::HeaderMap;
use serde_json::{Value, json};

use crate::TestServer;

pub use reqwest::Method;

/// One response, read completely.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    /// The body as the server sent it.
    pub text: String,
    /// The body parsed as JSON; `Null` when it is empty or not JSON.
    pub body: Value,
}

impl Reply {
    /// The stable error code of an error body, or `""`.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// The error message of an error body, or `""`.
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Panics unless the status is `status`; returns the reply for chaining.
    #[track_caller]
    pub fn expect(self, status: u16) -> Self {
        assert_eq!(self.status, status, "unexpected response: {}", self.text);
        self
    }

    /// Panics unless this is an error response with `status` and `code`.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Self {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected response: {}",
            self.text
        );
        self
    }

    /// Expects an OAuth error (RFC 6749 §5.2: `{"error": code, "error_description": …}`).
    pub fn expect_error_oauth(self, status: u16, code: &str) -> Self {
        assert_eq!(
            (self.status, self.body["error"].as_str()),
            (status, Some(code)),
            "unexpected response: {}",
            self.text
        );
        assert!(
            self.body["error_description"].is_string(),
            "no description: {}",
            self.text
        );
        self
    }
}

/// A request and response as the client saw them.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: String,
}

/// A created API key: its id, its secret (shown once) and its view.
#[derive(Debug, Clone)]
pub struct CreatedKey {
    pub id: String,
    pub secret: String,
    pub view: Value,
}

/// An issued admin token.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub id: String,
    pub secret: String,
}

/// The client. Cloning shares the transcript.
#[derive(Debug, Clone)]
pub struct Api {
    http: reqwest::Client,
    base_url: String,
    transcript: Arc<Mutex<Vec<Exchange>>>,
}

impl TestServer {
    /// A client for this server.
    pub fn api(&self) -> Api {
        Api::new(&self.base_url)
    }
}

impl Api {
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
            transcript: Arc::default(),
        }
    }

    /// Starts a request to `path` (which may carry a query string).
    pub fn request(&self, method: Method, path: &str) -> Call<'_> {
        Call {
            api: self,
            method: method.clone(),
            path: path.to_owned(),
            builder: self
                .http
                .request(method, format!("{}{}", self.base_url, path)),
        }
    }

    pub fn get(&self, path: &str) -> Call<'_> {
        self.request(Method::GET, path)
    }

    pub fn post(&self, path: &str) -> Call<'_> {
        self.request(Method::POST, path)
    }

    pub fn patch(&self, path: &str) -> Call<'_> {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> Call<'_> {
        self.request(Method::DELETE, path)
    }

    /// Every exchange so far, in order.
    pub fn transcript(&self) -> Vec<Exchange> {
        self.transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Creates an API key (the body is sent as is) and expects 201.
    pub async fn create_key(&self, token: &str, body: Value) -> CreatedKey {
        let reply = self
            .post("/admin/v1/keys")
            .token(token)
            .json(&body)
            .send()
            .await
            .expect(201);
        CreatedKey {
            id: str_field(&reply.body["key"]["id"]),
            secret: str_field(&reply.body["secret"]),
            view: reply.body["key"].clone(),
        }
    }

    /// Creates a project and returns its id.
    pub async fn create_project(&self, token: &str, name: &str) -> String {
        let reply = self
            .post("/admin/v1/projects")
            .token(token)
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect(201);
        str_field(&reply.body["id"])
    }

    /// Issues an admin token with `role`, bound to `project` (id or name) or the organisation.
    pub async fn create_token(
        &self,
        token: &str,
        role: &str,
        project: Option<&str>,
    ) -> IssuedToken {
        let reply = self
            .post("/admin/v1/tokens")
            .token(token)
            .json(&json!({ "role": role, "project": project, "name": format!("{role} token") }))
            .send()
            .await
            .expect(201);
        IssuedToken {
            id: str_field(&reply.body["token"]["id"]),
            secret: str_field(&reply.body["secret"]),
        }
    }

    /// `POST /v1/keys/verify`; expects 200 and returns the verdict.
    pub async fn verify(&self, key: &str, permission: Option<&str>, ip: Option<&str>) -> Value {
        self.post("/v1/keys/verify")
            .json(&json!({ "key": key, "permission": permission, "ip": ip }))
            .send()
            .await
            .expect(200)
            .body
    }

    /// The `code` of a verification (`valid` when the key is accepted).
    pub async fn verify_code(&self, key: &str) -> String {
        str_field(&self.verify(key, None, None).await["code"])
    }

    /// `GET /admin/v1/keys/{id}`; expects 200.
    pub async fn get_key(&self, token: &str, id: &str) -> Value {
        self.get(&format!("/admin/v1/keys/{id}"))
            .token(token)
            .send()
            .await
            .expect(200)
            .body
    }

    /// Every audit event the token may read, oldest first.
    pub async fn audit_events(&self, token: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut path = "/admin/v1/audit?limit=500".to_owned();
        loop {
            let page = self.get(&path).token(token).send().await.expect(200).body;
            events.extend(page["data"].as_array().cloned().unwrap_or_default());
            match page["next_cursor"].as_i64() {
                Some(cursor) => path = format!("/admin/v1/audit?limit=500&cursor={cursor}"),
                None => break,
            }
        }
        events.reverse();
        events
    }

    /// `GET /admin/v1/audit/verify`; expects 200.
    pub async fn audit_verify(&self, token: &str) -> Value {
        self.get("/admin/v1/audit/verify")
            .token(token)
            .send()
            .await
            .expect(200)
            .body
    }
}

fn str_field(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("expected a string, got {value}"))
        .to_owned()
}

/// A request being built.
#[derive(Debug)]
pub struct Call<'a> {
    api: &'a Api,
    method: Method,
    path: String,
    builder: reqwest::RequestBuilder,
}

impl Call<'_> {
    /// Sends `token` as `Authorization: Bearer`.
    pub fn token(mut self, token: &str) -> Self {
        self.builder = self.builder.bearer_auth(token);
        self
    }

    /// Sends `id` as `x-request-id`.
    pub fn request_id(self, id: &str) -> Self {
        self.header("x-request-id", id)
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// A JSON body with `Content-Type: application/json`.
    pub fn json(mut self, body: &Value) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// An `application/x-www-form-urlencoded` body of `fields`, in order (a name may repeat).
    pub fn form(mut self, fields: &[(&str, &str)]) -> Self {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        self.builder = self
            .builder
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self
    }

    /// HTTP Basic authentication.
    pub fn basic(mut self, user: &str, password: &str) -> Self {
        self.builder = self.builder.basic_auth(user, Some(password));
        self
    }

    /// A raw body, with no content type unless one is set with [`Call::header`].
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.builder = self.builder.body(body.into());
        self
    }

    pub async fn send(self) -> Reply {
        let response = self
            .builder
            .send()
            .await
            .unwrap_or_else(|err| panic!("{} {}: {err}", self.method, self.path));
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a readable response body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        self.api
            .transcript
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Exchange {
                method: self.method.to_string(),
                path: self.path,
                status,
                body: text.clone(),
            });
        Reply {
            status,
            headers,
            text,
            body,
        }
    }
}
