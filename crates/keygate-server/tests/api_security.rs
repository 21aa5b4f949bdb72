//! The API-security suite, named after the OWASP API Security Top 10 (2023), over real
//! sockets. Every case gets a clean 4xx (never a 5xx, never a hang) and leaves the server
//! healthy. Other suites hold the categories that belong with their features: object and
//! function-level authorisation across projects and roles in `rbac.rs` and `projects.rs`,
//! SSRF through rotation checks in `rotation.rs` and proxy routes in `proxy.rs`; the API's inventory (every served route documented) is a unit test
//! of `http/openapi.rs`, and schemathesis drives the whole document (`keygate`'s
//! `tests/api_security.rs`).
//!
//! - API2 Broken authentication: `broken_authentication.rs` (admin credentials) and
//!   `bad_input.rs` (API keys).
//! - API3 Broken object property level authorisation: `mass_assignment.rs`.
//! - API4 Unrestricted resource consumption: `resource_consumption.rs` and `bad_input.rs`.
//! - API7 Server-side request forgery: `ssrf.rs` (webhook URLs).
//! - API8 Security misconfiguration: `misconfiguration.rs`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a failed step should fail the test"
)]

#[path = "api_security/bad_input.rs"]
mod bad_input;
#[path = "api_security/broken_authentication.rs"]
mod broken_authentication;
#[path = "api_security/mass_assignment.rs"]
mod mass_assignment;
#[path = "api_security/misconfiguration.rs"]
mod misconfiguration;
#[path = "api_security/resource_consumption.rs"]
mod resource_consumption;
#[path = "api_security/ssrf.rs"]
mod ssrf;

use keygate_testkit::TestServer;

/// The server answers its health check: whatever a case did, it is still serving.
async fn assert_healthy(server: &TestServer) {
    let health = server.api().get("/healthz").send().await;
    assert_eq!(health.status, 200, "the server is unwell after the case");
}
