//! The console's pages: one template each (in `templates/console/`, extending `base.html`),
//! and how a page or an error becomes an answer.

use askama::Template;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use crate::http::ApiError;

/// The signed-in user, as the page header shows it.
#[derive(Clone)]
pub(super) struct Who {
    pub name: String,
    pub role: &'static str,
    pub csrf: String,
    /// Whether the admin tokens page is theirs to use (the nav shows no other).
    pub manages_tokens: bool,
}

impl std::fmt::Debug for Who {
    /// Leaves the CSRF token out.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Who")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// What every page's frame needs.
#[derive(Debug, Clone)]
pub(super) struct Chrome {
    pub title: String,
    /// The navigation entry that is current.
    pub section: &'static str,
    pub who: Option<Who>,
    /// A line confirming what was just done.
    pub notice: Option<String>,
}

impl Chrome {
    pub fn new(title: impl Into<String>, section: &'static str, who: Option<Who>) -> Self {
        Self {
            title: title.into(),
            section,
            who,
            notice: None,
        }
    }
}

/// Renders `page` with `status`.
pub(super) fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(error = %err, "a console page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be rendered",
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "console/sign_in.html")]
pub(super) struct SignIn {
    pub chrome: Chrome,
    pub problem: Option<String>,
    /// Whether single sign-on is offered.
    pub sso: bool,
}

#[derive(Template)]
#[template(path = "console/error.html")]
pub(super) struct ErrorPage {
    pub chrome: Chrome,
    pub message: String,
    pub code: String,
    pub back: String,
}

/// An error from the service layer as a page: its status, message and stable code.
pub(super) fn error(err: impl Into<ApiError>, who: Option<Who>, back: &str) -> Response {
    let err: ApiError = err.into();
    let page = ErrorPage {
        chrome: Chrome::new("Something went wrong", "", who),
        message: err.message.clone(),
        code: err.code.to_owned(),
        back: back.to_owned(),
    };
    render(err.status, &page)
}

/// One key, as the list and its page show it.
#[derive(Debug, Clone)]
pub(super) struct KeyLine {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub status: String,
    pub reason: Option<String>,
    pub project: String,
    pub env: String,
    pub scopes: String,
    pub ip_allow: String,
    pub expires: String,
    pub created: String,
    pub last_used: String,
    pub generation: i64,
}

#[derive(Debug, Clone)]
pub(super) struct StatusOption {
    pub value: &'static str,
    pub label: &'static str,
    pub selected: bool,
}

#[derive(Debug, Clone, Default)]
pub(super) struct KeyFilter {
    pub q: String,
    pub project: String,
}

#[derive(Template)]
#[template(path = "console/keys.html")]
pub(super) struct Keys {
    pub chrome: Chrome,
    pub filter: KeyFilter,
    pub statuses: Vec<StatusOption>,
    pub keys: Vec<KeyLine>,
    pub next: Option<String>,
    pub can_write: bool,
}

/// The new-key form's values, kept when it is shown again with a problem.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub(super) struct KeyForm {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub project: String,
    #[serde(default)]
    pub env: String,
    #[serde(default)]
    pub scopes: String,
    #[serde(default)]
    pub expires_at: String,
    #[serde(default)]
    pub ip_allow: String,
}

#[derive(Template)]
#[template(path = "console/key_new.html")]
pub(super) struct KeyNew {
    pub chrome: Chrome,
    pub csrf: String,
    pub form: KeyForm,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "console/key_secret.html")]
pub(super) struct KeySecret {
    pub chrome: Chrome,
    /// `key` or `admin token`.
    pub what: &'static str,
    pub name: String,
    pub secret: String,
    /// Where to go once it is copied.
    pub back: String,
    pub back_label: &'static str,
}

/// The edit form's values: the key as it is.
#[derive(Debug, Clone, Default)]
pub(super) struct KeyEdit {
    pub name: String,
    pub scopes: String,
    pub expires_at: String,
    pub ip_allow: String,
    pub publishable: bool,
    pub origins: String,
    /// Its limits as the admin API's JSON.
    pub limits: String,
}

