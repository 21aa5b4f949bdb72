//! `POST /v1/leaks`: leak reports, in GitHub's secret-scanning partner format or a plain form.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::http::error::ErrorBody;
use crate::http::extract::RawBody;
use crate::http::{ApiError, AppState};
use crate::service::{LeakVerdict, ReportError, ReportSignature};

impl From<ReportError> for ApiError {
    fn from(err: ReportError) -> Self {
        match err {
            ReportError::BadSignature => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "signature_invalid",
                "the report's Github-Public-Key-Signature does not verify against a configured \
                 report key",
            ),
            ReportError::Invalid(invalid) => crate::ServiceError::from(invalid).into(),
            ReportError::Service(err) => err.into(),
        }
    }
}

/// Report leaked tokens. The body is GitHub's secret-scanning format
/// (`[{"token", "type", "url", "source"}]`, signed with `Github-Public-Key-Identifier` and
/// `Github-Public-Key-Signature`) or `{"tokens": [...], "url", "source"}`. Every keygate key
/// in it is quarantined at once; the answer labels each token, as GitHub expects.
#[utoipa::path(post, path = "/v1/leaks", tag = "leaks",
    request_body(content = Object, description = "GitHub's partner format or the plain form"),
    responses((status = 200, body = Vec<Object>,
            description = "`[{\"token_hash\", \"token_type\", \"label\"}]`, in the report's order"),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn report(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<Vec<LeakVerdict>>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let signature = match (
        header("github-public-key-identifier"),
        header("github-public-key-signature"),
    ) {
        (None, None) => None,
        (key_id, signature) => Some(ReportSignature {
            key_id: key_id.unwrap_or_default(),
            signature: signature.unwrap_or_default(),
        }),
    };
    let verdicts = state
        .keygate
        .receive_leak_report(&body, signature, &state.settings.leaks)
        .await?;
    Ok(Json(verdicts))
}