#[derive(Template)]
#[template(path = "console/key.html")]
pub(super) struct Key {
    pub chrome: Chrome,
    pub key: KeyLine,
    pub edit: KeyEdit,
    pub csrf: String,
    pub can_write: bool,
    /// Its use by day, as a chart and a table.
    pub chart: super::chart::Chart,
    pub usage: Vec<UsageLine>,
    /// Its latest refused or failed requests.
    pub refusals: Vec<RefusalLine>,
}

/// A refused or failed request of a key.
#[derive(Debug, Clone)]
pub(super) struct RefusalLine {
    pub at: String,
    pub endpoint: String,
    pub model: String,
    pub status: u16,
    pub code: String,
    pub client_ip: String,
}

/// A secret's metadata, as the list and its page show it. Never its value.
#[derive(Debug, Clone)]
pub(super) struct SecretLine {
    pub id: String,
    pub name: String,
    pub project: String,
    pub description: String,
    pub rotation: String,
    pub created: String,
    pub updated: String,
}

#[derive(Debug, Clone)]
pub(super) struct VersionLine {
    pub number: i64,
    pub stage: &'static str,
    pub created: String,
    pub until: String,
}

/// The put form's values (never the secret's), kept when it is shown again with a problem.
#[derive(Debug, Clone, Default)]
pub(super) struct SecretForm {
    pub name: String,
    pub project: String,
    pub description: String,
}

#[derive(Template)]
#[template(path = "console/secrets.html")]
pub(super) struct Secrets {
    pub chrome: Chrome,
    pub project: String,
    pub secrets: Vec<SecretLine>,
    pub can_write: bool,
    pub csrf: String,
    pub form: SecretForm,
    pub problem: Option<String>,
}

#[derive(Template)]
#[template(path = "console/secret.html")]
pub(super) struct Secret {
    pub chrome: Chrome,
    pub secret: SecretLine,
    pub versions: Vec<VersionLine>,
    pub can_write: bool,
    pub csrf: String,
}

#[derive(Debug, Clone)]
pub(super) struct AuditLine {
    pub seq: i64,
    pub ts: String,
    pub actor: String,
    pub action: String,
    pub outcome: String,
    pub target: String,
    pub details: String,
}

/// Whether the audit chain verifies, as the page says it.
#[derive(Debug, Clone)]
pub(super) struct ChainStatus {
    pub ok: bool,
    pub text: String,
}

#[derive(Template)]
#[template(path = "console/audit.html")]
pub(super) struct Audit {
    pub chrome: Chrome,
    pub action: String,
    pub chain: Option<ChainStatus>,
    pub events: Vec<AuditLine>,
    pub next: Option<String>,
}

/// One row of a usage report, as the tables show it.
#[derive(Debug, Clone)]
pub(super) struct UsageLine {
    pub group: String,
    /// Where the group's own page is (a key's), if it has one.
    pub link: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub prompt: u64,
    pub completion: u64,
    pub spend: String,
    /// Average milliseconds, or a dash when unknown.
    pub latency: String,
}

#[derive(Template)]
#[template(path = "console/usage.html")]
pub(super) struct Usage {
    pub chrome: Chrome,
    pub groups: Vec<StatusOption>,
    pub measures: Vec<StatusOption>,
    pub spans: Vec<StatusOption>,
    pub group: &'static str,
    /// The range of days asked for, if one was.
    pub first_day: String,
    pub last_day: String,
    pub from: String,
    pub to: String,
    pub rows: Vec<UsageLine>,
    pub chart: super::chart::Chart,
}

/// A deployment's health on this node.
#[derive(Debug, Clone)]
pub(super) struct DeploymentLine {
    pub alias: String,
    pub deployment: String,
    pub in_flight: u32,
    pub latency_ms: String,
    pub health: &'static str,
}

/// An anomaly, as the pages list it.
#[derive(Debug, Clone)]
pub(super) struct AnomalyLine {
    pub id: String,
    pub detected: String,
    pub detector: String,
    pub key: String,
    pub evidence: String,
    pub action: String,
    pub outcome: String,
    pub state: String,
    pub open: bool,
}

impl From<&keygate_store::Anomaly> for AnomalyLine {
    fn from(a: &keygate_store::Anomaly) -> Self {
        Self {
            id: a.id.to_string(),
            detected: a.detected_at.to_rfc3339(),
            detector: a.detector.clone(),
            key: a
                .key_id
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            evidence: a.evidence.clone(),
            action: a.action.clone(),
            outcome: a.outcome.clone(),
            state: match (&a.acknowledged_at, &a.note) {
                (None, _) => "open".to_owned(),
                (Some(at), None) => format!("acknowledged {}", at.to_rfc3339()),
                (Some(at), Some(note)) => format!("acknowledged {}: {note}", at.to_rfc3339()),
            },
            open: a.acknowledged_at.is_none(),
        }
    }
}

#[derive(Template)]
#[template(path = "console/anomalies.html")]
pub(super) struct Anomalies {
    pub chrome: Chrome,
    pub states: Vec<StatusOption>,
    pub anomalies: Vec<AnomalyLine>,
    pub next: Option<String>,
    pub can_write: bool,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "console/overview.html")]
pub(super) struct Overview {
    pub chrome: Chrome,
    pub requests: super::chart::Chart,
    pub spend: super::chart::Chart,
    pub tokens: super::chart::Chart,
    pub latency: super::chart::Chart,
    pub total: u64,
    pub errors: u64,
    pub top_keys: Vec<UsageLine>,
    pub top_models: Vec<UsageLine>,
    pub deployments: Vec<DeploymentLine>,
    pub anomalies: Vec<AnomalyLine>,
}

/// A project, as its page lists it.
#[derive(Debug, Clone)]
pub(super) struct ProjectLine {
    pub id: String,
    pub name: String,
    /// Its limits as the admin API's JSON.
    pub limits: String,
}

#[derive(Template)]
#[template(path = "console/projects.html")]
pub(super) struct Projects {
    pub chrome: Chrome,
    pub projects: Vec<ProjectLine>,
    pub can_write: bool,
    pub csrf: String,
    pub problem: Option<String>,
}

/// An admin token, as its page lists it.
#[derive(Debug, Clone)]
pub(super) struct TokenLine {
    pub id: String,
    pub name: String,
    pub hint: String,
    pub role: &'static str,
    pub project: String,
    pub status: &'static str,
    pub expires: String,
    pub last_used: String,
}

/// An open console session, as the admin tokens page lists it.
#[derive(Debug, Clone)]
pub(super) struct SessionLine {
    pub id: String,
    pub name: String,
    pub subject: String,
    pub role: &'static str,
    pub started: String,
    pub last_seen: String,
    /// The session this page is shown in.
    pub own: bool,
}

#[derive(Template)]
#[template(path = "console/tokens.html")]
pub(super) struct Tokens {
    pub chrome: Chrome,
    pub tokens: Vec<TokenLine>,
    pub sessions: Vec<SessionLine>,
    pub roles: Vec<&'static str>,
    pub csrf: String,
    pub problem: Option<String>,
}

/// One deployment of a model group, with its health on this node.
#[derive(Debug, Clone)]
pub(super) struct GroupDeployment {
    pub name: String,
    pub weight: u64,
    pub in_flight: u32,
    pub latency_ms: String,
    pub health: &'static str,
}

/// A model group, as its page shows it.
#[derive(Debug, Clone)]
pub(super) struct GroupLine {
    pub alias: String,
    pub source: &'static str,
    /// Stored through the admin API (editable here), not from `keygate.toml`.
    pub stored: bool,
    pub strategy: String,
    pub fallbacks: String,
    pub deployments: Vec<GroupDeployment>,
    /// The group as the admin API's JSON.
    pub json: String,
}

#[derive(Template)]
#[template(path = "console/model_groups.html")]
pub(super) struct ModelGroups {
    pub chrome: Chrome,
    pub groups: Vec<GroupLine>,
    pub can_write: bool,
    pub csrf: String,
    pub problem: Option<String>,
}

/// Where single sign-on lands: on to the console from a page of its own.
#[derive(Template)]
#[template(path = "console/signed_in.html")]
pub(super) struct SignedInPage {
    pub chrome: Chrome,
}
